"""Pre-activation ResNets (He et al. 2016, "Identity Mappings") for 32-64 px images.

PreActResNet-18 comes in two variants (``variant``), which differ only around the stages:

- ``'identity_mappings'`` (default): conv stem, then the final BN-ReLU of the pre-activation design
  (He et al. 2016, "Identity Mappings") before pooling.
- ``'mixup_cifar'``: the network of the mixup authors' public CIFAR-10 code (facebookresearch/mixup-cifar10,
  ``ResNet(PreActBlock, [2, 2, 2, 2])``): conv-BN-ReLU stem and *no* BN-ReLU before the pooling, so the
  last block's un-normalised residual sum is pooled.

Both have 11.17M parameters at 10 classes (a 64-channel stem BN instead of a 512-channel final BN: 11,171,274
vs 11,172,170). ``ResNetTiny`` is the same design shrunk so that CPU demos and tests run at hundreds of
images/s. The layer helpers at the top are shared by the other model files so that every model uses
PyTorch's BatchNorm defaults, initialisers, padding and the same classifier head.
"""

from typing import Any, Callable, ClassVar, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Hook = Optional[Callable[[jax.Array, int], jax.Array]]

# kaiming_normal_(mode='fan_out', nonlinearity='relu'), as in the reference PyTorch code.
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
# PyTorch's nn.Linear default weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
dense_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')


def batch_norm(train: bool, dtype: Any, zero_scale: bool = False, name: Optional[str] = None) -> nn.BatchNorm:
  """BatchNorm with PyTorch defaults (torch momentum 0.1 == flax 0.9, eps 1e-5); stats stay float32."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      param_dtype=jnp.float32,
                      scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones, name=name)


def conv(features: int, kernel: int, stride: int, dtype: Any, name: Optional[str] = None) -> nn.Conv:
  """Bias-free conv with PyTorch's symmetric k//2 padding, so strided outputs align with torch."""
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                 use_bias=False, kernel_init=conv_init, dtype=dtype, param_dtype=jnp.float32, name=name)


def classifier_head(module: nn.Module, h: jax.Array, num_classes: int, dtype: Any) -> jax.Array:
  """Global average pool, sow the penultimate features for analysis, float32 logits."""
  feats = jnp.mean(h.astype(jnp.float32), axis=(1, 2))
  module.sow('intermediates', 'features', feats)
  logits = nn.Dense(num_classes, kernel_init=dense_init, dtype=dtype, param_dtype=jnp.float32, name='fc')(feats)
  return logits.astype(jnp.float32)


def stage_mix_points(num_stages: int) -> tuple[str, ...]:
  """Manifold-Mixup points: the input plus every residual stage output."""
  return ('input',) + tuple(f'stage{i}' for i in range(1, num_stages + 1))


class PreActBlock(nn.Module):
  """BN-ReLU-conv x2 block; the projection shortcut sees the pre-activated input (as in the reference)."""

  features: int
  stride: int
  dtype: Any
  zero_init_residual: bool = False
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    out = nn.relu(batch_norm(train, self.dtype, name='bn1')(x))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.features:
      shortcut = conv(self.features, 1, self.stride, self.dtype, name='shortcut')(out)
    out = conv(self.features, 3, self.stride, self.dtype, name='conv1')(out)
    out = nn.relu(batch_norm(train, self.dtype, self.zero_init_residual, name='bn2')(out))
    if self.dropout_rate > 0.0:
      out = nn.Dropout(self.dropout_rate, deterministic=not train)(out)
    out = conv(self.features, 3, 1, self.dtype, name='conv2')(out)
    return out + shortcut


VARIANTS = ('identity_mappings', 'mixup_cifar')


class PreActResNet(nn.Module):
  """3x3 stem, pre-activation stages (widths ``width * 2**i``), pool, linear; ``variant`` places the one
  stem-or-final BN-ReLU (module docstring)."""

  num_classes: int
  dtype: Any = jnp.float32
  width: int = 64
  zero_init_residual: bool = False
  variant: str = 'identity_mappings'

  STAGE_SIZES: ClassVar[tuple[int, ...]] = (2, 2, 2, 2)
  MIX_POINTS: ClassVar[tuple[str, ...]] = stage_mix_points(4)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, hook: Hook = None) -> jax.Array:
    if hook is not None:
      x = hook(x, 0)
    if self.variant not in VARIANTS:
      raise ValueError(f'variant: unknown value {self.variant!r}; allowed: {", ".join(VARIANTS)}')
    h = conv(self.width, 3, 1, self.dtype, name='conv1')(x)
    if self.variant == 'mixup_cifar':
      h = nn.relu(batch_norm(train, self.dtype, name='bn_stem')(h))
    for i, num_blocks in enumerate(self.STAGE_SIZES):
      for j in range(num_blocks):
        h = PreActBlock(self.width * 2**i, stride=2 if i > 0 and j == 0 else 1, dtype=self.dtype,
                        zero_init_residual=self.zero_init_residual, name=f'layer{i + 1}_{j}')(h, train)
      if hook is not None:
        h = hook(h, i + 1)
    if self.variant == 'identity_mappings':
      h = nn.relu(batch_norm(train, self.dtype, name='bn_final')(h))
    return classifier_head(self, h, self.num_classes, self.dtype)


class PreActResNet18(PreActResNet):
  """PreActResNet-18: stages 64/128/256/512, two blocks each (11.2M params at 100 classes)."""


class ResNetTiny(PreActResNet):
  """CPU-sized pre-act ResNet: stem ``width``, one block per stage at widths w/2w/4w."""

  width: int = 16

  STAGE_SIZES: ClassVar[tuple[int, ...]] = (1, 1, 1)
  MIX_POINTS: ClassVar[tuple[str, ...]] = stage_mix_points(3)
