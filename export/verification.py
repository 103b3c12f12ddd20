"""``verify``: run the torch float64 reference and the Lava export on the same inputs and compare.

Float mode promises identical spikes and weights equal to float64 rounding (``max |dW|`` relative to
the weight scale < 1e-9). Fixed mode promises Lava == :func:`~spikeplastic.export.simulate_fixed`
bit for bit; against the float reference it *reports* spike agreement, the weight error in LSBs and
the learning engine's own error (the float rule replayed on Lava's spikes, in LSBs), which are
quantisation effects, not bugs.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from spikeplastic import ir as _ir

from ._plan import as_ir

__all__ = ["VerifyReport", "PopulationCheck", "ProjectionCheck", "verify", "FLOAT_REL_TOL"]

FLOAT_REL_TOL = 1e-9


@dataclass
class PopulationCheck:
    """Spike/voltage comparison of one population (Lava vs the float64 torch reference)."""

    n: int
    spikes_reference: int
    spikes_lava: int
    mismatches: int
    agreement_pct: float
    first_divergent_step: int | None
    max_abs_dv: float | None = None
    emulator_mismatches: int | None = None  # fixed mode: Lava vs simulate_fixed
    emulator_max_abs_dv_int: int | None = None


@dataclass
class ProjectionCheck:
    """Weight comparison of one plastic projection over the whole run."""

    max_abs_dw: float
    weight_scale: float
    max_rel_dw: float
    max_weight_change: float  # how far the reference weights moved (learning really happened)
    lsb: float | None = None  # fixed mode: one weight LSB in float units
    max_dw_lsb: float | None = None
    # fixed: the IR's float rule replayed on Lava's own spikes (same 8-bit saturation) vs Lava's weights:
    # the learning engine's error (7-bit traces, integer taus, stochastic rounding), without chaos
    rule_replay_max_lsb: float | None = None
    rule_replay_mean_lsb: float | None = None
    emulator_max_dw_int: int | None = None


@dataclass
class VerifyReport:
    """Result of :func:`verify` (``to_json()`` for the CLI)."""

    mode: str
    backend: str
    steps: int
    seed: int
    spike_agreement_pct: float
    first_divergent_step: int | None
    max_abs_dw: float
    max_rel_dw: float
    weight_scale: float
    lava_steps_per_s: float
    torch_steps_per_s: float
    lava_compile_s: float
    ok: bool
    criterion: str
    populations: dict[str, PopulationCheck] = field(default_factory=dict)
    projections: dict[str, ProjectionCheck] = field(default_factory=dict)
    bit_exact_vs_emulator: bool | None = None
    quantization: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        def clean(o: Any) -> Any:
            if isinstance(o, float) and not math.isfinite(o):
                return str(o)
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, (list, tuple)):
                return [clean(v) for v in o]
            if isinstance(o, (np.integer,)):
                return int(o)
            if isinstance(o, (np.floating,)):
                return float(o)
            return o

        return json.dumps(clean(self.to_dict()), indent=indent)

    def summary(self) -> str:
        lines = [
            f"mode={self.mode} steps={self.steps} ok={self.ok} ({self.criterion})",
            f"spike agreement {self.spike_agreement_pct:.4f}%  first divergent step {self.first_divergent_step}",
            f"max |dW| {self.max_abs_dw:.3g} (relative to weight scale {self.weight_scale:.3g}: {self.max_rel_dw:.3g})",
            f"Lava {self.lava_steps_per_s:.0f} steps/s (compile {self.lava_compile_s:.1f} s), torch {self.torch_steps_per_s:.0f} steps/s",
        ]
        if self.bit_exact_vs_emulator is not None:
            lines.append(f"bit-exact vs simulate_fixed: {self.bit_exact_vs_emulator}")
        for k, p in self.populations.items():
            lines.append(f"  {k}: {p.spikes_reference} ref / {p.spikes_lava} lava spikes, {p.mismatches} mismatches")
        for k, q in self.projections.items():
            extra = "" if q.max_dw_lsb is None else f", {q.max_dw_lsb:.1f} LSB; rule replay {q.rule_replay_max_lsb:.2f} LSB max"
            lines.append(f"  {k}: max |dW| {q.max_abs_dw:.3g} (rel {q.max_rel_dw:.3g}){extra}")
        return "\n".join(lines)


def _first_mismatch(a: np.ndarray, b: np.ndarray) -> int | None:
    bad = np.nonzero((a != b).any(axis=1))[0]
    return int(bad[0]) if bad.size else None


def _replay_stdp(pr: _ir.Projection, pre: np.ndarray, post: np.ndarray, W0: np.ndarray, anchor: np.ndarray,
                 lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """The IR's float STDP rule driven by given spike trains (Lava's), from ``W0``, saturating at [lo, hi]."""
    r = pr.rule
    assert isinstance(r, _ir.STDPRule)
    fx, fy = math.exp(-1.0 / r.tau_plus), math.exp(-1.0 / r.tau_minus)
    alpha = 1.0 if pr.alpha is None else np.asarray(pr.alpha)
    x = np.zeros(pre.shape[1])
    y = np.zeros(post.shape[1])
    W = W0.astype(np.float64).copy()
    out = np.empty((pre.shape[0],) + W.shape)
    for t in range(pre.shape[0]):
        x = x * fx + r.a_plus * pre[t]
        y = y * fy + r.a_minus * post[t]
        e = np.outer(post[t], x) - np.outer(y, pre[t])
        W = np.clip(W + alpha * e - pr.decay * (W - anchor), lo, hi)
        out[t] = W
    return out


def _random_inputs(ir: _ir.NetworkIR, steps: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    n_in = ir.input.n
    if ir.input.input_kind == "spikes":
        return (rng.random((steps, n_in)) < rate).astype(np.float64)
    return rng.normal(0.0, 1.0, size=(steps, n_in))


def verify(
    net_or_ir: Any,
    inputs: Any = None,
    steps: int | None = None,
    mode: str = "float",
    seed: int = 0,
    *,
    rate: float = 0.2,
    third_factor: Any = None,
    backend: str = "cpu",
    scale: float | Mapping[str, float] | None = None,
    timeout: float = 600.0,
) -> VerifyReport:
    """Compare :func:`spikeplastic.simulate` (float64) with the Lava export on the same inputs.

    Args:
        net_or_ir: Network, NetworkIR or IR file.
        inputs: ``[T, n_in]``; default: Bernoulli(``rate``) spikes (normal currents for a current
            input) from ``numpy.random.default_rng(seed)``.
        steps: steps to run (default: 1000 for random inputs, else ``T``).
        mode: ``"float"`` or ``"fixed"``. seed: input seed (and fixed mode's rounding seed).
        third_factor: external modulation ``[T]``/``[T, n_post]``; random ``tanh(N(0,1))`` if needed and absent.

    Returns: a :class:`VerifyReport`; ``ok`` is the mode's promise (float: identical spikes and
    ``max_rel_dw < 1e-9``; fixed: Lava bit-exact with :func:`~spikeplastic.export.simulate_fixed`).
    """
    from spikeplastic.simulate import simulate

    from ._export import to_lava

    ir = as_ir(net_or_ir)
    lnet = to_lava(ir, mode=mode, backend=backend, scale=scale, rng_seed=seed, timeout=timeout)
    rng = np.random.default_rng(seed)
    if inputs is None:
        steps = 1000 if steps is None else int(steps)
        x = _random_inputs(ir, steps, rng, rate)
    else:
        x = inputs.detach().cpu().numpy() if hasattr(inputs, "detach") else np.asarray(inputs, dtype=np.float64)
        if x.ndim == 3:
            x = x[:, 0]
        steps = x.shape[0] if steps is None else int(steps)
        x = x[:steps]
    needs_tf = any(p.modulation is not None and p.modulation.source is None for p in ir.projections)
    if needs_tf and third_factor is None:
        third_factor = np.tanh(rng.normal(size=steps))
    tf = None if third_factor is None else np.asarray(third_factor, dtype=np.float64)[:steps]

    t0 = time.perf_counter()
    ref = simulate(ir, x, third_factor=tf)
    torch_sps = steps / max(time.perf_counter() - t0, 1e-9)
    rec = lnet.run(x, third_factor=tf)

    emu = None
    fixed = lnet.fixed
    if mode == "fixed":
        from .fixed_sim import simulate_fixed

        emu = simulate_fixed(fixed, x, rng_seed=seed)
    pops: dict[str, PopulationCheck] = {}
    total_bad = total = 0
    firsts = []
    for name, s_l in rec.spikes.items():
        s_r = ref.spikes[name][:, 0].numpy()
        bad = int((s_l != s_r).sum())
        total_bad += bad
        total += s_l.size
        first = _first_mismatch(s_l, s_r)
        if first is not None:
            firsts.append(first)
        dv = None
        if rec.voltages is not None:
            dv = float(np.max(np.abs(rec.voltages[name] - ref.voltages[name][:, 0].numpy())))
        pc = PopulationCheck(
            n=s_l.shape[1], spikes_reference=int(s_r.sum()), spikes_lava=int(s_l.sum()), mismatches=bad,
            agreement_pct=100.0 * (1 - bad / s_l.size), first_divergent_step=first, max_abs_dv=dv,
        )
        if emu is not None:
            pc.emulator_mismatches = int((emu.spikes[name] != s_l).sum())
            pc.emulator_max_abs_dv_int = int(np.max(np.abs(emu.voltages[name] - rec.raw_voltages[name])))
        pops[name] = pc
    projs: dict[str, ProjectionCheck] = {}
    spikes_all = {ir.input.name: x, **rec.spikes}
    for name, w_l in (rec.weights or {}).items():
        w_r = ref.weights[name][:, 0].numpy()
        scale_w = float(np.max(np.abs(w_r))) if w_r.size else 0.0
        dw = float(np.max(np.abs(w_l - w_r))) if w_r.size else 0.0
        q = ProjectionCheck(
            max_abs_dw=dw, weight_scale=scale_w, max_rel_dw=dw / scale_w if scale_w else dw,
            max_weight_change=float(np.max(np.abs(w_r - w_r[0]))) if w_r.size else 0.0,
        )
        if mode == "fixed":
            pr_ir = next(p for p in ir.projections if p.name == name)
            fpr = fixed.projection(name)
            ws = fixed.weight_scale(name)
            q.lsb = 1.0 / ws
            q.max_dw_lsb = dw * ws
            raw = rec.raw_weights[name]
            anchor = (fpr.rule.tag_2 if fpr.rule is not None and fpr.rule.tag_2 is not None else fpr.weights) / ws
            rep_w = _replay_stdp(pr_ir, spikes_all[pr_ir.pre], spikes_all[pr_ir.post], fpr.weights / ws, anchor,
                                 -256 / ws, 255 / ws)
            err = np.abs(raw - rep_w * ws)
            q.rule_replay_max_lsb = float(err.max())
            q.rule_replay_mean_lsb = float(err.mean())
            q.emulator_max_dw_int = int(np.max(np.abs(emu.weights[name] - raw)))
        projs[name] = q
    max_dw = max((q.max_abs_dw for q in projs.values()), default=0.0)
    wscale = max((q.weight_scale for q in projs.values()), default=0.0)
    max_rel = max((q.max_rel_dw for q in projs.values()), default=0.0)
    agreement = 100.0 * (1 - total_bad / total) if total else 100.0
    bit_exact = None
    if mode == "fixed":
        bit_exact = all(p.emulator_mismatches == 0 and p.emulator_max_abs_dv_int == 0 for p in pops.values()) and all(
            q.emulator_max_dw_int == 0 for q in projs.values()
        )
        ok, crit = bool(bit_exact), "Lava fixed point == simulate_fixed bit for bit"
    else:
        ok = total_bad == 0 and max_rel < FLOAT_REL_TOL
        crit = f"identical spikes and max |dW| / weight scale < {FLOAT_REL_TOL:g}"
    return VerifyReport(
        mode=mode, backend=backend, steps=steps, seed=seed, spike_agreement_pct=agreement,
        first_divergent_step=min(firsts) if firsts else None, max_abs_dw=max_dw, max_rel_dw=max_rel,
        weight_scale=wscale, lava_steps_per_s=rec.steps_per_s, torch_steps_per_s=torch_sps,
        lava_compile_s=rec.compile_s, ok=ok, criterion=crit, populations=pops, projections=projs,
        bit_exact_vs_emulator=bit_exact,
        quantization=None if lnet.quant_report is None else lnet.quant_report.to_dict(),
    )
