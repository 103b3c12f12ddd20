"""Project a :class:`~spikeplastic.ir.NetworkIR` onto what Loihi 2 (and Lava's fixed-point models) can hold.

Recipe (LAVA_NOTES "Fixed point"; one scale ``k`` per LIF population, float units -> integers)::

    vth_int   = round(vth * k)                         17-bit, spike when v_int > vth_int << 6
    W_int     = round(W * k / 2^wexp)                  8-bit; mixed-sign matrices even (Lava drops 1 LSB)
    dv_int    = round(4096 * dv)                       12-bit
    du_int    = round(4096 * du) - 1                   12-bit (4095: no current memory)
    bias_mant * 2^bias_exp = round(b * k * 64)         13-bit signed mantissa, exponent 0..7

so that ``v_int ~= 64*k*v`` and ``W ~= W_int * 2^wexp / k``. Plastic projections keep one bit of
headroom (``|W_int| <= 127``) because learning moves weights within Lava's [-256, 255].

STDP (2-factor, optional alpha in ``tag_1`` and decay towards the anchor in ``tag_2``): each of the
two products ``S*y0*x1[*t]`` and ``S*x0*y1[*t]`` gets its own literal ``S = m*2^e`` and an integer
trace impulse (<= 127) such that ``impulse * S * 2^-shift * t`` reproduces ``a_plus * alpha * k / 2^wexp``
weight LSBs per unit of trace (``shift`` = Lava's MAC right shift, 5 with a ``t`` factor). Impulses
are capped at ``floor(127 * (1 - exp(-1/tau)))`` so that the 7-bit traces never saturate (measured:
saturating traces cost 30-270 LSB mean weight error over 1000 steps, the cap ~5). Trace time constants
are rounded to integers in [1, 255]. Fractional impulses are never used (Lava's simulator rounds them
up with probability 2f, a bias).

:func:`quantize_ir` returns the integer network and a :class:`QuantReport` of every rounding error.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from spikeplastic import ir as _ir

from ._plan import ExportError, UnsupportedError, _literal_parts, as_ir

__all__ = [
    "FixedPopulation",
    "FixedProduct",
    "FixedRule",
    "FixedProjection",
    "FixedNetwork",
    "QuantReport",
    "quantize_ir",
    "VTH_BITS",
    "WEIGHT_EXP_RANGE",
]

VTH_BITS = 17
UV_BITS = 24
DECAY_BITS = 12
BIAS_MANT_BITS = 13
WEIGHT_EXP_RANGE = (-8, 7)
TRACE_MAX = 127
TAU_RANGE = (1, 255)
DEFAULT_VTH_INT = 2**14  # leaves 8x headroom below the 17-bit threshold / 24-bit state limits


@dataclass(frozen=True)
class FixedPopulation:
    """Integer LIF parameters (``[n]`` int64 arrays); ``scale`` = k (``v_int ~= 64*k*v``)."""

    name: str
    n: int
    kind: str
    du: np.ndarray | None = None
    dv: np.ndarray | None = None
    vth: np.ndarray | None = None
    bias_mant: np.ndarray | None = None
    bias_exp: np.ndarray | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class FixedProduct:
    """One product of a Lava rule: ``sign * mantissa * 2^exp * dependency * factors``."""

    sign: int
    mantissa: int
    exp: int
    dependency: str  # "x0", "y0" or "u0"
    factors: tuple[str, ...]

    def lava(self) -> str:
        return "*".join([f"{self.mantissa}*2^{self.exp}", self.dependency, *self.factors])

    @property
    def s_mantissa(self) -> int:  # what Lava's parser stores (|mantissa| <= 7: no normalisation)
        return self.sign * self.mantissa

    @property
    def s_exp(self) -> int:
        return self.exp + 7


@dataclass(frozen=True)
class FixedRule:
    """A 2-factor rule for Lava's bit-approximate learning engine (t_epoch = 1)."""

    products: tuple[FixedProduct, ...]
    x1_impulse: int
    x1_tau: int
    y1_impulse: int
    y1_tau: int
    tag_1: np.ndarray | None = None
    tag_2: np.ndarray | None = None

    def dw(self) -> str:
        out = ""
        for i, p in enumerate(self.products):
            s = p.lava()
            out = (s if p.sign > 0 else f"-{s}") if i == 0 else out + (" + " if p.sign > 0 else " - ") + s
        return out


