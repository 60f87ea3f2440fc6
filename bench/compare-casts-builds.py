#!/usr/bin/env python3
"""A/B comparison of two builds of the casts / residual-mix benchmark.

Usage: bench/compare-casts-builds.py BASE_BENCH NEW_BENCH [ROUNDS [FILTER...]]

BASE_BENCH and NEW_BENCH are `unitfp8-bench` binaries (target/release/unitfp8-bench) built from
two commits, e.g. with `git worktree add /tmp/base <commit>` and
`CARGO_TARGET_DIR=/tmp/base-target cargo build --release -p unitfp8-bench` there. Each round runs
every FILTER (default: every kernel) on the base binary, then on the new one (`--quick
--no-python`), so the two builds see the same machine state; ROUNDS (default 3) such rounds.
Prints, per kernel, size and thread count, the median GB/s of each build over the rounds, the
ratio new/base and the per-round ratio range; in-cache rows also show cycles per element.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

if len(sys.argv) < 3:
    sys.exit(__doc__)
bins = {"base": sys.argv[1], "new": sys.argv[2]}
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
filters = sys.argv[4:] or [""]

res = {}
with tempfile.TemporaryDirectory() as tmp:
    for rnd in range(rounds):
        for flt in filters:
            for name, b in bins.items():
                out = os.path.join(tmp, f"{name}.json")
                cmd = [b, "--quick", "--no-python", "--json", out]
                if flt:
                    cmd += ["--filter", flt]
                subprocess.run(cmd, check=True, capture_output=True)
                for r in json.load(open(out))["results"]:
                    if r["kind"] != "unitfp8" or r["impl"] == "scalar":
                        continue
                    key = (r["label"], r["size"], r["threads"])
                    res.setdefault(key, {}).setdefault(name, []).append(
                        (r["gbps_median"], r.get("cycles_per_elem_per_thread"))
                    )
        print(f"round {rnd + 1} of {rounds} done", file=sys.stderr)

print(f"casts benchmark, {bins['new']} (new) vs {bins['base']} (base): GB/s, the median over "
      f"{rounds} rounds (builds alternated within each round; --quick sizes)")
print(f"{'kernel':<40} {'size':<6} {'thr':>3} {'base':>8} {'new':>8} {'ratio':>6}  per-round    cyc/el base→new")
for key in sorted(res):
    v = res[key]
    if "base" not in v or "new" not in v:
        continue
    base = [g for g, _ in v["base"]]
    new = [g for g, _ in v["new"]]
    ratios = [n / b for b, n in zip(base, new)]
    cyc = ""
    if key[1] == "cache" and v["base"][0][1] is not None:
        cb = statistics.median(c for _, c in v["base"])
        cn = statistics.median(c for _, c in v["new"])
        cyc = f"{cb:.2f}→{cn:.2f}"
    print(f"{key[0]:<40} {key[1]:<6} {key[2]:>3} {statistics.median(base):8.1f} "
          f"{statistics.median(new):8.1f} {statistics.median(new) / statistics.median(base):5.2f}x"
          f"  {min(ratios):.2f}-{max(ratios):.2f}   {cyc}")
