"""The training loop's clock: speed for the progress lines, and where a run's time went (timing.json).

Seconds in the phase loops (from each phase's first compiled step), in evals (with their diagnostics) and blocked
in checkpoint saves, and how many of each; the speed a progress line shows leaves out the evals and saves of its
interval (the ETA counts them).
"""
from __future__ import annotations

import time
from typing import Optional

import jax


class Clock:

  def __init__(self, step: int):
    self.t_start = time.time()
    self.images = 0
    self.seconds = {'loop': 0.0, 'eval': 0.0, 'save': 0.0}
    self.count = {'eval': 0, 'save': 0}
    self.first_evals: dict[str, float] = {}  # each phase's first eval here (it compiles the phase's eval programs)
    self.t_last, self.step_last, self.paused = self.t_start, step, 0.0

  def restart(self, step: int) -> None:
    """The speed of the next progress line counts from now (a phase's first step has compiled)."""
    self.t_last, self.step_last, self.paused = time.time(), step, 0.0

  def add(self, what: str, since: float) -> None:
    """`what` ('eval' or 'save') took the time since `since`: left out of the next progress line's speed."""
    dt = time.time() - since
    self.seconds[what] += dt
    self.count[what] += 1
    self.paused += dt

  def progress(self, step: int, total_steps: int, batch: int) -> tuple[float, str]:
    """(images/s since the last progress line, without its evals and saves; the ETA as h:mm:ss) and restarts."""
    dt, n = time.time() - self.t_last, (step - self.step_last) * batch
    ips = n / max(dt - self.paused, 1e-9) if n else float('nan')
    eta = _hms((total_steps - step) * batch * dt / n) if n else '?'
    self.restart(step)
    return ips, eta

  def timing(self) -> dict:
    """timing.json: images trained, seconds from set-up to the end (`wall_s`), in the phase loops (`loop_s`), of
    which evaluation with its diagnostics (`eval_s`; `first_eval_s`: each phase's first eval, which compiles its
    programs) and blocking checkpoint saves (`save_s`), their counts, and the peak device memory (None where the
    backend keeps no statistics: CPU)."""
    k = self.seconds
    return {'images': self.images, 'wall_s': time.time() - self.t_start, 'loop_s': k['loop'], 'eval_s': k['eval'],
            'first_eval_s': sum(self.first_evals.values()), 'evals': self.count['eval'], 'save_s': k['save'],
            'saves': self.count['save'], 'peak_bytes_in_use': _peak_bytes(),
            'device_kind': jax.devices()[0].device_kind, 'device_count': jax.device_count()}

  def summary_line(self) -> str:
    k = self.seconds
    return (f'trained {self.images} images in {time.time() - self.t_start:.1f}s ({k["loop"]:.1f}s in the phase '
            f'loops, of which evaluation {k["eval"]:.1f}s and blocking checkpoint saves {k["save"]:.1f}s)')


def _peak_bytes() -> Optional[int]:
  """The largest peak memory in use among this process's devices; None where the backend keeps no statistics."""
  stats = [d.memory_stats() for d in jax.local_devices()]
  peaks = [s['peak_bytes_in_use'] for s in stats if s and 'peak_bytes_in_use' in s]
  return max(peaks) if peaks else None


def _hms(seconds: float) -> str:
  s = int(seconds)
  return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'
