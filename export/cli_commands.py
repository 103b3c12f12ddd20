"""Building blocks of ``spikeplastic export`` and ``spikeplastic verify`` (the CLI calls these).

Accepted network sources: :func:`~spikeplastic.export.sources.load_source` (re-exported here).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from spikeplastic import ir as _ir

from .sources import IR_NAME, MANIFEST_NAME, NetworkSource, load_network_ir, load_source

__all__ = ["NetworkSource", "load_source", "load_network_ir", "export_command", "verify_command", "LOADER_NAME",
           "IR_NAME", "INPUTS_NAME", "MANIFEST_NAME"]

LOADER_NAME = "run_lava.py"
INPUTS_NAME = "inputs.npy"

_LOADER = '''#!/usr/bin/env python
"""Rebuild the Lava network exported by spikeplastic and run it (written by `spikeplastic export`).

    python {loader} [--inputs x.npy | --random-inputs RATE] [--steps N] [--third-factor m.npy]
                    [--noise-seed S] [--allow-silent] [--out record.npz]

Default inputs: {inputs_doc}. Runs each episode from a fresh state, prints the spikes of every
population and the weight change of every plastic projection, and exits with status 1 when a
population is silent or a plastic projection's weights do not change (--allow-silent accepts
that). Needs spikeplastic with lava-nc.
"""
import argparse
import pathlib
import sys

import numpy as np

from spikeplastic import ir
from spikeplastic.export import to_lava
from spikeplastic.export.verification import check_inputs, random_inputs

HERE = pathlib.Path(__file__).resolve().parent
MODE = {mode!r}
INPUTS = {inputs_name!r}  # task episodes saved by export beside this script (None: none saved)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", help="[T, n_in] or [episodes, T, n_in] .npy array of network inputs "
                                     "(default: the saved task episodes)")
    ap.add_argument("--random-inputs", type=float, metavar="RATE", help="random inputs at this rate in (0, 1] instead")
    ap.add_argument("--steps", type=int, default=None, help="steps to run per episode (default: all)")
    ap.add_argument("--third-factor", help="[T] or [T, n_post] .npy array (externally modulated nets)")
    ap.add_argument("--noise-seed", type=int, default=0,
                    help="node perturbation: noise seed of the first episode (episode e: S + e * projections)")
    ap.add_argument("--allow-silent", action="store_true", help="exit 0 even if nothing spikes or learns")
    ap.add_argument("--out", default=str(HERE / "lava_record.npz"))
    args = ap.parse_args()
    net_ir = ir.load(HERE / {ir_name!r})
    if args.inputs and args.random_inputs is not None:
        ap.error("--inputs and --random-inputs exclude each other")
    if args.random_inputs is not None:
        if not 0 < args.random_inputs <= 1:
            ap.error(f"argument --random-inputs: expected a rate in (0, 1], got {{args.random_inputs}}")
        x = random_inputs(net_ir, args.steps or 200, args.random_inputs)[None]
        source = f"random, rate {{args.random_inputs}}"
    else:
        path = args.inputs or (INPUTS and str(HERE / INPUTS))
        if not path:
            ap.error("this export saved no task inputs: pass --inputs FILE.npy or --random-inputs RATE")
        try:
            x = check_inputs(np.load(path, allow_pickle=False), net_ir, f"--inputs {{path}}")
        except (OSError, ValueError) as e:
            ap.error(str(e))
        source = path
    tf = None if args.third_factor is None else np.load(args.third_factor, allow_pickle=False)
    lnet = to_lava(net_ir, mode=MODE)
    spikes, change, wscale, arrays, steps, wall = {{}}, {{}}, {{}}, {{}}, 0, 0.0
    for e, xe in enumerate(x):  # each episode from a fresh state, as in training
        rec = lnet.run(xe, steps=args.steps, third_factor=tf, noise_seed=args.noise_seed + e * len(net_ir.projections))
        steps, wall = steps + rec.steps, wall + rec.wall_s
        for k, n in rec.spike_counts().items():
            spikes[k] = spikes.get(k, 0) + n
        for k, ch in rec.weight_change().items():
            change[k] = max(change.get(k, 0.0), ch)
            wscale[k] = max(wscale.get(k, 0.0), float(np.abs(rec.weights[k]).max()))
        arrays.update({{f"episode{{e}}/spikes/{{k}}": v for k, v in rec.spikes.items()}})
        arrays.update({{f"episode{{e}}/weights/{{k}}": v for k, v in (rec.weights or {{}}).items()}})
    np.savez(args.out, **arrays)
    print(f"inputs: {{source}} ({{len(x)}} run(s), {{steps}} steps in all)")
    silence = [f"population {{k!r}} is silent" for k, n in spikes.items() if n == 0]
    silence += [f"plastic projection {{k!r}} did not change" for k, ch in change.items() if not ch > 1e-12 * wscale[k]]
    for k, n in spikes.items():
        print(f"{{k}}: {{n}} spikes in {{steps}} steps ({{rec.spikes[k].shape[1]}} neurons)")
    for k, ch in change.items():
        print(f"{{k}}: weight change max |W[t] - W_init| = {{ch:.4g}}")
    print(f"{{steps / wall if wall > 0 else float('inf'):.0f}} steps/s; record written to {{args.out}}")
    for r in silence:
        print(("accepted (--allow-silent): " if args.allow_silent else "NOT OK: ") + r)
    return 1 if silence and not args.allow_silent else 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _task_or_given_inputs(src: NetworkSource, inputs: Any, episodes: int | None, seed: int) -> tuple[np.ndarray | None, str | None]:
    """export's saved inputs: ``inputs`` if given, else the checkpoint's task episodes, else an export's inputs."""
    from .verification import DEFAULT_MAX_EPISODES, DEFAULT_STEPS, check_inputs

    if inputs is not None:
        if episodes is not None:
            raise ValueError("episodes= applies to task inputs only, not with inputs=")
        if isinstance(inputs, (str, os.PathLike)):
            x = check_inputs(_read_npy(inputs, "--inputs"), src.ir, f"argument --inputs ({str(inputs)!r})")
            return x, f"{inputs} {list(x.shape)}"
        x = check_inputs(inputs, src.ir, "inputs")
        return x, f"given array {list(x.shape)}"
    if src.checkpoint is not None:
        from spikeplastic.meta.replay import network_inputs

        ti = network_inputs(src.checkpoint, episodes=episodes, min_steps=DEFAULT_STEPS, seed=seed,
                            max_episodes=DEFAULT_MAX_EPISODES if episodes is None else None)
        return check_inputs(ti.x, src.ir, "the task's encoded inputs"), ti.describe()
    if episodes is not None:
        raise ValueError(f"episodes= needs a training checkpoint with its task; {str(src.path)!r} is not one")
    if src.inputs_file is not None:
        return check_inputs(np.load(src.inputs_file, allow_pickle=False), src.ir, str(src.inputs_file)), \
            f"copied from {src.inputs_file}"
    return None, None


