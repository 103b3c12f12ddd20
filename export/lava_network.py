"""A Lava export: :class:`LavaNetwork` (what :func:`~spikeplastic.export.to_lava` returns) builds the
Lava processes of a :class:`~spikeplastic.export._plan.Plan`, runs them bounded and always stops
them; :class:`LavaRecord` is what a run recorded.

Importing this module does not import Lava (building a network does, through the compatibility shim).
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import _lava
from ._compat import import_lava
from ._interrupt import sigint_guard
from ._plan import Plan
from .batching import check_copies, default_copies, diagonal_blocks, fixed_replica, replicate
from .errors import LavaTimeoutError

__all__ = ["LavaRecord", "LavaEpisodes", "LavaNetwork", "LavaTimeoutError", "RECORDABLE", "DEFAULT_RECORD",
           "DEFAULT_EPISODE_RECORD"]

#: what :meth:`LavaNetwork.run` can record (each entry adds one Recorder process per population/projection)
RECORDABLE = ("spikes", "voltages", "currents", "weights")
#: what it records by default
DEFAULT_RECORD = ("spikes", "voltages", "weights")
#: what :meth:`LavaNetwork.run_episodes` records by default
DEFAULT_EPISODE_RECORD = ("spikes",)


def _check_record(record: Sequence[str]) -> None:
    if isinstance(record, str):
        raise ValueError(f"record must be a sequence of names among {list(RECORDABLE)}, got the string {record!r}")
    for r in record:
        if r not in RECORDABLE:
            raise ValueError(f"record entries must be among {list(RECORDABLE)}, got {r!r}")


class _Counts:
    """Spike counts and weight change of a record (one episode ``[T, ...]`` or many ``[T, E, ...]``)."""

    spikes: dict[str, np.ndarray]
    weights: dict[str, np.ndarray] | None
    initial_weights: dict[str, np.ndarray] | None

    def spike_counts(self) -> dict[str, int]:
        """Spikes emitted by each population over the run (all episodes)."""
        return {k: int(np.count_nonzero(v)) for k, v in self.spikes.items()}

    def weight_change(self) -> dict[str, float]:
        """``max |W[t] - W_init|`` over steps (and episodes) of each recorded plastic projection (empty without
        recorded weights)."""
        if not self.weights or self.initial_weights is None:
            return {}
        return {k: float(np.max(np.abs(w - self.initial_weights[k]))) if w.size else 0.0 for k, w in self.weights.items()}


@dataclass(frozen=True)
class LavaRecord(_Counts):
    """What a Lava run recorded, numpy arrays with leading dim ``T`` (no batch dim).

    Time indexing is that of :class:`spikeplastic.Record`: ``spikes[k][t]`` / ``voltages[k][t]`` /
    ``currents[k][t]`` are population ``k`` after step ``t`` (``currents``: the LIF's synaptic current
    state ``u``, ``u = u*(1-du) + a``); ``weights[name][t]`` is ``W[t]`` after the plasticity of step
    ``t`` (plastic projections only), so ``rec.spikes[k] == simulate(ir, x).spikes[k][:, 0]``.

    In fixed mode ``voltages``/``currents``/``weights`` are converted back to float units (divided by
    the quantisation scales; ``u`` has the units of ``v``) and ``raw_voltages``/``raw_currents``/
    ``raw_weights`` hold Lava's integers.
    """

    spikes: dict[str, np.ndarray]
    voltages: dict[str, np.ndarray] | None
    weights: dict[str, np.ndarray] | None
    mode: str
    steps: int
    wall_s: float
    compile_s: float
    raw_voltages: dict[str, np.ndarray] | None = None
    raw_weights: dict[str, np.ndarray] | None = None
    initial_weights: dict[str, np.ndarray] | None = None  # W_init of each recorded projection, units of ``weights``
    currents: dict[str, np.ndarray] | None = None
    raw_currents: dict[str, np.ndarray] | None = None

    @property
    def steps_per_s(self) -> float:
        """Simulated steps per second of the run itself (compilation excluded)."""
        return self.steps / self.wall_s if self.wall_s > 0 else float("inf")



@dataclass(frozen=True)
class LavaEpisodes(_Counts):
    """What :meth:`LavaNetwork.run_episodes` recorded: numpy arrays with leading dims ``[T, E]`` (``E`` episodes).

    The layout of :class:`spikeplastic.Record` for a batch of ``E``: ``spikes[k]``, ``voltages[k]``,
    ``currents[k]`` are ``[T, E, n_k]`` (population ``k`` after step ``t``); ``weights[name]`` is
    ``[T, E, n_post, n_pre]`` (``W[t]`` after the plasticity of step ``t``, plastic projections).
    Fixed mode: float units plus Lava's integers in ``raw_*``, as in :class:`LavaRecord`.
    ``copies``: episodes per Lava run; ``runs``: Lava runs made; ``wall_s``/``compile_s``: summed over
    the runs (the runs themselves / process start-up); ``total_s``: the whole call.
    """

    spikes: dict[str, np.ndarray]
    voltages: dict[str, np.ndarray] | None
    currents: dict[str, np.ndarray] | None
    weights: dict[str, np.ndarray] | None
    mode: str
    steps: int
    episodes: int
    copies: int
    runs: int
    wall_s: float
    compile_s: float
    total_s: float
    raw_voltages: dict[str, np.ndarray] | None = None
    raw_currents: dict[str, np.ndarray] | None = None
    raw_weights: dict[str, np.ndarray] | None = None
    initial_weights: dict[str, np.ndarray] | None = None  # W_init [n_post, n_pre] (every episode), units of ``weights``

    @property
    def episodes_per_s(self) -> float:
        """Episodes per second of the whole call (start-up, runs and read-back included)."""
        return self.episodes / self.total_s if self.total_s > 0 else float("inf")


    def episode(self, e: int) -> LavaRecord:
        """Episode ``e`` as a :class:`LavaRecord` (``[T, ...]`` arrays; timings are those of the whole call)."""
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not -self.episodes <= int(e) < self.episodes:
            raise IndexError(f"episode: expected an int in [0, {self.episodes}), got {e!r}")
        pick = lambda d: None if d is None else {k: v[:, e] for k, v in d.items()}  # noqa: E731
        return LavaRecord(pick(self.spikes), pick(self.voltages), pick(self.weights), self.mode, self.steps,
                          self.wall_s, self.compile_s, pick(self.raw_voltages), pick(self.raw_weights),
                          self.initial_weights, currents=pick(self.currents), raw_currents=pick(self.raw_currents))


def _assemble(parts: list[tuple[int, LavaRecord]], mode: str, T: int, E: int, copies: int, wall: float, comp: float,
              total: float) -> LavaEpisodes:
    """The runs' records (``(copies, record)`` per chunk, in episode order) as one :class:`LavaEpisodes`."""
    first = parts[0][1]

    def pops(field: str) -> dict[str, np.ndarray] | None:  # [T, c*n] per run -> [T, E, n]
        names = getattr(first, field)
        if names is None:
            return None
        return {k: np.concatenate([getattr(r, field)[k].reshape(T, c, -1) for c, r in parts], axis=1) for k in names}

    def projs(field: str) -> dict[str, np.ndarray] | None:  # [T, c, n_post, n_pre] per run ([T, n_post, n_pre] for c = 1)
        names = getattr(first, field)
        if names is None:
            return None
        return {k: np.concatenate([getattr(r, field)[k].reshape(T, c, *getattr(r, field)[k].shape[-2:])
                                   for c, r in parts], axis=1) for k in names}

    init = None
    if first.initial_weights is not None:
        init = {k: (w[0] if w.ndim == 3 else w).copy() for k, w in first.initial_weights.items()}
    return LavaEpisodes(
        spikes=pops("spikes") or {}, voltages=pops("voltages"), currents=pops("currents"), weights=projs("weights"),
        mode=mode, steps=T, episodes=E, copies=copies, runs=len(parts), wall_s=wall, compile_s=comp, total_s=total,
        raw_voltages=pops("raw_voltages"), raw_currents=pops("raw_currents"), raw_weights=projs("raw_weights"),
        initial_weights=init,
    )


