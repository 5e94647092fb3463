"""Table 2 at the paper's resolution: R̂ and R̂aug over the whole training split at the end of each phase.

One tiny digits run (TINY_DIGITS: 2 augmented + 1 refine epochs, 22 steps/epoch, phase ends at steps 44 and 66,
a checkpoint every 22 steps, all kept). Its phase-end numbers are checked against numpy on the model's logits
from the kept checkpoints, and they survive resumes: copies of the run cut back to a checkpoint (as
tests/test_resume.py does) stand for a run preempted right at the phase end (measured once, not twice), for a
fork at its switch step (the row there lacks them: measured at set-up) and for a run killed while measuring
(the row and the checkpoint at the phase end are written after the measurement: it trains again and measures).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import load_split, plan_of  # noqa: E402
from tests.conftest import ROOT, TINY_DIGITS, env_for, read_rows, read_summary

KEYS = ('phase_end_train_clean_loss', 'phase_end_train_aug_loss', 'phase_end_examples')
SPE, ENDS = 22, (44, 66)
ARGS = TINY_DIGITS + ['--config.checkpoint_every_steps=22', '--config.keep_checkpoints=5']
N_TRAIN = 1437  # the digits training split


def _main(workdir: str, env: dict) -> subprocess.CompletedProcess:
  cmd = [sys.executable, '-m', 'refine_jax.main', f'--config={os.path.join(ROOT, "configs", "digits_demo.py")}',
         f'--workdir={workdir}', *ARGS]
  p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-5000:]
  return p


@pytest.fixture(scope='module')
def ref(tmp_path_factory):
  root = tmp_path_factory.mktemp('phase_end')
  env = dict(env_for(), JAX_COMPILATION_CACHE_DIR=str(root / 'xla_cache'),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0', JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1')
  w = str(root / 'ref')
  _main(w, env)
  return {'workdir': w, 'root': root, 'env': env, 'rows': read_rows(w), 'summary': read_summary(w)}


def _config():
  from configs import digits_demo
  c = digits_demo.get_config()
  c.phases.augmented.epochs, c.phases.refine.epochs = 2.0, 1.0
  c.phases.augmented.lr.boundaries_epochs = ()
  return c


def _restore(workdir: str, step: int):
  from refine_jax import checkpoint
  with checkpoint.Checkpoints(os.path.join(workdir, 'checkpoints'), read_only=True) as c:
    state, meta = c.restore_raw(step)
  assert meta['step'] == step
  return state


def test_phase_end_rows_and_summary(ref):
  rows = {r['step']: r for r in ref['rows']}
  assert [s for s, r in rows.items() if KEYS[0] in r] == list(ENDS)  # the phases' last evals only
  for name, end in zip(('augmented', 'refine'), ENDS):
    assert rows[end]['phase'] == name and rows[end]['phase_end_examples'] == N_TRAIN
    assert {k: ref['summary']['phases'][name][k] for k in KEYS} == {k: rows[end][k] for k in KEYS}
  # The paper's gap under Mixup: the augmented loss above the clean one at the end of the augmented phase.
  assert rows[44]['phase_end_train_aug_loss'] > rows[44]['phase_end_train_clean_loss']


def test_clean_loss_equals_numpy_over_the_whole_split(ref):
  import jax
  from refine_jax import models
  from refine_jax.data import sources
  c = _config()
  train = load_split(c, c.train_split, train=True)
  assert train.num_examples_global == N_TRAIN
  x = (train.images.astype(np.float64) / 255.0 - np.asarray(train.mean)) / np.asarray(train.std)
  model = models.get_model(c.model, train.num_classes, dtype=np.float32)
  for end in ENDS:
    state = _restore(ref['workdir'], end)
    logits = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(
        {'params': state['params'], 'batch_stats': state['batch_stats']}, x.astype(np.float32)), np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    want = -logp[np.arange(N_TRAIN), np.asarray(train.labels)].mean()
    got = next(r for r in ref['rows'] if r['step'] == end)['phase_end_train_clean_loss']
    assert got == pytest.approx(want, rel=2e-5), end


def test_aug_loss_without_augmentation_is_the_clean_loss(ref):
  """With no host ops and no mixing R̂aug is R̂ (every example once, none dropped, none blank), and the clean
  number recomputed from the checkpoint is the run's, bit for bit."""
  from refine_jax import checkpoint, evaluate, plan as plan_lib, steps
  from refine_jax.data import ops, pipeline, sources
  c = _config()
  c.phases.refine.pp = ''
  c.phase_end_diag_examples = None  # the whole training split
  train, test = load_split(c, c.train_split, train=True), load_split(c, c.eval_split, train=False)
  plan = plan_of(c, train.num_examples_global // c.batch_size, ops.build)
  env = steps.make_env(plan, steps.make_mesh(), num_classes=train.num_classes, mean=train.mean, std=train.std)
  blank = steps.init_state(env, (16, 16, 3), 0)
  with checkpoint.Checkpoints(os.path.join(ref['workdir'], 'checkpoints'), read_only=True) as ck:
    state, _ = ck.restore(66, checkpoint.abstract(blank))
  ev = evaluate.Evaluator(env, plan, train, test, image_shape=(16, 16, 3))
  got = ev.phase_end(state, plan.phases[1], 66)
  assert got['phase_end_examples'] == N_TRAIN
  assert got['phase_end_train_clean_loss'] == ref['rows'][-1]['phase_end_train_clean_loss']
  assert got['phase_end_train_aug_loss'] == pytest.approx(got['phase_end_train_clean_loss'], rel=1e-6)


def test_full_last_batch_holds_real_examples_counted_once():
  from refine_jax.data import ops, pipeline, sources
  c = _config()
  train = load_split(c, c.train_split, train=True)
  op = ops.build('', 1.0, 'pp')
  plain = list(pipeline.eval_batches(train, op, batch=120))
  full = list(pipeline.eval_batches(train, op, batch=120, full_last=True))
  assert len(plain) == len(full) == 12 and sum(b['mask'].sum() for b in full) == N_TRAIN

  def counted(bs):
    return np.concatenate([b['image'][b['mask'] > 0] for b in bs])
  np.testing.assert_array_equal(counted(full), counted(plain))
  assert (plain[-1]['image'][plain[-1]['mask'] == 0] == 0).all()  # blank padding
  np.testing.assert_array_equal(full[-1]['image'], np.concatenate([b['image'] for b in plain])[N_TRAIN - 120:N_TRAIN])


def _cut_back(ref: dict, name: str, step: int) -> str:
  """A copy of the reference workdir as a run stopped at checkpoint `step` leaves it."""
  w = str(ref['root'] / name)
  shutil.copytree(ref['workdir'], w)
  for s in os.listdir(os.path.join(w, 'checkpoints')):
    if s.isdigit() and int(s) > step:
      shutil.rmtree(os.path.join(w, 'checkpoints', s))
  os.remove(os.path.join(w, 'summary.json'))
  with open(os.path.join(w, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in ref['rows'] if r['step'] <= step)
  return w


@pytest.mark.parametrize('name, step, strip, measured', [
    ('at_end', 44, False, False),       # preempted right after the phase end: found, not measured again
    ('at_end_missing', 44, True, True),  # at the phase end without them (a fork's switch step): measured at set-up
    ('killed_measuring', 22, False, False),  # killed while measuring at 44: trains 22..44 again and measures in the loop
])
def test_phase_end_survives_resume(ref, name, step, strip, measured):
  w = _cut_back(ref, name, step)
  if strip:
    rows = read_rows(w)
    rows[-1] = {k: v for k, v in rows[-1].items() if k not in KEYS}
    with open(os.path.join(w, 'metrics.jsonl'), 'w') as f:
      f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in rows)
  p = _main(w, ref['env'])
  assert ('phase-end diagnostics at step 44' in p.stderr) == measured
  assert read_rows(w) == ref['rows']
  assert read_summary(w) == ref['summary']
