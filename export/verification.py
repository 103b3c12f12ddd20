"""``verify``: run the torch float64 reference and the Lava export on the same inputs and compare.

A verification is only as good as its inputs: on inputs that do not drive the network, every
comparison agrees vacuously. So by default the inputs are episodes of the network's own task
(the training checkpoint records task and model; :func:`spikeplastic.meta.replay.network_inputs`
encodes them as the model does), and ``ok`` also requires that every population spikes (on both
sides) and every plastic projection's weights change (``allow_silent=True`` accepts silence).

Float mode promises identical spikes and weights equal to float64 rounding:
``max |W_torch - W_lava| <= 1e-12 * max |W|`` per plastic projection (measured: <= 4e-15).
Fixed mode promises Lava == :func:`~spikeplastic.export.simulate_fixed` bit for bit; against the
float reference it *reports* spike agreement over spike events, the weight error in LSBs and the
learning engine's own error (the float rule replayed on Lava's spikes, in LSBs), which are
quantisation effects, not bugs.

Spike agreement counts events, not (neuron, step) cells: ``matched / (spikes on either side)``,
so a silent side scores 0 % and two silent sides have no agreement to report (``None``).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from spikeplastic import ir as _ir
from spikeplastic.functional import STDPTraces, stdp_traces_step, stdp_update

from ._plan import as_ir

__all__ = ["VerifyReport", "PopulationCheck", "ProjectionCheck", "verify", "check_inputs", "random_inputs",
           "FLOAT_REL_TOL", "DEFAULT_STEPS", "DEFAULT_MAX_EPISODES"]

#: float mode: max |W_torch - W_lava| allowed, relative to the weight scale max |W| (measured <= 4e-15)
FLOAT_REL_TOL = 1e-12
#: default length of a verification: the fewest whole task episodes with at least this many steps in all
#: (at most DEFAULT_MAX_EPISODES of them), or the length of a random-input run
DEFAULT_STEPS = 200
DEFAULT_MAX_EPISODES = 10


@dataclass
class PopulationCheck:
    """Spikes of one population, Lava vs the float64 torch reference.

    ``matched``: spikes at the same (step, neuron) on both sides; ``mismatches``: (step, neuron)
    cells where exactly one side spiked; ``agreement_pct = 100 * matched / (matched + mismatches)``
    (spike events on either side), ``None`` when neither side spiked.
    """

    n: int
    spikes_reference: int
    spikes_lava: int
    matched: int
    mismatches: int
    agreement_pct: float | None
    first_divergent_step: int | None
    max_abs_dv: float | None = None
    emulator_mismatches: int | None = None  # fixed mode: Lava vs simulate_fixed
    emulator_max_abs_dv_int: int | None = None

    @property
    def silent(self) -> bool:
        """Whether either side emitted no spike at all."""
        return self.spikes_reference == 0 or self.spikes_lava == 0


@dataclass
class ProjectionCheck:
    """Weights of one plastic projection over the whole run.

    ``max_weight_change``/``max_weight_change_lava``: ``max_t |W[t] - W_init|`` of the reference /
    of Lava (did learning happen?); ``max_abs_dw``: ``max_t |W_torch[t] - W_lava[t]|``.
    """

    max_abs_dw: float
    weight_scale: float
    max_rel_dw: float
    max_weight_change: float
    max_weight_change_lava: float
    lsb: float | None = None  # fixed mode: one weight LSB in float units
    max_dw_lsb: float | None = None
    # fixed: the IR's float rule replayed on Lava's own spikes (same 8-bit saturation) vs Lava's weights:
    # the learning engine's error (7-bit traces, integer taus, stochastic rounding), without chaos
    rule_replay_max_lsb: float | None = None
    rule_replay_mean_lsb: float | None = None
    emulator_max_dw_int: int | None = None


@dataclass
class VerifyReport:
    """Result of :func:`verify` (``summary()`` for people, ``to_json()`` for machines).

    ``ok`` is the mode's promise *and*, unless ``allow_silent``, no silence: ``reasons`` lists
    every failed condition (empty when ``ok``); ``silent`` lists the silent populations and the
    plastic projections whose weights did not change (reported even when accepted).
    """

    mode: str
    backend: str
    steps: int
    seed: int
    inputs: str
    input_events: int
    spike_agreement_pct: float | None
    first_divergent_step: int | None
    max_abs_dw: float
    max_rel_dw: float
    weight_scale: float
    lava_steps_per_s: float
    torch_steps_per_s: float
    lava_compile_s: float
    ok: bool
    criterion: str
    allow_silent: bool = False
    episodes: int = 1
    reasons: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
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
        """The report as text: verdict and reasons, then counts per population and projection."""
        pct = ("n/a (no spike on either side)" if self.spike_agreement_pct is None
               else f"{self.spike_agreement_pct:.4f}% (matched / spikes on either side)")
        lines = [
            f"verify: {'ok' if self.ok else 'NOT OK'} ({self.mode} mode, {self.steps} steps in {self.episodes} "
            f"run{'s' if self.episodes != 1 else ''}, backend {self.backend})",
            f"criterion: {self.criterion}",
        ]
        lines += [f"  FAILED: {r}" for r in self.reasons]
        if self.allow_silent:
            lines += [f"  accepted (allow_silent): {r}" for r in self.silent]
        lines.append(f"inputs: {self.inputs}; {self.input_events} non-zero input values")
        lines.append(f"spike agreement {pct}, first divergent step "
                     f"{'-' if self.first_divergent_step is None else self.first_divergent_step}")
        if self.bit_exact_vs_emulator is not None:
            lines.append(f"bit-exact vs simulate_fixed: {self.bit_exact_vs_emulator}")
        lines.append("spikes per population (reference / Lava):")
        for k, p in self.populations.items():
            agr = "-" if p.agreement_pct is None else f"{p.agreement_pct:.2f}%"
            lines.append(f"  {k} ({p.n} neurons): {p.spikes_reference} / {p.spikes_lava}, {p.matched} matched, "
                         f"{p.mismatches} mismatched, agreement {agr}")
        if self.projections:
            lines.append("plastic weights: change over the run (reference / Lava), max |W_torch - W_lava|:")
        else:
            lines.append("plastic weights: none (no plastic projection)")
        for k, q in self.projections.items():
            extra = "" if q.max_dw_lsb is None else f", {q.max_dw_lsb:.1f} LSB; rule replay {q.rule_replay_max_lsb:.2f} LSB max"
            lines.append(f"  {k}: {q.max_weight_change:.4g} / {q.max_weight_change_lava:.4g}, max |dW| {q.max_abs_dw:.3g} "
                         f"= {q.max_rel_dw:.3g} of weight scale {q.weight_scale:.4g}{extra}")
        lines.append(f"Lava {self.lava_steps_per_s:.0f} steps/s (compile {self.lava_compile_s:.1f} s), "
                     f"torch {self.torch_steps_per_s:.0f} steps/s")
        return "\n".join(lines)


def _first_mismatch(a: np.ndarray, b: np.ndarray) -> int | None:
    bad = np.nonzero((a != b).any(axis=1))[0]
    return int(bad[0]) if bad.size else None


def _replay_stdp(pr: _ir.Projection, pre: np.ndarray, post: np.ndarray, W0: np.ndarray, anchor: np.ndarray,
                 lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """The IR's float STDP rule driven by given spike trains (Lava's), from ``W0``, saturating at [lo, hi].

    Traces and pair term are the torch model's (:mod:`spikeplastic.functional`). The weight update is
    written on ``W`` as Lava's learning engine applies it, ``W += alpha*e - decay*(W - anchor)`` then
    Lava's 8-bit saturation, which the model's update of the plastic part (``synaptic_update`` on
    ``H``) cannot express: the model never saturates ``W``.
    """
    r = pr.rule
    assert isinstance(r, _ir.STDPRule)
    alpha = 1.0 if pr.alpha is None else np.asarray(pr.alpha)
    s_pre = torch.as_tensor(np.asarray(pre, dtype=np.float64))[:, None]  # [T, 1, n_pre]: batch of one
    s_post = torch.as_tensor(np.asarray(post, dtype=np.float64))[:, None]
    tr = STDPTraces(torch.zeros(1, pre.shape[1], dtype=torch.float64), torch.zeros(1, post.shape[1], dtype=torch.float64))
    W = W0.astype(np.float64).copy()
    out = np.empty((pre.shape[0],) + W.shape)
    for t in range(pre.shape[0]):
        tr = stdp_traces_step(tr, s_pre[t], s_post[t], r.a_plus, r.a_minus, r.tau_plus, r.tau_minus)
        e = stdp_update(tr, s_pre[t], s_post[t])[0].numpy()
        W = np.clip(W + alpha * e - pr.decay * (W - anchor), lo, hi)
        out[t] = W
    return out


def _random_inputs(ir: _ir.NetworkIR, steps: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Bernoulli(``rate``) spikes; for a current input, N(0, 1) currents present with probability ``rate``."""
    n_in = ir.input.n
    on = rng.random((steps, n_in)) < rate
    if ir.input.input_kind == "spikes":
        return on.astype(np.float64)
    return np.where(on, rng.normal(0.0, 1.0, size=(steps, n_in)), 0.0)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def random_inputs(net_ir: _ir.NetworkIR, steps: int, rate: float, seed: int = 0) -> np.ndarray:
    """``[steps, n_in]`` random inputs at ``rate`` in (0, 1]: Bernoulli spikes, or for a current input
    N(0, 1) currents present with probability ``rate`` (``numpy.random.default_rng(seed)``)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise ValueError(f"random_inputs must be a rate in (0, 1], got {rate!r}")
    return _random_inputs(net_ir, _count("steps", steps, 1), np.random.default_rng(seed), float(rate))


def check_inputs(inputs: Any, net_ir: _ir.NetworkIR, name: str = "inputs") -> np.ndarray:
    """``inputs`` as float64 ``[episodes, T, n_in]``, or a ``ValueError`` naming ``name`` and the expected form.

    Accepted: ``[T, n_in]`` (one run) or ``[episodes, T, n_in]`` with ``T >= 2`` (each episode run
    from a fresh state), numpy, torch or anything ``np.asarray`` takes; finite; only 0/1 when the
    network's input population takes spikes.
    """
    n_in = net_ir.input.n
    kind = net_ir.input.input_kind
    form = (f"[T, {n_in}] (one run) or [episodes, T, {n_in}] (T >= 2, each episode from a fresh state) of "
            f"{'spikes (0/1)' if kind == 'spikes' else 'input currents'}")
    try:
        x = inputs.detach().cpu().numpy() if hasattr(inputs, "detach") else np.asarray(inputs)
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array {form}: {e}") from None
    got = tuple(x.shape)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != n_in or x.shape[0] < 1 or x.shape[1] < 1 or (x.shape[0] > 1 and x.shape[1] < 2):
        hint = " ([T, 1, n_in] is not a batch here: pass [T, n_in])" if len(got) == 3 and got[1] == 1 else ""
        raise ValueError(f"{name} must have shape {form}, got {got}{hint}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite: it holds NaN or inf")
    if kind == "spikes" and not np.all((x == 0) | (x == 1)):
        raise ValueError(f"{name}: the network's input population takes spikes, so {name} must hold only 0 and 1")
    return x


def _resolve_inputs(
    source: Any, ir: _ir.NetworkIR, inputs: Any, rate: float | None, episodes: int | None, steps: int | None, seed: int,
) -> tuple[np.ndarray, str]:
    """(x ``[episodes, T, n_in]``, description): given inputs, random ones on request, else the task's episodes."""
    if steps is not None:
        steps = _count("steps", steps, 1)
    if episodes is not None:
        episodes = _count("episodes", episodes, 1)
    if inputs is not None and rate is not None:
        raise ValueError("pass either inputs= or random_inputs=, not both")
    if episodes is not None and (inputs is not None or rate is not None):
        raise ValueError("episodes= applies to task inputs only, not with inputs= or random_inputs=")
    if inputs is not None:
        x = check_inputs(inputs, ir, "inputs")
        if steps is not None:
            if steps > x.shape[1]:
                raise ValueError(f"steps={steps} exceeds the {x.shape[1]} steps of inputs")
            x = x[:, :steps]
        return x, f"given array {list(x.shape)}"
    if rate is not None:
        x = random_inputs(ir, DEFAULT_STEPS if steps is None else steps, rate, seed)[None]
        what = "spikes" if ir.input.input_kind == "spikes" else "N(0, 1) currents present"
        return x, f"random (requested): Bernoulli({rate:g}) {what}, seed {seed}"
    if source is not None and source.checkpoint is not None:
        from spikeplastic.meta.replay import network_inputs

        ti = network_inputs(source.checkpoint, episodes=episodes, seed=seed,
                            min_steps=DEFAULT_STEPS if steps is None else steps,
                            max_episodes=DEFAULT_MAX_EPISODES if steps is None else None)
        return check_inputs(ti.x, ir, "the task's encoded inputs"), ti.describe() + ", each from a fresh state"
    if source is not None and source.inputs_file is not None:
        if episodes is not None or steps is not None:
            raise ValueError(f"episodes=/steps= need a training checkpoint; {str(source.path)!r} is an export whose "
                             f"inputs are fixed ({source.inputs_file.name}): pass inputs= to choose others")
        x = check_inputs(np.load(source.inputs_file, allow_pickle=False), ir, str(source.inputs_file))
        return x, f"{source.inputs_file.name} saved by export ({x.shape[0]} x {x.shape[1]} steps)"
    what = "a network object" if source is None else repr(str(source.path))
    raise ValueError(
        f"no task to draw verification inputs from ({what} is not a training checkpoint): pass the checkpoint "
        f"path (its task's episodes are used), inputs=[T, {ir.input.n}] (the network's own inputs), or "
        "random_inputs=RATE"
    )


