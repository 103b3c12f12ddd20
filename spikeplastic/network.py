"""Networks of LIF populations and (plastic) projections, run by one generic time loop."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from . import ir
from ._validation import check_choice, check_int, check_spikes, check_tensor
from .functional.lif import LIFState
from .neurons import LIF
from .plastic import PlasticLinear, PlasticState

__all__ = ["Network", "NetworkState", "Record", "StepOutput", "RECORDABLE"]

RECORDABLE = ("spikes", "voltages", "currents", "traces", "weights", "modulation")


class NetworkState(NamedTuple):
    """Everything that changes within an episode.

    ``neurons``: per population :class:`LIFState` (its ``s`` is the last step's spikes);
    ``synapses``: per projection :class:`PlasticState`; ``x_prev``: last step's input ``[B, n_in]``;
    ``third_prev``: last step's external third factor (or None).
    """

    neurons: dict[str, LIFState]
    synapses: dict[str, PlasticState]
    x_prev: Tensor
    third_prev: Tensor | None


class StepOutput(NamedTuple):
    """Spikes of every population at this step (``[B, n]`` each)."""

    spikes: dict[str, Tensor]


class Record(NamedTuple):
    """What a run recorded, stacked over time (leading dim ``T``); unrequested fields are None.

    ``spikes``/``voltages``/``currents``: per population ``[T, B, n]``; ``weights``: per plastic
    projection ``[T, B, n_post, n_pre]``, the weight ``W[t]`` after the plasticity of step ``t``;
    ``traces``: per STDP projection ``(x [T,B,n_pre], y [T,B,n_post])``; ``modulation``: per
    modulated projection the third factor ``m[t]``.
    """

    spikes: dict[str, Tensor]
    voltages: dict[str, Tensor] | None = None
    currents: dict[str, Tensor] | None = None
    traces: dict[str, tuple[Tensor, Tensor]] | None = None
    weights: dict[str, Tensor] | None = None
    modulation: dict[str, Tensor] | None = None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


class Network(nn.Module):
    r"""Populations of :class:`LIF` neurons connected by :class:`PlasticLinear` projections.

    Every projection has one step of delay, so with input ``x[t]`` (shape ``[B, n_in]``) one step
    does, for every projection ``pre -> post``::

        a_post += (w + alpha*H[t-2]) @ s_pre[t-1]        (s_in[t-1] = x[t-1] for the input)
        a_post += n[t]      (node perturbation's noise, after all projections' currents)
        LIF step of every population -> s[t]
        plasticity of step t-1 applied to H (so the forward pass sees weights two steps old)

    This is Lava's timing (``Dense``/``LearningDense``), which makes export exact. Layer ``L`` of
    a feed-forward chain therefore responds to the input ``L`` steps later.

    Args:
        n_in: input size (population ``"in"``).
        populations: name -> :class:`LIF`.
        projections: sequence of ``(pre, post, PlasticLinear)``; ``pre`` may be ``"in"``.
        input_kind: ``"spikes"`` (inputs must be 0/1) or ``"current"`` (real-valued).

    Example::

        >>> net = Network.feedforward([20, 16, 4], rule="stdp", recurrent=True)
        >>> rec, state = net(torch.bernoulli(torch.full((50, 3, 20), 0.2)))
        >>> rec.spikes["l2"].shape
        torch.Size([50, 3, 4])
    """

    def __init__(
        self,
        n_in: int,
        populations: Mapping[str, LIF],
        projections: Sequence[tuple[str, str, PlasticLinear]],
        *,
        input_kind: str = "spikes",
    ) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.input_kind = check_choice("input_kind", input_kind, ["spikes", "current"])
        if not populations:
            raise ValueError("populations must name at least one LIF population")
        for name, pop in populations.items():
            if not isinstance(pop, LIF):
                raise TypeError(f"populations[{name!r}] must be a LIF, got {type(pop).__name__}")
            if name == "in" or not name.isidentifier():
                raise ValueError(f"population name {name!r} must be an identifier other than 'in'")
        self.pops = nn.ModuleDict(dict(populations))
        self.projs = nn.ModuleDict()
        self.topology: dict[str, tuple[str, str]] = {}
        sizes = {"in": n_in, **{k: p.n for k, p in populations.items()}}
        for item in projections:
            if not (isinstance(item, tuple) and len(item) == 3):
                raise TypeError(f"each projection must be a (pre, post, PlasticLinear) tuple, got {item!r}")
            pre, post, layer = item
            if pre not in sizes:
                raise ValueError(f"projection pre {pre!r} is not 'in' or a population ({list(populations)})")
            if post not in populations:
                raise ValueError(f"projection post {post!r} is not a population ({list(populations)})")
            if not isinstance(layer, PlasticLinear):
                raise TypeError(f"projection {pre}->{post} must be a PlasticLinear, got {type(layer).__name__}")
            if (layer.n_in, layer.n_out) != (sizes[pre], sizes[post]):
                raise ValueError(
                    f"projection {pre}->{post}: PlasticLinear({layer.n_in}, {layer.n_out}) does not match "
                    f"sizes ({sizes[pre]}, {sizes[post]})"
                )
            name = f"{pre}_to_{post}"
            if name in self.projs:
                raise ValueError(f"duplicate projection {pre}->{post}")
            mod = layer.modulation
            if mod is not None and mod.source is not None:
                if mod.source not in sizes:
                    raise ValueError(f"modulation source {mod.source!r} of {pre}->{post} is not a population")
                mod.bind(sizes[mod.source], sizes[post])
            self.projs[name] = layer
            self.topology[name] = (pre, post)
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    # ---- construction helpers ---------------------------------------------------------------
    @classmethod
    def feedforward(
        cls,
        sizes: Sequence[int],
        *,
        rule: Any = None,
        recurrent: bool = False,
        plastic_layers: Sequence[int] | None = None,
        lif: Mapping[str, Any] | None = None,
        linear: Mapping[str, Any] | None = None,
        input_kind: str = "spikes",
    ) -> "Network":
        """A chain ``in -> l1 -> ... -> lK`` (optionally each hidden layer recurrent).

        ``rule`` is a rule name or a zero-argument factory returning a fresh rule per projection;
        ``plastic_layers`` lists which projections (0-based, feed-forward first then recurrent
        in order of layers) get the rule (default: all).
        """
        if len(sizes) < 2:
            raise ValueError(f"sizes must list the input size and at least one layer, got {list(sizes)}")
        if isinstance(rule, nn.Module):  # a module is callable: rule() would call its (missing) forward
            raise TypeError("rule must be a rule name or a zero-argument factory (e.g. lambda: STDP(...)), "
                            f"not a {type(rule).__name__} instance shared by every projection")
        lif = dict(lif or {})
        linear = dict(linear or {})
        pops = {f"l{i}": LIF(n, **lif) for i, n in enumerate(sizes[1:], start=1)}
        specs: list[tuple[str, str, int, int]] = []
        names = ["in"] + list(pops)
        for i in range(1, len(sizes)):
            specs.append((names[i - 1], names[i], sizes[i - 1], sizes[i]))
        if recurrent:
            for i in range(1, len(sizes) - 1):
                specs.append((names[i], names[i], sizes[i], sizes[i]))
        projs = []
        for k, (pre, post, a, b) in enumerate(specs):
            use = plastic_layers is None or k in plastic_layers
            r = (rule() if callable(rule) else rule) if use else None
            projs.append((pre, post, PlasticLinear(a, b, rule=r, **linear)))
        return cls(sizes[0], pops, projs, input_kind=input_kind)

    # ---- state --------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self._ref.dtype

    @property
    def device(self) -> torch.device:
        return self._ref.device

    def initial_state(self, batch: int, *, noise_seed: int | None = None) -> NetworkState:
        """State at ``t = 0``: all potentials, traces and plastic parts zero.

        ``noise_seed``: the node-perturbation noise of projection ``j`` (0-based, in projection order)
        uses seed ``noise_seed + j`` in every sample (what :func:`~spikeplastic.simulate` and the Lava
        export take); ``None``: per-sample seeds drawn from torch's global generator.
        """
        check_int("batch", batch)
        if noise_seed is not None and (isinstance(noise_seed, bool) or not isinstance(noise_seed, int)
                                       or not 0 <= noise_seed < 2**32 - len(self.projs)):
            raise ValueError(f"noise_seed: expected None or an int in [0, 2^32 - {len(self.projs)}), got {noise_seed!r}")
        return NetworkState(
            neurons={k: p.initial_state(batch) for k, p in self.pops.items()},
            synapses={k: l.initial_state(batch, noise_seed=None if noise_seed is None else noise_seed + j)
                      for j, (k, l) in enumerate(self.projs.items())},
            x_prev=torch.zeros(batch, self.n_in, dtype=self.dtype, device=self.device),
            third_prev=None,
        )

    def check_state(self, state: Any, batch: int, name: str = "state") -> None:
        """Raise unless ``state`` is a :class:`NetworkState` of this network for ``batch`` samples
        (``TypeError``/``ValueError`` naming ``name``): a state of another batch size would
        otherwise broadcast silently against the input."""
        if not isinstance(state, NetworkState):
            raise TypeError(f"{name}: expected a NetworkState (from initial_state() or a previous step), "
                            f"got {type(state).__name__}")
        missing = sorted((set(self.pops) - set(state.neurons)) | (set(self.projs) - set(state.synapses)))
        if missing:
            raise ValueError(f"{name}: expected a NetworkState of this network, got one without {missing}")
        shapes = {"x_prev": (tuple(state.x_prev.shape), (batch, self.n_in))}
        for k, pop in self.pops.items():
            shapes[f"neurons[{k!r}].v"] = (tuple(state.neurons[k].v.shape), (batch, pop.n))
        for k, layer in self.projs.items():
            H = state.synapses[k].H
            if H is not None:
                shapes[f"synapses[{k!r}].H"] = (tuple(H.shape), (batch, layer.n_out, layer.n_in))
        for field_name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"{name}: expected a state of this network for batch size {batch} (as from "
                                 f"initial_state({batch})), got {field_name} of shape {got} instead of {want}")

    def _external(self) -> dict[str, int]:
        """Projections modulated by the external third factor -> their ``n_post``."""
        return {n: l.n_out for n, l in self.projs.items() if l.modulation is not None and l.modulation.source is None}

    def _check_third_factor(self, tf: Any, lead: tuple[int, ...], dims: str) -> None:
        need = self._external()
        if not need:
            raise ValueError("third_factor: expected None (no projection is modulated by an external third factor, "
                             f"Neuromodulation(source=None)), got {type(tf).__name__}")
        check_tensor("third_factor", tf)
        posts = sorted(set(need.values()))
        ok = tuple(tf.shape) == lead or (tf.dim() == len(lead) + 1 and tuple(tf.shape[:-1]) == lead
                                         and all(n == tf.shape[-1] for n in posts))
        if not ok:
            per = " or ".join(f"[{dims}, {n}]" for n in posts)
            raise ValueError(f"third_factor: expected shape [{dims}] or {per} (n_post of {sorted(need)}), "
                             f"got {tuple(tf.shape)}")

    # ---- one step -----------------------------------------------------------------------------
    def _spikes(self, state: NetworkState, name: str) -> Tensor:
        return state.x_prev if name == "in" else state.neurons[name].s

    def _gate(self, layer: PlasticLinear, state: NetworkState) -> Tensor | None:
        mod = layer.modulation
        if mod is None:
            return None
        src = None if mod.source is None else self._spikes(state, mod.source)
        if mod.source is None and state.third_prev is None:
            return None  # first step: nothing pending, H is still zero
        return mod.signal(src, state.third_prev)

    def step(
        self, x: Tensor, state: NetworkState, third_factor: Tensor | None = None, *, validate: bool = True
    ) -> tuple[StepOutput, NetworkState]:
        """Advance one step with input ``x`` ``[B, n_in]``; returns this step's spikes and the new state.

        ``third_factor``: external modulation at this step (``[B]`` or ``[B, n_post]``, finite) for
        projections whose modulation has ``source=None`` (``None`` for a network without them).
        ``state`` must come from ``initial_state(B)`` or a previous step with the same ``B``.
        ``validate=False`` skips the checks of ``x``, ``state`` and ``third_factor`` (for callers
        that checked the whole sequence once).
        """
        if validate:
            self._check_input(x, "x", 2)
            self.check_state(state, x.shape[0])
            if third_factor is not None:
                self._check_third_factor(third_factor, (x.shape[0],), f"B={x.shape[0]}")
        if third_factor is None:
            # without it the plasticity of these projections would be skipped silently
            need = list(self._external())
            if need:
                raise ValueError(f"projections {need} are modulated by an external third factor: pass third_factor=...")
        currents: dict[str, Tensor] = {}
        synapses: dict[str, PlasticState] = {}
        for name, layer in self.projs.items():
            pre, post = self.topology[name]
            syn = state.synapses[name]
            s_pre = self._spikes(state, pre)
            a = layer.current(syn, s_pre)
            currents[post] = a if post not in currents else currents[post] + a
            if layer.plastic:
                # plasticity of the previous step (its spikes are in `state`), Lava's lag
                if layer.modulation is not None and state.third_prev is None and layer.modulation.source is None:
                    synapses[name] = syn
                else:
                    synapses[name] = layer.update(syn, s_pre, state.neurons[post].s, self._gate(layer, state))
            else:
                synapses[name] = syn
        # node perturbation: noise currents, added after every projection's current (Lava sums the
        # inputs of a port in connection order, and the exporter connects the noise last)
        for name, layer in self.projs.items():
            noise, syn = layer.perturbation(synapses[name])
            if noise is not None:
                post = self.topology[name][1]
                currents[post] = currents[post] + noise
                synapses[name] = syn
        neurons: dict[str, LIFState] = {}
        for k, pop in self.pops.items():
            a = currents.get(k)
            if a is None:
                a = torch.zeros_like(state.neurons[k].v)
            neurons[k] = pop.step(a, state.neurons[k])
        new = NetworkState(neurons, synapses, x, third_factor)
        return StepOutput({k: n.s for k, n in neurons.items()}), new

    def peek(self, state: NetworkState) -> dict[str, PlasticState]:
        """Plastic state *after* the plasticity of the last completed step (for recording ``W[t]``)."""
        out = {}
        for name, layer in self.projs.items():
            if not layer.plastic:
                continue
            pre, post = self.topology[name]
            syn = state.synapses[name]
            mod = layer.modulation
            if mod is not None and mod.source is None and state.third_prev is None:
                out[name] = syn
                continue
            out[name] = layer.update(syn, self._spikes(state, pre), state.neurons[post].s, self._gate(layer, state))
        return out

    # ---- whole episode ----------------------------------------------------------------------
    def _check_input(self, x: Any, name: str, ndim: int) -> None:
        check_tensor(name, x, ndim=ndim, last_dim=self.n_in, nonempty=True)
        if x.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but the network is {self.dtype}; convert one with .to(...)")
        if self.input_kind == "spikes":
            check_spikes(name, x)

    def forward(
        self,
        x: Tensor,
        state: NetworkState | None = None,
        *,
        record: str | Sequence[str] = ("spikes",),
        third_factor: Tensor | None = None,
    ) -> tuple[Record, NetworkState]:
        """Run ``x`` ``[T, B, n_in]`` (``T, B >= 1``); returns a :class:`Record` and the final state.

        ``record`` chooses among ``"spikes"``, ``"voltages"``, ``"currents"``, ``"traces"``,
        ``"weights"``, ``"modulation"`` (one name or a sequence; weights cost ``T*B*n_post*n_pre``
        memory). ``third_factor``: ``[T, B]`` or ``[T, B, n_post]`` external modulation.
        ``state``: from ``initial_state(B)`` or a previous run with the same ``B`` (default: fresh).
        """
        self._check_input(x, "x", 3)
        if isinstance(record, str):
            record = (record,)
        for r in record:
            check_choice("record entry", r, RECORDABLE)
        T, B = x.shape[0], x.shape[1]
        if third_factor is not None:
            self._check_third_factor(third_factor, (T, B), f"T={T}, B={B}")
        if state is None:
            state = self.initial_state(B)
        else:
            self.check_state(state, B)
        want = set(record)
        spikes: dict[str, list[Tensor]] = {k: [] for k in self.pops}
        volts: dict[str, list[Tensor]] = {k: [] for k in self.pops}
        curs: dict[str, list[Tensor]] = {k: [] for k in self.pops}
        weights: dict[str, list[Tensor]] = {}
        traces: dict[str, list[tuple[Tensor, Tensor]]] = {}
        mods: dict[str, list[Tensor]] = {}
        for t in range(T):
            tf = None if third_factor is None else third_factor[t]
            out, state = self.step(x[t], state, tf, validate=False)
            for k, n in state.neurons.items():
                spikes[k].append(n.s)
                if "voltages" in want:
                    volts[k].append(n.v)
                if "currents" in want:
                    curs[k].append(n.u)
            if want & {"weights", "traces", "modulation"}:
                after = self.peek(state)
                for name, syn in after.items():
                    layer = self.projs[name]
                    if "weights" in want:
                        weights.setdefault(name, []).append(layer.effective_weight(syn))
                    if "traces" in want and isinstance(syn.rule, tuple) and len(syn.rule) == 2:
                        traces.setdefault(name, []).append((syn.rule[0], syn.rule[1]))
                    if "modulation" in want and layer.modulation is not None:
                        g = self._gate(layer, state)
                        if g is not None:
                            mods.setdefault(name, []).append(g.squeeze(-1))
        st = lambda d: {k: torch.stack(v) for k, v in d.items()}  # noqa: E731
        rec = Record(
            spikes=st(spikes),
            voltages=st(volts) if "voltages" in want else None,
            currents=st(curs) if "currents" in want else None,
            traces={k: (torch.stack([a for a, _ in v]), torch.stack([b for _, b in v])) for k, v in traces.items()}
            if "traces" in want else None,
            weights=st(weights) if "weights" in want else None,
            modulation=st(mods) if "modulation" in want else None,
        )
        return rec, state

    # ---- IR -------------------------------------------------------------------------------------
    def to_ir(self, meta: Mapping[str, Any] | None = None) -> ir.NetworkIR:
        """Describe this network (mapped parameter values, float64) as a :class:`~spikeplastic.ir.NetworkIR`."""
        pops = [ir.Population(name="in", n=self.n_in, kind="input", input_kind=self.input_kind)]  # type: ignore[arg-type]
        for k, p in self.pops.items():
            prm = p.params()
            np64 = lambda t: torch.as_tensor(t).detach().cpu().double().numpy()  # noqa: E731
            pops.append(ir.Population(
                name=k, n=p.n, kind="lif", du=np64(prm.du), dv=np64(prm.dv), vth=np64(prm.vth),
                bias=np64(prm.bias), reset=p.reset,  # type: ignore[arg-type]
            ))
        projs = [l.to_ir(name, *self.topology[name]) for name, l in self.projs.items()]
        return ir.NetworkIR(tuple(pops), tuple(projs), meta=dict(meta or {}))

    @classmethod
    def from_ir(cls, net_ir: ir.NetworkIR, *, surrogate: str = "atan", dtype: torch.dtype = torch.float64) -> "Network":
        """A fixed (non-learnable) network holding the IR's exact values, in ``dtype``."""
        with _default_dtype(torch.float64):
            pops = {
                p.name: LIF(p.n, du=torch.tensor(p.du), dv=torch.tensor(p.dv), vth=torch.tensor(p.vth),
                            bias=torch.tensor(p.bias), reset=p.reset, surrogate=surrogate)
                for p in net_ir.populations if p.kind == "lif"
            }
            inp = net_ir.input
            if inp.name != "in":
                raise ValueError(f"the input population must be named 'in', got {inp.name!r}")
            projs = [(p.pre, p.post, PlasticLinear.from_ir(p)) for p in net_ir.projections]
            net = cls(inp.n, pops, projs, input_kind=inp.input_kind)
        return net.to(dtype)
