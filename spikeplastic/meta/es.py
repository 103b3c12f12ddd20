r"""Evolution strategies as the outer loop (``TrainConfig(outer="es")``, ``spikeplastic train --outer es``).

No backward pass: every outer step evaluates a population of perturbed parameter sets with the
forward pass only (:meth:`~spikeplastic.protocol.EpisodeModel.population_forward` /
``population_step``: for spiking models all ``P x B`` episodes in one fused no-grad run, Loihi's
integer LIF exactly, no surrogate and no straight-through estimator), so memory does not grow with
the episode length and nothing needs to be differentiable (hard spikes, integer arithmetic, RL returns).

Estimator (Salimans et al. 2017, "Evolution strategies as a scalable alternative to reinforcement
learning"), for the selected parameters flattened into ``theta`` (``es_params``):

- antithetic Gaussian perturbations: ``P = es_population`` members, pair ``j`` draws
  ``eps_j ~ N(0, I)`` and gives members ``2j`` and ``2j + 1`` the parameters ``theta + sigma eps_j`` and
  ``theta - sigma eps_j`` (``sigma = es_sigma``);
- fitness ``F_i``: minus the task loss on the step's batch (supervised: every member sees the same
  ``batch`` episodes, common random numbers), or the mean total reward of member ``i``'s ``batch``
  episodes (RL, actions sampled from its policy); non-finite fitness ranks last;
- fitness shaping by centred ranks: ``u_i = rank(F_i) / (P - 1) - 1/2`` (ties share their mean rank);
- the gradient estimate of ``E[F(theta + sigma eps)]``

  .. math:: \hat g = \frac{1}{P\sigma} \sum_{i=1}^{P} u_i \epsilon_i
            = \frac{1}{P\sigma} \sum_j (u_{2j} - u_{2j+1})\, \epsilon_j

  handed to Adam as the gradient ``-g`` (the config's ``lr``, ``lr_decay``, ``weight_decay``,
  ``adam_eps``; ``clip`` caps its norm as it caps BPTT's).

Distributed (``torchrun``; :mod:`.distributed`'s world, gloo or NCCL): rank ``r`` of ``W`` evaluates
members ``[r P/W, (r+1) P/W)``; the noise is regenerated from seeds, ``eps_j`` from
``(seed, outer step, j)`` (:func:`pair_seed`), so the processes exchange only the members' fitness,
loss and metric (one all-reduce of ``3 P`` numbers per step) and every process computes the same
``g`` and the same Adam step. Every process draws the step's episodes from the same generator (RL:
the environment runs all ``P x B`` episodes, each process acts for its members), so a run gives the
same parameters whatever the number of processes.

Metrics per outer step (``metrics.jsonl``): ``loss`` and ``metric`` are the means over the members
(supervised: task loss and metric; RL: minus the mean reward, and the mean reward), ``es_grad_norm``
(the norm of ``g`` before clipping; BPTT logs ``grad_norm``), ``es_fitness_best``, ``outer: "es"``.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..protocol import RLTask, SupervisedTask

__all__ = ["centered_ranks", "pair_seed", "pair_noise", "es_gradient", "select_parameters", "ES_SEED_OFFSET",
           "es_step"]

log = logging.getLogger("spikeplastic.meta")

#: separates the perturbation seeds from the other streams of a run's seed
ES_SEED_OFFSET = 4_000_037


def centered_ranks(fitness: Tensor) -> Tensor:
    """Centred ranks ``rank / (P - 1) - 1/2`` in ``[-1/2, 1/2]`` (lowest fitness -1/2); tied values share
    their mean rank; ``-inf`` ranks lowest. ``fitness`` ``[P]``, ``P >= 2``."""
    if not isinstance(fitness, Tensor) or fitness.dim() != 1 or fitness.numel() < 2:
        raise ValueError(f"fitness: expected a 1-d tensor of at least 2 values, got {getattr(fitness, 'shape', fitness)!r}")
    f = fitness.detach().to(torch.float64)
    if bool(torch.isnan(f).any()):
        raise ValueError("fitness: expected no NaN (rank non-finite members last with -inf)")
    _, inverse, counts = torch.unique(f, sorted=True, return_inverse=True, return_counts=True)
    start = torch.cumsum(counts, 0) - counts
    mean_rank = start.to(torch.float64) + (counts.to(torch.float64) - 1) / 2
    return mean_rank[inverse] / (f.numel() - 1) - 0.5


def pair_seed(seed: int, step: int, pair: int) -> int:
    """The seed of perturbation ``eps_pair`` at outer step ``step`` (0-based) of a run seeded ``seed``:
    distinct for every ``(step, pair)`` with ``pair < 1_000_033``."""
    return ((seed + ES_SEED_OFFSET) * 1_000_003 + step) * 1_000_033 + pair


def pair_noise(seed: int, step: int, pair: int, dim: int, *, dtype: torch.dtype = torch.float32,
               device: torch.device | str = "cpu") -> Tensor:
    """``eps_pair ~ N(0, I_dim)``, drawn on the CPU from :func:`pair_seed` (the same on every process and device)."""
    g = torch.Generator().manual_seed(pair_seed(seed, step, pair) % (2**63 - 1))
    return torch.randn(dim, generator=g, dtype=dtype).to(device)


def es_gradient(shaped: Tensor, sigma: float, noise: Sequence[Tensor] | Any) -> Tensor:
    r"""``g = 1/(P sigma) sum_i u_i eps_i`` with antithetic members (``eps_{2j} = -eps_{2j+1} = noise[j]``):
    ``g = 1/(P sigma) sum_j (u_{2j} - u_{2j+1}) noise[j]``. ``shaped`` ``[P]`` (``P`` even); ``noise``: ``P/2``
    vectors ``[D]`` (a sequence or an iterable producing them one at a time)."""
    P = int(shaped.numel())
    if P % 2:
        raise ValueError(f"shaped: expected an even number of members (antithetic pairs), got {P}")
    diff = (shaped[0::2] - shaped[1::2]).tolist()
    g: Tensor | None = None
    for c, eps in zip(diff, noise):
        g = eps * c if g is None else g.add_(eps, alpha=c)
    assert g is not None
    return g / (P * sigma)


def select_parameters(model: nn.Module, es_params: str | Sequence[str]) -> list[tuple[str, nn.Parameter]]:
    """The trainable parameters ES perturbs: ``"all"``; ``"rule"`` (those of the plasticity rules,
    :class:`~spikeplastic.rules.PlasticityRule` modules: amplitudes, time constants, eta); or those whose
    name starts with one of the given prefixes. ``ValueError`` naming what matched nothing."""
    from ..rules import PlasticityRule

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if es_params == "all":
        return named
    if es_params == "rule":
        rule_mods = [n for n, m in model.named_modules() if isinstance(m, PlasticityRule)]
        chosen = [(n, p) for n, p in named if any(n.startswith(r + ".") for r in rule_mods)]
        if not chosen:
            raise ValueError(f"es_params='rule': {type(model).__name__} has no trainable parameter inside a plasticity "
                             f"rule (PlasticityRule module); choose 'all' or name prefixes, e.g. {[n for n, _ in named][:3]}")
        return chosen
    chosen = []
    for prefix in es_params:
        hit = [(n, p) for n, p in named if n.startswith(prefix)]
        if not hit:
            raise ValueError(f"es_params: the prefix {prefix!r} matches no trainable parameter of "
                             f"{type(model).__name__} (its parameters: {[n for n, _ in named]})")
        chosen += [(n, p) for n, p in hit if all(n != c for c, _ in chosen)]
    return chosen


def _members(params: Sequence[nn.Parameter], names: Sequence[str], theta: Tensor, sigma: float, seed: int,
             step: int, lo: int, hi: int) -> dict[str, Tensor]:
    """Members ``lo..hi-1``'s parameters ``theta +- sigma eps``, as ``{name: [hi - lo, *shape]}``."""
    D = theta.numel()
    rows = []
    cache: dict[int, Tensor] = {}
    for i in range(lo, hi):
        j = i // 2
        if j not in cache:
            cache[j] = pair_noise(seed, step, j, D, dtype=theta.dtype, device=theta.device)
        rows.append(theta + (sigma if i % 2 == 0 else -sigma) * cache[j])
    flat = torch.stack(rows)
    out, off = {}, 0
    for n, p in zip(names, params):
        out[n] = flat[:, off:off + p.numel()].reshape(hi - lo, *p.shape)
        off += p.numel()
    return out


