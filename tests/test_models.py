"""Tests for refine_jax.models: sizes against published counts, hook placement, modes, Shake-Shake maths.

Big models are only traced (jax.eval_shape); real forward passes use tiny inputs so the file
stays fast on a 2-core CPU.  Keys use the 'rbg' PRNG: with threefry, XLA CPU spends most of a
tiny model's init compiling the random-number graphs (about 6 s vs 1.5 s for resnet_tiny).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from refine_jax.models import MODELS, get_model, mix_points
from refine_jax.models.shake_shake import shake


def rng(seed: int) -> jax.Array:
  return jax.random.key(seed, impl='rbg')


KEY = rng(0)


def conv_p(k: int, cin: int, cout: int) -> int:
  return k * k * cin * cout


def bn_p(c: int) -> int:
  return 2 * c  # gamma + beta; running stats are not trainable


def fc_p(cin: int, n: int) -> int:
  return cin * n + n


def preact_count(width: int, stage_sizes: tuple[int, ...], num_classes: int, variant='identity_mappings') -> int:
  """Hand count of the kuangliu/mixup PreActResNet layout: a stem BN (mixup_cifar) or a final BN (default)."""
  total, cin = conv_p(3, 3, width) + (bn_p(width) if variant == 'mixup_cifar' else 0), width
  for i, n in enumerate(stage_sizes):
    c = width * 2**i
    for j in range(n):
      total += bn_p(cin) + conv_p(3, cin, c) + bn_p(c) + conv_p(3, c, c)
      total += conv_p(1, cin, c) if cin != c or (i > 0 and j == 0) else 0
      cin = c
  return total + (0 if variant == 'mixup_cifar' else bn_p(cin)) + fc_p(cin, num_classes)


def shake_count(base: int, blocks: int, num_classes: int) -> int:
  """Hand count of hysts' Shake-Shake: 2 branches per block, 2-flow 1x1 shortcut on width change."""
  total, cin = conv_p(3, 3, 16) + bn_p(16), 16
  for i in range(3):
    c = base * 2**i
    for _ in range(blocks):
      total += 2 * (conv_p(3, cin, c) + bn_p(c) + conv_p(3, c, c) + bn_p(c))
      total += 2 * conv_p(1, cin, c // 2) + bn_p(c) if cin != c else 0
      cin = c
  return total + fc_p(cin, num_classes)


def param_shapes(model, px: int = 32, **init_kwargs):
  return jax.eval_shape(lambda: model.init(KEY, jnp.zeros((2, px, px, 3)), train=False, **init_kwargs))


def count(variables) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(variables['params']))


@pytest.mark.parametrize('name, num_classes, px, expected, published_m', [
    ('preact_resnet18', 100, 32, preact_count(64, (2, 2, 2, 2), 100), 11.2),
    ('wide_resnet28_10', 10, 32, 36_479_194, 36.5),  # Zagoruyko & Komodakis, CIFAR-10
    ('wide_resnet28_10', 100, 32, 36_479_194 + 90 * (640 + 1), 36.5),  # 90 more classifier rows
    ('resnet50', 1000, 64, 25_557_032, 25.6),  # torchvision
    ('resnet101', 1000, 64, 44_549_160, 44.5),  # torchvision
    ('shake_shake26_2x96d', 10, 32, shake_count(96, 4, 10), 26.2),
    ('resnet_tiny', 10, 32, preact_count(16, (1, 1, 1), 10), None),
])
def test_parameter_counts(name, num_classes, px, expected, published_m):
  variables = param_shapes(get_model(name, num_classes), px)
  n = count(variables)
  assert n == expected
  if published_m is not None:
    assert round(n / 1e6, 1) == published_m
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))


EXPECTED_HOOK_SHAPES = {
  # name: (px, [channels, spatial] per mix point after the input)
  'resnet_tiny': (32, [(16, 32), (32, 16), (64, 8)]),
  'preact_resnet18': (32, [(64, 32), (128, 16), (256, 8), (512, 4)]),
  'wide_resnet28_10': (32, [(160, 32), (320, 16), (640, 8)]),
  'shake_shake26_2x96d': (32, [(96, 32), (192, 16), (384, 8)]),
  'resnet50': (64, [(256, 16), (512, 8), (1024, 4), (2048, 2)]),  # /4 after stem+maxpool
  'resnet101': (64, [(256, 16), (512, 8), (1024, 4), (2048, 2)]),
}


@pytest.mark.parametrize('name', sorted(MODELS))
def test_hook_called_once_per_mix_point_in_order(name):
  px, stages = EXPECTED_HOOK_SHAPES[name]
  calls = []

  def hook(h, i):
    calls.append((i, h.shape))
    return h

  param_shapes(get_model(name, 10), px, hook=hook)
  expected = [(0, (2, px, px, 3))] + [(i + 1, (2, s, s, c)) for i, (c, s) in enumerate(stages)]
  assert calls == expected
  assert len(mix_points(name)) == len(expected)
  assert mix_points(name)[0] == 'input'


