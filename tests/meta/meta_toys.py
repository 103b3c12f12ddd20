"""Tiny tasks and models for the harness tests (fast, deterministic)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from spikeplastic.protocol import Episode, EpisodeModel, RLTask, SupervisedTask

#: a small pattern task: 8 bits, 2 patterns, one cycle, T = 2*(6+4)+6 = 26
TINY_PATTERN = {"n_bits": 8, "n_patterns": 2, "cycles": 1}


class Recall(SupervisedTask):
    """Show a random +-1 vector at step 0, then zeros; the target is that vector at the last step."""

    name = "recall"
    success_threshold = 0.1
    higher_is_better = False

    def __init__(self, n: int = 4, T: int = 3, nan_on_call: int | None = None) -> None:
        self.n_in = self.n_out = n
        self.T = T
        self.nan_on_call = nan_on_call
        self.calls = 0

    def sample(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Episode:
        v = torch.where(torch.rand(batch, self.n_in, generator=generator) < 0.5, 1.0, -1.0)
        x = torch.zeros(self.T, batch, self.n_in)
        x[0] = v
        return Episode(inputs=x.to(device), targets=v.to(device))

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        self.calls += 1
        loss = ((outputs[-1] - episode.targets) ** 2).sum(-1).mean()
        if self.nan_on_call is not None and self.calls == self.nan_on_call:
            return loss * float("nan")
        return loss

    def metric(self, outputs: Tensor, episode: Episode) -> float:
        return float((torch.sign(outputs[-1]) != episode.targets).float().mean())


class Bandit(RLTask):
    """A contextual bandit: a one-hot cue each step; reward 1 for the action equal to the cue."""

    name = "bandit"
    n_actions = 2
    gamma = 0.9
    success_threshold = 4.5

    def __init__(self, T: int = 5) -> None:
        self.n_in = 3
        self.T = T
        self._cues: Tensor | None = None
        self._t = 0

    def _obs(self) -> Tensor:
        assert self._cues is not None
        c = self._cues[:, min(self._t, self.T - 1)]
        return torch.cat([nn.functional.one_hot(c, 2).float(), torch.ones(c.shape[0], 1)], dim=1)

    def reset(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        self._cues = torch.randint(0, 2, (batch, self.T), generator=generator)
        self._t = 0
        return self._obs()

    def step(self, action: Tensor) -> tuple[Tensor, Tensor]:
        assert self._cues is not None
        r = (action == self._cues[:, self._t]).float()
        self._t += 1
        return self._obs(), r


class InfGrad(EpisodeModel):
    """Outputs ``sqrt(p)`` with ``p`` reaching 0 on a chosen call: an infinite gradient."""

    def __init__(self, n: int = 4, bad_call: int = 2) -> None:
        super().__init__()
        self.n_in = self.n_out = n
        self.p = nn.Parameter(torch.ones(n))
        self.bad_call = bad_call
        self.calls = 0

    def initial_state(self, batch: int) -> Tensor:
        self.calls += 1
        return torch.zeros(batch, self.n_in)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        p = self.p * 0.0 if self.calls == self.bad_call else self.p
        return torch.sqrt(p).expand_as(x) * 0.5 + 0 * state, state