def _supervised(tr: Any, members: Mapping[str, Tensor], p: int) -> tuple[Tensor, Tensor, Tensor]:
    task = tr.task
    assert isinstance(task, SupervisedTask)
    ep = task.sample(tr.config.batch, tr.task_gen, tr.device, **(tr._split_kwargs("train") or {}))
    out = tr.model.population_forward(members, ep.inputs)
    loss = torch.stack([torch.as_tensor(task.loss(out[:, i], ep)).detach().cpu().double() for i in range(p)])
    metric = torch.tensor([float(task.metric(out[:, i], ep)) for i in range(p)], dtype=torch.float64)
    return -loss, loss, metric


def _rl(tr: Any, members: Mapping[str, Tensor], p: int, lo: int, P: int) -> tuple[Tensor, Tensor, Tensor]:
    task = tr.task
    assert isinstance(task, RLTask)
    B, n_act, dev = tr.config.batch, task.n_actions, tr.device
    N = P * B
    part = slice(lo * B, (lo + p) * B)
    obs = task.reset(N, tr.task_gen, dev)
    state = tr.model.population_initial_state(members, B)
    totals = torch.zeros(p, B, dtype=torch.float64, device=dev)
    gen = tr.action_gen
    for _ in range(task.T):
        out, state = tr.model.population_step(members, obs[part].reshape(p, B, -1), state)
        if out.shape[-1] != n_act + 1:
            raise ValueError(f"an RL model must output n_actions + 1 = {n_act + 1} values, got {out.shape[-1]}")
        probs = F.softmax(out[..., :n_act], dim=-1)
        u = torch.rand(N, generator=gen, device=gen.device)[part].to(dev).reshape(p, B, 1).to(probs.dtype)
        a = (probs.cumsum(dim=-1) < u).sum(dim=-1).clamp_max(n_act - 1)
        full = torch.zeros(N, dtype=torch.long, device=dev)
        full[part] = a.reshape(-1)
        obs, r = task.step(full)
        totals += r[part].reshape(p, B).to(totals.dtype)
    fit = totals.mean(dim=1)
    return fit, -fit, fit


