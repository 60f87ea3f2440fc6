/* The header's version macros, the loaded library's unitfp8_version() and the version given on
 * the command line (Cargo.toml's) must all agree. */
#include <stdio.h>
#include <string.h>

#include <unitfp8.h>

int main(int argc, char **argv) {
    char header[64];
    snprintf(header, sizeof header, "%d.%d.%d", UNITFP8_VERSION_MAJOR, UNITFP8_VERSION_MINOR,
             UNITFP8_VERSION_PATCH);
    const char *library = unitfp8_version();
    printf("header %s, library %s, Cargo.toml %s\n", header, library, argc > 1 ? argv[1] : "?");
    if (strcmp(header, library) != 0 || argc != 2 || strcmp(header, argv[1]) != 0) {
        fprintf(stderr, "version mismatch\n");
        return 1;
    }
    return 0;
}
