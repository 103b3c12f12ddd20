"""IR -> backend-neutral Lava build plan: every check and every learning-rule string, no Lava import.

Everything that can make an export fail is decided here, so that :func:`~spikeplastic.export.to_lava`
raises before any Lava process exists.

Learning rules (float, ``t_epoch = 1``). With ``W = w + alpha*H`` held in Lava's ``weights`` and the
fixed weight ``w`` (the anchor) in ``tag_2`` (factor ``d``), the IR's update
``H[t] = (1-decay)*H[t-1] + m[t]*e[t]`` becomes ``dW = alpha*m*e - decay*(W - w)``::

    STDP   e = y0*x1 - x0*y1              x1/y1: Lava's traces (impulse a_plus/a_minus, tau_plus/tau_minus)
    Hebb   alpha*e = eta*alpha*x0*y0 - eta*(W - w)        (x0*y0 written y0*x1 with x1 a spike
    Oja    alpha*e = eta*alpha*x0*y0 - eta*y0*(W - w)      indicator: impulse 1, tau -> 0)

``alpha`` rides in ``tag_1`` (factor ``t``) when present; the third factor ``m`` is ``y2``, sent each
step by the project's :class:`~spikeplastic.export.lava_models.third_factor.ThirdFactor` process,
which also sends the postsynaptic STDP trace as ``y1``. Retroactive modulation keeps the eligibility
trace ``E`` in ``tag_1`` (``dt = eta_e*e - eta_e*u0*t``, ``dw = u0*y2*t*alpha``) with ``alpha`` in
``tag_2``, which requires ``decay == 0`` (or ``alpha is None``, leaving ``tag_2`` to the anchor).
Literal coefficients (decay, eta, eta_e) must be Lava literals ``m*2^e`` (m in [-8, 7], e in [-7, 8]).

Node perturbation (float only): ``x1`` is the presynaptic trace (impulse ``eta``, tau ``tau``) and
``e = y1*x1`` with ``y1`` the perturbation of the next step, sent by the project's
:class:`~spikeplastic.export.lava_models.node_perturbation.PerturbationFactor` process, which also
adds the perturbation ``sigma*xi[t]`` to the postsynaptic input (connected after every projection,
as the torch network adds it) and sends the gate ``y2`` (the third factor, minus the running
baseline). Simple modulation: ``dw = u0*t*y2*y1*x1``; retroactive: ``dt = eta_e*u0*y1*x1 - eta_e*u0*t``,
``dw = u0*y2*t(*d)``. The noise is the counter-based stream of ``spikeplastic.functional``
(``noise == "uniform-hash32"``), generated for the run's seed; no other stream is exportable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from spikeplastic import ir as _ir
from spikeplastic.loihi_format import LITERAL_EXPONENTS, literal_parts, nearest_literal

from .errors import ExportError, UnsupportedError

__all__ = [
    "PopPlan",
    "ThirdFactorPlan",
    "PerturbationPlan",
    "ProjPlan",
    "Plan",
    "literal",
    "build_float_plan",
    "build_fixed_plan",
    "as_ir",
    "check_mode_backend",
]

# A trace that never decays (exp(-1/1e300) == 1.0 exactly in float64) and one that forgets at
# once (exp(-1/1e-300) == 0.0): Lava gives NaN for tau = 0 (lava#658).
TAU_INF = 1e300
TAU_ZERO = 1e-300
MODES = ("float", "fixed")
BACKENDS = ("cpu", "loihi2")


def as_ir(net_or_ir: Any) -> _ir.NetworkIR:
    """A :class:`~spikeplastic.ir.NetworkIR` from an IR, a :class:`~spikeplastic.Network`, an IR file or a
    training checkpoint (file or run folder; see :func:`~spikeplastic.export.sources.load_source`)."""
    if isinstance(net_or_ir, _ir.NetworkIR):
        return net_or_ir
    to_ir = getattr(type(net_or_ir), "to_ir", None)
    if to_ir is not None and callable(to_ir):
        from spikeplastic.network import Network

        if isinstance(net_or_ir, Network):
            return net_or_ir.to_ir()
    import os

    if isinstance(net_or_ir, (str, os.PathLike)):  # an IR file, a training checkpoint or an export/run folder
        from .sources import load_network_ir

        return load_network_ir(net_or_ir)
    raise TypeError(
        "expected a spikeplastic.ir.NetworkIR, a spikeplastic.Network, an IR file or a checkpoint path, "
        f"got {type(net_or_ir).__name__}"
    )


def check_mode_backend(mode: str, backend: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "loihi2" and mode != "fixed":
        raise ExportError("backend='loihi2' runs integer (fixed point) models only: use mode='fixed'")


# ---- literals (the grid: spikeplastic.loihi_format) -----------------------------------------
def literal(v: float, what: str) -> str:
    """Lava string of the *magnitude* of ``v`` (e.g. ``"3*2^-6"``); raises :class:`ExportError` if illegal."""
    p = literal_parts(abs(float(v)))
    if p is None or p[0] == 0 and v != 0:
        near = nearest_literal(max(abs(float(v)), 2.0 ** LITERAL_EXPONENTS[0]))  # the nearest positive literal
        raise ExportError(
            f"{what} = {v!r} is not a Lava learning-rule literal m*2^e (m in [-8, 7], e in [-7, 8]); "
            f"exact export needs it on that grid (nearest: {near!r}). Learn it on the grid "
            "(straight-through) or project it before export."
        )
    m, e = p
    return f"{m}" if e == 0 else f"{m}*2^{e}"


class _Terms:
    """A sum of signed products, rendered as a Lava rule string."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def add(self, sign: int, product: str) -> None:
        self.items.append((sign, product))

    def render(self) -> str | None:
        if not self.items:
            return None
        out = ""
        for i, (sign, prod) in enumerate(self.items):
            if i == 0:
                out = prod if sign > 0 else f"-{prod}"
            else:
                out += (" + " if sign > 0 else " - ") + prod
        return out


