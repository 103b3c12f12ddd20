"""Bad input to the trainer, checkpoints and the CLI: a clear error before any work, and nothing lost.

- a fresh run refuses a folder that holds a run (``resume``/``overwrite`` say what to do); the
  run's bytes are unchanged after the refusal;
- an unreadable checkpoint gives one line naming the file (CLI: exit 2), never torch's advice to
  load with ``weights_only=False``;
- a run whose every step was skipped as NaN/inf fails (CLI: exit 1) and says so;
- a parameter that becomes NaN/inf stops training with its name; the last good checkpoint is kept.
"""
from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from meta_toys import TINY_PATTERN, Recall
from spikeplastic.baselines import RNN
from spikeplastic.cli import main
from spikeplastic.meta import CheckpointError, TrainConfig, Trainer, TrainingError, load_checkpoint, train
from spikeplastic.meta.compare import CompareConfig, compare

TINY = ["--task", "pattern", "--task-kw", "n_bits=8", "--task-kw", "n_patterns=2", "--task-kw", "cycles=1",
        "--no-progress"]
RUN_FILES = ("checkpoint.pt", "metrics.jsonl")


def _cfg(**kw) -> TrainConfig:
    d = dict(task="pattern", model="rnn", episodes=2, batch=2, progress=False,
             task_kwargs=TINY_PATTERN, model_kwargs={"n_hidden": 8})
    d.update(kw)
    return TrainConfig(**d)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in RUN_FILES}


class _Obj:
    """Not a tensor or plain data: ``weights_only`` loading refuses it."""


def _corrupt(tmp: Path, kind: str) -> Path:
    """A file named checkpoint.pt in its own folder that is not a readable checkpoint."""
    folder = tmp / kind.replace(" ", "-")
    folder.mkdir()
    p = folder / "checkpoint.pt"
    if kind in ("empty", "truncated"):
        torch.save({"format": "spikeplastic-checkpoint", "x": torch.zeros(100)}, p)
        p.write_bytes(b"" if kind == "empty" else p.read_bytes()[:200])
    elif kind == "text":
        p.write_text("not a checkpoint\n")
    elif kind == "pickled objects":
        torch.save({"a": collections.OrderedDict(), "obj": _Obj()}, p)
    elif kind == "zip, not torch":
        import zipfile

        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("readme.txt", "hello")
    elif kind == "no format tag":
        torch.save({"model_state": {}}, p)
    elif kind == "newer version":
        torch.save({"format": "spikeplastic-checkpoint", "version": 99}, p)
    elif kind == "incomplete":
        torch.save({"format": "spikeplastic-checkpoint", "version": 1}, p)
    else:
        raise AssertionError(kind)
    return p


CORRUPT = {
    "empty": "empty (0 bytes)", "truncated": "truncated", "text": "not a torch file",
    "pickled objects": "Python objects other than tensors", "zip, not torch": "not a torch file",
    "no format tag": "not a spikeplastic checkpoint", "newer version": "version 99", "incomplete": "lacks",
}


# ---- checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(CORRUPT))
def test_unreadable_checkpoint_is_one_clear_line(tmp_path: Path, kind: str) -> None:
    p = _corrupt(tmp_path, kind)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert str(p) in msg and CORRUPT[kind] in msg, msg
    assert "\n" not in msg and "weights_only" not in msg, msg


# ---- the output folder ---------------------------------------------------------------------------

def test_fresh_run_refuses_a_folder_holding_a_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(out=str(out)))
    before = _bytes(out)
    with pytest.raises(FileExistsError, match="resume=True.*overwrite=True"):
        train(_cfg(out=str(out), seed=1))
    assert _bytes(out) == before  # nothing lost
    with pytest.raises(ValueError, match="resume=True and overwrite=True"):
        train(_cfg(out=str(out)), resume=True, overwrite=True)
    assert _bytes(out) == before
    train(_cfg(out=str(out), seed=1), overwrite=True)
    assert _bytes(out) != before and load_checkpoint(out)["config"]["seed"] == 1


def test_a_metrics_log_alone_counts_as_a_run(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"phase": "train", "episode": 1}\n')
    with pytest.raises(FileExistsError, match="metrics.jsonl"):
        train(_cfg(out=str(tmp_path)))
    assert (tmp_path / "metrics.jsonl").read_text() == '{"phase": "train", "episode": 1}\n'


def test_out_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="out: expected a folder"):
        Trainer(_cfg(out=str(f)))
    with pytest.raises(ValueError, match="out: expected a folder"):
        compare(CompareConfig(task="pattern", models=("rnn",), episodes=1, seeds=1, out=str(f),
                              task_kwargs=TINY_PATTERN, progress=False))
    assert f.read_text() == "x"


