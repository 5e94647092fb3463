"""torchvision ImageNet ResNet v1.5 (stride in the bottleneck's 3x3 conv): ResNet-50 and -101.

Parameter names mirror torchvision's (layer1.0.conv1 -> layer1_0/conv1, downsample.0/.1 ->
downsample_conv/downsample_bn) so PyTorch checkpoints map over name by name.
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from .preact_resnet import Hook, batch_norm, classifier_head, conv, stage_mix_points


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand x4, each followed by BN; ReLU after the sum."""

  planes: int
  stride: int
  dtype: Any
  zero_init_residual: bool = False

  EXPANSION: ClassVar[int] = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    out_features = self.planes * self.EXPANSION
    out = conv(self.planes, 1, 1, self.dtype, name='conv1')(x)
    out = nn.relu(batch_norm(train, self.dtype, name='bn1')(out))
    out = conv(self.planes, 3, self.stride, self.dtype, name='conv2')(out)
    out = nn.relu(batch_norm(train, self.dtype, name='bn2')(out))
    out = conv(out_features, 1, 1, self.dtype, name='conv3')(out)
    out = batch_norm(train, self.dtype, self.zero_init_residual, name='bn3')(out)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out_features:
      shortcut = conv(out_features, 1, self.stride, self.dtype, name='downsample_conv')(x)
      shortcut = batch_norm(train, self.dtype, name='downsample_bn')(shortcut)
    return nn.relu(out + shortcut)


class ResNet(nn.Module):
  """7x7/2 stem + 3x3/2 max-pool, four bottleneck stages (64..512 planes), pool, linear."""

  num_classes: int
  dtype: Any = jnp.float32
  zero_init_residual: bool = False

  STAGE_SIZES: ClassVar[tuple[int, ...]] = (3, 4, 6, 3)
  MIX_POINTS: ClassVar[tuple[str, ...]] = stage_mix_points(4)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, hook: Hook = None) -> jax.Array:
    if hook is not None:
      x = hook(x, 0)
    h = conv(64, 7, 2, self.dtype, name='conv1')(x)
    h = nn.relu(batch_norm(train, self.dtype, name='bn1')(h))
    h = nn.max_pool(h, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, num_blocks in enumerate(self.STAGE_SIZES):
      for j in range(num_blocks):
        h = Bottleneck(64 * 2**i, stride=2 if i > 0 and j == 0 else 1, dtype=self.dtype,
                       zero_init_residual=self.zero_init_residual, name=f'layer{i + 1}_{j}')(h, train)
      if hook is not None:
        h = hook(h, i + 1)
    return classifier_head(self, h, self.num_classes, self.dtype)


class ResNet50(ResNet):
  """ResNet-50: 3/4/6/3 bottlenecks (25.6M params at 1000 classes)."""


class ResNet101(ResNet):
  """ResNet-101: 3/4/23/3 bottlenecks (44.5M params at 1000 classes)."""

  STAGE_SIZES: ClassVar[tuple[int, ...]] = (3, 4, 23, 3)
