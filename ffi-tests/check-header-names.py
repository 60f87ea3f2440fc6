#!/usr/bin/env python3
"""Fails when a C header declares a name outside the unitfp8_ / UNITFP8_ namespace.

    check-header-names.py [HEADER]        (default: include/unitfp8.h)
    check-header-names.py --self-test     (the check must reject planted names)

Names checked: every macro the header defines (the compiler's `-dM` list with the header minus
the list with only its system includes), and every function, variable, typedef, struct/union/enum
tag and enumerator it declares (read from the preprocessed text of the header itself, system
headers left out). Parameter and struct member names are not exported and are not checked.
Uses $CC (default cc).
"""

import os
import re
import subprocess
import sys
import tempfile

PREFIX = re.compile(r"^(unitfp8_|UNITFP8_)")
TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|[A-Za-z_][A-Za-z0-9_]*|\d[\w.]*|\S')
KEYWORDS = {
    "auto", "bool", "char", "const", "double", "enum", "extern", "float", "inline", "int",
    "long", "register", "restrict", "short", "signed", "static", "struct", "typedef", "union",
    "unsigned", "void", "volatile", "_Bool", "__restrict", "__restrict__", "__attribute__",
    "__inline", "__extension__",
}


def run(cmd, stdin=""):
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True).stdout


def sys_includes(header):
    with open(header) as f:
        return [line for line in f if re.match(r"\s*#\s*include\s*<", line)]


def macro_names(cc, text):
    out = run([cc, "-E", "-dM", "-x", "c", "-"], text)
    return {m.group(1) for m in re.finditer(r"^#define (\w+)", out, re.M)}


def own_text(cc, header):
    """The preprocessed lines that come from the header itself (not from its includes)."""
    out = run([cc, "-E", "-x", "c", os.path.abspath(header)])
    want = os.path.realpath(header)
    keep, lines = False, []
    for line in out.splitlines():
        m = re.match(r'^# \d+ "([^"]*)"', line)
        if m:
            keep = os.path.exists(m.group(1)) and os.path.realpath(m.group(1)) == want
            continue
        if keep:
            lines.append(line)
    return "\n".join(lines)


def declared_names(text):
    toks = TOKEN.findall(text)
    names = set()
    depth_paren = 0
    braces = []  # kinds of the open braces: "enum", "struct", "block"
    decl = []  # tokens of the current top-level declaration
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "extern" and i + 2 < len(toks) and toks[i + 1] == '"C"' and toks[i + 2] == "{":
            i += 3  # C++ linkage block: its contents are top level
            braces.append("linkage")
            continue
        if t in ("struct", "union", "enum") and i + 1 < len(toks) and re.match(r"[A-Za-z_]", toks[i + 1]):
            if toks[i + 1] not in KEYWORDS:
                names.add(toks[i + 1])
        if t == "{":
            kind = "enum" if "enum" in decl[-3:] or (decl and decl[-1] == "enum") else "block"
            braces.append(kind)
            if kind == "enum" and i + 1 < len(toks):
                names.add(toks[i + 1])
        elif t == "}":
            if braces:
                braces.pop()
        elif t == "," and braces and braces[-1] == "enum" and depth_paren == 0:
            if i + 1 < len(toks) and re.match(r"[A-Za-z_]", toks[i + 1]):
                names.add(toks[i + 1])
        top = all(b == "linkage" for b in braces)
        if t == "(":
            if depth_paren == 0 and top and decl and re.match(r"[A-Za-z_]", decl[-1]) and decl[-1] not in KEYWORDS:
                names.add(decl[-1])  # function (or function-like declarator) name
            depth_paren += 1
        elif t == ")":
            depth_paren -= 1
        if top and depth_paren == 0 and t in (";", "="):
            if "(" not in decl:
                idents = [d for d in decl if re.match(r"[A-Za-z_]", d) and d not in KEYWORDS]
                if idents:
                    names.add(idents[-1])  # variable or typedef name
            decl = [] if t == ";" else decl + [t]
        elif top and t in ("{", "}") and depth_paren == 0:
            decl = decl if t == "{" else []
        elif t != "}" or not top:
            decl.append(t)
        i += 1
    return names


def bad_names(cc, header):
    base = "".join(sys_includes(header))
    with open(header) as f:
        full = base + f.read()
    macros = macro_names(cc, full) - macro_names(cc, base)
    names = macros | declared_names(own_text(cc, header))
    return sorted(n for n in names if not PREFIX.match(n))


def self_test(cc):
    good = (
        "#include <stdint.h>\n#define UNITFP8_X 1\n"
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
        "int32_t unitfp8_f(const float *src, size_t n, void (*cb)(int x));\n"
        "typedef struct unitfp8_s { int a; } unitfp8_t;\n"
        "enum unitfp8_e { UNITFP8_A = 1, UNITFP8_B };\n"
        "#ifdef __cplusplus\n}\n#endif\n"
    )
    planted = [
        ("#define KB 128\n", "KB"),
        ("int32_t gemm(int a);\n", "gemm"),
        ("typedef int Foo;\n", "Foo"),
        ("struct Bar { int a; };\n", "Bar"),
        ("enum unitfp8_e2 { UNITFP8_C, D };\n", "D"),
        ("enum E { UNITFP8_D };\n", "E"),
        ("extern int counter;\n", "counter"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "h.h")
        with open(path, "w") as f:
            f.write(good.replace("#include <stdint.h>\n", "#include <stdint.h>\n#include <stddef.h>\n"))
        if bad_names(cc, path):
            sys.exit(f"self-test: a clean header was rejected: {bad_names(cc, path)}")
        for extra, name in planted:
            with open(path, "w") as f:
                f.write("#include <stdint.h>\n#include <stddef.h>\n" + extra + good.split("\n", 1)[1])
            found = bad_names(cc, path)
            if name not in found:
                sys.exit(f"self-test: planted name {name!r} not found (found {found})")
    print("check-header-names self-test passed")


def main():
    cc = os.environ.get("CC", "cc")
    if sys.argv[1:] == ["--self-test"]:
        self_test(cc)
        return
    header = sys.argv[1] if len(sys.argv) > 1 else "include/unitfp8.h"
    bad = bad_names(cc, header)
    if bad:
        sys.exit(f"{header} declares names outside unitfp8_/UNITFP8_: {', '.join(bad)}")
    print(f"{header}: every declared name starts with unitfp8_ or UNITFP8_")


if __name__ == "__main__":
    main()
