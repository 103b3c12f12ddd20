"""Held-out evaluation: the CI formulas, splits training never samples, seed streams, caching, the CLI."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from spikeplastic.cli import main
from spikeplastic.meta import TrainConfig, Trainer, evaluate, load_checkpoint, read_result, train
from spikeplastic.meta.build import build_task
from spikeplastic.meta.checkpoint import save_checkpoint
from spikeplastic.meta.heldout import (
    HELD_OUT_SEED_OFFSET,
    evaluate_cached,
    held_out_seed,
    normal_interval,
    wilson_interval,
)
from spikeplastic.tasks import ImageTask, OneShotConfig, OneShotTask

#: 5-way 1-shot on 6x6 digits, a 4-unit RNN: a checkpoint in well under a second
ONESHOT = {"image_size": 6}
RNN = {"n_hidden": 4}


def _oneshot_run(out: Path, episodes: int = 2, seed: int = 0, **task_kw: Any) -> Path:
    train(TrainConfig(task="oneshot", model="rnn", episodes=episodes, seed=seed, out=str(out), progress=False,
                      task_kwargs={**ONESHOT, **task_kw}, model_kwargs=RNN))
    return out


@pytest.fixture
def sampled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Records ``(split, episode)`` of every ``OneShotTask.sample`` call."""
    calls: list[tuple[str, Any]] = []
    original = OneShotTask.sample

    def record(self: OneShotTask, *args: Any, **kw: Any) -> Any:
        ep = original(self, *args, **kw)
        calls.append((ep.info["split"], ep))
        return ep

    monkeypatch.setattr(OneShotTask, "sample", record)
    return calls


def test_wilson_interval_against_hand_computation() -> None:
    # 8/10: p = 0.8, z^2 = 3.8415, denom = 1.38415, centre = (0.8 + 0.19207) / denom = 0.71674,
    # half = z / denom * sqrt(0.016 + 0.0096036) = 1.41601 * 0.16001 = 0.22658
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == pytest.approx((0.71674 - 0.22658, 0.71674 + 0.22658), abs=1e-4)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # the published value for 8/10
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # not empty at k = 0
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    for bad in ((11, 10), (-1, 10), (0, 0)):
        with pytest.raises(ValueError, match="^[kn]:"):
            wilson_interval(*bad)


def test_normal_interval_against_hand_computation() -> None:
    # mean 2.5, s = sqrt(5/3) = 1.290994, half = 1.959964 * s / 2
    assert normal_interval([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, 1.959964 * 1.290994 / 2), rel=1e-6)
    m, h = normal_interval([0.3])
    assert m == 0.3 and math.isnan(h)


def test_oneshot_held_out_is_binomial_deterministic_and_on_test_classes(tmp_path: Path, sampled) -> None:
    run = _oneshot_run(tmp_path / "run")
    task = build_task(TrainConfig.from_dict(load_checkpoint(run)["config"]))
    train_classes, test_classes = set(task.split_items("train")), set(task.split_items("test"))
    assert train_classes and test_classes and not train_classes & test_classes
    trained = [ep for _, ep in sampled]
    assert trained and all(ep.info["split"] == "train" for ep in trained)
    assert all(set(ep.info["class_names"]) == train_classes for ep in trained)
    sampled.clear()

    a = evaluate(run, episodes=70, batch=32)
    assert [s for s, _ in sampled] == ["test"] * 3                                   # 32 + 32 + 6 episodes
    drawn = {ep.info["class_names"][c] for _, ep in sampled for c in ep.info["classes"].flatten().tolist()}
    assert drawn and drawn <= test_classes                                           # classes actually drawn
    assert a.n == len(a.values) == 70 and set(a.values) <= {0.0, 1.0}
    assert a.ci_method == "wilson" and a.correct == sum(a.values) and a.mean == a.correct / 70
    assert (a.ci_low, a.ci_high) == wilson_interval(a.correct, 70)
    assert a.split == "test" and a.split_checked is True and a.seed == held_out_seed(0) == HELD_OUT_SEED_OFFSET
    assert a.checkpoint_episode == 2 and a.task == "oneshot" and a.model == "rnn"
    b = evaluate(run / "checkpoint.pt", episodes=70, batch=32)                      # the file works as well
    assert b.values == a.values and b.mean == a.mean and b.model_sha256 == a.model_sha256
    assert "held-out metric" in a.line() and "Wilson" in a.line() and "n = 70" in a.line()
    assert evaluate(run, episodes=70, untrained=True).model_sha256 != a.model_sha256


