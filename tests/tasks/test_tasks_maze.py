"""Maze environment: layout, observation, reward/teleport, wall penalty, batch vs scalar loop."""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from spikeplastic.tasks import MAZE, MAZE13, MazeConfig, MazeTask, maze_walls

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def test_layout_9x9() -> None:
    w = maze_walls(9)
    rows = [
        "#########",
        "#.......#",
        "#.#.#.#.#",
        "#.......#",
        "#.#...#.#",  # centre (4,4) cleared
        "#.......#",
        "#.#.#.#.#",
        "#.......#",
        "#########",
    ]
    expect = torch.tensor([[ch == "#" for ch in r] for r in rows])
    assert torch.equal(w, expect)
    assert int((~w).sum()) == 7 * 7 - 9 + 1


def test_presets() -> None:
    assert (MAZE.size, MAZE.episode_steps, MAZE.gamma, MAZE.wall_penalty) == (9, 250, 0.9, 0.1)
    assert (MAZE13.size, MAZE13.episode_steps, MAZE13.wall_penalty) == (13, 200, 0.0)
    w = maze_walls(13)
    assert not w[6, 6] and w[2, 2] and w[0].all() and w[:, 12].all() and not w[1, 1]
    assert MazeTask(MAZE13).n_in == 16 and MazeTask(MAZE).n_in == 12


def test_2018_rules_raw_time_and_unrestricted_draws(gen) -> None:
    """The 2018 maze: time input = raw step count, no previous action, the reward cell may be the
    start cell and a teleport may land on the reward cell (maze/maze.py, lines 305-309, 344, 380-385)."""
    env = MazeTask(MAZE)
    obs = env.reset(512, gen(0))
    assert obs.shape == (512, 12) and (obs[:, 10] == 0).all() and (obs[:, 11] == 1).all()
    s = env.state
    assert ((s.reward_pos == 4).all(dim=1)).any()                          # the centre is allowed
    assert (s.teleports == s.reward_pos.unsqueeze(1)).all(dim=-1).any()    # so is the reward cell
    assert not env.walls[s.teleports[..., 0], s.teleports[..., 1]].any()
    for _ in range(3):
        obs, _ = env.step(torch.zeros(512, dtype=torch.long))
    assert (obs[:, 10] == 3.0).all()
    with pytest.raises(ValueError, match="time_input"):
        MazeConfig(time_input="t/T")
    with pytest.raises(TypeError, match="reward_excludes_centre"):
        MazeConfig(reward_excludes_centre=1)  # type: ignore[arg-type]


def test_reset_observation_and_draws(gen) -> None:
    env = MazeTask(MazeConfig())
    obs = env.reset(64, gen(0))
    s = env.state
    assert obs.shape == (64, 16)
    expect = torch.zeros(16)
    expect[11] = 1.0  # bias; fov around the centre is all free, reward/time/prev action 0
    assert_close(obs, expect.expand(64, 16))
    assert (s.pos == 4).all()
    assert not env.walls[s.reward_pos[:, 0], s.reward_pos[:, 1]].any()
    assert not ((s.reward_pos == 4).all(dim=1)).any()  # never on the start cell
    assert not env.walls[s.teleports[..., 0], s.teleports[..., 1]].any()
    assert not (s.teleports == s.reward_pos.unsqueeze(1)).all(dim=-1).any()
    assert len({tuple(p) for p in s.reward_pos.tolist()}) > 20  # reward cells vary


def test_wall_hit_penalty_and_fov(gen) -> None:
    env = MazeTask(MazeConfig())
    env.reset(1, gen(0))
    env._state = env.state._replace(reward_pos=torch.tensor([[7, 7]]))  # out of the way
    up = torch.tensor([UP])
    obs, r = env.step(up)  # (4,4) -> (3,4)
    assert r.item() == 0.0 and env.state.pos.tolist() == [[3, 4]]
    # fov around (3,4): row 2 is "#.#.#.#.#" -> (2,3)=free, (2,4)=wall, (2,5)=free; rows 3,4 free around col 4
    assert obs[0, :9].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0]
    obs, r = env.step(up)  # (2,4) is a pillar
    assert_close(r, torch.tensor([-0.1]))
    assert env.state.pos.tolist() == [[3, 4]]
    assert_close(obs[0, 9:], torch.tensor([-0.1, 2 / 250, 1.0, 1.0, 0.0, 0.0, 0.0]))


