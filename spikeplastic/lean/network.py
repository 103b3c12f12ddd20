"""The lean path for a core :class:`~spikeplastic.network.Network`: which networks it runs
(:func:`check_network`), and their episodes as a chain of lean layers."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor, nn

from .layer import plastic_lif_layer
from .params import LayerState, LeanLIF, LeanProjection, STDPParams
from .plan import check_options

_LEAN_RECORD = ("spikes", "voltages", "currents")


class _LayerPlan(NamedTuple):
    pop: str
    pre: str            # "in" or a population computed earlier
    ff: str             # projection names in net.projs
    rec: str | None
    rec_first: bool


def check_network(net: Any) -> list[_LayerPlan]:
    """The lean plan of a core :class:`~spikeplastic.network.Network`: its populations in the order
    the lean path runs them. Raises ``ValueError`` naming the first unsupported feature.

    Supported: a chain of LIF populations, each fed by exactly one projection from ``"in"`` or an
    earlier population, plus at most one recurrent projection onto itself; every projection static
    or plastic with pair STDP (alpha per synapse / shared / none, decay fixed or learned, clip,
    ``rule_input_grad`` either way), no neuromodulation, and no Loihi integer-state emulation
    (``LIF.quantum``).
    """
    from ..network import Network
    from ..rules import STDP

    if not isinstance(net, Network):
        raise TypeError(f"net must be a spikeplastic.Network, got {type(net).__name__}")
    for name, pop in net.pops.items():
        if getattr(pop, "quantum", None) is not None:
            raise ValueError(f"lean path: population {name!r} emulates Loihi's integer state (quantum set by "
                             "spikeplastic.quant.loihi_legal), which the lean path does not support")
    ff_of: dict[str, str] = {}
    rec_of: dict[str, str] = {}
    order_idx = {name: i for i, name in enumerate(net.projs)}
    for name, layer in net.projs.items():
        pre, post = net.topology[name]
        if layer.modulation is not None:
            raise ValueError(f"lean path: projection {pre}->{post} uses neuromodulation ({layer.modulation.mode}), "
                             "which the lean path does not support")
        if layer.rule is not None and not isinstance(layer.rule, STDP):
            raise ValueError(f"lean path: projection {pre}->{post} uses the {type(layer.rule).__name__} rule; "
                             "only pair STDP (spikeplastic.STDP) is supported")
        if pre == post:
            rec_of[post] = name
        elif post in ff_of:
            raise ValueError(f"lean path: population {post!r} receives more than one feed-forward projection "
                             f"({net.topology[ff_of[post]][0]}->{post} and {pre}->{post}); only one plus one "
                             "recurrent projection is supported")
        else:
            ff_of[post] = name
    plan: list[_LayerPlan] = []
    done = {"in"}
    pending = list(net.pops)
    while pending:
        ready = [p for p in pending if p in ff_of and net.topology[ff_of[p]][0] in done]
        if not ready:
            p = pending[0]
            if p not in ff_of:
                raise ValueError(f"lean path: population {p!r} has no feed-forward input projection")
            raise ValueError(f"lean path: projection {net.topology[ff_of[p]][0]}->{p} closes a loop between "
                             "populations (feedback); only chains with self-recurrence are supported")
        for p in ready:
            r = rec_of.get(p)
            plan.append(_LayerPlan(p, net.topology[ff_of[p]][0], ff_of[p], r,
                                   r is not None and order_idx[r] < order_idx[ff_of[p]]))
            done.add(p)
            pending.remove(p)
    return plan


def _lean_projection(layer: Any) -> LeanProjection:
    w = layer.weight()
    if layer.rule is None:
        return LeanProjection(w)
    r = layer.rule
    decay = layer.decay()
    # PlasticLinear.update skips the decay term exactly when it is fixed at 0
    dec = None if (not layer.decay.learn and float(decay) == 0.0) else decay
    return LeanProjection(
        w, STDPParams(r.a_plus(), r.a_minus(), r.tau_plus(), r.tau_minus()),
        alpha=None if layer.alpha is None else layer.alpha(), decay=dec, clip=layer.clip,
        rule_input_grad=layer.rule_input_grad,
    )


def network_forward(
    net: Any,
    x: Tensor,
    state: Any = None,
    *,
    record: Sequence[str] = ("spikes",),
    third_factor: Tensor | None = None,
    backend: str = "auto",
    checkpoint_every: int | None = None,
    reconstruct: str = "auto",
    store_currents: bool | None = None,
) -> tuple[Any, Any]:
    """``net(x, state, record=..., third_factor=...)`` for a core ``Network``, the lean way.

    Same parameters, same results (:class:`~spikeplastic.network.Record`, final
    :class:`~spikeplastic.network.NetworkState`) and same gradients as ``Network.forward``, with
    memory ``O(B*N^2 + T*B*N)`` instead of ``O(T*B*N^2)``. ``record`` may contain ``"spikes"``,
    ``"voltages"``, ``"currents"``; ``"weights"``/``"traces"``/``"modulation"`` raise ``ValueError``
    (use ``Network.forward``). Unsupported topologies raise ``ValueError`` (:func:`check_network`).
    """
    from ..functional.lif import LIFState
    from ..functional.plasticity import STDPTraces
    from ..network import NetworkState, Record
    from ..plastic import PlasticState

    plan = check_network(net)
    for r in record:
        if r not in _LEAN_RECORD:
            raise ValueError(f"lean path: record entry {r!r} is not supported (only {list(_LEAN_RECORD)}); "
                             "use Network.forward to record weights, traces or modulation")
    net._check_input(x, "x", 3)
    T, B = x.shape[0], x.shape[1]
    if third_factor is not None and tuple(third_factor.shape[:2]) != (T, B):
        raise ValueError(f"third_factor must have shape [T={T}, B={B}] or [T, B, n_post], got {tuple(third_factor.shape)}")
    if state is None:
        state = net.initial_state(B)
    want = set(record)
    spikes: dict[str, Tensor] = {}
    volts: dict[str, Tensor] = {}
    curs: dict[str, Tensor] = {}
    neurons: dict[str, Any] = {}
    synapses: dict[str, Any] = dict(state.synapses)
    for lp in plan:
        pop = net.pops[lp.pop]
        prm = pop.params()
        lif = LeanLIF(prm.du, prm.dv, prm.vth, prm.bias, pop.spike_fn, pop.reset, pop.detach_reset)
        if lp.pre == "in":
            xin, xp0, binary = x, state.x_prev, False
        else:
            xin, xp0, binary = spikes[lp.pre], state.neurons[lp.pre].s, True
        ffl = net.projs[lp.ff]
        recl = None if lp.rec is None else net.projs[lp.rec]
        st_ff = state.synapses[lp.ff]
        st_rec = None if lp.rec is None else state.synapses[lp.rec]
        nst = state.neurons[lp.pop]

        def tr(s: Any, i: int) -> Tensor | None:
            return None if (s is None or s.H is None) else s.rule[i]

        lstate = LayerState(
            nst.u, nst.v, nst.s, xp0,
            None if st_ff.H is None else st_ff.H, tr(st_ff, 0), tr(st_ff, 1),
            None if st_rec is None else st_rec.H, tr(st_rec, 0), tr(st_rec, 1),
        )
        out, fin = plastic_lif_layer(
            xin, _lean_projection(ffl), lif, None if recl is None else _lean_projection(recl), lstate,
            record_voltages="voltages" in want, record_currents="currents" in want,
            backend=backend, checkpoint_every=checkpoint_every, reconstruct=reconstruct,
            rec_first=lp.rec_first, x_is_spikes=binary, store_currents=store_currents,
        )
        spikes[lp.pop] = out.spikes
        if out.voltages is not None:
            volts[lp.pop] = out.voltages
        if out.currents is not None:
            curs[lp.pop] = out.currents
        neurons[lp.pop] = LIFState(fin.u, fin.v, fin.s)
        if ffl.plastic:
            synapses[lp.ff] = PlasticState(fin.H_ff, None, STDPTraces(fin.x_ff, fin.y_ff))
        if recl is not None and recl.plastic:
            synapses[lp.rec] = PlasticState(fin.H_rec, None, STDPTraces(fin.x_rec, fin.y_rec))
    order = list(net.pops)
    rec_out = Record(
        spikes={k: spikes[k] for k in order},
        voltages={k: volts[k] for k in order} if "voltages" in want else None,
        currents={k: curs[k] for k in order} if "currents" in want else None,
    )
    new = NetworkState({k: neurons[k] for k in order}, {k: synapses[k] for k in net.projs}, x[-1],
                       None if third_factor is None else third_factor[-1])
    return rec_out, new


class LeanNetwork(nn.Module):
    """A core ``Network`` run the lean way: ``LeanNetwork(net)(x, state, record=...)`` equals
    ``net(x, state, record=...)`` (same parameters: ``net`` is a submodule) with lean memory.

    The topology is checked at construction (:func:`check_network`, ``ValueError`` otherwise).
    """

    def __init__(self, net: Any, *, backend: str = "auto", checkpoint_every: int | None = None,
                 reconstruct: str = "auto", store_currents: bool | None = None) -> None:
        super().__init__()
        check_network(net)
        check_options(backend, reconstruct)
        self.net = net
        self.backend = backend
        self.checkpoint_every = checkpoint_every
        self.reconstruct = reconstruct
        self.store_currents = store_currents

    def forward(self, x: Tensor, state: Any = None, *, record: Sequence[str] = ("spikes",),
                third_factor: Tensor | None = None) -> tuple[Any, Any]:
        return network_forward(self.net, x, state, record=record, third_factor=third_factor, backend=self.backend,
                               checkpoint_every=self.checkpoint_every, reconstruct=self.reconstruct,
                               store_currents=self.store_currents)