def _mul(*factors: str | None) -> str:
    return "*".join(f for f in factors if f)


# ---- plan dataclasses ------------------------------------------------------------------------
@dataclass(frozen=True)
class PopPlan:
    name: str
    n: int
    kind: Literal["input", "lif", "lif_subtract"]
    input_kind: str = "spikes"
    du: Any = None
    dv: Any = None
    vth: Any = None
    bias: Any = None
    bias_exp: Any = None


@dataclass(frozen=True)
class ThirdFactorPlan:
    """What the ThirdFactor process computes: ``y2 = m`` and the STDP post trace ``y1``."""

    source: str | None  # population name, or None: external signal
    weight: np.ndarray | None  # [n_post, n_src] (shared weights are repeated per row)
    bias: np.ndarray | None  # [n_post]
    y1_impulse: float
    y1_tau: float


@dataclass(frozen=True)
class PerturbationPlan:
    """Node perturbation's noise and gate: the PerturbationFactor process of one projection."""

    index: int  # the projection's position in the IR: its noise stream uses seed noise_seed + index
    sigma: float
    baseline: bool
    eta_b: float
    noise: str


@dataclass(frozen=True)
class ProjPlan:
    name: str
    pre: str
    post: str
    weights: np.ndarray
    plastic: bool
    three_factor: bool = False
    dw: str | None = None
    dt: str | None = None
    x1_impulse: float = 0.0
    x1_tau: float = TAU_INF
    y1_impulse: float = 0.0
    y1_tau: float = TAU_INF
    tag_1: np.ndarray | None = None
    tag_2: np.ndarray | None = None
    weight_exp: int = 0
    sign_mode: str | None = None
    graded: bool = False
    third: ThirdFactorPlan | None = None
    perturbation: PerturbationPlan | None = None