def test_reward_and_teleport(gen) -> None:
    env = MazeTask(MazeConfig())
    env.reset(2, gen(1))
    env._state = env.state._replace(reward_pos=torch.tensor([[3, 4], [4, 5]]))
    tele = env.state.teleports[:, 0]
    obs, r = env.step(torch.tensor([UP, RIGHT]))
    assert_close(r, torch.tensor([10.0, 10.0]))
    assert torch.equal(env.state.pos, tele)
    assert_close(obs[:, 9], torch.tensor([10.0, 10.0]))
    assert_close(obs[:, 12:], torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))


def _reference_rollout(walls: list[list[bool]], reward_pos, teleports, actions, T: int):
    """Scalar per-element simulator written independently of the vectorised one."""
    deltas = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}
    r, c = len(walls) // 2, len(walls) // 2
    out = []
    for t, a in enumerate(actions):
        dr, dc = deltas[a]
        rew = 0.0
        if walls[r + dr][c + dc]:
            rew -= 0.1
        else:
            r, c = r + dr, c + dc
        if (r, c) == tuple(reward_pos):
            rew += 10.0
            r, c = teleports[t]
        fov = [float(walls[r + i][c + j]) for i in (-1, 0, 1) for j in (-1, 0, 1)]
        onehot = [float(k == a) for k in range(4)]
        out.append((fov + [rew, (t + 1) / T, 1.0] + onehot, rew))
    return out


def test_batch_matches_per_element_loop(gen) -> None:
    env = MazeTask(MazeConfig(episode_steps=120))
    b = 6
    env.reset(b, gen(3))
    s0 = env.state
    g = gen(99)
    # uniform random actions; 120 steps x 6 agents find the reward several times (asserted below)
    actions = torch.randint(0, 4, (env.T, b), generator=g)
    obs_all, rew_all = [], []
    for t in range(env.T):
        o, r = env.step(actions[t])
        obs_all.append(o)
        rew_all.append(r)
    obs_all, rew_all = torch.stack(obs_all), torch.stack(rew_all)
    walls = env.walls.tolist()
    found = 0
    for i in range(b):
        ref = _reference_rollout(walls, s0.reward_pos[i].tolist(), [tuple(p) for p in s0.teleports[i].tolist()],
                                 actions[:, i].tolist(), env.T)
        assert_close(obs_all[:, i], torch.tensor([o for o, _ in ref]))
        assert_close(rew_all[:, i], torch.tensor([x for _, x in ref]))
        found += sum(x > 5 for _, x in ref)
    assert found > 0  # the reward branch was exercised


def test_determinism_and_seeds(gen) -> None:
    env = MazeTask(MazeConfig())
    env.reset(8, gen(4))
    a = env.state
    env.reset(8, gen(4))
    b = env.state
    assert torch.equal(a.reward_pos, b.reward_pos) and torch.equal(a.teleports, b.teleports)
    env.reset(8, gen(5))
    assert not torch.equal(a.teleports, env.state.teleports)


def test_errors(gen) -> None:
    env = MazeTask(MazeConfig(episode_steps=2))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(1, dtype=torch.long))
    env.reset(2, gen(0))
    with pytest.raises(ValueError, match="action"):
        env.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="action"):
        env.step(torch.zeros(2))
    with pytest.raises(ValueError, match="0..3"):
        env.step(torch.tensor([0, 4]))
    env.step(torch.zeros(2, dtype=torch.long))
    env.step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(RuntimeError, match="episode over"):
        env.step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="odd"):
        MazeConfig(size=10)
    with pytest.raises(TypeError):
        MazeConfig(sise=9)  # type: ignore[call-arg]
