"""Smoke test of examples/torch_mus/train.py on a tiny model: the `run` and `seeds` commands
finish, write what they promise, and `seeds` computes exactly what `run --init-seed S` does."""

import csv
import math
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "torch_mus", "train.py")
TINY = ["--steps", "4", "--width", "32", "--layers", "1", "--heads", "2", "--ctx", "16", "--batch", "4",
        "--corpus-chars", "6000", "--eval-every", "4", "--eval-batches", "1", "--base-width", "32"]


def _train(*args, out):
    r = subprocess.run([sys.executable, TRAIN, *args, *TINY, "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.skipif(not os.path.exists(TRAIN), reason="examples/torch_mus is not beside this package's tests")
def test_run_and_seeds_agree(tmp_path):
    out = _train("seeds", "--seeds", "2", out=tmp_path)
    rows = _rows(tmp_path / "seeds_w32.csv")
    assert [r["init_seed"] for r in rows] == ["1", "2"]
    for r in rows:
        f8, f32 = float(r["mus_fp8_val_loss"]), float(r["mus_f32_val_loss"])
        assert math.isfinite(f8) and math.isfinite(f32) and f8 > 0 and f32 > 0
        assert abs(float(r["fp8_vs_f32_percent"]) - 100 * (f8 / f32 - 1)) < 0.01
    assert "on average" in out
    # the seeds command trains exactly what `run --init-seed 2` trains, for both variants
    for variant, column in (("mus_fp8", "mus_fp8_val_loss"), ("mus_f32", "mus_f32_val_loss")):
        _train("run", "--variant", variant, "--init-seed", "2", out=tmp_path)
        summary = _rows(tmp_path / f"run_{variant}_world1_summary.csv")[0]
        assert summary["steps"] == "4"
        assert f"{float(summary['final_val_loss']):.5f}" == rows[1][column]
        curve = _rows(tmp_path / f"run_{variant}_world1.csv")
        assert len(curve) == 4 and all(math.isfinite(float(c["train_loss"])) for c in curve)
