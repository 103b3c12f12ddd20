"""The exporter's errors (all importable from :mod:`spikeplastic.export`).

- :class:`ExportError` (``ValueError``): a value the target cannot hold (a decay off the rule-literal
  grid, a threshold beyond 17 bits, ...).
- :class:`UnsupportedError` (``NotImplementedError``): a construct with no Lava mapping.
- :class:`BackendUnavailableError` (``RuntimeError``): the requested Lava backend is not installed.
- :class:`LavaTimeoutError` (``TimeoutError``): a Lava run did not finish in time.
"""
from __future__ import annotations

__all__ = ["ExportError", "UnsupportedError", "BackendUnavailableError", "LavaTimeoutError"]


class ExportError(ValueError):
    """The IR cannot be exported as asked (a value outside what the target can hold)."""


class UnsupportedError(NotImplementedError):
    """A construct the exporter does not map to Lava (names the construct and the alternative)."""


class BackendUnavailableError(RuntimeError):
    """The requested Lava backend is not installed (e.g. ``lava-loihi`` for ``backend="loihi2"``)."""


class LavaTimeoutError(TimeoutError):
    """A Lava run did not finish in time; its OS processes were killed."""