def _third_factors(ir: _ir.NetworkIR, third_factor: Any, n_ep: int, steps: int, rng: np.random.Generator) -> list[Any]:
    """One external third factor per episode (``None`` each when the IR takes none)."""
    needs_tf = any(p.modulation is not None and p.modulation.source is None for p in ir.projections)
    if third_factor is None:
        if not needs_tf:
            return [None] * n_ep
        return list(np.tanh(rng.normal(size=(n_ep, steps))))
    tf = np.asarray(third_factor.detach().cpu().numpy() if hasattr(third_factor, "detach") else third_factor,
                    dtype=np.float64)
    if n_ep == 1:
        return [tf[:steps]]
    if tf.ndim not in (2, 3) or tf.shape[0] != n_ep:
        raise ValueError(f"third_factor must be [episodes={n_ep}, T] or [episodes, T, n_post] for {n_ep} episodes, "
                         f"got {tuple(tf.shape)}")
    return list(tf[:, :steps])


def _noise_seed(ir: _ir.NetworkIR, seed: int, episode: int) -> int:
    """Node perturbation's noise seed of ``episode``: ``(seed + episode) * P`` for ``P`` projections, so
    every (episode, projection) pair of a verification has its own stream (wrapped to 32 bits)."""
    p = len(ir.projections)
    return ((seed + episode) * p) % (2**32 - p)


