"""The CLI and compare apply a task's preset per model: the paper's lr of each control, no clipping
where the original has none (clip 10 kept for our spiking models), the task's lr step decay unless
``--lr-decay``/``--lr-decay-every`` replace it."""
from __future__ import annotations

from spikeplastic.cli import main
from spikeplastic.meta import load_checkpoint
from spikeplastic.meta.compare import CompareConfig


def test_compare_takes_the_preset_of_each_model(tmp_path) -> None:
    cfg = CompareConfig(task="pattern50", models=("rate-hebb", "rnn", "snn-stdp"), episodes=2, out=str(tmp_path))
    got = {m: cfg.train_config(m, 0) for m in cfg.models}
    assert {m: (c.lr, c.clip) for m, c in got.items()} == {
        "rate-hebb": (3e-4, None), "rnn": (3e-5, None), "snn-stdp": (3e-4, 10.0)}
    maze13 = CompareConfig(task="maze13", models=("rnn",), episodes=2, out=str(tmp_path)).train_config("rnn", 0)
    assert (maze13.batch, maze13.clip, maze13.entropy_kind, maze13.entropy_coef, maze13.value_coef, maze13.adam_eps) == (
        30, 4.0, "simpson", 0.03, 0.1, 1e-4)
    over = CompareConfig(task="oneshot", models=("rnn",), episodes=2, out=str(tmp_path),
                         train_overrides={"lr_decay_every": 0}).train_config("rnn", 0)
    assert (over.lr_decay, over.lr_decay_every) == (0.666, 0)


def test_cli_train_uses_the_preset_and_explicit_flags_win(tmp_path) -> None:
    out = tmp_path / "p50"
    tiny = ["--episodes", "1", "--no-progress", "--checkpoint-every", "0"]
    assert main(["train", "--task", "pattern50", "--model", "rate-hebb", "--out", str(out), *tiny]) == 0
    cfg = load_checkpoint(out)["config"]
    assert (cfg["lr"], cfg["batch"], cfg["clip"], cfg["lr_decay_every"]) == (3e-4, 1, None, 0)
    out = tmp_path / "one"
    argv = ["train", "--task", "oneshot", "--model", "rnn", "--model-kw", "n_hidden=8", "--out", str(out), *tiny]
    assert main([*argv, "--clip", "5", "--lr-decay", "0.5"]) == 0
    cfg = load_checkpoint(out)["config"]
    assert (cfg["lr"], cfg["clip"], cfg["lr_decay"], cfg["lr_decay_every"]) == (3e-5, 5.0, 0.5, 1_000_000)
