"""The A2C loss of :func:`a2c_episode` against the formula written out by hand (both penalties)."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from meta_toys import Bandit
from spikeplastic.meta import TrainConfig
from spikeplastic.meta.episodes import a2c_episode
from spikeplastic.protocol import EpisodeModel


class Recorder(EpisodeModel):
    """A linear policy/value head on the observation that records what it output."""

    def __init__(self) -> None:
        super().__init__()
        self.n_in, self.n_out = 3, 3
        self.lin = nn.Linear(3, 3)
        self.outs: list[Tensor] = []

    def initial_state(self, batch: int) -> None:
        return None

    def step(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        out = self.lin(x.to(self.lin.weight.dtype))
        self.outs.append(out)
        return out, None

    def forward(self, inputs: Tensor, state: None = None) -> tuple[Tensor, None]:
        return torch.stack([self.step(x, None)[0] for x in inputs]), None


@pytest.mark.parametrize("kind", ["shannon", "simpson"])
def test_a2c_loss_matches_the_formula(kind: str) -> None:
    torch.manual_seed(0)
    model, task = Recorder().double(), Bandit(T=6)
    gen, agen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    res = a2c_episode(model, task, 4, gen, agen, torch.device("cpu"), value_coef=0.3, entropy_coef=0.2,
                      entropy_kind=kind)
    # replay: the same cues (task generator) and the same actions (inverse CDF of the same uniforms)
    task2 = Bandit(T=6)
    task2.reset(4, torch.Generator().manual_seed(1))
    agen2 = torch.Generator().manual_seed(2)
    total = torch.zeros((), dtype=torch.float64)
    logps, vals, pens, rews = [], [], [], []
    for out in model.outs:
        z, v = out[:, :2], out[:, 2]
        pi = torch.softmax(z, dim=-1)
        u = torch.rand(4, generator=agen2)
        a = (pi[:, 0] < u).long()  # two actions: a = 1 when u falls past pi_0
        _, r = task2.step(a)
        logps.append(torch.log(pi.gather(1, a[:, None]).squeeze(1)))
        vals.append(v)
        pens.append((pi * torch.log(pi)).sum(-1) if kind == "shannon" else (pi ** 2).sum(-1))
        rews.append(r.double())
    R, acc = [], torch.zeros(4, dtype=torch.float64)
    for r in reversed(rews):
        acc = r + 0.9 * acc
        R.insert(0, acc)
    for t in range(6):
        adv = R[t] - vals[t]
        total = total + (-logps[t] * adv.detach() + 0.3 * adv ** 2 + 0.2 * pens[t]).mean()
    ref = total / 6
    torch.testing.assert_close(res.loss, ref, rtol=1e-12, atol=1e-12)
    assert res.metric == pytest.approx(float(torch.stack(rews).sum(0).mean()))


def test_bad_entropy_kind_and_adam_eps() -> None:
    with pytest.raises(ValueError, match="entropy_kind"):
        a2c_episode(Recorder(), Bandit(), 2, torch.Generator(), torch.Generator(), torch.device("cpu"),
                    entropy_kind="gini")
    with pytest.raises(ValueError, match="entropy_kind"):
        TrainConfig(task="cue", model="rnn", entropy_kind="gini")
    with pytest.raises(ValueError, match="adam_eps"):
        TrainConfig(task="cue", model="rnn", adam_eps=0.0)


def test_cue_defaults_follow_the_original_runs() -> None:
    from spikeplastic.meta.compare import CompareConfig

    cfg = CompareConfig(task="cue", models=("rnn",), episodes=1, out="/tmp/unused").train_config("rnn", 0)
    assert (cfg.clip, cfg.entropy_kind, cfg.entropy_coef, cfg.adam_eps, cfg.lr, cfg.batch) == (
        2.0, "simpson", 0.1, 1e-6, 1e-4, 30)
    other = CompareConfig(task="pattern50", models=("rnn",), episodes=1, out="/tmp/unused").train_config("rnn", 0)
    # pattern50's original clips nothing (docs/REPRODUCTION.md); the A2C defaults stay the config's
    assert (other.clip, other.entropy_kind, other.adam_eps) == (None, "shannon", 1e-8)
