"""NIR for the static part of a network, with the plasticity carried alongside in a sidecar dict.

NIR (``nir`` >= 1.0) has no plasticity node, so :func:`to_nir` returns ``(graph, sidecar)``: the graph
holds populations and fixed weights; the JSON-able sidecar holds each projection's rule, alpha,
decay and modulation (and what NIR cannot say: subtractive resets, the one-step synaptic delay).
:func:`from_nir` rebuilds the :class:`~spikeplastic.ir.NetworkIR` from both (or a static IR from the
graph alone, e.g. one exported by snnTorch).

Mapping (snnTorch's convention, ``dt`` = 1e-4 by default, discrete Lava dynamics)::

    du == 1:  nir.LIF(tau = dt/dv, r = 1/dv, v_leak = bias/dv, v_threshold = vth)
    du <  1:  nir.CubaLIF(tau_syn = dt/du, tau_mem = dt/dv, r = 1/dv, w_in = 1/du, v_leak = bias/dv, ...)
    projection pre -> post:  nir.Linear(weight = w)   (edges pre -> proj -> post)

Every edge carries one step of delay (Lava's ``Dense``); the sidecar records it
(``"delay_steps_per_projection": 1``). ``dv == 0`` with a bias, or ``du == 0``, has no NIR form.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from spikeplastic import ir as _ir

from ._plan import as_ir
from .errors import ExportError

__all__ = ["to_nir", "from_nir", "SIDECAR_FORMAT", "DEFAULT_DT"]

SIDECAR_FORMAT = "spikeplastic-nir-sidecar"
DEFAULT_DT = 1e-4


def _import_nir() -> Any:
    try:
        import nir
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("to_nir/from_nir need the 'nir' package: pip install 'spikeplastic[nir]'") from e
    return nir


def _lst(a: Any) -> Any:
    return None if a is None else np.asarray(a, dtype=np.float64).tolist()


def to_nir(net_or_ir: Any, *, dt: float = DEFAULT_DT) -> tuple[Any, dict[str, Any]]:
    """Static part of ``net_or_ir`` as a ``nir.NIRGraph``, plus the plasticity sidecar (a JSON-able dict).

    Output nodes: one ``nir.Output`` per population without outgoing projections (named ``output``
    when there is one, ``output_<population>`` otherwise).
    """
    nir = _import_nir()
    ir = as_ir(net_or_ir)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inp = ir.input
    nodes[inp.name] = nir.Input(input_type=np.array([inp.n]))
    side_pops: dict[str, Any] = {}
    for p in ir.populations:
        if p.kind == "input":
            continue
        du, dv = np.asarray(p.du, dtype=np.float64), np.asarray(p.dv, dtype=np.float64)
        if np.any(dv <= 0):
            raise ExportError(f"population {p.name!r}: dv = 0 (no leak) has no NIR LIF form (tau = dt/dv)")
        if np.any(du <= 0):
            raise ExportError(f"population {p.name!r}: du = 0 (current never decays) has no NIR CubaLIF form")
        common = dict(r=1.0 / dv, v_leak=np.asarray(p.bias) / dv, v_threshold=np.asarray(p.vth, dtype=np.float64),
                      v_reset=np.zeros(p.n))
        if np.all(du == 1.0):
            nodes[p.name] = nir.LIF(tau=dt / dv, **common)
        else:
            nodes[p.name] = nir.CubaLIF(tau_syn=dt / du, tau_mem=dt / dv, w_in=1.0 / du, **common)
        side_pops[p.name] = {"reset": p.reset}
    side_projs: dict[str, Any] = {}
    for pr in ir.projections:
        if pr.name in nodes:
            raise ExportError(f"projection name {pr.name!r} collides with a population name")
        nodes[pr.name] = nir.Linear(weight=np.array(pr.weight, dtype=np.float64))
        edges += [(pr.pre, pr.name), (pr.name, pr.post)]
        rule = None
        if pr.rule is not None:
            rule = {"type": pr.rule.type, **{k: v if isinstance(v, (bool, str)) else float(v)
                                             for k, v in vars(pr.rule).items() if k != "type"}}
        mod = None
        if pr.modulation is not None:
            m = pr.modulation
            mod = {"mode": m.mode, "source": m.source, "weight": _lst(m.weight), "bias": _lst(m.bias), "eta_e": float(m.eta_e)}
        side_projs[pr.name] = {
            "pre": pr.pre, "post": pr.post, "rule": rule, "alpha": _lst(pr.alpha), "decay": float(pr.decay),
            "clip": pr.clip, "modulation": mod,
        }
    sinks = [p.name for p in ir.populations if p.kind == "lif" and not any(q.pre == p.name for q in ir.projections)]
    for s in sinks:
        oname = "output" if len(sinks) == 1 else f"output_{s}"
        nodes[oname] = nir.Output(output_type=np.array([ir.population(s).n]))
        edges.append((s, oname))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"source": "spikeplastic", "dt": dt,
                                                             "delay_steps_per_projection": 1})
    sidecar = {
        "format": SIDECAR_FORMAT, "version": 1, "dt": dt, "delay_steps_per_projection": 1,
        "input": {"name": inp.name, "input_kind": inp.input_kind},
        "populations": side_pops, "projections": side_projs,
        "meta": dict(ir.meta),
    }
    return graph, sidecar


def _arr(node: Any, name: str) -> np.ndarray:
    return np.asarray(getattr(node, name), dtype=np.float64).reshape(-1)


def from_nir(graph: Any, sidecar: dict[str, Any] | None = None) -> _ir.NetworkIR:
    """Rebuild a NetworkIR from :func:`to_nir`'s output (rules from ``sidecar``; static without it).

    Accepts graphs whose neurons are ``nir.LIF``/``nir.CubaLIF`` and whose synapses are
    ``nir.Linear``/``nir.Affine`` nodes between an ``Input``/neuron and a neuron (an Affine bias
    becomes the LIF bias, exact when ``du == 1``). Without a sidecar, the input is named ``"in"``,
    neuron nodes whose names are not identifiers become ``l1, l2, ...`` and synapses ``<pre>_to_<post>``.
    """
    nir = _import_nir()
    if sidecar is not None and sidecar.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"sidecar is not a {SIDECAR_FORMAT!r} dict")
    side = sidecar or {}
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    dt = float(side.get("dt", meta.get("dt", DEFAULT_DT)))
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succs.setdefault(a, []).append(b)
        preds.setdefault(b, []).append(a)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"from_nir needs exactly one nir.Input node, found {inputs}")
    in_name = inputs[0]
    in_info = side.get("input", {})
    pops: list[_ir.Population] = [_ir.Population(
        name=in_info.get("name", "in"), n=int(np.prod(graph.nodes[in_name].input_type["input"])), kind="input",
        input_kind=in_info.get("input_kind", "spikes"),
    )]
    rename = {in_name: pops[0].name}
    extra_bias: dict[str, np.ndarray] = {}
    side_pops = side.get("populations", {})
    for k, n in graph.nodes.items():
        if isinstance(n, (nir.LIF, nir.CubaLIF)):
            if isinstance(n, nir.LIF):
                dv = dt / _arr(n, "tau")
                du = np.ones_like(dv)
                r = _arr(n, "r")
            else:
                dv = dt / _arr(n, "tau_mem")
                du = dt / _arr(n, "tau_syn")
                r = _arr(n, "r")
                w_in = _arr(n, "w_in")
                if not np.allclose(w_in * du, 1.0, rtol=1e-12, atol=0):
                    raise ValueError(f"node {k!r}: CubaLIF with w_in != tau_syn/dt has no LIF equivalent here")
            if not np.allclose(r * dv, 1.0, rtol=1e-12, atol=0):
                raise ValueError(f"node {k!r}: r != tau/dt has no discrete LIF equivalent here")
            if np.any(_arr(n, "v_reset") != 0):
                raise ValueError(f"node {k!r}: v_reset != 0 is not supported (Lava resets to zero)")
            bias = _arr(n, "v_leak") * dv
            # spikeplastic names populations with identifiers other than "in" (snnTorch uses "1", "3")
            name = k if (k.isidentifier() and k != "in") else f"l{sum(1 for p in pops if p.kind == 'lif') + 1}"
            pops.append(_ir.Population(
                name=name, n=dv.shape[0], kind="lif", du=du, dv=dv, vth=_arr(n, "v_threshold"), bias=bias,
                reset=side_pops.get(k, {}).get("reset", "zero"),
            ))
            rename[k] = name
    pop_names = {p.name for p in pops}
    projs: list[_ir.Projection] = []
    side_projs = side.get("projections", {})
    for k, n in graph.nodes.items():
        if not isinstance(n, (nir.Linear, nir.Affine)):
            continue
        if len(preds.get(k, [])) != 1 or len(succs.get(k, [])) != 1:
            raise ValueError(f"synapse node {k!r} must have one predecessor and one successor")
        pre, post = rename.get(preds[k][0]), rename.get(succs[k][0])
        if pre is None or post is None or post not in pop_names:
            raise ValueError(f"synapse node {k!r} must connect an Input or neuron node to a neuron node")
        if isinstance(n, nir.Affine):
            extra_bias[post] = extra_bias.get(post, 0) + _arr(n, "bias")
        sp = side_projs.get(k, {})
        rule = None
        if sp.get("rule") is not None:
            rd = dict(sp["rule"])
            rtype = rd.pop("type")
            rule = _ir.RULE_TYPES[rtype](**rd)
        mod = None
        if sp.get("modulation") is not None:
            m = sp["modulation"]
            mod = _ir.Modulation(mode=m["mode"], source=m["source"],
                                 weight=None if m["weight"] is None else np.asarray(m["weight"]),
                                 bias=None if m["bias"] is None else np.asarray(m["bias"]), eta_e=m["eta_e"])
        projs.append(_ir.Projection(
            name=k if k in side_projs else f"{pre}_to_{post}", pre=pre, post=post,
            weight=np.asarray(n.weight, dtype=np.float64), rule=rule,
            alpha=None if sp.get("alpha") is None else np.asarray(sp["alpha"]), decay=float(sp.get("decay", 0.0)),
            clip=sp.get("clip"), modulation=mod,
        ))
    # HDF5 files list nodes alphabetically: restore the exporter's order (it fixes the summation order
    # of currents, hence float64 rounding) when the sidecar knows it
    if side_pops:
        order = {n: i for i, n in enumerate(side_pops)}
        pops = [pops[0]] + sorted(pops[1:], key=lambda p: order.get(p.name, len(order)))
    if side_projs:
        order = {n: i for i, n in enumerate(side_projs)}
        projs.sort(key=lambda p: order.get(p.name, len(order)))
    if extra_bias:
        pops = [p if p.name not in extra_bias else _ir.Population(
            name=p.name, n=p.n, kind="lif", du=p.du, dv=p.dv, vth=p.vth, bias=p.bias + extra_bias[p.name], reset=p.reset)
            for p in pops]
    return _ir.NetworkIR(tuple(pops), tuple(projs), meta=dict(side.get("meta", {})))
