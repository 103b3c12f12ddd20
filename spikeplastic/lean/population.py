r"""No-grad whole-episode forward of a core :class:`~spikeplastic.network.Network`, batched over
episodes *and* over a population of parameter sets (``P`` members x ``B`` episodes in one run).

Evaluation, :func:`~spikeplastic.simulate.simulate` and evolution strategies (:mod:`spikeplastic.meta.es`)
only run the forward pass. This module runs it without autograd, with the plastic parts updated in
place (``"inplace"``) or ``K`` steps at a time fused by :func:`torch.compile` (``"compile"``), and
with a leading population axis: member ``p`` has its own mapped parameters (weights, alpha, STDP
impulses and time constants, decay, LIF constants, modulation) and its own ``B`` episodes.

Layout: neuron state ``[P, B, n]``; plastic parts ``H``, ``E`` ``[P, B, n_post, n_pre]``; member values
carry the population axis in front and broadcast over the episodes (:class:`NetworkValues`).
Inputs ``x`` are ``[T, B, n_in]`` (the same episodes for every member) or ``[T, P, B, n_in]``.

Per step ``t`` and projection ``pre -> post`` (the core ``Network.step``, Lava's timing; ``s_in[t-1] =
x[t-1]``)::

    a_post += w @ s_pre[t-1] + (alpha * H) @ s_pre[t-1]                    (H before this step's update)
    X' = X e^{-1/tau+} + A+ s_pre[t-1];  Y' = Y e^{-1/tau-} + A- s_post[t-1];  e = s_post[t-1] (x) X' - Y' (x) s_pre[t-1]
    H' = clip((1 - decay) H + g),  g = e | m e (simple) | m E with E' = E + eta_E (e - E) (retroactive)
    m  = tanh(w_m . s_src[t-1] + b_m)   (or the external third factor of step t-1)
    CUBA LIF of every population (float, or Loihi's integer grid with ``quantum``: the exact
    integer forward of :func:`~spikeplastic.functional.lif.lif_step`, without straight-through terms)

so member ``p``'s run equals ``Network.forward`` with member ``p``'s parameters (spikes identical;
currents and voltages to rounding; ``tests/perf/test_population.py``). Supported: any topology of LIF
populations and projections that are static or pair STDP (alpha per synapse / shared / none, decay,
clip, simple or retroactive neuromodulation from a population or the external third factor);
other rules raise ``ValueError`` (:func:`check_population`).

Example::

    >>> net = Network.feedforward([20, 16, 4], rule="stdp", recurrent=True)
    >>> rec, state = nograd_forward(net, torch.bernoulli(torch.full((50, 3, 20), 0.2)))   # == net(x) spikes
    >>> vals = stack_values([network_values(net)] * 8)        # 8 members (here all equal)
    >>> run = PopulationRun(network_spec(net), vals, batch=3)
    >>> run.run(torch.bernoulli(torch.full((50, 3, 20), 0.2))).spikes["l2"].shape
    torch.Size([50, 8, 3, 4])
"""
from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .backend import _COMPILE_BROKEN, _compile_failed, _resolve_backend

__all__ = ["POPULATION_BACKENDS", "POPULATION_RECORD", "NetworkSpec", "LIFValues", "ProjValues", "NetworkValues",
           "PopulationState", "PopulationRecord", "PopulationRun", "check_population", "network_spec",
           "network_values", "stack_values", "population_forward", "nograd_forward", "to_population_state",
           "to_network_state", "DEFAULT_CHUNK", "EAGER_BLOCK"]

POPULATION_BACKENDS = ("auto", "inplace", "compile")
#: what a population run can record (``weights``/``traces``: per step, eager only)
POPULATION_RECORD = ("spikes", "voltages", "currents", "weights", "traces")
#: steps fused into one compiled call (``backend="compile"``): the call's overhead is paid once per chunk
DEFAULT_CHUNK = 8
#: steps per block of the eager backend (the fixed input currents of a block are one GEMM)
EAGER_BLOCK = 64
#: largest |v| on Loihi's 24-bit voltage register, in state units (as ``lif_step``)
_V_MAX = 2**23 - 1


# ---- static description (hashable; a compiled chunk specialises on it) ---------------------------
class PopSpec(NamedTuple):
    name: str
    n: int
    reset: str          # "zero" | "subtract"
    quantum: bool       # Loihi's integer state (``LIF.quantum``)


class ProjSpec(NamedTuple):
    name: str
    pre: str            # "in" or a population
    post: str
    n_pre: int
    n_post: int
    plastic: bool
    alpha: str          # "per_synapse" | "shared" | "none"
    decay: bool         # a decay term (False: fixed at exactly 0, skipped as PlasticLinear skips it)
    clip: float | None
    mod: str | None     # None | "simple" | "retroactive"
    mod_source: str | None   # population driving m, or None (external third factor)
    per_neuron: bool


