"""spikeplastic.export: trained plastic SNNs as Lava processes that keep learning with the same rule.

Importing this package is cheap: it loads neither Lava nor NIR. Every name below is imported on first
use (PEP 562 ``__getattr__``); Lava itself is imported only when a Lava network is built. Importing
it does install Lava's compatibility hook (lava-nc 0.10.0 on Python >= 3.11, see
:mod:`spikeplastic.export._compat`; nothing is loaded), so after ``import spikeplastic.export`` plain
Lava code -- your own processes, connected to an exported network or not -- works in the same program.

Lava export (lava-nc 0.10.0):

- :func:`to_lava` ``(net_or_ir, mode="float"|"fixed", backend="cpu"|"loihi2") -> LavaNetwork``;
  ``LavaNetwork.run(inputs, steps=None, third_factor=None) -> LavaRecord`` (spikes, voltages,
  weights per step, indexed like :class:`spikeplastic.Record`; Lava always stopped, runs bounded).
  ``LavaNetwork.processes(inputs)``: the exported network as Lava processes, not started, to connect
  to your own processes and run yourself. ``record`` may add ``"currents"`` (each LIF's ``u``).
- Many episodes per Lava run: :func:`replicate` ``(net_ir, copies) -> NetworkIR`` (block-diagonal
  copies, off-block synapses held at exactly 0; ``ExportError`` where copies would not stay
  independent); ``LavaNetwork.run_episodes(inputs [T, E, n_in], *, third_factor=None, copies=None,
  record=("spikes",)) -> LavaEpisodes`` (``[T, E, ...]`` arrays, ``ceil(E / copies)`` Lava runs;
  float: as ``Network.forward`` with batch E, fixed: bit-exact with ``simulate_fixed`` per episode).
- :func:`verify` ``(net_or_ir, inputs=None, steps=None, mode="float", seed=0, *, episodes=None,
  random_inputs=None, allow_silent=False) -> VerifyReport``: default inputs are episodes of the
  checkpoint's own task; ``ok`` needs exactness *and* activity (every population spikes, every
  plastic projection learns) unless ``allow_silent``.
- :func:`snap_to_literals` ``(net_or_ir) -> (NetworkIR, changes)``: project learned decay/eta/eta_e
  onto Lava's rule-literal grid ``m*2^e`` (needed for exact export of sigmoid-mapped values).
- Errors (module ``errors``): :class:`ExportError` (ValueError: a value the target cannot hold),
  :class:`UnsupportedError` (NotImplementedError), :class:`BackendUnavailableError`,
  :class:`LavaTimeoutError`.

Fixed point (Loihi-legal integers, no Lava needed; the formats themselves: :mod:`spikeplastic.loihi_format`):

- :func:`quantize_ir` ``(ir, scale=None) -> (FixedNetwork, QuantReport)``.
- :func:`simulate_fixed` ``(fixed, inputs, rng_seed=0) -> FixedRecord``: torch emulation of Lava's
  integer LIF, Dense and bit-approximate learning engine (bit-exact with Lava's CPU models).

NIR (static part; the rule travels in a sidecar dict): :func:`to_nir` ``-> (nir.NIRGraph, dict)``,
:func:`from_nir` ``(graph, sidecar=None) -> NetworkIR``.

CLI building blocks: :func:`export_command`, :func:`verify_command` (in ``cli_commands``).

Example::

    >>> import spikeplastic as sp
    >>> from spikeplastic.export import to_lava, verify
    >>> report = verify("runs/p50/checkpoint.pt")     # doctest: +SKIP  (episodes of its own task)
    >>> print(report.summary())                       # doctest: +SKIP
    >>> net = sp.Network.feedforward([20, 16, 4], rule="stdp", recurrent=True)
    >>> verify(net, random_inputs=0.2).ok              # doctest: +SKIP  (no task: inputs or random on request)
"""
from __future__ import annotations

import importlib
from typing import Any

from . import _compat

# Lava 0.10.0 cannot even be imported on Python >= 3.11 without this hook; install it now (cheap, loads
# nothing) rather than on the first to_lava, so user code that imports Lava itself works too.
_compat.install()

__all__ = [
    "to_lava",
    "verify",
    "VerifyReport",
    "LavaNetwork",
    "LavaRecord",
    "LavaEpisodes",
    "replicate",
    "quantize_ir",
    "FixedNetwork",
    "QuantReport",
    "simulate_fixed",
    "FixedRecord",
    "to_nir",
    "from_nir",
    "snap_to_literals",
    "export_command",
    "verify_command",
    "ExportError",
    "UnsupportedError",
    "BackendUnavailableError",
    "LavaTimeoutError",
    "lava_available",
    "evaluate_lava",
    "LavaEvalResult",
]

_LAZY = {
    "to_lava": ".exporter",
    "BackendUnavailableError": ".errors",
    "verify": ".verification",
    "VerifyReport": ".verification",
    "LavaNetwork": ".lava_network",
    "LavaRecord": ".lava_network",
    "LavaEpisodes": ".lava_network",
    "replicate": ".batching",
    "LavaTimeoutError": ".errors",
    "quantize_ir": ".quantize",
    "FixedNetwork": ".quantize",
    "QuantReport": ".quantize",
    "simulate_fixed": ".fixed_sim",
    "FixedRecord": ".fixed_sim",
    "to_nir": ".nir_io",
    "from_nir": ".nir_io",
    "export_command": ".cli_commands",
    "verify_command": ".cli_commands",
    "snap_to_literals": ".quantize",
    "ExportError": ".errors",
    "UnsupportedError": ".errors",
    "lava_available": "._compat",
    "evaluate_lava": ".lava_eval",
    "LavaEvalResult": ".lava_eval",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'spikeplastic.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
