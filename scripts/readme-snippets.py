#!/usr/bin/env python3
"""Runs every code block of README.md exactly as written, in order (part of scripts/test.sh).

    scripts/readme-snippets.py [--list] [README]
    scripts/readme-snippets.py --self-test   (the runner must catch planted failures)

A fenced block's language says how it runs:
  sh, bash   bash -euo pipefail, from the repository root; variables it exports carry over to
             the blocks after it. HOME is a fresh temporary folder (so an install into
             "$HOME/.local" stays inside it); cargo and rustup keep their own folders.
  c          a program: cc -std=c11 -Wall -Wextra -Werror -pedantic FILE.c
             $(pkg-config --cflags --libs unitfp8) -lm, then run
  cpp        a program: c++ -std=c++17 -Wall -Wextra -Werror -pedantic, the same way
  cmake      a CMakeLists.txt, configured and built with the cpp block just before it as
             main.cpp (CMAKE_PREFIX_PATH from the environment), then the program runs
  python     $PYTHON (default python3) FILE.py, from a fresh temporary folder
  rust       not run here: src/lib.rs includes README.md as doc tests, which `cargo test` runs
  text       output or prose: not run
Any other language is an error unless the block opts out. A block opts out with a visible line
right above it (blank lines between are allowed) that starts with "*Not run by the tests"
followed by the reason, e.g. `*Not run by the tests: needs an NVIDIA GPU.*`
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPT_OUT = re.compile(r"^\*Not run by the tests\b")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
NOT_CODE = {"text", ""}


def blocks(path):
    """(line number, language, code, opted out) of each fenced block."""
    with open(path) as f:
        lines = f.read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        opted_out = j >= 0 and bool(OPT_OUT.match(lines[j].strip()))
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            sys.exit(f"README line {start + 1}: unterminated code block")
        out.append((start + 1, lang, "\n".join(body) + "\n", opted_out))
        i += 1
    return out


def run(cmd, env, cwd, what):
    print(f"+ {' '.join(cmd) if isinstance(cmd, list) else cmd}", flush=True)
    r = subprocess.run(cmd, env=env, cwd=cwd, shell=isinstance(cmd, str))
    if r.returncode != 0:
        raise RuntimeError(f"{what}: exit status {r.returncode}")


SELF_TEST = """# t

```c
int main(void) { return 3; }
```

```julia
x = 1
```

*Not run by the tests: planted, must be skipped.*

```python
raise SystemExit(1)
```

