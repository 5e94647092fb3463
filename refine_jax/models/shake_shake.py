"""Shake-Shake regularised ResNet (Gastaldi 2017), 26 2x96d for CIFAR, "Shake-Shake-Image" mode.

Layout follows the reference PyTorch port (hysts/pytorch_shake_shake): 16-channel conv-BN
stem, three stages of (depth-2)/6 two-branch blocks at widths 96/192/384, and the
two-flow (plain + one-pixel-shifted) 1x1-conv shortcut whenever the shape changes.
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from .preact_resnet import Hook, batch_norm, classifier_head, conv, stage_mix_points


def shake(a: jax.Array, b: jax.Array, alpha: jax.Array, beta: jax.Array) -> jax.Array:
  """Return alpha*a + (1-alpha)*b while the backward pass sees beta: d/da = beta, d/db = 1-beta."""
  return beta * a + (1 - beta) * b + jax.lax.stop_gradient((alpha - beta) * a + (beta - alpha) * b)


class ShakeBranch(nn.Module):
  """ReLU-conv-BN-ReLU-conv-BN; the block input is not activated, so each branch starts with ReLU."""

  features: int
  stride: int
  dtype: Any
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = conv(self.features, 3, self.stride, self.dtype, name='conv1')(nn.relu(x))
    h = nn.relu(batch_norm(train, self.dtype, name='bn1')(h))
    h = conv(self.features, 3, 1, self.dtype, name='conv2')(h)
    return batch_norm(train, self.dtype, self.zero_init_residual, name='bn2')(h)


class ShakeShortcut(nn.Module):
  """Two strided 1x1 convs (half the width each), the second sampling one pixel down-right; concat, BN."""

  features: int
  stride: int
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nn.relu(x)
    s = self.stride
    # A 1x1 average pool with stride s is plain subsampling.
    plain = x[:, ::s, ::s, :]
    shifted = jnp.pad(x[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))[:, ::s, ::s, :]
    y = jnp.concatenate([conv(self.features // 2, 1, 1, self.dtype, name='conv1')(plain),
                         conv(self.features // 2, 1, 1, self.dtype, name='conv2')(shifted)], axis=-1)
    return batch_norm(train, self.dtype, name='bn')(y)


class ShakeBlock(nn.Module):
  """Shortcut + shake of two branches with per-example alpha (forward) and beta (backward)."""

  features: int
  stride: int
  dtype: Any
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    a, b = (ShakeBranch(self.features, self.stride, self.dtype, self.zero_init_residual, name=f'branch{k}')(x, train)
            for k in (1, 2))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.features:
      shortcut = ShakeShortcut(self.features, self.stride, self.dtype, name='shortcut')(x, train)
    if train:
      key_alpha, key_beta = jax.random.split(self.make_rng('shake'))
      shape = (x.shape[0], 1, 1, 1)
      alpha = jax.random.uniform(key_alpha, shape).astype(a.dtype)
      beta = jax.random.uniform(key_beta, shape).astype(a.dtype)
      mixed = shake(a, b, alpha, beta)
    else:
      mixed = 0.5 * (a + b)
    return shortcut + mixed


class ShakeShake(nn.Module):
  """Shake-Shake ResNet; defaults give 26 2x96d (26.2M params on CIFAR-10)."""

  num_classes: int
  dtype: Any = jnp.float32
  depth: int = 26
  base_channels: int = 96
  zero_init_residual: bool = False

  MIX_POINTS: ClassVar[tuple[str, ...]] = stage_mix_points(3)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, hook: Hook = None) -> jax.Array:
    if (self.depth - 2) % 6 != 0:
      raise ValueError(f'Shake-Shake depth must be 6n+2, got {self.depth}')
    blocks_per_stage = (self.depth - 2) // 6
    if hook is not None:
      x = hook(x, 0)
    # No ReLU after the stem BN: every consumer (branch or shortcut) starts with one.
    h = batch_norm(train, self.dtype, name='bn1')(conv(16, 3, 1, self.dtype, name='conv1')(x))
    for i in range(3):
      for j in range(blocks_per_stage):
        h = ShakeBlock(self.base_channels * 2**i, stride=2 if i > 0 and j == 0 else 1, dtype=self.dtype,
                       zero_init_residual=self.zero_init_residual, name=f'stage{i + 1}_{j}')(h, train)
      if hook is not None:
        h = hook(h, i + 1)
    return classifier_head(self, nn.relu(h), self.num_classes, self.dtype)
