# CMake package configuration for unitfp8, installed by `cargo cinstall` into
# <prefix>/share/cmake/unitfp8/. Use it with
#
#   find_package(unitfp8 0.1 REQUIRED)        # CMAKE_PREFIX_PATH=<prefix> if not a system prefix
#   target_link_libraries(app PRIVATE unitfp8::unitfp8)
#
# unitfp8::unitfp8 is the shared library (libunitfp8.so.0) with the include directory of
# unitfp8.h. For a static link use pkg-config (`pkg-config --static --libs unitfp8`).
# Sets unitfp8_VERSION (read from the installed header), unitfp8_INCLUDE_DIR, unitfp8_LIBRARY.

get_filename_component(_unitfp8_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

find_path(unitfp8_INCLUDE_DIR unitfp8.h
  PATHS "${_unitfp8_prefix}/include" NO_DEFAULT_PATH)
find_library(unitfp8_LIBRARY NAMES unitfp8
  PATHS "${_unitfp8_prefix}/lib" "${_unitfp8_prefix}/lib64"
        "${_unitfp8_prefix}/lib/${CMAKE_LIBRARY_ARCHITECTURE}"
  NO_DEFAULT_PATH)

include("${CMAKE_CURRENT_LIST_DIR}/unitfp8ConfigVersion.cmake")
set(unitfp8_VERSION "${PACKAGE_VERSION}")

if(NOT unitfp8_INCLUDE_DIR OR NOT unitfp8_LIBRARY)
  set(unitfp8_FOUND FALSE)
  set(unitfp8_NOT_FOUND_MESSAGE
    "unitfp8.h or libunitfp8 not found under ${_unitfp8_prefix} (include/, lib/)")
  return()
endif()

if(NOT TARGET unitfp8::unitfp8)
  add_library(unitfp8::unitfp8 SHARED IMPORTED)
  set_target_properties(unitfp8::unitfp8 PROPERTIES
    IMPORTED_LOCATION "${unitfp8_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${unitfp8_INCLUDE_DIR}")
endif()
set(unitfp8_FOUND TRUE)
unset(_unitfp8_prefix)