class NetworkSpec(NamedTuple):
    """The structure of a network (populations, projections, options), without any value."""

    n_in: int
    pops: tuple[PopSpec, ...]
    projs: tuple[ProjSpec, ...]


# ---- values (a leading population axis P; None where absent) -------------------------------------
class LIFValues(NamedTuple):
    """A population's constants ``[P, 1, n]`` (per neuron) or ``[P, 1, 1]``: ``1 - du``, ``1 - dv``,
    ``vth``, ``bias``, and the integer state unit ``quantum`` ``[P, 1, 1]`` (``None``: float state)."""

    one_du: Tensor
    one_dv: Tensor
    vth: Tensor
    bias: Tensor
    quantum: Tensor | None = None


class ProjValues(NamedTuple):
    """A projection's values: ``w`` ``[P, n_post, n_pre]``; ``alpha`` ``[P, 1, n_post, n_pre]`` (per
    synapse), ``[P, 1, 1, 1]`` (shared) or None; STDP ``a_plus``, ``a_minus``, ``dp = exp(-1/tau+)``,
    ``dm`` ``[P, 1, 1]``; ``gamma = 1 - decay`` ``[P, 1, 1, 1]``; modulation ``mod_w`` ``[P, n_src, 1]``
    (one signal per sample) or ``[P, n_src, n_post]`` (per neuron, transposed), ``mod_b`` ``[P, 1, 1]``
    or ``[P, 1, n_post]``, ``eta_e`` ``[P, 1, 1, 1]``."""

    w: Tensor
    alpha: Tensor | None = None
    a_plus: Tensor | None = None
    a_minus: Tensor | None = None
    dp: Tensor | None = None
    dm: Tensor | None = None
    gamma: Tensor | None = None
    mod_w: Tensor | None = None
    mod_b: Tensor | None = None
    eta_e: Tensor | None = None


class NetworkValues(NamedTuple):
    """Every member's values, in the order of :class:`NetworkSpec` ``pops`` / ``projs``."""

    lif: tuple[LIFValues, ...]
    proj: tuple[ProjValues, ...]

    @property
    def P(self) -> int:
        return int(self.proj[0].w.shape[0]) if self.proj else int(self.lif[0].vth.shape[0])


class PopulationState(NamedTuple):
    """State of a population run (per population ``[P, B, n]``; per projection ``[P, B, n_post, n_pre]``
    plastic part ``H`` and eligibility ``E``, traces ``X`` ``[P, B, n_pre]``, ``Y`` ``[P, B, n_post]``;
    ``None`` where absent). ``x_prev``: last input ``[1 or P, B, n_in]``; ``third_prev``: last
    external third factor (``None``: none pending)."""

    u: tuple[Tensor, ...]
    v: tuple[Tensor, ...]
    s: tuple[Tensor, ...]
    H: tuple[Tensor | None, ...]
    E: tuple[Tensor | None, ...]
    X: tuple[Tensor | None, ...]
    Y: tuple[Tensor | None, ...]
    x_prev: Tensor
    third_prev: Tensor | None = None


class PopulationRecord(NamedTuple):
    """What a run recorded, ``[T, P, B, ...]`` per population / plastic projection (``None``: not asked).
    ``weights``: ``w + alpha*H`` after the plasticity of each step (``Record.weights``); ``traces``: ``(X, Y)``."""

    spikes: dict[str, Tensor]
    voltages: dict[str, Tensor] | None = None
    currents: dict[str, Tensor] | None = None
    weights: dict[str, Tensor] | None = None
    traces: dict[str, tuple[Tensor, Tensor]] | None = None


# ---- from a core Network ---------------------------------------------------------------------------
def check_population(net: Any) -> None:
    """Raise ``ValueError`` naming the first part of ``net`` the population forward cannot run (a
    rule other than pair STDP); ``TypeError`` for a non-``Network``."""
    from ..network import Network
    from ..rules import STDP

    if not isinstance(net, Network):
        raise TypeError(f"net must be a spikeplastic.Network, got {type(net).__name__}")
    for name, layer in net.projs.items():
        if layer.rule is not None and not isinstance(layer.rule, STDP):
            raise ValueError(f"population forward: projection {name!r} uses the {type(layer.rule).__name__} rule; "
                             "only static projections and pair STDP (spikeplastic.STDP) are supported")


def network_spec(net: Any) -> NetworkSpec:
    """The :class:`NetworkSpec` of a core ``Network`` (``ValueError`` as :func:`check_population`)."""
    check_population(net)
    pops = tuple(PopSpec(k, int(p.n), p.reset, p.quantum is not None) for k, p in net.pops.items())
    projs = []
    for name, layer in net.projs.items():
        pre, post = net.topology[name]
        mod = layer.modulation
        decay = layer.plastic and not (not layer.decay.learn and float(layer.decay()) == 0.0)
        projs.append(ProjSpec(
            name, pre, post, int(layer.n_in), int(layer.n_out), layer.plastic,
            layer.alpha_mode if layer.plastic else "none", decay, layer.clip if layer.plastic else None,
            None if mod is None else mod.mode, None if mod is None else mod.source,
            bool(mod is not None and mod.per_neuron)))
    return NetworkSpec(int(net.n_in), pops, tuple(projs))


