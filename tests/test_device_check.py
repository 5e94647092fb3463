"""bench/device_check.sh --smoke on CPU with TensorFlow hidden: the accelerator benchmark's own code path (the JAX,
PyTorch and real-loop halves) on tiny sizes, checked against independent references (PyTorch's parameter counts
and FLOP counter, ln(num_classes) at random init, the loop runs' own workdirs and checkpoints), so that the
prepared script cannot rot before an accelerator is lent."""
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
             'toolz', 'treescope', 'typing_extensions', 'yaml', 'zipp',
             'google', 'uvloop'}  # protobuf and uvloop (in that list): Orbax imports them in a synthetic run of main
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
         f'--peak_tflops={PEAK}', '--compile_timeout_s=3', '--budget_s=1500', '--keep_work'] + (
             [] if HAS_TORCH else ['--no_torch'])
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


LOOP_CASES = ['loop/imagenet_r50_mixup/resnet_tiny/b8/16px', 'loop/cifar10_preact18_mixup/resnet_tiny/b8/16px']


def _workdir(out, case: str) -> str:
  return os.path.join(out, 'work', case.replace('/', '_'))


def test_loop_rows(smoke):
  """Each loop case is a `python -m refine_jax.main` run of its config file on synthetic data; its row is that run's
  own clock (timing.json) against the bare step of the very config the run recorded (config.json)."""
  res, stdout, out = smoke
  assert [r['case'] for r in res['loop']] == LOOP_CASES and res['meta']['loop_status'] == 'ok'
  for r in res['loop']:
    w = _workdir(out, r['case'])
    with open(os.path.join(w, 'timing.json')) as f:
      t = json.load(f)
    with open(os.path.join(w, 'summary.json')) as f:
      summary = json.load(f)
    with open(os.path.join(w, 'config.json')) as f:
      config = json.load(f)
    with open(os.path.join(w, 'metrics.jsonl')) as f:
      rows = [json.loads(l) for l in f]
    assert r['rc'] == 0 and config['dataset'] == 'synthetic' and config['model'] == r['model'] == 'resnet_tiny'
    assert r['config_differs_from_bare'] == []  # the bare step is the loop's own config
    # 6 + 1 epochs of 4 steps of batch 8, an eval every epoch, a checkpoint every epoch.
    assert summary['total_steps'] == 28 and t['images'] == 28 * r['batch'] == 224
    assert r['evals'] == len(rows) == 7 and r['saves'] == 7
    assert r['ips'] == pytest.approx(t['images'] / (t['loop_s'] - t['eval_s'] - t['save_s']))
    assert r['loop_over_bare'] == pytest.approx(r['ips'] / r['bare_images_per_s']) and r['bare_images_per_s'] > 0
    assert 0 < r['eval_share'] < 1 and 0 < r['save_share'] < 1 and r['eval_share'] + r['save_share'] < 1
    assert r['eval_share'] == pytest.approx(t['eval_s'] / t['loop_s'])
    assert r['peak_bytes_in_use'] is None  # CPU: no device memory statistics
  md = (out / 'device_check.md').read_text()
  assert all(c in md for c in LOOP_CASES) and 'loop ÷ bare' in md


def test_resume_rows(smoke):
  """A run stopped by SIGTERM after its first eval and re-run ends bit for bit where the uninterrupted run ends (on
  CPU, with and without the deterministic-ops flag): checked here on both final checkpoints, array by array."""
  from tests.test_resume import assert_states_equal, load_checkpoint
  res, stdout, out = smoke
  refs = {'default': _workdir(out, LOOP_CASES[1]),
          'deterministic_ops': os.path.join(out, 'work', 'resume_deterministic_ops_uninterrupted')}
  for label, ref in refs.items():
    c = res['resume'][label]
    assert c['interrupted']['rc'] == 3 and c['resumed']['rc'] == 0, c
    assert c['mid_phase'] and 4 <= c['stopped_at_step'] < c['phase_end_step'] == 24, c
    assert c['resumed_images'] == (28 - c['stopped_at_step']) * 8  # it trained the rest only
    assert c['state_bitwise_equal'] and c['params_bitwise_equal'] and c['params_arrays_differing'] == 0
    assert c['xla_flags'] == ('--xla_gpu_deterministic_ops=true' if label != 'default' else '')
    w = os.path.join(out, 'work', f'resume_{label}')
    a, meta_a = load_checkpoint(os.path.join(ref, 'checkpoints'), 28)
    b, meta_b = load_checkpoint(os.path.join(w, 'checkpoints'), 28)
    assert_states_equal(a, b, f'resume ({label})')
  # On CPU the flag changes nothing: a max pool's gradient (select-and-scatter) compiles and runs under it.
  assert res['resume']['max_pool_gradient_under_flag']['rc'] == 0
  assert 'max-pool gradient sum 1024.0' in res['resume']['max_pool_gradient_under_flag']['output_tail']
  ips = {k: res['resume'][k]['reference_images_per_s'] for k in refs}
  assert ips['default'] == next(r['ips'] for r in res['loop'] if r['case'] == LOOP_CASES[1])
  assert res['resume']['deterministic_ops_step_time_ratio'] == pytest.approx(ips['default'] / ips['deterministic_ops'])


def test_full_loop_cases_are_valid_configs_on_the_command_line():
  """The full-size loop cases (never run here): their `refine_jax.main` flags parse into the very config the bare
  step is built from, and it validates (synthetic data, no host ops, sizes) as the run's set-up will."""
  from absl import flags
  from ml_collections import config_flags
  from bench import device_check
  from refine_jax import config as config_lib
  from refine_jax import registries
  from refine_jax import spec as spec_lib
  for case in device_check.loop_plan(False):
    argv, fv = ['main'] + device_check.loop_args(case), flags.FlagValues()
    config_flags.DEFINE_config_file('config', None, 'the config file', flag_values=fv, sys_argv=argv)
    fv(argv)
    want = device_check.loop_config(case)
    assert spec_lib.as_dict(fv.config) == spec_lib.as_dict(want), case['name']
    config_lib.validate(fv.config, registries.default())
    assert want.dataset == 'synthetic' and want.dtype == 'bfloat16' and 'loop' in case['name']
  sizes = {c['name']: (device_check.loop_config(c).model, device_check.loop_config(c).batch_size,
                       device_check.loop_config(c).image_size) for c in device_check.loop_plan(False)}
  assert sizes == {'loop/resnet50/b256/224px': ('resnet50', 256, 224),
                   'loop/preact_resnet18/b128/32px': ('preact_resnet18', 128, 32)}
