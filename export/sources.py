"""Where a network comes from: a training checkpoint (or its run folder), an IR file, or an export
folder (:func:`load_source`); used by the exporter, the verification and the CLI commands.

- a training checkpoint (``torch.save`` dict, e.g. ``checkpoint.pt`` or its run folder) whose key
  ``"ir"`` holds ``{"header": <JSON str>, "arrays": {name: tensor}}`` (what
  ``spikeplastic.meta.checkpoint`` writes; a header given as a dict is accepted too); when it also
  holds ``"config"`` and ``"model_state"`` (every checkpoint ``spikeplastic train`` writes), its
  task's episodes are the default verification inputs;
- an IR file written by :func:`spikeplastic.ir.save` (``.npz`` with an ``__ir__`` header), or an
  export folder (``network_ir.npz``; the ``inputs.npy`` export saved beside it is its default input).
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeplastic import ir as _ir

__all__ = ["NetworkSource", "load_source", "load_network_ir", "IR_NAME", "MANIFEST_NAME", "CHECKPOINT_NAME"]

IR_NAME = "network_ir.npz"
MANIFEST_NAME = "export.json"
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class NetworkSource:
    """A network read from a file: its IR and where default verification inputs can come from.

    ``checkpoint``: the training checkpoint dict (task episodes), when the file is one with
    ``config`` and ``model_state``; ``inputs_file``: the ``inputs.npy`` an export saved beside its IR.
    """

    path: Path
    ir: _ir.NetworkIR
    checkpoint: Mapping[str, Any] | None = None
    inputs_file: Path | None = None


def _export_inputs(ir_path: Path) -> Path | None:
    """The inputs file recorded by the export manifest next to ``ir_path`` (None when there is none)."""
    man = ir_path.parent / MANIFEST_NAME
    if not man.is_file():
        return None
    try:
        data = json.loads(man.read_text())
    except (OSError, ValueError):
        return None
    entry = data.get("inputs") if isinstance(data, dict) and data.get("ir") == ir_path.name else None
    f = ir_path.parent / entry["file"] if isinstance(entry, dict) and isinstance(entry.get("file"), str) else None
    return f if f is not None and f.is_file() else None


def load_source(path: str | os.PathLike[str]) -> NetworkSource:
    """The network at ``path``: a checkpoint or run folder, an IR file or an export folder (module doc).

    Raises:
        FileNotFoundError: nothing usable at ``path``. ValueError: a file that holds no network IR.
    """
    p = Path(path)
    if p.is_dir():
        if (p / CHECKPOINT_NAME).is_file():
            p = p / CHECKPOINT_NAME
        elif (p / IR_NAME).is_file():
            p = p / IR_NAME
        else:
            raise FileNotFoundError(f"folder {str(path)!r} holds neither {CHECKPOINT_NAME} (a training run) "
                                    f"nor {IR_NAME} (an export)")
    if not p.is_file():
        raise FileNotFoundError(f"no IR file or checkpoint at {str(path)!r}")
    from spikeplastic.meta.checkpoint import CheckpointError, read_torch_file

    try:
        return NetworkSource(p, _ir.load(p), None, _export_inputs(p))
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
    net_ir = _ir.NetworkIR.from_dict(header, arrays)
    trained = "config" in data and "model_state" in data
    return NetworkSource(p, net_ir, data if trained else None, None)


def load_network_ir(path: str | os.PathLike[str]) -> _ir.NetworkIR:
    """A NetworkIR from an IR ``.npz`` file or a checkpoint holding one under ``"ir"`` (see module doc)."""
    return load_source(path).ir
