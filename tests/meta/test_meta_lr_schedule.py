"""Step decay of the learning rate: the schedule, its use by the trainer, resume and the CLI."""
from __future__ import annotations

import json

import pytest

from spikeplastic.meta.config import TrainConfig
from spikeplastic.meta.trainer import Trainer


def _cfg(**kw: object) -> TrainConfig:
    d = dict(task="pattern", model="rate-hebb", episodes=7, batch=2, lr=1e-2, lr_decay=0.5, lr_decay_every=3,
             progress=False, task_kwargs={"n_bits": 8, "n_patterns": 2})
    d.update(kw)
    return TrainConfig(**d)  # type: ignore[arg-type]


def test_lr_at_is_steplr() -> None:
    cfg = _cfg()
    assert [cfg.lr_at(k) for k in range(7)] == [1e-2] * 3 + [5e-3] * 3 + [2.5e-3]
    assert _cfg(lr_decay_every=0).lr_at(10**6) == 1e-2


def test_trainer_applies_the_schedule() -> None:
    tr = Trainer(_cfg())
    lrs = []
    for _ in range(7):
        rec = tr.step()
        lrs.append((rec["lr"], tr.optimizer.param_groups[0]["lr"]))
    assert [a for a, _ in lrs] == [1e-2] * 3 + [5e-3] * 3 + [2.5e-3]
    assert all(a == b for a, b in lrs)
    assert "lr" not in Trainer(_cfg(lr_decay_every=0)).step()  # constant lr: the log is unchanged


def test_resume_continues_the_schedule(tmp_path) -> None:
    full = Trainer(_cfg(out=str(tmp_path / "a")))
    full.run()
    Trainer(_cfg(out=str(tmp_path / "b"), episodes=4)).run()
    Trainer(_cfg(out=str(tmp_path / "b"))).run(resume=True)
    rows = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in "ab"]
    assert [r["lr"] for r in rows[0]] == [r["lr"] for r in rows[1]]
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]]
    with pytest.raises(ValueError, match="lr_decay"):
        Trainer(_cfg(out=str(tmp_path / "b"), lr_decay=0.9, episodes=9)).run(resume=True)


@pytest.mark.parametrize("kw, match", [({"lr_decay": 0.0}, "lr_decay"), ({"lr_decay": 1.5}, "lr_decay"),
                                       ({"lr_decay_every": -1}, "lr_decay_every")])
def test_bad_schedule_names_the_field(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _cfg(**kw)


def test_cli_rejects_a_bad_factor(capsys: pytest.CaptureFixture[str]) -> None:
    from spikeplastic.cli import main

    assert main(["train", "--task", "pattern", "--model", "rate-hebb", "--lr-decay", "2"]) == 2
    err = capsys.readouterr().err
    assert "--lr-decay" in err and "(0, 1]" in err, err
