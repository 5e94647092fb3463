"""The process environment `refine_jax` sets before JAX starts: the XLA:CPU YNNPACK workaround (issue 22).

On jaxlib 0.11 / 0.12 XLA:CPU computes garbage for a bfloat16 reduction over a chain of convolutions (every
ResNet's global pool in eval mode), so every bfloat16 evaluation was NaN; `refine_jax.runtime_env` removes that
fusion type. The reproducer below is the one its docstring gives; on jaxlib 0.10 it passes with or without the
workaround, on 0.11+ only with it.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from refine_jax import runtime_env
from tests.conftest import ROOT, env_for

REPRODUCER = r'''
import json, sys
import refine_jax  # sets XLA_FLAGS before the first backend starts
import jax, jax.numpy as jnp, numpy as np
rs = np.random.RandomState(0)
x = jnp.asarray(rs.randn(8, 8, 8, 32), jnp.bfloat16)
w1 = jnp.asarray(rs.randn(3, 3, 32, 64) * 0.1, jnp.bfloat16)
w2 = jnp.asarray(rs.randn(3, 3, 64, 64) * 0.1, jnp.bfloat16)
conv = lambda x, w, s: jax.lax.conv_general_dilated(x, w, (s, s), ((1, 1), (1, 1)),
                                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
f = lambda x, w1, w2: jnp.mean(jax.nn.relu(conv(jax.nn.relu(conv(x, w1, 2)), w2, 1)).astype(jnp.float32), (1, 2))
f32 = lambda *a: f(*(v.astype(jnp.float32) for v in a))
print(json.dumps({'jit': np.asarray(jax.jit(f)(x, w1, w2)).tolist(), 'f32': np.asarray(f32(x, w1, w2)).tolist(),
                  'state': refine_jax.runtime_env.ynn_workaround()}))
'''


def _run(code: str) -> dict:
  p = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env_for(), capture_output=True, text=True,
                     timeout=300)
  assert p.returncode == 0, p.stderr[-3000:]
  return json.loads(p.stdout.strip().splitlines()[-1])


def test_bfloat16_reduction_over_convolutions_is_finite_and_right_on_the_cpu():
  got = _run(REPRODUCER)
  jit, ref = np.asarray(got['jit']), np.asarray(got['f32'])
  assert np.isfinite(jit).all(), got['state']
  # bfloat16 against float32 of the same inputs: a few bf16 ulps of the values' scale, not 1e37.
  assert np.abs(jit - ref).max() <= 0.02 * np.abs(ref).max(), (np.abs(jit - ref).max(), np.abs(ref).max())
  assert got['state'] in ('in force', 'not needed')


def test_bfloat16_eval_of_a_resnet_matches_float32_in_process():
  """The trainer's own eval step (steps.eval_sums) in bfloat16 on a ResNet: finite, and near the float32 loss of
  the same parameters (this process imported refine_jax before any JAX computation: tests/conftest.py)."""
  import jax
  import jax.numpy as jnp
  from refine_jax import models, steps
  x = np.random.RandomState(0).randint(0, 256, (16, 16, 16, 3)).astype(np.uint8)
  batch = {'image': x, 'label': np.arange(16, dtype=np.int32) % 10, 'mask': np.ones(16, np.float32)}
  losses = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    model = models.get_model('resnet_tiny', 10, dtype=dtype)
    v = model.init({'params': jax.random.PRNGKey(0)}, jnp.zeros((2, 16, 16, 3), dtype), train=False)
    env = steps.Env(model=model, tx=None, mesh=None, num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3, dtype=dtype,
                    smoothing=0.0, seed=0, gamma_fn=None, prob_fn=None)
    state = steps.TrainState(step=jnp.ones((), jnp.int32), params=v['params'], batch_stats=v['batch_stats'],
                             opt_state=None)
    sums = jax.jit(lambda s, b: steps.eval_sums(env, None, s, b, None))(state, batch)
    losses[jnp.dtype(dtype).name] = float(sums['loss']) / float(sums['count'])
  assert np.isfinite(losses['bfloat16']), (losses, runtime_env.ynn_workaround())
  assert losses['bfloat16'] == pytest.approx(losses['float32'], rel=0.02)


@pytest.mark.parametrize('jaxlib, flags, started, want_state, want_flags', [
    ((0, 10), '', False, 'not needed', ''),
    ((0, 12), '', False, 'in force', runtime_env.YNN_WORKAROUND),
    ((0, 11), '--xla_foo=1', False, 'in force', f'--xla_foo=1 {runtime_env.YNN_WORKAROUND}'),
    ((0, 12), f'{runtime_env.YNN_FLAG}=', False, "overridden by the user's XLA_FLAGS", f'{runtime_env.YNN_FLAG}='),
    ((0, 12), runtime_env.YNN_WORKAROUND, False, 'set by the user', runtime_env.YNN_WORKAROUND),
    ((0, 12), '', True, 'missing: a JAX backend started before refine_jax was imported', ''),
    (None, '', False, 'not needed', ''),
])
def test_the_flag_is_added_only_where_needed_and_never_over_the_users(monkeypatch, jaxlib, flags, started,
                                                                       want_state, want_flags):
  monkeypatch.setattr(runtime_env, '_version', lambda package: jaxlib)
  monkeypatch.setattr(runtime_env, '_backends_started', lambda: started)
  environ = {'XLA_FLAGS': flags} if flags else {}
  assert runtime_env._apply_ynn(environ) == want_state
  assert environ.get('XLA_FLAGS', '') == want_flags
