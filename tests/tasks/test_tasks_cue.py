"""Cue-reward association: episode structure (against an independent reading of the observations),
statistics of the generator, reward logic, determinism.

Reference timeline (Backpropamine's original generator): trials of length L in 5..8 back to back;
local step 0 blank, steps 1..L-3 hold 2 distinct cues (each once) and blanks in random order,
step L-2 is Go, step L-1 blank; respond at Go iff the target was among the trial's cues.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from spikeplastic.tasks import CUE, CueConfig, CueTask
from spikeplastic.tasks.cue import RESPOND, REST

BITS = 20
GO, BIAS, TIME, PREV_R = BITS, BITS + 1, BITS + 2, BITS + 3


def _rollout(env: CueTask, first_obs: torch.Tensor, policy):
    """Run a full episode; returns observations ``[T+1, B, n_in]`` and rewards ``[T, B]``."""
    obs = [first_obs]
    rewards = []
    for t in range(env.T):
        o, r = env.step(policy(t, obs[-1]))
        obs.append(o)
        rewards.append(r)
    return torch.stack(obs), torch.stack(rewards)


def _cue_id(bits: torch.Tensor, cues: torch.Tensor) -> int:
    """Index of the episode cue equal to ``bits`` (-1 for all-zero bits); fails on anything else."""
    if (bits == 0).all():
        return -1
    hits = [j for j in range(cues.shape[0]) if torch.equal(bits, cues[j])]
    assert len(hits) == 1, "observed cue bits match no (or several) episode cues"
    return hits[0]


def _trials(lengths: list[int], n_obs: int) -> list[tuple[int, int]]:
    """``(start, L)`` of the trials that begin within ``n_obs`` observations, back to back from 0."""
    out, start = [], 0
    for length in lengths:
        if start >= n_obs:
            break
        out.append((start, length))
        start += length
    return out


def test_sizes() -> None:
    env = CueTask(CUE)
    assert (env.n_in, env.n_actions, env.T) == (BITS + 1 + 1 + 1 + 1 + 2, 2, 120)
    assert (CUE.n_cues, CUE.cue_bits, CUE.cues_per_trial, CUE.trial_min, CUE.trial_max) == (4, 20, 2, 5, 8)
    assert CUE.action_penalty == 0.0 and CUE.gamma == 0.9


def test_timeline_from_observations(gen) -> None:
    """Each trial, read from the observations alone: blank, {2 distinct cues + blanks}, Go, blank."""
    env = CueTask(CUE)
    b = 16
    first = env.reset(b, gen(0))
    s = env.state
    obs, _ = _rollout(env, first, lambda t, o: torch.zeros(b, dtype=torch.long))
    n_obs = env.T + 1
    n_complete = 0
    for i in range(b):
        ids = [_cue_id(obs[t, i, :BITS], s.cues[i]) for t in range(n_obs)]
        go = obs[:, i, GO].tolist()
        assert ids == s.cue_at[i].tolist()  # the state's record agrees with what is shown
        for start, length in _trials(s.trial_lengths[i].tolist(), n_obs):
            assert 5 <= length <= 8
            k_of = {k: start + k for k in range(length) if start + k < n_obs}
            # k = 0 and k = L-1 blank, Go exactly at k = L-2 (with no cue bits)
            for k, t in k_of.items():
                assert go[t] == float(k == length - 2), (i, start, k)
                if k in (0, length - 2, length - 1):
                    assert ids[t] == -1, (i, start, k)
            if len(k_of) == length:  # complete trial: exactly 2 distinct cues, within k = 1..L-3
                shown = [ids[start + k] for k in range(1, length - 2) if ids[start + k] >= 0]
                assert len(shown) == 2 and shown[0] != shown[1], (i, start, shown)
                n_complete += 1
    assert n_complete >= b * (env.T // 8 - 1)
    # other inputs: bias, time, previous action one-hot (always "rest" here)
    assert (obs[:, :, BIAS] == 1).all()
    assert_close(obs[:, 0, TIME], torch.arange(env.T + 1) / env.T)
    assert (obs[0, :, 24:] == 0).all() and (obs[1:, :, 24] == 1).all() and (obs[1:, :, 25] == 0).all()


def test_cues_all_different(gen) -> None:
    env = CueTask(CUE)
    env.reset(256, gen(4))
    c = env.state.cues
    assert c.shape == (256, 4, BITS) and set(c.unique().tolist()) == {-1.0, 1.0}
    same = (c.unsqueeze(2) == c.unsqueeze(1)).all(-1)
    assert torch.equal(same, torch.eye(4, dtype=torch.bool).expand(256, 4, 4))
    # 2-bit cues: the 4 cues must be exactly the 4 possible patterns (many redraws needed)
    tiny = CueTask(CueConfig(cue_bits=2))
    assert tiny.n_in == 2 + 6
    tiny.reset(64, gen(5))
    c2 = tiny.state.cues
    assert all(len({tuple(r) for r in c2[i].tolist()}) == 4 for i in range(64))
    with pytest.raises(ValueError, match="cue_bits"):
        CueConfig(cue_bits=1, n_cues=3)


def test_generator_statistics(gen) -> None:
    """Trial lengths uniform on 5..8; target shown in half the trials; each cue in half the
    trials; each slot k = 1..L-3 holds a cue with probability 2/(L-3). Read from ``cue_at``."""
    env = CueTask(CueConfig(episode_steps=60))
    b = 400
    env.reset(b, gen(3))
    s = env.state
    n_obs = env.T + 1
    len_counts = torch.zeros(9)
    shown_target, trials, cue_counts = 0, 0, torch.zeros(4)
    slot_hits = {L: torch.zeros(L - 3) for L in range(5, 9)}
    slot_trials = dict.fromkeys(range(5, 9), 0)
    cue_at, target, go_at, tsa = s.cue_at.tolist(), s.target.tolist(), s.go_at.tolist(), s.target_shown_at.tolist()
    for i in range(b):
        for start, length in _trials(s.trial_lengths[i].tolist(), n_obs):
            len_counts[length] += 1
            if start + length > n_obs:
                continue
            ids = cue_at[i][start + 1 : start + length - 2]
            shown = [x for x in ids if x >= 0]
            trials += 1
            shown_target += target[i] in shown
            for x in shown:
                cue_counts[x] += 1
            slot_trials[length] += 1
            slot_hits[length] += torch.tensor([float(x >= 0) for x in ids])
            go = start + length - 2
            assert go_at[i][go] and tsa[i][go] == (target[i] in shown)
    n_len = len_counts[5:].sum().item()
    freq = len_counts[5:] / n_len
    assert (freq - 0.25).abs().max().item() < 5 * math.sqrt(0.25 * 0.75 / n_len), freq
    sd = math.sqrt(0.25 / trials)
    assert abs(shown_target / trials - 0.5) < 5 * sd
    assert ((cue_counts / trials - 0.5).abs() < 5 * sd).all(), cue_counts / trials
    for L in range(5, 9):
        n = slot_trials[L]
        p = 2 / (L - 3)
        tol = 5 * math.sqrt(max(p * (1 - p), 1e-9) / n) + 1e-9
        assert ((slot_hits[L] / n - p).abs() <= tol).all(), (L, slot_hits[L] / n)


def _oracle(env: CueTask, flip: bool = False):
    """A policy that knows the target bits and watches the observations: at Go it responds iff
    the target appeared since the previous Go (``flip``: the opposite)."""
    s = env.state
    target_bits = s.cues[torch.arange(s.cues.shape[0]), s.target]
    seen = torch.zeros(s.cues.shape[0], dtype=torch.bool)

    def policy(t: int, o: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        seen = seen | (o[:, :BITS] == target_bits).all(-1)
        go = o[:, GO] == 1
        a = torch.where(go & (seen ^ flip), RESPOND, REST)
        seen = seen & ~go
        return a

    return policy


def test_oracle_and_anti_oracle(gen) -> None:
    env = CueTask(CUE)
    b = 12
    first = env.reset(b, gen(2))
    obs, r = _rollout(env, first, _oracle(env))
    is_go = obs[:-1, :, GO] == 1                                  # Go steps inside the episode
    n_go = is_go.sum(0).float()
    assert (n_go >= 14).all()
    assert torch.equal(r[is_go], torch.ones(int(n_go.sum())))   # +1 on every completed trial
    assert (r[~is_go] == 0).all()
    assert_close(obs[1:, :, PREV_R], r)                            # seen as previous reward next step
    first = env.reset(b, gen(2))
    _, r = _rollout(env, first, _oracle(env, flip=True))
    assert torch.equal(r[is_go], -torch.ones(int(n_go.sum()))) and (r[~is_go] == 0).all()


def test_reward_logic_random_actions(gen) -> None:
    """Random actions: reward only at Go, sign from the cues observed in the trial."""
    env = CueTask(CUE)
    b = 16
    first = env.reset(b, gen(1))
    s = env.state
    actions = torch.randint(0, 2, (env.T, b), generator=gen(7))
    obs, rewards = _rollout(env, first, lambda t, o: actions[t])
    target_bits = s.cues[torch.arange(b), s.target]
    for i in range(b):
        seen = False
        for t in range(env.T):
            seen = seen or torch.equal(obs[t, i, :BITS], target_bits[i])
            if obs[t, i, GO] == 1:
                expect = 1.0 if (actions[t, i].item() == RESPOND) == seen else -1.0
                assert rewards[t, i].item() == expect
                seen = False
            else:
                assert rewards[t, i].item() == 0.0


def test_action_penalty(gen) -> None:
    env = CueTask(CueConfig(action_penalty=0.25, episode_steps=40))
    first = env.reset(6, gen(8))
    s = env.state
    always = torch.full((6,), RESPOND, dtype=torch.long)
    obs, r = _rollout(env, first, lambda t, o: always)
    go = s.go_at[:, : env.T].T
    shown = s.target_shown_at[:, : env.T].T
    expect = torch.where(go, torch.where(shown, 1.0, -1.0), 0.0) - 0.25
    assert_close(r, expect)
    _, r0 = _rollout(env, env.reset(6, gen(8)), lambda t, o: torch.zeros(6, dtype=torch.long))
    assert (r0[~go] == 0).all()
    with pytest.raises(ValueError, match="action_penalty"):
        CueConfig(action_penalty=-1.0)


def test_determinism_and_errors(gen) -> None:
    env = CueTask(CUE)
    a = env.reset(4, gen(5))
    sa = env.state
    b = env.reset(4, gen(5))
    sb = env.state
    assert torch.equal(a, b)
    for f in ("cues", "target", "cue_at", "go_at", "target_shown_at", "trial_lengths"):
        assert torch.equal(getattr(sa, f), getattr(sb, f)), f
    env.reset(4, gen(6))
    assert not torch.equal(sa.cues, env.state.cues)
    with pytest.raises(ValueError, match="0..1"):
        env.step(torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="trial_max"):
        CueConfig(trial_min=6, trial_max=5)
    with pytest.raises(ValueError, match="trial_min"):
        CueConfig(trial_min=4, trial_max=8)   # blank + 2 cues + Go + blank need 5 steps
    with pytest.raises(ValueError, match="cues_per_trial"):
        CueConfig(cues_per_trial=5)
    with pytest.raises(TypeError):
        CueConfig(cues=4)  # type: ignore[call-arg]
    with pytest.raises(RuntimeError, match="reset"):
        CueTask(CUE).step(torch.zeros(1, dtype=torch.long))