@pytest.fixture(scope='module')
def tiny():
  model = get_model('resnet_tiny', 10)
  x = jax.random.normal(rng(1), (4, 16, 16, 3))
  return model, jax.jit(lambda x: model.init(KEY, x, train=False))(x), x


def mix_reversed(h):
  return 0.5 * (h + h[::-1])


def mix_then_square(h):
  # Nonlinear, so it cannot commute with the (linear) stem conv: pins the hook before it.
  return mix_reversed(h) ** 2


@pytest.mark.parametrize('transform', [mix_reversed, mix_then_square])
def test_input_hook_equals_feeding_transformed_input(tiny, transform):
  model, variables, x = tiny
  hooked = model.apply(variables, x, train=False, hook=lambda h, i: transform(h) if i == 0 else h)
  np.testing.assert_allclose(hooked, model.apply(variables, transform(x), train=False), rtol=1e-5, atol=1e-5)
  assert not np.allclose(hooked, model.apply(variables, x, train=False))


def test_hook_output_is_used_and_features_are_sown(tiny):
  model, variables, x = tiny
  params = jax.tree_util.tree_map(jnp.asarray, variables['params'])  # copy: the fixture is shared
  params['fc']['bias'] = jnp.arange(10, dtype=jnp.float32)
  variables = {**variables, 'params': params}
  # Zeroing the last stage: eval-mode final BN (mean 0, var 1, gamma 1, beta 0) + ReLU keep 0 -> logits = bias.
  zeroed = model.apply(variables, x, train=False, hook=lambda h, i: jnp.zeros_like(h) if i == 3 else h)
  np.testing.assert_allclose(zeroed, np.broadcast_to(np.arange(10.0), (4, 10)), atol=1e-6)

  logits, state = model.apply(variables, x, train=False, mutable=['intermediates'])
  (feats,) = state['intermediates']['features']
  assert feats.shape == (4, 64)
  np.testing.assert_allclose(logits, feats @ params['fc']['kernel'] + params['fc']['bias'], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['resnet_tiny', 'preact_resnet18'])
def test_output_shape_and_dtype_at_32_and_64_px(name):
  model = get_model(name, 10)
  init = jax.jit(lambda x: model.init_with_output(KEY, x, train=False))
  logits_32, variables = init(jax.random.normal(rng(1), (2, 32, 32, 3)))
  logits_64 = jax.jit(lambda x: model.apply(variables, x, train=False))(jax.random.normal(rng(2), (2, 64, 64, 3)))
  for logits in (logits_32, logits_64):
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert np.isfinite(logits).all()


def test_bfloat16_compute_keeps_float32_params_and_logits(tiny):
  _, variables, x = tiny  # float32 parameters, as a bf16 model must also create
  model = get_model('resnet_tiny', 10, dtype=jnp.bfloat16)
  created = param_shapes(model, 16)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(created)} == {jnp.dtype(jnp.float32)}
  stage_dtypes = []

  def record_dtype(h, i):
    stage_dtypes.append(h.dtype)
    return h

  train_apply = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats'], hook=record_dtype))
  logits, state = train_apply(variables, x)
  assert stage_dtypes[1:] == [jnp.bfloat16] * 3  # the computation really runs in bf16
  assert logits.dtype == jnp.float32 and np.isfinite(logits).all()
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(state)} == {jnp.dtype(jnp.float32)}


