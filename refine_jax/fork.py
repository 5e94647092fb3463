"""Forking: start a run from another run's checkpoint at step s, changing only what comes after s.

    python -m refine_jax.fork --config=C --from=W --at_epoch=s --workdir=W2 [--config.FIELD=VALUE ...]

The fork (config C with its overrides) must train exactly what the parent W trained before step
s = round(s_epochs · steps_per_epoch): same data, splits, model, seed, batch size, optimizer, evaluation, and
the same phases, host ops, mixing and learning rate at every step before s (compared step by step on the two
resolved plans, so e.g. a mix decay that moves with a phase's end is caught). It may change the rest: a phase
that ends at or after s may end elsewhere, later phases may be added or changed (the switch of Figure 4).

Since every random key, the data order and every schedule are functions of the global step (README,
"Invariants"), the parent's checkpoint at s (train state with its optimizer state) is the state a run of C
from scratch has at s: W2 starts from a copy of it (`W2/checkpoints/<s>`), with the parent's metrics.jsonl rows
up to s, and config.json records `forked_from: {workdir, step}`. Then the normal loop runs. Re-running the same
command resumes W2 (so does `python -m refine_jax.main` with C). Bad input (an epoch outside (0, T], a step
without a parent checkpoint, a change before s) is a one-line error naming the field, exit 2, nothing written.
"""
from __future__ import annotations

import json
import os
import sys

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from refine_jax import cli
from refine_jax.errors import ConfigError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to the fork\'s config file with get_config().')
_FROM = flags.DEFINE_string('from', None, 'The parent run\'s workdir.')
_AT_EPOCH = flags.DEFINE_float('at_epoch', None, 'Fork at this epoch of the parent (converted to a step with '
                               'the plan\'s steps per epoch).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'The fork\'s new workdir.')

# Top-level config fields that change nothing trained before the fork step; the phases are compared on the
# resolved plans instead (`check_prefix`).
FREE_FIELDS = frozenset({'allow_config_change', 'log_every_steps', 'keep_checkpoints', 'checkpoint_every_epochs',
                         'checkpoint_every_steps', 'paper_row', 'data_dir', 'download', 'forked_from',
                         'phases', 'phase_order', 'fork_points_epochs', 'fork_points_steps'})


class ForkError(ConfigError):
  """A bad --from / --at_epoch / --workdir (exit 2, like a bad config field)."""

  def __init__(self, flag: str, message: str):
    ValueError.__init__(self, f'--{flag}: {message}')
    self.field = flag


_SCHEDULES = (('lr', 'lr'), ('mix_gamma', 'mix.gamma'), ('mix_prob', 'mix.prob'), ('aug_prob', 'aug_prob'))


def check_fields(parent: dict, child: dict) -> None:
  """Refuses a fork whose fields outside the phases differ from the parent's (those not in FREE_FIELDS)."""
  from refine_jax import config as config_lib
  d = [x for x in config_lib.diff(parent, child) if x[0].split('.')[0] not in FREE_FIELDS]
  if d:
    k, a, b = d[0]
    more = f' (and {", ".join(x[0] for x in d[1:])})' if d[1:] else ''
    raise config_lib.ConfigError(k, f'{a!r} in the parent, {b!r} in the fork{more}: a fork may change only '
                                 'what comes after its step')


def _spans(plan, s: int) -> list[tuple]:
  return [(p.name, p.start, min(p.end, s), p.pp, p.mix) for p in plan.phases if p.start < s]


def check_prefix(parent, child, s: int) -> None:
  """Refuses a fork whose plan differs from the parent's at any step before `s`: the phases (names, starts, ends
  before s, host ops, mixing) and the lr, mixing and augmentation-probability schedules at every step."""
  spe = parent.steps_per_epoch
  for a, b in zip(_spans(parent, s), _spans(child, s)):
    if a != b:
      raise ConfigError(f'phases.{b[0]}', f'the fork changes phase {b[0]!r} before step {s} (epoch {s / spe:g}): '
                        f'parent {a[0]} steps {a[1]}..{a[2]} pp={a[3]!r} mix={a[4]}, fork {b[0]} steps '
                        f'{b[1]}..{b[2]} pp={b[3]!r} mix={b[4]}')
  if len(_spans(parent, s)) != len(_spans(child, s)):
    raise ConfigError('phase_order', f'the fork has other phases than the parent before step {s}')
  t = np.arange(s)
  for attr, field in _SCHEDULES:
    pa, ch = np.asarray(getattr(parent, attr)(t)), np.asarray(getattr(child, attr)(t))
    bad = np.flatnonzero(pa != ch)
    if bad.size:
      k = int(bad[0])
      name = child.phase_at(k).name
      raise ConfigError(f'phases.{name}.{field}', f'at step {k} (epoch {k / spe:g}), before the fork step {s}: '
                        f'{pa[k]:.6g} in the parent, {ch[k]:.6g} in the fork')


