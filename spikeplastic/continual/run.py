"""The continual benchmark's harness: methods, one run per (method, seed), results as JSON and markdown.

::

    from spikeplastic.continual import ContinualConfig, run_benchmark
    res = run_benchmark(ContinualConfig(task="continual-permuted-digits"), ["finetune", "ewc"], seeds=[0, 1, 2])

Every method sees the same task sequence (tasks one after another, each task's training split), is scored
on every task's test split after each task (``R[i, j]``, :mod:`.metrics`) and has about the same number of
trainable parameters (:data:`METHODS` says what each one updates, and when).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_int
from ..baselines import count_parameters
from .data import CONTINUAL_TASKS, ContinualTask, TaskData, make_continual_task
from .ewc import EWCAnchor, ewc_penalty, make_anchor
from .learners import MLP, PlasticLearner, RatePlasticLearner, SpikingPlasticLearner, repeat_state
from .metrics import average_accuracy, backward_transfer, forgetting, learning_accuracy, mean_ci95

__all__ = ["ContinualConfig", "METHODS", "MethodSpec", "QUICK", "run_method", "run_benchmark", "write_results",
           "count_parameters"]


@dataclass(frozen=True)
class MethodSpec:
    """A method: ``updates`` says what it changes while the task sequence runs."""

    updates: str
    plastic: bool = False


METHODS: Mapping[str, MethodSpec] = MappingProxyType({
    "finetune": MethodSpec("all MLP weights by Adam on each task's cross-entropy, one task after another"),
    "ewc": MethodSpec("all MLP weights by Adam on the task's cross-entropy + lambda/2 sum_k sum_i F_k,i "
                      "(theta_i - theta*_k,i)^2 over the earlier tasks k (diagonal Fisher of the model's own "
                      "predictive distribution); lambda chosen on the validation splits"),
    "multitask": MethodSpec("all MLP weights by Adam on the union of the tasks seen so far (joint training: "
                            "the upper bound, not a continual learner)"),
    "rate-oja": MethodSpec("first task: embedding, alpha, eta meta-trained by backprop on episodes with shuffled "
                           "labels; then only the plastic state H (Oja's rule, output clamped to the label)",
                           plastic=True),
    "rate-oja-decay": MethodSpec("as rate-oja, with H decaying towards 0 (the weight towards w) at rate "
                                 "1/decay_examples per presented example", plastic=True),
    "snn-stdp": MethodSpec("first task: embedding, encoder, readout w and alpha, STDP amplitudes and taus, kappa "
                           "meta-trained by surrogate-gradient BPTT on episodes with shuffled labels; then only the "
                           "plastic state H (pair STDP, teaching spikes on the label's output neuron)", plastic=True),
    "snn-stdp-decay": MethodSpec("as snn-stdp, with H decaying towards 0 at rate 1/(decay_examples * frame) per "
                                 "spiking step", plastic=True),
})


@dataclass(frozen=True, kw_only=True)
class ContinualConfig:
    """Settings of one benchmark (every method reads the fields it needs).

    Backprop methods: ``hidden`` tanh units, ``epochs`` passes of Adam (``lr``, minibatch ``batch``) per task
    (``multitask``: per stage, over the union), ``lambdas`` EWC's sweep. Plastic methods: ``meta_steps`` Adam
    steps (``meta_lr``) on batches of ``meta_batch`` episodes of the first task, each ``shots`` times the
    task's classes labelled examples (``support="random"``: drawn at random, so class counts vary as in a
    lifetime; ``"balanced"``: exactly ``shots`` per class; labels mapped to random output units) then
    ``queries`` scored ones; ``decay_examples``
    the time constant (in presented examples) of the ``-decay`` variants. ``lifetime_examples``: cap on the
    training examples per task every method sees (``None``: all).
    """

    task: str = "continual-permuted-digits"
    n_tasks: int | None = None
    hidden: int = 100
    epochs: int = 20
    batch: int = 32
    lr: float = 1e-3
    lambdas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
    rate_channels: int = 100
    snn_channels: int = 88
    snn_steps: int = 4
    snn_gap: int = 2
    meta_steps: int = 300
    snn_meta_steps: int = 60
    meta_batch: int = 16
    meta_lr: float = 3e-3
    shots: int = 3
    support: str = "random"
    queries: int = 16
    decay_examples: float = 50.0
    lifetime_examples: int | None = None

    def __post_init__(self) -> None:
        if self.support not in ("random", "balanced"):
            raise ValueError(f"support: expected 'random' or 'balanced', got {self.support!r}")
        if self.task not in CONTINUAL_TASKS:
            raise ValueError(f"task: unknown continual task {self.task!r}; valid ids: {sorted(CONTINUAL_TASKS)}")
        for name in ("hidden", "epochs", "batch", "rate_channels", "snn_channels", "snn_steps", "snn_gap",
                     "meta_batch", "shots", "queries"):
            check_int(name, getattr(self, name))
        for name in ("meta_steps", "snn_meta_steps"):
            check_int(name, getattr(self, name), minimum=0)
        if self.lifetime_examples is not None:
            check_int("lifetime_examples", self.lifetime_examples)
        for name in ("lr", "meta_lr", "decay_examples"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
        lams = tuple(self.lambdas)
        if not lams or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in lams):
            raise ValueError(f"lambdas: expected a non-empty sequence of finite numbers >= 0, got {self.lambdas!r}")
        object.__setattr__(self, "lambdas", tuple(float(v) for v in lams))


#: a CI-sized configuration (3 tasks, few epochs and meta-steps, 150 examples per task)
QUICK: Mapping[str, Any] = MappingProxyType(dict(n_tasks=3, epochs=5, meta_steps=40, snn_meta_steps=10,
                                                 meta_batch=8, shots=3, queries=8, lifetime_examples=150))


# ---- helpers -------------------------------------------------------------------------------------

def _mask(classes: Sequence[int], n: int, n_classes: int) -> Tensor:
    m = torch.zeros(n, n_classes, dtype=torch.bool)
    m[:, list(classes)] = True
    return m


def _masked_ce(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    return F.cross_entropy(logits.masked_fill(~mask, float("-inf")), y)


def _accuracy(logits: Tensor, y: Tensor, classes: Sequence[int]) -> float:
    pred = logits.masked_fill(~_mask(classes, logits.shape[0], logits.shape[1]), float("-inf")).argmax(-1)
    return float((pred == y).float().mean())


def _train(seq: ContinualTask, t: int, cfg: ContinualConfig, gen: torch.Generator) -> TaskData:
    """Task ``t`` with its training split in a fixed random order (capped at ``lifetime_examples``)."""
    d = seq.tasks[t]
    order = torch.randperm(d.x_train.shape[0], generator=gen)[: cfg.lifetime_examples]
    return dataclasses.replace(d, x_train=d.x_train[order], y_train=d.y_train[order])


def _fit(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor, cfg: ContinualConfig, gen: torch.Generator,
         anchors: Sequence[EWCAnchor] = (), lam: float = 0.0) -> None:
    """``epochs`` of Adam on ``CE(masked logits) + ewc_penalty(anchors, lam)``."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    params = dict(model.named_parameters())
    for _ in range(cfg.epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for s in range(0, x.shape[0], cfg.batch):
            idx = order[s:s + cfg.batch]
            loss = _masked_ce(model(x[idx]), y[idx], mask[idx])
            if anchors:
                loss = loss + ewc_penalty(params, anchors, lam)
            opt.zero_grad()
            loss.backward()
            opt.step()


def _score_mlp(model: nn.Module, seq: ContinualTask, split: str) -> list[float]:
    with torch.no_grad():
        return [_accuracy(model(d.split(split)[0]), d.split(split)[1], d.classes) for d in seq.tasks]


def _run_backprop(method: str, seq: ContinualTask, cfg: ContinualConfig, seed: int, lam: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """``(R_test, R_val, params)`` of ``finetune`` / ``ewc`` (at ``lam``) / ``multitask``."""
    torch.manual_seed(seed)
    model = MLP(seq.n_in, cfg.hidden, seq.n_classes)
    gen = torch.Generator().manual_seed(seed + 1)
    T = seq.n_tasks
    R, V = np.zeros((T, T)), np.zeros((T, T))
    anchors: list[EWCAnchor] = []
    seen: list[TaskData] = []
    for i in range(T):
        d = _train(seq, i, cfg, gen)
        seen.append(d)
        if method == "multitask":
            x = torch.cat([s.x_train for s in seen])
            y = torch.cat([s.y_train for s in seen])
            mask = torch.cat([_mask(s.classes, s.x_train.shape[0], seq.n_classes) for s in seen])
        else:
            x, y, mask = d.x_train, d.y_train, _mask(d.classes, d.x_train.shape[0], seq.n_classes)
        _fit(model, x, y, mask, cfg, gen, anchors, lam)
        if method == "ewc":
            anchors.append(make_anchor(model, d.x_train, d.classes))
        R[i], V[i] = _score_mlp(model, seq, "test"), _score_mlp(model, seq, "val")
    return R, V, count_parameters(model)


def _make_learner(method: str, seq: ContinualTask, cfg: ContinualConfig) -> PlasticLearner:
    decayed = method.endswith("-decay")
    if method.startswith("rate-"):
        return RatePlasticLearner(seq.n_in, seq.n_classes, channels=cfg.rate_channels,
                                  decay=1.0 / cfg.decay_examples if decayed else 0.0)
    frame = cfg.snn_steps + cfg.snn_gap
    return SpikingPlasticLearner(seq.n_in, seq.n_classes, channels=cfg.snn_channels, steps_per_image=cfg.snn_steps,
                                 gap_steps=cfg.snn_gap, decay=1.0 / (cfg.decay_examples * frame) if decayed else 0.0)


def meta_train(learner: PlasticLearner, d: TaskData, n_classes: int, cfg: ContinualConfig, steps: int,
               gen: torch.Generator) -> list[float]:
    """Train ``learner``'s fixed parameters on episodes of task ``d``'s training split; returns the losses.

    Episode: the task's classes mapped to random distinct output units (so no fixed weight can hold the
    answer), ``shots * classes`` labelled examples (``cfg.support``) in random order given to a fresh learner, then
    ``queries`` examples scored from the resulting state (cross-entropy over the episode's units).
    """
    opt = torch.optim.Adam(learner.parameters(), lr=cfg.meta_lr)
    x, y = d.x_train, d.y_train
    classes = list(d.classes)
    by_class = [torch.nonzero(y == c).flatten() for c in classes]
    B, K, Q, C = cfg.meta_batch, cfg.shots, cfg.queries, len(classes)
    losses = []
    for _ in range(steps):
        units = torch.stack([torch.randperm(n_classes, generator=gen)[:C] for _ in range(B)])       # [B, C]
        lut = torch.full((B, n_classes), -1, dtype=torch.long)
        lut[torch.arange(B)[:, None], torch.tensor(classes)[None, :]] = units
        if cfg.support == "balanced":
            sup = torch.stack([torch.cat([ix[torch.randint(len(ix), (K,), generator=gen)] for ix in by_class])
                               for _ in range(B)], dim=1)                                         # [K*C, B]
        else:
            sup = torch.randint(len(y), (K * C, B), generator=gen)
        sup = sup[torch.randperm(K * C, generator=gen)]
        qry = torch.randint(len(y), (B, Q), generator=gen)                                         # [B, Q]
        ys = lut[torch.arange(B)[None, :], y[sup]]
        yq = lut[torch.arange(B)[:, None], y[qry]].reshape(B * Q)
        mask = torch.zeros(B, n_classes, dtype=torch.bool)
        mask[torch.arange(B)[:, None], units] = True
        state = learner.learn(learner.initial_state(B), x[sup], ys)
        logits = learner.logits(repeat_state(state, Q), x[qry].reshape(B * Q, -1))
        loss = _masked_ce(logits, yq, mask.repeat_interleave(Q, dim=0))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learner.parameters(), 10.0)
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _run_plastic(method: str, seq: ContinualTask, cfg: ContinualConfig, seed: int) -> tuple[np.ndarray, int, dict[str, Any]]:
    torch.manual_seed(seed)
    learner = _make_learner(method, seq, cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    steps = cfg.meta_steps if method.startswith("rate-") else cfg.snn_meta_steps
    t0 = time.perf_counter()
    losses = meta_train(learner, seq.tasks[0], seq.n_classes, cfg, steps, gen)
    t_meta = time.perf_counter() - t0
    T = seq.n_tasks
    R = np.zeros((T, T))
    with torch.no_grad():
        state = learner.initial_state(1)
        for i in range(T):
            d = _train(seq, i, cfg, gen)
            state = learner.learn(state, d.x_train.unsqueeze(1), d.y_train.unsqueeze(1))
            for j, e in enumerate(seq.tasks):
                R[i, j] = _accuracy(learner.logits(repeat_state(state, e.x_test.shape[0]), e.x_test), e.y_test,
                                    e.classes)
    extra = {"meta_loss_first": losses[0] if losses else None, "meta_loss_last10": float(np.mean(losses[-10:]))
             if losses else None, "meta_seconds": t_meta}
    return R, count_parameters(learner), extra


def run_method(method: str, cfg: ContinualConfig, seed: int) -> dict[str, Any]:
    """One method on one seed's task sequence: ``R`` (test), ACC, BWT, forgetting, parameter count, wall time
    (``ewc``: also the lambda sweep, each lambda's validation and test ACC, and the chosen lambda)."""
    if method not in METHODS:
        raise ValueError(f"method: unknown continual method {method!r}; valid: {list(METHODS)} or 'all'")
    check_int("seed", seed, minimum=0)
    seq = make_continual_task(cfg.task, seed, cfg.n_tasks)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"method": method, "seed": seed, "lambda": None}
    if method == "ewc":
        sweep = []
        best: tuple[float, np.ndarray, float, int] | None = None
        for lam in cfg.lambdas:
            t1 = time.perf_counter()
            R, V, n = _run_backprop("ewc", seq, cfg, seed, lam)
            val_acc = average_accuracy(V)
            sweep.append({"lambda": lam, "val_acc": val_acc, "test_acc": average_accuracy(R),
                          "test_forgetting": forgetting(R), "seconds": time.perf_counter() - t1})
            if best is None or val_acc > best[0]:
                best = (val_acc, R, lam, n)
        assert best is not None
        _, R, lam, n = best
        out.update({"lambda": lam, "sweep": sweep,
                    "wall_s_chosen": next(s["seconds"] for s in sweep if s["lambda"] == lam)})
    elif METHODS[method].plastic:
        R, n, extra = _run_plastic(method, seq, cfg, seed)
        out.update(extra)
    else:
        R, _, n = _run_backprop(method, seq, cfg, seed)
    out.update({"R": R.tolist(), "acc": average_accuracy(R), "la": learning_accuracy(R), "bwt": backward_transfer(R),
                "forgetting": forgetting(R), "params": n, "wall_s": time.perf_counter() - t0})
    return out


def run_benchmark(cfg: ContinualConfig, methods: Sequence[str], seeds: Sequence[int],
                  out: str | Path | None = None, log: Any = None) -> dict[str, Any]:
    """Every method on every seed; writes ``results.json`` and ``results.md`` into ``out`` when given."""
    methods = list(METHODS) if list(methods) == ["all"] else list(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods: unknown continual method(s) {bad}; valid: {list(METHODS)} or 'all'")
    if not seeds:
        raise ValueError("seeds: expected at least one seed (an integer >= 0)")
    for s in seeds:
        check_int("seeds", s, minimum=0)
    runs: dict[str, list[dict[str, Any]]] = {}
    for m in methods:
        for s in seeds:
            r = run_method(m, cfg, int(s))
            runs.setdefault(m, []).append(r)
            if log is not None:
                log(f"{m} seed {s}: ACC {r['acc']:.3f} BWT {r['bwt']:+.3f} forgetting {r['forgetting']:.3f} "
                    f"params {r['params']} ({r['wall_s']:.1f} s)")
    res = {"config": dataclasses.asdict(cfg), "methods": {m: {"updates": METHODS[m].updates, "runs": runs[m]}
                                                          for m in methods}}
    res["summary"] = summarise(res)
    if out is not None:
        write_results(res, out)
    return res


def summarise(res: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method: mean and 95% CI half-width over seeds of ACC, LA, BWT, forgetting; params; mean wall time."""
    summ = {}
    for m, v in res["methods"].items():
        runs = v["runs"]
        row: dict[str, Any] = {}
        for k in ("acc", "bwt", "forgetting"):
            row[k], row[k + "_ci"] = mean_ci95([r[k] for r in runs])
        row["la"], row["la_ci"] = mean_ci95([learning_accuracy(r["R"]) for r in runs])
        row["params"] = sorted({r["params"] for r in runs})
        row["wall_s"] = float(np.mean([r["wall_s"] for r in runs]))
        row["lambda"] = [r["lambda"] for r in runs] if m == "ewc" else None
        row["seeds"] = len(runs)
        summ[m] = row
    return summ


def _pm(m: float, ci: float, scale: float = 100.0) -> str:
    return f"{m * scale:.1f} ± {ci * scale:.1f}" if math.isfinite(ci) else f"{m * scale:.1f}"


def write_results(res: Mapping[str, Any], out: str | Path) -> None:
    """``out/results.json`` (everything) and ``out/results.md`` (the table, and EWC's lambda sweep)."""
    p = Path(out)
    p.mkdir(parents=True, exist_ok=True)
    (p / "results.json").write_text(json.dumps(res, indent=1))
    cfg = res["config"]
    lines = [f"# {cfg['task']}: continual learning", "",
             f"{cfg['n_tasks'] or 5} tasks, seeds {sorted({r['seed'] for v in res['methods'].values() for r in v['runs']})}. "
             "ACC (final mean accuracy), LA (mean accuracy on each task right after learning it), BWT, "
             "forgetting in % (mean ± 95% CI over seeds, Student's t); wall time: seconds per seed, one process on "
             "a shared 2-core CPU (EWC: its whole lambda sweep; plastic: meta-training on task 0 + the lifetime).", "",
             "| method | ACC | LA | BWT | forgetting | params | wall s | lambda |", "|---|---|---|---|---|---|---|---|"]
    for m, s in res["summary"].items():
        lam = "" if s["lambda"] is None else ", ".join(f"{v:g}" for v in s["lambda"])
        lines.append(f"| {m} | {_pm(s['acc'], s['acc_ci'])} | {_pm(s['la'], s['la_ci'])} | {_pm(s['bwt'], s['bwt_ci'])} | "
                     f"{_pm(s['forgetting'], s['forgetting_ci'])} | {', '.join(map(str, s['params']))} | "
                     f"{s['wall_s']:.1f} | {lam} |")
    if "ewc" in res["methods"]:
        lines += ["", "EWC lambda sweep (per seed: validation ACC / test ACC / test forgetting, %):", "",
                  "| seed | " + " | ".join(f"lambda={v:g}" for v in cfg["lambdas"]) + " | chosen |",
                  "|---|" + "---|" * (len(cfg["lambdas"]) + 1)]
        for r in res["methods"]["ewc"]["runs"]:
            cells = [f"{s['val_acc'] * 100:.1f} / {s['test_acc'] * 100:.1f} / {s['test_forgetting'] * 100:.1f}"
                     for s in r["sweep"]]
            lines.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['lambda']:g} |")
    lines += ["", "What each method updates:", ""] + [f"- `{m}`: {v['updates']}" for m, v in res["methods"].items()]
    (p / "results.md").write_text("\n".join(lines) + "\n")
