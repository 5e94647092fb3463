"""The `synthetic` dataset and the run path without TensorFlow (issue 23): random data made by numpy from (seed,
split), a whole run that neither needs nor imports TensorFlow, its resume, its bad input, and the numpy batches of
a spec without ops against the tf.data batches they replace."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import ml_collections
import numpy as np
import pytest
from scipy import stats

from configs import digits_demo
from refine_jax import train
from refine_jax.config import ConfigError
from refine_jax.data import ops, pipeline, sources
from tests.conftest import load_split  # noqa: E402
from tests.conftest import ROOT, env_for, read_rows, read_summary
from tests.test_device_check import _SITECUSTOMIZE, ON_DEVICE

WHEELS = re.search(r'^WHEELS=\((.*)\)$', open(os.path.join(ROOT, 'bench', 'device_check.sh')).read(), re.M)
# The digits demo on 256 synthetic 16-px images: 4 steps an epoch, 5 + 1 epochs, an eval every epoch.
SYNTHETIC = ['--config.dataset=synthetic', '--config.phases.augmented.pp=', '--config.phases.refine.pp=',
             '--config.synthetic.train_examples=256', '--config.synthetic.eval_examples=120',
             '--config.diag_examples=120', '--config.phases.augmented.epochs=5', '--config.phases.refine.epochs=1',
             '--config.eval_every_epochs=1', '--config.phases.augmented.lr.boundaries_epochs=()',
             '--config.log_every_steps=2', '--config.checkpoint_every_steps=4']
# Also in every process of the runs below: the top-level modules the process imported, written at exit.
_DUMP_MODULES = textwrap.dedent('''
    import atexit, json, os

    def _dump_modules():
      with open(os.environ['REFINE_JAX_MODULES_OUT'], 'a') as f:
        f.write(json.dumps(sorted({m.split('.')[0] for m in list(sys.modules)})) + '\\n')

    atexit.register(_dump_modules)
''')


def _config(**fields) -> ml_collections.ConfigDict:
  c = digits_demo.get_config()
  c.dataset = 'synthetic'
  c.phases.augmented.pp = c.phases.refine.pp = ''
  c.synthetic.update(train_examples=256, eval_examples=120)
  for k, v in fields.items():
    c.update_from_flattened_dict({k: v})
  return c


# --------------------------------------------------------------------------- the source


def test_synthetic_splits_are_uniform_random_data_of_the_seed_and_split():
  c = _config(**{'synthetic.num_classes': 7, 'synthetic.train_examples': 3000, 'image_size': 8})
  train_split = load_split(c, 'train', train=True)
  x, y = train_split.images, train_split.labels
  assert x.shape == (3000, 8, 8, 3) and x.dtype == np.uint8 and y.shape == (3000,) and y.dtype == np.int32
  assert train_split.num_classes == 7 and train_split.num_examples_global == 3000
  again = load_split(c, 'train', train=True)
  assert again.images.tobytes() == x.tobytes() and again.labels.tobytes() == y.tobytes()
  sliced = load_split(c, 'train[100:250]', train=True)
  assert sliced.images.tobytes() == x[100:250].tobytes() and sliced.labels.tobytes() == y[100:250].tobytes()
  test = load_split(c, 'test', train=False)
  assert test.images.shape == (120, 8, 8, 3) and test.images.tobytes() != load_split(c, 'validation', train=False
                                                                                       ).images.tobytes()
  c.seed = 1
  assert load_split(c, 'train', train=True).images.tobytes() != x.tobytes()
  # Uniform labels and pixels (chi-square against the uniform law), and the normalisation is their moments.
  assert stats.chisquare(np.bincount(y, minlength=7)).pvalue > 1e-3
  assert stats.chisquare(np.bincount(x.ravel(), minlength=256)).pvalue > 1e-3
  pixels = x.astype(np.float64) / 255
  np.testing.assert_allclose(train_split.mean, [pixels.mean()] * 3, atol=2e-3)
  np.testing.assert_allclose(train_split.std, [pixels.std()] * 3, atol=2e-3)


# --------------------------------------------------------------------------- numpy batches == tf.data batches


def test_numpy_batches_equal_the_tf_data_batches_of_a_spec_without_ops(monkeypatch):
  """On digits (both paths run there), an empty spec's batches gathered in numpy are the tf.data path's bit for bit:
  training from a mid-epoch step across an epoch boundary, with this process's rows of the global batch, and eval
  batches with padding, a count and a full last batch."""
  c = digits_demo.get_config()
  train_split = load_split(c, 'train', train=True)
  test_split = load_split(c, 'test', train=False)
  op = ops.build('')
  rows = np.array([1, 2, 5, 6], np.int64)  # of a global batch of 8: a process's rows
  spe = train_split.num_examples_global // 8

  def batches(in_numpy: bool) -> list[dict]:
    monkeypatch.setattr(pipeline, '_in_numpy', lambda split, op: in_numpy and split.images is not None)
    it = pipeline.train_batches(train_split, lambda e: op, batch=8, steps_per_epoch=spe, seed=3, start_step=spe - 2,
                                rows=rows)
    out = [next(it) for _ in range(4)]
    for kw in ({}, {'count': 100}, {'count': 100, 'full_last': True}, {'rows': rows}):
      out += list(pipeline.eval_batches(test_split, op, batch=24, aug_seed=3, **kw))
    return out + [{'shape': np.array(pipeline.output_shape(test_split, op))}]

  want, got = batches(False), batches(True)
  assert len(got) == len(want) == 4 + 15 + 5 + 5 + 15 + 1
  for g, w in zip(got, want):
    assert sorted(g) == sorted(w)
    for k in w:
      assert g[k].dtype == w[k].dtype and g[k].shape == w[k].shape and g[k].tobytes() == w[k].tobytes(), k
  assert tuple(got[-1]['shape']) == (16, 16, 3)


# --------------------------------------------------------------------------- bad input


BAD = [
    ({'phases.augmented.pp': 'pad_crop(16,2)'}, 'phases.augmented.pp', ['no host ops', 'TensorFlow', "allowed: ''"]),
    ({'pp_eval': 'center_crop(16)'}, 'pp_eval', ['no host ops']),
    ({'image_size': None}, 'image_size', ['set it']),
    ({'synthetic.num_classes': 0}, 'synthetic.num_classes', ['positive integer']),
    ({'synthetic.train_examples': -1}, 'synthetic.train_examples', ['positive integer']),
    ({'synthetic.eval_examples': 0}, 'synthetic.eval_examples', ['positive integer']),
    ({'train_split': 'holdout'}, 'train_split', ['allowed: train, test, validation']),
    ({'synthetic.train_examples': 10 ** 6, 'image_size': 224}, 'synthetic.train_examples', ['GiB', 'at most']),
]


@pytest.mark.parametrize('fields,field,words', BAD, ids=[c[1] + '=' + repr(list(c[0].values())[0]) for c in BAD])
def test_bad_synthetic_input_is_named_and_nothing_written(tmp_path, fields, field, words):
  c = ml_collections.ConfigDict(_config().to_dict(), type_safe=False)
  for k, v in fields.items():
    node = c
    *parents, leaf = k.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = v
  w = tmp_path / 'w'
  with pytest.raises(ConfigError) as e:
    train.train_and_evaluate(c, str(w))
  assert e.value.field == field and all(x in str(e.value) for x in words), str(e.value)
  assert not w.exists()


# --------------------------------------------------------------------------- the whole run without TensorFlow


@pytest.fixture
def no_tf_env(tmp_path):
  site = tmp_path / 'site'
  site.mkdir()
  (site / 'sitecustomize.py').write_text(_SITECUSTOMIZE + _DUMP_MODULES)
  env = env_for()
  env.update(PYTHONPATH=str(site), REFINE_JAX_MODULES_OUT=str(tmp_path / 'modules.jsonl'))
  return env


def _main(env: dict, workdir: str, *overrides: str) -> subprocess.Popen:
  cmd = [sys.executable, '-m', 'refine_jax.main', f'--config={os.path.join(ROOT, "configs", "digits_demo.py")}',
         f'--workdir={workdir}', *overrides]
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_synthetic_run_trains_and_resumes_without_tensorflow(tmp_path, no_tf_env):
  probe = subprocess.run([sys.executable, '-c', 'import tensorflow'], env=no_tf_env, capture_output=True, text=True)
  assert probe.returncode != 0 and 'absent on this machine' in probe.stderr, probe.stderr
  w = str(tmp_path / 'w')
  # Stopped by SIGTERM once its first eval row is written (mid-phase): it saves a checkpoint and exits 3.
  p = _main(no_tf_env, w, *SYNTHETIC)
  rows_path = os.path.join(w, 'metrics.jsonl')
  deadline = time.monotonic() + 300
  while p.poll() is None and not (os.path.exists(rows_path) and os.path.getsize(rows_path)):
    assert time.monotonic() < deadline, 'no eval row in 300 s'
    time.sleep(0.02)
  p.send_signal(signal.SIGTERM)
  out, err = p.communicate(timeout=300)
  assert p.returncode == 3 and 'preempted' in err, err[-3000:]
  stopped = max(int(n) for n in os.listdir(os.path.join(w, 'checkpoints')) if n.isdigit())
  assert 4 <= stopped < 20, stopped  # after the first eval (step 4), before the phase ends (step 20)
  # The same command resumes from there and trains to the end.
  p = _main(no_tf_env, w, *SYNTHETIC)
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err[-3000:]
  assert re.search(rf'resumed .* at step {stopped} \(phase augmented', err), err[-3000:]
  assert [r['step'] for r in read_rows(w)] == [4, 8, 12, 16, 20, 24]
  assert [r['phase'] for r in read_rows(w)] == ['augmented'] * 5 + ['refine']
  summary = read_summary(w)
  assert summary['total_steps'] == 24 and set(summary['phases']) == {'augmented', 'refine'}
  with open(os.path.join(w, 'timing.json')) as f:
    timing = json.load(f)
  assert timing['images'] == (24 - stopped) * 64 and timing['peak_bytes_in_use'] is None
  assert timing['evals'] == sum(r['step'] > stopped for r in read_rows(w)) and timing['loop_s'] > timing['eval_s'] > 0
  # TensorBoard is skipped with one warning; nothing of TensorFlow was imported, and everything that was is on the
  # lent accelerator's image or comes as a wheel (bench/device_check.sh --prepare).
  assert err.count('TensorBoard skipped') == 1 and not os.path.exists(os.path.join(w, 'tensorboard'))
  with open(tmp_path / 'modules.jsonl') as f:
    imported = set().union(*(json.loads(line) for line in f))
  assert not imported & {'tensorflow', 'tensorflow_datasets', 'clu'}
  third_party = {m for m in imported - set(sys.stdlib_module_names) if not m.startswith('_')} - {
      'refine_jax', 'configs', 'sitecustomize', 'cython_runtime', 'config_config'}
  brought = {w.split('==')[0] for w in WHEELS.group(1).split()}
  assert third_party - ON_DEVICE - brought == set(), third_party - ON_DEVICE - brought


def test_bad_synthetic_input_on_the_command_line_without_tensorflow(tmp_path, no_tf_env):
  w = tmp_path / 'w'
  for overrides, field in ((['--config.phases.augmented.pp=flip_lr'], 'config.phases.augmented.pp'),
                           (['--config.synthetic.num_classes=0'], 'config.synthetic.num_classes')):
    args = [a for a in SYNTHETIC if a.split('=')[0] not in [o.split('=')[0] for o in overrides]] + overrides
    p = _main(no_tf_env, str(w), *args)
    out, err = p.communicate(timeout=300)
    lines = [l for l in err.splitlines() if l.startswith('error:')]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith(f'error: {field}:'), err[-3000:]
    assert 'Traceback' not in err
    assert not w.exists()