def test_held_out_stream_is_not_the_training_stream(tmp_path: Path, sampled) -> None:
    """On the train split, the default stream gives other episodes than training drew; seeding the
    stream with the run's own seed reproduces training's first batch, so the stream is the difference."""
    run = _oneshot_run(tmp_path / "run", episodes=1, seed=5)
    first_train = sampled[0][1]
    sampled.clear()
    evaluate(run, episodes=1, split="train")
    held = sampled[-1][1]
    assert held.info["split"] == "train" and not torch.equal(held.inputs, first_train.inputs)
    evaluate(run, episodes=1, split="train", seed=5)
    assert torch.equal(sampled[-1][1].inputs, first_train.inputs)
    assert held_out_seed(5) not in {5, 5 + 1_000_003, 5 + 2_000_003, 5 + 2_000_004}


def test_trainer_samples_the_train_split_whatever_the_config_default(tmp_path: Path, sampled) -> None:
    cfg = TrainConfig(task="oneshot", model="rnn", episodes=2, batch=3, progress=False, eval_every=1,
                      task_kwargs={**ONESHOT, "split": "test"}, model_kwargs=RNN)
    Trainer(cfg).run()
    assert [s for s, _ in sampled] == ["train", "test", "train", "test"]           # steps, periodic evaluations
    # on the memory tasks `rnn` is the plastic net with plasticity off: at least one unit per pixel
    images = Trainer(TrainConfig(task="images", model="rnn", episodes=1, progress=False, model_kwargs={"n_hidden": 16},
                                 task_kwargs={"patch_size": 4, "present_steps": 1, "split": "test"}))
    original, seen = images.task.sample, []
    images.task.sample = lambda *a, **kw: seen.append(original(*a, **kw)) or seen[-1]  # type: ignore[method-assign]
    images.step()
    assert seen[0].info["split"] == "train" and isinstance(images.task, ImageTask)


def test_split_seed_is_the_run_seed(tmp_path: Path) -> None:
    cfg = TrainConfig(task="oneshot", model="rnn", seed=3, task_kwargs=ONESHOT)
    assert build_task(cfg).split_seed == 3  # type: ignore[union-attr]
    assert build_task(cfg.replace(task_kwargs={**ONESHOT, "split_seed": 7})).split_seed == 7  # type: ignore[union-attr]
    # the CLI hands train its own task object: it must hold the same split as the trainer's build
    out = tmp_path / "cli"
    assert main(["train", "--task", "oneshot", "--task-kw", "image_size=6", "--model", "rnn", "--model-kw",
                 "n_hidden=4", "--episodes", "1", "--seed", "2", "--no-progress", "--out", str(out)]) == 0
    want = OneShotTask(OneShotConfig(image_size=6, split_seed=2))
    assert load_checkpoint(out)["data_splits"] == {s: list(want.split_items(s)) for s in ("train", "test")}


def test_split_record_mismatch_is_an_error_and_its_absence_a_warning(tmp_path: Path) -> None:
    run = _oneshot_run(tmp_path / "run")
    ck = load_checkpoint(run)
    ck["data_splits"]["test"] = ck["data_splits"]["test"][::-1]
    save_checkpoint(run / "checkpoint.pt", ck)
    with pytest.raises(ValueError, match="other data splits than the run trained with .*test"):
        evaluate(run, episodes=4)
    del ck["data_splits"]
    save_checkpoint(run / "checkpoint.pt", ck)
    with pytest.warns(UserWarning, match="no record of its task's data splits"):
        res = evaluate(run, episodes=4)
    assert res.split_checked is False


def test_rl_held_out_values_are_episode_rewards(tmp_path: Path) -> None:
    out = tmp_path / "cue"
    train(TrainConfig(task="cue-small", model="rnn", episodes=1, batch=2, out=str(out), progress=False,
                      task_kwargs={"episode_steps": 8}, model_kwargs=RNN))
    a = evaluate(out, episodes=10, batch=4)
    assert a.n == len(a.values) == 10 and a.batch == 4 and a.actions == "sampled" and a.correct is None
    mean, half = normal_interval(a.values)
    assert a.ci_method == "normal" and a.mean == pytest.approx(mean) and a.half_width == pytest.approx(half)
    assert evaluate(out, episodes=10, batch=4).values == a.values
    assert a.split_checked is None and "RL task" in a.data and a.references is None


