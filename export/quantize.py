"""Project a :class:`~spikeplastic.ir.NetworkIR` onto what Loihi 2 (and Lava's fixed-point models) can hold.

:func:`quantize_ir` turns the IR into integers with the recipe of :mod:`spikeplastic.loihi_format`
(one scale ``k`` per LIF population, ``v_int ~= 64*k*v``, ``W ~= W_int * 2^wexp / k``; the same
recipe Loihi-legal training, :func:`spikeplastic.quant.loihi_legal`, projects onto) and returns the
:class:`FixedNetwork` with a :class:`QuantReport` of every rounding error. Plastic projections keep
one bit of headroom (``|W_int| <= 127``) because learning moves weights within Lava's [-256, 255].
:func:`snap_to_literals` is the float-mode counterpart: it only moves the rule coefficients onto
Lava's literal grid.

STDP (2-factor, optional alpha in ``tag_1`` and decay towards the anchor in ``tag_2``): each of the
two products ``S*y0*x1[*t]`` and ``S*x0*y1[*t]`` gets its own literal ``S = m*2^e`` and an integer
trace impulse (<= 127) such that ``impulse * S * 2^-shift * t`` reproduces ``a_plus * alpha * k / 2^wexp``
weight LSBs per unit of trace (``shift`` = Lava's MAC right shift, 5 with a ``t`` factor). Impulses
are capped at ``floor(127 * (1 - exp(-1/tau)))`` so that the 7-bit traces never saturate (measured:
saturating traces cost 30-270 LSB mean weight error over 1000 steps, the cap ~5). Trace time constants
are rounded to integers in [1, 255]. Fractional impulses are never used (Lava's simulator rounds them
up with probability 2f, a bias).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from spikeplastic import ir as _ir
from spikeplastic.loihi_format import (
    BIAS_EXP_MAX,
    DECAY_ONE,
    DEFAULT_VTH_INT,
    LITERAL_EXPONENTS,
    STATE_SCALE,
    TAU_RANGE,
    TRACE_MAX,
    VTH_BITS,
    WEIGHT_EXP_RANGE,
    best_scaled_impulse,
    decay_int,
    du_value,
    dv_value,
    fixed_point_scale,
    impulse_cap,
    is_literal,
    literal_parts,
    nearest_literal,
    quantize_bias,
    quantize_du,
    quantize_dv,
    quantize_tau,
    quantize_vth,
    quantize_weights,
    trace_peak,
    weight_exponent,
    weight_limit,
)

from ._plan import as_ir
from .errors import ExportError, UnsupportedError

__all__ = [
    "FixedPopulation",
    "FixedProduct",
    "FixedRule",
    "FixedProjection",
    "FixedNetwork",
    "QuantReport",
    "quantize_ir",
    "snap_to_literals",
    "VTH_BITS",
    "WEIGHT_EXP_RANGE",
]


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
        return float(STATE_SCALE) * self.population(pop).scale

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
            pops.append(_ir.Population(
                name=p.name, n=p.n, kind="lif", du=du_value(f.du), dv=dv_value(f.dv), vth=f.vth / k,
                bias=(f.bias_mant.astype(np.float64) * 2.0**f.bias_exp) / (float(STATE_SCALE) * k), reset=p.reset,
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


def _pop_scales(ir: _ir.NetworkIR, scale: float | Mapping[str, float] | None, headroom: float) -> dict[str, float]:
    out = {}
    for p in ir.populations:
        if p.kind == "input":
            continue
        if isinstance(scale, Mapping):
            k = scale.get(p.name)
        else:
            k = scale
        if k is None:  # keep every incoming weight exponent <= 7
            incoming = [(float(np.max(np.abs(pr.weight))), weight_limit(pr.plastic, headroom))
                        for pr in ir.projections if pr.post == p.name and pr.weight.size]
            k = fixed_point_scale(float(np.max(p.vth)), incoming, DEFAULT_VTH_INT)
        k = float(k)
        if not (math.isfinite(k) and k > 0):
            raise ExportError(f"quantisation scale for population {p.name!r} must be finite and > 0, got {k!r}")
        out[p.name] = k
    return out


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
        vth = quantize_vth(p.vth, k)
        if np.any(vth > 2**VTH_BITS - 1) or np.any(vth < 1):
            raise ExportError(
                f"population {p.name!r}: threshold {p.vth.max():.4g} * scale {k:.4g} = {vth.max()} does not fit the "
                f"{VTH_BITS}-bit threshold (1..{2**VTH_BITS - 1}); pass a smaller scale"
            )
        if np.any(decay_int(p.dv) > DECAY_ONE - 1):
            rep.notes.append(f"{p.name}: dv = 1 is not representable (12 bits); using 4095/4096")
        if np.any(decay_int(p.du) - 1 < 0):
            rep.notes.append(f"{p.name}: du = 0 (no current decay) is not representable; using 1/4096")
        dv, du = quantize_dv(p.dv), quantize_du(p.du)
        mant, bexp = quantize_bias(p.bias, k)
        if np.any(bexp > BIAS_EXP_MAX):
            raise ExportError(f"population {p.name!r}: bias {np.abs(p.bias).max():.4g} is too large for a 13-bit "
                              "mantissa with exponent <= 7 at this scale")
        pops.append(FixedPopulation(p.name, p.n, "lif", du=du, dv=dv, vth=vth, bias_mant=mant, bias_exp=bexp, scale=k))
        bias_eff = mant * 2.0**bexp
        rep.populations[p.name] = {
            "scale": k,
            "vth_rel_error": float(np.max(np.abs(vth / k - p.vth) / p.vth)),
            "dv_abs_error": float(np.max(np.abs(dv_value(dv) - p.dv))),
            "du_abs_error": float(np.max(np.abs(du_value(du) - p.du))),
            "bias_abs_error": float(np.max(np.abs(bias_eff / (STATE_SCALE * k) - p.bias))) if p.bias.size else 0.0,
        }
    projs: list[FixedProjection] = []
    for pr in ir.projections:
        k = ks[pr.post]
        if pr.clip is not None:
            raise UnsupportedError(f"projection {pr.name!r}: clip on H is not exportable")
        if isinstance(pr.rule, _ir.NodePerturbationRule):
            raise UnsupportedError(
                f"projection {pr.name!r}: node perturbation runs in float mode only (its noise current, signed "
                "perturbation trace y1 and reward baseline come from the PerturbationFactor CPU process, which has no "
                "fixed-point model; Loihi's 7-bit traces cannot hold a signed perturbation)"
            )
        if pr.modulation is not None:
            raise UnsupportedError(f"projection {pr.name!r}: neuromodulated rules run in float mode only "
                                   "(the ThirdFactor process has no fixed-point model)")
        if pr.plastic and not isinstance(pr.rule, _ir.STDPRule):
            raise UnsupportedError(f"projection {pr.name!r}: fixed point exports STDP only, not {type(pr.rule).__name__}")
        wmax = float(np.max(np.abs(pr.weight))) if pr.weight.size else 0.0
        wexp = weight_exponent(wmax, k, weight_limit(pr.plastic, plastic_headroom))
        if not WEIGHT_EXP_RANGE[0] <= wexp <= WEIGHT_EXP_RANGE[1]:
            raise ExportError(
                f"projection {pr.name!r}: weights up to {wmax:.4g} at scale {k:.4g} need weight exponent {wexp}, "
                f"outside Loihi's {list(WEIGHT_EXP_RANGE)}; pass a smaller scale for population {pr.post!r}"
            )
        w_int, mode = quantize_weights(pr.weight, k, wexp, pr.plastic)
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
        ti = quantize_tau(tau)
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
        lim = imp_max if imp_max is not None else impulse_cap(tau)
        best = best_scaled_impulse(target, shift, lim)
        if best is None:
            lo, hi = 2.0 ** (LITERAL_EXPONENTS[0] - shift), lim * 7 * 2.0 ** (LITERAL_EXPONENTS[-1] - shift)
            raise ExportError(
                f"an STDP amplitude of {target:.3g} weight LSBs per trace unit is outside what an integer impulse "
                f"(<= {lim}) times a literal m*2^e can express ([{lo:.3g}, {hi:.3g}]); change the weight scale"
            )
        imp, m, e, err = best
        imps.append(imp)
        info[f"{amp_name}_trace_peak"] = trace_peak(imp, tau)
        products.append(FixedProduct(+1 if dep == "y0" else -1, m, e, dep, (trace, *factors)))
        info[f"{amp_name}_impulse"] = imp
        info[f"{amp_name}_literal"] = f"{m}*2^{e}"
        info[f"{amp_name}_rel_error"] = err
    tag_2 = None
    if pr.decay != 0:
        p = literal_parts(float(pr.decay))
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


def snap_to_literals(net_or_ir: Any) -> tuple[_ir.NetworkIR, dict[str, tuple[float, float]]]:
    """Project the coefficients that Lava needs as rule literals onto the ``m*2^e`` grid.

    Snaps every plastic projection's ``decay``, Hebb/Oja ``eta`` and retroactive ``eta_e`` to the nearest
    literal (a learned value passes through a sigmoid and is never exactly on the grid). The returned
    IR is what gets exported; verify it (not the original) for exactness. Returns (new IR,
    {"<projection>.<field>": (old, new)} for every value that changed).
    """
    ir = as_ir(net_or_ir)
    changes: dict[str, tuple[float, float]] = {}

    def snap(v: float, key: str) -> float:
        new = nearest_literal(float(v)) if not is_literal(v) else float(v)
        if new != v:
            changes[key] = (float(v), new)
        return new

    projs = []
    for pr in ir.projections:
        if not pr.plastic:
            projs.append(pr)
            continue
        kw: dict[str, Any] = {}
        if pr.decay != 0:
            kw["decay"] = snap(pr.decay, f"{pr.name}.decay")
        if isinstance(pr.rule, (_ir.HebbRule, _ir.OjaRule)):
            kw["rule"] = dataclasses.replace(pr.rule, eta=snap(pr.rule.eta, f"{pr.name}.eta"))
        if pr.modulation is not None and pr.modulation.mode == "retroactive":
            kw["modulation"] = dataclasses.replace(pr.modulation, eta_e=snap(pr.modulation.eta_e, f"{pr.name}.eta_e"))
        projs.append(dataclasses.replace(pr, **kw) if kw else pr)
    return dataclasses.replace(ir, projections=tuple(projs)), changes
