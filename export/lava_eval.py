"""Held-out evaluation of a trained run with its spiking network running in Lava.

The deployment of ``snn-oneshot`` (issue 12): the feature extractor and spike encoder run in torch and
stream spikes into the exported readout, whose synapses learn each episode's classes in Lava; the
plastic weights start from the trained ``w`` in every episode. Episodes are those of
:func:`spikeplastic.meta.evaluate` (same seed stream and batches), so the Lava accuracy is measured on
exactly the episodes of the torch figure. Many episodes run in one Lava process as disjoint copies of
the readout (:meth:`LavaNetwork.run_episodes`), so process start-up is paid once per ``copies`` episodes.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UnsupportedError

__all__ = ["LavaEvalResult", "evaluate_lava", "LAVA_EVAL_NAME"]

#: file written into the run folder, per mode: ``held_out_lava_float.json`` / ``held_out_lava_fixed.json``
LAVA_EVAL_NAME = "held_out_lava_{mode}.json"


@dataclass(frozen=True)
class LavaEvalResult:
    """Accuracy of the Lava-run network on held-out episodes, beside torch on the same episodes.

    ``correct``/``accuracy``/``ci_*``: the Lava run (Wilson 95%); ``torch_correct``: the trained torch
    model (its own dtype) on the same episodes; ``agree``: episodes whose predicted class is the same in
    both. ``reference``: what the spikes were compared with -- float mode: :func:`spikeplastic.simulate`
    (float64) of the exported readout; fixed mode: :func:`~spikeplastic.export.simulate_fixed`;
    ``spikes_identical``: episodes whose readout spikes equal the reference at every step;
    ``lava_spikes``/``reference_spikes``: readout spikes over all episodes; ``max_weight_change``: the
    largest ``|W[t] - W_init|`` (float units) of any episode (the plasticity was active);
    ``episodes_per_s``: of the Lava part (start-up included).
    """

    task: str
    model: str
    run: str
    mode: str
    split: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    torch_correct: int
    agree: int
    reference: str
    spikes_identical: int
    lava_spikes: int
    reference_spikes: int
    input_spikes: int
    max_weight_change: float
    lava_runs: int
    copies: int
    episodes_per_s: float
    seconds: float
    seed: int
    data: str

    def line(self) -> str:
        """One-line summary with the counts behind it."""
        return (f"{self.task} / {self.model} in Lava ({self.mode}): held-out accuracy {self.accuracy:.3f} "
                f"(95% CI [{self.ci_low:.3f}, {self.ci_high:.3f}], Wilson, {self.correct}/{self.n}); torch on the same "
                f"episodes {self.torch_correct}/{self.n}, same prediction in {self.agree}/{self.n}; readout spikes "
                f"identical to {self.reference} in {self.spikes_identical}/{self.n} episodes "
                f"({self.lava_spikes} Lava vs {self.reference_spikes} reference spikes, {self.input_spikes} input spikes, "
                f"max |dW| {self.max_weight_change:.4g}); {self.episodes_per_s:.1f} episodes/s "
                f"({self.lava_runs} Lava runs of up to {self.copies} episodes)")

    def write(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(asdict(self), indent=1))
        return p


def _streamed(model: Any, name: str) -> Any:
    """The model's exported network, checked to be one the Lava evaluation can drive."""
    from spikeplastic.network import Network

    net = getattr(model, "readout", None)
    if not (isinstance(net, Network) and callable(getattr(model, "encode_episode", None))
            and callable(getattr(model, "frame_logits", None))):
        raise UnsupportedError(
            f"evaluate in Lava: model {name!r} ({type(model).__name__}) is not a torch front end streaming spikes "
            "into an exported network with an output decoded from its currents; supported: snn-oneshot "
            "(use 'spikeplastic verify' to check any exported network spike for spike)")
    return net