@dataclass(frozen=True)
class FixedProjection:
    """Integer weights exactly as Lava holds them (after its clipping/evenness), ``a = (W@s) << weight_exp``."""

    name: str
    pre: str
    post: str
    weights: np.ndarray
    weight_exp: int
    sign_mode: str  # "mixed" | "excitatory" | "inhibitory"
    rule: FixedRule | None = None

    @property
    def plastic(self) -> bool:
        return self.rule is not None


@dataclass(frozen=True)
class FixedNetwork:
    """The Loihi-legal integer form of a network (what ``to_lava(mode="fixed")`` runs)."""

    populations: tuple[FixedPopulation, ...]
    projections: tuple[FixedProjection, ...]
    input_name: str

    def population(self, name: str) -> FixedPopulation:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def projection(self, name: str) -> FixedProjection:
        for p in self.projections:
            if p.name == name:
                return p
        raise KeyError(name)

    def voltage_scale(self, pop: str) -> float:
        """Integer voltage units per float unit (``64 * k``)."""
        return 64.0 * self.population(pop).scale

    def weight_scale(self, proj: str) -> float:
        """Integer weight units per float unit (``k_post / 2^wexp``)."""
        pr = self.projection(proj)
        return self.population(pr.post).scale / 2.0**pr.weight_exp

    def to_float_ir(self, like: _ir.NetworkIR) -> _ir.NetworkIR:
        """The float network that these integers represent (same topology/rules as ``like``)."""
        pops = []
        for p in like.populations:
            if p.kind == "input":
                pops.append(p)
                continue
            f = self.population(p.name)
            k = f.scale
            du = np.minimum((f.du + 1) / 4096.0, 1.0)
            pops.append(_ir.Population(
                name=p.name, n=p.n, kind="lif", du=du, dv=f.dv / 4096.0, vth=f.vth / k,
                bias=(f.bias_mant.astype(np.float64) * 2.0**f.bias_exp) / (64.0 * k), reset=p.reset,
            ))
        projs = []
        for pr in like.projections:
            f = self.projection(pr.name)
            projs.append(_ir.Projection(
                name=pr.name, pre=pr.pre, post=pr.post, weight=f.weights / self.weight_scale(pr.name),
                rule=pr.rule, alpha=pr.alpha, decay=pr.decay, clip=pr.clip, modulation=pr.modulation,
            ))
        return _ir.NetworkIR(tuple(pops), tuple(projs), meta=dict(like.meta))


@dataclass
class QuantReport:
    """Rounding errors of :func:`quantize_ir` (relative errors are w.r.t. each quantity's own scale)."""

    populations: dict[str, dict[str, float]] = field(default_factory=dict)
    projections: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def max_weight_rel_error(self) -> float:
        vals = [p["weight_rel_error"] for p in self.projections.values()]
        return max(vals) if vals else 0.0


def _sign_mode(w: np.ndarray) -> str:
    if np.min(w) >= 0:
        return "excitatory"
    if np.max(w) <= 0:
        return "inhibitory"
    return "mixed"


def _as_lava_holds(w_int: np.ndarray, mode: str) -> np.ndarray:
    """Lava's clip_weights + truncate_weights for 8-bit weights (PyDenseModelBitAcc / LearningDense)."""
    w = w_int.astype(np.int64)
    if mode == "inhibitory":
        w = -w
    lo = -256 if mode == "mixed" else 0
    w = np.clip(w, lo, 255)
    if mode == "mixed":
        w = (w >> 1) << 1
    if mode == "inhibitory":
        w = -w
    return w