def es_step(tr: Any) -> dict[str, Any]:
    """One ES outer step of ``tr``, a :class:`~spikeplastic.meta.trainer.Trainer` (module docstring; not
    imported here: the trainer imports this module); returns the step's metric record."""
    cfg = tr.config
    t0 = time.perf_counter()
    P, sigma, ws, rank = cfg.es_population, cfg.es_sigma, tr.world.size, tr.world.rank
    lo, hi = rank * P // ws, (rank + 1) * P // ws
    step = tr.episode
    with torch.no_grad():
        theta = torch.cat([q.detach().reshape(-1) for q in tr.params])
        members = _members(tr.params, tr.param_names, theta, sigma, cfg.seed, step, lo, hi)
        tr.model.train()
        if isinstance(tr.task, RLTask):
            fit, loss, metric = _rl(tr, members, hi - lo, lo, P)
        else:
            fit, loss, metric = _supervised(tr, members, hi - lo)
        stats = torch.zeros(3, P, dtype=torch.float64, device=theta.device)
        stats[:, lo:hi] = torch.stack([fit.cpu(), loss.cpu(), metric.cpu()]).to(stats.device)
        tr.world.all_reduce_sum_(stats)
        fit, loss, metric = stats[0].cpu(), stats[1].cpu(), stats[2].cpu()
        finite = torch.isfinite(fit)
        skipped = not bool(finite.any())
        norm = float("nan")
        if not skipped:
            shaped = centered_ranks(torch.where(finite, fit, torch.full_like(fit, -math.inf)))
            noise = (pair_noise(cfg.seed, step, j, theta.numel(), dtype=theta.dtype, device=theta.device)
                     for j in range(P // 2))
            g = es_gradient(shaped.to(theta.dtype).to(theta.device), sigma, noise)
            off = 0
            for q in tr.params:
                q.grad = -g[off:off + q.numel()].view_as(q).clone()
                off += q.numel()
    if not skipped:
        norm = float(torch.nn.utils.clip_grad_norm_(tr.params, cfg.clip if cfg.clip is not None else math.inf))
        if not math.isfinite(norm):
            skipped = True
    if skipped:
        log.warning("episode %d: every member's fitness (or the ES gradient) was NaN/inf; optimiser step skipped",
                    step + 1)
    else:
        if cfg.lr_decay_every:
            for group in tr.optimizer.param_groups:
                group["lr"] = cfg.lr_at(step)
        tr.optimizer.step()
    tr.optimizer.zero_grad(set_to_none=True)
    tr.episode += 1
    ok_loss, ok_metric = loss[finite], metric[finite]
    rec: dict[str, Any] = {
        "phase": "train", "episode": tr.episode,
        "loss": float(ok_loss.mean()) if ok_loss.numel() else float("nan"),
        "metric": float(ok_metric.mean()) if ok_metric.numel() else float("nan"),
        "seconds": time.perf_counter() - t0, "skipped": skipped, "es_grad_norm": norm,
        "es_fitness_best": float(fit[finite].max()) if bool(finite.any()) else float("nan"), "outer": "es",
    }
    if not bool(finite.all()):
        rec["es_nonfinite_members"] = int((~finite).sum())
    if cfg.lr_decay_every:
        rec["lr"] = cfg.lr_at(step)
    bad = tr._nonfinite()
    if bad is not None:
        rec["nonfinite_parameter"] = bad
    return rec
