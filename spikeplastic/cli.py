"""The ``spikeplastic`` command.

::

    spikeplastic train --task pattern --model rate-hebb --episodes 500 --out runs/p
    spikeplastic train --task pattern --model rate-hebb --episodes 1000 --out runs/p --resume
    spikeplastic compare --task pattern50 --models rate-hebb,rnn --episodes 300 --seeds 3 --out runs/cmp
    spikeplastic compare ... --episodes 600 --out runs/cmp --resume     # extends / finishes those runs
    spikeplastic evaluate runs/p --episodes 1000       # held-out metric, 95% CI; writes runs/p/held_out.json
    spikeplastic plot runs/snn/checkpoint.pt --out raster.png
    spikeplastic export runs/snn/checkpoint.pt --out lava_net/ --mode fixed
    spikeplastic verify runs/snn/checkpoint.pt --json           # on episodes of the checkpoint's own task
    spikeplastic verify runs/snn --inputs x.npy                    # or on your inputs; --random-inputs RATE
    spikeplastic list
    spikeplastic continual --task continual-digits --method ewc --seeds 0 1 2 --out runs/cl   # --method all
    spikeplastic make-omniglot data/synth --background-alphabets 4 --evaluation-alphabets 2 --chars 10
    torchrun --nproc_per_node 2 -m spikeplastic.cli train --task cue --model backpropamine --batch 30
    spikeplastic train --task pattern50 --model snn-stdp --outer es --es-population 32 --batch 8   # no backward pass
    spikeplastic train --task pattern50 --model snn-stdp --outer eprop --batch 8   # e-prop: online, no backward through time

``--task-kw KEY=VALUE`` / ``--model-kw KEY=VALUE`` (repeatable) override task config fields and
model keywords (values parsed as Python literals, ``nan``/``inf`` as floats, else kept as strings); with ``compare``,
``--model-kw MODEL:KEY=VALUE`` applies to one model only. ``--data DIR`` points the ``oneshot``
task at an Omniglot folder (or a synthetic one that ``make-omniglot`` writes) and the ``images``
task at CIFAR-10.

``train`` and ``compare`` refuse an ``--out`` folder that already holds a run unless given
``--resume`` (continue it) or ``--overwrite`` (replace it).

``evaluate RUN`` runs a trained network on held-out episodes (the task's test split where it has
one, always a seed stream training never used; :mod:`spikeplastic.meta.heldout`), prints one line
(metric ± 95% CI, its method, n, split) and writes the result as JSON (``--out``, default
``RUN/held_out.json``, beside the checkpoint). ``compare`` does it for every run
(``--eval-episodes``, default 1000; 0 skips it) and shows the held-out metric beside the training one.

Exit codes: 0 success; 1 a run failed (e.g. every optimiser step was skipped as NaN/inf, or a
parameter became NaN/inf) or a needed component is missing; 2 bad arguments, including an
unreadable checkpoint (the message names the argument and the expected form).
"""
from __future__ import annotations

import argparse
import math
import ast
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "parse_overrides"]


class UsageError(Exception):
    """Bad command-line input: ``argument`` names the option, the message says what is expected."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"argument {argument}: {message}")


def _number(kind: type, minimum: float, *, strict: bool) -> Callable[[str], Any]:
    """An argparse ``type`` that parses ``kind`` and requires a finite value > (or >=) ``minimum``."""
    noun = "integer" if kind is int else "finite number"
    what = f"a positive {noun}" if strict and minimum == 0 else f"{'an' if kind is int else 'a'} {noun} {'>' if strict else '>='} {minimum:g}"

    def parse(s: str) -> Any:
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not math.isfinite(v) or (v <= minimum if strict else v < minimum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v

    return parse


_positive_int = _number(int, 0, strict=True)


def _rate(s: str) -> float:
    """An argparse ``type``: a rate in (0, 1]."""
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate in (0, 1], got {s!r}") from None
    if not (0 < v <= 1):
        raise argparse.ArgumentTypeError(f"expected a rate in (0, 1], got {s!r}")
    return v

_nonneg_int = _number(int, 0, strict=False)
_positive_float = _number(float, 0, strict=True)
_nonneg_float = _number(float, 0, strict=False)


def _interval(low: float, high: float, *, open_low: bool, noun: str) -> Callable[[str], float]:
    """An argparse ``type``: a float in ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    what = f"{noun} in {'(' if open_low else '['}{low:g}, {high:g}]"

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not ((low < v if open_low else low <= v) and v <= high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v

    return parse


_decay_factor = _interval(0.0, 1.0, open_low=True, noun="a factor")  # --lr-decay
_distortion = _interval(0.0, 3.0, open_low=False, noun="a number")  # make-omniglot --distortion


def _learning_rate(s: str) -> float:
    """``--lr``: a finite float in ``(0, MAX_LR]``."""
    from .meta.config import MAX_LR

    what = f"a finite number in (0, {MAX_LR:g}] (Adam moves each parameter by up to about lr per step)"
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
    if not (math.isfinite(v) and 0 < v <= MAX_LR):
        raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
    return v


def _literal(s: str) -> Any:
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError):
        pass
    if s.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(s)  # not Python literals, but numbers a user means (and models must then reject)
    return s


