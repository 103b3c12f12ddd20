"""End-to-end smoke runs: the demo and every example script in a small configuration.

These are the CI-sized versions of the results runs (README "Results"); the full runs are the
scripts without ``--quick``. Each runs in a subprocess with one torch thread; the first test of this
module starts them all, two at a time (the CI machine has 2 cores and each run is single-threaded),
and every test then checks its own run's result.
"""
from __future__ import annotations

import json

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAVE_LAVA = __import__("importlib").util.find_spec("lava") is not None


EXAMPLES = [
    ("pattern.py", ["--episodes", "2"]),
    ("pattern50.py", ["--episodes", "3", "--seeds", "1"]),
    ("snn_pattern.py", ["--episodes", "3", "--seeds", "1"]),
    ("images.py", []),
    ("oneshot.py", [] if HAVE_LAVA else ["--no-lava"]),
    ("maze.py", []),
    ("cue.py", ["--episodes", "3"]),
    ("grad_stability.py", []),
    ("snn_init.py", ["--seeds", "1"]),
]


def _subprocess(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The selected runs of this module, started at once on a pool of two: ``{name: (future, out folder)}``."""
    here = Path(__file__).name
    selected = {item.callspec.params.get("script", "demo") if hasattr(item, "callspec") else "demo"
                for item in request.session.items if item.nodeid.split("::")[0].endswith(here)}
    root = tmp_path_factory.mktemp("e2e")
    jobs = {"demo": (["examples/demo.py", "--quick", "--out", str(root / "demo")] + ([] if HAVE_LAVA else ["--no-lava"]),
                     root / "demo")}
    for script, extra in EXAMPLES:
        out = root / script.removesuffix(".py")
        jobs[script] = ([f"examples/{script}", "--quick", "--no-progress", "--out", str(out), *extra], out)
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: (pool.submit(_subprocess, args), out) for name, (args, out) in jobs.items() if name in selected}


def _result(runs: dict[str, tuple[Future, Path]], name: str) -> tuple[str, Path]:
    fut, out = runs[name]
    res = fut.result()
    assert res.returncode == 0, f"{name} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout, out


def test_demo_quick_trains_compares_exports_and_verifies(runs) -> None:
    stdout, tmp_path = _result(runs, "demo")
    tmp_path = tmp_path.parent
    assert "learned rule: A+=" in stdout
    assert (tmp_path / "demo" / "compare" / "results.md").exists()
    assert (tmp_path / "demo" / "compare" / "curves.png").exists()
    assert (tmp_path / "demo" / "export" / "network_ir.npz").exists()
    if HAVE_LAVA:
        assert "verify: ok" in stdout and "spike agreement 100.0000%" in stdout
        assert "hidden (50 neurons):" in stdout and "hidden_to_hidden:" in stdout


@pytest.mark.parametrize("script", [s for s, _ in EXAMPLES])
def test_example_quick(script: str, runs) -> None:
    _, out = _result(runs, script)
    produced = list(out.rglob("*.json*"))
    assert produced, f"{script} wrote no results/metrics under {out}"


@pytest.mark.parametrize("script", ["oneshot.py"])
def test_oneshot_quick_runs_the_whole_path(script: str, runs) -> None:
    """examples/oneshot.py --quick: train, evaluate held out, and in Lava the same 40 episodes, with the
    spiking readout's spikes identical to its reference in every episode."""
    _, out = _result(runs, script)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"rate-oja", "snn-oneshot", "snn-oneshot-fixed"}
    for rows in summary.values():
        assert all(0.0 <= r["torch"] <= 1.0 for r in rows)
    if HAVE_LAVA:
        (row,) = summary["snn-oneshot"]
        assert row["lava_float_spikes_identical"] == 40 and row["lava_float_agree"] == 40, row
        (row,) = summary["snn-oneshot-fixed"]
        assert row["lava_fixed_spikes_identical"] == 40 and row["lava_float_spikes_identical"] == 40, row
