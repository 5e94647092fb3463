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
without a parent checkpoint, a change before s) is a one-line error naming the field, exit 2, nothing written;
so is a workdir another run holds (its lock, refine_jax/lock.py: taken before the parent's checkpoint is copied).
"""
from __future__ import annotations

import os
from typing import Optional

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from refine_jax import cli, distributed, fields
from refine_jax.errors import ConfigError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to the fork\'s config file with get_config().')
_FROM = flags.DEFINE_string('from', None, 'The parent run\'s workdir.')
_AT_EPOCH = flags.DEFINE_float('at_epoch', None, 'Fork at this epoch of the parent (converted to a step with '
                               'the plan\'s steps per epoch).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'The fork\'s new workdir.')


class ForkError(ConfigError):
  """A bad --from / --at_epoch / --workdir (exit 2, like a bad config field)."""

  def __init__(self, flag: str, message: str):
    ValueError.__init__(self, f'--{flag}: {message}')
    self.field = flag


_SCHEDULES = (('lr', 'lr'), ('mix_gamma', 'mix.gamma'), ('mix_prob', 'mix.prob'), ('aug_prob', 'aug_prob'))


def check_fields(parent: dict, child: dict) -> None:
  """Refuses a fork whose fields outside the phases differ from the parent's where their role lets no fork change
  them (`fields.FORK_MAY_DIFFER`: bookkeeping and the label may differ); the phases are compared on the two
  resolved plans instead (`check_prefix`)."""
  d = [x for x in fields.differences(parent, child, fields.FORK_MAY_DIFFER)
       if not x[0].startswith(('phases.', 'phase_order'))]
  if d:
    k, a, b = d[0]
    more = f' (and {", ".join(x[0] for x in d[1:])})' if d[1:] else ''
    raise ConfigError(k, f'{a!r} in the parent, {b!r} in the fork{more}: a fork may change only what comes after '
                      'its step')


def check_data(parent: Optional[dict], child: dict) -> None:
  """Refuses a fork whose training data is not its parent's (`sources.fingerprint`: an image folder that gained,
  lost or changed a file; another TFDS version): the rows and the state it inherits came from the parent's data."""
  if parent is None:
    logging.warning('the parent recorded no fingerprint of its training data (a run from before they were '
                    'recorded): the fork cannot check that it trains on the same data')
    return
  if parent != child:
    raise ConfigError('data_dir', f'the training data differs from the parent\'s ({child["examples"]} examples, '
                      f'digest {child["digest"][:12]}, against {parent["examples"]}, {parent["digest"][:12]} in the '
                      'parent): a fork must train on its parent\'s data before its step; allowed: the data the '
                      'parent trained on')


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
  (`train.Run.complete_phase_end`)."""
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


def _this_fork_or_none(workdir: str, record: dict) -> Optional[dict]:
  """The config.json of `workdir` if it holds this fork (None if it holds no run); ForkError if another run."""
  from refine_jax import workdir as workdir_lib
  old = workdir_lib.read_config(workdir)
  if old is not None and old.get('forked_from') != record:
    raise ForkError('workdir', f'{workdir} already holds another run (forked_from {old.get("forked_from")}); '
                    'use a new --workdir')
  return old


def prepare(config: ml_collections.ConfigDict, parent_dir: str, at_epoch: float, workdir: str):
  """Checks the fork (nothing written when a check fails), takes `workdir`'s lock (exit 2 if another run holds
  it), then writes the fork's starting point there; sets `config.forked_from`. A workdir that already holds this
  fork is left as it is. Returns the hold on the lock: the caller trains under it (`with prepare(...):`)."""
  from refine_jax import checkpoint as ckpt_lib
  from refine_jax import lock as lock_lib
  from refine_jax import plan as plan_lib
  from refine_jax import prepare as prepare_lib
  from refine_jax import spec as spec_lib
  from refine_jax import workdir as workdir_lib
  from refine_jax.data import sources
  parent_dir = os.path.abspath(parent_dir)
  child_spec = prepare_lib.spec_of(config)
  parent_dict = workdir_lib.read_config(parent_dir)
  if parent_dict is None:
    raise ForkError('from', f'{parent_dir} holds no run (no {workdir_lib.CONFIG})')
  check_fields(parent_dict, child_spec.as_dict())
  check_data(parent_dict.get('train_data'), sources.fingerprint(child_spec.data))
  n = prepare_lib.split(child_spec, train=True).num_examples_global
  parent, child = plan_lib.resolve(spec_lib.from_dict(parent_dict), n), plan_lib.resolve(child_spec, n)
  spe = child.steps_per_epoch
  with workdir_lib.open_checkpoints(parent_dir) as src:
    s = fork_step(at_epoch, parent, src.steps())
  if s > child.total_steps:
    raise ForkError('at_epoch', f'{at_epoch:g} is past the fork\'s own end (epoch {child.total_steps / spe:g})')
  check_prefix(parent, child, s)
  record = {'workdir': parent_dir, 'step': s}
  rows = rows_before(workdir_lib.read_rows(parent_dir), s, child)
  _this_fork_or_none(workdir, record)  # refused before the lock: nothing written
  held = lock_lib.take(workdir)
  try:
    old = _this_fork_or_none(workdir, record)  # again under the lock: no other run writes the workdir now
    with config.unlocked():
      config.forked_from = ml_collections.ConfigDict(record)
    if old is None:
      ckpt_lib.copy_step(workdir_lib.checkpoint_dir(parent_dir), s,
                         workdir_lib.path(workdir, workdir_lib.CHECKPOINTS))
      workdir_lib.write_jsonl(workdir_lib.path(workdir, workdir_lib.METRICS), rows)
      logging.info('forked %s at step %d (epoch %g) into %s', parent_dir, s, s / spe, workdir)
  except BaseException:
    held.release()
    raise
  return held


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or not _WORKDIR.value or not _FROM.value:
    cli.usage_error('--config, --from and --workdir are required')
  from refine_jax import config as config_lib
  from refine_jax import registries
  config_lib.validate(_CONFIG.value, registries.light())  # the names and values that need no heavy import
  cli.check_workdir_path(_WORKDIR.value)
  from refine_jax import train
  from refine_jax import workdir as workdir_lib
  distributed.initialize()
  config = _CONFIG.value
  with prepare(config, _FROM.value, _AT_EPOCH.value, _WORKDIR.value):  # the workdir's lock, held to the end
    summary = train.train_and_evaluate(config, _WORKDIR.value)
  print(workdir_lib.dumps(summary, indent=2))


if __name__ == '__main__':
  cli.run(main, trains=True)
