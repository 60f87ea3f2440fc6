#!/usr/bin/env python3
"""One-screen summary of a benchmark run: each kernel's ratio to its limit and to each peer,
next to the project's goal for it, marked met / not met.

    python3 bench/summary.py DIR        (DIR holds casts.json, gemm.json, threads.json)

The goals (GOALS below):
  casts and mixes   in cache: f32 -> E4M3 <= 1 cycle/element, FP8 -> f32 <= 0.5;
                    at DRAM size on all threads: >= 90% of the copy bandwidth of the same bytes;
                    faster than every peer (ratio >= 1x) on one thread at DRAM size
  GEMM              squares of 2048 and up: >= 85% of the vdpbf16ps peak measured in the same
                    run; the muS training shapes: >= 80%; faster than every peer (>= 1x)
  threads           GEMM 1024^3 on all threads (the worker pool) >= 1.5x one thread (hot calls)
A missing file or peer is reported as such, not counted.
"""

import json
import os
import sys

GOALS = {
    "cache_cycles": {"f32_e4m3": 1.0, "e4m3_f32": 0.5},
    "dram_pct_copy_all_threads": 90.0,
    "peer_ratio": 1.0,
    "gemm_square_pct_peak": (2048, 85.0),
    "gemm_mus_pct_peak": 80.0,
    "threads_gemm_1024_speedup": 1.5,
}


