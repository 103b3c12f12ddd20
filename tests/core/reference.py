"""Independent float64 numpy implementation of the DESIGN.md dynamics contract.

Written from the contract text alone; it never imports spikeplastic. The export tests may reuse it
(``spec_from_ir`` reads a ``spikeplastic.ir.NetworkIR`` by attribute only).

A network *spec* is plain data::

    n_in: int
    pops: {name: {"du": [n], "dv": [n], "vth": [n], "bias": [n], "reset": "zero" | "subtract"}}
    projs: [{"pre": str, "post": str, "w": [n_post, n_pre],
             "rule": None | {"kind": "stdp", "a_plus", "a_minus", "tau_plus", "tau_minus"}
                          | {"kind": "hebb" | "oja", "eta"},
             "alpha": None | scalar | [n_post, n_pre],   (None: W = w + H)
             "decay": float, "clip": None | float,
             "mod": None | {"mode": "simple" | "retroactive", "source": str | None,
                            "weight": [n_src] | [n_post, n_src], "bias": scalar | [n_post],
                            "eta_e": float}}]

Contract, per step t = 1..T (population "in" spikes s_in[t] = x[t]; everything zero at t <= 0):

    a_post[t]  = sum over projections (w + alpha*H[t-2]) @ s_pre[t-1]
    u = u*(1-du) + a;  v = v*(1-dv) + u + bias  (- vth*s[t-1] for subtract reset)
    s = v > vth;  v[s] = 0 (zero reset; u is never reset)
    STDP  x = x*exp(-1/tau+) + A+ s_pre[t];  y = y*exp(-1/tau-) + A- s_post[t]
          e = outer(s_post[t], x) - outer(y, s_pre[t])
    Hebb  e = eta*(outer(s_post, s_pre) - H[t-1]);   Oja  e_ji = eta*post_j*(pre_i - H_ji*post_j)
    m[t]  = 1 (no modulation) | tanh(w_m . s_src[t] + b_m) | external third factor at t
    simple:      H[t] = (1-decay)*H[t-1] + m[t]*e[t]
    retroactive: H[t] = (1-decay)*H[t-1] + m[t]*E[t-1];  E[t] = (1-eta_e)*E[t-1] + eta_e*e[t]
    H[t] = clip(H[t], -clip, clip);  recorded W[t] = w + alpha*H[t]
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["simulate_reference", "spec_from_ir", "proj_name"]


def proj_name(p: dict[str, Any]) -> str:
    return f"{p['pre']}_to_{p['post']}"


def _pop(P: dict[str, Any]) -> dict[str, Any]:
    """Per-neuron float64 arrays ``[n]`` (scalars broadcast; ``n`` from the arrays or ``P["n"]``)."""
    n = P.get("n")
    if n is None:
        n = max(np.size(P[q]) for q in ("du", "dv", "vth", "bias"))
    out = {q: np.broadcast_to(np.asarray(P[q], np.float64), (n,)).copy() for q in ("du", "dv", "vth", "bias")}
    out["reset"] = P.get("reset", "zero")
    return out


def _lif(u, v, s_prev, a, P):
    u = u * (1.0 - P["du"]) + a
    v = v * (1.0 - P["dv"]) + u + P["bias"]
    if P["reset"] == "subtract":
        v = v - P["vth"] * s_prev
    s = (v > P["vth"]).astype(np.float64)
    if P["reset"] == "zero":
        v = np.where(s > 0, 0.0, v)
    return u, v, s


def _candidate(rule, st, pre, post, H):
    """The rule's update candidate e ``[n_post, n_pre]`` and the new trace state."""
    kind = rule["kind"]
    if kind == "stdp":
        x = st["x"] * math.exp(-1.0 / rule["tau_plus"]) + rule["a_plus"] * pre
        y = st["y"] * math.exp(-1.0 / rule["tau_minus"]) + rule["a_minus"] * post
        return np.outer(post, x) - np.outer(y, pre), {"x": x, "y": y}
    eta = rule["eta"]
    if kind == "hebb":
        return eta * (np.outer(post, pre) - H), st
    if kind == "oja":  # e_ji = eta * post_j * (pre_i - H_ji * post_j)
        return eta * post[:, None] * (pre[None, :] - H * post[:, None]), st
    raise ValueError(f"unknown rule kind {kind!r}")


