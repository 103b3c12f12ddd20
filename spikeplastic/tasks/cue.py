"""Batched cue-reward association (Backpropamine, Miconi et al. 2019, ICLR; TASKS.md section 5).

Follows the episode generator of the original code (uber-research/backpropamine, ``sr/srbatch.py``,
the "stimulus-response" task run with ``--ni 4 --cs 20 --eplen 120 --rew 1 --wp 0 --pf 0``);
written from its rules, no code copied. Where TASKS.md is silent, the original's rules apply.

Per episode (per batch element): ``n_cues = 4`` cues in ``{-1,+1}^cue_bits`` (20 bits), each bit
uniform, redrawn until the cues of the episode are **all different** (as in the original); one of
them, ``target``, is drawn uniformly.

Trials follow one another back to back from step 0 (the agent's state is never reset inside an
episode). Each trial has a length ``L`` uniform in ``{trial_min..trial_max}`` = ``{5..8}`` (the
original's ``ni // 2 + 3 + randint(ni)``) and, in local steps ``k = 0..L-1``::

    k = 0           blank (no cue)
    k = 1..L-3      ``cues_per_trial = 2`` distinct cues, drawn uniformly among the 4 and each shown
                    once, plus L-5 blank steps, in a uniformly random order
    k = L-2         Go step: Go input = 1, cue bits 0. The action taken on this step is judged:
                    respond (action 1) when the target was among the trial's cues -> +1, rest
                    (action 0) when it was not -> +1, anything else -> -1
                    (``reward_correct`` / ``reward_wrong``)
    k = L-1         blank; the Go step's reward is visible here as "previous reward"

The trial "shows the target" with probability ``cues_per_trial / n_cues = 1/2``. Every action
other than rest, on any step, also costs ``action_penalty`` (the original's ``wp``, default 0).
All other steps give reward 0. The episode lasts ``episode_steps = 120`` steps; a trial cut off
before its Go step gives no reward. (The original's reward-flip probability ``pf`` is 0 in the
paper's runs and is not implemented.)

Observation ``[B, n_in]`` at step ``t`` (steps taken so far), ``n_in = cue_bits + 6``, in this
order: cue bits (``cue_bits``; zeros when no cue), Go (1), bias (1), time (``t / episode_steps``),
previous reward (0 after reset), previous action one-hot (2; zeros after reset). This is the
original's input vector without its one unused slot. Actions: ``n_actions = 2`` (0 = rest,
1 = respond). ``gamma = 0.9`` (the original's ``gr``). ``success_threshold`` (total reward per
episode; about 18.5 Go steps per episode on average) is a heuristic of ours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..protocol import RLTask
from ._common import as_device, check_action, check_batch, check_float, check_generator, check_int, rand, randint

__all__ = ["CueConfig", "CueTask", "CueState", "CUE", "CUE_CPU", "CUE_SMALL", "RESPOND", "REST"]

RESPOND = 1
REST = 0

_MAX_REDRAWS = 10_000


@dataclass(frozen=True, kw_only=True)
class CueConfig:
    """Cue-reward parameters (keyword-only, frozen; unknown keys raise ``TypeError``).

    Attributes:
        n_cues: cues per episode (>= 2; at most ``2 ** cue_bits`` so that they can all differ).
        cue_bits: bits per cue.
        cues_per_trial: distinct cues shown in each trial (``1..n_cues``; the original shows
            ``n_cues // 2``).
        trial_min, trial_max: trial length range in steps
            (``trial_min >= cues_per_trial + 3``: leading blank, cues, Go, trailing blank).
        episode_steps: steps per episode (``T``).
        reward_correct, reward_wrong: rewards for a correct / wrong response at Go.
        action_penalty: subtracted from the reward of every step whose action is not rest (>= 0).
        gamma: A2C discount. success_threshold: total episode reward counted as solved (heuristic).
    """

    n_cues: int = 4
    cue_bits: int = 20
    cues_per_trial: int = 2
    trial_min: int = 5
    trial_max: int = 8
    episode_steps: int = 120
    reward_correct: float = 1.0
    reward_wrong: float = -1.0
    action_penalty: float = 0.0
    gamma: float = 0.9
    success_threshold: float = 12.0

    def __post_init__(self) -> None:
        check_int("n_cues", self.n_cues, minimum=2)
        check_int("cue_bits", self.cue_bits, minimum=1)
        if self.cue_bits < 63 and self.n_cues > 2**self.cue_bits:
            need = math.ceil(math.log2(self.n_cues))
            raise ValueError(f"n_cues ({self.n_cues}) distinct cues need cue_bits >= {need}, got {self.cue_bits}")
        check_int("cues_per_trial", self.cues_per_trial, minimum=1)
        if self.cues_per_trial > self.n_cues:
            raise ValueError(f"cues_per_trial must be <= n_cues ({self.n_cues}), got {self.cues_per_trial}")
        check_int("trial_min", self.trial_min, minimum=self.cues_per_trial + 3)
        check_int("trial_max", self.trial_max, minimum=self.trial_min)
        check_int("episode_steps", self.episode_steps, minimum=1)
        check_float("reward_correct", self.reward_correct)
        check_float("reward_wrong", self.reward_wrong)
        check_float("action_penalty", self.action_penalty, low=0.0)
        check_float("gamma", self.gamma, low=0.0, high=1.0)
        check_float("success_threshold", self.success_threshold)


#: Backpropamine's cue-reward task.
CUE = CueConfig()

#: A reduced cue-reward task that a 2-core CPU can meta-train (task id ``cue-small``): 2 cues of
#: 10 bits, 1 shown per trial, trials of 4-6 steps, 60-step episodes (about 12 Go steps). The
#: target is still unknown at the start of each episode and must be found from reward alone;
#: unlike ``cue`` one rewarded trial identifies it. ``success_threshold``: half the Go steps.
CUE_SMALL = CueConfig(n_cues=2, cue_bits=10, cues_per_trial=1, trial_min=4, trial_max=6, episode_steps=60,
                      success_threshold=6.0)

#: A CPU reduction that keeps what the cue task tests (task id ``cue-cpu``; issue 16): 4 cues, 2
#: shown per trial and trials of 5-8 steps as in ``cue``, so one rewarded trial leaves two candidate
#: targets and the agent must combine evidence from several trials; a shorter code (10 bits instead
#: of 20) and 80-step episodes (about 12 Go steps, ``cue``: about 18.5). ``success_threshold``: half
#: the Go steps, as ``cue-small``.
CUE_CPU = CueConfig(n_cues=4, cue_bits=10, cues_per_trial=2, trial_min=5, trial_max=8, episode_steps=80,
                    success_threshold=6.0)


class CueState(NamedTuple):
    """Snapshot of the batched environment.

    Attributes:
        cues: ``[B, n_cues, cue_bits]`` (all different within an episode). target: ``[B]``.
        cue_at: ``[B, T+1]`` cue index shown at each step (-1: none).
        go_at: ``[B, T+1]`` bool, Go steps. target_shown_at: ``[B, T+1]`` bool, whether the
        current trial shows the target (at every step of the trial, also before its cues).
        trial_lengths: ``[B, M]`` drawn trial lengths (enough trials to cover steps ``0..T``).
        t: steps taken. prev_reward: ``[B]``. prev_action: ``[B]`` (-1 after reset).
    """

    cues: Tensor
    target: Tensor
    cue_at: Tensor
    go_at: Tensor
    target_shown_at: Tensor
    trial_lengths: Tensor
    t: int
    prev_reward: Tensor
    prev_action: Tensor


def _distinct_cues(b: int, n: int, bits: int, g: torch.Generator, dev: torch.device) -> Tensor:
    """``[b, n, bits]`` random +-1 cues, all different within each row (rejection: a cue equal to
    an earlier one of its row is redrawn until none is)."""
    cues = torch.where(rand((b, n, bits), g, dev) < 0.5, 1.0, -1.0)
    earlier = torch.ones(n, n, dtype=torch.bool, device=dev).tril(-1)  # [i, j]: j < i
    for _ in range(_MAX_REDRAWS):
        same = (cues.unsqueeze(2) == cues.unsqueeze(1)).all(dim=-1)  # [b, i, j]
        dup = (same & earlier).any(dim=-1)                            # [b, i]
        if not bool(dup.any()):
            return cues
        fresh = torch.where(rand((b, n, bits), g, dev) < 0.5, 1.0, -1.0)
        cues = torch.where(dup.unsqueeze(-1), fresh, cues)
    raise RuntimeError(f"could not draw {n} distinct {bits}-bit cues")  # pragma: no cover


def _permutations(shape: tuple[int, ...], g: torch.Generator, dev: torch.device, mask: Tensor | None = None) -> Tensor:
    """Uniform random orderings of ``range(shape[-1])`` (argsort of uniforms, stable on ties);
    entries where ``mask`` is False are sorted last."""
    u = rand(shape, g, dev)
    if mask is not None:
        u = torch.where(mask, u, 2.0)
    return u.argsort(dim=-1, stable=True)


class CueTask(RLTask):
    """Cue-reward association as an :class:`RLTask` (timeline in the module docstring)."""

    def __init__(self, config: CueConfig = CUE, *, name: str = "cue") -> None:
        if not isinstance(config, CueConfig):
            raise TypeError(f"config must be a CueConfig, got {type(config).__name__}")
        self.config = config
        self.name = name
        self.n_actions = 2
        self.n_in = config.cue_bits + 4 + self.n_actions
        self.reward_input = config.cue_bits + 3  # cue bits, Go, bias, time, previous reward, ...
        self.T = config.episode_steps
        self.gamma = config.gamma
        self.success_threshold = config.success_threshold
        self._state: CueState | None = None

    @property
    def state(self) -> CueState:
        if self._state is None:
            raise RuntimeError("call reset() before step()/state")
        return self._state

    def reset(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        cfg = self.config
        b = check_batch(batch)
        g = check_generator(generator)
        dev = as_device(device)
        c = cfg.cues_per_trial
        n_slots = cfg.trial_max - 3                            # local steps 1..L-3 at most
        n_trials = math.ceil((self.T + 1) / cfg.trial_min)    # enough trials to cover steps 0..T

        cues = _distinct_cues(b, cfg.n_cues, cfg.cue_bits, g, dev)
        target = randint(0, cfg.n_cues, (b,), g, dev)
        lengths = randint(cfg.trial_min, cfg.trial_max + 1, (b, n_trials), g, dev)      # [B, M]
        # which cues each trial shows (a uniform ordered c-subset of the n_cues) ...
        shown = _permutations((b, n_trials, cfg.n_cues), g, dev)[..., :c]               # [B, M, c]
        # ... and in which of its L-3 slots (a uniform ordered c-subset of the valid slots)
        valid = torch.arange(n_slots, device=dev) < (lengths - 3).unsqueeze(-1)          # [B, M, S]
        where = _permutations((b, n_trials, n_slots), g, dev, valid)[..., :c]           # [B, M, c]
        slot_cue = torch.full((b, n_trials, n_slots), -1, dtype=torch.long, device=dev)
        slot_cue.scatter_(2, where, shown)
        has_target = (shown == target.view(b, 1, 1)).any(dim=-1)                         # [B, M]

        starts = lengths.cumsum(dim=1) - lengths                                          # [B, M]
        steps = torch.arange(self.T + 1, device=dev).unsqueeze(0).expand(b, -1).contiguous()
        trial = torch.searchsorted(starts, steps, right=True) - 1                         # [B, T+1]
        local = steps - starts.gather(1, trial)
        length = lengths.gather(1, trial)
        in_slots = (local >= 1) & (local <= length - 3)
        slot = (local - 1).clamp(0, n_slots - 1)
        flat = trial * n_slots + slot
        cue_at = torch.where(in_slots, slot_cue.view(b, -1).gather(1, flat), -1)
        self._state = CueState(
            cues=cues,
            target=target,
            cue_at=cue_at,
            go_at=local == length - 2,
            target_shown_at=has_target.gather(1, trial),
            trial_lengths=lengths,
            t=0,
            prev_reward=torch.zeros(b, device=dev),
            prev_action=torch.full((b,), -1, dtype=torch.long, device=dev),
        )
        return self._observe(self._state)

    def _observe(self, s: CueState) -> Tensor:
        b = s.cues.shape[0]
        dev = s.cues.device
        idx = s.cue_at[:, s.t]
        bits = s.cues[torch.arange(b, device=dev), idx.clamp_min(0)] * (idx >= 0).unsqueeze(1)
        prev_a = F.one_hot(s.prev_action.clamp_min(0), self.n_actions).float() * (s.prev_action >= 0).unsqueeze(1)
        return torch.cat(
            [
                bits,
                s.go_at[:, s.t].float().unsqueeze(1),
                torch.ones(b, 1, device=dev),
                torch.full((b, 1), s.t / self.T, device=dev),
                s.prev_reward.unsqueeze(1),
                prev_a,
            ],
            dim=1,
        )

    def step(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """Apply ``action`` ``[B]`` (int64, 0 = rest, 1 = respond); returns ``(obs [B, n_in], reward [B])``."""
        s = self.state
        action = check_action(action, s.cues.shape[0], self.n_actions, s.t, self.T, s.cues.device)
        cfg = self.config
        correct = (action == RESPOND) == s.target_shown_at[:, s.t]
        reward = torch.where(correct, cfg.reward_correct, cfg.reward_wrong)
        reward = torch.where(s.go_at[:, s.t], reward, 0.0)
        if cfg.action_penalty:
            reward = reward - cfg.action_penalty * (action != REST).to(reward.dtype)
        self._state = s._replace(t=s.t + 1, prev_reward=reward, prev_action=action)
        return self._observe(self._state), reward
