"""The files of a workdir: config.json, metrics.jsonl (one object per eval), summary.json, timing.json, TensorBoard.

Only process 0 writes. Rewrites go through a temporary file and a rename, so a kill never leaves a torn file.
Paths go through etils.epath, so a workdir may be local or on a remote filesystem (gs://...) alike.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
from typing import Any, Iterable, Optional

import jax
from absl import logging
from etils import epath

CONFIG = 'config.json'
METRICS = 'metrics.jsonl'
SUMMARY = 'summary.json'
# The loop's clock of the last invocation that trained (seconds in the phase loops, evals and blocking saves, and
# the peak device memory): kept apart from summary.json, which a resumed run reproduces exactly.
TIMING = 'timing.json'
# Of a phase's last eval row (when measured) and its summary: R̂ and R̂aug over the whole training split.
PHASE_END_KEYS = ('phase_end_train_clean_loss', 'phase_end_train_aug_loss', 'phase_end_examples')


def is_writer() -> bool:
  return jax.process_index() == 0


def is_local(path: str) -> bool:
  """False for URLs of remote filesystems (gs://bucket/..., s3://...)."""
  return re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', os.fspath(path)) is None


def _write_atomic(path: str, text: str) -> None:
  """Writes a sibling temporary file, then renames it over `path` (on object stores the new object appears
  whole or not at all)."""
  p = epath.Path(path)
  tmp = p.parent / f'{p.name}.tmp{os.getpid()}'
  tmp.write_text(text)
  tmp.replace(p)


def dumps(obj: Any, **kw) -> str:
  """JSON as every file of a run holds it: sorted keys, and strict (NaN or inf raise ValueError: the loop stops a
  run at a non-finite metric before writing it, so none can reach a file)."""
  return json.dumps(obj, sort_keys=True, allow_nan=False, **kw)


def write_json_atomic(path: str, obj: Any) -> None:
  _write_atomic(path, dumps(obj, indent=2) + '\n')


def write_jsonl_atomic(path: str, rows: list[dict]) -> None:
  _write_atomic(path, ''.join(dumps(r) + '\n' for r in rows))


def read_json(path: str) -> Optional[Any]:
  p = epath.Path(path)
  return json.loads(p.read_text()) if p.exists() else None


def read_jsonl(path: str) -> list[dict]:
  p = epath.Path(path)
  if not p.exists():
    return []
  out = []
  with p.open() as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          out.append(json.loads(line))
        except json.JSONDecodeError:
          break  # a torn last line from a kill: everything after it is untrusted
  return out


def append_jsonl(path: str, row: dict) -> None:
  line = dumps(row) + '\n'
  if is_local(path):
    with open(path, 'a') as f:
      f.write(line)
      f.flush()
      os.fsync(f.fileno())
  else:  # object stores cannot append: rewrite the (small) file whole
    p = epath.Path(path)
    _write_atomic(path, (p.read_text() if p.exists() else '') + line)


def truncate_after(path: str, step: int) -> None:
  """Drops rows logged after `step` (a run resumed at `step` logs them again, identically)."""
  rows = read_jsonl(path)
  keep = [r for r in rows if r['step'] <= step]
  if len(keep) != len(rows) or (epath.Path(path).exists() and _has_torn_tail(path)):
    write_jsonl_atomic(path, keep)


def update_row(path: str, step: int, values: dict) -> None:
  """Adds `values` to the (last) row at `step`, rewriting the file atomically."""
  rows = read_jsonl(path)
  at = [i for i, r in enumerate(rows) if r['step'] == step]
  if not at:
    raise ValueError(f'{path} has no row at step {step}')
  rows[at[-1]] = {**rows[at[-1]], **values}
  write_jsonl_atomic(path, rows)


def _has_torn_tail(path: str) -> bool:
  data = epath.Path(path).read_bytes()
  return bool(data) and not data.endswith(b'\n')


def phase_summary(rows: list[dict]) -> Optional[dict]:
  """Of one phase's eval rows: best / last / median of the last 10 test top-1, the last diagnostics and, when
  measured, the phase-end ones over the whole training split (PHASE_END_KEYS); None without rows.
  summary.json and report.md both show these."""
  if not rows:
    return None
  top1 = [r['test_top1'] for r in rows]
  last = rows[-1]
  ends = [r for r in rows if PHASE_END_KEYS[0] in r]
  return {
      **({k: ends[-1][k] for k in PHASE_END_KEYS} if ends else {}),
      'best_top1': max(top1),
      'last_top1': top1[-1],
      'median_last10_top1': statistics.median(top1[-10:]),
      'last_train_clean_loss': last['train_clean_loss'],
      'last_train_aug_loss': last['train_aug_loss'],
      'last_test_loss': last['test_loss'],
      'end_step': last['step'],
      'num_evals': len(rows),
  }


def summarize(rows: Iterable[dict], phase_names: Iterable[str]) -> dict:
  """summary.json from the eval rows: `phase_summary` of each phase that has evals, and the final top-1."""
  rows = list(rows)
  phases = {name: phase_summary([r for r in rows if r.get('phase') == name]) for name in phase_names}
  return {'phases': {k: v for k, v in phases.items() if v is not None},
          'final_top1': rows[-1]['test_top1'] if rows else None}


class Writer:
  """metrics.jsonl + TensorBoard (clu) for process 0; a no-op elsewhere. Without clu or TensorFlow (which clu's
  writer runs on; a machine with JAX alone) TensorBoard is skipped with one warning, metrics.jsonl written as always."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.enabled = is_writer()
    self._tb = None
    if self.enabled:
      try:
        if importlib.util.find_spec('clu') is None:  # asked first: no TensorFlow loaded for nothing
          raise ImportError('No module named clu')
        from refine_jax.data import tensorflow
        tensorflow()  # imported with the accelerators hidden from it, before clu's writer starts it
        from clu import metric_writers
      except ImportError as e:
        logging.warning('TensorBoard skipped: %s (clu and TensorFlow write it); metrics.jsonl and summary.json are '
                        'written as always', e)
        return
      # TensorBoard only: the loop logs each train and eval line itself (clu's logging writer would repeat them).
      self._tb = metric_writers.SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def scalars(self, step: int, values: dict) -> None:
    if self._tb is not None:
      self._tb.write_scalars(step, {k: v for k, v in values.items() if isinstance(v, (int, float))})

  def eval_row(self, row: dict) -> None:
    if self.enabled:
      append_jsonl(os.path.join(self.workdir, METRICS), row)
      self.scalars(row['step'], {f'eval/{k}': v for k, v in row.items() if k not in ('step', 'phase')})
      if self._tb is not None:
        self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def load_summary(workdir: str) -> Optional[dict]:
  return read_json(os.path.join(workdir, SUMMARY))
