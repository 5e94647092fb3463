"""SIGTERM / SIGINT caught from the first line of `main`, before the heavy imports.

Until the training loop installs its own handlers (`Watch`), a signal would otherwise interrupt an import
with a traceback, or be raised inside a JAX garbage-collection callback, where Python prints and drops it (the
run then trained to the end). `catch_early` records the signal instead; `Watch` starts from what was
recorded, so a signal that arrived while importing or initialising is acted on (exit 3, nothing trained).
Standard library only at import (JAX is imported by `Watch.agreed` when it runs): importing this module must cost
nothing.
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


def stop_at_once() -> Callable[[], None]:
  """For commands that do not train (report, preview, export, ...): SIGTERM / SIGINT raise Preempted where the
  program is, so the command ends with exit 3 and one line (what it writes goes through a temporary file and a
  rename, so nothing is left half-written). Returns a function that restores the previous handlers."""
  from refine_jax.errors import Preempted

  def stop(signum, frame):
    raise Preempted(f'received signal {signum}; stopped before finishing (nothing is left half-written)')
  old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}

  def restore() -> None:
    for s, h in old.items():
      signal.signal(s, h)
  return restore


def received_early() -> Optional[int]:
  """The last signal recorded by `catch_early`'s handler, or None."""
  return _received


class Watch:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step (a context: the previous handlers come
  back at its end). Starts from a signal `catch_early` recorded while `main` was importing."""

  def __init__(self):
    self.received: Optional[int] = received_early()
    self._old = {}

  def __enter__(self) -> 'Watch':
    for s in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[s] = signal.signal(s, self._handle)
      except ValueError:  # not the main thread
        pass
    return self

  def _handle(self, signum, frame) -> None:
    self.received = signum

  def agreed(self, sync_point: bool) -> int:
    """The signal to act on now, the same on every process: one process alone acts at once; several agree
    at sync points (log steps, evals, checkpoints), since a signal may reach only one host."""
    import jax
    if jax.process_count() == 1:
      return self.received or 0
    if not sync_point:
      return 0
    import numpy as np
    from jax.experimental import multihost_utils
    return int(np.max(multihost_utils.process_allgather(np.int32(self.received or 0))))

  def __exit__(self, *exc) -> None:
    for s, h in self._old.items():
      signal.signal(s, h)
