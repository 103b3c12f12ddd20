"""Loihi 2's number formats in one place: what the chip (and Lava's fixed-point models) can hold, and
the projections onto it.

Two users, one recipe: the exporter (:func:`spikeplastic.export.quantize_ir`) takes the numpy forms
(float arrays in, integers out); Loihi-legal training (:func:`spikeplastic.quant.loihi_legal`) takes
the straight-through torch forms (``*_ste``: forward the value the integers represent, backward the
identity). No Lava import. The recipe (LAVA_NOTES "Fixed point"; one scale ``k`` per LIF population,
integer units per float unit, so that ``v_int ~= 64 k v`` and ``W ~= W_int 2^wexp / k``)::

    k         = min(vth_int / max(vth),  limit * 2^7 / max|w_in|  over incoming projections)
                vth_int = 2^14 (default), limit = 254 (static) or 254 / headroom (plastic)
    vth_int   = round(vth * k)                                 17-bit; spike when v_int > vth_int << 6
    dv_int    = clip(round(4096 dv), 0, 4095)                  12-bit decays
    du_int    = clip(round(4096 du) - 1, 0, 4095)              (Lava adds 1: du = 1 -> 4095)
    bias_mant * 2^bias_exp = round(b * 64 k)                   13-bit signed mantissa, exponent 0..7
    wexp      = max(0, ceil(log2(max|W| k / limit)))           weight exponent in [-8, 7]
    W_int     = round(W k / 2^wexp)                            8-bit; mixed-sign and plastic matrices even
                                                               (Lava drops 1 LSB of them)
    tau_int   = round(tau) in [1, 255]                         learning-engine trace time constants
    literal   m * 2^e, m in [-8, 7], e in [-7, 8]              learning-rule coefficients
    impulse   integer <= 127                                   7-bit traces

The numpy and torch forms of a quantity give the same values (tests/core/test_core_loihi_format.py),
with two known exceptions, both where a weight (not the threshold) sets ``k``:

- :func:`fixed_point_scale` on tensors computes ``limit * 2^7 / wmax`` as a number divided by a
  tensor, which torch evaluates as reciprocal times number: up to 1 ulp from the float form.
- :func:`weights_ste` divides by ``2^wexp / k`` where :func:`quantize_weights` multiplies by
  ``k / 2^wexp``; a weight on a rounding half-way point can round apart. The largest weight of a
  plastic matrix that sets ``k`` lands on one by construction (``limit = 127`` is odd, the grid is
  even), so there training and export can differ by 2 LSB on that weight.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from .functional.plasticity import decay_factor

__all__ = [
    # literals
    "LITERAL_MANTISSAS", "LITERAL_EXPONENTS", "LITERALS", "literal_parts", "is_literal", "nearest_literal",
    "best_scaled_impulse",
    # widths and ranges
    "VTH_BITS", "UV_BITS", "STATE_SCALE", "DECAY_BITS", "DECAY_ONE", "BIAS_MANT_BITS", "BIAS_EXP_MAX",
    "WEIGHT_EXP_RANGE", "WEIGHT_RANGE", "WEIGHT_LIMIT", "TRACE_MAX", "TAU_RANGE", "DEFAULT_VTH_INT",
    # numpy forms
    "weight_limit", "fixed_point_scale", "weight_exponent", "weight_sign_mode", "quantize_weights",
    "quantize_vth", "decay_int", "quantize_dv", "quantize_du", "dv_value", "du_value", "quantize_bias",
    "quantize_tau", "impulse_cap", "trace_peak", "lava_trace_decay",
    # torch forms
    "straight_through", "weights_ste", "vth_ste", "dv_ste", "du_ste", "bias_ste", "tau_ste",
]

# ---- widths and ranges ------------------------------------------------------------------------
VTH_BITS = 17  # threshold mantissa (unsigned)
UV_BITS = 24  # LIF current and voltage state (signed)
STATE_SCALE = 64  # u, v are held at 2^6 x the weight/threshold units (Lava: a_in << 6, vth << 6)
DECAY_BITS = 12
DECAY_ONE = 2**DECAY_BITS  # du, dv are multiples of 1/4096
BIAS_MANT_BITS = 13  # signed
BIAS_EXP_MAX = 7
WEIGHT_EXP_RANGE = (-8, 7)
WEIGHT_RANGE = (-256, 255)  # 8-bit weights plus sign, as Lava clips them
WEIGHT_LIMIT = 254.0  # largest even magnitude both signs hold
TRACE_MAX = 2**7 - 1  # 7-bit traces; also the largest impulse
TAU_RANGE = (1, 255)
DEFAULT_VTH_INT = 2**14  # threshold at 2^14 of its 17 bits: 8x headroom below the 24-bit state

# ---- learning-rule literals ---------------------------------------------------------------------
LITERAL_MANTISSAS = range(-8, 8)
LITERAL_EXPONENTS = range(-7, 9)
#: every Lava rule literal ``m*2^e``, ascending, each value once (float64)
LITERALS: np.ndarray = np.array(sorted({m * 2.0**e for m in LITERAL_MANTISSAS for e in LITERAL_EXPONENTS}))
LITERALS.setflags(write=False)
# the same values ordered by magnitude (negative first at equal magnitude): a first-minimum search
# over them breaks ties towards the smaller magnitude
_BY_MAGNITUDE: np.ndarray = LITERALS[np.lexsort((LITERALS, np.abs(LITERALS)))]
_BY_MAGNITUDE.setflags(write=False)
_BY_MAGNITUDE_LIST: list[float] = _BY_MAGNITUDE.tolist()


def literal_parts(v: float) -> tuple[int, int] | None:
    """``(m, e)`` with ``v == m * 2**e``, m in [-8, 7], e in [-7, 8] (smallest ``|m|``), or None."""
    if v == 0:
        return (0, 0)
    best = None
    for e in LITERAL_EXPONENTS:
        m = v / 2.0**e
        if m == int(m) and LITERAL_MANTISSAS.start <= m < LITERAL_MANTISSAS.stop:
            if best is None or abs(m) < abs(best[0]):
                best = (int(m), e)
    return best


def is_literal(v: float) -> bool:
    """Whether ``v`` is a Lava learning-rule literal ``m*2^e`` (m in [-8, 7], e in [-7, 8])."""
    return literal_parts(float(v)) is not None


def nearest_literal(x):  # type: ignore[no-untyped-def]
    """The Lava rule literal ``m*2^e`` (m in [-8, 7], e in [-7, 8]) nearest to ``x``; ties go to
    the smaller magnitude.

    A float or numpy array gives float64 values (a float for a scalar). A tensor gives the
    straight-through projection used in training: forward the nearest literal (searched in ``x``'s
    dtype), backward the identity.
    """
    if isinstance(x, Tensor):
        grid = torch.tensor(_BY_MAGNITUDE_LIST, dtype=x.dtype, device=x.device)
        idx = (x.detach().unsqueeze(-1) - grid).abs().argmin(-1)
        return straight_through(x, grid[idx])
    a = np.asarray(x, dtype=np.float64)
    out = _BY_MAGNITUDE[np.abs(a[..., None] - _BY_MAGNITUDE).argmin(-1)]
    return float(out) if out.ndim == 0 else out


def best_scaled_impulse(target: float, shift: int, imp_max: int = TRACE_MAX) -> tuple[int, int, int, float] | None:
    """``(impulse, m, e, rel_error)`` with ``impulse * m * 2^(e - shift) ~= target`` (> 0), m in [1, 7]
    and e in [-7, 8] (a positive rule literal), ``1 <= impulse <= imp_max``: the smallest relative
    error, then the largest impulse. None when no such pair exists."""
    best = None
    for e in LITERAL_EXPONENTS:
        for m in range(1, LITERAL_MANTISSAS.stop):
            unit = m * 2.0 ** (e - shift)
            imp = int(round(target / unit))
            if not 1 <= imp <= imp_max:
                continue
            err = abs(imp * unit - target) / target
            key = (round(err, 12), -imp)
            if best is None or key < best[0]:
                best = (key, imp, m, e, err)
    return None if best is None else (best[1], best[2], best[3], best[4])


# ---- scale and weights (numpy) ----------------------------------------------------------------
def weight_limit(plastic: bool, headroom: float) -> float:
    """Largest ``|W_int|`` a projection may use: 254, or 254 / headroom for a plastic one (learning
    moves its weights within Lava's [-256, 255])."""
    return WEIGHT_LIMIT / headroom if plastic else WEIGHT_LIMIT


def fixed_point_scale(vth_max, incoming: Iterable[tuple], vth_int: int = DEFAULT_VTH_INT):  # type: ignore[no-untyped-def]
    """The scale ``k`` of a population: ``vth_int / vth_max``, lowered so that every incoming
    projection ``(wmax, limit)`` with ``wmax > 0`` needs a weight exponent <= 7.

    Floats give a float; tensors (training, detached) give a tensor."""
    k = vth_int / vth_max
    for wmax, limit in incoming:
        if float(wmax) > 0:
            cap = limit * 2.0 ** WEIGHT_EXP_RANGE[1] / wmax
            k = torch.minimum(k, cap) if isinstance(k, Tensor) else min(k, cap)
    return k


def weight_exponent(wmax: float, k: float, limit: float) -> int:
    """The weight exponent that fits ``max|W| = wmax`` into ``limit`` integer units at scale ``k``
    (0 or more; the caller checks it against :data:`WEIGHT_EXP_RANGE`)."""
    return 0 if wmax == 0 else max(0, math.ceil(math.log2(wmax * k / limit)))


def weight_sign_mode(w_int: np.ndarray) -> str:
    """Lava's sign mode for integer weights: ``"excitatory"`` (all >= 0), ``"inhibitory"`` (all <= 0)
    or ``"mixed"``."""
    if np.min(w_int) >= 0:
        return "excitatory"
    if np.max(w_int) <= 0:
        return "inhibitory"
    return "mixed"


def _as_lava_holds(w_int: np.ndarray, mode: str) -> np.ndarray:
    """Lava's clip_weights + truncate_weights for 8-bit weights (PyDenseModelBitAcc / LearningDense)."""
    w = w_int.astype(np.int64)
    if mode == "inhibitory":
        w = -w
    lo = WEIGHT_RANGE[0] if mode == "mixed" else 0
    w = np.clip(w, lo, WEIGHT_RANGE[1])
    if mode == "mixed":
        w = (w >> 1) << 1
    if mode == "inhibitory":
        w = -w
    return w


def quantize_weights(w: np.ndarray, k: float, wexp: int, plastic: bool) -> tuple[np.ndarray, str]:
    """``(W_int, sign_mode)``: the integers Lava holds for ``w`` at scale ``k`` and exponent ``wexp``
    (after its clipping and, for mixed-sign or plastic matrices, its evenness)."""
    raw = np.rint(w * k / 2.0**wexp).astype(np.int64)
    mode = "mixed" if plastic else weight_sign_mode(raw)
    if mode == "mixed":
        raw = 2 * np.rint(w * k / 2.0**wexp / 2).astype(np.int64)
    return _as_lava_holds(raw, mode), mode


# ---- LIF parameters (numpy) -------------------------------------------------------------------
def quantize_vth(vth: np.ndarray, k: float) -> np.ndarray:
    """``round(vth * k)`` (int64; the caller checks the 17-bit range)."""
    return np.rint(vth * k).astype(np.int64)


def decay_int(d: np.ndarray) -> np.ndarray:
    """``round(4096 * d)`` (int64, not clipped): a decay in units of 1/4096."""
    return np.rint(DECAY_ONE * d).astype(np.int64)


def quantize_dv(dv: np.ndarray) -> np.ndarray:
    """Lava's 12-bit ``dv``: ``clip(round(4096 dv), 0, 4095)`` (dv = 1 is not representable)."""
    return np.clip(decay_int(dv), 0, DECAY_ONE - 1)


def quantize_du(du: np.ndarray) -> np.ndarray:
    """Lava's 12-bit ``du`` (it adds 1): ``clip(round(4096 du) - 1, 0, 4095)`` (du = 0 becomes 1/4096)."""
    return np.clip(decay_int(du) - 1, 0, DECAY_ONE - 1)


def dv_value(dv_int: np.ndarray) -> np.ndarray:
    """The float ``dv`` that Lava's integer ``dv`` applies."""
    return dv_int / float(DECAY_ONE)


def du_value(du_int: np.ndarray) -> np.ndarray:
    """The float ``du`` that Lava's integer ``du`` applies (``du_int + 1`` units of 1/4096)."""
    return np.minimum((du_int + 1) / float(DECAY_ONE), 1.0)


def quantize_bias(b: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """``(bias_mant, bias_exp)`` with ``bias_mant * 2^bias_exp ~= round(b * 64 k)``, a 13-bit signed
    mantissa (int64; the caller checks ``bias_exp <= 7``)."""
    b_int = np.rint(b * k * STATE_SCALE).astype(np.int64)
    bexp = np.zeros_like(b_int)
    mant = b_int.copy()
    mmax = 2 ** (BIAS_MANT_BITS - 1) - 1
    big = np.abs(b_int) > mmax
    if np.any(big):
        bexp[big] = np.ceil(np.log2(np.abs(b_int[big]) / mmax)).astype(np.int64)
        mant[big] = np.rint(b_int[big] / 2.0 ** bexp[big]).astype(np.int64)
    return mant, bexp


# ---- learning engine (numpy / float) ----------------------------------------------------------
def quantize_tau(tau: float) -> int:
    """An integer trace time constant ``round(tau)`` (the caller checks :data:`TAU_RANGE`)."""
    return int(round(float(tau)))


def impulse_cap(tau: int) -> int:
    """Largest trace impulse that no spike train saturates: a neuron firing every step accumulates
    ``impulse / (1 - exp(-1/tau))``, so ``floor(127 (1 - exp(-1/tau)))`` (at least 1)."""
    return max(1, math.floor(TRACE_MAX * (1 - decay_factor(tau))))


def trace_peak(impulse: int, tau: int) -> float:
    """The worst-case trace ``min(127, impulse / (1 - exp(-1/tau)))`` (127: it can saturate)."""
    return min(TRACE_MAX, impulse / (1 - decay_factor(tau)))


def lava_trace_decay(tau: int) -> float:
    """``exp(-1/tau)`` computed exactly as Lava's learning engine does (``np.exp(-t / taus)`` on an
    array, ``magma/core/model/py/connection.py``), for emulations that must match its integers bit
    for bit (:func:`spikeplastic.export.simulate_fixed`). The torch model's float traces use
    :func:`spikeplastic.functional.decay_factor` instead."""
    return float(np.exp(-1 / np.array([[tau]]))[0, 0])


# ---- straight-through torch forms (training) --------------------------------------------------
def straight_through(x: Tensor, y: Tensor) -> Tensor:
    """Forward ``y``, backward the identity to ``x``."""
    return x + (y - x).detach()


def weights_ste(w: Tensor, k: Tensor, limit: float, plastic: bool) -> Tensor:
    """``w`` on the grid ``W_int * 2^wexp / k`` that :func:`quantize_weights` gives (straight-through)."""
    wd = w.detach()
    wexp = weight_exponent(float(wd.abs().max()), float(k), limit)
    step = 2.0**wexp / k
    ints = torch.round(wd / step)
    mixed = plastic or (bool((ints < 0).any()) and bool((ints > 0).any()))
    if mixed:
        ints = (2 * torch.round(wd / step / 2)).clamp(WEIGHT_RANGE[0], WEIGHT_RANGE[1] - 1)
    elif bool((ints < 0).any()):
        ints = ints.clamp(-WEIGHT_RANGE[1], 0)
    else:
        ints = ints.clamp(0, WEIGHT_RANGE[1])
    return straight_through(w, ints * step)


def vth_ste(v: Tensor, k: Tensor) -> Tensor:
    """``round(vth * k) / k`` within the 17-bit threshold range (straight-through)."""
    return straight_through(v, torch.round(v.detach() * k).clamp(1, 2**VTH_BITS - 1) / k)


def dv_ste(v: Tensor) -> Tensor:
    """The ``dv`` Lava applies, :func:`dv_value` of :func:`quantize_dv` (straight-through)."""
    return straight_through(v, torch.round(DECAY_ONE * v.detach()).clamp(0, DECAY_ONE - 1) / DECAY_ONE)


def du_ste(v: Tensor) -> Tensor:
    """The ``du`` Lava applies, :func:`du_value` of :func:`quantize_du` (straight-through)."""
    return straight_through(v, torch.round(DECAY_ONE * v.detach()).clamp(1, DECAY_ONE) / DECAY_ONE)


def _bias_value(b: Tensor, k: Tensor) -> Tensor:
    ints = torch.round(b * STATE_SCALE * k)
    mmax = 2 ** (BIAS_MANT_BITS - 1) - 1
    big = ints.abs() > mmax
    if bool(big.any()):
        bexp = torch.where(big, torch.ceil(torch.log2(ints.abs().clamp_min(1) / mmax)), torch.zeros_like(ints))
        ints = torch.round(ints / 2.0**bexp) * 2.0**bexp
    return ints / (STATE_SCALE * k)


def bias_ste(v: Tensor, k: Tensor) -> Tensor:
    """``bias_mant * 2^bias_exp / (64 k)`` as :func:`quantize_bias` gives it (straight-through; the
    exponent is not capped at 7 here: the exporter reports a bias too large for the scale)."""
    return straight_through(v, _bias_value(v.detach(), k))


def tau_ste(v: Tensor) -> Tensor:
    """``round(tau)`` in [1, 255] (straight-through)."""
    return straight_through(v, torch.round(v.detach()).clamp(TAU_RANGE[0], TAU_RANGE[1]))
