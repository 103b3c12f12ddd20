"""Torch emulation of Lava's integer models: bit-accurate LIF, 8-bit Dense, bit-approximate learning.

Reference for ``to_lava(mode="fixed")`` without Lava (and a fast way to see what the chip would do).
Per step ``t`` (Lava's ``PyLifModelBitAcc`` / ``PyDenseModelBitAcc``; int64 tensors)::

    a[t]  = (W @ s_pre[t-1]) << weight_exp                   (one step of delay, like Dense)
    u     = wrap24( sgn(x)*(|x| >> 12) + (a << 6) ),   x = u * (4096 - (du + 1))
    v     = clip24( sgn(y)*(|y| >> 12) + u + (bias_mant << bias_exp) ),   y = v * (4096 - dv)
    s     = v > (vth << 6);   v[s] = 0

Learning (Lava's ``PyLearningDenseModelBitApproximate``, t_epoch = 1): 7-bit traces with stochastic
rounding of the decay ``floor(exp(-1/tau)*x) + (r < frac)``, integer impulses, the rule's products
evaluated in Lava's 16-bit MAC (factor clipping, right shift to 15 bits, ``<< s_exp``), and the
weight update stochastically rounded to 8 bits. The random numbers are Lava's: one per step shared
by all synapses, from ``numpy.random.default_rng`` streams seeded with ``rng_seed`` (traces: seeds
``rng_seed .. rng_seed+3``) and 2 (weights, fixed in Lava). With the same ``rng_seed`` the
emulation reproduces Lava's integers exactly (measured: tests/export/test_fixed.py); what it does not
model is Loihi hardware itself (``lava-loihi`` was never public), so "bit-exact" means "equal to
Lava's CPU fixed-point simulator".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from spikeplastic.loihi_format import DECAY_ONE, STATE_SCALE, TRACE_MAX, UV_BITS, WEIGHT_RANGE, lava_trace_decay

from .quantize import FixedNetwork, FixedProjection

__all__ = ["FixedRecord", "simulate_fixed", "lif_fixed_step"]

# This is Loihi's integer arithmetic as Lava's CPU models implement it, not the torch model's float
# equations (spikeplastic.functional): it stays separate from them on purpose. Widths and ranges
# come from spikeplastic.loihi_format.
_MAX_UV = 2 ** (UV_BITS - 1)
_STATE_SHIFT = STATE_SCALE.bit_length() - 1  # u, v at 2^6 x weight units: a << 6, vth << 6
_DECAY_SHIFT = DECAY_ONE.bit_length() - 1  # 12-bit decays: >> 12
_W_ACC_U = 15
_FACTOR_WIDTH = {"x0": 1, "y0": 1, "x1": 7, "x2": 7, "y1": 7, "y2": 7, "y3": 7, "w": 9, "d": 9, "t": 9, "C": 8}


@dataclass(frozen=True)
class FixedRecord:
    """Integer run of a :class:`FixedNetwork`: ``spikes`` (0/1 float64), ``voltages``/``currents`` (int64)
    per population ``[T, n]``, ``weights`` (int64) per plastic projection ``[T, n_post, n_pre]``
    (after the learning of step ``t``), numpy arrays."""

    spikes: dict[str, np.ndarray]
    voltages: dict[str, np.ndarray]
    currents: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]


def _shr_toward_zero(x: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.sign(x) * (x.abs() >> bits)


def lif_fixed_step(
    a: torch.Tensor, u: torch.Tensor, v: torch.Tensor, du: torch.Tensor, dv: torch.Tensor,
    vth: torch.Tensor, bias_eff: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Lava's ``PyLifModelBitAcc`` (int64 tensors); returns (u, v, spikes bool)."""
    du_c = du + 1  # ds_offset = 1
    cur = _shr_toward_zero(u * (DECAY_ONE - du_c), _DECAY_SHIFT)
    cur = cur + (a << _STATE_SHIFT)
    wrapped = torch.where(cur > _MAX_UV, cur - 2 * _MAX_UV, cur)
    wrapped = torch.where(wrapped <= -_MAX_UV, cur + 2 * _MAX_UV, wrapped)
    u = wrapped
    vol = _shr_toward_zero(v * (DECAY_ONE - dv), _DECAY_SHIFT)  # dm_offset = 0
    v = torch.clamp(vol + u + bias_eff, -_MAX_UV + 1, _MAX_UV - 1)
    s = v > (vth << _STATE_SHIFT)
    v = torch.where(s, torch.zeros_like(v), v)
    return u, v, s


