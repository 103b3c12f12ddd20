"""``grad_top`` in metrics.jsonl: on a step whose gradient norm exceeds ``GRAD_TOP_ABOVE``, the
parameter holding the largest part of the squared norm (to find where gradient spikes come from)."""
from __future__ import annotations

import json

import pytest
import torch

from spikeplastic.meta import TrainConfig
from spikeplastic.meta import trainer as trainer_mod
from spikeplastic.meta.trainer import Trainer


def _trainer(tmp_path, episodes: int = 2) -> Trainer:
    cfg = TrainConfig(task="pattern50", model="rate-hebb", episodes=episodes, out=str(tmp_path), log_every=1,
                      task_kwargs={"n_bits": 8, "n_patterns": 2, "present_steps": 2, "gap_steps": 1, "test_steps": 2})
    return Trainer(cfg)


def test_grad_top_names_the_largest_gradient(tmp_path) -> None:
    tr = _trainer(tmp_path)
    names = tr.param_names
    assert len(names) >= 2
    for k, p in enumerate(tr.params):
        p.grad = torch.full_like(p, 1e-3)
    big = len(tr.params) - 1
    tr.params[big].grad = torch.zeros_like(tr.params[big])
    tr.params[big].grad.view(-1)[0] = 10.0
    name, share = tr._grad_top()
    expected = 100.0 / (100.0 + sum(1e-6 * p.numel() for k, p in enumerate(tr.params) if k != big))
    assert name == names[big]
    assert share == pytest.approx(expected, rel=1e-12)


def test_logged_only_above_the_threshold(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_mod, "GRAD_TOP_ABOVE", 0.0)
    tr = _trainer(tmp_path / "low")
    tr.run()
    recs = [json.loads(x) for x in (tmp_path / "low" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["phase"] == "train"]
    assert len(train) == 2 and all(r["grad_norm"] > 0 for r in train)
    assert all(r["grad_top"][0] in tr.param_names and 0 < r["grad_top"][1] <= 1 for r in train)
    monkeypatch.setattr(trainer_mod, "GRAD_TOP_ABOVE", float("inf"))
    tr = _trainer(tmp_path / "high")
    tr.run()
    recs = [json.loads(x) for x in (tmp_path / "high" / "metrics.jsonl").read_text().splitlines()]
    assert not any("grad_top" in r for r in recs)