def _pop_scales(ir: _ir.NetworkIR, scale: float | Mapping[str, float] | None, headroom: float) -> dict[str, float]:
    out = {}
    for p in ir.populations:
        if p.kind == "input":
            continue
        if isinstance(scale, Mapping):
            k = scale.get(p.name)
        else:
            k = scale
        if k is None:
            k = DEFAULT_VTH_INT / float(np.max(p.vth))
            for pr in ir.projections:  # keep every incoming weight exponent <= 7
                wmax = float(np.max(np.abs(pr.weight))) if pr.post == p.name and pr.weight.size else 0.0
                if wmax > 0:
                    limit = 254.0 / headroom if pr.plastic else 254.0
                    k = min(k, limit * 2.0 ** WEIGHT_EXP_RANGE[1] / wmax)
        k = float(k)
        if not (math.isfinite(k) and k > 0):
            raise ExportError(f"quantisation scale for population {p.name!r} must be finite and > 0, got {k!r}")
        out[p.name] = k
    return out


def _best_scaled_impulse(target: float, shift: int, imp_max: int = TRACE_MAX) -> tuple[int, int, int, float]:
    """(impulse, mantissa, exp, rel_error) with impulse*mantissa*2^(exp-shift) ~= target (> 0)."""
    best = None
    for e in range(-7, 9):
        for m in range(1, 8):
            unit = m * 2.0 ** (e - shift)
            imp = int(round(target / unit))
            if not 1 <= imp <= imp_max:
                continue
            err = abs(imp * unit - target) / target
            key = (round(err, 12), -imp)
            if best is None or key < best[0]:
                best = (key, imp, m, e, err)
    if best is None:
        lo, hi = 2.0 ** (-7 - shift), imp_max * 7 * 2.0 ** (8 - shift)
        raise ExportError(
            f"an STDP amplitude of {target:.3g} weight LSBs per trace unit is outside what an integer impulse "
            f"(<= {imp_max}) times a literal m*2^e can express ([{lo:.3g}, {hi:.3g}]); change the weight scale"
        )
    return best[1], best[2], best[3], best[4]


