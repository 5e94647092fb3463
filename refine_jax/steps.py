"""The device path: train state, optimizer, the jitted train step and the eval sums.

Importable without TensorFlow (JAX, Flax, Optax only), so an accelerator machine can build and time the very
step that training runs (`bench/bench_step.py`). Every random key is `fold_in(seed, step)`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh

from refine_jax import models
from refine_jax import schedules
from refine_jax.augment import mixing
from refine_jax.plan import Plan
from refine_jax.spec import ModelSpec, OptimizerSpec

# fold_in data of the R̂aug diagnostic's key (2**31 - 1, the largest int32 step): no run reaches it, so the
# diagnostic's mixing never reuses a training step's key `fold_in(seed, step)`.
DIAG_KEY_DATA = -1 % (1 << 31)


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


@dataclasses.dataclass(frozen=True)
class Env:
  """What the jitted steps close over (all static: bound with functools.partial, never traced)."""
  model: Any
  tx: optax.GradientTransformation
  mesh: Mesh
  num_classes: int
  mean: tuple
  std: tuple
  dtype: Any
  smoothing: float
  seed: int
  gamma_fn: schedules.Schedule
  prob_fn: schedules.Schedule


def make_mesh() -> Mesh:
  """A one-axis mesh over all devices, `data`: the batch is split over it, the state replicated."""
  return jax.make_mesh((jax.device_count(),), ('data',), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices())


def make_optimizer(o: OptimizerSpec, lr_fn: schedules.Schedule) -> optax.GradientTransformation:
  """SGD + momentum with L2 weight decay added to the gradient (PyTorch's `weight_decay`, as the paper)."""
  parts = []
  if o.max_grad_norm:
    parts.append(optax.clip_by_global_norm(o.max_grad_norm))
  parts += [optax.add_decayed_weights(o.weight_decay),
            optax.sgd(lr_fn, momentum=o.momentum or None, nesterov=o.nesterov)]
  return optax.chain(*parts)


def make_model(m: ModelSpec, num_classes: int):
  """The Flax module of `m` (its compute dtype; parameters stay float32)."""
  dtype = jnp.bfloat16 if m.dtype == 'bfloat16' else jnp.float32
  return models.get_model(m.name, num_classes, dtype=dtype, **dict(m.kwargs))


def make_env(plan: Plan, mesh: Mesh, *, num_classes: int, mean: tuple, std: tuple) -> Env:
  """The one way to build an Env: the model, optimizer and schedules of the plan's spec (training and the
  benchmarks alike)."""
  spec = plan.spec
  model = make_model(spec.model, num_classes)
  return Env(model=model, tx=make_optimizer(spec.optimizer, plan.lr), mesh=mesh, num_classes=num_classes,
             mean=tuple(mean), std=tuple(std), dtype=model.dtype, smoothing=spec.optimizer.label_smoothing,
             seed=spec.seed, gamma_fn=plan.mix_gamma, prob_fn=plan.mix_prob)


def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  return -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32)), axis=-1)


def one_hot(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
  y = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  return y * (1.0 - smoothing) + smoothing / num_classes if smoothing else y


def normalize(images: jax.Array, mean, std, dtype=jnp.float32) -> jax.Array:
  """uint8 images (host) → [0, 1] → minus mean, divided by std (per channel), in `dtype`."""
  x = images.astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
  return x.astype(dtype)


def init_state(env: Env, image_shape: tuple[int, ...], seed: int) -> TrainState:
  x = jnp.zeros((2,) + tuple(image_shape), env.dtype)
  variables = env.model.init({'params': jax.random.PRNGKey(seed), 'dropout': jax.random.PRNGKey(1),
                              'shake': jax.random.PRNGKey(2)}, x, train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=env.tx.init(params))


def _mixed_batch(env: Env, spec: mixing.MixSpec, key, step, batch):
  x = normalize(batch['image'], env.mean, env.std, env.dtype)
  y = one_hot(batch['label'], env.num_classes, env.smoothing)
  m = mixing.draw(key, spec, env.gamma_fn(step), env.prob_fn(step), x.shape[0], x.shape[1:3], env.mesh)
  return m.inputs(x), m.targets(y), m.hook()


def step_keys(seed: int, step) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The keys of training step `step`: (mixing, dropout, shake), split from fold_in(seed, step)."""
  k_mix, k_drop, k_shake = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), step), 3)
  return k_mix, k_drop, k_shake


def train_step(env: Env, spec: mixing.MixSpec, state: TrainState, batch: dict):
  """One SGD step on a global batch; its keys from (seed, step) (`step_keys`)."""
  k_mix, k_drop, k_shake = step_keys(env.seed, state.step)
  x, y, hook = _mixed_batch(env, spec, k_mix, state.step, batch)

  def loss_fn(params):
    logits, updates = env.model.apply({'params': params, 'batch_stats': state.batch_stats}, x, train=True,
                                      hook=hook, mutable=['batch_stats'],
                                      rngs={'dropout': k_drop, 'shake': k_shake})
    return soft_cross_entropy(logits, y).mean(), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  upd, opt_state = env.tx.update(grads, state.opt_state, state.params)
  new = TrainState(step=state.step + 1, params=optax.apply_updates(state.params, upd),
                   batch_stats=updates.get('batch_stats', state.batch_stats), opt_state=opt_state)
  return new, loss


def eval_sums(env: Env, spec: Optional[mixing.MixSpec], state: TrainState, batch: dict, key):
  """Masked sums of loss / top-1 / top-5 over a padded batch (eval-mode model).

  With `spec`, the batch is mixed first (the R̂aug diagnostic under the current phase's mixing, fixed key).
  """
  if spec is None:
    x = normalize(batch['image'], env.mean, env.std, env.dtype)
    y, hook = one_hot(batch['label'], env.num_classes, 0.0), None
  else:
    # Mixing strength of the last trained step: at a phase's final eval, state.step already lies in the next phase.
    x, y, hook = _mixed_batch(env, spec, key, state.step - 1, batch)
  logits = env.model.apply({'params': state.params, 'batch_stats': state.batch_stats}, x, train=False, hook=hook)
  mask = batch['mask']
  loss = soft_cross_entropy(logits, y)
  k = min(5, env.num_classes)
  top5 = jax.lax.top_k(logits, k)[1]
  label = batch['label'][:, None]
  return {'loss': jnp.sum(loss * mask), 'top1': jnp.sum((top5[:, :1] == label).any(-1) * mask),
          'top5': jnp.sum((top5 == label).any(-1) * mask), 'count': jnp.sum(mask)}


def all_finite(state: TrainState) -> jax.Array:
  """Whether every float leaf of the parameters, statistics and optimizer state is finite (jit it)."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(
      (state.params, state.batch_stats, state.opt_state)) if jnp.issubdtype(x.dtype, jnp.inexact)]))
