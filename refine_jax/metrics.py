"""The eval row's metrics, declared once; the per-phase summary; TensorBoard.

Each metric of an eval row (`EVAL_METRICS`, and the phase-end ones of Table 2, `PHASE_END_METRICS`) is
declared with its key in metrics.jsonl, how people read it, the sums it is computed from, whether the eval log
line shows it, and the per-phase summary keys it aggregates into. The evaluator builds the row from these, the
loop's log line prints them, summary.json and the report's tables aggregate them: a new metric touches only this
list. The files themselves (names, atomic writes) live in `workdir`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import statistics
from typing import Callable, Iterable, Optional, Sequence

from absl import logging

from refine_jax import workdir as workdir_lib

# How a summary key aggregates a metric over one phase's eval rows (in step order).
AGGREGATIONS: dict[str, tuple[Callable[[Sequence[float]], float], str]] = {
    'best': (max, 'best'),
    'last': (lambda v: v[-1], 'last'),
    'median10': (lambda v: statistics.median(v[-10:]), 'median of last 10'),
}


@dataclasses.dataclass(frozen=True)
class Metric:
  name: str                    # the key in metrics.jsonl's rows
  label: str                   # how people read it: logs, plots, the report
  sums: str                    # what it is measured on: 'test', 'clean' (R̂) or 'aug' (R̂aug)
  sum: str                     # the masked sum it is the mean of: 'loss', 'top1' or 'top5'
  log: bool = False            # shown in the eval log line
  summary: tuple[tuple[str, str], ...] = ()  # (summary key, aggregation of AGGREGATIONS)


EVAL_METRICS = (
    Metric('test_top1', 'test top-1', 'test', 'top1', log=True,
           summary=(('best_top1', 'best'), ('last_top1', 'last'), ('median_last10_top1', 'median10'))),
    Metric('test_top5', 'test top-5', 'test', 'top5'),
    Metric('test_loss', 'test loss', 'test', 'loss', log=True, summary=(('last_test_loss', 'last'),)),
    Metric('train_clean_loss', 'R̂', 'clean', 'loss', log=True, summary=(('last_train_clean_loss', 'last'),)),
    Metric('train_aug_loss', 'R̂aug', 'aug', 'loss', log=True, summary=(('last_train_aug_loss', 'last'),)),
)
# Table 2 at the paper's resolution: R̂ and R̂aug over the whole training split at each phase's end, in the
# phase's last eval row and, as they are, in its summary; with the count of examples they were measured over.
PHASE_END_METRICS = (
    Metric('phase_end_train_clean_loss', 'R̂ (training split)', 'clean', 'loss'),
    Metric('phase_end_train_aug_loss', 'R̂aug (training split)', 'aug', 'loss'),
)
PHASE_END_COUNT = 'phase_end_examples'
PHASE_END_KEYS = tuple(m.name for m in PHASE_END_METRICS) + (PHASE_END_COUNT,)


def row_values(metrics: Sequence[Metric], sums: dict[str, dict[str, float]]) -> dict[str, float]:
  """Each metric's value from the masked sums of its eval ({'test': {'loss': .., 'top1': .., 'count': ..}, ...})."""
  return {m.name: sums[m.sums][m.sum] / sums[m.sums]['count'] for m in metrics}


def label(name: str) -> str:
  """How people read a metric of the eval row (R̂, R̂aug, test loss, ...)."""
  return next(m.label for m in EVAL_METRICS + PHASE_END_METRICS if m.name == name)


def log_line(row: dict) -> str:
  """The eval log line's metrics: 'test_top1 0.9861 test_loss 0.0512 ...'."""
  return ' '.join(f'{m.name} {row[m.name]:.4f}' for m in EVAL_METRICS if m.log)


def summary_stats(metric_name: str) -> tuple[tuple[str, str], ...]:
  """(summary key, label) of each aggregation of a metric, e.g. test_top1 → best / last / median of last 10."""
  m = next(m for m in EVAL_METRICS if m.name == metric_name)
  return tuple((key, AGGREGATIONS[agg][1]) for key, agg in m.summary)


def phase_summary(rows: list[dict]) -> Optional[dict]:
  """Of one phase's eval rows: each metric's summary keys, and, when measured, the phase-end values over the
  whole training split (PHASE_END_KEYS); None without rows. summary.json and report.md both show these."""
  if not rows:
    return None
  ends = [r for r in rows if PHASE_END_KEYS[0] in r]
  out = {k: ends[-1][k] for k in PHASE_END_KEYS} if ends else {}
  for m in EVAL_METRICS:
    for key, agg in m.summary:
      out[key] = AGGREGATIONS[agg][0]([r[m.name] for r in rows])
  return {**out, 'end_step': rows[-1]['step'], 'num_evals': len(rows)}


def summarize(rows: Iterable[dict], phase_names: Iterable[str]) -> dict:
  """summary.json from the eval rows: `phase_summary` of each phase that has evals, and the final top-1."""
  rows = list(rows)
  phases = {name: phase_summary([r for r in rows if r.get('phase') == name]) for name in phase_names}
  return {'phases': {k: v for k, v in phases.items() if v is not None},
          'final_top1': rows[-1]['test_top1'] if rows else None}


class Writer:
  """metrics.jsonl + TensorBoard (clu) for process 0; a no-op elsewhere. TensorBoard's writer starts at the first
  value written (a run that trains nothing adds no event file). Without clu or TensorFlow (which clu's writer runs
  on; a machine with JAX alone) TensorBoard is skipped with one warning, metrics.jsonl written as always."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.enabled = workdir_lib.is_writer()
    self._tb, self._tried = None, False

  def _board(self):
    if self._tried or not self.enabled:
      return self._tb
    self._tried = True
    try:
      if importlib.util.find_spec('clu') is None:  # asked first: no TensorFlow loaded for nothing
        raise ImportError('No module named clu')
      from refine_jax.data import tensorflow
      tensorflow()  # imported with the accelerators hidden from it, before clu's writer starts it
      from clu import metric_writers
    except ImportError as e:
      logging.warning('TensorBoard skipped: %s (clu and TensorFlow write it); metrics.jsonl and summary.json are '
                      'written as always', e)
      return None
    # TensorBoard only: the loop logs each train and eval line itself (clu's logging writer would repeat them).
    self._tb = metric_writers.SummaryWriter(workdir_lib.path(self.workdir, workdir_lib.TENSORBOARD))
    return self._tb

  def scalars(self, step: int, values: dict) -> None:
    tb = self._board()
    if tb is not None:
      tb.write_scalars(step, {k: v for k, v in values.items() if isinstance(v, (int, float))})

  def eval_row(self, row: dict) -> None:
    if self.enabled:
      workdir_lib.append_jsonl(workdir_lib.path(self.workdir, workdir_lib.METRICS), row)
      self.scalars(row['step'], {f'eval/{k}': v for k, v in row.items() if k not in ('step', 'phase')})
      if self._tb is not None:
        self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
