"""bench/device_check.sh --smoke on CPU with TensorFlow hidden: the accelerator benchmark's own code path (both the
JAX and the PyTorch half) on tiny sizes, checked against independent references (PyTorch's parameter counts
and FLOP counter, ln(num_classes) at random init), so that the prepared script cannot rot before an
accelerator is lent."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, env_for

# The PyTorch half runs wherever torch and torchvision import; elsewhere the JAX half runs alone (--no_torch).
HAS_TORCH = all(importlib.util.find_spec(m) for m in ('torch', 'torchvision'))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason='torch / torchvision not installed')

# Installed in every Python process of the run (sitecustomize on PYTHONPATH): `import tensorflow` fails as
# it does on the lent accelerator. The finder answers with a spec whose loader refuses, rather than raising in
# find_spec, because torch probes `importlib.util.find_spec('tensorflow')` and expects a spec or None.
_SITECUSTOMIZE = textwrap.dedent('''
    import importlib.abc, importlib.machinery, sys

    class _Refuse(importlib.abc.Loader):
      def create_module(self, spec):
        raise ImportError(f'{spec.name} is absent on this machine')

      def exec_module(self, module):
        raise ImportError(f'{module.__name__} is absent on this machine')

    class _NoTensorFlow(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets'):
          return importlib.machinery.ModuleSpec(name, _Refuse())
        return None

    sys.meta_path.insert(0, _NoTensorFlow())
''')
# Import names of the packages in the lent H200's image that the step path may use (from its package list in
# /work/.library/device/KINDS.md, read 2026-11-17: absl-py, chex, cloudpickle, etils, filelock, flatbuffers,
# flax, jax, jaxlib, ml-dtypes, msgpack, numpy, nvidia-*, opt-einsum, optax, orbax-checkpoint, pygments, pyyaml,
# rich, scipy, tensorstore, toolz, typing-extensions, certifi, ...). Anything else must travel as a wheel.
ON_DEVICE = {'absl', 'certifi', 'chex', 'cloudpickle', 'etils', 'filelock', 'flatbuffers', 'flax', 'fsspec', 'humanize',
             'jax', 'jaxlib', 'jax_plugins', 'markdown_it', 'mdurl', 'ml_dtypes', 'msgpack', 'numpy', 'nvidia',
             'opt_einsum', 'optax', 'orbax', 'psutil', 'pygments', 'rich', 'scipy', 'simplejson', 'tensorstore',
             'toolz', 'treescope', 'typing_extensions', 'yaml', 'zipp'}
PEAK = 0.5  # a nominal peak (TFLOP/s) for the MFU arithmetic; the CPU has no known one


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
  site, out = tmp_path_factory.mktemp('notf'), tmp_path_factory.mktemp('out')
  (site / 'sitecustomize.py').write_text(_SITECUSTOMIZE)
  env = env_for()
  env['PYTHONPATH'] = str(site)
  env.pop('OUT', None)
  probe = subprocess.run([sys.executable, '-c', 'import tensorflow'], env=env, capture_output=True, text=True)
  assert probe.returncode != 0 and 'absent on this machine' in probe.stderr, probe.stderr
  cmd = ['bash', os.path.join(ROOT, 'bench', 'device_check.sh'), '--smoke', f'--out={out}',
         f'--peak_tflops={PEAK}', '--compile_timeout_s=3', '--budget_s=1500'] + ([] if HAS_TORCH else ['--no_torch'])
  p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
  assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
  with open(out / 'device_check.json') as f:
    return json.load(f), p.stdout, out


def test_our_rows(smoke):
  res, stdout, out = smoke
  assert [r['case'] for r in res['steps']] == ['resnet50/b2/32px/c10', 'preact_resnet18/b2/16px/c10']
  for r in res['steps']:
    assert r['ours_images_per_s'] > 0 and r['ours_images_per_s'] == pytest.approx(r['batch'] / r['ours_step_s'])
    ln_c = math.log(r['classes'])  # the first step's loss at random init
    assert math.isfinite(r['ours_first_loss']) and abs(r['ours_first_loss'] - ln_c) < 0.5 * ln_c, r
    assert r['ours_flops_per_step'] > 0 and r['ours_flops_source'].startswith('refine_jax.flops')
    assert r['ours_model_tflops'] == pytest.approx(r['ours_flops_per_step'] / r['ours_step_s'] / 1e12)
    assert r['ours_mfu'] == pytest.approx(r['ours_model_tflops'] / PEAK) and r['ours_mfu'] > 0
  assert res['meta']['smoke'] and res['meta']['jax_backend'] == 'cpu' and res['meta']['dtype'] == 'bfloat16'
  assert res['meta']['jax_status'] == 'ok' and res['meta']['peak_tflops'] == PEAK
  assert res['meta']['tensorflow_modules_in_jax_half'] == []
  wheels = re.search(r'^WHEELS=\((.*)\)$', open(os.path.join(ROOT, 'bench', 'device_check.sh')).read(), re.M)
  brought = {w.split('==')[0] for w in wheels.group(1).split()}
  missing = set(res['meta']['third_party_modules_in_jax_half']) - ON_DEVICE - brought
  assert 'ml_collections' in brought and not missing, missing
  assert 'resnet50 (2, 32)' in stdout and (out / 'device_check.md').read_text().startswith('| model')


@needs_torch
def test_torch_rows_match_ours(smoke):
  res = smoke[0]
  assert res['meta']['torch_status'] == 'ok'
  for r in res['steps']:
    assert r['torch_images_per_s'] > 0
    assert r['ours_over_torch'] == pytest.approx(r['ours_images_per_s'] / r['torch_images_per_s'])
    # The same architecture on both sides: our Flax model's parameter count equals torchvision's / torch_step's.
    assert r['ours_params'] == r['torch_params'], r
    # The same loss scale at random init, on the same batch.
    ln_c = math.log(r['classes'])
    assert math.isfinite(r['torch_first_loss']) and abs(r['torch_first_loss'] - ln_c) < 0.5 * ln_c, r
    assert abs(r['ours_first_loss'] - r['torch_first_loss']) < 0.5 * ln_c, r
    # Our count of our step (the MFU's numerator, from the jaxpr) against PyTorch's FLOP counter on the same
    # model and batch (matmuls and convolutions, forward and backward): independent counts of the same work.
    assert abs(r['ours_flops_over_torch'] - 1) < 0.10, r
    assert r['ours_flops_over_torch'] == pytest.approx(r['ours_flops_per_step'] / r['torch_flops_per_step'])
    # XLA's cost analysis beside them, for reference: on CPU it counts roughly the same work.
    assert 0.75 < r['flops_xla_over_torch_counter'] < 1.5, r
    assert r['flops_xla_over_torch_counter'] == pytest.approx(r['ours_xla_flops_per_step'] / r['torch_flops_per_step'])
    assert r['torch_mfu'] == pytest.approx(r['torch_model_tflops'] / PEAK) and r['torch_mfu'] > 0


def test_mixing_rows(smoke):
  res = smoke[0]
  mix = {m['kind']: m for m in res['mixing']}
  assert list(mix) == ['none', 'mixup', 'cutmix', 'manifold_mixup']
  assert mix['none']['vs_none'] == 1.0
  for m in mix.values():
    assert m['images_per_s'] > 0 and m['vs_none'] == pytest.approx(m['median_step_s'] / mix['none']['median_step_s'])
    # Against mixed (soft) targets the random-init loss keeps the same scale.
    assert math.isfinite(m['first_loss']) and abs(m['first_loss'] - math.log(10)) < 0.5 * math.log(10), m
  # Mixing 'none' is the step row's very executable, with the step row's first loss.
  row = next(r for r in res['steps'] if r['case'] == 'preact_resnet18/b2/16px/c10')
  assert mix['none']['first_loss'] == row['ours_first_loss']


@needs_torch
def test_torch_compile_is_guarded(smoke):
  # torch.compile under a 3 s limit: stopped and reported, not fatal.
  res = smoke[0]
  assert res['meta']['torch_compile_status'].startswith('timeout after 3 s'), res['meta']['torch_compile_status']
