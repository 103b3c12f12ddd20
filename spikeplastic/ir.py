"""Backend-neutral description of a trained spiking plastic network (numpy only).

The IR is what the exporter consumes and what :func:`spikeplastic.simulate` runs: frozen
dataclasses of numpy arrays holding *mapped* (legal-range) values, never raw parameters.
It depends on numpy alone and never on torch or Lava.

Dynamics (float), per step ``t`` and projection ``pre -> post`` (see DESIGN.md)::

    a_post[t] += (w + alpha * H[t-2]) @ s_pre[t-1]          # one step of synaptic delay
    LIF:  u = u*(1-du) + a;  v = v*(1-dv) + u + bias;  s = v > vth;  v[s] = 0
    STDP: x = x*exp(-1/tau_plus) + a_plus*s_pre;  y = y*exp(-1/tau_minus) + a_minus*s_post
          e = outer(s_post, x) - outer(y, s_pre)
    Hebb: e = eta*(outer(s_post, s_pre) - H);   Oja: e = eta*s_post*(s_pre - H*s_post)
    node perturbation: a_post[t] += sigma*xi[t] (xi: the noise stream ``noise`` of a run's seed);
          x = x*exp(-1/tau) + eta*s_pre;  e = outer(sigma*xi[t+1], x);  m <- m - b, b += eta_b*(m - b)
    H[t] = clip((1-decay)*H[t-1] + m[t]*e)               (m = 1 without modulation)
    retroactive modulation: H[t] = (1-decay)*H[t-1] + m[t]*E[t-1];  E[t] = (1-eta_e)*E[t-1] + eta_e*e
    m[t] = tanh(w_m . s_source[t] + b_m)  (or the external third factor at t)

``alpha`` is ``None`` when the plastic part enters with coefficient 1 (``W = w + H``).

File format: one ``.npz`` holding a JSON header (``__ir__``) and the arrays it names.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Union

import numpy as np

__all__ = [
    "IR_VERSION",
    "Population",
    "STDPRule",
    "HebbRule",
    "OjaRule",
    "NodePerturbationRule",
    "Rule",
    "RULE_TYPES",
    "Modulation",
    "Projection",
    "NetworkIR",
    "save",
    "load",
]

IR_VERSION = 1


def _arr(x: Any, name: str, ndim: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.array(x, dtype=np.float64)
    a.setflags(write=False)
    if ndim is not None and a.ndim not in ndim:
        raise ValueError(f"{name} must have ndim in {ndim}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _num(x: Any, name: str, lo: float, hi: float, *, open_lo: bool = False) -> None:
    """Raise ``ValueError`` unless ``x`` is a finite real number in ``[lo, hi]`` (``(lo, hi]`` with open_lo)."""
    ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and bool(np.isfinite(x))
    if not ok or x < lo or x > hi or (open_lo and x == lo):
        rng = f"{'(' if open_lo else '['}{lo}, {hi}]"
        raise ValueError(f"{name} must be a finite number in {rng}, got {x!r}")


@dataclass(frozen=True)
class Population:
    """A neuron population.

    ``kind="input"``: an external source (``input_kind`` "spikes" or "current"), no dynamics.
    ``kind="lif"``: CUBA LIF with per-neuron arrays ``du, dv, vth, bias`` (shape ``[n]``) and
    ``reset`` "zero" or "subtract".
    """

    name: str
    n: int
    kind: Literal["input", "lif"] = "lif"
    du: np.ndarray | None = None
    dv: np.ndarray | None = None
    vth: np.ndarray | None = None
    bias: np.ndarray | None = None
    reset: Literal["zero", "subtract"] = "zero"
    input_kind: Literal["spikes", "current"] = "spikes"

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"Population {self.name!r}: n must be an int >= 1, got {self.n!r}")
        if self.kind not in ("input", "lif"):
            raise ValueError(f"Population {self.name!r}: kind must be 'input' or 'lif', got {self.kind!r}")
        if self.kind == "lif":
            for k in ("du", "dv", "vth", "bias"):
                v = getattr(self, k)
                if v is None:
                    raise ValueError(f"Population {self.name!r}: {k} is required for a LIF population")
                a = _arr(v, f"Population {self.name!r}: {k}", (0, 1))
                if a.ndim == 1 and a.shape != (self.n,):
                    raise ValueError(f"Population {self.name!r}: {k} must be a scalar or have shape ({self.n},), got {a.shape}")
                a = np.broadcast_to(a, (self.n,)).copy()
                a.setflags(write=False)
                object.__setattr__(self, k, a)
            for k in ("du", "dv"):
                if np.any((getattr(self, k) < 0) | (getattr(self, k) > 1)):
                    raise ValueError(f"Population {self.name!r}: {k} must lie in [0, 1], got {getattr(self, k)}")
            if np.any(self.vth <= 0):  # type: ignore[operator]
                raise ValueError(f"Population {self.name!r}: vth must be > 0, got {self.vth}")
            if self.reset not in ("zero", "subtract"):
                raise ValueError(f"Population {self.name!r}: reset must be 'zero' or 'subtract', got {self.reset!r}")
        elif self.input_kind not in ("spikes", "current"):
            raise ValueError(f"input_kind must be 'spikes' or 'current', got {self.input_kind!r}")


@dataclass(frozen=True)
class STDPRule:
    """Pair STDP with traces that include the current spike (Lava ``dw = y0*x1 - x0*y1``)."""

    a_plus: float
    a_minus: float
    tau_plus: float
    tau_minus: float
    type: Literal["stdp"] = "stdp"

    def __post_init__(self) -> None:
        for k in ("tau_plus", "tau_minus"):
            _num(getattr(self, k), f"STDPRule.{k}", 1.0, np.inf)  # time constants of >= 1 step
        for k in ("a_plus", "a_minus"):
            _num(getattr(self, k), f"STDPRule.{k}", 0.0, np.inf)


@dataclass(frozen=True)
class HebbRule:
    """Hebb with decay: ``e = eta*(outer(post, pre) - H)``."""

    eta: float
    type: Literal["hebb"] = "hebb"

    def __post_init__(self) -> None:
        _num(self.eta, "HebbRule.eta", 0.0, 1.0)


@dataclass(frozen=True)
class OjaRule:
    """Oja: ``e = eta * post * (pre - H * post)``."""

    eta: float
    type: Literal["oja"] = "oja"

    def __post_init__(self) -> None:
        _num(self.eta, "OjaRule.eta", 0.0, 1.0)


@dataclass(frozen=True)
class NodePerturbationRule:
    """Node perturbation (Fiete & Seung 2006); needs a modulation (the third factor).

    The projection adds ``sigma*xi[t]`` to its postsynaptic input at step ``t``, ``xi`` being the
    counter-based stream named ``noise`` (``spikeplastic.functional.perturbation_noise``) of the run's
    seed; ``x = x*exp(-1/tau) + eta*s_pre``, ``e = outer(sigma*xi[t+1], x)``; with ``baseline`` the
    third factor is ``m - b``, ``b += eta_b*(m - b)``.
    """

    sigma: float
    tau: float
    eta: float
    eta_b: float
    baseline: bool = True
    noise: str = "uniform-hash32"
    type: Literal["node_perturbation"] = "node_perturbation"

    def __post_init__(self) -> None:
        _num(self.sigma, "NodePerturbationRule.sigma", 0.0, np.inf)
        _num(self.tau, "NodePerturbationRule.tau", 1.0, np.inf)
        _num(self.eta, "NodePerturbationRule.eta", 0.0, np.inf)
        _num(self.eta_b, "NodePerturbationRule.eta_b", 0.0, 1.0)
        if not isinstance(self.baseline, bool):
            raise ValueError(f"NodePerturbationRule.baseline must be a bool, got {self.baseline!r}")
        if not isinstance(self.noise, str):
            raise ValueError(f"NodePerturbationRule.noise must be a noise stream name, got {self.noise!r}")


Rule = Union[STDPRule, HebbRule, OjaRule, NodePerturbationRule]
#: rule type tag -> IR class
RULE_TYPES: dict[str, type] = {"stdp": STDPRule, "hebb": HebbRule, "oja": OjaRule,
                               "node_perturbation": NodePerturbationRule}


@dataclass(frozen=True)
class Modulation:
    """Third factor ``m[t] = tanh(weight . s_source[t] + bias)`` (``source=None``: external input).

    ``mode="simple"`` gates the update directly; ``"retroactive"`` gates an eligibility trace with
    rate ``eta_e``. ``weight`` is ``[n_source]`` (one signal per sample) or ``[n_post, n_source]``
    (one per postsynaptic neuron); ``bias`` is a scalar or ``[n_post]``.
    """

    mode: Literal["simple", "retroactive"]
    source: str | None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    eta_e: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("simple", "retroactive"):
            raise ValueError(f"Modulation.mode must be 'simple' or 'retroactive', got {self.mode!r}")
        _num(self.eta_e, "Modulation.eta_e", 0.0, 1.0)
        if self.source is not None:
            if self.weight is None or self.bias is None:
                raise ValueError("Modulation with a source population needs weight and bias")
            object.__setattr__(self, "weight", _arr(self.weight, "Modulation.weight", (1, 2)))
            object.__setattr__(self, "bias", _arr(self.bias, "Modulation.bias", (0, 1)))


@dataclass(frozen=True)
class Projection:
    """Connection ``pre -> post`` with fixed weight ``[n_post, n_pre]`` and optional plasticity."""

    name: str
    pre: str
    post: str
    weight: np.ndarray
    rule: Rule | None = None
    alpha: np.ndarray | None = None
    decay: float = 0.0
    clip: float | None = None
    modulation: Modulation | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _arr(self.weight, f"{self.name}.weight", (2,)))
        if self.alpha is not None:
            a = _arr(self.alpha, f"{self.name}.alpha", (0, 2))
            if a.ndim == 2 and a.shape != self.weight.shape:
                raise ValueError(f"{self.name}.alpha must be a scalar or {self.weight.shape}, got {a.shape}")
            object.__setattr__(self, "alpha", a)
        _num(self.decay, f"{self.name}.decay", 0.0, 1.0)
        if self.clip is not None:
            _num(self.clip, f"{self.name}.clip", 0.0, np.inf, open_lo=True)
        if self.rule is not None and not isinstance(self.rule, tuple(RULE_TYPES.values())):
            raise ValueError(f"{self.name}.rule must be an STDPRule, HebbRule, OjaRule, NodePerturbationRule or None, "
                             f"got {type(self.rule).__name__}")
        if self.modulation is not None and not isinstance(self.modulation, Modulation):
            raise ValueError(f"{self.name}.modulation must be a Modulation or None, got {type(self.modulation).__name__}")
        if self.modulation is not None and self.rule is None:
            raise ValueError(f"{self.name}: modulation needs a plasticity rule")
        if isinstance(self.rule, NodePerturbationRule) and self.modulation is None:
            raise ValueError(f"{self.name}: a NodePerturbationRule needs a modulation (its third factor)")

    @property
    def plastic(self) -> bool:
        return self.rule is not None


@dataclass(frozen=True)
class NetworkIR:
    """A whole network: populations (the first ``kind="input"`` one is the input) and projections."""

    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = IR_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "populations", tuple(self.populations))
        object.__setattr__(self, "projections", tuple(self.projections))
        names = [p.name for p in self.populations]
        if len(set(names)) != len(names):
            raise ValueError(f"population names must be unique, got {names}")
        pnames = [p.name for p in self.projections]
        if len(set(pnames)) != len(pnames):
            raise ValueError(f"projection names must be unique, got {pnames}")
        pops = {p.name: p for p in self.populations}
        if sum(p.kind == "input" for p in self.populations) != 1:
            raise ValueError("a NetworkIR needs exactly one population of kind 'input'")
        for pr in self.projections:
            for end in (pr.pre, pr.post):
                if end not in pops:
                    raise ValueError(f"projection {pr.name!r} refers to unknown population {end!r}")
            if pops[pr.post].kind == "input":
                raise ValueError(f"projection {pr.name!r} targets the input population")
            want = (pops[pr.post].n, pops[pr.pre].n)
            if pr.weight.shape != want:
                raise ValueError(f"projection {pr.name!r}: weight must have shape {want}, got {pr.weight.shape}")
            m = pr.modulation
            if m is not None and m.source is not None:
                if m.source not in pops:
                    raise ValueError(f"projection {pr.name!r}: modulation source {m.source!r} is unknown")
                n_src, n_post = pops[m.source].n, pops[pr.post].n
                w_ok = m.weight.shape in ((n_src,), (n_post, n_src))  # type: ignore[union-attr]
                b_ok = m.bias.shape == (() if m.weight.ndim == 1 else (n_post,))  # type: ignore[union-attr]
                if not (w_ok and b_ok):
                    raise ValueError(
                        f"projection {pr.name!r}: modulation weight/bias must be [{n_src}] and a scalar, or "
                        f"[{n_post}, {n_src}] and [{n_post}], got {m.weight.shape} and {m.bias.shape}"  # type: ignore[union-attr]
                    )

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def input(self) -> Population:
        return next(p for p in self.populations if p.kind == "input")

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able header and a flat dict of arrays (keys referenced from the header)."""
        arrays: dict[str, np.ndarray] = {}

        def enc(obj: Any, path: str) -> Any:
            if isinstance(obj, np.ndarray):
                arrays[path] = np.asarray(obj)
                return {"__array__": path}
            if hasattr(obj, "__dataclass_fields__"):
                out = {"__type__": type(obj).__name__}
                for f in fields(obj):
                    out[f.name] = enc(getattr(obj, f.name), f"{path}.{f.name}")
                return out
            if isinstance(obj, (list, tuple)):
                return [enc(o, f"{path}.{i}") for i, o in enumerate(obj)]
            if isinstance(obj, dict):
                return {k: enc(v, f"{path}.{k}") for k, v in obj.items()}
            if isinstance(obj, (np.floating, np.integer)):
                return obj.item()
            return obj

        return enc(self, "ir"), arrays

    @classmethod
    def from_dict(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> "NetworkIR":
        types = {c.__name__: c for c in (NetworkIR, Population, *RULE_TYPES.values(), Modulation, Projection)}

        def dec(obj: Any) -> Any:
            if isinstance(obj, dict):
                if "__array__" in obj:
                    return np.array(arrays[obj["__array__"]])
                if "__type__" in obj:
                    t = obj["__type__"]
                    if t not in types:
                        raise ValueError(f"unknown IR node type {t!r}")
                    kw = {k: dec(v) for k, v in obj.items() if k != "__type__"}
                    if t == "NetworkIR":
                        kw["populations"] = tuple(kw["populations"])
                        kw["projections"] = tuple(kw["projections"])
                    return types[t](**kw)
                return {k: dec(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [dec(o) for o in obj]
            return obj

        try:
            ir = dec(header)
        except (TypeError, KeyError, AttributeError) as e:  # missing/unknown fields or arrays
            raise ValueError(f"malformed IR: {type(e).__name__}: {e}") from e
        if not isinstance(ir, NetworkIR):
            raise ValueError("file does not hold a NetworkIR")
        if ir.version > IR_VERSION:
            raise ValueError(f"IR version {ir.version} is newer than this spikeplastic supports ({IR_VERSION})")
        return ir


def save(ir: NetworkIR, path: str | os.PathLike[str]) -> None:
    """Write ``ir`` to one ``.npz`` file."""
    header, arrays = ir.to_dict()
    with open(path, "wb") as fh:
        np.savez(fh, __ir__=np.array(json.dumps(header)), **arrays)


def load(path: str | os.PathLike[str]) -> NetworkIR:
    """Read a :class:`NetworkIR` written by :func:`save`.

    Raises:
        FileNotFoundError: no file at ``path``. ValueError: not a readable IR file (empty,
        truncated, corrupt, text, another kind of file); the message is one line naming the file.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"no IR file at {p!r}")

    def unreadable(reason: str) -> ValueError:
        return ValueError(f"IR file {p!r} cannot be read: {reason} (expected an .npz written by spikeplastic.ir.save)")

    size = os.path.getsize(p)
    if size == 0:
        raise unreadable("the file is empty (0 bytes)")
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic[:4] != b"PK\x03\x04":
        what = "a single .npy array" if magic == b"\x93NUMPY" else f"it starts with {magic!r}"
        raise unreadable(f"not an .npz archive ({what})")
    if not zipfile.is_zipfile(p):
        raise unreadable(f"the file is truncated or corrupt (an incomplete zip archive of {size} bytes)")
    try:
        with np.load(p, allow_pickle=False) as z:
            raw_header = z["__ir__"] if "__ir__" in z.files else None
            arrays = {k: z[k] for k in z.files if k != "__ir__"}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        first = next((line for line in str(e).splitlines() if line.strip()), "")
        raise unreadable(f"the file is corrupt ({type(e).__name__}{': ' + first[:200] if first else ''})") from None
    if raw_header is None:
        raise unreadable("a zip archive without an '__ir__' header (not a spikeplastic IR file)")
    try:
        header = json.loads(str(raw_header))
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise unreadable("its '__ir__' header is not a JSON object")
    return NetworkIR.from_dict(header, arrays)
