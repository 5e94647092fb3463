"""Wide ResNet (Zagoruyko & Komodakis 2016), WRN-28-10 by default, for CIFAR-sized inputs.

The wide basic block is the pre-activation block with dropout between its two convs, so it
reuses ``PreActBlock``; layout follows the widely used xternalz/WideResNet-pytorch code.
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from .preact_resnet import Hook, PreActBlock, batch_norm, classifier_head, conv, stage_mix_points


class WideResNet(nn.Module):
  """16-channel stem, three groups of (depth-4)/6 blocks at widths 16k/32k/64k, strides 1/2/2."""

  num_classes: int
  dtype: Any = jnp.float32
  depth: int = 28
  widen_factor: int = 10
  dropout_rate: float = 0.0
  zero_init_residual: bool = False

  MIX_POINTS: ClassVar[tuple[str, ...]] = stage_mix_points(3)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, hook: Hook = None) -> jax.Array:
    if (self.depth - 4) % 6 != 0:
      raise ValueError(f'WideResNet depth must be 6n+4, got {self.depth}')
    blocks_per_group = (self.depth - 4) // 6
    if hook is not None:
      x = hook(x, 0)
    h = conv(16, 3, 1, self.dtype, name='conv1')(x)
    for i in range(3):
      for j in range(blocks_per_group):
        h = PreActBlock(16 * self.widen_factor * 2**i, stride=2 if i > 0 and j == 0 else 1, dtype=self.dtype,
                        zero_init_residual=self.zero_init_residual, dropout_rate=self.dropout_rate,
                        name=f'block{i + 1}_{j}')(h, train)
      if hook is not None:
        h = hook(h, i + 1)
    h = nn.relu(batch_norm(train, self.dtype, name='bn_final')(h))
    return classifier_head(self, h, self.num_classes, self.dtype)
