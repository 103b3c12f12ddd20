"""The reliability campaign (``benchmarks/reliability.py``) at CI size, and checks that its judges can fail.

Part 1 (bad inputs) is ``test_reliability_bad_inputs.py``; here: export+verify cycles in one
process (3), SIGINT at random moments of ``spikeplastic train`` and ``spikeplastic verify`` (2 each),
a 10^4-step episode. Each test prints the campaign's figures; the full campaign is
``python benchmarks/reliability.py`` (results in ``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import reliability as campaign  # noqa: E402

from spikeplastic.export._compat import lava_available  # noqa: E402

needs_lava = pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
SIZES = campaign.QUICK


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Shared by the SIGINT parts: ``verify`` reads the checkpoint of ``train``'s uninterrupted run."""
    root = tmp_path_factory.mktemp("reliability")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _run(part: str, root: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    res, lines = campaign.run_part(part, SIZES, root)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    missed = [g for g, ok in campaign.goals({part: res}, SIZES) if not ok]
    assert not missed, "\n".join(missed + lines)
    return res


@pytest.mark.lava
@needs_lava
def test_export_verify_cycles_leave_no_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _run("cycles", tmp_path, capsys)
    assert r["cycles"] == SIZES.cycles and min(r["spikes_ref"]) > 0 and min(r["spikes_run"]) > 0
    # the RSS slope over 2 cycles is printed, not judged (goals() judges it from 20 cycles on)
    assert len(r["rss_mib"]) == SIZES.cycles


def test_sigint_during_train_then_resume_is_identical(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _run("sigint-train", workdir, capsys)
    s = campaign.sigint_summary(r)
    assert s["trials"] == SIZES.train_trials and s["identical"] == s["trials"]


@pytest.mark.lava
@needs_lava
def test_sigint_during_verify(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _run("sigint-verify", workdir, capsys)
    assert campaign.sigint_summary(r)["trials"] == SIZES.verify_trials


def test_long_episode_stays_finite(capsys: pytest.CaptureFixture[str]) -> None:
    r = _run("long", Path("."), capsys)
    assert [x["steps"] for x in r["runs"]] == [SIZES.long_steps] * len(SIZES.long_nets)
    assert all(x["spikes"] > 0 for x in r["runs"])


# ---- the judges can fail ------------------------------------------------------------------------

CHILD = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); "
         "time.sleep(60)")


def test_interrupt_sees_a_leftover_and_a_hang(tmp_path: Path) -> None:
    final = lambda err, out: False  # noqa: E731
    phase = lambda err, out, n, seen: "running"  # noqa: E731
    # a parent that dies of Ctrl-C, leaving a child that ignores it (started in a new session)
    parent = [sys.executable, "-c",
              f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {CHILD!r}], "
              "start_new_session=True); time.sleep(60)"]
    t = campaign.interrupt(parent, 1.5, "main", tmp_path / "leak", phase_of=phase, final=final, grace=1.0)
    assert t.rc not in (0, None) and not t.hung and len(t.leftovers) == 1, t
    # a process that ignores SIGINT: hung, killed after the timeout
    t = campaign.interrupt([sys.executable, "-c", CHILD], 1.0, "group", tmp_path / "hang", phase_of=phase,
                           final=final, timeout=1.0, grace=1.0)
    assert t.hung and t.rc == -9, t


def test_same_run_sees_a_changed_tensor_and_metric(workdir: Path, tmp_path: Path) -> None:
    ref = workdir / "train-ref"
    if not (ref / "checkpoint.pt").is_file():
        pytest.skip("needs the uninterrupted run of test_sigint_during_train_then_resume_is_identical")
    other = tmp_path / "other"
    shutil.copytree(ref, other)
    assert campaign.same_run(ref, other)[0]
    ck = torch.load(other / "checkpoint.pt", weights_only=True)
    k = next(iter(ck["model_state"]))
    ck["model_state"][k] = ck["model_state"][k].clone().flatten().add_(1e-7).view_as(ck["model_state"][k])
    torch.save(ck, other / "checkpoint.pt")
    ok, why = campaign.same_run(ref, other)
    assert not ok and "differ" in why
    shutil.copy(ref / "checkpoint.pt", other / "checkpoint.pt")
    lines = (other / "metrics.jsonl").read_text().splitlines()
    lines[-1] = lines[-1].replace('"episode"', '"episode_"')
    (other / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    ok, why = campaign.same_run(ref, other)
    assert not ok and "metrics" in why


def test_goals_can_be_missed() -> None:
    trial = dataclasses.asdict(campaign.Trial(0, 1.0, "group", rc=0, phase="in train()", leftovers=["pid 1"],
                                              identical=False))
    cycles = {"cycles": 30, "warmup": 5, "slope_mib": 0.5, "leftover": [0, 1] * 15, "ok": [True] * 29 + [False],
              "vacuous": 1}
    results = {"bad": {"clear": 81, "ran": 82}, "cycles": cycles,
               "sigint-train": {"kind": "train", "trials": [trial]},
               "sigint-verify": {"kind": "verify", "trials": [dict(trial, identical=None)]},
               "long": {"runs": [{"net": "x", "steps": 10, "target_steps": 10, "finite": False}]}}
    met = campaign.goals(results, SIZES)
    assert len(met) == 11 and not any(ok for _, ok in met), met
    # a run that ends by an error instead of the interrupt (judged from JUDGE_CLEAN_FROM trials on)
    other = dict(trial, rc=2, leftovers=[], identical=None)
    met = dict(campaign.goals({"sigint-verify": {"kind": "verify", "trials": [other] * campaign.JUDGE_CLEAN_FROM}},
                              SIZES))
    assert [ok for g, ok in met.items() if "ended as interrupted" in g] == [False], met