def evaluate_lava(
    run: str | os.PathLike[str],
    *,
    episodes: int = 1000,
    mode: str = "float",
    split: str = "test",
    batch: int | None = None,
    seed: int | None = None,
    data: str | os.PathLike[str] | None = None,
    copies: int | None = None,
    timeout: float = 600.0,
    out: str | os.PathLike[str] | None = None,
) -> LavaEvalResult:
    """Evaluate run ``run`` on held-out episodes with its readout running in Lava (module docstring).

    Args:
        run: run folder or checkpoint (an ``snn-oneshot`` run). episodes, split, batch, seed, data: as
            :func:`spikeplastic.meta.evaluate` (the same episodes). mode: ``"float"`` | ``"fixed"``
            (Loihi integers; meaningful for a readout trained with ``lava="fixed"``).
        copies: episodes per Lava run (default: :meth:`LavaNetwork.run_episodes`'s, from the network's size).
        timeout: seconds per Lava run. out: JSON path (default ``RUN/held_out_lava_{mode}.json``).

    Returns: :class:`LavaEvalResult`.
    """
    from spikeplastic.meta.heldout import (
        _checkpoint_path, _per_episode_metric, _resolve, held_out_episodes, prepare_evaluation, wilson_interval)
    from spikeplastic.simulate import simulate

    from .exporter import to_lava
    from .fixed_sim import simulate_fixed

    if mode not in ("float", "fixed"):
        raise ValueError(f"mode: expected 'float' or 'fixed', got {mode!r}")
    setup = prepare_evaluation(run, data=data)
    model, task = setup.model, setup.task
    net = _streamed(model, setup.cfg.model)
    net_ir = net.to_ir()
    lnet = to_lava(net_ir, mode=mode, timeout=timeout)
    _, stream = _resolve(setup.cfg, episodes, batch, seed)
    pop = getattr(model, "output_population", None) or list(net.pops)[-1]
    correct = torch_correct = agree = identical = 0
    lava_spikes = ref_spikes = in_spikes = 0
    max_dw = 0.0
    runs = used = 0
    lava_s = 0.0
    t0 = time.perf_counter()
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(stream)
        for ep in held_out_episodes(setup, episodes=episodes, split=split, batch=batch, seed=seed):
            xs, _ = model.encode_episode(ep.inputs)
            torch_out, _ = model.readout_logits(xs)   # = model(ep.inputs)[0], the embedding computed once
            x64 = xs.detach().double().cpu().numpy()
            in_spikes += int(np.count_nonzero(x64))
            t1 = time.perf_counter()
            rec = lnet.run_episodes(x64, copies=copies, record=("spikes", "currents", "weights"))
            used = max(used, rec.copies)
            lava_s += time.perf_counter() - t1
            runs += rec.runs
            cur = torch.from_numpy(rec.currents[pop]).to(torch_out.dtype)
            lava_out = model.frame_logits(cur)
            correct += int(sum(_per_episode_metric(task, lava_out, ep)))
            torch_correct += int(sum(_per_episode_metric(task, torch_out, ep)))
            agree += int((lava_out[-1].argmax(-1) == torch_out[-1].argmax(-1)).sum())
            s_lava = rec.spikes[pop]
            if mode == "float":
                ref = simulate(net_ir, x64, record=("spikes",)).spikes[pop].numpy()
            else:
                assert lnet.fixed is not None
                ref = np.stack([simulate_fixed(lnet.fixed, x64[:, e], rng_seed=lnet.rng_seed).spikes[pop]
                                for e in range(x64.shape[1])], axis=1)
            identical += int(np.all(ref == s_lava, axis=(0, 2)).sum())
            lava_spikes += int(np.count_nonzero(s_lava))
            ref_spikes += int(np.count_nonzero(ref))
            max_dw = max([max_dw, *rec.weight_change().values()])
    lo, hi = wilson_interval(correct, episodes)
    res = LavaEvalResult(
        task=setup.cfg.task, model=setup.cfg.model, run=str(setup.path), mode=mode, split=split, n=episodes,
        correct=correct, accuracy=correct / episodes, ci_low=lo, ci_high=hi, torch_correct=torch_correct, agree=agree,
        reference="simulate (float64)" if mode == "float" else "simulate_fixed", spikes_identical=identical,
        lava_spikes=lava_spikes, reference_spikes=ref_spikes, input_spikes=in_spikes, max_weight_change=max_dw,
        lava_runs=runs, copies=used, episodes_per_s=episodes / lava_s if lava_s > 0 else float("inf"),
        seconds=time.perf_counter() - t0, seed=stream,
        data=task.describe_split(split) if task.data_splits else "new random episodes from the held-out seed stream")
    res.write(out if out is not None else _checkpoint_path(run).parent / LAVA_EVAL_NAME.format(mode=mode))
    return res
