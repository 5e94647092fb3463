"""refine_jax.flops: FLOPs counted from the jaxpr, checked against hand-computed counts of single products and
convolutions and against PyTorch's `torch.utils.flop_counter` on the same networks' forward + backward (run on
torch's `meta` device: the counter works from shapes). Tracing only, nothing compiled."""
from __future__ import annotations

import functools
import importlib.util

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AbstractMesh, AxisType, PartitionSpec as P

from bench import common
from refine_jax import flops
from refine_jax import steps

HAS_TORCH = all(importlib.util.find_spec(m) for m in ('torch', 'torchvision'))
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason='torch / torchvision not installed')
F32 = jnp.float32


def sds(*shape, dtype=F32):
  return jax.ShapeDtypeStruct(shape, dtype)


def conv(x, w, stride=1, padding='SAME', groups=1):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                      feature_group_count=groups)


def test_dot_general_by_hand():
  assert flops.count(jnp.dot, sds(3, 4), sds(4, 5)) == 2 * 3 * 4 * 5
  assert flops.count(functools.partial(jnp.einsum, 'bij,bjk->bik'), sds(2, 3, 4), sds(2, 4, 5)) == 2 * 2 * 3 * 4 * 5
  assert flops.count(jnp.dot, sds(7, 6), sds(6)) == 2 * 7 * 6  # matrix × vector
  assert flops.count(lambda a, b: jnp.tanh(a @ b) + 1.0, sds(3, 4), sds(4, 5)) == 120  # elementwise: nothing


def test_conv_by_hand():
  # 9×9 → 5×5 (stride 2, SAME), 3×3 kernel, 3 → 8 features: 2 · out elements · 9 · 3.
  assert flops.count(functools.partial(conv, stride=2), sds(2, 9, 9, 3), sds(3, 3, 3, 8)) == 2 * (2 * 5 * 5 * 8) * 9 * 3
  # Grouped: 4 input features in 2 groups, each output sees 2 of them; VALID 7×7 → 5×5.
  grouped = functools.partial(conv, padding='VALID', groups=2)
  assert flops.count(grouped, sds(2, 7, 7, 4), sds(3, 3, 2, 6)) == 2 * (2 * 5 * 5 * 6) * 9 * 2


