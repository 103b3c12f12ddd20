"""Cue-reward association: trial timeline, observation layout, reward logic."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from spikeplastic.tasks import CUE, CueConfig, CueTask
from spikeplastic.tasks.cue import RESPOND, REST


def _rollout(env: CueTask, first_obs: torch.Tensor, policy):
    """Run a full episode; returns observations ``[T+1, B, n_in]`` and rewards ``[T, B]``."""
    obs = [first_obs]
    rewards = []
    for t in range(env.T):
        o, r = env.step(policy(t, obs[-1]))
        obs.append(o)
        rewards.append(r)
    return torch.stack(obs), torch.stack(rewards)


def test_sizes() -> None:
    env = CueTask(CUE)
    assert (env.n_in, env.n_actions, env.T) == (20 + 1 + 1 + 1 + 1 + 2, 2, 120)


def test_timeline_from_observations(gen) -> None:
    """Observed sequence per trial of length L: cue A, cue B (!= A), Go, then L-3 blank steps."""
    env = CueTask(CUE)
    b = 16
    first = env.reset(b, gen(0))
    s = env.state
    obs, _ = _rollout(env, first, lambda t, o: torch.zeros(b, dtype=torch.long))
    cue_bits, go = obs[:, :, :20], obs[:, :, 20]
    for i in range(b):
        # expected layout built only from the drawn trial lengths
        kind: list[str] = []
        for length in s.trial_lengths[i].tolist():
            assert 5 <= length <= 8
            kind += ["A", "B", "go"] + ["blank"] * (length - 3)
        kind = kind[: env.T + 1]
        for t, k in enumerate(kind):
            assert go[t, i].item() == float(k == "go")
            if k in ("A", "B"):
                idx = int(s.cue_at[i, t])
                assert idx >= 0 and torch.equal(cue_bits[t, i], s.cues[i, idx])
                if k == "B":
                    assert idx != int(s.cue_at[i, t - 1])
            else:
                assert int(s.cue_at[i, t]) == -1 and (cue_bits[t, i] == 0).all()
    # other inputs: bias, time, previous action one-hot (always "rest" here)
    assert (obs[:, :, 21] == 1).all()
    assert_close(obs[:, 0, 22], torch.arange(env.T + 1) / env.T)
    assert (obs[0, :, 24:] == 0).all() and (obs[1:, :, 24] == 1).all() and (obs[1:, :, 25] == 0).all()


def test_reward_logic_hand_worked(gen) -> None:
    """The rule, checked against the cues actually shown before each Go."""
    env = CueTask(CUE)
    b = 32
    first = env.reset(b, gen(1))
    s = env.state
    actions = torch.randint(0, 2, (env.T, b), generator=gen(7))
    obs, rewards = _rollout(env, first, lambda t, o: actions[t])
    target_bits = s.cues[torch.arange(b), s.target]  # [B, 20]
    n_go = 0
    for i in range(b):
        for t in range(env.T):
            if obs[t, i, 20] == 1:  # Go step: the two previous observations showed the cues
                shown = torch.equal(obs[t - 1, i, :20], target_bits[i]) or torch.equal(obs[t - 2, i, :20], target_bits[i])
                responded = actions[t, i].item() == RESPOND
                expect = 1.0 if responded == shown else -1.0
                assert rewards[t, i].item() == expect
                assert obs[t + 1, i, 23].item() == expect  # seen as previous reward next step
                n_go += 1
            else:
                assert rewards[t, i].item() == 0.0
    assert n_go > b * 120 / 8 - b


def test_oracle_and_anti_oracle(gen) -> None:
    env = CueTask(CUE)
    first = env.reset(8, gen(2))
    s = env.state
    _, r = _rollout(env, first, lambda t, o: torch.where(s.target_shown_at[:, t], RESPOND, REST))
    n_go = s.go_at[:, : env.T].sum(1).float()  # Go steps inside the episode
    assert (n_go >= 14).all()
    assert_close(r.sum(0), n_go)
    first = env.reset(8, gen(2))
    _, r = _rollout(env, first, lambda t, o: torch.where(s.target_shown_at[:, t], REST, RESPOND))
    assert_close(r.sum(0), -n_go)


def test_target_shown_half_the_time(gen) -> None:
    env = CueTask(CUE)
    env.reset(512, gen(3))
    s = env.state
    shown = s.target_shown_at[s.go_at].float()
    n = shown.numel()
    assert abs(shown.mean().item() - 0.5) < 5 * math.sqrt(0.25 / n)  # exact p = 1/2 by construction


def test_determinism_and_errors(gen) -> None:
    env = CueTask(CUE)
    a = env.reset(4, gen(5))
    sa = env.state
    b = env.reset(4, gen(5))
    assert torch.equal(a, b) and torch.equal(sa.cues, env.state.cues) and torch.equal(sa.cue_at, env.state.cue_at)
    env.reset(4, gen(6))
    assert not torch.equal(sa.cues, env.state.cues)
    with pytest.raises(ValueError, match="0..1"):
        env.step(torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="trial_max"):
        CueConfig(trial_min=6, trial_max=5)
    with pytest.raises(TypeError):
        CueConfig(cues=4)  # type: ignore[call-arg]
    with pytest.raises(RuntimeError, match="reset"):
        CueTask(CUE).step(torch.zeros(1, dtype=torch.long))