@dataclass(frozen=True)
class Plan:
    mode: str
    backend: str
    populations: tuple[PopPlan, ...]
    projections: tuple[ProjPlan, ...]
    input_name: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def pop(self, name: str) -> PopPlan:
        return next(p for p in self.populations if p.name == name)


# ---- float plan ------------------------------------------------------------------------------
def _check_common(ir: _ir.NetworkIR, mode: str, backend: str) -> None:
    for pr in ir.projections:
        if pr.clip is not None:
            raise UnsupportedError(
                f"projection {pr.name!r}: clip={pr.clip} on H has no Lava learning-engine equivalent "
                "(weights saturate only at the 8-bit range); train with clip=None to export"
            )
        if pr.plastic and ir.population(pr.pre).kind == "input" and ir.population(pr.pre).input_kind == "current":
            raise UnsupportedError(
                f"projection {pr.name!r}: plasticity driven by a real-valued ('current') input is not exportable "
                "(Lava's learning engine sees binary presynaptic spikes); use spike inputs"
            )
    for p in ir.populations:
        if p.kind == "lif" and p.reset == "subtract" and (mode != "float" or backend != "cpu"):
            raise UnsupportedError(
                f"population {p.name!r}: subtractive reset exists only as the project's custom float CPU model "
                "(mode='float', backend='cpu'); Loihi's LIF resets to zero"
            )
    if backend == "loihi2":
        for pr in ir.projections:
            if pr.modulation is not None:
                raise UnsupportedError(
                    f"projection {pr.name!r}: neuromodulated rules need the project's custom CPU process "
                    "(ThirdFactor), which has no Loihi 2 implementation"
                )


def _alpha_tag(pr: _ir.Projection) -> np.ndarray | None:
    if pr.alpha is None:
        return None
    return np.broadcast_to(np.asarray(pr.alpha, dtype=np.float64), pr.weight.shape).copy()


def _third_plan(ir: _ir.NetworkIR, pr: _ir.Projection, rule: _ir.Rule) -> ThirdFactorPlan:
    mod = pr.modulation
    assert mod is not None
    n_post = ir.population(pr.post).n
    w = b = None
    if mod.source is not None:
        w = np.asarray(mod.weight, dtype=np.float64)
        if w.ndim == 1:
            w = np.broadcast_to(w, (n_post, w.shape[0])).copy()
        b = np.broadcast_to(np.asarray(mod.bias, dtype=np.float64), (n_post,)).copy()
        if w.shape != (n_post, ir.population(mod.source).n):
            raise ExportError(f"projection {pr.name!r}: modulation weight has shape {w.shape}, "
                              f"expected [{ir.population(mod.source).n}] or [{n_post}, {ir.population(mod.source).n}]")
    if isinstance(rule, _ir.STDPRule):
        return ThirdFactorPlan(mod.source, w, b, float(rule.a_minus), float(rule.tau_minus))
    return ThirdFactorPlan(mod.source, w, b, 0.0, TAU_INF)