def _kv(items: Sequence[str] | None, option: str, *, per_model: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    common: dict[str, Any] = {}
    specific: dict[str, dict[str, Any]] = {}
    for it in items or []:
        key, sep, val = it.partition("=")
        if not sep or not key:
            raise UsageError(option, f"expected KEY=VALUE{' or MODEL:KEY=VALUE' if per_model else ''}, got {it!r}")
        if per_model and ":" in key:
            model, _, k = key.partition(":")
            specific.setdefault(model, {})[k] = _literal(val)
        else:
            common[key] = _literal(val)
    return common, specific


def parse_overrides(items: Sequence[str] | None, option: str = "--task-kw") -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: value}``, each value read as a Python literal (else kept as
    a string), as the CLI reads ``--task-kw`` / ``--model-kw``. Raises :class:`UsageError` naming
    ``option`` for an item that is not ``KEY=VALUE``."""
    return _kv(items, option)[0]


def _task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks import TASKS

    kw = parse_overrides(args.task_kw, "--task-kw")
    if getattr(args, "data", None) is not None:
        spec = TASKS.get(args.task)
        key = None if spec is None else spec.data_field
        if key is None:
            with_data = sorted(k for k, v in TASKS.items() if v.data_field is not None)
            raise UsageError("--data", f"task {args.task!r} reads no dataset; --data applies to {with_data}")
        kw[key] = str(args.data)
    return kw


def _make_task(args: argparse.Namespace) -> Any:
    """The task of ``args`` (with ``train``: its random data split drawn with ``--seed``, as the
    trainer's own build would, :func:`spikeplastic.meta.build.run_task_kwargs`)."""
    from .meta.build import run_task_kwargs
    from .tasks import TASKS, make_task

    if args.task not in TASKS:
        raise UsageError("--task", f"unknown task {args.task!r}; expected one of {sorted(TASKS)}")
    kw = run_task_kwargs(args.task, _task_kwargs(args), getattr(args, "seed", 0))
    try:
        return make_task(args.task, **kw)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise UsageError("--data", f"dataset not found or without the expected layout: {e}") from None
    except (TypeError, ValueError) as e:
        from_data = getattr(args, "data", None) is not None and "layout" in str(e)
        raise UsageError("--data" if from_data else "--task-kw", str(e)) from None


def _check_model(model: str, task: Any, kw: dict[str, Any]) -> Any:
    """Build ``model`` for ``task`` once (the later option checks reuse it), or a usage error."""
    from .models import MODELS, make_model

    if model not in MODELS:
        raise UsageError("--model" if "," not in model else "--models", f"unknown model {model!r}; expected one of {list(MODELS)}")
    if "lean" in kw:
        raise UsageError("--model-kw", "lean is not a model keyword here: use --lean {auto,on,off}")
    try:
        return make_model(model, task, **kw)
    except (TypeError, ValueError) as e:
        raise UsageError("--model-kw", str(e)) from None


def _check_lean(mode: str, built: Any, task: Any) -> None:
    from .meta.trainer import apply_lean

    if mode == "on":  # the other modes never fail
        try:
            apply_lean(built, task, mode)
        except ValueError as e:
            raise UsageError("--lean", str(e)) from None


def _es_params_arg(s: str) -> str | tuple[str, ...]:
    """``--es-params``: ``all``, ``rule`` or comma-separated parameter-name prefixes."""
    if s in ("all", "rule"):
        return s
    parts = tuple(p.strip() for p in s.split(","))
    if not s.strip() or not all(parts):
        raise argparse.ArgumentTypeError(f"expected 'all', 'rule' or comma-separated parameter-name prefixes, got {s!r}")
    return parts


def _even_population(s: str) -> int:
    """``--es-population``: an even integer >= 2."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an even integer >= 2 (antithetic pairs), got {s!r}") from None
    if v < 2 or v % 2:
        raise argparse.ArgumentTypeError(f"expected an even integer >= 2 (antithetic pairs), got {s!r}")
    return v


def _check_es_params(es_params: str | tuple[str, ...], built: Any) -> None:
    from .meta.es import select_parameters

    try:
        select_parameters(built, es_params)
    except ValueError as e:
        raise UsageError("--es-params", str(e)) from None


def _check_device(device: str) -> None:
    from .meta.devices import resolve_device

    try:
        resolve_device(device)
    except ValueError as e:
        raise UsageError("--device", str(e)) from None


def _out_folder(option: str, path: str) -> None:
    """``option`` must name a folder (existing or to be created), not a file."""
    if Path(path).exists() and not Path(path).is_dir():
        raise UsageError(option, f"expected a folder (existing or to be created), got the file {path!r}")


def _fresh_or_flagged(path: str, resume: bool, overwrite: bool, folders: Sequence[str] | None = None) -> None:
    """Refuse to start afresh where a run is held, unless ``--resume`` or ``--overwrite`` says what to do."""
    from .meta.trainer import holds_run

    if resume and overwrite:
        raise UsageError("--overwrite", "cannot be combined with --resume (continue the run, or replace it)")
    if resume or overwrite:
        return
    held = [f for f in (folders if folders is not None else [path]) if holds_run(f)]
    if held:
        files = ", ".join(holds_run(held[0]))
        where = f"{held[0]!r} already holds a run ({files})" + (f" and {len(held) - 1} more" if len(held) > 1 else "")
        raise UsageError("--out", f"{where}; pass --resume to continue it or --overwrite to replace it, "
                                  "or choose another folder")


# ---- commands ----------------------------------------------------------------------------------

def _clip(value: float | None, rec: dict[str, Any]) -> float | None:
    """``--clip``: 0 disables, None takes the task's default (10 where it sets none, ``None``: off)."""
    if value is None:
        return rec.get("clip", 10.0)
    return None if value == 0 else value


def _decay_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--lr-decay`` / ``--lr-decay-every`` where given (they replace the task's step decay)."""
    return {k: v for k in ("lr_decay", "lr_decay_every") if (v := getattr(args, k)) is not None}


def _cmd_train(args: argparse.Namespace) -> int:
    from .meta.checkpoint import CheckpointError
    from .meta.config import TrainConfig, recommended, task_fields
    from .meta.distributed import is_torchrun, train_distributed
    from .meta.trainer import TrainingError, count_parameters, train

    task = _make_task(args)
    model_kw, _ = _kv(args.model_kw, "--model-kw")
    built = _check_model(args.model, task, model_kw)
    n_params = count_parameters(built)
    _check_lean(args.lean, built, task)
    _check_device(args.device)
    rec = recommended(args.task, args.model)
    fields = {**task_fields(args.task, args.model), **_decay_overrides(args)}
    out = args.out if args.out is not None else str(Path("runs") / f"{args.task}-{args.model}-s{args.seed}")
    _out_folder("--out", out)
    _fresh_or_flagged(out, args.resume, args.overwrite)
    config = TrainConfig(
        task=args.task, model=args.model, episodes=args.episodes,
        batch=args.batch if args.batch is not None else int(rec["batch"]),
        lr=args.lr if args.lr is not None else float(rec["lr"]),
        clip=_clip(args.clip, rec), seed=args.seed, device=args.device, out=out,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, log_every=args.log_every,
        progress=not args.no_progress, task_kwargs=_task_kwargs(args), model_kwargs=model_kw, lean=args.lean,
        outer=args.outer, es_population=args.es_population, es_sigma=args.es_sigma, es_params=args.es_params,
        **{k: v for k, v in fields.items() if k != "clip"},
    )
    if args.outer == "es":
        _check_es_params(args.es_params, built)
    if args.outer == "eprop":
        from .meta.eprop import check_eprop

        try:
            check_eprop(built, task, args.model)
        except ValueError as e:
            raise UsageError("--outer", str(e)) from None
    if args.resume and not (Path(out) / "checkpoint.pt").is_file():
        raise UsageError("--resume", f"no checkpoint to resume at {str(Path(out) / 'checkpoint.pt')!r}; "
                                     "train without --resume first (same --out)")
    try:
        if is_torchrun():
            res = train_distributed(config, resume=args.resume, overwrite=args.overwrite, task=task)
        else:
            print(f"{args.model} on {args.task}: {n_params:,} trainable parameters; output in {out}", file=sys.stderr)
            res = train(config, resume=args.resume, overwrite=args.overwrite, task=task)
    except CheckpointError as e:
        raise UsageError("--resume", str(e)) from None
    except TrainingError as e:
        print(f"spikeplastic train: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        if args.resume and "cannot resume" in str(e):
            raise UsageError("--resume", str(e)) from None
        if "es_population" in str(e) and "divisible" in str(e):
            raise UsageError("--es-population", str(e)) from None
        if "batch" in str(e) and "divisible" in str(e):
            raise UsageError("--batch", str(e)) from None
        raise
    if is_torchrun() and os.environ.get("RANK", "0") != "0":
        return 0  # rank 0 reports
    print(f"done: {res.episodes} episodes, final metric {res.final_metric:.4g} (mean of the last logged steps), "
          f"{res.skipped} skipped steps, {res.seconds:.1f} s", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .meta.compare import CompareConfig, compare

    task = _make_task(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UsageError("--models", f"expected a comma-separated list of model ids, got {args.models!r}")
    if len(set(models)) != len(models):
        raise UsageError("--models", f"a model id is listed twice: {models}")
    common, specific = _kv(args.model_kw, "--model-kw", per_model=True)
    unknown = sorted(set(specific) - set(models))
    if unknown:
        raise UsageError("--model-kw", f"MODEL:KEY=VALUE names models not in --models: {unknown}")
    per_model = {m: {**common, **specific.get(m, {})} for m in models}
    _out_folder("--out", args.out)
    from .models import MODELS

    for m in models:
        if m not in MODELS:
            raise UsageError("--models", f"unknown model {m!r}; expected ids from {list(MODELS)}")
        _check_lean(args.lean, _check_model(m, task, per_model[m]), task)
    _check_device(args.device)
    cfg = CompareConfig(
        task=args.task, models=tuple(models), episodes=args.episodes, seeds=args.seeds, out=args.out,
        batch=args.batch, lr=args.lr, device=args.device, task_kwargs=_task_kwargs(args),
        model_kwargs={m: kw for m, kw in per_model.items() if kw}, jobs=args.jobs, progress=not args.no_progress,
        lean=args.lean, resume=args.resume, overwrite=args.overwrite, eval_episodes=args.eval_episodes,
        train_overrides=_decay_overrides(args),
    )
    _fresh_or_flagged(args.out, args.resume, args.overwrite,
                      [str(cfg.train_config(m, s).out) for m in models for s in range(args.seeds)])
    try:
        compare(cfg)
    except RuntimeError as e:  # a run's subprocess failed; its stderr tail is in the message
        print(f"spikeplastic compare: {e}", file=sys.stderr)
        return 1
    print(Path(args.out, "results.md").read_text())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .meta.checkpoint import CHECKPOINT_NAME, CheckpointError
    from .meta.heldout import HELD_OUT_NAME, evaluate

    run = Path(args.run)
    if not run.exists():
        raise UsageError("RUN", f"nothing at {args.run!r} (expected a run folder written by 'spikeplastic train "
                                "--out', or its checkpoint.pt)")
    if run.is_dir() and not (run / CHECKPOINT_NAME).is_file():
        raise UsageError("RUN", f"the folder {args.run!r} holds no {CHECKPOINT_NAME} (expected a run folder written "
                                "by 'spikeplastic train --out', or a checkpoint file)")
    out = Path(args.out) if args.out is not None else (run if run.is_dir() else run.parent) / HELD_OUT_NAME
    if out.is_dir():
        raise UsageError("--out", f"expected a JSON file path, got the folder {str(out)!r}")
    if not out.parent.is_dir():
        raise UsageError("--out", f"the folder of {str(out)!r} does not exist")
    _check_device(args.device)
    if args.data is not None and not args.data.is_dir():
        raise UsageError("--data", f"no folder at {str(args.data)!r}")
    if args.lava is not None:
        return _evaluate_lava(args, run, None if args.out is None else out)
    if args.copies is not None:
        raise UsageError("--copies", "only with --lava")
    try:
        res = evaluate(run, episodes=args.episodes, split=args.split, batch=args.batch, seed=args.seed,
                       device=args.device, untrained=args.untrained, data=args.data)
    except CheckpointError as e:
        raise UsageError("RUN", str(e)) from None
    except FileNotFoundError as e:  # the checkpoint is there (checked above): the run's dataset is not
        raise UsageError("--data", f"the run's dataset was not found ({e}); pass --data DIR where it is now") from None
    except ValueError as e:
        msg = str(e)
        raise UsageError("--data" if msg.startswith("data:") else "RUN", f"cannot evaluate {args.run!r}: {msg}") from None
    res.write(out)
    print(res.line())
    print(f"written to {out}", file=sys.stderr)
    return 0


def _evaluate_lava(args: argparse.Namespace, run: Path, out: Path | None) -> int:
    from .meta.checkpoint import CheckpointError

    if args.untrained or args.device != "cpu":
        raise UsageError("--untrained" if args.untrained else "--device", "not with --lava (Lava runs the trained network on the CPU)")
    from spikeplastic.export import ExportError, UnsupportedError, evaluate_lava

    try:
        res = evaluate_lava(run, episodes=args.episodes, mode=args.lava, split=args.split, batch=args.batch,
                            seed=args.seed, data=args.data, copies=args.copies, out=out)
    except CheckpointError as e:
        raise UsageError("RUN", str(e)) from None
    except (UnsupportedError, ExportError) as e:
        raise UsageError("RUN", f"cannot evaluate {args.run!r} in Lava: {e}") from None
    print(res.line())
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .meta.plot import plot_checkpoint

    if not Path(args.checkpoint).exists():
        raise UsageError("CKPT", f"no checkpoint at {args.checkpoint!r} (expected a checkpoint.pt or its run folder)")
    if args.out is not None and Path(args.out).is_dir():
        raise UsageError("--out", f"expected a PNG file path, got the folder {args.out!r}")
    try:
        out = plot_checkpoint(args.checkpoint, args.out, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError("CKPT", str(e)) from None
    print(out)
    return 0


def _exporter(name: str) -> Any:
    try:
        from .export import cli_commands  # type: ignore[attr-defined]
    except ImportError as e:
        print(f"spikeplastic {name}: the Lava exporter (spikeplastic.export.cli_commands) is not available: {e}. "
              "It ships with the package's export/ folder and needs lava-nc (pip install lava-nc).", file=sys.stderr)
        return None
    fn = getattr(cli_commands, f"{name}_command", None)
    if fn is None:
        print(f"spikeplastic {name}: spikeplastic.export.cli_commands has no {name}_command()", file=sys.stderr)
    return fn


def _inputs_file(args: argparse.Namespace) -> str | None:
    if args.inputs is not None and not Path(args.inputs).is_file():
        raise UsageError("--inputs", f"no file at {args.inputs!r} (expected a .npy array [T, n_in] or [episodes, T, n_in])")
    if args.episodes is not None and (args.inputs is not None or getattr(args, "random_inputs", None) is not None):
        raise UsageError("--episodes", "applies to the checkpoint's task episodes only, not with --inputs or --random-inputs")
    return args.inputs


def _cmd_export(args: argparse.Namespace) -> int:
    if not Path(args.checkpoint).exists():
        raise UsageError("CKPT", f"no checkpoint at {args.checkpoint!r}")
    _out_folder("--out", args.out)
    inputs_file = _inputs_file(args)
    fn = _exporter("export")
    if fn is None:
        return 1
    try:
        written = fn(args.checkpoint, args.out, args.mode, inputs=inputs_file, episodes=args.episodes, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        if str(e).startswith("argument "):  # bad --inputs file: the message names it
            print(f"spikeplastic export: error: {e}", file=sys.stderr)
            return 2
        raise UsageError("CKPT", f"cannot export {args.checkpoint!r}: {e}") from None
    for name, path in dict(written or {}).items():
        print(f"{name}: {path}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    if not Path(args.checkpoint).exists():
        raise UsageError("CKPT", f"no checkpoint at {args.checkpoint!r}")
    inputs_file = _inputs_file(args)
    fn = _exporter("verify")
    if fn is None:
        return 1
    return int(fn(args.checkpoint, args.steps, args.mode, args.json, backend=args.backend, seed=args.seed,
                  inputs=inputs_file, random_inputs=args.random_inputs, episodes=args.episodes,
                  allow_silent=args.allow_silent))


def _cmd_make_omniglot(args: argparse.Namespace) -> int:
    import time

    try:
        from .tasks.synth_omniglot import MANIFEST, make_synthetic_omniglot, synthetic_alphabets

        have = synthetic_alphabets()
    except ImportError as e:
        print(f"spikeplastic make-omniglot: error: {e}", file=sys.stderr)
        return 1
    if args.list:
        for split, alphabets in have.items():
            print(f"{split} ({len(alphabets)} alphabets, {sum(alphabets.values())} characters):")
            for name, n in alphabets.items():
                print(f"  {name:40s} {n}")
        return 0
    if args.out is None:
        raise UsageError("OUT", "expected the output folder (or --list)")
    for option, n, split in (("--background-alphabets", args.background_alphabets, "background"),
                             ("--evaluation-alphabets", args.evaluation_alphabets, "evaluation")):
        if n is not None and n > len(have[split]):
            raise UsageError(option, f"expected at most {len(have[split])} (the {split} alphabets the installed "
                                     f"fonts give; see --list), got {n}")
    if args.background_alphabets == 0 and args.evaluation_alphabets == 0:
        raise UsageError("--evaluation-alphabets", "expected at least one alphabet in all, got 0 background and 0 evaluation")
    _out_folder("OUT", args.out)
    held = [n for n in ("images_background", "images_evaluation", MANIFEST) if (Path(args.out) / n).exists()]
    if held and not args.overwrite:
        raise UsageError("OUT", f"{args.out!r} already holds {', '.join(held)}; pass --overwrite to replace them, "
                                "or choose another folder")
    t0 = time.perf_counter()
    root = make_synthetic_omniglot(
        args.out, n_background_alphabets=args.background_alphabets,
        n_evaluation_alphabets=args.evaluation_alphabets, chars_per_alphabet=args.chars, drawers=args.drawers,
        size=args.size, seed=args.seed, distortion=args.distortion, overwrite=args.overwrite)
    n_chars = sum(p.is_dir() for part in ("images_background", "images_evaluation") for p in (root / part).glob("*/*"))
    print(f"wrote {n_chars} characters x {args.drawers} drawers in {time.perf_counter() - t0:.1f} s "
          "(synthetic Omniglot layout, not Omniglot)", file=sys.stderr)
    print(root)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .continual import CONTINUAL_TASKS, METHODS
    from .models import MODELS
    from .tasks import TASKS

    print("tasks:  " + ", ".join(TASKS))
    print("models:")
    for k, spec in MODELS.items():
        print(f"  {k:22s} {spec.description}")
    print("continual tasks ('spikeplastic continual --task'):")
    for k, cspec in CONTINUAL_TASKS.items():
        print(f"  {k:26s} {cspec.description}")
    print("continual methods ('spikeplastic continual --method', or all):")
    for k, mspec in METHODS.items():
        print(f"  {k:16s} {mspec.updates}")
    return 0


def _cmd_continual(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from .continual import CONTINUAL_TASKS, METHODS, QUICK, ContinualConfig, run_benchmark

    if args.task not in CONTINUAL_TASKS:
        raise UsageError("--task", f"unknown continual task {args.task!r}; expected one of {list(CONTINUAL_TASKS)}")
    methods = list(METHODS) if args.method == ["all"] else list(args.method)
    for m in methods:
        if m not in METHODS:
            raise UsageError("--method", f"unknown method {m!r}; expected one or more of {list(METHODS)}, or all")
    if len(set(methods)) != len(methods):
        raise UsageError("--method", f"a method is listed twice: {methods}")
    if len(set(args.seeds)) != len(args.seeds):
        raise UsageError("--seeds", f"a seed is listed twice: {args.seeds}")
    _out_folder("--out", args.out)
    if (Path(args.out) / "results.json").exists() and not args.overwrite:
        raise UsageError("--out", f"{args.out!r} already holds results.json; pass --overwrite to replace it "
                                  "or choose another folder")
    kw: dict[str, Any] = dict(QUICK) if args.quick else {}
    fields = {f.name for f in dataclasses.fields(ContinualConfig)}
    for key, val in parse_overrides(args.set, "--set").items():
        if key not in fields or key == "task":
            raise UsageError("--set", f"unknown key {key!r}; expected one of {sorted(fields - {'task'})}")
        kw[key] = tuple(val) if key == "lambdas" and isinstance(val, (list, tuple)) else val
    if args.tasks is not None:
        kw["n_tasks"] = args.tasks
    try:
        cfg = ContinualConfig(task=args.task, **kw)
    except (TypeError, ValueError) as e:
        raise UsageError("--set" if args.set else "--tasks", str(e)) from None
    from .continual import make_continual_task

    try:
        make_continual_task(cfg.task, 0, cfg.n_tasks)
    except ValueError as e:
        raise UsageError("--tasks", str(e)) from None
    t0 = time.perf_counter()
    try:
        run_benchmark(cfg, methods, args.seeds, args.out, log=lambda m: print(m, file=sys.stderr))
    except ValueError as e:
        raise UsageError("--tasks" if "n_tasks" in str(e) else "--set", str(e)) from None
    print(Path(args.out, "results.md").read_text())
    print(f"done in {time.perf_counter() - t0:.1f} s; results in {args.out}", file=sys.stderr)
    return 0


# ---- parser ------------------------------------------------------------------------------------

def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="task id (see 'spikeplastic list')")
    p.add_argument("--episodes", type=_positive_int, default=1000, help="outer steps per run (default 1000)")
    p.add_argument("--batch", type=_positive_int, default=None, help="episodes per outer step (default: per task)")
    p.add_argument("--lr", type=_learning_rate, default=None, help="Adam learning rate in (0, 1] (default: per task)")
    p.add_argument("--lr-decay", type=_decay_factor, default=None, metavar="FACTOR",
                   help="multiply lr by FACTOR in (0, 1] every --lr-decay-every outer steps (default: per task, "
                        "1 where the task sets none: constant)")
    p.add_argument("--lr-decay-every", type=_nonneg_int, default=None, metavar="N",
                   help="outer steps between lr decays (0: never; default: per task, never where it sets none)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    p.add_argument("--task-kw", action="append", metavar="KEY=VALUE", help="task config override (repeatable)")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (oneshot: Omniglot, images: CIFAR-10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--lean", choices=["auto", "on", "off"], default="auto",
                   help="memory-lean whole-episode backprop (spikeplastic.lean) for supervised episodes: auto "
                        "(default: when the model has it: snn-stdp, snn-static, rate-hebb), on (error if the "
                        "model or task cannot), off (the per-step loop)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``spikeplastic`` command."""
    ap = argparse.ArgumentParser(prog="spikeplastic", description="Spiking networks with meta-learned plasticity.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="meta-train one model on one task")
    _add_common(p)
    p.add_argument("--model", required=True, help="model id (see 'spikeplastic list')")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--out", default=None, help="run folder (default runs/TASK-MODEL-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the run that OUT already holds (without it, "
                                                             "a folder holding a run is refused unless --resume)")
    p.add_argument("--checkpoint-every", type=_nonneg_int, default=100, help="episodes between checkpoints (0: end only)")
    p.add_argument("--eval-every", type=_nonneg_int, default=0, help="episodes between evaluations (0: never)")
    p.add_argument("--log-every", type=_positive_int, default=1, help="episodes between metrics lines")
    p.add_argument("--clip", type=_nonneg_float, default=None,
                   help="gradient-norm clip (0: off; default: per task, 10 where the task sets none)")
    p.add_argument("--model-kw", action="append", metavar="KEY=VALUE", help="model keyword override (repeatable)")
    p.add_argument("--outer", choices=["bptt", "es", "eprop"], default="bptt",
                   help="outer loop: bptt (default: backpropagation through whole episodes) or es (evolution "
                        "strategies: forward passes of a population of perturbed parameter sets, no backward pass; "
                        "--batch is then the episodes each member runs per outer step) or eprop (e-prop: forward-mode "
                        "online approximate gradients from eligibility traces, memory independent of the episode "
                        "length; snn-stdp and snn-static on supervised tasks)")
    p.add_argument("--es-population", type=_even_population, default=32, metavar="P",
                   help="ES: members per outer step, even (antithetic pairs; default 32)")
    p.add_argument("--es-sigma", type=_positive_float, default=0.02, metavar="SIGMA",
                   help="ES: standard deviation of the parameter perturbations (default 0.02)")
    p.add_argument("--es-params", type=_es_params_arg, default="all", metavar="WHICH",
                   help="ES: the parameters to perturb and train: all (default), rule (the plasticity rules' "
                        "parameters) or comma-separated parameter-name prefixes")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("compare", help="several models on one task over several seeds")
    _add_common(p)
    p.add_argument("--models", required=True, help="comma-separated model ids")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds per model (default 3)")
    p.add_argument("--out", required=True, help="output folder (results.json, results.md, curves.png)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--model-kw", action="append", metavar="[MODEL:]KEY=VALUE", help="model keyword override (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue each run from OUT/runs/MODEL/seedS/checkpoint.pt where one exists (up to --episodes)")
    p.add_argument("--overwrite", action="store_true", help="replace the runs that OUT already holds (without it, "
                                                             "run folders holding a run are refused unless --resume)")
    p.add_argument("--eval-episodes", type=_nonneg_int, default=1000, metavar="N",
                   help="held-out episodes per run's final network, shown beside the training metric "
                        "(default 1000; 0: none)")
    p.set_defaults(fn=_cmd_compare)

    p = sub.add_parser("evaluate", help="a trained run's metric on held-out episodes, with its 95%% CI",
                       description="Run a trained network on held-out episodes: the task's test split where it has "
                                   "one (oneshot: test classes; images: test images), always episodes from a seed "
                                   "stream training never used (run seed + 3000017). Prints the metric with its 95% "
                                   "CI (oneshot's accuracy: Wilson binomial; otherwise mean ± 1.96 SE) and writes it "
                                   "as JSON. RL tasks sample their actions from the policy. With --lava, the run's "
                                   "exported network runs in Lava's CPU simulator on the same episodes (snn-oneshot: "
                                   "features streamed in as spikes; plastic weights reset every episode).")
    p.add_argument("run", metavar="RUN", help="run folder (holding checkpoint.pt) or a checkpoint file")
    p.add_argument("--episodes", type=_positive_int, default=1000, help="held-out episodes (default 1000)")
    p.add_argument("--split", choices=["test", "train"], default="test",
                   help="data split of the episodes (default test; train: the training data on new episodes)")
    p.add_argument("--batch", type=_positive_int, default=None, help="episodes per batch (default min(EPISODES, 32))")
    p.add_argument("--seed", type=_nonneg_int, default=None,
                   help="seed of the held-out stream (default: the run's seed + 3000017)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    p.add_argument("--out", default=None, metavar="FILE.json", help="where to write the result (default RUN/held_out.json)")
    p.add_argument("--data", type=Path, default=None,
                   help="the run's dataset folder, where it has moved since training (oneshot: Omniglot, images: CIFAR-10)")
    p.add_argument("--untrained", action="store_true",
                   help="evaluate the run's initial network instead (the baseline training improved on)")
    p.add_argument("--lava", choices=["float", "fixed"], default=None,
                   help="run the exported network in Lava (float, or Loihi fixed point) on the same episodes "
                        "(snn-oneshot; writes RUN/held_out_lava_MODE.json unless --out)")
    p.add_argument("--copies", type=_positive_int, default=None,
                   help="--lava: episodes per Lava run, as disjoint copies of the network (default: from its size)")
    p.set_defaults(fn=_cmd_evaluate)

    p = sub.add_parser("plot", help="spike raster and weight/trace evolution of a spiking checkpoint")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--out", default=None, help="PNG path (default: next to the checkpoint)")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the plotted episode")
    p.set_defaults(fn=_cmd_plot)

    p = sub.add_parser("export", help="export a spiking checkpoint to Lava")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mode", choices=["float", "fixed"], default="float")
    p.add_argument("--episodes", type=_positive_int, default=None,
                   help="task episodes saved as inputs.npy, run_lava.py's default input (default: the fewest "
                        "with >= 200 steps, at most 10)")
    p.add_argument("--inputs", metavar="FILE.npy", default=None,
                   help="save these network inputs ([T, n_in] or [episodes, T, n_in]) instead of task episodes")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the saved task episodes")
    p.set_defaults(fn=_cmd_export)

    p = sub.add_parser("verify", help="run torch and Lava side by side on the same inputs and compare",
                       description="Run the torch float64 reference and the Lava export on the same inputs and "
                                   "compare spikes and plastic weights. Default inputs: episodes of the checkpoint's "
                                   "own task, encoded as its model encodes them, each from a fresh state. Exit 0 when "
                                   "ok, 1 when not (divergence, or a silent/saturated population or unchanged "
                                   "plastic weights unless --allow-silent), 2 on unusable input, 130 on Ctrl-C.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint.pt or its run folder, an export folder or IR file")
    p.add_argument("--episodes", type=_positive_int, default=None,
                   help="task episodes to run, each from a fresh state (default: the fewest whole episodes with "
                        ">= 200 steps in all, at most 10; with --steps: >= STEPS)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="task inputs: at least this many steps in whole episodes (default 200); --inputs: the first "
                        "STEPS of each episode; --random-inputs: the run's length (default 200)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--inputs", metavar="FILE.npy", default=None,
                     help="network inputs [T, n_in] or [episodes, T, n_in] instead of task episodes")
    src.add_argument("--random-inputs", metavar="RATE", type=_rate, default=None,
                     help="random inputs instead of task episodes: Bernoulli(RATE) spikes (current inputs: N(0,1) "
                          "currents present with probability RATE), RATE in (0, 1]")
    p.add_argument("--allow-silent", action="store_true",
                   help="accept silent or saturated populations and unchanged plastic weights (still reported)")
    p.add_argument("--mode", choices=["float", "fixed"], default="float")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--backend", choices=["cpu", "loihi2"], default="cpu")
    p.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the verification episodes/inputs")
    p.set_defaults(fn=_cmd_verify)

    p = sub.add_parser("make-omniglot", help="write a synthetic data set in Omniglot's layout (for oneshot --data)",
                       description="Write font glyphs with random per-drawer distortions in Omniglot's folder "
                                   "layout (images_background/ and images_evaluation/, disjoint script families), "
                                   "readable by the oneshot task's --data. Synthetic: not Omniglot.")
    p.add_argument("out", metavar="OUT", nargs="?", default=None, help="output folder")
    p.add_argument("--background-alphabets", type=_nonneg_int, default=None, metavar="N",
                   help="background alphabets, the first N (default: all)")
    p.add_argument("--evaluation-alphabets", type=_nonneg_int, default=None, metavar="N",
                   help="evaluation alphabets, the first N (default: all)")
    p.add_argument("--chars", type=_positive_int, default=None, metavar="N",
                   help="characters per alphabet, a seeded choice (default: all of each alphabet)")
    p.add_argument("--drawers", type=_positive_int, default=20, metavar="N", help="instances per character (default 20)")
    p.add_argument("--size", type=_number(int, 16, strict=False), default=105, help="image side in pixels (default 105)")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--distortion", type=_distortion, default=1.0,
                   help="scale of the drawers' distortions, in [0, 3] (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace the data set that OUT already holds")
    p.add_argument("--list", action="store_true", help="list the available alphabets and exit")
    p.set_defaults(fn=_cmd_make_omniglot)

    p = sub.add_parser("continual", help="continual-learning benchmark (task sequences, EWC, plastic learners)",
                       description="Train each method on a sequence of tasks, one after another, and score every "
                                   "task's test split after each (accuracy matrix R, ACC, BWT, forgetting). Writes "
                                   "OUT/results.json and OUT/results.md.")
    p.add_argument("--task", required=True, help="continual task id (see 'spikeplastic list')")
    p.add_argument("--method", nargs="+", required=True, metavar="METHOD",
                   help="one or more method ids (see 'spikeplastic list'), or all")
    p.add_argument("--seeds", nargs="+", type=_nonneg_int, default=[0], metavar="SEED",
                   help="seeds, integers >= 0 (default 0); each draws the splits, permutations and inits")
    p.add_argument("--out", required=True, help="output folder (results.json, results.md)")
    p.add_argument("--tasks", type=_number(int, 2, strict=False), default=None, metavar="N",
                   help="tasks in the sequence, >= 2 (default: the task's own, 5)")
    p.add_argument("--quick", action="store_true", help="CI-sized settings (3 tasks, few epochs and meta-steps)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="ContinualConfig field override (repeatable), e.g. epochs=10 or lambdas=(1,10)")
    p.add_argument("--overwrite", action="store_true", help="replace the results that OUT already holds")
    p.set_defaults(fn=_cmd_continual)

    p = sub.add_parser("list", help="list task and model ids")
    p.set_defaults(fn=_cmd_list)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    ap = build_parser()
    try:
        args = ap.parse_args(None if argv is None else list(argv))
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), message already printed
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        return int(args.fn(args))
    except UsageError as e:
        print(f"spikeplastic {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spikeplastic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
