"""Device selection with clear errors."""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """Map ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` to a usable :class:`torch.device`.

    ``"auto"`` is CUDA when ``torch.cuda.is_available()`` else CPU.

    Raises:
        ValueError: an unknown device string, or CUDA requested on a machine without a GPU
            (or an index beyond the visible GPUs).
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a str, got {type(device).__name__}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but no CUDA GPU is available "
                "(torch.cuda.is_available() is False); use 'cpu' or 'auto'"
            )
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
        return dev
    raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
