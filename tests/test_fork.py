"""Forking (refine_jax.fork) and the refine lr schedule 'continue', on tiny real digits runs.

The parent is the unswitched run (3 epochs of Mixup, lr ÷10 at epoch 2, a checkpoint every epoch); the fork
switches at epoch 1 to refinement with lr 'continue'. Its final parameters and metrics.jsonl must equal,
bitwise, those of the same config run from scratch, and its logged lr must be the parent's at every eval.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import plan_of  # noqa: E402
from tests.conftest import ROOT, env_for, read_rows, run_main

COMMON = ['--config.eval_every_epochs=1', '--config.log_every_steps=10',
          '--config.phases.augmented.lr.boundaries_epochs=(2,)']
PARENT = COMMON + ['--config.phases.augmented.epochs=3', '--config.phase_order=("augmented",)',
                   '--config.checkpoint_every_epochs=1']
CHILD = COMMON + ['--config.phases.augmented.epochs=1', '--config.phases.refine.epochs=2',
                  '--config.phases.refine.lr.schedule=continue']
BASE_LR = 0.1  # configs/digits_demo.py's augmented lr.base; factor 0.1


def run_fork(parent: str, at_epoch, workdir: str, *overrides: str) -> subprocess.CompletedProcess:
  cmd = [sys.executable, '-m', 'refine_jax.fork', f'--config={os.path.join(ROOT, "configs", "digits_demo.py")}',
         f'--from={parent}', f'--at_epoch={at_epoch}', f'--workdir={workdir}', *overrides]
  return subprocess.run(cmd, cwd=ROOT, env=env_for(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('fork')
  parent, scratch, fork = (str(root / n) for n in ('parent', 'scratch', 'fork'))
  run_main('digits_demo.py', parent, *PARENT)
  run_main('digits_demo.py', scratch, *CHILD)
  p = run_fork(parent, 1, fork, *CHILD)
  assert p.returncode == 0, p.stderr[-4000:]
  return parent, scratch, fork


def _final(workdir: str):
  from refine_jax import checkpoint
  with checkpoint.Checkpoints(os.path.join(workdir, 'checkpoints'), read_only=True) as c:
    step = c.steps()[-1]
    state, _ = c.restore_raw(step)
  import jax
  return step, jax.tree_util.tree_flatten_with_path(state)[0]


def test_fork_equals_scratch_bitwise(runs):
  _, scratch, fork = runs
  assert read_rows(fork) == read_rows(scratch)
  (s1, a), (s2, b) = _final(scratch), _final(fork)
  assert s1 == s2 and len(a) == len(b) > 0
  for (pa, xa), (pb, xb) in zip(a, b):
    xa, xb = np.asarray(xa), np.asarray(xb)
    assert pa == pb and xa.dtype == xb.dtype and xa.shape == xb.shape
    assert xa.tobytes() == xb.tobytes(), pa


def test_fork_records_its_parent(runs):
  parent, _, fork = runs
  spe = json.load(open(os.path.join(parent, 'summary.json')))['steps_per_epoch']
  cfg = json.load(open(os.path.join(fork, 'config.json')))
  assert cfg['forked_from'] == {'workdir': os.path.abspath(parent), 'step': spe}
  assert cfg['phases']['refine']['lr']['schedule'] == 'continue'


def test_continue_lr_is_the_unswitched_runs(runs):
  parent, scratch, _ = runs
  spe = json.load(open(os.path.join(parent, 'summary.json')))['steps_per_epoch']
  rows, unswitched = read_rows(scratch), {r['step']: r['lr'] for r in read_rows(parent)}
  assert [r['step'] for r in rows] == [spe, 2 * spe, 3 * spe]
  assert [r['phase'] for r in rows] == ['augmented', 'refine', 'refine']
  for r in rows:
    assert r['lr'] == unswitched[r['step']]
    # logged lr is that of the last trained step: ÷10 from global step 2·spe on (epoch 2 of the whole run)
    want = BASE_LR * (0.1 if r['step'] - 1 >= 2 * spe else 1.0)
    assert r['lr'] == pytest.approx(want, rel=1e-6)


def test_main_resumes_a_fork(runs):
  _, _, fork = runs
  before = read_rows(fork)
  run_main('digits_demo.py', fork, *CHILD)  # finished: re-reports, refusing no config change
  assert read_rows(fork) == before
  assert json.load(open(os.path.join(fork, 'config.json')))['forked_from']['step'] == before[0]['step']
  p = run_fork(runs[0], 1, fork, *CHILD)  # the fork command itself resumes (here: re-reports) its workdir
  assert p.returncode == 0, p.stderr[-3000:]
  assert read_rows(fork) == before


def _arrays(workdir: str, step: int):
  from refine_jax import checkpoint
  with checkpoint.Checkpoints(os.path.join(workdir, 'checkpoints'), read_only=True) as c:
    state, meta = c.restore_raw(step)
  import jax
  return meta['step'], [(p, np.asarray(x)) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]]


def _assert_same_arrays(a, b):
  assert a[0] == b[0] and len(a[1]) == len(b[1]) > 0
  for (pa, xa), (pb, xb) in zip(a[1], b[1]):
    assert pa == pb and xa.dtype == xb.dtype and xa.shape == xb.shape and xa.tobytes() == xb.tobytes(), pa


def test_trunk_with_fork_points_equals_segments(runs, tmp_path):
  """The sweep's trunk: one process of 3 Mixup epochs that keeps checkpoints at its fork points, epochs 1 and 1.5
  (1.5 is no eval step: it adds an eval row there). Its checkpoints at the fork points are those of the old
  chain's segments, bitwise: a run of 1.5 epochs and the from-scratch parent at 1; a switch forked from it equals
  the run from scratch, rows (the extra one left out) and parameters."""
  parent, scratch, _ = runs
  trunk, seg, fork = (str(tmp_path / n) for n in ('trunk', 'seg', 'fork'))
  run_main('digits_demo.py', trunk, *COMMON, '--config.phases.augmented.epochs=3', '--config.phase_order=("augmented",)',
           '--config.fork_points_epochs=(1,1.5)')
  spe = json.load(open(os.path.join(parent, 'summary.json')))['steps_per_epoch']
  half = int(round(1.5 * spe))
  assert [r['step'] for r in read_rows(trunk)] == [spe, half, 2 * spe, 3 * spe]
  assert sorted(int(d) for d in os.listdir(os.path.join(trunk, 'checkpoints')) if d.isdigit()) == [spe, half, 3 * spe]
  run_main('digits_demo.py', seg, *COMMON, '--config.phases.augmented.epochs=1.5', '--config.phase_order=("augmented",)')
  _assert_same_arrays(_arrays(trunk, half), _arrays(seg, half))
  _assert_same_arrays(_arrays(trunk, spe), _arrays(parent, spe))
  p = run_fork(trunk, 1, fork, *CHILD)
  assert p.returncode == 0, p.stderr[-4000:]
  assert read_rows(fork) == read_rows(scratch)
  _assert_same_arrays(_arrays(fork, 3 * spe), _arrays(scratch, 3 * spe))


def test_report_groups_forks_of_different_trunks(runs):
  # Two seeds' forks differ in forked_from (each seed's own trunk); report must see one experiment.
  from refine_jax import report
  cfg = json.load(open(os.path.join(runs[2], 'config.json')))
  other = json.loads(json.dumps(cfg))
  other['seed'], other['forked_from'] = 1, {'workdir': '/elsewhere/trunk_seed1', 'step': 7}
  assert report.experiment_fields(cfg) == report.experiment_fields(other)
  assert 'forked_from.step' not in report.experiment_fields(cfg)


@pytest.mark.parametrize('at_epoch, overrides, field', [
    (0, (), '--at_epoch: 0.0 is outside (0, 3]'),
    (3.5, (), '--at_epoch: 3.5 is outside (0, 3]'),
    (1.5, (), '--at_epoch: the parent has no checkpoint at step'),
    (1, ('--config.seed=1',), 'config.seed:'),
    (1, ('--config.batch_size=32',), 'config.batch_size:'),
    (1, ('--config.phases.augmented.mix.gamma=0.5',), 'config.phases.augmented.mix.gamma:'),
    (1, ('--config.phases.augmented.lr.base=0.05',), 'config.phases.augmented.lr:'),
    (2, ('--config.phases.augmented.epochs=1.5',), 'config.phases.augmented:'),  # the phase ends before s
    (1, ('--config.phases.refine.lr.base=0.01',), 'config.phases.refine.lr.base:'),  # unset with 'continue'
])
def test_bad_forks_exit_2_and_write_nothing(runs, tmp_path, at_epoch, overrides, field):
  parent = runs[0]
  wd = tmp_path / 'w2'
  overrides = [o for o in CHILD if not any(o.split('=')[0] == x.split('=')[0] for x in overrides)] + list(overrides)
  p = run_fork(parent, at_epoch, str(wd), *overrides)
  assert p.returncode == 2, p.stderr[-3000:]
  last = p.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and field in last, last
  assert not wd.exists()


# --------------------------------------------------------------------------- lr 'continue', pure


def _digits(**phases):
  import importlib.util
  spec = importlib.util.spec_from_file_location('digits_demo', os.path.join(ROOT, 'configs', 'digits_demo.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.phases.augmented.lr.boundaries_epochs = (4,)
  for path, v in phases.items():
    node, *keys = path.split('__')
    target = c.phases[node]
    for k in keys[:-1]:
      target = target[k]
    target[keys[-1]] = v
  return c


def test_continue_plan_follows_the_whole_runs_boundaries():
  from refine_jax import plan as plan_lib
  spe = 10
  unswitched = _digits(augmented__epochs=8.0)
  unswitched.phase_order = ('augmented',)
  switched = _digits(augmented__epochs=3.0, refine__epochs=5.0, refine__lr__schedule='continue')
  old_rule = _digits(augmented__epochs=3.0, refine__epochs=5.0)  # lr.base unset: the rate reached at the switch
  a, b, c = (plan_of(x, spe) for x in (unswitched, switched, old_rule))
  t = np.arange(80)
  assert b.total_steps == a.total_steps == 80 and b.phases[1].start == 30
  np.testing.assert_array_equal(np.asarray(b.lr(t)), np.asarray(a.lr(t)))
  want = np.where(t >= 40, np.float32(0.1) * np.float32(0.1), np.float32(0.1)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(b.lr(t)), want)
  assert float(c.lr(79)) == pytest.approx(0.1)  # the constant refine rate never gets the drop at epoch 4


@pytest.mark.parametrize('changes, field', [
    (dict(refine__lr__schedule='continue', refine__lr__base=0.01), 'config.phases.refine.lr.base:'),
    (dict(refine__lr__schedule='continue', refine__lr__boundaries_epochs=(5,)),
     'config.phases.refine.lr.boundaries_epochs:'),
    (dict(refine__lr__schedule='continue', augmented__lr__schedule='cosine'), 'config.phases.refine.lr.schedule:'),
    (dict(augmented__lr__schedule='continue'), 'config.phases.augmented.lr.schedule:'),
])
def test_continue_bad_configs(changes, field):
  from refine_jax import config as config_lib
  from refine_jax import registries
  c = _digits(**changes)
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(c, registries.default())
  assert str(e.value).startswith(field), str(e.value)


def test_a_fork_that_changes_only_bookkeeping_runs(runs, tmp_path):
  """Another prefetch depth and log cadence change nothing trained: the fork runs (once refused for
  prefetch_to_device) and trains exactly what the first fork trained."""
  parent, _, fork = runs
  w = str(tmp_path / 'bookkeeping')
  p = run_fork(parent, 1, w, *CHILD, '--config.prefetch_to_device=0', '--config.log_every_steps=3')
  assert p.returncode == 0, p.stderr[-3000:]
  assert read_rows(w) == read_rows(fork)
