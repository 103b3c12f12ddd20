r"""Elastic weight consolidation (Kirkpatrick et al. 2017): the diagonal Fisher and the quadratic penalty.

After task ``k`` the learner stores an anchor ``(F_k, theta*_k)``: the parameters it ended the task with
and the diagonal of the Fisher information of its own predictive distribution on that task's training
inputs,

.. math:: F_{k,i} = \frac{1}{N} \sum_{n=1}^{N} \sum_{y} p_\theta(y \mid x_n)
          \Big(\frac{\partial \log p_\theta(y \mid x_n)}{\partial \theta_i}\Big)^2 \Big|_{\theta = \theta^*_k}

(the expectation over the model's predicted ``y``, not the labels: the "true" Fisher). Training on a
later task minimises that task's loss plus one penalty per earlier task, accumulated over tasks:

.. math:: L(\theta) = L_t(\theta) + \frac{\lambda}{2} \sum_{k < t} \sum_i F_{k,i} (\theta_i - \theta^*_{k,i})^2 .
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._validation import check_int, check_number

__all__ = ["EWCAnchor", "diagonal_fisher", "ewc_penalty", "make_anchor", "task_log_probs"]


class EWCAnchor(NamedTuple):
    """One consolidated task: ``fisher`` and ``theta`` (parameter name -> tensor, detached)."""

    fisher: dict[str, Tensor]
    theta: dict[str, Tensor]


def task_log_probs(logits: Tensor, classes: Sequence[int] | None) -> Tensor:
    """``log softmax`` over the task's output units ``classes`` (all units when ``None``): ``[N, C] -> [N, |classes|]``."""
    if classes is not None and len(classes) != logits.shape[-1]:
        logits = logits[..., list(classes)]
    return torch.log_softmax(logits, dim=-1)


def diagonal_fisher(model: nn.Module, x: Tensor, classes: Sequence[int] | None = None, *,
                    chunk: int = 256) -> dict[str, Tensor]:
    r"""Diagonal Fisher ``F_i = 1/N sum_n sum_y p(y|x_n) (d log p(y|x_n) / d theta_i)^2`` of ``model``'s
    trainable parameters on inputs ``x`` ``[N, n_in]`` (``model(x)`` returns logits ``[N, C]``; ``classes``: the
    task's units, see :func:`task_log_probs`). Per-example Jacobians of all ``log p(y|x_n)`` at once
    (``torch.func.vmap`` of ``jacrev``), ``chunk`` examples at a time. Returns name -> tensor shaped like the
    parameter.
    """
    from torch.func import functional_call, jacrev, vmap

    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x: expected a non-empty [N, n_in] tensor, got {tuple(getattr(x, 'shape', ()))}")
    chunk = check_int("chunk", chunk)
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def logp(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return task_log_probs(out, classes)[0]                                # [C]

    jac = vmap(jacrev(logp), in_dims=(None, 0))
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}
    for start in range(0, x.shape[0], chunk):
        xb = x[start:start + chunk]
        with torch.no_grad():
            prob = task_log_probs(functional_call(model, (params, buffers), (xb,)), classes).exp()   # [n, C]
        J = jac(params, xb)                                                   # name -> [n, C, *shape]
        for k, g in J.items():
            w = prob.reshape(*prob.shape, *([1] * (g.dim() - 2)))
            fisher[k] += (w * g.pow(2)).sum(dim=(0, 1))
    return {k: v / x.shape[0] for k, v in fisher.items()}


def ewc_penalty(params: Mapping[str, Tensor], anchors: Sequence[EWCAnchor], lam: float) -> Tensor:
    r"""``lam/2 * sum_k sum_i F_{k,i} (theta_i - theta*_{k,i})^2`` over the ``anchors`` (one per earlier
    task); ``params``: name -> current tensor (e.g. ``dict(model.named_parameters())``). 0 without anchors.

    Raises:
        ValueError: ``lam`` negative or not finite; an anchor naming a parameter ``params`` lacks or
            holding a tensor of another shape.
    """
    lam = check_number("lam", lam, "a finite number >= 0")
    if lam < 0:
        raise ValueError(f"lam: expected a finite number >= 0, got {lam}")
    ref = next(iter(params.values()))
    total = ref.new_zeros(())
    for k, a in enumerate(anchors):
        for name, F in a.fisher.items():
            if name not in params:
                raise ValueError(f"anchors[{k}]: parameter {name!r} is not among params ({sorted(params)})")
            p = params[name]
            if p.shape != F.shape or a.theta[name].shape != F.shape:
                raise ValueError(f"anchors[{k}][{name!r}]: shape {tuple(F.shape)} does not match the parameter's "
                                 f"{tuple(p.shape)}")
            total = total + (F * (p - a.theta[name]).pow(2)).sum()
    return 0.5 * lam * total


def make_anchor(model: nn.Module, x: Tensor, classes: Sequence[int] | None = None,
                fisher_fn: Callable[..., dict[str, Tensor]] = diagonal_fisher) -> EWCAnchor:
    """The anchor of a task just learned: ``(diagonal_fisher(model, x, classes), current parameters)``."""
    theta = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    return EWCAnchor(fisher_fn(model, x, classes), theta)
