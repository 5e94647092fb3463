"""Metric files of a workdir: metrics.jsonl (one object per eval), summary.json, TensorBoard.

Only process 0 writes. Rewrites go through a temporary file and a rename, so a kill never leaves a torn file.
"""
from __future__ import annotations

import json
import os
import statistics
from typing import Any, Iterable, Optional

import jax

METRICS = 'metrics.jsonl'
SUMMARY = 'summary.json'


def is_writer() -> bool:
  return jax.process_index() == 0


def write_json_atomic(path: str, obj: Any) -> None:
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)


def read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  out = []
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          out.append(json.loads(line))
        except json.JSONDecodeError:
          break  # a torn last line from a kill: everything after it is untrusted
  return out


def append_jsonl(path: str, row: dict) -> None:
  with open(path, 'a') as f:
    f.write(json.dumps(row, sort_keys=True) + '\n')
    f.flush()
    os.fsync(f.fileno())


def truncate_after(path: str, step: int) -> None:
  """Drops rows logged after `step` (a run resumed at `step` logs them again, identically)."""
  rows = read_jsonl(path)
  keep = [r for r in rows if r['step'] <= step]
  if len(keep) != len(rows) or (os.path.exists(path) and _has_torn_tail(path)):
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
      for r in keep:
        f.write(json.dumps(r, sort_keys=True) + '\n')
    os.replace(tmp, path)


def _has_torn_tail(path: str) -> bool:
  with open(path, 'rb') as f:
    data = f.read()
  return bool(data) and not data.endswith(b'\n')


def _phase_summary(rows: list[dict]) -> dict:
  top1 = [r['test_top1'] for r in rows]
  last = rows[-1]
  return {
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
  """summary.json from the eval rows: per phase best / last / median of the last 10 evals and the diagnostics."""
  rows = list(rows)
  phases = {}
  for name in phase_names:
    pr = [r for r in rows if r['phase'] == name]
    if pr:
      phases[name] = _phase_summary(pr)
  return {'phases': phases, 'final_top1': rows[-1]['test_top1'] if rows else None}


class Writer:
  """metrics.jsonl + TensorBoard (clu) for process 0; a no-op elsewhere."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.enabled = is_writer()
    self._tb = None
    if self.enabled:
      from clu import metric_writers
      self._tb = metric_writers.create_default_writer(os.path.join(workdir, 'tensorboard'), just_logging=False,
                                                      asynchronous=False)

  def scalars(self, step: int, values: dict) -> None:
    if self.enabled:
      self._tb.write_scalars(step, {k: v for k, v in values.items() if isinstance(v, (int, float))})

  def eval_row(self, row: dict) -> None:
    if self.enabled:
      append_jsonl(os.path.join(self.workdir, METRICS), row)
      self.scalars(row['step'], {f'eval/{k}': v for k, v in row.items() if k not in ('step', 'phase')})
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def load_summary(workdir: str) -> Optional[dict]:
  p = os.path.join(workdir, SUMMARY)
  if not os.path.exists(p):
    return None
  with open(p) as f:
    return json.load(f)
