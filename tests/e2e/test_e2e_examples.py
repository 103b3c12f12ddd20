"""End-to-end smoke runs: the demo and every example script in a small configuration.

These are the CI-sized versions of the results runs (README "Results"); the full runs are the
scripts without ``--quick``. Each runs in a subprocess with one torch thread (two test workers
sharing 2 cores would otherwise oversubscribe them badly).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAVE_LAVA = __import__("importlib").util.find_spec("lava") is not None


def _run(args: list[str], tmp_path: Path, timeout: int = 600) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_demo_quick_trains_compares_exports_and_verifies(tmp_path: Path) -> None:
    stdout = _run(["examples/demo.py", "--quick", "--out", str(tmp_path / "demo")] + ([] if HAVE_LAVA else ["--no-lava"]),
                  tmp_path)
    assert "learned rule: A+=" in stdout
    assert (tmp_path / "demo" / "compare" / "results.md").exists()
    assert (tmp_path / "demo" / "compare" / "curves.png").exists()
    assert (tmp_path / "demo" / "export" / "network_ir.npz").exists()
    if HAVE_LAVA:
        assert "verify: ok" in stdout and "spike agreement 100.0000%" in stdout
        assert "hidden (50 neurons):" in stdout and "hidden_to_hidden:" in stdout


@pytest.mark.parametrize(
    "script,extra",
    [
        ("pattern.py", ["--episodes", "2"]),
        ("pattern50.py", ["--episodes", "3", "--seeds", "1"]),
        ("snn_pattern.py", ["--episodes", "3", "--seeds", "1"]),
        ("images.py", []),
        ("oneshot.py", []),
        ("maze.py", []),
        ("cue.py", ["--episodes", "3"]),
        ("grad_stability.py", []),
        ("snn_init.py", ["--seeds", "1"]),
    ],
)
def test_example_quick(script: str, extra: list[str], tmp_path: Path) -> None:
    _run([f"examples/{script}", "--quick", "--no-progress", "--out", str(tmp_path / "out"), *extra], tmp_path)
    produced = list((tmp_path / "out").rglob("*.json*"))
    assert produced, f"{script} wrote no results/metrics under {tmp_path / 'out'}"