def _lead(t: Tensor | float, like: Tensor, dims: int) -> Tensor:
    """``t`` (scalar or ``[n]``) as a ``dims``-dim tensor with the values on the last axis."""
    t = t.to(like.dtype) if isinstance(t, Tensor) else torch.tensor(float(t), dtype=like.dtype, device=like.device)
    return t.reshape((1,) * (dims - 1) + (t.numel(),)) if t.dim() else t.reshape((1,) * dims)


def network_values(net: Any, spec: NetworkSpec | None = None, *, member_axis: bool = True) -> NetworkValues:
    """The mapped values of ``net`` (its parameters now, detached where they are read under
    ``no_grad``), as one member (``member_axis=True``: a leading axis of size 1; ``False``: without it,
    for :func:`torch.func.vmap` over parameter sets, which adds the axis itself)."""
    spec = network_spec(net) if spec is None else spec
    lif = []
    for ps in spec.pops:
        pop = net.pops[ps.name]
        prm = pop.params()
        ref = prm.vth
        q = None if pop.quantum is None else _lead(pop.quantum(), ref, 2)
        lif.append(LIFValues(_lead(1 - prm.du, ref, 2), _lead(1 - prm.dv, ref, 2), _lead(prm.vth, ref, 2),
                             _lead(prm.bias, ref, 2), q))
    projs = []
    for js in spec.projs:
        layer = net.projs[js.name]
        w = layer.weight()
        if not js.plastic:
            projs.append(ProjValues(w))
            continue
        r = layer.rule
        tp, tm = r.tau_plus(), r.tau_minus()
        alpha = None
        if layer.alpha is not None:
            a = layer.alpha()
            alpha = a.reshape(1, *a.shape) if js.alpha == "per_synapse" else a.reshape(1, 1, 1)
        mod = layer.modulation
        mw = mb = eta = None
        if mod is not None:
            if mod.source is not None:
                mw = mod.weight.t() if js.per_neuron else mod.weight.reshape(-1, 1)
                mb = mod.bias.reshape(1, -1) if js.per_neuron else mod.bias.reshape(1, 1)
            if mod.mode == "retroactive":
                eta = mod.eta_e().reshape(1, 1, 1)
        projs.append(ProjValues(
            w, alpha, _lead(r.a_plus(), w, 2), _lead(r.a_minus(), w, 2),
            _lead(torch.exp(-1.0 / tp), w, 2), _lead(torch.exp(-1.0 / tm), w, 2),
            _lead(1 - layer.decay(), w, 3) if js.decay else None, mw, mb, eta))
    vals = NetworkValues(tuple(lif), tuple(projs))
    return _map(vals, lambda t: t.unsqueeze(0)) if member_axis else vals


