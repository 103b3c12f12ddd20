"""Reference torch run of a :class:`~spikeplastic.ir.NetworkIR` (what the exporter is measured against)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import ir as _ir
from .lean.population import POPULATION_RECORD, check_population, nograd_forward
from .network import Network, Record

__all__ = ["simulate"]


def simulate(
    net_ir: _ir.NetworkIR,
    inputs: Any,
    *,
    dtype: torch.dtype = torch.float64,
    record: Sequence[str] = ("spikes", "voltages", "weights"),
    third_factor: Any = None,
    noise_seed: int = 0,
) -> Record:
    """Run ``net_ir`` on ``inputs`` with the float dynamics of the IR docstring.

    Args:
        inputs: ``[T, n_in]`` or ``[T, B, n_in]`` (numpy or torch); spikes for a spiking input.
        dtype: float64 by default (the exporter's reference precision).
        record: fields of the returned :class:`~spikeplastic.network.Record`.
        third_factor: ``[T]``, ``[T, B]`` or ``[T, B, n_post]`` external modulation, if the IR needs it;
            with 2-D ``inputs`` (no batch dim) it is ``[T]`` or ``[T, n_post]``, as for the Lava run.
        noise_seed: seed of the node-perturbation noise (projection ``j`` uses ``noise_seed + j``, every
            sample alike), as for the Lava run; unused without node perturbation.

    Returns: a :class:`Record` whose tensors have a batch dim (``B = 1`` for 2-D inputs).

    Runs through the fused no-grad kernels (:func:`spikeplastic.lean.population.nograd_forward`: the
    same spikes as ``Network.forward``, the rest equal to rounding) when the network and ``record``
    allow it (pair STDP or static projections; no ``"modulation"`` record), else through ``Network.forward``.
    """
    if not isinstance(net_ir, _ir.NetworkIR):
        raise TypeError(f"net_ir must be a spikeplastic.ir.NetworkIR, got {type(net_ir).__name__}")
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs).to(dtype)
    unbatched = x.dim() == 2
    if unbatched:
        x = x[:, None, :]
    if x.dim() != 3:
        raise ValueError(f"inputs must have shape [T, n_in] or [T, B, n_in], got {tuple(x.shape)}")
    tf = None
    if third_factor is not None:
        tf = torch.as_tensor(np.asarray(third_factor) if not isinstance(third_factor, torch.Tensor) else third_factor).to(dtype)
        if tf.dim() == 1:
            tf = tf[:, None].expand(x.shape[0], x.shape[1])
        elif unbatched and tf.dim() == 2:  # [T, n_post] per postsynaptic neuron
            tf = tf[:, None, :]
    net = Network.from_ir(net_ir, dtype=dtype)
    rec_names = (record,) if isinstance(record, str) else tuple(record)
    try:
        check_population(net)
        fused = all(r in POPULATION_RECORD for r in rec_names)
    except ValueError:
        fused = False
    if fused:
        return nograd_forward(net, x, record=rec_names, third_factor=tf)[0]
    with torch.no_grad():
        state = net.initial_state(x.shape[1], noise_seed=noise_seed)
        rec, _ = net(x, state, record=record, third_factor=tf)
    return rec
