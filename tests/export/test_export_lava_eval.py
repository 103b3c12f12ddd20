"""evaluate_lava: a trained snn-oneshot run evaluated in Lava on the held-out episodes of `evaluate`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from export_cases import needs_lava
from spikeplastic.meta import TrainConfig, evaluate, train


def _run(tmp: Path, **model_kw: object) -> Path:
    out = tmp / "run"
    cfg = TrainConfig(task="oneshot-cpu", model="snn-oneshot", episodes=3, batch=4, lr=3e-4, seed=0,
                      task_kwargs={"image_size": 12}, model_kwargs=model_kw, out=str(out), progress=False)
    train(cfg)
    return out


@needs_lava
@pytest.mark.parametrize("lava", ["float", "fixed"])
def test_lava_evaluation_matches_its_references(tmp_path: Path, lava: str) -> None:
    from spikeplastic.export import evaluate_lava

    torch.manual_seed(0)
    run = _run(tmp_path, lava=lava)
    res = evaluate_lava(run, episodes=12, mode=lava, batch=12)
    # every episode: the readout's spikes equal the reference's (float: simulate in float64; fixed: the
    # bit-exact emulation of Lava's integer engine), with activity and learning in it
    assert res.spikes_identical == 12, res.line()
    assert res.lava_spikes == res.reference_spikes > 12 * 5, res.line()
    assert res.input_spikes > 0 and res.max_weight_change > 0, res.line()
    if lava == "float":  # float export: the trained torch model's predictions, episode for episode
        assert res.agree == 12 and res.correct == res.torch_correct, res.line()
        torch_res = evaluate(run, episodes=12, batch=12)
        assert torch_res.correct == res.torch_correct
    saved = json.loads((run / f"held_out_lava_{lava}.json").read_text())
    assert saved["correct"] == res.correct and saved["n"] == 12


@needs_lava
def test_lava_evaluation_refuses_other_models(tmp_path: Path) -> None:
    from spikeplastic.export import UnsupportedError, evaluate_lava

    out = tmp_path / "rate"
    train(TrainConfig(task="oneshot-cpu", model="rate-oja", episodes=1, batch=2, task_kwargs={"image_size": 12},
                      out=str(out), progress=False))
    with pytest.raises(UnsupportedError, match="supported: snn-oneshot"):
        evaluate_lava(out, episodes=2)