def export_command(ckpt_or_ir_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], mode: str = "float",
                   *, inputs: Any = None, episodes: int | None = None, seed: int = 0) -> dict[str, Path]:
    """Validate the network for a Lava export and write ``out_dir/{network_ir.npz, run_lava.py, export.json}``
    and, when there are inputs to save, ``inputs.npy``.

    The IR is checked exactly as ``to_lava`` would (no Lava needed): unsupported constructs raise
    here, before anything is written. ``inputs.npy`` (``[T, n_in]``, ``run_lava.py``'s default
    input) holds ``inputs`` when given (an array or a ``.npy`` path; a bad file raises a ``ValueError``
    starting "argument --inputs"), else ``episodes`` episodes of a training checkpoint's own
    task encoded by its model (default: the fewest with >= 200 steps; seed ``seed``), as
    ``spikeplastic verify`` uses them; an IR file without a task gets none. ``export.json`` lists
    the files, the mode, the inputs' origin, the learning-rule strings and, in fixed mode, the
    quantisation report. Returns the written paths (``"ir"``, ``"loader"``, ``"manifest"``, and
    ``"inputs"`` when saved).
    """
    from ._plan import build_fixed_plan, build_float_plan, check_mode_backend

    src = load_source(ckpt_or_ir_path)
    net_ir = src.ir
    check_mode_backend(mode, "cpu")
    quant = None
    if mode == "float":
        plan = build_float_plan(net_ir)
    else:
        from .quantize import quantize_ir

        fixed, rep = quantize_ir(net_ir)
        plan = build_fixed_plan(fixed)
        quant = rep.to_dict()
    x, inputs_desc = _task_or_given_inputs(src, inputs, episodes, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ir_path = out / IR_NAME
    _ir.save(net_ir, ir_path)
    written = {"ir": ir_path}
    if x is not None:
        written["inputs"] = out / INPUTS_NAME
        np.save(written["inputs"], x)
    loader = out / LOADER_NAME
    inputs_doc = (f"{INPUTS_NAME} beside this script ({inputs_desc})" if x is not None
                  else "none saved (the source had no task): pass --inputs or --random-inputs")
    loader.write_text(_LOADER.format(loader=LOADER_NAME, mode=mode, ir_name=IR_NAME,
                                     inputs_name=INPUTS_NAME if x is not None else None, inputs_doc=inputs_doc))
    loader.chmod(0o755)
    manifest = {
        "format": "spikeplastic-lava-export", "version": 1, "mode": mode, "ir": IR_NAME, "loader": LOADER_NAME,
        "source": str(ckpt_or_ir_path),
        "inputs": None if x is None else {"file": INPUTS_NAME, "shape": list(x.shape), "source": inputs_desc},
        "populations": {p.name: {"n": p.n, "model": p.kind} for p in plan.populations},
        "projections": {p.name: {"pre": p.pre, "post": p.post, "plastic": p.plastic, "dw": p.dw, "dt": p.dt,
                                 "three_factor": p.three_factor} for p in plan.projections},
        "quantization": quant,
    }
    man = out / MANIFEST_NAME
    man.write_text(json.dumps(manifest, indent=2, default=str))
    written.update(loader=loader, manifest=man)
    return written


def _read_npy(path: str | os.PathLike[str], option: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"argument {option}: cannot read {str(path)!r} as a .npy array [T, n_in]: {e}") from None


def verify_command(path: str | os.PathLike[str], steps: int | None = None, mode: str = "float", as_json: bool = False,
                   *, seed: int = 0, backend: str = "cpu", inputs: str | os.PathLike[str] | None = None,
                   random_inputs: float | None = None, episodes: int | None = None, allow_silent: bool = False,
                   stream: Any = None) -> int:
    """Run :func:`~spikeplastic.export.verify` on a network file and print the report.

    ``inputs`` is a ``.npy`` file (``[T, n_in]``); without it and without ``random_inputs`` the
    inputs are the checkpoint's own task episodes (``episodes``; an export folder: its saved
    ``inputs.npy``). Returns the exit status: 0 when the report is ok (the mode's promise holds and,
    unless ``allow_silent``, every population spikes and every plastic projection changes), 1 when
    it is not (the reasons are printed), 2 when the network or the inputs cannot be used or Lava is
    missing/failed. ``backend="loihi2"`` needs Lava's (non-public) Loihi backend and fails with exit
    status 2 and a message saying so when it is not installed. Ctrl-C raises ``KeyboardInterrupt``
    after Lava's processes are stopped (the CLI exits with 130).
    """
    from ._interrupt import sigint_guard
    from .errors import ExportError, UnsupportedError
    from .verification import check_inputs, verify

    stream = sys.stdout if stream is None else stream
    with sigint_guard():
        try:
            src = load_source(path)
            x = None
            if inputs is not None:
                x = check_inputs(_read_npy(inputs, "--inputs"), src.ir, f"argument --inputs ({str(inputs)!r})")
            rep = verify(src, inputs=x, steps=steps, mode=mode, seed=seed, backend=backend, episodes=episodes,
                         random_inputs=random_inputs, allow_silent=allow_silent)
        except (ExportError, UnsupportedError, ImportError, FileNotFoundError, RuntimeError, ValueError, TimeoutError) as e:
            msg = str(e)
            print(f"spikeplastic verify: {'error: ' if msg.startswith('argument ') else type(e).__name__ + ': '}{msg}",
                  file=sys.stderr)
            return 2
    print(rep.to_json() if as_json else rep.summary(), file=stream)
    return 0 if rep.ok else 1