class _Randoms:
    """Lava's TraceRandom / ConnVarRandom streams of one LearningDense."""

    def __init__(self, seed: int) -> None:
        self.x_dec = np.random.default_rng(seed)
        self.x_imp = np.random.default_rng(seed + 1)
        self.y_dec = np.random.default_rng(seed + 2)
        self.y_imp = np.random.default_rng(seed + 3)
        self.conn = np.random.default_rng(2)  # ConnVarRandom() default seed, not the rule's
        self.vals = {}
        self._draw_traces()
        self.vals["conn"] = float(self.conn.random(1)[0])

    def _draw_traces(self) -> None:
        self.vals["x_dec"] = float(self.x_dec.random(1)[0])
        self.vals["x_imp"] = int(self.x_imp.integers(0, 2**7, size=1, dtype=int)[0])
        self.vals["y_dec"] = float(self.y_dec.random(1)[0])
        self.vals["y_imp"] = int(self.y_imp.integers(0, 2**7, size=1, dtype=int)[0])

    def advance_spk(self) -> None:  # recv_traces advances the trace generators twice per step
        self._draw_traces()
        self._draw_traces()

    def advance_lrn(self) -> None:
        self.vals["conn"] = float(self.conn.random(1)[0])


def _decay_trace(x: torch.Tensor, tau: int, r: float) -> torch.Tensor:
    if tau == 0:  # Lava leaves traces with tau == 0 at 0 in its history
        return torch.zeros_like(x)
    f = lava_trace_decay(tau)  # Lava's own float64 exp, bit for bit (not functional.decay_factor)
    val = f * x.to(torch.float64)
    frac = torch.remainder(val, 1.0)
    return (torch.floor(val) + (r < frac).to(torch.float64)).to(torch.int64)


def _add_impulse(x: torch.Tensor, spiked: torch.Tensor, imp: int) -> torch.Tensor:
    return torch.where(spiked, torch.clamp(x + imp, 0, TRACE_MAX), x)