class LavaNetwork:
    """A validated Lava export of a :class:`~spikeplastic.ir.NetworkIR` (see :func:`~spikeplastic.export.to_lava`).

    Lava processes are created by each :meth:`run` and always stopped before it returns.
    """

    def __init__(self, ir: Any, plan: Plan, *, fixed: Any = None, timeout: float = 600.0, rng_seed: int = 0) -> None:
        self.ir = ir
        self.plan = plan
        self.fixed = fixed
        self.mode = plan.mode
        self.backend = plan.backend
        self.timeout = float(timeout)
        self.rng_seed = int(rng_seed)
        self.quant_report: Any = None
        self.last_build: dict[str, Any] = {}
        # a network replicated c times (run_episodes): weights are recorded as their c diagonal blocks
        self._diag_blocks = 1
        self._replicas: dict[int, LavaNetwork] = {}

    def __repr__(self) -> str:
        pops = ", ".join(f"{p.name}:{p.n}" for p in self.plan.populations)
        plastic = [p.name for p in self.plan.projections if p.plastic]
        return f"LavaNetwork(mode={self.mode!r}, backend={self.backend!r}, populations=[{pops}], plastic={plastic})"

    # ---- input checks -------------------------------------------------------------------------
    def _inputs(self, inputs: Any, steps: int | None) -> np.ndarray:
        x = inputs.detach().cpu().numpy() if hasattr(inputs, "detach") else np.asarray(inputs)
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 3:
            if x.shape[1] != 1:
                raise ValueError(f"Lava runs one sample: inputs [T, B, n_in] need B == 1, got B = {x.shape[1]}")
            x = x[:, 0, :]
        n_in = self.plan.pop(self.plan.input_name).n
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"inputs must have shape [T, {n_in}] (or [T, 1, {n_in}]), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("inputs contain NaN or inf")
        if self.plan.pop(self.plan.input_name).input_kind == "spikes" and not np.all((x == 0) | (x == 1)):
            raise ValueError("the input population takes spikes: inputs must hold only 0 and 1")
        T = x.shape[0]
        if steps is None:
            steps = T
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        if steps > T:
            raise ValueError(f"steps={steps} exceeds the {T} input rows (Lava's RingBuffer would cycle)")
        if self.mode == "fixed" and self.plan.pop(self.plan.input_name).input_kind != "spikes":
            raise ValueError("fixed mode takes spike inputs only")
        return x[:steps]

    def _third(self, third_factor: Any, steps: int) -> dict[str, np.ndarray]:
        """External third factor per 3-factor projection with source=None: [n_post, steps]."""
        need = [p for p in self.plan.projections if p.third is not None and p.third.source is None]
        if not need:
            if third_factor is not None:
                raise ValueError("third_factor was given but no projection takes an external third factor")
            return {}
        if third_factor is None:
            raise ValueError(
                f"projections {[p.name for p in need]} are modulated by an external third factor: pass third_factor=[T] or [T, n_post]"
            )
        tf = third_factor.detach().cpu().numpy() if hasattr(third_factor, "detach") else np.asarray(third_factor)
        tf = np.asarray(tf, dtype=np.float64)
        if tf.ndim in (2, 3) and tf.shape[1] == 1:  # [T, B=1] or [T, B=1, n_post] as simulate takes them
            tf = tf[:, 0]
        if not np.all(np.isfinite(tf)):
            raise ValueError("third_factor contains NaN or inf")
        if tf.shape[0] < steps:
            raise ValueError(f"third_factor has {tf.shape[0]} steps, fewer than the {steps} to run")
        out = {}
        for p in need:
            n_post = self.plan.pop(p.post).n
            if tf.ndim == 1:
                data = np.broadcast_to(tf[:steps, None], (steps, n_post))
            elif tf.ndim == 2 and tf.shape[1] == n_post:
                data = tf[:steps]
            else:
                raise ValueError(f"third_factor must have shape [T] or [T, {n_post}] for projection {p.name!r}, got {tf.shape}")
            out[p.name] = np.ascontiguousarray(data.T)
        return out

    def _noise(self, noise_seed: Any, steps: int) -> dict[str, np.ndarray]:
        """Node perturbation's currents per projection, ``sigma * xi`` ``[n_post, steps + 1]`` (column ``k``:
        step ``k``; the last one is only sent as ``y1``), from the stream of seed ``noise_seed + index``,
        exactly as :meth:`spikeplastic.Network.initial_state` seeds the torch run."""
        need = [p for p in self.plan.projections if p.perturbation is not None]
        if not need:
            return {}
        n_proj = len(self.plan.projections)
        if isinstance(noise_seed, bool) or not isinstance(noise_seed, (int, np.integer)) \
                or not 0 <= int(noise_seed) < 2**32 - n_proj:
            raise ValueError(f"noise_seed: expected an int in [0, 2^32 - {n_proj}), got {noise_seed!r}")
        import torch

        from spikeplastic.functional import perturbation_noise

        out = {}
        for p in need:
            pp = p.perturbation
            seed = torch.full((steps + 1,), int(noise_seed) + pp.index, dtype=torch.int64)
            xi = perturbation_noise(seed, torch.arange(steps + 1), self.plan.pop(p.post).n, torch.float64)
            # the torch network multiplies in float64 too: sigma * xi is the same number on both sides
            out[p.name] = np.ascontiguousarray((pp.sigma * xi).numpy().T)
        return out

    # ---- build --------------------------------------------------------------------------------
    def _build(self, x: np.ndarray, ext: dict[str, np.ndarray], record: Sequence[str], tmp: str,
               noise: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The Lava processes of this network (:meth:`_build_processes`), without the logging
        handlers Lava adds for each of them (:func:`~spikeplastic.export._lava._drop_new_handlers`)."""
        before = _lava._log_handlers()
        try:
            return self._build_processes(x, ext, record, tmp, noise or {})
        finally:
            _lava._drop_new_handlers(before)

    def _build_processes(self, x: np.ndarray, ext: dict[str, np.ndarray], record: Sequence[str],
                         tmp: str, noise: dict[str, np.ndarray]) -> dict[str, Any]:
        import_lava()
        from lava.magma.core.learning.learning_rule import Loihi2FLearningRule, Loihi3FLearningRule
        from lava.proc.dense.process import Dense, LearningDense
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIF

        plan = self.plan
        fixed = self.mode == "fixed"
        steps = x.shape[0]
        procs: dict[str, Any] = {}
        data = x.T.astype(np.int32 if fixed else np.float64)
        procs[plan.input_name] = RingBuffer(data=np.ascontiguousarray(data))
        for p in plan.populations:
            if p.kind == "input":
                continue
            if p.kind == "lif_subtract":
                from .lava_models.lif_subtract import SubtractLIF

                procs[p.name] = SubtractLIF(shape=(p.n,), du=p.du, dv=p.dv, vth=p.vth, bias=p.bias, name=p.name)
            elif fixed:
                procs[p.name] = LIF(shape=(p.n,), du=p.du, dv=p.dv, vth=p.vth, bias_mant=p.bias,
                                    bias_exp=p.bias_exp, name=p.name)
            else:
                procs[p.name] = LIF(shape=(p.n,), du=p.du, dv=p.dv, vth=p.vth, bias_mant=p.bias, name=p.name)
        conns: dict[str, Any] = {}
        extras: list[Any] = []
        noise_ports: list[tuple[Any, str]] = []
        for pr in plan.projections:
            kw: dict[str, Any] = {"name": pr.name}
            if pr.graded:
                kw["num_message_bits"] = 24
            if fixed:
                from lava.utils.weightutils import SignMode

                kw["weight_exp"] = int(pr.weight_exp)
                kw["sign_mode"] = SignMode[(pr.sign_mode or "mixed").upper()]
            if not pr.plastic:
                conn = Dense(weights=pr.weights.copy(), **kw)
            else:
                rule_kw = dict(dw=pr.dw, dt=pr.dt, x1_impulse=pr.x1_impulse, x1_tau=pr.x1_tau, t_epoch=1)
                if fixed:  # integer trace parameters, Lava's stochastic rounding seeded
                    rule_kw.update(x1_impulse=int(pr.x1_impulse), x1_tau=int(pr.x1_tau), rng_seed=self.rng_seed)
                if pr.three_factor:
                    rule = Loihi3FLearningRule(**rule_kw)
                    # Loihi3FLearningRule decays the received y traces with tau = 65535 before use;
                    # a non-decaying tau makes the rule see exactly what ThirdFactor sent.
                    rule.y1_tau = rule.y2_tau = rule.y3_tau = pr.y1_tau
                else:
                    y1 = (int(pr.y1_impulse), int(pr.y1_tau)) if fixed else (pr.y1_impulse, pr.y1_tau)
                    rule = Loihi2FLearningRule(y1_impulse=y1[0], y1_tau=y1[1], **rule_kw)
                lkw = dict(kw)
                if pr.tag_1 is not None:
                    lkw["tag_1"] = pr.tag_1.copy()
                if pr.tag_2 is not None:
                    lkw["tag_2"] = pr.tag_2.copy()
                conn = LearningDense(weights=pr.weights.copy(), learning_rule=rule, **lkw)
            procs[pr.pre].s_out.connect(conn.s_in)
            conn.a_out.connect(procs[pr.post].a_in)
            if pr.plastic:
                procs[pr.post].s_out.connect(conn.s_in_bap)
            if pr.perturbation is not None:
                from .lava_models.node_perturbation import PerturbationFactor

                t, pp = pr.third, pr.perturbation
                assert t is not None  # node perturbation always has a modulation (checked by the IR)
                n_post = plan.pop(pr.post).n
                n_src = n_post if t.source is None else plan.pop(t.source).n
                pf = PerturbationFactor(n_post=n_post, n_src=n_src, noise=noise[pr.name], external=t.source is None,
                                        weight=t.weight, bias=t.bias, baseline=pp.baseline, eta_b=pp.eta_b,
                                        name=f"{pr.name}_perturbation")
                if t.source is None:
                    src = RingBuffer(data=ext[pr.name])
                    extras.append(src)
                    src.s_out.connect(pf.m_in)
                else:
                    procs[t.source].s_out.connect(pf.m_in)
                pf.y1.connect(conn.s_in_y1)
                pf.y2.connect(conn.s_in_y2)
                noise_ports.append((pf.a_out, pr.post))
                extras.append(pf)
            elif pr.third is not None:
                from .lava_models.third_factor import ThirdFactor

                t = pr.third
                n_post = plan.pop(pr.post).n
                if t.source is None:
                    src = RingBuffer(data=ext[pr.name])
                    extras.append(src)
                    tf = ThirdFactor(n_post=n_post, n_src=n_post, external=True, y1_impulse=t.y1_impulse,
                                     y1_tau=t.y1_tau, name=f"{pr.name}_third_factor")
                    src.s_out.connect(tf.m_in)
                else:
                    tf = ThirdFactor(n_post=n_post, n_src=plan.pop(t.source).n, external=False, weight=t.weight,
                                     bias=t.bias, y1_impulse=t.y1_impulse, y1_tau=t.y1_tau,
                                     name=f"{pr.name}_third_factor")
                    procs[t.source].s_out.connect(tf.m_in)
                procs[pr.post].s_out.connect(tf.s_post)
                tf.y1.connect(conn.s_in_y1)
                tf.y2.connect(conn.s_in_y2)
                extras.append(tf)
            conns[pr.name] = conn
        # the perturbation currents after every projection's: an InPort adds its inputs in connection
        # order, and the torch network adds the noise after all synaptic currents
        for port, post in noise_ports:
            port.connect(procs[post].a_in)
        # outputs: one Recorder (a sink writing a memory-mapped .npy) per recorded quantity
        from .lava_models.recorder import Recorder

        recorders: dict[tuple[str, str], tuple[Any, str]] = {}

        def record_into(kind: str, name: str, shape: tuple[int, ...], target: Any, source: str, blocks: int = 1) -> None:
            path = os.path.join(tmp, f"{kind}-{name}.npy")
            stored = tuple(shape) if blocks == 1 else (blocks, shape[0] // blocks, shape[1] // blocks)
            np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(steps,) + stored).flush()
            rec = Recorder(shape=shape, num_steps=steps, path=path, source=source, blocks=blocks,
                           name=f"rec_{kind}_{name}")
            if source == "var":
                rec.ref.connect_var(target)
            else:
                target.connect(rec.inp)
            recorders[(kind, name)] = (rec, path)

        for p in plan.populations:
            if p.kind == "input":
                continue
            if "spikes" in record:
                record_into("spikes", p.name, (p.n,), procs[p.name].s_out, "port")
            if "voltages" in record:
                record_into("voltages", p.name, (p.n,), procs[p.name].v, "var")
            if "currents" in record:
                record_into("currents", p.name, (p.n,), procs[p.name].u, "var")
        if "weights" in record:
            for pr in plan.projections:
                if pr.plastic:
                    record_into("weights", pr.name, pr.weights.shape, conns[pr.name].weights, "var", self._diag_blocks)
        return {"procs": procs, "conns": conns, "extras": extras, "recorders": recorders}

    def processes(self, inputs: Any, third_factor: Any = None, *, steps: int | None = None,
                  noise_seed: int = 0) -> dict[str, Any]:
        """The exported network as Lava processes, built but not started, to wire into your own Lava code.

        Returns ``{name: process}`` for the input population (a ``RingBuffer`` that sends
        ``inputs[t-1]`` at step ``t`` and cycles after ``T``), every population (``LIF``) and every
        projection (``Dense``/``LearningDense``, keyed by projection name). Nothing is recorded:
        connect your own processes, sinks or monitors to their ports, then run and stop them yourself
        (``run_cfg=lnet.run_cfg()``; call ``stop()`` in a ``finally``: :meth:`run`'s time bound and
        cleanup do not apply here). Inputs are checked as in :meth:`run`; node perturbation's noise
        covers ``steps`` steps.
        """
        x = self._inputs(inputs, steps)
        ext = self._third(third_factor, x.shape[0])
        built = self._build(x, ext, (), "", self._noise(noise_seed, x.shape[0]))
        out = dict(built["procs"])
        for k, conn in built["conns"].items():
            if k in out:
                raise ValueError(f"projection name {k!r} is also a population name; use run() or rename it")
            out[k] = conn
        return out

    def run_cfg(self) -> Any:
        """The Lava run configuration this export runs with (``Loihi2SimCfg``, float or fixed-point models)."""
        import_lava()
        return self._run_cfg()

    def _run_cfg(self) -> Any:
        from lava.magma.core.run_configs import Loihi2SimCfg

        if self.backend == "loihi2":  # pragma: no cover - needs lava-loihi, which was never public
            from lava.magma.core.run_configs import Loihi2HwCfg

            return Loihi2HwCfg()
        return Loihi2SimCfg(select_tag="floating_pt" if self.mode == "float" else "fixed_pt")

    # ---- run ----------------------------------------------------------------------------------
    def run(
        self,
        inputs: Any,
        steps: int | None = None,
        third_factor: Any = None,
        *,
        record: Sequence[str] = DEFAULT_RECORD,
        timeout: float | None = None,
        noise_seed: int = 0,
    ) -> LavaRecord:
        """Run the exported network on ``inputs`` ``[T, n_in]`` for ``steps`` (default ``T``) steps.

        Args:
            inputs: spikes (or currents for a ``"current"`` input) ``[T, n_in]`` or ``[T, 1, n_in]``.
            steps: number of steps (<= T).
            third_factor: ``[T]`` or ``[T, n_post]`` external modulation, when the IR needs it.
            record: any of ``"spikes"``, ``"voltages"``, ``"currents"``, ``"weights"`` (default: all but
                ``"currents"``).
            timeout: seconds allowed for the run itself (default: the exporter's ``timeout``).
            noise_seed: node perturbation: projection ``j`` injects the stream of seed ``noise_seed + j``
                (:func:`spikeplastic.simulate` with the same ``noise_seed`` is the torch reference).

        Returns: a :class:`LavaRecord`.

        Raises:
            LavaTimeoutError: the run did not finish in time (its processes are killed).
            RuntimeError: Lava reported an error.
        Lava is always stopped before this returns or raises (KeyboardInterrupt included), and what
        Lava keeps of the run in its global state (registered Processes and Vars, implicit ports on
        ProcessModel classes, logging handlers) is dropped, so repeated runs do not accumulate.
        """
        _check_record(record)
        x = self._inputs(inputs, steps)
        T = x.shape[0]
        ext = self._third(third_factor, T)
        noise = self._noise(noise_seed, T)
        return self._run(x, ext, noise, record, timeout)

    def run_episodes(
        self,
        inputs: Any,
        *,
        third_factor: Any = None,
        copies: int | None = None,
        record: Sequence[str] = DEFAULT_EPISODE_RECORD,
        timeout: float | None = None,
    ) -> LavaEpisodes:
        """Run ``E`` independent episodes, ``copies`` at a time in one Lava run of the replicated network.

        Episode ``e`` (``inputs[:, e]``) starts from the initial state and the un-learned weights, as
        each sample of ``Network.forward`` with batch ``E`` does: chunk ``j`` runs episodes
        ``[j*copies, (j+1)*copies)`` side by side on :func:`~spikeplastic.export.replicate` ``(ir, copies)``
        (block-diagonal; the last chunk on a smaller replica), so ``E`` episodes cost ``ceil(E / copies)``
        Lava runs (process start-ups) instead of ``E``, each bounded by ``timeout``. Fixed mode runs the
        replica at this network's quantisation scales (checked to give the same integers block for
        block), so episode ``e`` equals ``simulate_fixed(self.fixed, inputs[:, e], rng_seed)`` bit for
        bit (Lava's stochastic rounding draws one number per step for all synapses).

        Args:
            inputs: ``[T, E, n_in]`` spikes (or currents for a ``"current"`` input).
            third_factor: ``[T]`` (every episode), ``[T, E]`` or ``[T, E, n_post]`` external modulation,
                when the IR needs it.
            copies: episodes per Lava run (default: :func:`~spikeplastic.export.batching.default_copies`;
                at most ``E``). A run's cost grows with ``copies^2`` in Lava's learning engine while its
                start-up (~0.2-0.3 s on 2 CPUs) is paid once: a few hundred to a thousand replicated
                presynaptic neurons is the sweet spot (``benchmarks/lava_episodes.py``).
            record: any of ``"spikes"``, ``"voltages"``, ``"currents"``, ``"weights"`` (weights: only the
                diagonal blocks are read back, ``T*E*n_post*n_pre`` values).
            timeout: seconds allowed for each Lava run (default: the exporter's ``timeout``).

        Returns: a :class:`LavaEpisodes` (``spikes[k]`` ``[T, E, n_k]``, ``weights[name]`` ``[T, E, n_post, n_pre]``, ...).

        Raises (before any Lava run): ``ValueError`` for bad inputs/third_factor/copies/record;
        :class:`~spikeplastic.export.ExportError` for a network whose copies would not stay independent
        (see :func:`~spikeplastic.export.replicate`; fixed mode also a plastic projection without alpha).
        Per run as :meth:`run`: :class:`LavaTimeoutError`, ``RuntimeError``.
        """
        t_start = time.perf_counter()
        _check_record(record)
        x = self._episode_inputs(inputs)
        T, E, n_in = x.shape
        tf = self._episode_third(third_factor, T, E)
        copies = default_copies(self.plan, E) if copies is None else min(check_copies(copies), E)
        sizes = [min(copies, E - e0) for e0 in range(0, E, copies)]
        reps = {c: self._replica(c) for c in sorted(set(sizes))}  # every ExportError before the first run
        parts: list[tuple[int, LavaRecord]] = []
        wall = comp = 0.0
        e0 = 0
        for c in sizes:
            rep = reps[c]
            xc = np.ascontiguousarray(x[:, e0:e0 + c].reshape(T, c * n_in))  # copy k's inputs at [k*n_in, (k+1)*n_in)
            ext = {}
            if tf is not None:
                for p in rep.plan.projections:
                    if p.third is not None and p.third.source is None:
                        n_post = rep.plan.pop(p.post).n // c
                        tc = tf[:, e0:e0 + c]
                        tc = np.repeat(tc, n_post, axis=1) if tc.ndim == 2 else tc.reshape(T, c * n_post)
                        ext[p.name] = np.ascontiguousarray(tc.T)
            rec = rep._run(rep._inputs(xc, None), ext, rep._noise(0, T), record, timeout)
            wall += rec.wall_s
            comp += rec.compile_s
            parts.append((c, rec))
            e0 += c
        return _assemble(parts, self.mode, T, E, copies, wall, comp, time.perf_counter() - t_start)

    def _replica(self, copies: int) -> LavaNetwork:
        """This network replicated ``copies`` times, as a LavaNetwork that records weight blocks (cached)."""
        if copies in self._replicas:
            return self._replicas[copies]
        from ._plan import build_fixed_plan, build_float_plan

        rep_ir = replicate(self.ir, copies)  # raises for what cannot be replicated (not at copies == 1)
        if copies == 1:
            net = self
        else:
            fixed = None
            if self.mode == "fixed":
                fixed = fixed_replica(self.fixed, rep_ir, copies)
                plan = build_fixed_plan(fixed, self.backend)
            else:
                plan = build_float_plan(rep_ir, self.backend)
            net = LavaNetwork(rep_ir, plan, fixed=fixed, timeout=self.timeout, rng_seed=self.rng_seed)
            net._diag_blocks = copies
        self._replicas[copies] = net
        return net

    def _episode_inputs(self, inputs: Any) -> np.ndarray:
        """``inputs`` as float64 ``[T, E, n_in]``, values checked as :meth:`run` checks them."""
        x = inputs.detach().cpu().numpy() if hasattr(inputs, "detach") else np.asarray(inputs)
        x = np.asarray(x, dtype=np.float64)
        n_in = self.plan.pop(self.plan.input_name).n
        if x.ndim != 3 or x.shape[2] != n_in or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"inputs: expected [T, E, {n_in}] (T steps of E episodes), got shape {x.shape}")
        T, E, _ = x.shape
        self._inputs(x.reshape(T * E, n_in), None)  # finite; spikes 0/1; fixed mode takes spikes only
        return x

    def _episode_third(self, third_factor: Any, T: int, E: int) -> np.ndarray | None:
        """External third factor as ``[T, E]`` or ``[T, E, n_post]`` (None where no projection takes one)."""
        need = [p for p in self.plan.projections if p.third is not None and p.third.source is None]
        if not need:
            if third_factor is not None:
                raise ValueError("third_factor was given but no projection takes an external third factor")
            return None
        if third_factor is None:
            raise ValueError(f"projections {[p.name for p in need]} are modulated by an external third factor: "
                             "pass third_factor=[T, E] or [T, E, n_post]")
        tf = third_factor.detach().cpu().numpy() if hasattr(third_factor, "detach") else np.asarray(third_factor)
        tf = np.asarray(tf, dtype=np.float64)
        if tf.ndim == 1 and tf.shape[0] >= T:  # the same signal for every episode
            tf = np.broadcast_to(tf[:, None], (tf.shape[0], E))
        posts = {self.plan.pop(p.post).n for p in need}
        ok = tf.ndim in (2, 3) and tf.shape[0] >= T and tf.shape[1] == E and (tf.ndim == 2 or posts == {tf.shape[2]})
        if not ok:
            raise ValueError(f"third_factor: expected [T], [T, E] or [T, E, n_post] with T >= {T}, E = {E}, "
                             f"n_post in {sorted(posts)} (one n_post for all modulated projections), got shape {tf.shape}")
        if not np.all(np.isfinite(tf)):
            raise ValueError("third_factor contains NaN or inf")
        return tf[:T]

    def _run(self, x: np.ndarray, ext: dict[str, np.ndarray], noise: dict[str, np.ndarray], record: Sequence[str],
             timeout: float | None) -> LavaRecord:
        """One bounded Lava run of checked inputs ``x`` ``[T, n_in]`` (see :meth:`run`)."""
        T = x.shape[0]
        timeout = self.timeout if timeout is None else float(timeout)
        from lava.magma.core.run_conditions import RunSteps

        with sigint_guard() as guard:
            before = {p.pid for p in multiprocessing.active_children()}
            tmp = tempfile.mkdtemp(prefix="spikeplastic-lava-")
            anchor = None
            built = None
            ok = False
            handlers = _lava._log_handlers()
            try:
                built = self._build(x, ext, record, tmp, noise)
                anchor = built["procs"][self.plan.input_name]
                self.last_build = built
                guard.checkpoint()
                t0 = time.perf_counter()
                anchor.create_runtime(run_cfg=self._run_cfg())
                guard.checkpoint()  # an interrupt swallowed during worker start-up (see _interrupt) stops here
                t1 = time.perf_counter()
                anchor.run(condition=RunSteps(num_steps=T, blocking=False))
                finished, err = _lava._call_with_timeout(anchor.wait, timeout, guard)
                t2 = time.perf_counter()
                if not finished:
                    raise LavaTimeoutError(
                        f"Lava did not finish {T} steps within {timeout:.0f} s (it can hang without diagnostics, "
                        "lava#178); its processes were killed. Raise timeout= for long runs."
                    )
                if err is not None:
                    raise RuntimeError(f"Lava failed while running: {err}") from err
                guard.checkpoint()
                out = self._collect(built, T)
                ok = True
            finally:  # always stop Lava: normal end, errors, timeout and KeyboardInterrupt alike
                with guard.deferred():  # a second Ctrl-C must not cut the cleanup short
                    try:
                        runtime = getattr(anchor, "_runtime", None) if anchor is not None else None
                        if runtime is not None:
                            if ok:
                                stopped, _ = _lava._call_with_timeout(anchor.stop, 30.0)
                                if not stopped:
                                    _lava._kill_runtime(runtime)
                            else:
                                _lava._kill_runtime(runtime)
                        _lava._reap(before)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                        _lava._drop_new_handlers(handlers)
                        if built is not None:
                            _lava._forget(built)
        return dataclasses.replace(out, wall_s=t2 - t1, compile_s=t1 - t0)

    def _collect(self, built: dict[str, Any], T: int) -> LavaRecord:
        out: dict[str, dict[str, np.ndarray]] = {"spikes": {}, "voltages": {}, "currents": {}, "weights": {}}
        for (kind, name), (_, path) in built["recorders"].items():
            out[kind][name] = np.array(np.load(path, mmap_mode="r"))
        spikes = {k: (v != 0).astype(np.float64) for k, v in out["spikes"].items()}
        volts, curs, weights = out["voltages"], out["currents"], out["weights"]
        kinds = {k for k, _ in built["recorders"]}
        has_v, has_u, has_w = "voltages" in kinds, "currents" in kinds, "weights" in kinds
        init = {pr.name: np.asarray(pr.weights, dtype=np.float64) for pr in self.plan.projections if pr.name in weights}
        if self._diag_blocks != 1:  # as recorded: the diagonal blocks [c, n_post, n_pre]
            init = {k: diagonal_blocks(w, self._diag_blocks) for k, w in init.items()}
        if self.mode == "fixed":
            fx = self.fixed
            raw_v = {k: np.rint(v).astype(np.int64) for k, v in volts.items()}
            raw_u = {k: np.rint(u).astype(np.int64) for k, u in curs.items()}
            raw_w = {k: np.rint(w).astype(np.int64) for k, w in weights.items()}
            fv = {k: v / fx.voltage_scale(k) for k, v in raw_v.items()}
            fu = {k: u / fx.voltage_scale(k) for k, u in raw_u.items()}  # u is held at the scale of v
            fw = {k: w / fx.weight_scale(k) for k, w in raw_w.items()}
            init = {k: w / fx.weight_scale(k) for k, w in init.items()}
            return LavaRecord(spikes, fv if has_v else None, fw if has_w else None, "fixed", T, 0.0, 0.0,
                              raw_v if has_v else None, raw_w if has_w else None, init if has_w else None,
                              currents=fu if has_u else None, raw_currents=raw_u if has_u else None)
        return LavaRecord(spikes, volts if has_v else None, weights if has_w else None, "float", T, 0.0, 0.0,
                          initial_weights=init if has_w else None, currents=curs if has_u else None)