def load(d, name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mark(ok):
    return "met" if ok else "NOT MET"


def casts(data, lines, tally):
    best = data["machine"]["best_backend"]
    rows = [r for r in data["results"] if r["impl"] == best]
    threads = max(r["threads"] for r in rows)
    lines.append(f"Casts and residual mix ({best}). Goals: cache cycles/element as listed; DRAM on "
                 f"{threads} threads >= {GOALS['dram_pct_copy_all_threads']:.0f}% of copy; "
                 f"faster than each peer (DRAM, 1 thread)")
    lines.append(f"  {'kernel':<32} {'cache cyc/el':>17} {'DRAM %copy':>15} "
                 f"{'x rust':>7} {'x ml_dt':>7} {'x torch':>7} {'peers':>7}")
    kernels = []
    for r in rows:
        if r["kernel"] not in kernels:
            kernels.append(r["kernel"])
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    rx = lambda v: f"{'-':>7}" if v is None else f"{v:6.1f}x"
    for k in kernels:
        get = lambda size, t: next((r for r in rows if r["kernel"] == k and r["size"] == size
                                    and r["threads"] == t), None)
        c1, d1, dn = get("cache", 1), get("dram", 1), get("dram", threads)
        cyc = c1["cycles_per_elem_per_thread"] if c1 else None
        cyc_txt = fmt(cyc, ".2f")
        if k in GOALS["cache_cycles"] and cyc is not None:
            ok = cyc <= GOALS["cache_cycles"][k]
            cyc_txt += f" <={GOALS['cache_cycles'][k]} {'met' if ok else 'NOT'}"
            tally.append(ok)
        pct = dn["pct_of_copy"] if dn else None
        pct_txt = "-" if pct is None else f"{pct:.0f}%"
        if pct is not None:
            ok = pct >= GOALS["dram_pct_copy_all_threads"]
            pct_txt += f" {'met' if ok else 'NOT MET'}"
            tally.append(ok)
        ratios = {"rust": d1.get("speedup_vs_rust_peer") if d1 else None}
        ratios.update((d1 or {}).get("speedup_vs_python_peers") or {})
        measured = [v for v in ratios.values() if v is not None]
        peers_txt = "-"
        if measured:
            ok = min(measured) >= GOALS["peer_ratio"]
            peers_txt = mark(ok)
            tally.append(ok)
        lines.append(f"  {(d1 or c1 or {}).get('label', k):<32} {cyc_txt:>17} {pct_txt:>15} "
                     f"{rx(ratios.get('rust'))} {rx(ratios.get('ml_dtypes'))} "
                     f"{rx(ratios.get('torch'))} {peers_txt:>7}")
    lines.append("  % copy above 100%: large kernels write with streaming (non-temporal) stores, which skip")
    lines.append("  reading the destination into the cache; the copy yardstick does (write-allocate).")
    if not any("torch" in (r.get("speedup_vs_python_peers") or {}) for r in rows):
        lines.append("  PyTorch peer not measured: UNITFP8_BENCH_TORCH=1 bench/run.sh adds it.")


def gemm(data, lines, tally):
    size_goal, pct_goal = GOALS["gemm_square_pct_peak"]
    mus_goal = GOALS["gemm_mus_pct_peak"]
    lines.append(f"FP8 GEMM ({data['kernel']}), % of the vdpbf16ps peak measured next to each product. "
                 f"Goals: squares >= {size_goal}: {pct_goal:.0f}%; muS shapes: {mus_goal:.0f}%; "
                 f"faster than each peer")
    pct = lambda r: 100.0 * r["gflops"] / r["peak_gflops"] if r["peak_gflops"] > 0 else float("nan")
    for t in sorted({r["threads"] for r in data["gemm"]}):
        all_squares = [r for r in data["gemm"] if r["threads"] == t and r["name"] == "square"]
        squares = [r for r in all_squares if r["m"] >= size_goal]
        if squares:
            ok = all(pct(r) >= pct_goal for r in squares)
            tally.append(ok)
            txt = ", ".join(f"{r['m']}^3 {pct(r):.0f}% ({r['gflops']:.0f} GFLOP/s)" for r in squares)
            lines.append(f"  {t} thread(s): {txt}: {mark(ok)}")
        elif all_squares:
            # A quick run stops below the goal's sizes: show the largest square, no verdict.
            squares = [max(all_squares, key=lambda r: r["m"])]
            r = squares[0]
            lines.append(f"  {t} thread(s): {r['m']}^3 {pct(r):.0f}% ({r['gflops']:.0f} GFLOP/s) "
                         f"(the goal is for {size_goal}^3 and up, not measured in this run)")
        else:
            lines.append(f"  {t} thread(s):")
        mus = [r for r in data["gemm"] if r["threads"] == t and r["name"].startswith("muS")]
        if mus:
            lo, hi = min(pct(r) for r in mus), max(pct(r) for r in mus)
            ok = lo >= mus_goal
            tally.append(ok)
            lines.append(f"      muS 1B shapes (fwd, bwd-data, bwd-weight): {lo:.0f}-{hi:.0f}%: {mark(ok)}")
        by_op = {}
        for r in squares:
            for p in data["peers"]:
                if p["threads"] == t and p["n"] == r["m"] and p["gflops"] > 0:
                    by_op.setdefault(p["op"], []).append(r["gflops"] / p["gflops"])
        for op, ratios in sorted(by_op.items()):
            ok = min(ratios) >= GOALS["peer_ratio"]
            tally.append(ok)
            lines.append(f"      x {op}: {' / '.join(f'{x:.2f}' for x in ratios)}: {mark(ok)}")
    if any(pct(r) > 100 for r in data["gemm"]):
        lines.append("  (above 100%: the peak measured next to that product was lowered by other load)")
    if not any(p["op"].startswith("torch") for p in data["peers"]):
        lines.append("  PyTorch peers not measured: UNITFP8_BENCH_TORCH=1 bench/run.sh adds them.")


def threads(data, lines, tally):
    lines.append(f"Thread hand-off ({data['threads']} threads vs 1, hot calls)")
    for c in data["cases"]:
        if c["call"].startswith("GEMM") and ("1024" in c["call"] or c is data["cases"][-1]):
            sp = c["hot_us"]["1 thread"] / c["hot_us"]["pool"]
            goal = GOALS["threads_gemm_1024_speedup"]
            ok = sp >= goal
            tally.append(ok)
            lines.append(f"  {c['call']:<24} pool {sp:.2f}x one thread  >= {goal}x {mark(ok)}")
            return


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    lines, tally = [], []
    lines.append(f"=== Summary of {d}/ (ratios from the same run; goals in bench/summary.py) ===")
    for name, fn in (("casts.json", casts), ("gemm.json", gemm), ("threads.json", threads)):
        data = load(d, name)
        if data is None:
            lines.append(f"{name}: not found or unreadable")
        else:
            try:
                fn(data, lines, tally)
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
                lines.append(f"{name}: cannot summarise ({type(e).__name__}: {e})")
        lines.append("")
    lines.append(f"goals met: {sum(tally)} of {len(tally)}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
