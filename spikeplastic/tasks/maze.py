"""Batched grid-maze exploration (Miconi et al. 2018 section 4.5; Backpropamine 2019 variant).

Layout (``size`` odd, >= 5): cell ``(r, c)`` is a wall if it is on the border (``r`` or ``c`` in
``{0, size-1}``) or an inner pillar (``r`` and ``c`` both even). The centre ``(size//2, size//2)``,
where the agent starts, is always free: for ``size = 9`` or ``13`` it falls on a pillar position,
and the original code clears it too.

Per episode (per batch element) a hidden reward cell is drawn uniformly among the free cells other
than the centre (``reward_excludes_centre``; the 2018 code allows the centre too). Each step, with action ``a`` in ``{0: up (row-1), 1: down (row+1), 2: left
(col-1), 3: right (col+1)}``::

    target = pos + delta[a]
    if wall[target]:  reward = -wall_penalty; pos unchanged          (wall hit)
    else:             reward = 0;            pos = target
    if pos == reward_cell: reward += reward_value; pos = teleport[t]  (random free cell, != reward cell
                                                                       if ``teleport_excludes_reward``)

Teleport destinations are drawn at :meth:`MazeTask.reset` for every step (``[B, T]``), so the
random stream used by a batch element does not depend on what the other elements do.

Observation ``[B, n_in]`` at step ``t`` (``t`` = steps taken so far), in this order:
``fov`` (9: the 3x3 neighbourhood of the agent, row-major, 1 = wall, 0 = free; the reward cell
is invisible), ``previous reward`` (0 after reset), ``time`` (``t / episode_steps`` with
``time_input="fraction"``, the raw step count ``t`` with ``"steps"``), ``bias`` (1), and -- if
``prev_action_input`` -- the previous action one-hot (4; zeros after reset).

Presets (sources in ``docs/REPRODUCTION.md``): :data:`MAZE` is the 2018 maze (``maze/maze.py`` of
uber-research/differentiable-plasticity: raw step count, no previous action, reward cell anywhere
free, teleport anywhere free, wall penalty 0.1); :data:`MAZE13` the Backpropamine one
(``maze/batch.py`` of uber-research/backpropamine: ``t / T``, previous action, no wall penalty).

Episode length ``T = episode_steps``; the harness calls :meth:`step` ``T`` times after
:meth:`reset`; a further call raises ``RuntimeError``. Discount ``gamma = 0.9``.
``success_threshold`` (total reward per episode) is a heuristic of ours (10 rewards), not a
number from the papers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..protocol import RLTask
from ._common import (
    as_device,
    check_action,
    check_batch,
    check_choice,
    check_float,
    check_generator,
    check_int,
    randint,
)

__all__ = ["MazeConfig", "MazeTask", "MazeState", "MAZE", "MAZE13", "maze_walls", "ACTION_DELTAS", "TIME_INPUTS"]

#: values of :attr:`MazeConfig.time_input`
TIME_INPUTS = ("fraction", "steps")

#: Row/column offsets of the 4 actions: up, down, left, right.
ACTION_DELTAS = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=torch.long)


@dataclass(frozen=True, kw_only=True)
class MazeConfig:
    """Maze parameters (keyword-only, frozen; unknown keys raise ``TypeError``).

    Attributes:
        size: side of the square grid (odd, >= 5).
        episode_steps: steps per episode (``T``).
        reward_value: reward for reaching the hidden cell.
        wall_penalty: subtracted when the agent bumps into a wall (reward ``-wall_penalty``).
        gamma: discount factor for A2C.
        prev_action_input: append the previous action one-hot to the observation.
        time_input: ``"fraction"`` (``t / episode_steps``) or ``"steps"`` (``t``, the 2018 code).
        reward_excludes_centre: the reward cell is never the start cell (Backpropamine); the
            2018 code draws it among all free cells.
        teleport_excludes_reward: the teleport destination is never the reward cell
            (Backpropamine); the 2018 code draws it among all free cells.
        success_threshold: total episode reward that counts as solved (heuristic).
    """

    size: int = 9
    episode_steps: int = 250
    reward_value: float = 10.0
    wall_penalty: float = 0.1
    gamma: float = 0.9
    prev_action_input: bool = True
    time_input: str = "fraction"
    reward_excludes_centre: bool = True
    teleport_excludes_reward: bool = True
    success_threshold: float = 100.0

    def __post_init__(self) -> None:
        check_int("size", self.size, minimum=5)
        if self.size % 2 == 0:
            raise ValueError(f"size must be odd (centre cell, pillars at even positions), got {self.size}")
        check_int("episode_steps", self.episode_steps, minimum=1)
        check_float("reward_value", self.reward_value)
        check_float("wall_penalty", self.wall_penalty)
        check_float("gamma", self.gamma, low=0.0, high=1.0)
        for name in ("prev_action_input", "reward_excludes_centre", "teleport_excludes_reward"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        check_choice("time_input", self.time_input, TIME_INPUTS)
        check_float("success_threshold", self.success_threshold)


#: Miconi et al. 2018 (``maze/maze.py``): 9x9, 250 steps, wall penalty 0.1, raw step count as the time
#: input, no previous-action input, reward and teleport cells drawn among all free cells.
MAZE = MazeConfig(prev_action_input=False, time_input="steps", reward_excludes_centre=False,
                  teleport_excludes_reward=False)
#: Backpropamine (2019, ``maze/batch.py`` run with ``--msize 13 --eplen 200 --wp 0.0``): 13x13, 200
#: steps, no wall penalty, ``t / T``, previous action.
MAZE13 = MazeConfig(size=13, episode_steps=200, wall_penalty=0.0)


def maze_walls(size: int) -> Tensor:
    """Bool ``[size, size]`` wall map: border, pillars at even ``(r, c)``, centre cleared."""
    check_int("size", size, minimum=5)
    idx = torch.arange(size)
    border = (idx == 0) | (idx == size - 1)
    even = idx % 2 == 0
    walls = border[:, None] | border[None, :] | (even[:, None] & even[None, :])
    walls[size // 2, size // 2] = False
    return walls


class MazeState(NamedTuple):
    """Snapshot of the batched environment (tensors on the episode's device).

    Attributes:
        pos: ``[B, 2]`` agent (row, col). reward_pos: ``[B, 2]``. teleports: ``[B, T, 2]``
        destination used if the reward is found at step ``t``. t: steps taken.
        prev_reward: ``[B]``. prev_action: ``[B]`` (-1 after reset).
    """

    pos: Tensor
    reward_pos: Tensor
    teleports: Tensor
    t: int
    prev_reward: Tensor
    prev_action: Tensor


class MazeTask(RLTask):
    """The batched maze as an :class:`RLTask` (dynamics and observation layout in the module docstring).

    Example::

        env = MazeTask(MAZE13)
        obs = env.reset(30, torch.Generator().manual_seed(0))      # [30, 16]
        obs, reward = env.step(torch.zeros(30, dtype=torch.long))   # everyone tries to move up
    """

    def __init__(self, config: MazeConfig = MAZE, *, name: str = "maze") -> None:
        if not isinstance(config, MazeConfig):
            raise TypeError(f"config must be a MazeConfig, got {type(config).__name__}")
        self.config = config
        self.name = name
        self.n_actions = 4
        self.n_in = 9 + 3 + (self.n_actions if config.prev_action_input else 0)
        self.reward_input = 9  # fov (9), previous reward, ...
        self.T = config.episode_steps
        self.gamma = config.gamma
        self.success_threshold = config.success_threshold
        self.walls = maze_walls(config.size)
        self.free_cells = self.walls.logical_not().nonzero()          # [n_free, 2], row-major order
        self._state: MazeState | None = None

    @property
    def state(self) -> MazeState:
        if self._state is None:
            raise RuntimeError("call reset() before step()/state")
        return self._state

    def _free_index_excluding(self, excluded: Tensor | None, shape: tuple[int, ...], g: torch.Generator,
                              dev: torch.device) -> Tensor:
        """Uniform free-cell indices ``[*shape]`` avoiding ``excluded`` (broadcastable; ``None``:
        any free cell): draw from ``n_free - 1`` and skip over the excluded index."""
        if excluded is None:
            return randint(0, self.free_cells.shape[0], shape, g, dev)
        u = randint(0, self.free_cells.shape[0] - 1, shape, g, dev)
        return u + (u >= excluded).long()

    def reset(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        b = check_batch(batch)
        g = check_generator(generator)
        dev = as_device(device)
        size = self.config.size
        free = self.free_cells.to(dev)
        self.walls = self.walls.to(dev)
        self.free_cells = free
        centre = size // 2
        centre_idx = ((free[:, 0] == centre) & (free[:, 1] == centre)).nonzero()[0, 0]
        cfg = self.config
        reward_idx = self._free_index_excluding(centre_idx if cfg.reward_excludes_centre else None, (b,), g, dev)
        tele_idx = self._free_index_excluding(reward_idx.unsqueeze(1) if cfg.teleport_excludes_reward else None,
                                              (b, self.T), g, dev)                          # [B, T]
        self._state = MazeState(
            pos=torch.full((b, 2), centre, dtype=torch.long, device=dev),
            reward_pos=free[reward_idx],
            teleports=free[tele_idx],
            t=0,
            prev_reward=torch.zeros(b, device=dev),
            prev_action=torch.full((b,), -1, dtype=torch.long, device=dev),
        )
        return self._observe(self._state)

    def _observe(self, s: MazeState) -> Tensor:
        b = s.pos.shape[0]
        dev = s.pos.device
        off = torch.arange(-1, 2, device=dev)
        rows = (s.pos[:, 0:1] + off).unsqueeze(2).expand(b, 3, 3)
        cols = (s.pos[:, 1:2] + off).unsqueeze(1).expand(b, 3, 3)
        fov = self.walls[rows, cols].reshape(b, 9).float()
        parts = [
            fov,
            s.prev_reward.unsqueeze(1),
            torch.full((b, 1), float(s.t) if self.config.time_input == "steps" else s.t / self.T, device=dev),
            torch.ones(b, 1, device=dev),
        ]
        if self.config.prev_action_input:
            parts.append(F.one_hot(s.prev_action.clamp_min(0), self.n_actions).float() * (s.prev_action >= 0).unsqueeze(1))
        return torch.cat(parts, dim=1)

    def step(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """Apply ``action`` ``[B]`` (int64 in ``0..3``); returns ``(obs [B, n_in], reward [B])``."""
        s = self.state
        action = check_action(action, s.pos.shape[0], self.n_actions, s.t, self.T, s.pos.device)
        cfg = self.config
        target = s.pos + ACTION_DELTAS.to(s.pos.device)[action]
        hit = self.walls[target[:, 0], target[:, 1]]
        pos = torch.where(hit.unsqueeze(1), s.pos, target)
        reward = torch.where(hit, -cfg.wall_penalty, 0.0)
        found = (pos == s.reward_pos).all(dim=1)
        reward = reward + cfg.reward_value * found.float()
        pos = torch.where(found.unsqueeze(1), s.teleports[:, s.t], pos)
        self._state = s._replace(pos=pos, t=s.t + 1, prev_reward=reward, prev_action=action)
        return self._observe(self._state), reward
