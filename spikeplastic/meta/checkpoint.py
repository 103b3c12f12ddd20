"""Checkpoints: atomic writes, every RNG state, and the network's IR for the exporter.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python containers, so it
loads with ``torch.load(path, weights_only=True)``. Keys::

    format            "spikeplastic-checkpoint"          version   1
    episode           outer steps completed
    config            TrainConfig.to_dict()
    model_state       model.state_dict()                  optimizer_state   Adam's state_dict()
    rng               {"torch": ByteTensor, "cuda": [ByteTensor]*, "task": ByteTensor,
                       "action": ByteTensor, "python": tuple, "numpy": {...}}
    history           metric records so far (the lines of metrics.jsonl)
    n_params          trainable scalars
    ir                None, or {"header": JSON str, "arrays": {key: float64 tensor}} -- the
                      model's spikeplastic Network as NetworkIR.to_dict(); see :func:`load_ir`
    data_splits       None, or {split: [item names]} of a task with data splits (classes, source
                      images, batch files), as the run built them; checked by held-out evaluation
                      (absent from checkpoints written before it existed)
    versions          {"spikeplastic": ..., "torch": ...}
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import signal
import threading
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import ir as _ir

__all__ = [
    "CHECKPOINT_NAME",
    "save_checkpoint",
    "load_checkpoint",
    "read_torch_file",
    "CheckpointError",
    "load_ir",
    "network_of",
    "ir_payload",
    "capture_rng",
    "restore_rng",
]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "spikeplastic-checkpoint"
VERSION = 1


def network_of(model: nn.Module) -> Any:
    """The single :class:`~spikeplastic.Network` inside ``model`` (or the model itself), else ``None``."""
    from ..network import Network

    nets = [m for m in model.modules() if isinstance(m, Network)]
    return nets[0] if len(nets) == 1 else None


def ir_payload(model: nn.Module, meta: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """``{"header", "arrays"}`` of the wrapped network's IR (``None`` when there is no Network)."""
    net = network_of(model)
    if net is None:
        return None
    header, arrays = net.to_ir(meta=meta).to_dict()
    return {
        "header": json.dumps(header),
        "arrays": {k: torch.tensor(np.array(v, dtype=np.float64)) for k, v in arrays.items()},
    }


def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """Every random state the run depends on: torch (CPU and CUDA), the named generators,
    Python's ``random`` and NumPy's global state."""
    st = np.random.get_state()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {"name": st[0], "keys": torch.from_numpy(st[1].astype(np.int64)), "pos": int(st[2]),
                  "has_gauss": int(st[3]), "cached": float(st[4])},
    }
    for k, g in generators.items():
        out[k] = g.get_state()
    return out


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng` (generators are restored in place)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    for k, g in generators.items():
        if k not in state:
            raise ValueError(f"checkpoint has no state for the {k!r} generator")
        g.set_state(state[k])


@contextlib.contextmanager
def _ctrl_c_after() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) back until the block ends, then deliver it.

    Interrupted inside ``torch.save``, torch's zip writer replaces the ``KeyboardInterrupt`` with a
    ``RuntimeError`` ("unexpected pos ...") when it closes, so the program died with a traceback
    (found by ``benchmarks/reliability.py``); a checkpoint takes milliseconds to write, so it is
    finished first. Only from the main thread, and only over Python's default handler (a program's
    own SIGINT handler, or ``SIG_IGN``, is left alone).
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    got: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got:
            raise KeyboardInterrupt


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A crash mid-write leaves the previous checkpoint intact. A Ctrl-C during the write is delivered
    (``KeyboardInterrupt``) once the write is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = {"format": FORMAT, "version": VERSION, **payload}
    with _ctrl_c_after():
        _write_atomically(tmp, path, data)
    return path


def _write_atomically(tmp: Path, path: Path, data: Mapping[str, Any]) -> None:
    try:
        with open(tmp, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint; the message is one line naming the file and the
    reason (``reason``: the reason alone)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


def _unreadable(p: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(p)!r} cannot be read: {reason}", reason)


#: keys every checkpoint written by the trainer holds
REQUIRED_KEYS = ("episode", "config", "model_state")


def _unreadable_reason(error: BaseException) -> str:
    """One line saying why ``torch.load`` failed on ``p`` (never torch's advice to load with
    ``weights_only=False``, which would run code from the file)."""
    msg = str(error)
    if "weights_only" in msg or "Weights only" in msg or isinstance(error, pickle.UnpicklingError):
        return ("it holds Python objects other than tensors and plain data, so it was not written by "
                "spikeplastic (checkpoints are loaded without running code from the file)")
    first = next((line.strip() for line in msg.splitlines() if line.strip()), type(error).__name__)
    return f"the file is corrupt ({first[:200]})"


def read_torch_file(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with a one-line :class:`CheckpointError` naming the
    file when it cannot be read (empty, truncated, corrupt, not a torch file, pickled objects).

    The one place where spikeplastic reads a torch file (training checkpoints, exported IRs).

    Raises:
        FileNotFoundError: no file at ``path``. CheckpointError: the file cannot be read.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(p)!r}")
    size = p.stat().st_size
    if size == 0:
        raise _unreadable(p, "the file is empty (0 bytes)")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04" and not zipfile.is_zipfile(p):
        raise _unreadable(p, f"the file is truncated or corrupt (an incomplete zip archive of {size} bytes)")
    if magic == b"PK\x03\x04":
        with zipfile.ZipFile(p) as zf:
            if not any(n.endswith("data.pkl") for n in zf.namelist()):
                raise _unreadable(p, "a zip archive but not a torch file (no data.pkl inside)")
    elif magic[:1] != b"\x80":  # neither torch's zip nor its legacy pickle format
        raise _unreadable(p, f"not a torch file (it starts with {magic!r})")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for unreadable files
        raise _unreadable(p, _unreadable_reason(e)) from None


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the trainer (``weights_only`` loading: no code runs).

    ``path`` may be the file or the run folder holding ``checkpoint.pt``.

    Raises:
        FileNotFoundError: nothing at ``path``. CheckpointError (a ``ValueError``): not a readable
        spikeplastic checkpoint; the message is one line naming the file and the reason.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(p)!r} (expected a file written by 'spikeplastic train')")
    data = read_torch_file(p, map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(p)!r} is not a spikeplastic checkpoint (no format tag {FORMAT!r})")
    version = data.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"checkpoint {str(p)!r} has version {version!r}; this spikeplastic reads up to {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {str(p)!r} is incomplete: it lacks {missing}")
    return data


def load_ir(path_or_checkpoint: str | os.PathLike[str] | Mapping[str, Any]) -> _ir.NetworkIR:
    """The :class:`~spikeplastic.ir.NetworkIR` stored in a checkpoint (path or loaded dict).

    Raises:
        ValueError: the checkpoint's model has no spikeplastic Network (e.g. a rate baseline).
    """
    data = path_or_checkpoint if isinstance(path_or_checkpoint, Mapping) else load_checkpoint(path_or_checkpoint)
    payload = data.get("ir")
    if payload is None:
        model = data.get("config", {}).get("model", "?")
        raise ValueError(f"checkpoint of model {model!r} holds no network IR (only spiking models wrap a Network)")
    arrays = {k: v.numpy() for k, v in payload["arrays"].items()}
    return _ir.NetworkIR.from_dict(json.loads(payload["header"]), arrays)