def _float_proj(ir: _ir.NetworkIR, pr: _ir.Projection, index: int) -> ProjPlan:
    pre = ir.population(pr.pre)
    graded = pre.kind == "input" and pre.input_kind == "current"
    base = dict(name=pr.name, pre=pr.pre, post=pr.post, weights=np.array(pr.weight, dtype=np.float64), graded=graded)
    if not pr.plastic:
        return ProjPlan(plastic=False, **base)
    rule = pr.rule
    mod = pr.modulation
    retro = mod is not None and mod.mode == "retroactive"
    g = "y2" if mod is not None else None  # the third factor
    alpha = _alpha_tag(pr)
    dec = float(pr.decay)
    dw, dt = _Terms(), _Terms()
    tag_1 = tag_2 = None
    anchor = np.array(pr.weight, dtype=np.float64)
    x1_imp, x1_tau, y1_imp, y1_tau = 0.0, TAU_INF, 0.0, TAU_INF

    if isinstance(rule, _ir.STDPRule):
        x1_imp, x1_tau, y1_imp, y1_tau = float(rule.a_plus), float(rule.tau_plus), float(rule.a_minus), float(rule.tau_minus)
    elif isinstance(rule, (_ir.HebbRule, _ir.OjaRule)):
        x1_imp, x1_tau = 1.0, TAU_ZERO  # x1 == this step's presynaptic spike, exactly
    elif isinstance(rule, _ir.NodePerturbationRule):
        from spikeplastic.functional import NOISE_KIND

        if rule.noise != NOISE_KIND:
            raise UnsupportedError(
                f"projection {pr.name!r}: node perturbation noise stream {rule.noise!r} is not exportable; the "
                f"exporter generates {NOISE_KIND!r} (spikeplastic.functional.perturbation_noise) only"
            )
        x1_imp, x1_tau = float(rule.eta), float(rule.tau)
    else:  # pragma: no cover - the IR admits no other rule
        raise UnsupportedError(f"projection {pr.name!r}: rule {type(rule).__name__} is not exportable")

    node_pert = isinstance(rule, _ir.NodePerturbationRule)
    if retro:
        if not isinstance(rule, (_ir.STDPRule, _ir.NodePerturbationRule)):
            raise UnsupportedError(
                f"projection {pr.name!r}: retroactive modulation is exported for STDP and node perturbation only "
                f"({type(rule).__name__}'s update depends on H, which Lava cannot hold next to the eligibility trace)"
            )
        if alpha is not None and dec != 0.0:
            raise UnsupportedError(
                f"projection {pr.name!r}: retroactive modulation with both alpha and decay needs three per-synapse "
                "variables (eligibility, alpha, anchor); Lava synapses have two tags. Use decay=0 or alpha='none'"
            )
        eta = literal(mod.eta_e, f"projection {pr.name!r}: modulation.eta_e")
        # dt: E[t] = E + eta_e*(e - E);   dw: W += alpha*m*E[t-1] (applied with the pre-update tag)
        if node_pert:
            dt.add(+1, _mul(eta, "u0", "y1", "x1"))
        else:
            dt.add(+1, _mul(eta, "y0", "x1"))
            dt.add(-1, _mul(eta, "x0", "y1"))
        dt.add(-1, _mul(eta, "u0", "t"))
        tag_1 = np.zeros(pr.weight.shape)
        if alpha is not None:
            tag_2 = alpha
            dw.add(+1, _mul("u0", "y2", "t", "d"))
        else:
            dw.add(+1, _mul("u0", "y2", "t"))
    else:
        a = "t" if alpha is not None else None
        tag_1 = alpha
        if isinstance(rule, _ir.STDPRule):
            dw.add(+1, _mul("y0", "x1", g, a))
            dw.add(-1, _mul("x0", "y1", g, a))
        elif node_pert:  # e = y1*x1 every step (u0): the next perturbation times the presynaptic trace
            dw.add(+1, _mul("u0", a, g, "y1", "x1"))
        else:
            eta_v = float(rule.eta)
            eta = literal(eta_v, f"projection {pr.name!r}: {type(rule).__name__}.eta")
            if eta_v != 0:
                dw.add(+1, _mul(eta, "y0", "x1", g, a))
                dep = "u0" if isinstance(rule, _ir.HebbRule) else "y0"
                dw.add(-1, _mul(eta, dep, g, "w"))
                dw.add(+1, _mul(eta, dep, g, "d"))
                tag_2 = anchor
    if dec != 0.0:
        lit = literal(dec, f"projection {pr.name!r}: decay")
        dw.add(-1, _mul(lit, "u0", "w"))
        dw.add(+1, _mul(lit, "u0", "d"))
        tag_2 = anchor
    dw_s = dw.render()
    if dw_s is None:  # e.g. eta == 0: a learning projection that never changes
        return ProjPlan(plastic=False, **base)
    third = _third_plan(ir, pr, rule) if mod is not None else None
    if third is not None:
        y1_imp, y1_tau = 0.0, TAU_INF  # y1 arrives from the ThirdFactor process, used as sent
    pert = None
    if node_pert:
        pert = PerturbationPlan(index=index, sigma=float(rule.sigma), baseline=bool(rule.baseline),
                                eta_b=float(rule.eta_b), noise=rule.noise)
    return ProjPlan(
        plastic=True, three_factor=mod is not None, dw=dw_s, dt=dt.render(),
        x1_impulse=x1_imp, x1_tau=x1_tau, y1_impulse=y1_imp, y1_tau=y1_tau,
        tag_1=tag_1, tag_2=tag_2, third=third, perturbation=pert, **base,
    )