def verify(
    net_or_ir: Any,
    inputs: Any = None,
    steps: int | None = None,
    mode: str = "float",
    seed: int = 0,
    *,
    episodes: int | None = None,
    random_inputs: float | None = None,
    allow_silent: bool = False,
    third_factor: Any = None,
    backend: str = "cpu",
    scale: float | Mapping[str, float] | None = None,
    timeout: float = 600.0,
) -> VerifyReport:
    """Compare :func:`spikeplastic.simulate` (float64) with the Lava export on the same inputs.

    Each episode is a separate run from a fresh state on both sides (as in training); counts and
    step indices are over the episodes back to back.

    Args:
        net_or_ir: a training checkpoint (file or run folder), an export folder or IR file, a
            :class:`~spikeplastic.Network` or a :class:`~spikeplastic.ir.NetworkIR`.
        inputs: ``[T, n_in]`` or ``[episodes, T, n_in]`` network inputs. Default: episodes of the
            checkpoint's own task encoded as its model encodes them (an export folder: the
            ``inputs.npy`` export saved); a network object needs ``inputs`` or ``random_inputs``.
        steps: task inputs: at least this many steps in all, in whole episodes (default: >=
            :data:`DEFAULT_STEPS`, at most :data:`DEFAULT_MAX_EPISODES` episodes); given inputs:
            the first ``steps`` of each episode; random inputs: the run's length (default
            :data:`DEFAULT_STEPS`).
        mode: ``"float"`` or ``"fixed"``. seed: episode/input seed (and fixed mode's rounding seed).
        episodes: number of task episodes (overrides the default choice).
        random_inputs: a rate in (0, 1]: Bernoulli spikes (a current input: N(0, 1) currents present
            with that probability) instead of task inputs, from ``numpy.random.default_rng(seed)``.
        allow_silent: accept silent or saturated populations and unchanged plastic weights
            (reported anyway).
        third_factor: external modulation ``[T]``/``[T, n_post]`` (several episodes: ``[episodes, T]``/
            ``[episodes, T, n_post]``); random ``tanh(N(0,1))`` if the IR needs it and it is absent.
            Node perturbation's noise: episode ``i`` uses ``noise_seed = (seed + i) * P`` (``P``
            projections) on both sides.

    Returns: a :class:`VerifyReport`; ``ok``: the mode's promise (float: identical spikes and
    ``max |dW| <= 1e-12 * weight scale`` per plastic projection; fixed: Lava bit-exact with
    :func:`~spikeplastic.export.simulate_fixed`) and, unless ``allow_silent``, every population
    spikes, without firing at every step in every neuron, and every plastic projection changes,
    on both sides.

    Raises:
        ValueError: bad inputs/steps/episodes/random_inputs (the message names the argument), or
            no input source (a network object without ``inputs``/``random_inputs``). All checked
            before Lava starts.
    """
    from spikeplastic.simulate import simulate

    from .exporter import to_lava
    from .sources import NetworkSource, load_source

    if isinstance(net_or_ir, (NetworkSource, str, os.PathLike)):
        source = net_or_ir if isinstance(net_or_ir, NetworkSource) else load_source(net_or_ir)
        ir = source.ir
    else:
        source = None
        ir = as_ir(net_or_ir)
    from ._plan import check_mode_backend

    check_mode_backend(mode, backend)
    seed = _count("seed", seed, 0)
    xs, inputs_desc = _resolve_inputs(source, ir, inputs, random_inputs, episodes, steps, seed)
    n_ep, T = int(xs.shape[0]), int(xs.shape[1])
    tfs = _third_factors(ir, third_factor, n_ep, T, np.random.default_rng((seed, 1)))
    lnet = to_lava(ir, mode=mode, backend=backend, scale=scale, rng_seed=seed, timeout=timeout)
    fixed = lnet.fixed

    refs, recs, emus = [], [], []
    torch_s = 0.0
    for i, (x, tf) in enumerate(zip(xs, tfs)):
        # node perturbation: episode i's noise streams, the same on both sides (projection j: seed + j)
        ns = _noise_seed(ir, seed, i)
        t0 = time.perf_counter()
        refs.append(simulate(ir, x, third_factor=tf, noise_seed=ns))
        torch_s += time.perf_counter() - t0
        recs.append(lnet.run(x, third_factor=tf, noise_seed=ns))
        if mode == "fixed":
            from .fixed_sim import simulate_fixed

            emus.append(simulate_fixed(fixed, x, rng_seed=seed))
    total_steps = n_ep * T

    def cat(arrs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrs, axis=0)

    pops: dict[str, PopulationCheck] = {}
    total_bad = total_matched = 0
    firsts = []
    for name in recs[0].spikes:
        s_l = cat([r.spikes[name] for r in recs])
        s_r = cat([r.spikes[name][:, 0].numpy() for r in refs])
        on_l, on_r = s_l != 0, s_r != 0
        bad = int((on_l != on_r).sum())
        matched = int((on_l & on_r).sum())
        total_bad += bad
        total_matched += matched
        first = _first_mismatch(s_l, s_r)
        if first is not None:
            firsts.append(first)
        dv = None
        if recs[0].voltages is not None:
            dv = max(float(np.max(np.abs(r.voltages[name] - f.voltages[name][:, 0].numpy()))) for r, f in zip(recs, refs))
        pc = PopulationCheck(
            n=s_l.shape[1], spikes_reference=int(on_r.sum()), spikes_lava=int(on_l.sum()), matched=matched,
            mismatches=bad, agreement_pct=100.0 * matched / (matched + bad) if matched + bad else None,
            first_divergent_step=first, max_abs_dv=dv,
        )
        if mode == "fixed":
            pc.emulator_mismatches = sum(int((e.spikes[name] != r.spikes[name]).sum()) for e, r in zip(emus, recs))
            pc.emulator_max_abs_dv_int = max(int(np.max(np.abs(e.voltages[name] - r.raw_voltages[name])))
                                             for e, r in zip(emus, recs))
        pops[name] = pc
    projs: dict[str, ProjectionCheck] = {}
    for name in recs[0].weights or {}:
        w_l = cat([r.weights[name] for r in recs])
        w_r = cat([f.weights[name][:, 0].numpy() for f in refs])
        pr_ir = next(p for p in ir.projections if p.name == name)
        scale_w = float(np.max(np.abs(w_r))) if w_r.size else 0.0
        dw = float(np.max(np.abs(w_l - w_r))) if w_r.size else 0.0
        q = ProjectionCheck(
            max_abs_dw=dw, weight_scale=scale_w, max_rel_dw=dw / scale_w if scale_w else dw,
            max_weight_change=float(np.max(np.abs(w_r - pr_ir.weight))) if w_r.size else 0.0,
            max_weight_change_lava=max(r.weight_change()[name] for r in recs),
        )
        if mode == "fixed":
            fpr = fixed.projection(name)
            ws = fixed.weight_scale(name)
            q.lsb = 1.0 / ws
            q.max_dw_lsb = dw * ws
            anchor = (fpr.rule.tag_2 if fpr.rule is not None and fpr.rule.tag_2 is not None else fpr.weights) / ws
            errs = []
            for x, r in zip(xs, recs):
                spikes_all = {ir.input.name: x, **r.spikes}
                rep_w = _replay_stdp(pr_ir, spikes_all[pr_ir.pre], spikes_all[pr_ir.post], fpr.weights / ws, anchor,
                                     -256 / ws, 255 / ws)
                errs.append(np.abs(r.raw_weights[name] - rep_w * ws))
            err = cat(errs)
            q.rule_replay_max_lsb = float(err.max())
            q.rule_replay_mean_lsb = float(err.mean())
            q.emulator_max_dw_int = max(int(np.max(np.abs(e.weights[name] - r.raw_weights[name])))
                                        for e, r in zip(emus, recs))
        projs[name] = q
    max_dw = max((q.max_abs_dw for q in projs.values()), default=0.0)
    wscale = max((q.weight_scale for q in projs.values()), default=0.0)
    max_rel = max((q.max_rel_dw for q in projs.values()), default=0.0)
    union = total_matched + total_bad
    agreement = 100.0 * total_matched / union if union else None

    reasons: list[str] = []
    bit_exact = None
    if mode == "fixed":
        bit_exact = all(p.emulator_mismatches == 0 and p.emulator_max_abs_dv_int == 0 for p in pops.values()) and all(
            q.emulator_max_dw_int == 0 for q in projs.values()
        )
        crit = "Lava fixed point == simulate_fixed bit for bit"
        if not bit_exact:
            reasons.append("Lava's fixed-point run differs from simulate_fixed (spikes, voltages or weights)")
    else:
        crit = f"identical spikes and max |W_torch - W_lava| <= {FLOAT_REL_TOL:g} x weight scale (max |W|)"
        for k, p in pops.items():
            if p.mismatches:
                reasons.append(f"population {k!r}: {p.mismatches} spike mismatches, first at step {p.first_divergent_step}")
        for k, q in projs.items():
            if not q.max_abs_dw <= FLOAT_REL_TOL * q.weight_scale:
                reasons.append(f"projection {k!r}: max |dW| {q.max_abs_dw:.3g} = {q.max_rel_dw:.3g} of the weight scale "
                               f"> {FLOAT_REL_TOL:g}")
    crit += "; every population spikes (not in every cell) and every plastic weight matrix changes, on both sides"
    silent: list[str] = []
    for k, p in pops.items():
        if p.silent:
            silent.append(f"population {k!r} is silent: {p.spikes_reference} spikes in the reference, "
                          f"{p.spikes_lava} in Lava, in {total_steps} steps")
        elif max(p.spikes_reference, p.spikes_lava) == p.n * total_steps:
            silent.append(f"population {k!r} is saturated: every neuron spikes at every one of the {total_steps} "
                          "steps (spike agreement then means nothing)")
    for k, q in projs.items():
        tol = FLOAT_REL_TOL * q.weight_scale
        if not (q.max_weight_change > tol and q.max_weight_change_lava > tol):
            silent.append(f"plastic projection {k!r} did not change: max |W[t] - W_init| = {q.max_weight_change:.3g} "
                          f"in the reference, {q.max_weight_change_lava:.3g} in Lava")
    if not allow_silent:
        reasons += silent
    lava_wall = sum(r.wall_s for r in recs)
    return VerifyReport(
        mode=mode, backend=backend, steps=total_steps, seed=seed, inputs=inputs_desc,
        input_events=int(np.count_nonzero(xs)), spike_agreement_pct=agreement,
        first_divergent_step=min(firsts) if firsts else None, max_abs_dw=max_dw, max_rel_dw=max_rel,
        weight_scale=wscale, lava_steps_per_s=total_steps / lava_wall if lava_wall > 0 else float("inf"),
        torch_steps_per_s=total_steps / max(torch_s, 1e-9), lava_compile_s=sum(r.compile_s for r in recs),
        ok=not reasons, criterion=crit, allow_silent=bool(allow_silent), episodes=n_ep, reasons=reasons,
        silent=silent, populations=pops, projections=projs, bit_exact_vs_emulator=bit_exact,
        quantization=None if lnet.quant_report is None else lnet.quant_report.to_dict(),
    )
