"""Building blocks of ``spikeplastic export`` and ``spikeplastic verify`` (the CLI calls these).

Accepted network files (:func:`load_network_ir`):

- an IR file written by :func:`spikeplastic.ir.save` (``.npz`` with an ``__ir__`` header);
- a training checkpoint (``torch.save`` dict, e.g. ``checkpoint.pt`` or its run folder) whose key
  ``"ir"`` holds ``{"header": <JSON str>, "arrays": {name: tensor}}`` (what
  ``spikeplastic.meta.checkpoint`` writes; a header given as a dict is accepted too).
"""
from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from spikeplastic import ir as _ir

__all__ = ["load_network_ir", "export_command", "verify_command", "LOADER_NAME", "IR_NAME"]

IR_NAME = "network_ir.npz"
LOADER_NAME = "run_lava.py"
MANIFEST_NAME = "export.json"

_LOADER = '''#!/usr/bin/env python
"""Rebuild the Lava network exported by spikeplastic and run it (written by `spikeplastic export`).

    python {loader} [--inputs x.npy] [--steps N] [--third-factor m.npy] [--out record.npz]

Without --inputs, runs on Bernoulli(0.2) spikes (seed 0). Needs spikeplastic with lava-nc.
"""
import argparse
import pathlib

import numpy as np

from spikeplastic import ir
from spikeplastic.export import to_lava

HERE = pathlib.Path(__file__).resolve().parent
MODE = {mode!r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", help="[T, n_in] .npy array of spikes")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--third-factor", help="[T] or [T, n_post] .npy array (modulated nets)")
    ap.add_argument("--out", default=str(HERE / "lava_record.npz"))
    args = ap.parse_args()
    net_ir = ir.load(HERE / {ir_name!r})
    if args.inputs:
        x = np.load(args.inputs)
    else:
        x = (np.random.default_rng(0).random((args.steps or 100, net_ir.input.n)) < 0.2).astype(float)
    tf = None if args.third_factor is None else np.load(args.third_factor)
    lnet = to_lava(net_ir, mode=MODE)
    rec = lnet.run(x, steps=args.steps, third_factor=tf)
    arrays = {{f"spikes/{{k}}": v for k, v in rec.spikes.items()}}
    arrays.update({{f"weights/{{k}}": v for k, v in (rec.weights or {{}}).items()}})
    np.savez(args.out, **arrays)
    for k, v in rec.spikes.items():
        print(f"{{k}}: {{int(v.sum())}} spikes in {{v.shape[0]}} steps")
    print(f"{{rec.steps_per_s:.0f}} steps/s; record written to {{args.out}}")


if __name__ == "__main__":
    main()
'''


def load_network_ir(path: str | os.PathLike[str]) -> _ir.NetworkIR:
    """A NetworkIR from an IR ``.npz`` file or a checkpoint holding one under ``"ir"`` (see module doc)."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise FileNotFoundError(f"no IR file or checkpoint at {str(path)!r}")
    from spikeplastic.meta.checkpoint import CheckpointError, read_torch_file

    try:
        return _ir.load(p)
    except ValueError:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                if "__ir__.npy" in zf.namelist():
                    raise  # an IR file, but a broken one: its own reason
    try:  # not an IR file: a training checkpoint then
        data = read_torch_file(p)
    except CheckpointError as e:
        raise CheckpointError(f"{str(p)!r} is neither a spikeplastic IR file nor a readable checkpoint: {e.reason}",
                              e.reason) from None
    if not isinstance(data, dict) or data.get("ir") is None:
        raise ValueError(f"{str(p)!r}: the checkpoint has no 'ir' entry (only spiking models carry a network IR)")
    payload = data["ir"]
    if not isinstance(payload, dict) or "header" not in payload or "arrays" not in payload:
        raise ValueError(f"{str(p)!r}: checkpoint['ir'] must be {{'header': ..., 'arrays': {{...}}}}")
    header = payload["header"]
    header = json.loads(header) if isinstance(header, str) else header
    arrays = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in payload["arrays"].items()}
    return _ir.NetworkIR.from_dict(header, arrays)


def export_command(ckpt_or_ir_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], mode: str = "float") -> dict[str, Path]:
    """Validate the network for a Lava export and write ``out_dir/{network_ir.npz, run_lava.py, export.json}``.

    The IR is checked exactly as ``to_lava`` would (no Lava needed): unsupported constructs raise
    here. ``export.json`` lists the files, the mode, the learning-rule strings and, in fixed mode,
    the quantisation report. Returns the written paths.
    """
    from ._plan import build_fixed_plan, build_float_plan, check_mode_backend

    net_ir = load_network_ir(ckpt_or_ir_path)
    check_mode_backend(mode, "cpu")
    quant = None
    if mode == "float":
        plan = build_float_plan(net_ir)
    else:
        from .quantize import quantize_ir

        fixed, rep = quantize_ir(net_ir)
        plan = build_fixed_plan(fixed)
        quant = rep.to_dict()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ir_path = out / IR_NAME
    _ir.save(net_ir, ir_path)
    loader = out / LOADER_NAME
    loader.write_text(_LOADER.format(loader=LOADER_NAME, mode=mode, ir_name=IR_NAME))
    loader.chmod(0o755)
    manifest = {
        "format": "spikeplastic-lava-export", "version": 1, "mode": mode, "ir": IR_NAME, "loader": LOADER_NAME,
        "source": str(ckpt_or_ir_path),
        "populations": {p.name: {"n": p.n, "model": p.kind} for p in plan.populations},
        "projections": {p.name: {"pre": p.pre, "post": p.post, "plastic": p.plastic, "dw": p.dw, "dt": p.dt,
                                 "three_factor": p.three_factor} for p in plan.projections},
        "quantization": quant,
    }
    man = out / MANIFEST_NAME
    man.write_text(json.dumps(manifest, indent=2, default=str))
    return {"ir": ir_path, "loader": loader, "manifest": man}


def verify_command(path: str | os.PathLike[str], steps: int = 1000, mode: str = "float", as_json: bool = False,
                   *, seed: int = 0, backend: str = "cpu", stream: Any = None) -> int:
    """Run :func:`~spikeplastic.export.verify` on a network file and print the report.

    Returns the exit status: 0 when the mode's promise holds (float: identical spikes and weights
    within 1e-9 of the weight scale; fixed: Lava bit-exact with ``simulate_fixed``), 1 when it does
    not (float divergence), 2 when the network cannot be exported or Lava is missing/failed.
    ``backend="loihi2"`` needs Lava's (non-public) Loihi backend and fails with exit status 2 and a
    message saying so when it is not installed.
    """
    from ._plan import ExportError, UnsupportedError
    from .verification import verify

    stream = sys.stdout if stream is None else stream
    try:
        net_ir = load_network_ir(path)
        rep = verify(net_ir, steps=steps, mode=mode, seed=seed, backend=backend)
    except (ExportError, UnsupportedError, ImportError, FileNotFoundError, RuntimeError, ValueError) as e:
        print(f"spikeplastic verify: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    print(rep.to_json() if as_json else rep.summary(), file=stream)
    return 0 if rep.ok else 1
