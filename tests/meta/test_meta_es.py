"""Evolution strategies as the outer loop (``outer="es"``): the estimator against its analytic
expectation, fitness shaping, parameter selection, config checks, the trainer (exact resume, RL,
Loihi-legal networks, the population split over processes) and the CLI."""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from typing import Any

import pytest
import torch

from meta_toys import TINY_PATTERN, Bandit
from spikeplastic.cli import main
from spikeplastic.meta import TrainConfig, Trainer, World, load_checkpoint, read_metrics, train
from spikeplastic.meta.es import centered_ranks, es_gradient, pair_noise, pair_seed, select_parameters


def _cfg(**kw: Any) -> TrainConfig:
    d = dict(task="pattern", model="snn-stdp", episodes=3, batch=2, progress=False, task_kwargs=TINY_PATTERN,
             outer="es", es_population=6, es_sigma=0.05, lr=0.01)
    d.update(kw)
    return TrainConfig(**d)


# ---- the estimator ----------------------------------------------------------------------------------
def test_centered_ranks() -> None:
    r = centered_ranks(torch.tensor([3.0, -1.0, 10.0, 0.5]))
    torch.testing.assert_close(r, torch.tensor([1 / 6, -0.5, 0.5, -1 / 6], dtype=torch.float64))
    r = centered_ranks(torch.tensor([1.0, 1.0, -math.inf, 2.0]))  # ties share their mean rank; -inf last
    torch.testing.assert_close(r, torch.tensor([0.0, 0.0, -0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        centered_ranks(torch.tensor([1.0, float("nan")]))


@pytest.mark.parametrize("kind", ["linear", "quadratic"])
def test_estimate_matches_the_analytic_gradient(kind: str) -> None:
    """With the raw fitness as the weights u_i, E[g] is the gradient of E[F(theta + sigma eps)]: ``a`` for
    F = a.theta, ``-2 (theta - c)`` for F = -|theta - c|^2 (antithetic pairs cancel the even terms).
    The mean of many independent estimates is within 4.5 standard errors of it in every component."""
    D, P, sigma, n = 5, 8, 0.1, 400
    g0 = torch.Generator().manual_seed(0)
    a, theta, c = (torch.randn(D, generator=g0, dtype=torch.float64) for _ in range(3))
    fit = (lambda th: th @ a) if kind == "linear" else (lambda th: -((th - c) ** 2).sum(-1))
    want = a if kind == "linear" else -2 * (theta - c)
    ests = []
    for step in range(n):
        eps = [pair_noise(0, step, j, D, dtype=torch.float64) for j in range(P // 2)]
        members = torch.stack([theta + s * sigma * e for e in eps for s in (1.0, -1.0)])
        ests.append(es_gradient(fit(members), sigma, eps))
    G = torch.stack(ests)
    mean, se = G.mean(0), G.std(0) / math.sqrt(n)
    z = ((mean - want) / se).abs()
    assert bool((z < 4.5).all()), f"z-scores {z.tolist()}: mean {mean.tolist()} vs {want.tolist()}"
    assert float(se.max()) < 0.25 * float(want.abs().max())  # a test with power


def test_shaped_estimate_points_along_the_gradient() -> None:
    """With centred ranks the estimate is no longer the gradient's size, but by symmetry its expectation
    points along it (here: cosine of one estimate from 200 pairs in 20 dimensions, ~0.95 expected)."""
    D, P, sigma = 20, 400, 0.05
    a = torch.randn(D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = [pair_noise(3, 0, j, D, dtype=torch.float64) for j in range(P // 2)]
    members = torch.stack([s * sigma * e for e in eps for s in (1.0, -1.0)])
    g = es_gradient(centered_ranks(members @ a), sigma, eps)
    assert float(torch.nn.functional.cosine_similarity(g, a, dim=0)) > 0.85


def test_noise_comes_from_seeds() -> None:
    assert torch.equal(pair_noise(1, 2, 3, 10), pair_noise(1, 2, 3, 10))
    assert not torch.equal(pair_noise(1, 2, 3, 10), pair_noise(1, 2, 4, 10))
    assert len({pair_seed(s, k, j) for s in range(3) for k in range(50) for j in range(40)}) == 3 * 50 * 40


# ---- selection and config ------------------------------------------------------------------------------
def test_select_parameters() -> None:
    from spikeplastic.models import make_model
    from spikeplastic.tasks import make_task

    task = make_task("pattern", **TINY_PATTERN)
    m = make_model("snn-stdp", task)
    rule = [n for n, _ in select_parameters(m, "rule")]
    assert rule and all(".rule." in n for n in rule) and len(rule) == 4
    assert len(select_parameters(m, "all")) == sum(1 for p in m.parameters() if p.requires_grad)
    readout = select_parameters(m, ("readout_",))
    assert [n for n, _ in readout] == ["readout_gain", "readout_bias"]
    with pytest.raises(ValueError, match="prefix 'nope' matches no trainable parameter"):
        select_parameters(m, ("nope",))
    with pytest.raises(ValueError, match="es_params='rule'"):
        select_parameters(make_model("rnn", task), "rule")


@pytest.mark.parametrize("kw,match", [
    ({"outer": "ga"}, "outer: expected one of"),
    ({"es_population": 5}, "es_population: expected an even int"),
    ({"es_population": 0}, "es_population must be an int >= 2"),
    ({"es_sigma": 0.0}, "es_sigma must be a finite float > 0"),
    ({"es_params": "weights"}, "es_params: expected 'all', 'rule' or a list"),
    ({"es_params": []}, "es_params"),
])
def test_config_errors(kw: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        _cfg(**kw)


def test_config_round_trip() -> None:
    c = _cfg(es_params=["network.", "readout_"])
    assert c.es_params == ("network.", "readout_")
    d = c.to_dict()
    assert d["es_params"] == ["network.", "readout_"]
    assert TrainConfig.from_dict(d) == c


# ---- the trainer ------------------------------------------------------------------------------------------
def test_es_trains_and_resumes_exactly(tmp_path) -> None:
    straight = train(_cfg(episodes=4, out=str(tmp_path / "a"), checkpoint_every=2))
    train(_cfg(episodes=2, out=str(tmp_path / "b"), checkpoint_every=2))
    resumed = train(_cfg(episodes=4, out=str(tmp_path / "b"), checkpoint_every=2), resume=True)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    recs = read_metrics(tmp_path / "a")
    assert [r["loss"] for r in recs] == [r["loss"] for r in read_metrics(tmp_path / "b")]
    assert all("es_grad_norm" in r and "grad_norm" not in r and r["outer"] == "es" for r in recs)
    # only the rule's parameters move (a sigma large enough to change spikes: the fitness is piecewise constant)
    start = train(_cfg(episodes=1, es_params="rule", es_sigma=1.0)).model
    init = Trainer(_cfg(episodes=1)).model
    moved = {k for k, v in start.state_dict().items() if not torch.equal(v, init.state_dict()[k])}
    assert moved and all(".rule." in k for k in moved), moved
    with pytest.raises(ValueError, match="es_sigma"):
        train(_cfg(episodes=6, out=str(tmp_path / "b"), es_sigma=0.1), resume=True)


def test_es_on_rl_generic_model_and_loihi_integer_forward() -> None:
    res = train(_cfg(task="bandit-toy", model="rnn", es_population=4), task=Bandit(T=4),
                model=_rnn_for_bandit())
    assert res.episodes == 3 and all(math.isfinite(r["loss"]) for r in res.history)
    res = train(_cfg(model="snn-stdp", model_kwargs={"lava": "fixed", "encoder": "rate"}, es_params="rule"))
    net = res.model.network
    assert net.pops["hidden"].quantum is not None  # the integer LIF ran (no straight-through pass)
    assert all(not r["skipped"] for r in res.history)


def _rnn_for_bandit() -> Any:
    from spikeplastic.baselines import RNN

    torch.manual_seed(0)
    return RNN(3, 3, n_hidden=5)


class _HalfWorld(World):
    """Rank ``rank`` of 2 in one process: the all-reduce adds what the other rank contributed
    (recorded from a run of that rank) -- the exchange of the ES step, without processes."""

    size = 2

    def __init__(self, rank: int, other: list[torch.Tensor] | None = None) -> None:
        self.rank = rank
        self.other = other
        self.sent: list[torch.Tensor] = []

    def all_reduce_sum_(self, t: torch.Tensor) -> None:
        self.sent.append(t.clone())
        if self.other is not None:
            t += self.other[len(self.sent) - 1]


@pytest.mark.parametrize("rl", [False, True])
def test_population_split_over_two_ranks_equals_one_process(rl: bool) -> None:
    """Rank 0 and rank 1 each evaluate half of the members; with their fitnesses exchanged, the step
    gives the single process's parameters bit for bit (the scheme torchrun runs, checked in-process)."""
    kw = dict(task="cue-small", model="snn-stdp-mod", task_kwargs={}, batch=2) if rl else {}
    cfg = _cfg(episodes=1, **kw)
    single = Trainer(cfg)
    want = single.step()
    r1 = Trainer(cfg, world=_HalfWorld(1))
    r1.step()
    r0 = Trainer(cfg, world=_HalfWorld(0, other=r1.world.sent))
    rec = r0.step()
    for k, v in single.model.state_dict().items():
        assert torch.equal(r0.model.state_dict()[k], v), k
    assert (rec["loss"], rec["metric"], rec["es_grad_norm"]) == (want["loss"], want["metric"], want["es_grad_norm"])


def test_population_must_divide_over_processes() -> None:
    with pytest.raises(ValueError, match="es_population=6 must be divisible by the number of processes"):
        Trainer(_cfg(es_population=6), world=_FourWorld())


class _FourWorld(World):
    size = 4


# ---- CLI ---------------------------------------------------------------------------------------------------
TINY = ["--task", "pattern", "--task-kw", "n_bits=8", "--task-kw", "n_patterns=2", "--task-kw", "cycles=1",
        "--no-progress"]


def test_cli_train_outer_es(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", *TINY, "--model", "snn-stdp", "--outer", "es", "--es-population", "4", "--es-sigma", "0.05",
            "--es-params", "network.,readout_", "--episodes", "2", "--batch", "2", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    ck = load_checkpoint(out)
    assert ck["config"]["outer"] == "es" and ck["config"]["es_params"] == ["network.", "readout_"]
    assert ck["episode"] == 2
    for bad, arg in ((["--es-population", "3"], "--es-population"), (["--es-params", "a,,b"], "--es-params"),
                     (["--es-params", "nope"], "--es-params"), (["--es-sigma", "0"], "--es-sigma")):
        assert main(["train", *TINY, "--model", "snn-stdp", "--outer", "es", "--out", str(tmp_path / "x"), *bad]) == 2
        assert f"argument {arg}" in capsys.readouterr().err


# ---- torchrun ------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("task,model,tkw", [("pattern", "snn-stdp", ["n_bits=8", "n_patterns=2", "cycles=1"]),
                                           ("cue-small", "snn-stdp-mod", [])])
def test_torchrun_two_processes_equal_one(tmp_path, task: str, model: str, tkw: list[str]) -> None:
    """``torchrun --nproc_per_node 2 -m spikeplastic.cli train --outer es`` == one process (same seed and
    population): identical parameters and losses (gloo; ~15 s per case on 2 cores)."""
    args = ["--task", task, "--model", model, "--outer", "es", "--es-population", "8", "--episodes", "3",
            "--batch", "2", "--lr", "0.01", *[a for kv in tkw for a in ("--task-kw", kv)]]
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "spikeplastic.cli", "train", "--no-progress", *args,
           "--out", str(tmp_path / "dist")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert main(["train", "--no-progress", *args, "--out", str(tmp_path / "one")]) == 0
    a, b = load_checkpoint(tmp_path / "dist"), load_checkpoint(tmp_path / "one")
    for k, v in b["model_state"].items():
        assert torch.equal(a["model_state"][k], v), k
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