def fork_step(at_epoch: float, parent, steps: list[int]) -> int:
  """The parent's step at `at_epoch`, which must hold a checkpoint."""
  spe, total = parent.steps_per_epoch, parent.total_steps
  if at_epoch is None or not 0 < at_epoch <= total / spe:
    raise ForkError('at_epoch', f'{at_epoch} is outside (0, {total / spe:g}], the parent\'s epochs')
  s = int(round(at_epoch * spe))
  if s not in steps:
    have = ', '.join(f'{k} (epoch {k / spe:g})' for k in steps) or 'none'
    raise ForkError('at_epoch', f'the parent has no checkpoint at step {s} (epoch {at_epoch:g}); its '
                      f'checkpoint steps: {have}')
  return s


def rows_before(parent_rows: list[dict], s: int, child) -> list[dict]:
  """The parent's eval rows the fork inherits: those at the fork's (the `child` plan's) eval steps before s, and
  at s when the fork evaluates there (the parent's extra rows at its fork points are left out). The row at s
  keeps the phase-end diagnostics only if a phase of the fork ends at s too (else the parent's phase ended
  there, the fork's goes on); a fork whose phase ends at s and whose parent's did not measures them itself
  (`train._Run.complete_phase_end`)."""
  from refine_jax import metrics as metrics_lib
  rows = [r for r in parent_rows if r['step'] < s and r['step'] in child.eval_steps]
  at = [r for r in parent_rows if r['step'] == s]
  if s in child.eval_steps:
    if not at:
      raise ForkError('at_epoch', f'the fork evaluates at step {s} but the parent has no eval row there; fork at '
                        'a step where the parent evaluated')
    row = at[-1]
    if s not in {p.end for p in child.phases}:
      row = {k: v for k, v in row.items() if k not in metrics_lib.PHASE_END_KEYS}
    rows.append(row)
  return rows


def _steps_per_epoch(config) -> int:
  from refine_jax.data import pipeline, sources
  train = sources.load(config, config.train_split, train=True, process_index=0, process_count=1)
  spe = pipeline.steps_per_epoch(train, config.batch_size)
  if spe < 1:
    raise ConfigError('batch_size', f'{config.batch_size} is larger than the training split')
  return spe


def prepare(config: ml_collections.ConfigDict, parent_dir: str, at_epoch: float, workdir: str) -> int:
  """Checks the fork and writes its starting point into `workdir` (nothing when a check fails); sets
  `config.forked_from`. Returns the fork step. A workdir that already holds this fork is left as it is."""
  from refine_jax import checkpoint as ckpt_lib
  from refine_jax import config as config_lib
  from refine_jax import metrics as metrics_lib
  from refine_jax import plan as plan_lib
  from refine_jax import registries
  from refine_jax.train import config_to_dict
  parent_dir = os.path.abspath(parent_dir)
  config_lib.validate(config, registries.default())
  parent_dict = metrics_lib.read_json(os.path.join(parent_dir, metrics_lib.CONFIG))
  if parent_dict is None:
    raise ForkError('from', f'{parent_dir} holds no run (no {metrics_lib.CONFIG})')
  parent_cfg = ml_collections.ConfigDict(parent_dict)
  check_fields(parent_dict, config_to_dict(config))
  spe = _steps_per_epoch(config)
  parent, child = plan_lib.resolve(parent_cfg, spe), plan_lib.resolve(config, spe)
  with ckpt_lib.Checkpoints(os.path.join(parent_dir, 'checkpoints'), read_only=True) as src:
    s = fork_step(at_epoch, parent, src.steps())
  if s > child.total_steps:
    raise ForkError('at_epoch', f'{at_epoch:g} is past the fork\'s own end (epoch {child.total_steps / spe:g})')
  check_prefix(parent, child, s)
  record = {'workdir': parent_dir, 'step': s}
  old = metrics_lib.read_json(os.path.join(workdir, metrics_lib.CONFIG))
  if old is not None and old.get('forked_from') != record:
    raise ForkError('workdir', f'{workdir} already holds another run (forked_from {old.get("forked_from")}); '
                    'use a new --workdir')
  rows = rows_before(metrics_lib.read_jsonl(os.path.join(parent_dir, metrics_lib.METRICS)), s, child)
  with config.unlocked():
    config.forked_from = ml_collections.ConfigDict(record)
  if old is None:
    ckpt_lib.copy_step(os.path.join(parent_dir, 'checkpoints'), s, os.path.join(workdir, 'checkpoints'))
    _write_rows(os.path.join(workdir, metrics_lib.METRICS), rows)
    logging.info('forked %s at step %d (epoch %g) into %s', parent_dir, s, s / spe, workdir)
  return s


def _write_rows(path: str, rows: list[dict]) -> None:
  from refine_jax import metrics as metrics_lib
  metrics_lib.write_jsonl_atomic(path, rows)


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or not _WORKDIR.value or not _FROM.value:
    print('error: --config, --from and --workdir are required', file=sys.stderr)
    sys.exit(2)
  cli.check_workdir_path(_WORKDIR.value)
  from refine_jax import config as config_lib
  from refine_jax import train
  config = _CONFIG.value
  try:
    prepare(config, _FROM.value, _AT_EPOCH.value, _WORKDIR.value)
    summary = train.train_and_evaluate(config, _WORKDIR.value)
  except (config_lib.ConfigError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except train.Preempted as e:
    print(f'preempted: {e}', file=sys.stderr)
    sys.exit(3)
  except train.Diverged as e:
    print(f'diverged: {e}', file=sys.stderr)
    sys.exit(4)
  print(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False))


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
