"""Shared test helpers: the shared CIFAR-10 location and a runner for the real entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Optional

import pytest

import refine_jax  # noqa: F401 - first: sets XLA_FLAGS (refine_jax.runtime_env) before any test starts a JAX backend

# Triton (which torchvision's import pulls in through torch._dynamo, where torch is installed) segfaults in its
# native module when it is loaded after TensorFlow (`import tensorflow; import triton` crashes; the other order
# works). One test process imports both, TensorFlow first as the files are collected: load Triton first.
# The package itself never has both in one process (refine_jax.export / detection import no TensorFlow).
try:
  import triton  # noqa: F401
except ImportError:
  pass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TFDS_DIR = os.environ.get('REFINE_JAX_TFDS_DIR',
                          os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'tensorflow_datasets'))
HAS_CIFAR = os.path.isdir(os.path.join(TFDS_DIR, 'cifar10'))
needs_cifar = pytest.mark.skipif(not HAS_CIFAR, reason=f'no TFDS cifar10 under {TFDS_DIR}')

CPU_MULTI_DEVICE_FLAGS = (' --xla_cpu_multi_thread_eigen=false'
                          ' --xla_cpu_collective_call_terminate_timeout_seconds=300')

# A few-second digits run: 2 + 1 epochs of resnet_tiny at 16 px.
TINY_DIGITS = [
    '--config.phases.augmented.epochs=2', '--config.phases.refine.epochs=1', '--config.eval_every_epochs=1',
    '--config.phases.augmented.lr.boundaries_epochs=()', '--config.log_every_steps=10',
]


def env_for(devices: Optional[int] = None) -> dict:
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  if devices:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  if devices and devices > 1:
    # Many virtual devices on a 2-core CI machine: XLA:CPU can run one device's collective inline on a thread
    # of the shared Eigen pool that another device's convolution needs, and abort after 40 s (seen once in CI,
    # test_sharding, 8 devices). Single-threaded Eigen per device keeps collectives off that pool; the longer
    # timeout absorbs a starved, not dead, participant on a loaded machine.
    env['XLA_FLAGS'] += CPU_MULTI_DEVICE_FLAGS
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  env['JAX_PLATFORMS'] = 'cpu'
  return env


def run_main(config: str, workdir: str, *overrides: str, devices: Optional[int] = None, timeout: int = 600,
             check: bool = True) -> subprocess.CompletedProcess:
  """Runs `python -m refine_jax.main` exactly as a user would."""
  cmd = [sys.executable, '-m', 'refine_jax.main', f'--config={os.path.join(ROOT, "configs", config)}',
         f'--workdir={workdir}', *overrides]
  p = subprocess.run(cmd, cwd=ROOT, env=env_for(devices), capture_output=True, text=True, timeout=timeout)
  if check and p.returncode != 0:
    raise AssertionError(f'exit {p.returncode}\nSTDOUT:\n{p.stdout[-3000:]}\nSTDERR:\n{p.stderr[-6000:]}')
  return p


def _no_constant(name: str):
  raise AssertionError(f'{name} in a JSON file of the run: the project writes strict JSON only')


def strict_json(text: str):
  """json.loads that refuses NaN / Infinity (which Python's json accepts by default)."""
  return json.loads(text, parse_constant=_no_constant)


def spec_of(config):
  """The run spec of a ConfigDict, unvalidated (as the plan-level tests built plans before the spec existed)."""
  from refine_jax import spec as spec_lib
  return spec_lib.from_dict(spec_lib.as_dict(config))


def plan_of(config, steps_per_epoch: int, build_ops=None):
  """The plan of `config` for a training split of `steps_per_epoch` whole batches."""
  from refine_jax import plan as plan_lib
  return plan_lib.resolve(spec_of(config), steps_per_epoch * config.batch_size, build_ops)


def load_split(config, split: str, *, train: bool, **kw):
  """`split` of the config's dataset, as `sources.load` reads a run's training (`train`) or eval split."""
  import dataclasses
  from refine_jax.data import sources
  data = spec_of(config).data
  data = dataclasses.replace(data, **{data.split_field(train): split})
  return sources.load(data, train=train, **kw)


RUN_JSON_FILES = ('metrics.jsonl', 'summary.json', 'config.json')


@pytest.fixture(scope='session', autouse=True)
def every_run_writes_strict_json(tmp_path_factory):
  """After the session, every run file under the session's temporary directories parses without NaN / Infinity
  (issue 22: no JSON file the project writes may hold them). A torn line is not this check's business (tests
  make some on purpose; the readers stop at it)."""
  yield
  offenders = []
  for path in tmp_path_factory.getbasetemp().rglob('*'):
    if path.name not in RUN_JSON_FILES or not path.is_file():
      continue
    for line in (path.read_text(errors='replace').splitlines() if path.suffix == '.jsonl' else [path.read_text()]):
      try:
        strict_json(line) if line.strip() else None
      except AssertionError:
        offenders.append(str(path))
        break
      except ValueError:
        break
  assert not offenders, f'NaN or Infinity in {offenders}'


def read_rows(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [strict_json(l) for l in f if l.strip()]


def read_summary(workdir: str) -> dict:
  with open(os.path.join(workdir, 'summary.json')) as f:
    return strict_json(f.read())


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """gs://bucket/... mapped onto tmp_path/bucket/... with etils' own epath mock (no network); yields that folder
  and the list of gs:// paths the code touched. The cwd is an empty folder that must stay empty (a gs:// path
  taken for a local relative one would land there)."""
  from etils.epath import gpath
  from etils.epath import testing as epath_testing
  root = tmp_path / 'bucket'
  root.mkdir()
  cwd = tmp_path / 'cwd'
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  seen = []

  def local(p):
    p = os.fspath(p)
    if p.startswith('gs://bucket'):
      seen.append(p)
      return str(root) + p[len('gs://bucket'):]
    return p

  def one(fn, path, *a, **k):
    return fn(local(path), *a, **k)

  def two(fn, path, dst, *a, **k):
    return fn(local(path), local(dst), *a, **k)

  mocks = {name: one for name in ('open', 'exists', 'isdir', 'listdir', 'glob', 'makedirs', 'mkdir', 'remove',
                                  'rmtree', 'stat')}
  mocks.update(rename=two, replace=two, copy=two)
  # With TensorFlow installed, epath sends gs:// straight to tf.io.gfile and around its own mock: turn that off.
  monkeypatch.setattr(gpath, '_is_tf_installed', lambda: False)
  with epath_testing.mock_epath(**mocks):
    yield root, seen
  assert not os.listdir(cwd), 'a gs:// path was treated as a local relative path'