def _map(vals: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``fn`` applied to every tensor of a (nested) NamedTuple of values."""
    if isinstance(vals, Tensor):
        return fn(vals)
    if isinstance(vals, tuple):
        items = [_map(v, fn) for v in vals]
        return type(vals)(*items) if hasattr(vals, "_fields") else tuple(items)
    return vals


def stack_values(members: Sequence[NetworkValues]) -> NetworkValues:
    """Members' values (each with its member axis, as :func:`network_values` gives them) concatenated
    into one population, in order."""
    if not members:
        raise ValueError("stack_values: expected at least one member")

    def join(*ts: Any) -> Any:
        if ts[0] is None:
            return None
        if isinstance(ts[0], Tensor):
            return torch.cat(ts)
        items = [join(*parts) for parts in zip(*ts)]
        return type(ts[0])(*items) if hasattr(ts[0], "_fields") else tuple(items)

    return join(*members)


# ---- one step ----------------------------------------------------------------------------------------
def _plastic_current(kind: str, H: Tensor, alpha: Tensor | None, mode: str, pre: Tensor, buf: Tensor | None) -> Tensor:
    """``(alpha * H) @ pre`` per episode (``pre`` ``[Pi, B, n_pre]``) -> ``[P, B, n_post]``."""
    if kind == "fused":
        prod = H * pre.unsqueeze(-2)
        if mode == "per_synapse":
            prod = prod * alpha
        cur = prod.sum(-1)
    else:
        Hs = torch.mul(H, alpha, out=buf) if mode == "per_synapse" else H
        cur = torch.matmul(pre.unsqueeze(-2), Hs.transpose(-1, -2)).squeeze(-2)
    if mode == "shared":
        cur = cur * alpha.squeeze(-1)
    return cur


def _gate(js: ProjSpec, pv: ProjValues, s_src: Tensor | None, third: Tensor | None) -> Tensor:
    """The third factor ``m`` shaped to scale ``H``: ``[P or 1, B, 1, 1]`` or ``[.., B, n_post, 1]``."""
    if js.mod_source is None:
        assert third is not None
        m = third  # [1, B] or [1, B, n_post]
        return m[..., None, None] if m.dim() == 2 else m.unsqueeze(-1)
    assert s_src is not None and pv.mod_w is not None and pv.mod_b is not None
    m = torch.tanh(torch.matmul(s_src, pv.mod_w) + pv.mod_b)   # [P, B, 1] or [P, B, n_post]
    return m.unsqueeze(-1)


def _update(kind: str, js: ProjSpec, pv: ProjValues, H: Tensor, E: Tensor | None, X: Tensor, Y: Tensor,
            pre: Tensor, post: Tensor, m: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """Traces, then ``H`` (and ``E``) of one plastic projection; in place for ``kind="inplace"``."""
    Xn = X * pv.dp + pv.a_plus * pre
    Yn = Y * pv.dm + pv.a_minus * post
    Pr, Rc = pre.unsqueeze(-2), post.unsqueeze(-1)
    if kind == "fused":
        e = Rc * Xn.unsqueeze(-2) - Yn.unsqueeze(-1) * Pr
        Hn = H if pv.gamma is None else H * pv.gamma
        if js.mod is None:
            Hn = Hn + e
        elif js.mod == "simple":
            Hn = Hn + m * e
        else:
            Hn = Hn + m * E
            E = E + pv.eta_e * (e - E)
        if js.clip is not None:
            Hn = Hn.clamp(-js.clip, js.clip)
        return Hn, E, Xn, Yn
    if pv.gamma is not None:
        H.mul_(pv.gamma)
    if js.mod == "retroactive":
        H.addcmul_(m, E)
        # E' = E + eta (e - E) = (1 - eta) E + eta e
        E.mul_(1 - pv.eta_e)
        eta = pv.eta_e.squeeze(-1)
        E.addcmul_((eta * post).unsqueeze(-1), Xn.unsqueeze(-2)).addcmul_((eta * Yn).unsqueeze(-1), Pr, value=-1.0)
    else:
        a, b = post, Yn
        if js.mod == "simple":
            ms = m.squeeze(-1)  # [.., B, 1] or [.., B, n_post]: scales rows of the rank-2 update
            a, b = ms * post, ms * Yn
        H.addcmul_(a.unsqueeze(-1), Xn.unsqueeze(-2)).addcmul_(b.unsqueeze(-1), Pr, value=-1.0)
    if js.clip is not None:
        H.clamp_(-js.clip, js.clip)
    return H, E, Xn, Yn


def _lif(ps: PopSpec, lv: LIFValues, a: Tensor, u: Tensor, v: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``lif_step``'s forward: the float CUBA LIF, or Loihi's integer grid (``quantum``) computed exactly."""
    if not ps.quantum:
        u = u * lv.one_du + a
        v = v * lv.one_dv + u + lv.bias
    else:
        q = lv.quantum
        u = torch.trunc(torch.round(u / q) * lv.one_du) * q + a
        u = torch.round(u / q) * q
        v = torch.trunc(torch.round(v / q) * lv.one_dv) * q + u + lv.bias
        v = torch.round(v / q).clamp(-_V_MAX, _V_MAX) * q
    if ps.reset == "subtract":
        v = v - s * lv.vth
    if ps.quantum:
        x = (torch.round(v / lv.quantum) - torch.round(lv.vth / lv.quantum)) * lv.quantum
    else:
        x = v - lv.vth
    s = (x > 0).to(v.dtype)
    if ps.reset == "zero":
        v = v * (1 - s)
    return u, v, s


def _step(kind: str, spec: NetworkSpec, xp: Tensor, ffc: tuple, st: PopulationState, vals: NetworkValues,
          bufs: tuple) -> PopulationState:
    """One step of every projection and population (module docstring); returns the new state with
    ``x_prev`` unchanged (the caller sets it)."""
    idx = {p.name: i for i, p in enumerate(spec.pops)}
    spk = {p.name: st.s[i] for i, p in enumerate(spec.pops)}
    spk["in"] = xp
    cur: list[Tensor | None] = [None] * len(spec.pops)
    H, E, X, Y = list(st.H), list(st.E), list(st.X), list(st.Y)
    for j, js in enumerate(spec.projs):
        pv = vals.proj[j]
        pre = spk[js.pre]
        a = ffc[j] if ffc[j] is not None else torch.matmul(pre, pv.w.transpose(-1, -2))
        if js.plastic:
            a = a + _plastic_current(kind, st.H[j], pv.alpha, js.alpha, pre, bufs[j])
            if not (js.mod is not None and js.mod_source is None and st.third_prev is None):
                m = None if js.mod is None else _gate(js, pv, None if js.mod_source is None else spk[js.mod_source],
                                                       st.third_prev)
                H[j], E[j], X[j], Y[j] = _update(kind, js, pv, st.H[j], st.E[j], st.X[j], st.Y[j], pre,
                                                 spk[js.post], m)
        i = idx[js.post]
        cur[i] = a if cur[i] is None else cur[i] + a
    u, v, s = [], [], []
    for i, ps in enumerate(spec.pops):
        a = cur[i] if cur[i] is not None else torch.zeros_like(st.v[i])
        ui, vi, si = _lif(ps, vals.lif[i], a, st.u[i], st.v[i], st.s[i])
        u.append(ui)
        v.append(vi)
        s.append(si)
    return PopulationState(tuple(u), tuple(v), tuple(s), tuple(H), tuple(E), tuple(X), tuple(Y), st.x_prev,
                           st.third_prev)


def _chunk(kind: str, spec: NetworkSpec, rec_vu: tuple[bool, bool], xs: Tensor, ffcs: tuple, thirds: Tensor | None,
           st: PopulationState, vals: NetworkValues, bufs: tuple) -> tuple:
    """``K = len(xs)`` steps (unrolled when compiled); returns per-step spikes (and voltages/currents
    when ``rec_vu`` says so) stacked ``[K, P, B, n]`` per population, and the final state."""
    S: list[list[Tensor]] = [[] for _ in spec.pops]
    V: list[list[Tensor]] = [[] for _ in spec.pops]
    U: list[list[Tensor]] = [[] for _ in spec.pops]
    for k in range(xs.shape[0]):
        xp = st.x_prev
        st = _step(kind, spec, xp, tuple(None if f is None else f[k] for f in ffcs), st, vals, bufs)
        st = st._replace(x_prev=xs[k], third_prev=None if thirds is None else thirds[k])
        for i in range(len(spec.pops)):
            S[i].append(st.s[i])
            if rec_vu[0]:
                V[i].append(st.v[i])
            if rec_vu[1]:
                U[i].append(st.u[i])
    stk = lambda L: tuple(torch.stack(x) for x in L) if L and L[0] else None  # noqa: E731
    return stk(S), stk(V) if rec_vu[0] else None, stk(U) if rec_vu[1] else None, st


# ---- compile cache -------------------------------------------------------------------------------------
_CHUNKS: dict[Any, Callable[..., Any]] = {}


def _shape_key(a: Any) -> Any:
    if isinstance(a, Tensor):
        return ("T", tuple(a.shape), a.dtype, a.device.type)
    if isinstance(a, tuple):
        return tuple(_shape_key(b) for b in a)
    return a


def _compiled_chunk(key: Any) -> Callable[..., Any]:
    """``torch.compile(_chunk)`` for one structure and one set of shapes (``key``): a code object of its
    own per key, so that dynamo's recompile budget is never shared between keys (as :mod:`.backend` does)."""
    fn = _CHUNKS.get(key)
    if fn is None:
        code = _chunk.__code__.replace(co_name=f"_pop_chunk_{len(_CHUNKS)}")
        f = types.FunctionType(code, _chunk.__globals__, code.co_name, _chunk.__defaults__, _chunk.__closure__)
        fn = torch.compile(f, dynamic=False)
        _CHUNKS[key] = fn
    return fn


def _resolve(backend: str, spec: NetworkSpec, P: int, B: int, ref: Tensor) -> str:
    """The population's choices (no ``"reference"``), then the shared rule of :func:`_resolve_backend`."""
    if backend not in POPULATION_BACKENDS:
        raise ValueError(f"backend: expected one of {list(POPULATION_BACKENDS)}, got {backend!r}")
    return _resolve_backend(backend, ref, P * B * sum(j.n_pre * j.n_post for j in spec.projs if j.plastic))


# ---- the run -------------------------------------------------------------------------------------------
class PopulationRun:
    """A population of ``P`` members running ``B`` episodes each, stepped in blocks of any length.

    Args:
        spec, values: the network's :class:`NetworkSpec` and the members' :class:`NetworkValues`.
        batch: episodes per member ``B``.
        state: where to start (default: everything zero, no input and no third factor pending).
        record: what :meth:`run` returns besides spikes: ``"voltages"``, ``"currents"`` (post-reset ``v``
            and ``u``), ``"weights"``, ``"traces"`` (:data:`POPULATION_RECORD`; the last two run eagerly).
        backend: ``"inplace"`` (eager, ``H`` updated in place), ``"compile"`` (``chunk`` steps fused per
            call by :func:`torch.compile`; a failed compile warns once and runs ``"inplace"``), or
            ``"auto"`` (``"compile"`` from ``lean.AUTO_COMPILE_MIN_ELEMENTS`` plastic-weight elements).
        chunk: steps per compiled call (a block of up to ``2 * chunk`` steps runs as one call).
    """

    def __init__(self, spec: NetworkSpec, values: NetworkValues, batch: int, *, state: PopulationState | None = None,
                 record: Sequence[str] = ("spikes",), backend: str = "auto", chunk: int = DEFAULT_CHUNK) -> None:
        if not isinstance(spec, NetworkSpec):
            raise TypeError(f"spec: expected a NetworkSpec (network_spec(net)), got {type(spec).__name__}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch: expected an int >= 1 (episodes per member), got {batch!r}")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk: expected an int >= 1 (steps per compiled call), got {chunk!r}")
        for r in record:
            if r not in POPULATION_RECORD:
                raise ValueError(f"record entry {r!r}: expected one of {list(POPULATION_RECORD)}")
        self.spec, self.values, self.B, self.chunk = spec, values, batch, chunk
        self.P = values.P
        ref = values.proj[0].w if values.proj else values.lif[0].vth
        self.dtype, self.device = ref.dtype, ref.device
        self.record = tuple(record)
        self.backend = _resolve(backend, spec, self.P, batch, ref)
        if {"weights", "traces"} & set(self.record):
            self.backend = "inplace"
        self.state = self.initial_state() if state is None else state
        self._bufs: tuple | None = None
        self._value_key: Any = None
        self._external = any(j.mod is not None and j.mod_source is None for j in spec.projs)

    def initial_state(self) -> PopulationState:
        """Zero state for ``P`` members x ``B`` episodes."""
        P, B, kw = self.P, self.B, {"dtype": self.dtype, "device": self.device}
        z = lambda *s: torch.zeros(P, B, *s, **kw)  # noqa: E731
        st = [z(p.n) for p in self.spec.pops]
        H = tuple(z(j.n_post, j.n_pre) if j.plastic else None for j in self.spec.projs)
        E = tuple(z(j.n_post, j.n_pre) if j.plastic and j.mod == "retroactive" else None for j in self.spec.projs)
        X = tuple(z(j.n_pre) if j.plastic else None for j in self.spec.projs)
        Y = tuple(z(j.n_post) if j.plastic else None for j in self.spec.projs)
        return PopulationState(tuple(st), tuple(s.clone() for s in st), tuple(s.clone() for s in st), H, E, X, Y,
                               torch.zeros(1, B, self.spec.n_in, **kw), None)

    def _inputs(self, x: Tensor, third: Tensor | None) -> tuple[Tensor, Tensor | None]:
        n_in, B, P = self.spec.n_in, self.B, self.P
        if not isinstance(x, Tensor) or x.dim() not in (3, 4) or x.shape[-1] != n_in or x.shape[-2] != B or (
                x.dim() == 4 and x.shape[1] not in (1, P)):
            raise ValueError(f"x: expected [T, B={B}, n_in={n_in}] or [T, P={P}, B, n_in], "
                             f"got {tuple(getattr(x, 'shape', ()))}")
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the members' values are {self.dtype}")
        x = x.unsqueeze(1) if x.dim() == 3 else x
        if third is not None:
            if not self._external:
                raise ValueError("third_factor: expected None (no projection is modulated by an external third factor)")
            if third.dim() not in (2, 3) or tuple(third.shape[:2]) != (x.shape[0], B):
                raise ValueError(f"third_factor: expected [T, B] or [T, B, n_post] (shared by every member), "
                                 f"got {tuple(third.shape)}")
            third = third.to(self.dtype).unsqueeze(1)  # [T, 1, B(, n_post)]
        elif self._external:
            raise ValueError("this network has projections modulated by an external third factor: pass third_factor")
        return x, third

    def run(self, x: Tensor, third_factor: Tensor | None = None) -> PopulationRecord:
        """Advance ``T = len(x)`` steps with inputs ``x`` ``[T, B, n_in]`` (every member) or ``[T, P, B, n_in]``
        (``third_factor`` ``[T, B]`` or ``[T, B, n_post]``); returns the :class:`PopulationRecord` of these steps
        and keeps the state for the next call (``self.state``)."""
        x, third = self._inputs(x, third_factor)
        T = x.shape[0]
        rec_vu = ("voltages" in self.record, "currents" in self.record)
        out_s: list[tuple] = []
        out_v: list[tuple] = []
        out_u: list[tuple] = []
        weights: dict[str, list[Tensor]] = {}
        traces: dict[str, list[tuple[Tensor, Tensor]]] = {}
        peek = {"weights", "traces"} & set(self.record)
        # compiled: chunks of `chunk` steps (a run of up to twice that is one call: fewer calls and compiles)
        K = 1 if peek else ((T if T <= 2 * self.chunk else self.chunk) if self.backend == "compile"
                            else min(T, EAGER_BLOCK))
        with torch.no_grad():
            st = self.state
            for k0 in range(0, T, K):
                k1 = min(T, k0 + K)
                xs = x[k0:k1]
                Pi = max(st.x_prev.shape[0], xs.shape[1])
                if xs.shape[1] != Pi:
                    xs = xs.expand(-1, Pi, -1, -1)
                xp = st.x_prev if st.x_prev.shape[0] == Pi else st.x_prev.expand(Pi, -1, -1)
                st = st._replace(x_prev=xp)
                pre_seq = torch.cat([xp.unsqueeze(0), xs[:-1]])  # the input each step reads: x[t-1]
                ffcs = tuple(self._fixed_in(j, pre_seq) for j in range(len(self.spec.projs)))
                th = None if third is None else third[k0:k1]
                S, V, U, st = self._call(xs, ffcs, th, st, rec_vu)
                out_s.append(S)
                if V is not None:
                    out_v.append(V)
                if U is not None:
                    out_u.append(U)
                if peek:
                    self._peek(st, weights, traces)
            self.state = st
        names = [p.name for p in self.spec.pops]
        cat = lambda L: {n: torch.cat([c[i] for c in L]) for i, n in enumerate(names)}  # noqa: E731
        return PopulationRecord(
            spikes=cat(out_s), voltages=cat(out_v) if rec_vu[0] else None, currents=cat(out_u) if rec_vu[1] else None,
            weights={k: torch.stack(v) for k, v in weights.items()} if "weights" in self.record else None,
            traces={k: (torch.stack([a for a, _ in v]), torch.stack([b for _, b in v])) for k, v in traces.items()}
            if "traces" in self.record else None)

    def _fixed_in(self, j: int, pre_seq: Tensor) -> Tensor | None:
        """The fixed-weight current ``w @ x[t-1]`` of projection ``j`` from the input, for a whole block:
        one GEMM (``[K, B, n_in]`` shared by the members -> ``[K, P, B, n_post]``)."""
        js, pv = self.spec.projs[j], self.values.proj[j]
        if js.pre != "in":
            return None
        if pre_seq.shape[1] == 1:  # shared inputs: [K*B, n_in] @ [n_in, P*n_post]
            K, _, B, n = pre_seq.shape
            a = pre_seq.reshape(K * B, n) @ pv.w.reshape(-1, n).t()
            return a.reshape(K, B, self.P, js.n_post).transpose(1, 2)
        return torch.matmul(pre_seq, pv.w.transpose(-1, -2))

    def _buffers(self) -> tuple:
        if self._bufs is None:
            self._bufs = tuple(torch.empty(self.P, self.B, j.n_post, j.n_pre, dtype=self.dtype, device=self.device)
                               if (j.plastic and j.alpha == "per_synapse") else None for j in self.spec.projs)
        return self._bufs

    def _call(self, xs: Tensor, ffcs: tuple, th: Tensor | None, st: PopulationState, rec_vu: tuple[bool, bool]) -> tuple:
        if self.backend == "compile" and not _COMPILE_BROKEN:
            args = ("fused", self.spec, rec_vu, xs, ffcs, th, st, self.values, tuple(None for _ in self.spec.projs))
            if self._value_key is None:  # the values' shapes, once per run (the state's follow from spec, P, B)
                self._value_key = _shape_key(self.values)
            key = (self.spec, rec_vu, self._value_key, _shape_key((xs, ffcs, th, st.x_prev, st.third_prev)))
            try:
                return _compiled_chunk(key)(*args)
            except Exception as exc:  # a failed compile is an environment problem, not a wrong result
                _compile_failed(exc, 3)
        return _chunk("inplace", self.spec, rec_vu, xs, ffcs, th, st, self.values, self._buffers())

    def _peek(self, st: PopulationState, weights: dict, traces: dict) -> None:
        """``W[t]`` and the traces after the plasticity of the step just run (``Network.peek``)."""
        spk = {p.name: st.s[i] for i, p in enumerate(self.spec.pops)}
        spk["in"] = st.x_prev
        for j, js in enumerate(self.spec.projs):
            if not js.plastic:
                continue
            pv = self.values.proj[j]
            H, X, Y = st.H[j], st.X[j], st.Y[j]
            if not (js.mod is not None and js.mod_source is None and st.third_prev is None):
                m = None if js.mod is None else _gate(js, pv, None if js.mod_source is None else spk[js.mod_source],
                                                       st.third_prev)
                E = None if st.E[j] is None else st.E[j].clone()
                H, _, X, Y = _update("inplace", js, pv, H.clone(), E, X, Y, spk[js.pre], spk[js.post], m)
            if "weights" in self.record:
                Hs = H if pv.alpha is None else pv.alpha * H
                weights.setdefault(js.name, []).append(pv.w.unsqueeze(1) + Hs)
            if "traces" in self.record:
                traces.setdefault(js.name, []).append((X, Y))


def population_forward(spec: NetworkSpec, values: NetworkValues, x: Tensor, *, third_factor: Tensor | None = None,
                       record: Sequence[str] = ("spikes",), backend: str = "auto",
                       chunk: int = DEFAULT_CHUNK) -> tuple[PopulationRecord, PopulationState]:
    """Run ``x`` ``[T, B, n_in]`` (shared) or ``[T, P, B, n_in]`` from zero state for every member of
    ``values``; returns the :class:`PopulationRecord` ``[T, P, B, ...]`` and the final state
    (:class:`PopulationRun` for the options)."""
    B = x.shape[-2] if isinstance(x, Tensor) and x.dim() >= 2 else 0
    run = PopulationRun(spec, values, B, record=record, backend=backend, chunk=chunk)
    rec = run.run(x, third_factor)
    return rec, run.state


# ---- one network, the core's state and record -----------------------------------------------------------
def to_population_state(spec: NetworkSpec, state: Any) -> PopulationState:
    """A core :class:`~spikeplastic.network.NetworkState` as the state of a one-member population
    (tensors copied: runs update them in place)."""
    c = lambda t: None if t is None else t.detach().clone().unsqueeze(0)  # noqa: E731
    u = tuple(c(state.neurons[p.name].u) for p in spec.pops)
    v = tuple(c(state.neurons[p.name].v) for p in spec.pops)
    s = tuple(c(state.neurons[p.name].s) for p in spec.pops)
    syn = [state.synapses[j.name] for j in spec.projs]
    H = tuple(c(q.H) if j.plastic else None for j, q in zip(spec.projs, syn))
    E = tuple(c(q.E) if j.plastic and j.mod == "retroactive" else None for j, q in zip(spec.projs, syn))
    X = tuple(c(q.rule.x) if j.plastic else None for j, q in zip(spec.projs, syn))
    Y = tuple(c(q.rule.y) if j.plastic else None for j, q in zip(spec.projs, syn))
    third = None if state.third_prev is None else state.third_prev.detach().unsqueeze(0)
    return PopulationState(u, v, s, H, E, X, Y, state.x_prev.detach().unsqueeze(0), third)


def to_network_state(spec: NetworkSpec, st: PopulationState) -> Any:
    """Member 0 of a population state as a core :class:`~spikeplastic.network.NetworkState`."""
    from ..functional.lif import LIFState
    from ..functional.plasticity import STDPTraces
    from ..network import NetworkState
    from ..plastic import PlasticState

    neurons = {p.name: LIFState(st.u[i][0], st.v[i][0], st.s[i][0]) for i, p in enumerate(spec.pops)}
    synapses = {}
    for j, js in enumerate(spec.projs):
        if js.plastic:
            synapses[js.name] = PlasticState(st.H[j][0], None if st.E[j] is None else st.E[j][0],
                                             STDPTraces(st.X[j][0], st.Y[j][0]))
        else:
            synapses[js.name] = PlasticState(None, None, None)
    third = None if st.third_prev is None else st.third_prev[0]
    return NetworkState(neurons, synapses, st.x_prev[0], third)


def nograd_forward(net: Any, x: Tensor, state: Any = None, *, record: str | Sequence[str] = ("spikes",),
                   third_factor: Tensor | None = None, backend: str = "auto") -> tuple[Any, Any]:
    """``net(x, state, record=..., third_factor=...)`` without autograd, through the fused population
    kernels (one member): the same :class:`~spikeplastic.network.Record` (spikes identical, the rest to
    rounding) and final :class:`~spikeplastic.network.NetworkState`, many times faster.

    ``record`` may hold ``"spikes"``, ``"voltages"``, ``"currents"``, ``"weights"``, ``"traces"``
    (``"modulation"`` raises ``ValueError``: use ``Network.forward``). Unsupported networks raise
    ``ValueError`` (:func:`check_population`).
    """
    from ..network import Record

    spec = network_spec(net)
    if isinstance(record, str):
        record = (record,)
    for r in record:
        if r not in POPULATION_RECORD:
            raise ValueError(f"record entry {r!r}: the no-grad forward records {list(POPULATION_RECORD)}; "
                             "use Network.forward for 'modulation'")
    net._check_input(x, "x", 3)
    T, B = x.shape[0], x.shape[1]
    if third_factor is not None:
        net._check_third_factor(third_factor, (T, B), f"T={T}, B={B}")
    if state is not None:
        net.check_state(state, B)
    with torch.no_grad():
        vals = network_values(net, spec)
        st = None if state is None else to_population_state(spec, state)
        run = PopulationRun(spec, vals, B, state=st, record=record, backend=backend)
        rec = run.run(x, third_factor)
    sq = lambda d: None if d is None else {k: v[:, 0] for k, v in d.items()}  # noqa: E731
    traces = None if rec.traces is None else {k: (a[:, 0], b[:, 0]) for k, (a, b) in rec.traces.items()}
    out = Record(spikes=sq(rec.spikes), voltages=sq(rec.voltages), currents=sq(rec.currents), traces=traces,
                 weights=sq(rec.weights))
    return out, to_network_state(spec, run.state)