def test_learning_rate_bound() -> None:
    for lr in (3e38, float("inf"), 1.5):
        with pytest.raises(ValueError, match="lr"):
            _cfg(lr=lr)
    assert _cfg(lr=1.0).lr == 1.0


# ---- non-finite training -------------------------------------------------------------------------

class _NanLoss(Recall):
    def loss(self, outputs: torch.Tensor, episode) -> torch.Tensor:
        return super().loss(outputs, episode) * float("nan")


def test_a_run_whose_every_step_was_skipped_fails(tmp_path: Path) -> None:
    torch.manual_seed(0)
    with pytest.raises(TrainingError, match="every one of the 3 optimiser steps .* skipped"):
        train(_cfg(task="recall", episodes=3, out=str(tmp_path)), task=_NanLoss(), model=RNN(4, 4, n_hidden=6))
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3  # the log says which steps


class _Poisoned(RNN):
    """Writes inf into its input weight during the ``at``-th forward (a model bug, or an optimiser gone wrong)."""

    def __init__(self, *a, at: int, **kw) -> None:
        super().__init__(*a, **kw)
        self.calls, self.at = 0, at

    def forward(self, inputs, state=None):
        self.calls += 1
        out = super().forward(inputs, state)
        if self.calls == self.at:
            with torch.no_grad():
                dict(self.named_parameters())["w_in.weight"].fill_(float("inf"))
        return out


def test_nonfinite_parameter_stops_training_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _Poisoned(4, 4, n_hidden=6, at=5)
    with pytest.raises(TrainingError) as e:
        train(_cfg(task="recall", episodes=8, checkpoint_every=2, out=str(tmp_path)), task=Recall(), model=model)
    assert e.value.parameter == "w_in.weight" and "'w_in.weight'" in str(e.value)
    assert "episode 5" in str(e.value) and e.value.checkpoint == tmp_path / "checkpoint.pt"
    ck = load_checkpoint(tmp_path)  # the last good checkpoint: episode 4, all finite, loadable
    assert ck["episode"] == 4
    assert all(bool(torch.isfinite(v).all()) for v in ck["model_state"].values())
    fresh = RNN(4, 4, n_hidden=6)
    fresh.load_state_dict(ck["model_state"])


def test_nonfinite_initial_parameter_is_refused_before_training() -> None:
    model = RNN(4, 4, n_hidden=6)
    with torch.no_grad():
        model.w_in.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="w_in.weight"):
        Trainer(_cfg(task="recall"), task=Recall(), model=model)


# ---- the command line ----------------------------------------------------------------------------

def _err_line(err: str, command: str) -> str:
    lines = [s for s in err.splitlines() if s.startswith(f"spikeplastic {command}")]
    assert lines and "Traceback" not in err and "weights_only" not in err, err
    return lines[-1]


def test_cli_train_into_a_held_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["train", *TINY, "--model", "rnn", "--model-kw", "n_hidden=8", "--episodes", "2", "--out", str(out)]
    assert main(argv) == 0
    before = _bytes(out)
    capsys.readouterr()
    assert main([*argv, "--seed", "1"]) == 2
    line = _err_line(capsys.readouterr().err, "train")
    assert "argument --out" in line and "--resume" in line and "--overwrite" in line and str(out) in line
    assert _bytes(out) == before
    assert main([*argv, "--resume", "--overwrite"]) == 2
    assert "argument --overwrite" in capsys.readouterr().err and _bytes(out) == before
    assert main([*argv, "--seed", "1", "--overwrite"]) == 0
    assert load_checkpoint(out)["config"]["seed"] == 1


def test_cli_compare_into_held_runs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", *TINY, "--models", "rnn", "--model-kw", "n_hidden=8", "--episodes", "1", "--seeds", "1",
            "--eval-episodes", "8", "--out", str(out)]
    assert main(argv) == 0
    run = out / "runs" / "rnn" / "seed0"
    before = _bytes(run)
    capsys.readouterr()
    assert main(argv) == 2
    line = _err_line(capsys.readouterr().err, "compare")
    assert "argument --out" in line and "--overwrite" in line
    assert _bytes(run) == before
    assert main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "pickled objects"])
