"""A non-finite evaluation metric is divergence (exit 4, the metric named, nothing written), and a non-finite
training loss is caught within `plan.LOSS_CHECK_EVERY` steps whatever `log_every_steps` is (issue 22)."""
import os
import re
import subprocess
import sys

import pytest

from refine_jax import plan as plan_lib
from tests.conftest import plan_of  # noqa: E402
from tests.conftest import ROOT, env_for, read_rows, run_main

# The real entry point, with one evaluation method made to return NaN for `key` from step `at` on.
INJECT = r'''
import sys
from refine_jax import cli, evaluate, main
method, key, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
original = getattr(evaluate.Evaluator, method)
def poisoned(self, state, phase, step):
  out = original(self, state, phase, step)
  return {**out, key: float('nan')} if step >= at else out
setattr(evaluate.Evaluator, method, poisoned)
sys.argv = [sys.argv[0]] + sys.argv[4:]
cli.run(main.main, trains=True)  # the entry point's own exit path
'''
SHORT = ['--config.phases.augmented.steps=8', '--config.phases.refine.steps=4', '--config.eval_every_steps=4',
         '--config.checkpoint_every_steps=4', '--config.phases.augmented.lr.boundaries_epochs=()']


@pytest.mark.parametrize('method, key', [('__call__', 'train_aug_loss'),
                                         ('phase_end', 'phase_end_train_clean_loss')])
def test_a_nan_evaluation_metric_stops_the_run_with_exit_4_naming_it(tmp_path, method, key):
  w = str(tmp_path / 'w')
  cmd = [sys.executable, '-c', INJECT, method, key, '8', f'--config={ROOT}/configs/digits_demo.py',
         f'--workdir={w}', *SHORT]
  p = subprocess.run(cmd, cwd=ROOT, env=env_for(), capture_output=True, text=True, timeout=600)
  assert p.returncode == 4, p.stderr[-3000:]
  m = re.search(r'diverged: non-finite evaluation metric (\w+) = nan at step (\d+) \(phase .augmented.\)', p.stderr)
  assert m and m[1] == key and m[2] == '8', p.stderr[-3000:]
  assert 'the parameters are finite' in p.stderr and 'the last good checkpoint (step 4) is intact' in p.stderr
  # The row of step 8 is not written, the rows before it are strict JSON; no summary, no checkpoint after step 4.
  assert [r['step'] for r in read_rows(w)] == [4]
  assert not os.path.exists(os.path.join(w, 'summary.json'))
  assert sorted(int(d) for d in os.listdir(os.path.join(w, 'checkpoints')) if d.isdigit()) == [4]


def test_a_nan_loss_is_caught_within_the_check_interval_whatever_log_every_steps_is(tmp_path):
  """lr 1e6 blows the loss up in the first steps; no log, eval or save comes before step 150, yet the run stops
  at the first loss check, step LOSS_CHECK_EVERY."""
  assert plan_lib.LOSS_CHECK_EVERY == 100
  w = str(tmp_path / 'w')
  p = run_main('digits_demo.py', w, '--config.phases.augmented.steps=150', '--config.phases.refine.steps=1',
               '--config.eval_every_steps=1000', '--config.log_every_steps=1000',
               '--config.checkpoint_every_steps=1000', '--config.phases.augmented.lr.base=1e6', check=False)
  assert p.returncode == 4, p.stderr[-3000:]
  m = re.search(r"non-finite loss \S+ at step (\d+) \(phase 'augmented'\), detected after step (\d+);", p.stderr)
  assert m and int(m[1]) < 100 and m[2] == '100', p.stderr[-3000:]


def test_the_loss_is_checked_every_interval_and_at_every_sync_point():
  from configs import digits_demo
  c = digits_demo.get_config()
  c.log_every_steps = 1000
  plan = plan_of(c, 22)
  checked = [s for s in range(1, plan.total_steps + 1) if plan.events(s).check_loss]
  want = set(range(100, plan.total_steps + 1, 100)) | plan.eval_steps | plan.save_steps
  assert checked == sorted(want)
  assert max(b - a for a, b in zip([0] + checked, checked)) <= plan_lib.LOSS_CHECK_EVERY
