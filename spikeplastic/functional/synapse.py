"""The plastic synapse of one projection, as pure functions (no parameters, no state objects).

Layout as in :mod:`.plasticity`: ``H``, ``E`` ``[B, n_post, n_pre]``, ``s_pre`` ``[B, n_pre]``.
The module :class:`~spikeplastic.plastic.PlasticLinear` holds the parameters and calls these; the
lean kernels (:mod:`spikeplastic.lean`) re-express them in place and are tested against them.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .plasticity import eligibility_step

__all__ = ["plastic_current", "plastic_part", "synaptic_update", "modulation_signal"]


def plastic_current(w: Tensor, H: Tensor | None, alpha: Tensor | None, s_pre: Tensor, alpha_mode: str) -> Tensor:
    """Synaptic input through ``W = w + alpha * H``, one step.

    ``a = w @ s_pre + (alpha * H) @ s_pre`` per batch element; ``alpha_mode`` is ``"per_synapse"``
    (``alpha`` ``[n_post, n_pre]``), ``"shared"`` (a scalar) or ``"none"`` (``alpha = 1``, pass None);
    ``H = None``: a static projection, ``a = w @ s_pre``.
    """
    a = s_pre @ w.T
    return a if H is None else a + plastic_part(H, alpha, s_pre, alpha_mode)


def plastic_part(H: Tensor, alpha: Tensor | None, s_pre: Tensor, alpha_mode: str) -> Tensor:
    """The plastic term of :func:`plastic_current`, ``(alpha * H) @ s_pre`` per batch element, in the
    same ops (``"shared"``: ``alpha * (H @ s_pre)``; ``alpha=None``: ``H @ s_pre``), so that
    ``plastic_current(w, H, ...) == s_pre @ w.T + plastic_part(H, ...)`` bit for bit."""
    if alpha is None or alpha_mode == "shared":
        p = torch.einsum("boi,bi->bo", H, s_pre)
        return p if alpha is None else alpha * p
    return torch.einsum("boi,bi->bo", alpha * H, s_pre)


def synaptic_update(
    H: Tensor,
    e: Tensor,
    *,
    decay: Tensor | float | None = None,
    gate: Tensor | None = None,
    E: Tensor | None = None,
    eta_e: Tensor | float | None = None,
    clip: float | None = None,
) -> tuple[Tensor, Tensor | None]:
    """One update of the plastic part from the rule's candidate ``e``; returns ``(H', E')``.

    ::

        no modulation (gate None):   H' = clip((1 - decay) * H + e)
        simple modulation:           H' = clip((1 - decay) * H + m * e)
        retroactive (E given):       H' = clip((1 - decay) * H + m * E),  E' = E + eta_e * (e - E)

    ``decay=None`` skips the decay term (bit-identical to ``decay = 0``); ``gate`` ``m`` broadcasts
    to ``H`` (``[B, 1, 1]`` or ``[B, n_post, 1]``, :func:`modulation_signal`).
    """
    Hn = H if decay is None else (1 - decay) * H
    if gate is None:
        return _clip(Hn + e, clip), E
    if E is None:
        return _clip(Hn + gate * e, clip), None
    if eta_e is None:
        raise ValueError("synaptic_update: retroactive modulation (E given) needs eta_e")
    return _clip(Hn + gate * E, clip), eligibility_step(E, e, eta_e)


def _clip(H: Tensor, clip: float | None) -> Tensor:
    return H if clip is None else H.clamp(-clip, clip)


def modulation_signal(s_source: Tensor, weight: Tensor, bias: Tensor, per_neuron: bool) -> Tensor:
    """The learned third factor (Backpropamine): ``m = tanh(w_m . s_src + b_m)``.

    ``per_neuron=False``: ``weight`` ``[n_src]``, one ``m`` per sample ``[B]``; ``True``: ``weight``
    ``[n_post, n_src]``, ``m`` ``[B, n_post]``.
    """
    return torch.tanh(s_source @ weight.T + bias) if per_neuron else torch.tanh(s_source @ weight + bias)
