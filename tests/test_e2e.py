"""The real entry point end to end: the digits demo, re-running a finished run, a killed run, CIFAR-10 via TFDS."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import (ROOT, TFDS_DIR, TINY_DIGITS, env_for, needs_cifar, read_rows, read_summary,
                            run_main)

ROW_KEYS = {'step', 'epoch', 'phase', 'lr', 'test_top1', 'test_top5', 'test_loss', 'train_clean_loss',
            'train_aug_loss'}


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
  w = str(tmp_path_factory.mktemp('demo'))
  t = time.time()
  p = run_main('digits_demo.py', w)
  return w, p, time.time() - t


def test_demo_reaches_accuracy_and_shows_the_gap(demo_run):
  w, p, seconds = demo_run
  rows = read_rows(w)
  assert all(ROW_KEYS <= set(r) for r in rows)
  aug = [r for r in rows if r['phase'] == 'augmented']
  ref = [r for r in rows if r['phase'] == 'refine']
  assert aug and ref and aug[-1]['step'] < ref[0]['step']
  # every eval scores all 360 test digits exactly once
  assert all(r['test_count'] == 360 for r in rows)
  s = read_summary(w)
  assert set(s['phases']) == {'augmented', 'refine'}
  for ph in s['phases'].values():
    assert {'best_top1', 'last_top1', 'median_last10_top1', 'last_train_clean_loss',
            'last_train_aug_loss'} <= set(ph)
  assert s['final_top1'] == ref[-1]['test_top1'] >= 0.95
  # The paper's gap: under Mixup the augmented loss is well above the clean one ...
  late_aug = aug[len(aug) // 2:]
  assert all(r['train_aug_loss'] > 1.5 * r['train_clean_loss'] for r in late_aug), late_aug
  # ... and refinement lowers the clean training loss below its value at the end of the augmented phase.
  assert ref[-1]['train_clean_loss'] < aug[-1]['train_clean_loss']
  assert s['phases']['refine']['last_train_clean_loss'] == ref[-1]['train_clean_loss']
  # lr: refinement continues at the augmented phase's final rate (0.1 ÷ 10 after epoch 20)
  assert ref[0]['lr'] == pytest.approx(0.01) and aug[0]['lr'] == pytest.approx(0.1)
  with open(os.path.join(w, 'config.json')) as f:
    assert json.load(f)['model'] == 'resnet_tiny'
  assert os.path.isdir(os.path.join(w, 'tensorboard')) and os.listdir(os.path.join(w, 'tensorboard'))
  assert 'images/s' in p.stderr and 'ETA' in p.stderr


def test_rerun_of_finished_run_trains_nothing(demo_run):
  w, first, _ = demo_run
  before = open(os.path.join(w, 'metrics.jsonl')).read()
  p = run_main('digits_demo.py', w)
  assert json.loads(p.stdout) == json.loads(first.stdout) == read_summary(w)
  assert open(os.path.join(w, 'metrics.jsonl')).read() == before
  assert "phase 'augmented':" not in p.stderr and "phase 'refine':" not in p.stderr  # no phase started
  assert 'eval step' not in p.stderr


def test_sigkill_mid_run_then_rerun_completes_identically(tmp_path):
  args = TINY_DIGITS + ['--config.checkpoint_every_steps=10']
  ref = str(tmp_path / 'ref')
  run_main('digits_demo.py', ref, *args)
  w = str(tmp_path / 'killed')
  cmd = [sys.executable, '-m', 'refine_jax.main', f'--config={ROOT}/configs/digits_demo.py', f'--workdir={w}',
         *args]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env_for(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ck = os.path.join(w, 'checkpoints')
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if os.path.isdir(ck) and any(d.isdigit() and int(d) >= 20 for d in os.listdir(ck)):
      break
    time.sleep(0.05)
  assert proc.poll() is None, 'run finished before it could be killed'
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(w, 'summary.json'))
  p = run_main('digits_demo.py', w, *args)
  assert 'resumed' in p.stderr
  assert read_rows(w) == read_rows(ref)
  assert read_summary(w) == read_summary(ref)


@needs_cifar
def test_cifar10_config_runs_through_tfds(tmp_path):
  w = str(tmp_path / 'c10')
  run_main('cifar10_preact18_mixup.py', w, f'--config.data_dir={TFDS_DIR}', '--config.model=resnet_tiny',
           '--config.train_split=train[:2000]', '--config.eval_split=test[:500]', '--config.batch_size=32',
           '--config.phases.augmented.epochs=3', '--config.phases.refine.epochs=1',
           '--config.phases.augmented.lr.boundaries_epochs=(2,)', '--config.eval_every_epochs=1',
           '--config.diag_examples=256', '--config.eval_batch_size=100')
  rows = read_rows(w)
  assert [r['phase'] for r in rows] == ['augmented'] * 3 + ['refine']
  assert rows[-1]['step'] == 4 * (2000 // 32) == 248
  assert all(r['test_count'] == 500 for r in rows)
  s = read_summary(w)
  assert 0.1 < s['final_top1'] <= 1.0  # above chance on 10 classes after 248 steps
  assert rows[0]['train_aug_loss'] > rows[0]['train_clean_loss']


def test_bfloat16_compute_keeps_float32_parameters(tmp_path):
  import jax
  import numpy as np
  from configs import digits_demo
  from refine_jax import checkpoint, train
  c = digits_demo.get_config()
  c.dtype = 'bfloat16'
  c.phases.augmented.steps, c.phases.refine.steps, c.eval_every_steps = 6, 2, 4
  s = train.train_and_evaluate(c, str(tmp_path))
  assert np.isfinite(s['phases']['refine']['last_train_clean_loss'])
  ck = checkpoint.Checkpoints(str(tmp_path / 'checkpoints'), read_only=True)
  assert ck.steps()[-1] == 8
  raw = ck._mngr.restore(8, args=checkpoint.ocp.args.Composite(state=checkpoint.ocp.args.StandardRestore()))
  leaves = jax.tree.leaves(raw['state']['params'])
  assert leaves and all(l.dtype == np.float32 for l in leaves)


def test_phase_boundary_checkpoint_outlives_max_to_keep(tmp_path):
  from configs import digits_demo
  from refine_jax import checkpoint, train
  c = digits_demo.get_config()
  c.phases.augmented.steps, c.phases.refine.steps = 12, 12
  c.checkpoint_every_steps, c.keep_checkpoints, c.eval_every_steps = 3, 2, 12
  train.train_and_evaluate(c, str(tmp_path))
  steps = checkpoint.Checkpoints(str(tmp_path / 'checkpoints'), read_only=True).steps()
  assert steps == [12, 21, 24]  # the end of the augmented phase, then the newest two


def _snapshot(root: str) -> dict:
  """Every file under `root`: its bytes' digest and its modification time (ns)."""
  import hashlib
  out = {}
  for d, _, files in os.walk(root):
    for f in files:
      p = os.path.join(d, f)
      with open(p, 'rb') as fh:
        out[os.path.relpath(p, root)] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns)
  return out


def test_rerunning_a_finished_run_writes_nothing(demo_run):
  """Every file of the finished run's workdir is byte-identical with the same mtime after a re-run (no config.json
  or summary.json rewritten, no TensorBoard event file added), and no file appears or disappears."""
  w, first, _ = demo_run
  before = _snapshot(w)
  p = run_main('digits_demo.py', w)
  assert json.loads(p.stdout) == json.loads(first.stdout)
  assert _snapshot(w) == before