def build_float_plan(ir: _ir.NetworkIR, backend: str = "cpu") -> Plan:
    """Validate ``ir`` for a float Lava export and return its :class:`Plan` (raises before Lava starts)."""
    check_mode_backend("float", backend)
    _check_common(ir, "float", backend)
    pops = []
    for p in ir.populations:
        if p.kind == "input":
            pops.append(PopPlan(p.name, p.n, "input", input_kind=p.input_kind))
        else:
            kind = "lif_subtract" if p.reset == "subtract" else "lif"
            pops.append(PopPlan(p.name, p.n, kind, du=_scalar_or(p.du), dv=_scalar_or(p.dv),
                                vth=_scalar_or(p.vth), bias=np.array(p.bias)))
    projs = tuple(_float_proj(ir, pr, j) for j, pr in enumerate(ir.projections))
    return Plan("float", backend, tuple(pops), projs, ir.input.name)


def _scalar_or(a: np.ndarray) -> Any:
    """A Python float when all entries are equal (Lava's LIF takes scalars), else the array."""
    a = np.asarray(a, dtype=np.float64)
    return float(a[0]) if a.size and np.all(a == a.flat[0]) else a.copy()


# ---- fixed plan ------------------------------------------------------------------------------
def build_fixed_plan(fixed: Any, backend: str = "cpu") -> Plan:
    """The Lava build plan of a :class:`~spikeplastic.export.quantize.FixedNetwork`."""
    check_mode_backend("fixed", backend)
    pops = []
    for p in fixed.populations:
        if p.kind == "input":
            pops.append(PopPlan(p.name, p.n, "input", input_kind="spikes"))
        else:
            pops.append(PopPlan(p.name, p.n, "lif", du=_int_or(p.du), dv=_int_or(p.dv), vth=_int_or(p.vth),
                                bias=p.bias_mant.copy(), bias_exp=p.bias_exp.copy()))
    projs = []
    for pr in fixed.projections:
        base = dict(name=pr.name, pre=pr.pre, post=pr.post, weights=pr.weights.copy(), weight_exp=pr.weight_exp,
                    sign_mode=pr.sign_mode)
        if pr.rule is None:
            projs.append(ProjPlan(plastic=False, **base))
            continue
        r = pr.rule
        projs.append(ProjPlan(
            plastic=True, dw=r.dw(), x1_impulse=float(r.x1_impulse), x1_tau=float(r.x1_tau),
            y1_impulse=float(r.y1_impulse), y1_tau=float(r.y1_tau),
            tag_1=None if r.tag_1 is None else r.tag_1.copy(), tag_2=None if r.tag_2 is None else r.tag_2.copy(),
            **base,
        ))
    return Plan("fixed", backend, tuple(pops), tuple(projs), fixed.input_name)


def _int_or(a: np.ndarray) -> Any:
    a = np.asarray(a, dtype=np.int64)
    return int(a[0]) if a.size and np.all(a == a.flat[0]) else a.copy()
