"""A run's workdir: the names of its files, their atomic writes, and its checkpoints opened for reading.

    WORKDIR/config.json      the run's completed config (+ forked_from for a fork)
    WORKDIR/metrics.jsonl    one strict-JSON object per eval
    WORKDIR/summary.json     per phase best / last / median, the final top-1
    WORKDIR/timing.json      the clock of the last invocation that trained (benchmarks read it)
    WORKDIR/tensorboard/     TensorBoard event files (clu)
    WORKDIR/checkpoints/     Orbax checkpoints; damaged ones are moved to checkpoints_unreadable/
    WORKDIR/.lock            while a run (main or fork) lives: who holds the workdir (`lock`)

Only process 0 writes (`is_writer`). Rewrites go through a temporary file and a rename, so a kill never leaves
a torn file. Paths go through etils.epath, so a workdir may be local or on a remote filesystem (gs://...).
Train, fork, export, analyze and report all reach a workdir's files through this module.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Optional

from etils import epath

from refine_jax import paths
from refine_jax.paths import is_local  # noqa: F401 - the workdir's own question too

CONFIG = 'config.json'
METRICS = 'metrics.jsonl'
SUMMARY = 'summary.json'
# The loop's clock of the last invocation that trained (seconds in the phase loops, evals and blocking saves, and
# the peak device memory): kept apart from summary.json, which a resumed run reproduces exactly.
TIMING = 'timing.json'
TENSORBOARD = 'tensorboard'
CHECKPOINTS = 'checkpoints'
RUN_FILES = (CONFIG, METRICS, SUMMARY, TIMING)  # the files a run rewrites or appends to
# One live run per workdir: the holder's record, there while it runs (refine_jax/lock.py).
LOCK = '.lock'


def is_writer() -> bool:
  import jax
  return jax.process_index() == 0


def path(workdir: str, name: str) -> str:
  """`workdir/name` (name: CONFIG, METRICS, SUMMARY, TIMING, TENSORBOARD, CHECKPOINTS, LOCK)."""
  return os.path.join(workdir, name)


def key(workdir: str) -> str:
  """How a workdir is named in reports and records: its absolute path (a remote one as given)."""
  return paths.absolute(workdir)


# --------------------------------------------------------------------------- JSON files


def dumps(obj: Any, **kw) -> str:
  """JSON as every file of a run holds it: sorted keys, and strict (NaN or inf raise ValueError: the loop stops a
  run at a non-finite metric before writing it, so none can reach a file)."""
  return json.dumps(obj, sort_keys=True, allow_nan=False, **kw)


def finite_or_none(obj: Any) -> Any:
  """`obj` with every non-finite float replaced by None (JSON null): for measurements where "not measured" is the
  honest value (a benchmark's ratio without a denominator), so that they too can be written as strict JSON."""
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [finite_or_none(v) for v in obj]
  return obj


def _write_atomic(p: str, text: str) -> None:
  """Writes a sibling temporary file, then renames it over `p` (on object stores the new object appears whole or
  not at all)."""
  target = epath.Path(p)
  tmp = target.parent / f'{target.name}.tmp{os.getpid()}'
  tmp.write_text(text)
  tmp.replace(target)


def make(workdir: str) -> None:
  """Creates the workdir (and its parents) if it does not exist."""
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)


def write_json(p: str, obj: Any, *, if_changed: bool = False) -> None:
  """Writes `obj` atomically; with `if_changed`, leaves a file that already holds exactly this text untouched (a
  finished run re-run writes nothing)."""
  text = dumps(obj, indent=2) + '\n'
  target = epath.Path(p)
  if if_changed and target.exists() and target.read_text() == text:
    return
  _write_atomic(p, text)


def write_jsonl(p: str, rows: list[dict]) -> None:
  _write_atomic(p, ''.join(dumps(r) + '\n' for r in rows))


def read_json(p: str) -> Optional[Any]:
  target = epath.Path(p)
  return json.loads(target.read_text()) if target.exists() else None


def read_jsonl(p: str) -> list[dict]:
  target = epath.Path(p)
  if not target.exists():
    return []
  out = []
  with target.open() as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          out.append(json.loads(line))
        except json.JSONDecodeError:
          break  # a torn last line from a kill: everything after it is untrusted
  return out


def append_jsonl(p: str, row: dict) -> None:
  line = dumps(row) + '\n'
  if is_local(p):
    with open(p, 'a') as f:
      f.write(line)
      f.flush()
      os.fsync(f.fileno())
  else:  # object stores cannot append: rewrite the (small) file whole
    target = epath.Path(p)
    _write_atomic(p, (target.read_text() if target.exists() else '') + line)


def truncate_after(p: str, step: int) -> None:
  """Drops rows logged after `step` (a run resumed at `step` logs them again, identically)."""
  rows = read_jsonl(p)
  keep = [r for r in rows if r['step'] <= step]
  if len(keep) != len(rows) or (epath.Path(p).exists() and _has_torn_tail(p)):
    write_jsonl(p, keep)


def update_row(p: str, step: int, values: dict) -> None:
  """Adds `values` to the (last) row at `step`, rewriting the file atomically."""
  rows = read_jsonl(p)
  at = [i for i, r in enumerate(rows) if r['step'] == step]
  if not at:
    raise ValueError(f'{p} has no row at step {step}')
  rows[at[-1]] = {**rows[at[-1]], **values}
  write_jsonl(p, rows)


def _has_torn_tail(p: str) -> bool:
  data = epath.Path(p).read_bytes()
  return bool(data) and not data.endswith(b'\n')


def read_config(workdir: str) -> Optional[dict]:
  return read_json(path(workdir, CONFIG))


def read_rows(workdir: str) -> list[dict]:
  return read_jsonl(path(workdir, METRICS))


def read_summary(workdir: str) -> Optional[dict]:
  return read_json(path(workdir, SUMMARY))


# --------------------------------------------------------------------------- checkpoints


def checkpoint_dir(root: str) -> str:
  """A workdir's checkpoints directory; `root` itself when it is one already (init_from and export take
  either)."""
  d = path(root, CHECKPOINTS)
  return d if epath.Path(d).is_dir() else root


def open_checkpoints(root: str):
  """A workdir's (or a checkpoints directory's) checkpoints, read-only: nothing is moved or cleaned up."""
  from refine_jax import checkpoint
  return checkpoint.Checkpoints(checkpoint_dir(root), read_only=True)


def pick_step(ckpts, *, step: Optional[int] = None, phase: Optional[str] = None) -> int:
  """The checkpoint step to read: `step` if given (it must exist), else the newest of `phase` (its end, where a
  run keeps one), else the newest. Raises LookupError saying what there is."""
  steps = ckpts.steps()
  if not steps:
    raise LookupError('holds no checkpoint')
  if step is not None:
    if step not in steps:
      raise LookupError(f'no such checkpoint; allowed: {", ".join(map(str, steps))}')
    return step
  if phase is None:
    return steps[-1]
  metas = {s: ckpts.restore_meta(s) for s in steps}
  of_phase = [s for s in steps if metas[s].get('phase') == phase]
  if not of_phase:
    raise LookupError('no checkpoint of that phase; the checkpoints are: '
                      + ', '.join(f'{s} ({metas[s].get("phase")})' for s in steps))
  return of_phase[-1]