class _Learner:
    """State and one learning step of a fixed-point LearningDense (2-factor rule, t_epoch = 1)."""

    def __init__(self, pr: FixedProjection, seed: int) -> None:
        assert pr.rule is not None
        self.rule = pr.rule
        n_post, n_pre = pr.weights.shape
        self.x1 = torch.zeros(n_pre, dtype=torch.int64)
        self.y1 = torch.zeros(n_post, dtype=torch.int64)
        self.rand = _Randoms(seed)
        self.tag_1 = None if pr.rule.tag_1 is None else torch.as_tensor(pr.rule.tag_1, dtype=torch.int64)
        self.tag_2 = None if pr.rule.tag_2 is None else torch.as_tensor(pr.rule.tag_2, dtype=torch.int64)

    def step(self, W: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        r = self.rule
        self.rand.advance_spk()
        self.rand.advance_lrn()
        rv = self.rand.vals
        x_new = _add_impulse(_decay_trace(self.x1, r.x1_tau, rv["x_dec"]), pre, r.x1_impulse)
        y_new = _add_impulse(_decay_trace(self.y1, r.y1_tau, rv["y_dec"]), post, r.y1_impulse)
        n_post, n_pre = W.shape
        x0 = pre.to(torch.int64)[None, :]
        y0 = post.to(torch.int64)[:, None]
        # trace values as the rule sees them: this step's value where the dependency fired
        x1_y0 = torch.where(post[:, None], x_new[None, :], self.x1[None, :]).expand(n_post, n_pre)
        y1_x0 = torch.where(pre[None, :], y_new[:, None], self.y1[:, None]).expand(n_post, n_pre)
        vals = {"x1": {"y0": x1_y0, "u0": x_new[None, :]}, "y1": {"x0": y1_x0, "u0": y_new[:, None]}}
        acc = W << 7
        lim = 2**_W_ACC_U
        for p in r.products:
            cur = torch.ones(n_post, n_pre, dtype=torch.int64)
            cur = cur * {"x0": x0, "y0": y0, "u0": torch.ones((), dtype=torch.int64)}[p.dependency]
            width = 0
            for f in p.factors:
                w = _FACTOR_WIDTH[f]
                width += w
                if f in ("x1", "y1"):
                    fv = vals[f][p.dependency]
                elif f == "w":
                    fv = W
                elif f == "t":
                    fv = self.tag_1
                elif f == "d":
                    fv = self.tag_2
                else:  # pragma: no cover - the quantizer emits no other factor
                    raise ValueError(f"factor {f!r} not emulated")
                cur = cur * torch.clamp(fv, -(2**w), 2**w - 1)
            width += 4  # mantissa
            cur = cur * p.s_mantissa
            cur = cur >> max(0, width - _W_ACC_U)
            cur = cur << p.s_exp
            cur = torch.clamp(cur, -lim - 1, lim - 1)
            acc = torch.clamp(acc + cur, -lim - 1, lim - 1)
        q = acc.to(torch.float64) / 128.0
        frac = torch.remainder(q, 1.0)
        q = torch.floor(q) + (rv["conn"] < frac).to(torch.float64)
        W_new = (q * 128).to(torch.int64) >> 7
        W_new = torch.clamp(W_new, WEIGHT_RANGE[0], WEIGHT_RANGE[1])
        self.x1, self.y1 = x_new, y_new
        return W_new


def simulate_fixed(
    fixed: FixedNetwork,
    inputs: Any,
    *,
    steps: int | None = None,
    rng_seed: int = 0,
    record: Sequence[str] = ("spikes", "voltages", "weights"),
) -> FixedRecord:
    """Run ``fixed`` on spike ``inputs`` ``[T, n_in]`` exactly as Lava's fixed-point CPU models do.

    ``rng_seed`` must equal the ``rng_seed`` given to ``to_lava`` for identical learning.
    ``record``: any of ``"spikes"`` (always recorded), ``"voltages"``, ``"currents"`` (the integer
    current state ``u``; also recorded with ``"voltages"``), ``"weights"``.
    """
    x = inputs.detach().cpu().numpy() if hasattr(inputs, "detach") else np.asarray(inputs)
    x = np.asarray(x)
    if x.ndim == 3:
        if x.shape[1] != 1:
            raise ValueError("simulate_fixed runs one sample: inputs [T, 1, n_in]")
        x = x[:, 0]
    n_in = fixed.population(fixed.input_name).n
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"inputs must have shape [T, {n_in}], got {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise ValueError("fixed point takes spike inputs (0/1)")
    T = x.shape[0] if steps is None else int(steps)
    want_u = "voltages" in record or "currents" in record  # u came with the voltages before "currents" existed
    xin = torch.as_tensor(x[:T] != 0)
    pops = [p for p in fixed.populations if p.kind == "lif"]
    st = {}
    for p in pops:
        z = torch.zeros(p.n, dtype=torch.int64)
        bias_eff = torch.as_tensor(p.bias_mant, dtype=torch.int64) << torch.as_tensor(p.bias_exp, dtype=torch.int64)
        st[p.name] = dict(u=z.clone(), v=z.clone(), s=torch.zeros(p.n, dtype=torch.bool),
                          du=torch.as_tensor(p.du, dtype=torch.int64), dv=torch.as_tensor(p.dv, dtype=torch.int64),
                          vth=torch.as_tensor(p.vth, dtype=torch.int64), b=bias_eff)
    W = {pr.name: torch.as_tensor(pr.weights, dtype=torch.int64) for pr in fixed.projections}
    buf = {pr.name: torch.zeros(fixed.population(pr.post).n, dtype=torch.int64) for pr in fixed.projections}
    learners = {pr.name: _Learner(pr, rng_seed) for pr in fixed.projections if pr.plastic}
    rec_s: dict[str, list] = {p.name: [] for p in pops}
    rec_v: dict[str, list] = {p.name: [] for p in pops}
    rec_u: dict[str, list] = {p.name: [] for p in pops}
    rec_w: dict[str, list] = {k: [] for k in learners}
    for t in range(T):
        a_in = {p.name: torch.zeros(p.n, dtype=torch.int64) for p in pops}
        for pr in fixed.projections:
            a_in[pr.post] = a_in[pr.post] + buf[pr.name]
        for p in pops:
            s = st[p.name]
            s["u"], s["v"], s["s"] = lif_fixed_step(a_in[p.name], s["u"], s["v"], s["du"], s["dv"], s["vth"], s["b"])
        spikes = {p.name: st[p.name]["s"] for p in pops}
        spikes[fixed.input_name] = xin[t]
        for pr in fixed.projections:
            s_pre = spikes[pr.pre]
            acc = W[pr.name][:, s_pre].sum(dim=1)
            buf[pr.name] = acc << pr.weight_exp if pr.weight_exp >= 0 else acc >> -pr.weight_exp
            if pr.plastic:
                W[pr.name] = learners[pr.name].step(W[pr.name], s_pre, spikes[pr.post])
        for p in pops:
            rec_s[p.name].append(st[p.name]["s"].clone())
            if "voltages" in record:
                rec_v[p.name].append(st[p.name]["v"].clone())
            if want_u:
                rec_u[p.name].append(st[p.name]["u"].clone())
        if "weights" in record:
            for k in learners:
                rec_w[k].append(W[k].clone())
    stk = lambda d: {k: (torch.stack(v).numpy() if v else np.zeros((0,))) for k, v in d.items()}  # noqa: E731
    spikes_np = {k: v.astype(np.float64) for k, v in stk(rec_s).items()}
    return FixedRecord(spikes_np, stk(rec_v) if "voltages" in record else {}, stk(rec_u) if want_u else {},
                       stk(rec_w) if "weights" in record else {})
