"""``to_lava``: a trained network (or its IR) as Lava processes that keep learning with the same rule."""
from __future__ import annotations

import importlib.util
from typing import Any, Mapping

from ._plan import as_ir, build_fixed_plan, build_float_plan, check_mode_backend
from .errors import BackendUnavailableError

__all__ = ["to_lava", "BackendUnavailableError", "loihi_backend_available"]


def loihi_backend_available() -> bool:
    """Whether Lava's Loihi 2 backend (the never-public ``lava-loihi`` extension) is importable."""
    from ._compat import lava_available

    if not lava_available():
        return False
    for mod in ("lava.utils.loihi2_profiler", "lava.magma.compiler.subcompilers.nc"):
        try:
            if importlib.util.find_spec(mod) is None:
                return False
        except ModuleNotFoundError:
            return False
    return True


def to_lava(
    net_or_ir: Any,
    mode: str = "float",
    backend: str = "cpu",
    *,
    scale: float | Mapping[str, float] | None = None,
    rng_seed: int = 0,
    timeout: float = 600.0,
) -> Any:
    """Export a network to Lava processes; returns a :class:`~spikeplastic.export.LavaNetwork`.

    Mapping (float): LIF populations -> ``lava.proc.lif.LIF`` (subtractive reset -> the project's
    ``SubtractLIF`` CPU model); static projections -> ``Dense``; plastic ones -> ``LearningDense``
    with a ``Loihi2FLearningRule`` (``dw = "y0*x1 - x0*y1"`` for STDP, impulses = the learned
    amplitudes, taus = the learned time constants, ``t_epoch = 1``), alpha in ``tag_1``, the fixed
    weight in ``tag_2`` for decay; three-factor rules -> ``Loihi3FLearningRule`` fed by the project's
    ``ThirdFactor`` process; inputs -> ``io.source.RingBuffer``; outputs -> the project's ``Recorder``
    sinks (a ``Monitor``'s read-back is element-wise and takes minutes for large weight histories).
    The network's timing already is Lava's (``a[t] = W[t-2] @ s_pre[t-1]``), so no delay
    compensation is needed: the export is exact in float (see :func:`~spikeplastic.export.verify`).

    ``mode="fixed"`` first projects the network with :func:`~spikeplastic.export.quantize_ir`
    (``scale``) and runs Lava's integer models; :func:`~spikeplastic.export.simulate_fixed` is their
    exact torch emulation (same ``rng_seed``).

    Args:
        net_or_ir: a :class:`~spikeplastic.Network`, a :class:`~spikeplastic.ir.NetworkIR`, or an IR file.
        mode: ``"float"`` or ``"fixed"``. backend: ``"cpu"`` (Lava's simulator) or ``"loihi2"``.
        scale: fixed mode only: quantisation scale per population (see ``quantize_ir``).
        rng_seed: fixed mode: seed of the learning engine's stochastic rounding.
        timeout: seconds a single :meth:`LavaNetwork.run` may take before its processes are killed.

    Raises (all before any Lava process starts):
        ValueError: bad mode/backend, or a value the target cannot hold (``ExportError``, e.g. a decay
            that is not a Lava literal m*2^e, a tau outside [1, 255] in fixed mode).
        NotImplementedError: an unsupported construct (``UnsupportedError``: clip on H, subtract reset
            outside float/CPU, Hebb/Oja/modulation in fixed mode, ...).
        BackendUnavailableError: ``backend="loihi2"`` without ``lava-loihi``.
        ImportError: lava-nc is not installed (the message has the install command).

    Example::

        >>> lnet = to_lava(net)                     # doctest: +SKIP
        >>> rec = lnet.run(x)                       # x: [T, n_in] spikes
        >>> rec.spikes["l1"].shape, rec.weights["in_to_l1"].shape
    """
    ir = as_ir(net_or_ir)
    check_mode_backend(mode, backend)
    fixed = report = None
    if mode == "float":
        if scale is not None:
            raise ValueError("scale= applies to mode='fixed' only")
        plan = build_float_plan(ir, backend)
    else:
        from .quantize import quantize_ir

        fixed, report = quantize_ir(ir, scale=scale)
        plan = build_fixed_plan(fixed, backend)
    if backend == "loihi2" and not loihi_backend_available():
        raise BackendUnavailableError(
            "backend='loihi2' needs Lava's Loihi extension (lava-loihi), which Intel never published and "
            "which is not installed here. Use backend='cpu' (Lava's bit-accurate fixed-point simulator with "
            "mode='fixed') or run on an INRC system that has lava-loihi."
        )
    if not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    from ._compat import import_lava

    import_lava()
    from .lava_network import LavaNetwork

    net = LavaNetwork(ir, plan, fixed=fixed, timeout=timeout, rng_seed=rng_seed)
    net.quant_report = report
    return net