def quantize_ir(
    net_or_ir: Any,
    *,
    scale: float | Mapping[str, float] | None = None,
    plastic_headroom: float = 2.0,
    trace_impulse_max: int | None = None,
) -> tuple[FixedNetwork, QuantReport]:
    """Project ``net_or_ir`` onto Loihi-legal integers.

    Args:
        net_or_ir: a NetworkIR, a Network, or an IR file path.
        scale: ``k`` per LIF population (float or name -> float). Default ``2^14 / max(vth)``
            (threshold at 2^14 of its 17 bits; 8x headroom for the 24-bit state), lowered where an
            incoming projection would otherwise need a weight exponent above 7.
        plastic_headroom: plastic projections use at most ``254 / plastic_headroom`` of the weight range.
        trace_impulse_max: largest STDP trace impulse (<= 127). Traces are 7-bit and saturate at 127;
            a neuron firing every step accumulates ``impulse / (1 - exp(-1/tau))``. Default (None):
            ``floor(127 * (1 - exp(-1/tau)))`` per trace, so that no spike train saturates it (at the
            cost of resolution for long taus: tau = 8 -> 14, tau = 20 -> 6). The report's
            ``*_trace_peak`` is that worst-case trace (127 means it can saturate).

    Returns:
        (FixedNetwork, QuantReport).

    Raises:
        ExportError: a value that Loihi cannot hold (threshold > 17 bits, bias > 13+7 bits, weight
            exponent outside [-8, 7], trace tau outside [1, 255], an illegal rule literal).
        UnsupportedError: constructs with no fixed-point mapping (subtract reset, current inputs,
            Hebb/Oja, neuromodulation, clip).
    """
    ir = as_ir(net_or_ir)
    if trace_impulse_max is not None and not 1 <= int(trace_impulse_max) <= TRACE_MAX:
        raise ValueError(f"trace_impulse_max must be None or lie in [1, {TRACE_MAX}], got {trace_impulse_max!r}")
    rep = QuantReport()
    ks = _pop_scales(ir, scale, plastic_headroom)
    pops: list[FixedPopulation] = []
    for p in ir.populations:
        if p.kind == "input":
            if p.input_kind != "spikes":
                raise UnsupportedError(f"input population {p.name!r}: fixed point takes spike inputs only (input_kind='current')")
            pops.append(FixedPopulation(p.name, p.n, "input"))
            continue
        if p.reset != "zero":
            raise UnsupportedError(f"population {p.name!r}: subtractive reset has no fixed-point / Loihi model")
        k = ks[p.name]
        vth = np.rint(p.vth * k).astype(np.int64)
        if np.any(vth > 2**VTH_BITS - 1) or np.any(vth < 1):
            raise ExportError(
                f"population {p.name!r}: threshold {p.vth.max():.4g} * scale {k:.4g} = {vth.max()} does not fit the "
                f"{VTH_BITS}-bit threshold (1..{2**VTH_BITS - 1}); pass a smaller scale"
            )
        dv = np.rint(4096 * p.dv).astype(np.int64)
        du = np.rint(4096 * p.du).astype(np.int64) - 1
        if np.any(dv > 4095):
            rep.notes.append(f"{p.name}: dv = 1 is not representable (12 bits); using 4095/4096")
        if np.any(du < 0):
            rep.notes.append(f"{p.name}: du = 0 (no current decay) is not representable; using 1/4096")
        dv = np.clip(dv, 0, 4095)
        du = np.clip(du, 0, 4095)
        b = np.rint(p.bias * k * 64).astype(np.int64)
        bexp = np.zeros_like(b)
        mant = b.copy()
        big = np.abs(b) > 2 ** (BIAS_MANT_BITS - 1) - 1
        if np.any(big):
            bexp[big] = np.ceil(np.log2(np.abs(b[big]) / (2 ** (BIAS_MANT_BITS - 1) - 1))).astype(np.int64)
            if np.any(bexp > 7):
                raise ExportError(f"population {p.name!r}: bias {np.abs(p.bias).max():.4g} is too large for a 13-bit "
                                  "mantissa with exponent <= 7 at this scale")
            mant[big] = np.rint(b[big] / 2.0 ** bexp[big]).astype(np.int64)
        pops.append(FixedPopulation(p.name, p.n, "lif", du=du, dv=dv, vth=vth, bias_mant=mant, bias_exp=bexp, scale=k))
        bias_eff = mant * 2.0**bexp
        rep.populations[p.name] = {
            "scale": k,
            "vth_rel_error": float(np.max(np.abs(vth / k - p.vth) / p.vth)),
            "dv_abs_error": float(np.max(np.abs(dv / 4096 - p.dv))),
            "du_abs_error": float(np.max(np.abs(np.minimum((du + 1) / 4096, 1.0) - p.du))),
            "bias_abs_error": float(np.max(np.abs(bias_eff / (64 * k) - p.bias))) if p.bias.size else 0.0,
        }
    projs: list[FixedProjection] = []
    for pr in ir.projections:
        k = ks[pr.post]
        if pr.clip is not None:
            raise UnsupportedError(f"projection {pr.name!r}: clip on H is not exportable")
        if pr.modulation is not None:
            raise UnsupportedError(f"projection {pr.name!r}: neuromodulated rules run in float mode only "
                                   "(the ThirdFactor process has no fixed-point model)")
        if pr.plastic and not isinstance(pr.rule, _ir.STDPRule):
            raise UnsupportedError(f"projection {pr.name!r}: fixed point exports STDP only, not {type(pr.rule).__name__}")
        limit = 254.0 / plastic_headroom if pr.plastic else 254.0
        wmax = float(np.max(np.abs(pr.weight))) if pr.weight.size else 0.0
        wexp = 0 if wmax == 0 else max(0, math.ceil(math.log2(wmax * k / limit)))
        if not WEIGHT_EXP_RANGE[0] <= wexp <= WEIGHT_EXP_RANGE[1]:
            raise ExportError(
                f"projection {pr.name!r}: weights up to {wmax:.4g} at scale {k:.4g} need weight exponent {wexp}, "
                f"outside Loihi's {list(WEIGHT_EXP_RANGE)}; pass a smaller scale for population {pr.post!r}"
            )
        raw = np.rint(pr.weight * k / 2.0**wexp).astype(np.int64)
        mode = "mixed" if pr.plastic else _sign_mode(raw)
        if mode == "mixed":
            raw = 2 * np.rint(pr.weight * k / 2.0**wexp / 2).astype(np.int64)
        w_int = _as_lava_holds(raw, mode)
        wscale = k / 2.0**wexp
        err = float(np.max(np.abs(w_int / wscale - pr.weight))) if pr.weight.size else 0.0
        info: dict[str, Any] = {
            "weight_exp": wexp, "sign_mode": mode,
            "weight_abs_error": err, "weight_rel_error": err / wmax if wmax else 0.0,
            "lsb": 1.0 / wscale,
        }
        rule = None
        if pr.plastic:
            rule, rinfo = _quantize_stdp(pr, wscale, w_int, trace_impulse_max)
            info.update(rinfo)
        rep.projections[pr.name] = info
        projs.append(FixedProjection(pr.name, pr.pre, pr.post, w_int, wexp, mode, rule))
    return FixedNetwork(tuple(pops), tuple(projs), ir.input.name), rep


