"""Ctrl-C while a checkpoint is written: the write completes, then ``KeyboardInterrupt``.

Interrupted inside ``torch.save``, torch's zip writer turned the ``KeyboardInterrupt`` into a
``RuntimeError`` ("unexpected pos ...") and ``spikeplastic train`` died with a traceback and exit
status 1 (found by ``benchmarks/reliability.py``).
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from spikeplastic.meta import checkpoint

PAYLOAD = {"episode": 3, "model_state": {"w": torch.arange(40_000, dtype=torch.float32)}}


class _CtrlCOnWrite:
    """A file whose ``n``-th write sends this process SIGINT (a Ctrl-C mid-write)."""

    def __init__(self, fh: Any, n: int = 3) -> None:
        self.fh, self.n, self.writes = fh, n, 0

    def write(self, b: Any) -> int:
        self.writes += 1
        if self.writes == self.n:
            os.kill(os.getpid(), signal.SIGINT)
        return self.fh.write(b)

    def flush(self) -> None:
        self.fh.flush()


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler, as in a program started from a terminal (a test run started in
    the background by a non-interactive shell inherits SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def ctrl_c_mid_write(monkeypatch: pytest.MonkeyPatch) -> list[_CtrlCOnWrite]:
    real = torch.save
    files: list[_CtrlCOnWrite] = []

    def save(obj: Any, f: Any, *a: Any, **k: Any) -> None:
        files.append(_CtrlCOnWrite(f))
        real(obj, files[-1], *a, **k)

    monkeypatch.setattr(torch, "save", save)
    return files


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_ctrl_c_during_a_checkpoint_write(tmp_path: Path, ctrl_c_mid_write: list[_CtrlCOnWrite],
                                          default_sigint: None) -> None:
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, PAYLOAD)
    assert ctrl_c_mid_write and ctrl_c_mid_write[0].writes > ctrl_c_mid_write[0].n, "vacuous: no write after the signal"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the SIGINT handler was not restored"
    ck = torch.load(path, weights_only=True)  # complete and readable
    assert ck["episode"] == 3 and torch.equal(ck["model_state"]["w"], PAYLOAD["model_state"]["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"], "a temporary file was left"


def test_a_program_handler_is_left_alone(tmp_path: Path, ctrl_c_mid_write: list[_CtrlCOnWrite]) -> None:
    got: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda s, f: got.append(s))
    try:
        checkpoint.save_checkpoint(tmp_path / "checkpoint.pt", PAYLOAD)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert got == [signal.SIGINT]  # the program's own handler saw the Ctrl-C, at once