def test_pattern_held_out_carries_the_no_association_references(tmp_path: Path) -> None:
    """The pattern tasks' reference strategies, averaged over exactly the evaluated episodes (batches
    of unequal size weighted by size), are stored and shown; RL results carry none."""
    from spikeplastic.meta.heldout import held_out_episodes, prepare_evaluation
    from spikeplastic.tasks import PatternTask

    out = tmp_path / "p50"
    train(TrainConfig(task="pattern50", model="rate-hebb", episodes=1, out=str(out), progress=False))
    res = evaluate(out, episodes=10, batch=4)                       # batches of 4, 4, 2
    setup = prepare_evaluation(out)
    eps = list(held_out_episodes(setup, episodes=10, batch=4))
    assert [e.targets.shape[0] for e in eps] == [4, 4, 2]
    task = setup.task
    assert isinstance(task, PatternTask)
    want = {k: sum(task.reference_errors(e)[k] * e.targets.shape[0] for e in eps) / 10
            for k in ("copy_and_guess", "copy_and_last_shown")}
    assert res.references is not None and res.references.keys() == want.keys()
    for k in want:
        assert res.references[k] == pytest.approx(want[k], rel=1e-12)
    assert "copy_and_last_shown" in res.line()
    assert read_result(res.write(tmp_path / "r.json")).references == res.references


def test_evaluate_cached_reuses_only_the_same_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spikeplastic.meta.heldout as heldout

    run = _oneshot_run(tmp_path / "run", episodes=1)
    first = evaluate_cached(run, episodes=20)
    assert read_result(run / "held_out.json") == first
    calls = []
    real = heldout._evaluate_checkpoint
    monkeypatch.setattr(heldout, "_evaluate_checkpoint", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    assert evaluate_cached(run, episodes=20) == first and not calls               # reused
    stale = json.loads((run / "held_out.json").read_text())
    (run / "held_out.json").write_text(json.dumps({**stale, "version": stale["version"] - 1}))
    redone = evaluate_cached(run, episodes=20)                                     # another metric version:
    assert len(calls) == 1 and redone.values == first.values                      # evaluated again
    assert json.loads((run / "held_out.json").read_text())["version"] == stale["version"]
    calls.clear()
    evaluate_cached(run, episodes=21)
    assert len(calls) == 1                                                         # other settings: evaluated
    train(TrainConfig(task="oneshot", model="rnn", episodes=3, out=str(run), progress=False, task_kwargs=ONESHOT,
                      model_kwargs=RNN), resume=True)
    again = evaluate_cached(run, episodes=21)
    assert len(calls) == 2 and again.checkpoint_episode == 3                       # another network: evaluated


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="episodes"):
        evaluate("nowhere", episodes=0)
    with pytest.raises(ValueError, match="split"):
        evaluate("nowhere", split="val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch"):
        evaluate("nowhere", batch=0)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        evaluate("nowhere")


def test_cli_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _oneshot_run(tmp_path / "run", episodes=1)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--episodes", "40"]) == 0
    cap = capsys.readouterr()
    line = cap.out.strip()
    assert "\n" not in line and "held-out metric" in line and "95% CI" in line and "Wilson" in line
    assert "n = 40 episodes" in line and "split test" in line
    saved = json.loads((run / "held_out.json").read_text())
    assert saved["n"] == 40 and saved["ci_method"] == "wilson" and len(saved["values"]) == 40
    assert saved["ci_low"] <= saved["mean"] <= saved["ci_high"]
    assert main(["evaluate", str(run / "checkpoint.pt"), "--episodes", "40", "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["values"] == saved["values"]
    (tmp_path / "empty").mkdir()
    for argv, argument in ((["evaluate", str(tmp_path / "missing")], "RUN"),
                           (["evaluate", str(tmp_path / "empty")], "RUN"),
                           (["evaluate", str(run), "--episodes", "0"], "--episodes"),
                           (["evaluate", str(run), "--out", str(tmp_path)], "--out"),
                           (["evaluate", str(run), "--split", "val"], "--split"),
                           (["evaluate", str(run), "--data", str(tmp_path / "empty")], "--data")):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"argument {argument}" in err and "Traceback" not in err, (argv, err)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(bad)]) == 2
    assert "argument RUN" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint with its split record evaluates without warning
        assert main(["evaluate", str(run), "--episodes", "5", "--untrained", "--out", str(tmp_path / "u.json")]) == 0
