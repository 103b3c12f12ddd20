"""Shared fixtures of the exporter tests: Lava availability and a leak check on Lava's OS processes."""
from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest


@pytest.fixture
def no_stray_processes() -> Iterator[None]:
    """Fail if a test leaves Lava's worker processes (children of this process) alive."""
    before = {p.pid for p in multiprocessing.active_children()}
    yield
    left = [p for p in multiprocessing.active_children() if p.pid not in before]
    for p in left:  # clean up what we started, then fail loudly
        p.kill()
        p.join(5)
    assert not left, f"Lava left {len(left)} OS processes running: {[p.name for p in left]}"
