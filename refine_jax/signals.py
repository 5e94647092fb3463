"""SIGTERM / SIGINT caught from the first line of `main`, before the heavy imports.

Until the training loop installs its own handlers (train._Signals), a signal would otherwise interrupt an import
with a traceback, or be raised inside a JAX garbage-collection callback, where Python prints and drops it (the
run then trained to the end). `catch_early` records the signal instead; train._Signals starts from what was
recorded, so a signal that arrived while importing or initialising is acted on (exit 3, nothing trained).
Standard library only: importing this module must cost nothing.
"""
from __future__ import annotations

import signal
from typing import Callable, Optional

_received: Optional[int] = None


def _record(signum, frame) -> None:
  global _received
  _received = signum


def catch_early() -> Callable[[], None]:
  """Records SIGTERM / SIGINT from now on; returns a function that restores the previous handlers."""
  old = {s: signal.signal(s, _record) for s in (signal.SIGTERM, signal.SIGINT)}

  def restore() -> None:
    for s, h in old.items():
      signal.signal(s, h)
  return restore


def received_early() -> Optional[int]:
  """The last signal recorded by `catch_early`'s handler, or None."""
  return _received