```python
raise SystemExit(4)
```
"""


def self_test():
    """The runner must report a failing block and an unmarked unknown language, and skip an
    opted-out block."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "README.md")
        with open(path, "w") as f:
            f.write(SELF_TEST)
        r = subprocess.run([sys.executable, os.path.abspath(__file__), path], capture_output=True,
                           text=True)
        out = r.stdout + r.stderr
        want = ["README line 3 (c): exit status 3", "README line 7 (julia): no way to run",
                "README line 17 (python): exit status 4", "1 opted out"]
        missing = [w for w in want if w not in out]
        if r.returncode == 0 or missing or "exit status 1" in out:
            sys.exit(f"readme-snippets self-test failed (exit {r.returncode}, missing {missing}):\n{out}")
    print("readme-snippets self-test passed")


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        self_test()
        return
    list_only = "--list" in args
    args = [a for a in args if a != "--list"]
    readme = args[0] if args else os.path.join(ROOT, "README.md")
    found = blocks(readme)
    if list_only:
        for line, lang, _, opted_out in found:
            print(f"line {line}: {lang or '(none)'}{'  (opted out)' if opted_out else ''}")
        return

    work = tempfile.mkdtemp(prefix="unitfp8-readme-")
    home = os.path.join(work, "home")
    os.makedirs(home)
    env = dict(os.environ)
    real_home = os.path.expanduser("~")
    env.setdefault("CARGO_HOME", os.path.join(real_home, ".cargo"))
    env.setdefault("RUSTUP_HOME", os.path.join(real_home, ".rustup"))
    env["HOME"] = home
    python = os.environ.get("PYTHON", "python3")
    cc, cxx = os.environ.get("CC", "cc"), os.environ.get("CXX", "c++")
    failures, counts, last_cpp = [], {}, None
    try:
        for n, (line, lang, code, opted_out) in enumerate(found):
            name = f"block{n:02d}_line{line}"
            where = f"README line {line} ({lang or 'no language'})"
            if opted_out:
                print(f"\n--- {where}: opted out")
                counts["opted out"] = counts.get("opted out", 0) + 1
                continue
            if lang in NOT_CODE:
                continue
            if lang == "rust":
                counts["rust (doc tests)"] = counts.get("rust (doc tests)", 0) + 1
                continue
            print(f"\n--- {where}", flush=True)
            d = os.path.join(work, name)
            os.makedirs(d)
            try:
                if lang in ("sh", "bash"):
                    script = os.path.join(d, "block.sh")
                    envfile = os.path.join(d, "env")
                    with open(script, "w") as f:
                        f.write(code)
                    wrapper = f'set -euo pipefail; source "{script}"; env -0 > "{envfile}"'
                    print(code.rstrip(), flush=True)
                    run(["bash", "-c", wrapper], env, ROOT, where)
                    with open(envfile, "rb") as f:
                        items = [e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e]
                    env = {k.decode(): v.decode() for k, v in items}
                    env["HOME"] = home
                elif lang == "c":
                    src = os.path.join(d, "example.c")
                    with open(src, "w") as f:
                        f.write(code)
                    run(f'{cc} -std=c11 -Wall -Wextra -Werror -pedantic "{src}" -o "{d}/example" '
                        f"$(pkg-config --cflags --libs unitfp8) -lm", env, d, where)
                    run([os.path.join(d, "example")], env, d, where)
                elif lang in ("cpp", "c++"):
                    src = os.path.join(d, "main.cpp")
                    with open(src, "w") as f:
                        f.write(code)
                    last_cpp = src
                    run(f'{cxx} -std=c++17 -Wall -Wextra -Werror -pedantic "{src}" -o "{d}/example" '
                        f"$(pkg-config --cflags --libs unitfp8)", env, d, where)
                    run([os.path.join(d, "example")], env, d, where)
                elif lang == "cmake":
                    if last_cpp is None:
                        raise RuntimeError(f"{where}: no cpp block before this CMakeLists.txt")
                    with open(os.path.join(d, "CMakeLists.txt"), "w") as f:
                        f.write(code)
                    shutil.copy(last_cpp, os.path.join(d, "main.cpp"))
                    run(["cmake", "-S", d, "-B", os.path.join(d, "build"), "-DCMAKE_BUILD_TYPE=Release"],
                        env, d, where)
                    run(["cmake", "--build", os.path.join(d, "build")], env, d, where)
                    exe = [os.path.join(d, "build", e) for e in os.listdir(os.path.join(d, "build"))
                           if os.access(os.path.join(d, "build", e), os.X_OK)
                           and os.path.isfile(os.path.join(d, "build", e))]
                    if len(exe) != 1:
                        raise RuntimeError(f"{where}: expected one program in the build, found {exe}")
                    run(exe, env, d, where)
                elif lang == "python":
                    src = os.path.join(d, "example.py")
                    with open(src, "w") as f:
                        f.write(code)
                    run([python, src], env, d, where)
                else:
                    raise RuntimeError(f"{where}: no way to run '{lang}' here; mark the block "
                                       '"*Not run by the tests: REASON*" or use a runnable language')
                counts[lang] = counts.get(lang, 0) + 1
            except RuntimeError as e:
                print(f"FAILED: {e}", file=sys.stderr, flush=True)
                failures.append(str(e))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"\nREADME code blocks: {summary or 'none'}")
    if failures:
        sys.exit("README code blocks FAILED:\n  " + "\n  ".join(failures))
    print("README code blocks passed")


if __name__ == "__main__":
    main()