def _quantize_stdp(pr: _ir.Projection, wscale: float, w_int: np.ndarray, imp_max: int | None) -> tuple[FixedRule | None, dict[str, Any]]:
    r = pr.rule
    assert isinstance(r, _ir.STDPRule)
    info: dict[str, Any] = {}
    taus = []
    for name in ("tau_plus", "tau_minus"):
        tau = float(getattr(r, name))
        ti = int(round(tau))
        if not TAU_RANGE[0] <= ti <= TAU_RANGE[1]:
            raise ExportError(f"projection {pr.name!r}: STDP {name} = {tau:.4g} is outside the chip's trace "
                              f"time constants {list(TAU_RANGE)} (integers)")
        taus.append(ti)
        info[f"{name}_int"] = ti
        info[f"{name}_rel_error"] = abs(ti - tau) / tau
    tag_1 = None
    factors: tuple[str, ...] = ()
    shift = 0
    c = 1.0
    if pr.alpha is not None:
        alpha = np.broadcast_to(np.asarray(pr.alpha, dtype=np.float64), pr.weight.shape)
        amax = float(np.max(np.abs(alpha)))
        c = 255.0 / amax if amax > 0 else 1.0
        tag_1 = np.rint(alpha * c).astype(np.int64)
        factors = ("t",)
        shift = 5  # Lava's MAC: widths x1 (7) + t (9) + mantissa (4) = 20 -> >> 5
        info["alpha_rel_error"] = float(np.max(np.abs(tag_1 / c - alpha)) / amax) if amax else 0.0
    products: list[FixedProduct] = []
    imps = []
    for amp_name, dep, trace in (("a_plus", "y0", "x1"), ("a_minus", "x0", "y1")):
        amp = float(getattr(r, amp_name))
        target = amp * wscale / c
        if target == 0:
            imps.append(0)
            info[f"{amp_name}_rel_error"] = 0.0
            continue
        tau = taus[0] if trace == "x1" else taus[1]
        lim = imp_max if imp_max is not None else max(1, math.floor(TRACE_MAX * (1 - math.exp(-1 / tau))))
        imp, m, e, err = _best_scaled_impulse(target, shift, lim)
        imps.append(imp)
        info[f"{amp_name}_trace_peak"] = min(TRACE_MAX, imp / (1 - math.exp(-1 / tau)))
        products.append(FixedProduct(+1 if dep == "y0" else -1, m, e, dep, (trace, *factors)))
        info[f"{amp_name}_impulse"] = imp
        info[f"{amp_name}_literal"] = f"{m}*2^{e}"
        info[f"{amp_name}_rel_error"] = err
    tag_2 = None
    if pr.decay != 0:
        p = _literal_parts(float(pr.decay))
        if p is None:
            raise ExportError(f"projection {pr.name!r}: decay = {pr.decay!r} is not a Lava literal m*2^e")
        m, e = p
        products.append(FixedProduct(-1, m, e, "u0", ("w",)))
        products.append(FixedProduct(+1, m, e, "u0", ("d",)))
        tag_2 = w_int.copy()
    if not products:  # a_plus == a_minus == 0 and no decay: the weights never change
        info["dw"] = None
        return None, info
    info["dw"] = FixedRule(tuple(products), 0, 0, 0, 0).dw()
    return FixedRule(tuple(products), imps[0], taus[0], imps[1], taus[1], tag_1, tag_2), info