@pytest.mark.parametrize('stride,groups', [(1, 1), (2, 1), (2, 2)])
def test_conv_backward_by_hand(stride, groups):
  # Forward, the gradient w.r.t. the kernel and w.r.t. the input each cost the forward's multiply-adds (the
  # input gradient of a stride-2 convolution is an input-dilated one: its inserted zeros do not count).
  def loss(w, x):
    return jnp.sum(conv(x, w, stride, groups=groups) ** 2)
  x, w = sds(2, 8, 8, 4), sds(3, 3, 4 // groups, 6)
  fwd = 2 * (2 * (8 // stride) ** 2 * 6) * 9 * (4 // groups)
  assert flops.count(loss, w, x) == fwd
  assert flops.count(jax.grad(loss), w, x) == 2 * fwd  # forward + kernel gradient
  assert flops.count(jax.grad(loss, argnums=(0, 1)), w, x) == 3 * fwd


@needs_torch
@pytest.mark.parametrize('stride,padding', [(1, 1), (2, 1), (2, 0)])
def test_conv_backward_matches_torch(stride, padding):
  # Ungrouped only: for a grouped convolution PyTorch's counter counts the kernel gradient `groups` times over
  # (its formula takes every input feature for every group); our networks have no grouped convolutions.
  import torch
  from torch.utils.flop_counter import FlopCounterMode
  n, size, cin, cout, k = 2, 9, 8, 12, 3
  with torch.device('meta'):
    x = torch.randn(n, cin, size, size, requires_grad=True)
    w = torch.randn(cout, cin, k, k, requires_grad=True)
  with FlopCounterMode(display=False) as fc:
    torch.nn.functional.conv2d(x, w, stride=stride, padding=padding).square().sum().backward()

  def loss(w, x):
    return jnp.sum(conv(x, w, stride, [(padding, padding)] * 2) ** 2)
  ours = flops.count(jax.grad(loss, argnums=(0, 1)), sds(k, k, cin, cout), sds(n, size, size, cin))
  assert ours == fc.get_total_flops()


def test_sub_programs():
  mm = sds(3, 3)
  one = 2 * 3 * 3 * 3
  assert flops.count(jax.jit(lambda a: jax.jit(jnp.dot)(a, a) @ a), mm) == 2 * one  # nested jit: once each
  scan = lambda a: jax.lax.scan(lambda c, _: (c @ c, None), a, None, length=5)[0]
  assert flops.count(scan, mm) == 5 * one
  fori = lambda a: jax.lax.fori_loop(0, 4, lambda i, c: c @ c, a)  # static bounds: a scan
  assert flops.count(fori, mm) == 4 * one
  # cond: the costliest branch.
  cond = lambda a: jax.lax.cond(a.sum() > 0, lambda b: b @ b @ b, lambda b: b @ b, a)
  assert flops.count(cond, mm) == 2 * one
  switch = lambda a: jax.lax.switch(a.sum().astype(jnp.int32) % 3, [lambda b: b, lambda b: b @ b, lambda b: -b], a)
  assert flops.count(switch, mm) == one
  # remat: the recomputed forward counts again in the backward pass (it is run again).
  sq = jax.checkpoint(lambda a: jnp.sin(a @ a))
  assert flops.count(jax.grad(lambda a: sq(a).sum()), mm) == 4 * one  # forward, its recomputation, 2 products back
  # custom_vjp: the primal counts (its backward here holds a product too).
  @jax.custom_vjp
  def f(a):
    return a @ a
  f.defvjp(lambda a: (a @ a, a), lambda a, g: (g @ a.T + a.T @ g,))
  assert flops.count(f, mm) == one and flops.count(jax.grad(lambda a: f(a).sum()), mm) == 3 * one


def test_while_loops():
  # A while loop without products (the Beta sampler's rejection loop) counts nothing; one with products has no
  # trip count known when tracing: an error, not a guess.
  assert flops.count(lambda k: jax.random.beta(k, 0.3, 0.3, (8,)), jax.random.key(0)) == 0
  loop = lambda a, n: jax.lax.fori_loop(0, n, lambda i, c: c @ c, a)
  with pytest.raises(ValueError, match='trip count'):
    flops.count(loop, sds(3, 3), 3)


def test_shard_map_counts_every_device():
  mesh = AbstractMesh((4, 2), ('data', 'model'), axis_types=(AxisType.Auto,) * 2)
  x = sds(8, 4)
  total = 2 * 8 * 4 * 8  # the global x @ x.T's 8 × 8 outputs, 4 multiply-adds each
  data_only = jax.shard_map(lambda q: q @ q.T, mesh=mesh, in_specs=P('data'), out_specs=P('data'), axis_names={'data'})
  # Each of the 4 data shards computes its 2 × 2 diagonal block: a quarter of the global product each.
  assert flops.count(data_only, x) == 4 * (2 * 2 * 2 * 4) == total // 4
  both = jax.shard_map(lambda q: q @ q.T, mesh=mesh, in_specs=P('data'), out_specs=P('data'))
  assert flops.count(both, x) == 8 * (2 * 2 * 2 * 4)  # the 2 model devices of a data shard each do it


def step_flops(model: str, batch: int, size: int, classes: int, kind: str = 'none') -> int:
  """Our count of one training step (forward, backward, update) as the device check builds it, from shapes."""
  env, phase = common.step_env(model, classes, dtype='bfloat16', kind=kind)
  state = jax.eval_shape(functools.partial(steps.init_state, env, (size, size, 3)), 0)
  images = sds(batch, size, size, 3, dtype=jnp.uint8)
  return flops.count(functools.partial(steps.train_step, env, phase.mix), state,
                     {'image': images, 'label': sds(batch, dtype=jnp.int32)})


def torch_flops(model: str, batch: int, size: int, classes: int) -> int:
  """PyTorch's flop counter over the same model's forward + backward (bench/torch_step.py's models)."""
  import torch
  import torch.nn.functional as F
  from torch.utils.flop_counter import FlopCounterMode
  from bench.torch_step import get_model
  with torch.device('meta'):
    net = get_model(model, classes).train()
    x, y = torch.randn(batch, 3, size, size), torch.zeros(batch, dtype=torch.long)
  with FlopCounterMode(display=False) as fc:
    F.cross_entropy(net(x), y).backward()
  return fc.get_total_flops()


@needs_torch
@pytest.mark.parametrize('model,size,classes', [('resnet50', 224, 1000), ('preact_resnet18', 32, 10),
                                                ('wide_resnet28_10', 32, 10)])
def test_train_step_matches_torch_counter(model, size, classes):
  # The device check's sizes; FLOPs are linear in the batch (below), so batch 2 stands for any.
  ours, theirs = step_flops(model, 2, size, classes), torch_flops(model, 2, size, classes)
  assert theirs > 0 and ours / theirs == pytest.approx(1.0, abs=0.01), (ours, theirs, ours / theirs)


def test_linear_in_the_batch():
  two = step_flops('preact_resnet18', 2, 32, 10)
  assert step_flops('preact_resnet18', 6, 32, 10) == 3 * two
  # ResNet-50's forward at 224 px is 4.1 G multiply-adds per image (He et al. 2016, "3.8 × 10⁹ FLOPs" of the
  # v1 net; torchvision's v1.5 moves the stride to the 3×3 conv: 4.09 G), so its step is about 3 × 8.2 GFLOP
  # per image less the first convolution's unneeded input gradient.
  per_image = step_flops('resnet50', 1, 224, 1000)
  assert 23.5e9 < per_image < 24.6e9, per_image


def test_mixing_adds_no_counted_flops():
  # Mixup, CutMix and Manifold Mixup (its cond over the mixing points) add elementwise work only.
  base = step_flops('preact_resnet18', 4, 16, 10)
  assert [step_flops('preact_resnet18', 4, 16, 10, k) for k in ('mixup', 'cutmix', 'manifold_mixup')] == [base] * 3
