r"""One batch of episodes -> a scalar loss and a metric, for supervised and RL tasks.

Batch slicing (data parallelism): every process draws the *full* batch of ``B`` episodes from
the same generator and keeps the slice ``part`` of it, so the union of the slices is exactly the
single-process batch. Losses are means over the batch elements of a slice; averaging the slices'
gradients over equal-sized slices therefore equals the full-batch gradient.

A2C (Miconi et al. 2018/2019 setups; coefficients are :class:`~.config.TrainConfig` fields).
With policy logits ``z_t`` and value ``V_t`` read from the model's output ``[B, n_actions + 1]``,
``pi_t = softmax(z_t)``, action ``a_t ~ pi_t``, reward ``r_t``, the discounted return
(no bootstrap: episodes end at ``T``)

.. math::  R_t = r_t + \gamma R_{t+1},\quad R_T = 0,\qquad A_t = R_t - V_t

and the loss, averaged over time and batch,

.. math::
    L = \frac{1}{T}\sum_t \Big[-\log\pi_t(a_t)\,\mathrm{sg}(A_t) + c_v (R_t - V_t)^2 + c_e D(\pi_t)\Big]

with ``sg`` stop-gradient, ``c_v = value_coef`` (default 0.1, the Backpropamine value-loss
weight), ``c_e = entropy_coef`` (default 0.03) and the diversity penalty ``D`` chosen by
``entropy_kind``: ``"shannon"`` (default) ``D = -H(pi) = sum pi log pi``; ``"simpson"``
``D = sum pi^2`` (Simpson's concentration index: the penalty the original Backpropamine code uses,
with ``c_e = 0.1`` in its cue-reward runs). The metric is the mean total reward per episode.

Actions are sampled by inverse CDF from uniforms drawn for the full batch from the action
generator, so slicing preserves every element's action.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..protocol import Episode, EpisodeModel, RLTask, SupervisedTask

ENTROPY_KINDS = ("shannon", "simpson")

__all__ = ["ENTROPY_KINDS", "EpisodeResult", "supervised_episode", "a2c_episode", "discounted_returns", "slice_episode"]


@dataclass(frozen=True)
class EpisodeResult:
    """``loss``: scalar tensor (with graph); ``metric``: float (the mean over the episodes);
    ``per_episode``: each episode's metric, detached ``[b]`` (RL: total reward; ``None`` where not
    computed: supervised episodes, whose metric is the task's batch metric)."""

    loss: Tensor
    metric: float
    per_episode: Tensor | None = None


def _slice_value(v: object, part: slice, batch: int, dim: int) -> object:
    if isinstance(v, Tensor) and v.dim() > dim and v.shape[dim] == batch:
        idx = [slice(None)] * dim + [part]
        return v[tuple(idx)]
    return v


def slice_episode(ep: Episode, part: slice) -> Episode:
    """The batch slice ``part`` of a full-batch episode (inputs/mask ``[T, B, ...]``, targets ``[B, ...]``).

    ``info`` tensors are sliced on their batch axis: ``[T, B, ...]`` when their leading size is
    the episode length, else ``[B, ...]``.
    """
    T, B = ep.inputs.shape[0], ep.inputs.shape[1]
    info = None
    if ep.info is not None:
        info = {}
        for k, v in ep.info.items():
            if isinstance(v, Tensor) and v.dim() >= 2 and v.shape[0] == T and v.shape[1] == B:
                info[k] = v[:, part]
            else:
                info[k] = _slice_value(v, part, B, 0)
    return Episode(
        inputs=ep.inputs[:, part],
        targets=_slice_value(ep.targets, part, B, 0),  # type: ignore[arg-type]
        mask=None if ep.mask is None else ep.mask[:, part],
        info=info,
    )


def supervised_episode(
    model: EpisodeModel,
    task: SupervisedTask,
    batch: int,
    generator: torch.Generator,
    device: torch.device,
    part: slice | None = None,
    *,
    sample_kwargs: dict[str, object] | None = None,
) -> EpisodeResult:
    """Sample ``batch`` episodes, keep slice ``part``, run the model, ``task.loss`` / ``task.metric``."""
    ep = task.sample(batch, generator, device, **(sample_kwargs or {}))
    if part is not None:
        ep = slice_episode(ep, part)
    outputs, _ = model(ep.inputs)
    loss = task.loss(outputs, ep)
    metric = task.metric(outputs.detach(), ep)
    return EpisodeResult(loss, float(metric))


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """``R_t = r_t + gamma R_{t+1}`` with ``R_T = 0`` for ``rewards`` ``[T, B]``."""
    out = torch.empty_like(rewards)
    acc = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out


def a2c_episode(
    model: EpisodeModel,
    task: RLTask,
    batch: int,
    generator: torch.Generator,
    action_generator: torch.Generator,
    device: torch.device,
    part: slice | None = None,
    *,
    value_coef: float = 0.1,
    entropy_coef: float = 0.03,
    entropy_kind: str = "shannon",
    greedy: bool = False,
) -> EpisodeResult:
    """Roll out ``task.T`` steps of a batch of environments and return the A2C loss (module docstring).

    The environment always runs the full ``batch``; the model acts for the elements in ``part``
    (the others take action 0 and are ignored), which keeps every element's random stream
    identical to a single-process run.
    """
    if entropy_kind not in ENTROPY_KINDS:
        raise ValueError(f"entropy_kind must be one of {ENTROPY_KINDS}, got {entropy_kind!r}")
    part = slice(0, batch) if part is None else part
    n_act = task.n_actions
    obs = task.reset(batch, generator, device)
    b = obs[part].shape[0]
    state = model.initial_state(b)
    logps, values, ents, rewards = [], [], [], []
    for _ in range(task.T):
        out, state = model.step(obs[part], state)
        if out.shape[-1] != n_act + 1:
            raise ValueError(f"an RL model must output n_actions + 1 = {n_act + 1} values, got {out.shape[-1]}")
        logits, value = out[:, :n_act], out[:, n_act]
        logp_all = F.log_softmax(logits, dim=-1)
        p = logp_all.exp()
        u = torch.rand(batch, generator=action_generator, device=action_generator.device)[part].to(device)
        if greedy:
            a = p.argmax(dim=-1)
        else:
            a = (p.detach().cumsum(dim=-1) < u.unsqueeze(-1).to(p.dtype)).sum(dim=-1).clamp_max(n_act - 1)
        full = torch.zeros(batch, dtype=torch.long, device=device)
        full[part] = a
        obs, r = task.step(full)
        logps.append(logp_all.gather(1, a.unsqueeze(1)).squeeze(1))
        values.append(value)
        # diversity penalty D(pi) (module docstring): -H(pi) or Simpson's sum pi^2
        ents.append((p * logp_all).sum(dim=-1) if entropy_kind == "shannon" else (p * p).sum(dim=-1))
        rewards.append(r[part].to(value.dtype))
    R = discounted_returns(torch.stack(rewards), float(task.gamma))
    V = torch.stack(values)
    adv = R - V
    loss_t = -torch.stack(logps) * adv.detach() + value_coef * adv.pow(2) + entropy_coef * torch.stack(ents)
    loss = loss_t.mean()
    totals = torch.stack(rewards).sum(dim=0).detach()
    return EpisodeResult(loss, float(totals.mean()), totals)