def test_cli_resume_from_an_unreadable_checkpoint(tmp_path: Path, kind: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    p = _corrupt(tmp_path, kind)
    content = p.read_bytes()
    argv = ["train", *TINY, "--model", "rnn", "--model-kw", "n_hidden=8", "--episodes", "2", "--out", str(p.parent)]
    assert main([*argv, "--resume"]) == 2
    line = _err_line(capsys.readouterr().err, "train")
    assert "argument --resume" in line and str(p) in line and CORRUPT[kind] in line, line
    assert p.read_bytes() == content


@pytest.mark.parametrize("command", ["plot", "export", "verify"])
def test_cli_reading_an_unreadable_checkpoint(tmp_path: Path, command: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    if command != "plot":
        pytest.importorskip("spikeplastic.export.cli_commands")
    p = _corrupt(tmp_path, "empty")
    argv = [command, str(p)] + (["--out", str(tmp_path / "o")] if command == "export" else [])
    assert main(argv) == 2
    line = _err_line(capsys.readouterr().err, command)
    assert str(p) in line and "empty" in line, line


@pytest.mark.parametrize("argv,argument", [
    (["train", *TINY, "--model", "rnn", "--out", "{file}"], "--out"),
    (["compare", *TINY, "--models", "rnn", "--out", "{file}"], "--out"),
    (["plot", "{run}", "--out", "{dir}"], "--out"),
])
def test_cli_out_of_the_wrong_kind(tmp_path: Path, argv: list[str], argument: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    (tmp_path / "run").mkdir()
    torch.save({"format": "spikeplastic-checkpoint"}, tmp_path / "run" / "checkpoint.pt")
    argv = [a.format(file=f, dir=tmp_path, run=tmp_path / "run") for a in argv]
    assert main(argv) == 2
    assert f"argument {argument}" in _err_line(capsys.readouterr().err, argv[0])
    assert f.read_text() == "x"


def test_cli_export_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("spikeplastic.export.cli_commands")
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["export", str(f), "--out", str(f)]) == 2
    assert "argument --out" in _err_line(capsys.readouterr().err, "export")


@pytest.mark.parametrize("extra,argument,expect", [
    (["--lr", "3e38"], "--lr", "(0, 1]"),
    (["--lr", "inf"], "--lr", "(0, 1]"),
    (["--lr", "nan"], "--lr", "(0, 1]"),
    (["--model-kw", "alpha_init=nan"], "--model-kw", "alpha_init"),
    (["--model-kw", "input_gain=inf"], "--model-kw", "input_gain"),
    (["--model-kw", "input_gain=-Infinity"], "--model-kw", "input_gain"),
    (["--model-kw", "w_init_std=nan"], "--model-kw", "w_init_std"),
    (["--model-kw", "stdp={'a_plus': 0.0}"], "--model-kw", "a_plus"),
    (["--model-kw", "lif={'bias': 1e999}"], "--model-kw", "bias"),
    (["--model-kw", "lif=float('nan')"], "--model-kw", "lif: expected a mapping"),
])
def test_cli_nonfinite_numbers(tmp_path: Path, extra: list[str], argument: str, expect: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", *TINY, "--model", "snn-stdp", "--episodes", "1", "--out", str(out), *extra]) == 2
    line = _err_line(capsys.readouterr().err, "train")
    assert f"argument {argument}" in line and expect in line, line
    assert not out.exists()  # refused before any work


def test_cli_all_skipped_run_exits_nonzero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from spikeplastic.tasks.pattern import PatternTask

    real = PatternTask.loss
    monkeypatch.setattr(PatternTask, "loss", lambda self, o, e: real(self, o, e) * float("nan"))
    out = tmp_path / "run"
    assert main(["train", *TINY, "--model", "rnn", "--model-kw", "n_hidden=8", "--episodes", "2",
                 "--out", str(out)]) == 1
    line = _err_line(capsys.readouterr().err, "train")
    assert "skipped" in line and "did not train" in line, line


def test_cli_nonfinite_parameter_exits_nonzero_and_keeps_the_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = torch.optim.Adam.step
    calls = {"n": 0}

    def step(self, closure=None):  # an optimiser step that overflows on its 3rd call
        out = real(self, closure)
        calls["n"] += 1
        if calls["n"] == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--model", "rnn", "--model-kw", "n_hidden=8", "--episodes", "6",
                 "--checkpoint-every", "2", "--out", str(out)]) == 1
    line = _err_line(capsys.readouterr().err, "train")
    assert "became NaN/inf at episode 3" in line and "episode 2) is kept" in line, line
    ck = load_checkpoint(out)
    assert ck["episode"] == 2 and all(bool(torch.isfinite(v).all()) for v in ck["model_state"].values())


def test_compare_worker_reports_a_failed_run_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from spikeplastic.meta import _worker
    from spikeplastic.tasks.pattern import PatternTask

    real = PatternTask.loss
    monkeypatch.setattr(PatternTask, "loss", lambda self, o, e: real(self, o, e) * float("nan"))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(_cfg(out=str(tmp_path / "run")).to_dict()))
    assert _worker.main([str(cfg), str(tmp_path / "run.json")]) == 1
    err = capsys.readouterr().err
    assert "TrainingError: every one of the 2 optimiser steps" in err and "Traceback" not in err
    assert not (tmp_path / "run.json").exists()