def test_train_mode_updates_batch_stats_with_torch_momentum(tiny):
  model, variables, x = tiny
  _, state = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats', 'intermediates'],
                                             capture_intermediates=True))(variables, x)
  stem = np.asarray(state['intermediates']['conv1']['__call__'][0], np.float64)
  stats = state['batch_stats']['layer1_0']['bn1']
  # running = 0.9 * running + 0.1 * batch statistic (initial mean 0, var 1; biased batch variance).
  np.testing.assert_allclose(stats['mean'], 0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * stem.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  # Eval mode reads the running stats and leaves them alone: same output twice, nothing mutated.
  eval_out, eval_state = model.apply(variables, x, train=False, mutable=['batch_stats'])
  np.testing.assert_array_equal(eval_out, model.apply(variables, x, train=False))
  jax.tree_util.tree_map(np.testing.assert_array_equal, eval_state['batch_stats'], variables['batch_stats'])


def test_zero_init_residual_makes_blocks_identity_at_init():
  model = get_model('resnet_tiny', 10, zero_init_residual=True)
  x = jax.random.normal(rng(1), (2, 16, 16, 3))
  variables = jax.jit(lambda x: model.init(KEY, x, train=False, capture_intermediates=True))(x)
  inter = variables['intermediates']
  np.testing.assert_array_equal(inter['layer1_0']['__call__'][0], inter['conv1']['__call__'][0])
  assert not np.any(variables['params']['layer2_0']['bn2']['scale'])


def test_wide_resnet_dropout_only_in_train_mode():
  model = get_model('wide_resnet28_10', 10, depth=10, widen_factor=1, dropout_rate=0.5)
  x = jax.random.normal(rng(1), (2, 8, 8, 3))
  variables = jax.jit(lambda x: model.init(KEY, x, train=False))(x)
  # Eval needs no dropout rng and is deterministic.
  eval_logits = jax.jit(lambda x: model.apply(variables, x, train=False))
  np.testing.assert_array_equal(eval_logits(x), eval_logits(x))

  @jax.jit
  def train_logits_jit(key):
    return model.apply(variables, x, train=True, mutable=['batch_stats'], rngs={'dropout': key})[0]

  def train_logits(seed):
    return train_logits_jit(rng(seed))

  np.testing.assert_array_equal(train_logits(1), train_logits(1))
  assert not np.allclose(train_logits(1), train_logits(2))


def test_shake_function_forward_uses_alpha_backward_uses_beta():
  a, b = jax.random.normal(rng(1), (2, 3, 4, 4, 5))
  alpha = jnp.array([0.1, 0.5, 0.9]).reshape(3, 1, 1, 1)
  beta = jnp.array([0.7, 0.2, 0.4]).reshape(3, 1, 1, 1)
  np.testing.assert_allclose(shake(a, b, alpha, beta), alpha * a + (1 - alpha) * b, rtol=1e-6, atol=1e-6)
  grad_a, grad_b = jax.grad(lambda a, b: shake(a, b, alpha, beta).sum(), argnums=(0, 1))(a, b)
  np.testing.assert_allclose(grad_a, np.broadcast_to(beta, a.shape), rtol=1e-6)
  np.testing.assert_allclose(grad_b, np.broadcast_to(1 - beta, b.shape), rtol=1e-6)


@pytest.fixture(scope='module')
def small_shake():
  model = get_model('shake_shake26_2x96d', 10, depth=8, base_channels=8)
  x = jax.random.normal(rng(2), (4, 8, 8, 3))
  return model, jax.jit(lambda x: model.init(KEY, x, train=False))(x), x


@functools.partial(jax.jit, static_argnums=(0, 4))
def _first_block(model, variables, x, key, train):
  """Everything captured inside block stage1_0 (it has a projection shortcut) during one forward."""
  _, state = model.apply(variables, x, train=train, rngs={'shake': key}, mutable=['batch_stats', 'intermediates'],
                         capture_intermediates=True)
  return state['intermediates']['stage1_0']


def _block_parts(model, variables, x, train, seed=0):
  """Block output, its shortcut and both branch outputs."""
  block = _first_block(model, variables, x, rng(seed), train)
  return tuple(np.asarray(d['__call__'][0], np.float64)
               for d in (block, block['shortcut'], block['branch1'], block['branch2']))


def test_shake_eval_is_alpha_half_and_deterministic(small_shake):
  model, variables, x = small_shake
  out, shortcut, a, b = _block_parts(model, variables, x, train=False)
  np.testing.assert_allclose(out, shortcut + 0.5 * a + 0.5 * b, rtol=1e-5, atol=1e-5)
  logits = [model.apply(variables, x, train=False, rngs={'shake': rng(s)}) for s in (1, 2)]
  np.testing.assert_array_equal(logits[0], logits[1])


def test_shake_train_alpha_per_example_and_independent_beta(small_shake):
  model, variables, x = small_shake
  out, shortcut, a, b = _block_parts(model, variables, x, train=True)
  # Least-squares alpha per example from out - shortcut = alpha * a + (1 - alpha) * b.
  d, r = (a - b).reshape(4, -1), (out - shortcut - b).reshape(4, -1)
  alpha = (d * r).sum(1) / (d * d).sum(1)
  np.testing.assert_allclose(r, alpha[:, None] * d, atol=1e-4)
  assert np.all((alpha >= 0) & (alpha <= 1))
  assert np.ptp(alpha) > 1e-3  # per-example, not one alpha per batch
  assert not np.allclose(_block_parts(model, variables, x, train=True, seed=1)[0], out)

  # Backward: the block output is shortcut + shake(bn2_1(...), bn2_2(...)) and a BN bias enters
  # its branch with slope 1, so d sum(out) / d bias = sum_n beta_n * H * W (1 - beta_n for branch 2).
  def block_sum(params):
    return _first_block(model, {**variables, 'params': params}, x, rng(0), True)['__call__'][0].sum()

  grads = jax.grad(block_sum)(variables['params'])['stage1_0']
  beta_sum = np.asarray(grads['branch1']['bn2']['bias']) / (8 * 8)
  np.testing.assert_allclose(beta_sum, beta_sum[0], rtol=1e-5)
  np.testing.assert_allclose(beta_sum + np.asarray(grads['branch2']['bn2']['bias']) / (8 * 8), 4.0, rtol=1e-5)
  assert 0 <= beta_sum[0] <= 4
  assert abs(beta_sum[0] - alpha.sum()) > 1e-2  # beta is drawn independently of alpha


@pytest.mark.parametrize('variant, num_classes, expected', [
    # 11,171,146: kuangliu/pytorch-cifar's PreActResNet18 at 10 classes (no BN outside the blocks), plus the
    # 512-channel final BN (1,024 params) or the 64-channel stem BN (128).
    ('identity_mappings', 10, 11_171_146 + 1024),
    ('mixup_cifar', 10, 11_171_146 + 128),
])
def test_preact_resnet18_variants_count_and_structure(variant, num_classes, expected):
  variables = param_shapes(get_model('preact_resnet18', num_classes, variant=variant))
  n = count(variables)
  assert n == expected == preact_count(64, (2, 2, 2, 2), num_classes, variant)
  assert round(n / 1e6, 2) == 11.17
  top = set(variables['params'])
  if variant == 'mixup_cifar':  # conv-BN-ReLU stem, no BN before the pooling (mixup-cifar10 models/resnet.py)
    assert 'bn_stem' in top and 'bn_final' not in top
    assert variables['params']['bn_stem']['scale'].shape == (64,)
  else:  # conv stem, final BN-ReLU before the pooling (Identity Mappings)
    assert 'bn_final' in top and 'bn_stem' not in top
    assert variables['params']['bn_final']['scale'].shape == (512,)


def _preact_tiny_forward(variant):
  model = get_model('resnet_tiny', 10, width=4, variant=variant)
  x = jax.random.normal(rng(3), (2, 8, 8, 3))
  variables = model.init(KEY, x, train=False)
  _, state = model.apply(variables, x, train=False, capture_intermediates=True, mutable=['intermediates'])
  return variables, state['intermediates']


def test_preact_variants_place_the_bn_relu_where_their_reference_does():
  """mixup_cifar: the first block sees relu(bn(conv(x))) and the pooled features are the raw last block sum;
  identity_mappings: the first block sees conv(x) and the features are the mean of relu(bn(last block))."""
  for variant in ('mixup_cifar', 'identity_mappings'):
    variables, inter = _preact_tiny_forward(variant)
    stem = np.asarray(inter['conv1']['__call__'][0])
    block_in = np.asarray(inter['layer1_0']['bn1']['__call__'][0])  # bn1 of block 1 normalises the block input
    last = np.asarray(inter['layer3_0']['__call__'][0])
    feats = np.asarray(inter['features'][0])
    bs = variables['batch_stats']
    p = variables['params']
    if variant == 'mixup_cifar':
      st, pr = bs['bn_stem'], p['bn_stem']
      stem = np.maximum((stem - st['mean']) / np.sqrt(st['var'] + 1e-5) * pr['scale'] + pr['bias'], 0)
      np.testing.assert_allclose(feats, last.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    else:
      st, pr = bs['bn_final'], p['bn_final']
      np.testing.assert_allclose(
          feats, np.maximum((last - st['mean']) / np.sqrt(st['var'] + 1e-5) * pr['scale'] + pr['bias'], 0
                            ).mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    b1s, b1p = bs['layer1_0']['bn1'], p['layer1_0']['bn1']
    np.testing.assert_allclose(block_in, (stem - b1s['mean']) / np.sqrt(b1s['var'] + 1e-5) * b1p['scale']
                               + b1p['bias'], rtol=1e-5, atol=1e-5)


def test_preact_rejects_unknown_variant():
  with pytest.raises(ValueError, match='variant.*identity_mappings, mixup_cifar'):
    param_shapes(get_model('preact_resnet18', 10, variant='kuangliu'))


def test_get_model_rejects_unknown_name_and_kwarg():
  with pytest.raises(ValueError, match='model') as err:
    get_model('resnet18', 10)
  assert all(name in str(err.value) for name in MODELS)
  with pytest.raises(ValueError, match='model'):
    mix_points('resnet18')
  with pytest.raises(ValueError, match='droput_rate') as err:
    get_model('wide_resnet28_10', 10, droput_rate=0.3)
  assert 'dropout_rate' in str(err.value)