def simulate_reference(
    n_in: int,
    pops: dict[str, dict[str, Any]],
    projs: list[dict[str, Any]],
    x: np.ndarray,
    third: np.ndarray | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Run the contract on ``x`` ``[T, B, n_in]`` (float64).

    Returns ``{"spikes", "v", "u": {pop: [T, B, n]}, "weights": {proj: [T, B, n_post, n_pre]},
    "traces": {proj: (x [T,B,n_pre], y [T,B,n_post])}, "m": {proj: [T, B, ...]}}`` where index
    ``k`` holds step ``t = k + 1`` and ``weights[k]`` is ``W[t]`` after step t's plasticity.
    """
    x = np.asarray(x, dtype=np.float64)
    T, B, _ = x.shape
    pops = {k: _pop(P) for k, P in pops.items()}
    sizes = {"in": n_in, **{k: len(P["vth"]) for k, P in pops.items()}}
    out: dict[str, dict[str, np.ndarray]] = {
        "spikes": {k: np.zeros((T, B, n)) for k, n in sizes.items() if k != "in"},
        "v": {k: np.zeros((T, B, n)) for k, n in sizes.items() if k != "in"},
        "u": {k: np.zeros((T, B, n)) for k, n in sizes.items() if k != "in"},
        "weights": {}, "traces": {}, "m": {},
    }
    for p in projs:
        if p.get("rule") is not None:
            out["weights"][proj_name(p)] = np.zeros((T, B) + np.shape(p["w"]))
            if p["rule"]["kind"] == "stdp":
                out["traces"][proj_name(p)] = (np.zeros((T, B, sizes[p["pre"]])), np.zeros((T, B, sizes[p["post"]])))
            if p.get("mod") is not None:
                out["m"][proj_name(p)] = [[None] * T for _ in range(B)]
    for b in range(B):
        s = {k: np.zeros(n) for k, n in sizes.items()}
        u = {k: np.zeros(sizes[k]) for k in pops}
        v = {k: np.zeros(sizes[k]) for k in pops}
        H1 = {proj_name(p): np.zeros(np.shape(p["w"])) for p in projs}  # H[t-1]
        H2 = {proj_name(p): np.zeros(np.shape(p["w"])) for p in projs}  # H[t-2]
        E = {proj_name(p): np.zeros(np.shape(p["w"])) for p in projs}
        rs = {proj_name(p): {"x": np.zeros(sizes[p["pre"]]), "y": np.zeros(sizes[p["post"]])} for p in projs}
        for t in range(1, T + 1):
            a = {k: np.zeros(sizes[k]) for k in pops}
            for p in projs:
                n = proj_name(p)
                w = np.asarray(p["w"], np.float64)
                if p.get("rule") is None:
                    W = w
                else:
                    al = 1.0 if p.get("alpha") is None else np.asarray(p["alpha"], np.float64)
                    W = w + al * H2[n]
                a[p["post"]] = a[p["post"]] + W @ s[p["pre"]]
            new_s = {"in": x[t - 1, b].copy()}
            for k, P in pops.items():
                u[k], v[k], new_s[k] = _lif(u[k], v[k], s[k], a[k], P)
                out["spikes"][k][t - 1, b] = new_s[k]
                out["v"][k][t - 1, b] = v[k]
                out["u"][k][t - 1, b] = u[k]
            s = new_s
            for p in projs:
                if p.get("rule") is None:
                    continue
                n = proj_name(p)
                pre, post = s[p["pre"]], s[p["post"]]
                e, rs[n] = _candidate(p["rule"], rs[n], pre, post, H1[n])
                mod = p.get("mod")
                if mod is None:
                    m = 1.0
                elif mod["source"] is None:
                    m = np.asarray(third[t - 1, b], np.float64)
                    m = m[:, None] if m.ndim == 1 else m
                else:
                    wm = np.asarray(mod["weight"], np.float64)
                    z = wm @ s[mod["source"]] + np.asarray(mod["bias"], np.float64)
                    m = np.tanh(z)
                    m = m[:, None] if np.ndim(m) == 1 else m
                if mod is not None:
                    out["m"][n][b][t - 1] = np.asarray(m, np.float64).reshape(-1)
                keep = 1.0 - p.get("decay", 0.0)
                if mod is not None and mod["mode"] == "retroactive":
                    Hn = keep * H1[n] + m * E[n]
                    E[n] = (1.0 - mod["eta_e"]) * E[n] + mod["eta_e"] * e
                else:
                    Hn = keep * H1[n] + m * e
                if p.get("clip") is not None:
                    Hn = np.clip(Hn, -p["clip"], p["clip"])
                H2[n], H1[n] = H1[n], Hn
                al = 1.0 if p.get("alpha") is None else np.asarray(p["alpha"], np.float64)
                out["weights"][n][t - 1, b] = np.asarray(p["w"], np.float64) + al * Hn
                if n in out["traces"]:
                    out["traces"][n][0][t - 1, b] = rs[n]["x"]
                    out["traces"][n][1][t - 1, b] = rs[n]["y"]
    out["m"] = {k: np.stack([np.stack(v[b]) for b in range(B)], axis=1) for k, v in out["m"].items()}
    return out


def spec_from_ir(net_ir: Any) -> tuple[int, dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """``(n_in, pops, projs)`` from an object shaped like ``spikeplastic.ir.NetworkIR`` (attributes only)."""
    n_in = next(p.n for p in net_ir.populations if p.kind == "input")
    pops = {
        p.name: {"du": np.array(p.du), "dv": np.array(p.dv), "vth": np.array(p.vth), "bias": np.array(p.bias), "reset": p.reset}
        for p in net_ir.populations if p.kind == "lif"
    }
    projs = []
    for pr in net_ir.projections:
        rule = None
        if pr.rule is not None:
            if pr.rule.type == "stdp":
                rule = {"kind": "stdp", "a_plus": pr.rule.a_plus, "a_minus": pr.rule.a_minus,
                        "tau_plus": pr.rule.tau_plus, "tau_minus": pr.rule.tau_minus}
            else:
                rule = {"kind": pr.rule.type, "eta": pr.rule.eta}
        mod = None
        if pr.modulation is not None:
            m = pr.modulation
            mod = {"mode": m.mode, "source": m.source, "weight": None if m.weight is None else np.array(m.weight),
                   "bias": None if m.bias is None else np.array(m.bias), "eta_e": m.eta_e}
        projs.append({"pre": pr.pre, "post": pr.post, "w": np.array(pr.weight), "rule": rule,
                      "alpha": None if pr.alpha is None else np.array(pr.alpha), "decay": pr.decay,
                      "clip": pr.clip, "mod": mod})
    return n_in, pops, projs
