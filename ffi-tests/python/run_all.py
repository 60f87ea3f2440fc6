"""Runs the Python FFI tests, each in a subprocess, once with UNITFP8_BACKEND=scalar (the
reference back end) and once with the default (best available) back end. Exits nonzero when
any run fails. Usage: python ffi-tests/python/run_all.py
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = ["test_reference.py", "test_ops.py"]


def main():
    failed = []
    start = time.perf_counter()
    for backend in ("scalar", None):
        env = dict(os.environ)
        env.pop("UNITFP8_BACKEND", None)
        if backend is not None:
            env["UNITFP8_BACKEND"] = backend
        for test in TESTS:
            label = f"{test} [{backend or 'default'} back end]"
            t = time.perf_counter()
            r = subprocess.run([sys.executable, os.path.join(HERE, test)], env=env)
            print(f"{'ok' if r.returncode == 0 else 'FAILED'}: {label} "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
            if r.returncode != 0:
                failed.append(label)
    print(f"python FFI tests: {len(failed)} failed, {time.perf_counter() - start:.1f} s")
    for f in failed:
        print(f"  FAILED {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
