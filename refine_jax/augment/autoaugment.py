"""AutoAugment, RandAugment and Cutout in pure TensorFlow with PIL semantics.

Every op reproduces what the PIL-based AutoAugment research code computes, so
policies learned with PIL transfer unchanged, but runs as TF graph ops inside
`tf.data` (no `py_function`, no per-image Python). The ops work on batches:
the pipeline batches first and applies a policy with one call per op on the
images that drew it (`*_batch`); the single-image functions are the same code
on a batch of one. All randomness is one stateless, counter-based draw of uniforms
per image, so an (image, seed) pair always yields the same output, alone or in any
batch, eagerly or inside `Dataset.map`; the trainer relies on this for
bit-exact resume. See docs/autoaugment.md for the magnitude tables.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Union

import numpy as np
import tensorflow as tf

OP_NAMES: tuple[str, ...] = (
    'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate', 'AutoContrast',
    'Invert', 'Equalize', 'Solarize', 'Posterize', 'Contrast', 'Color',
    'Brightness', 'Sharpness', 'Cutout', 'SolarizeAdd', 'Identity')

# The RandAugment paper's (Cubuk et al. 2019) 14 transformations.
RANDAUGMENT_OPS: tuple[str, ...] = (
    'Identity', 'AutoContrast', 'Equalize', 'Rotate', 'Solarize', 'Color',
    'Posterize', 'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY',
    'TranslateX', 'TranslateY')

MAPPINGS: tuple[str, ...] = ('cifar', 'imagenet')

# AutoAugment paper, Appendix, "Policy found on reduced CIFAR-10" (25 sub-policies).
_CIFAR10 = [
    (('Invert', 0.1, 7), ('Contrast', 0.2, 6)),
    (('Rotate', 0.7, 2), ('TranslateX', 0.3, 9)),
    (('Sharpness', 0.8, 1), ('Sharpness', 0.9, 3)),
    (('ShearY', 0.5, 8), ('TranslateY', 0.7, 9)),
    (('AutoContrast', 0.5, 8), ('Equalize', 0.9, 2)),
    (('ShearY', 0.2, 7), ('Posterize', 0.3, 7)),
    (('Color', 0.4, 3), ('Brightness', 0.6, 7)),
    (('Sharpness', 0.3, 9), ('Brightness', 0.7, 9)),
    (('Equalize', 0.6, 5), ('Equalize', 0.5, 1)),
    (('Contrast', 0.6, 7), ('Sharpness', 0.6, 5)),
    (('Color', 0.7, 7), ('TranslateX', 0.5, 8)),
    (('Equalize', 0.3, 7), ('AutoContrast', 0.4, 8)),
    (('TranslateY', 0.4, 3), ('Sharpness', 0.2, 6)),
    (('Brightness', 0.9, 6), ('Color', 0.2, 8)),
    (('Solarize', 0.5, 2), ('Invert', 0.0, 3)),
    (('Equalize', 0.2, 0), ('AutoContrast', 0.6, 0)),
    (('Equalize', 0.2, 8), ('Equalize', 0.6, 4)),
    (('Color', 0.9, 9), ('Equalize', 0.6, 6)),
    (('AutoContrast', 0.8, 4), ('Solarize', 0.2, 8)),
    (('Brightness', 0.1, 3), ('Color', 0.7, 0)),
    (('Solarize', 0.4, 5), ('AutoContrast', 0.9, 3)),
    (('TranslateY', 0.9, 9), ('TranslateY', 0.7, 9)),
    (('AutoContrast', 0.9, 2), ('Solarize', 0.8, 3)),
    (('Equalize', 0.8, 8), ('Invert', 0.1, 3)),
    (('TranslateY', 0.7, 9), ('AutoContrast', 0.9, 1)),
]

# policy_v0 of tensorflow/tpu models/official/efficientnet/autoaugment.py: a different list from the
# paper's appendix table, searched with the TPU code's magnitude semantics ('imagenet' mapping).
_TPU_POLICY_V0 = [
    (('Equalize', 0.8, 1), ('ShearY', 0.8, 4)),
    (('Color', 0.4, 9), ('Equalize', 0.6, 3)),
    (('Color', 0.4, 1), ('Rotate', 0.6, 8)),
    (('Solarize', 0.8, 3), ('Equalize', 0.4, 7)),
    (('Solarize', 0.4, 2), ('Solarize', 0.6, 2)),
    (('Color', 0.2, 0), ('Equalize', 0.8, 8)),
    (('Equalize', 0.4, 8), ('SolarizeAdd', 0.8, 3)),
    (('ShearX', 0.2, 9), ('Rotate', 0.6, 8)),
    (('Color', 0.6, 1), ('Equalize', 1.0, 2)),
    (('Invert', 0.4, 9), ('Rotate', 0.6, 0)),
    (('Equalize', 1.0, 9), ('ShearY', 0.6, 3)),
    (('Color', 0.4, 7), ('Equalize', 0.6, 0)),
    (('Posterize', 0.4, 6), ('AutoContrast', 0.4, 7)),
    (('Solarize', 0.6, 8), ('Color', 0.6, 9)),
    (('Solarize', 0.2, 4), ('Rotate', 0.8, 9)),
    (('Rotate', 1.0, 7), ('TranslateY', 0.8, 9)),
    (('ShearX', 0.0, 0), ('Solarize', 0.8, 4)),
    (('ShearY', 0.8, 0), ('Color', 0.6, 4)),
    (('Color', 1.0, 0), ('Rotate', 0.6, 2)),
    (('Equalize', 0.8, 4), ('Equalize', 0.0, 8)),
    (('Equalize', 1.0, 4), ('AutoContrast', 0.6, 2)),
    (('ShearY', 0.4, 7), ('SolarizeAdd', 0.6, 7)),
    (('Posterize', 0.8, 2), ('Solarize', 0.6, 10)),
    (('Solarize', 0.6, 8), ('Equalize', 0.6, 1)),
    (('Color', 0.8, 6), ('Rotate', 0.4, 5)),
]

# AutoAugment paper (Cubuk et al. 2019), Appendix, "Policy found on ImageNet" (25 sub-policies, sub-policy 0
# first; the table repeats four of them). He et al. "directly use the AutoAugment policies reported in [8]".
_IMAGENET = [
  (('Posterize', 0.4, 8), ('Rotate', 0.6, 9)),
  (('Solarize', 0.6, 5), ('AutoContrast', 0.6, 5)),
  (('Equalize', 0.8, 8), ('Equalize', 0.6, 3)),
  (('Posterize', 0.6, 7), ('Posterize', 0.6, 6)),
  (('Equalize', 0.4, 7), ('Solarize', 0.2, 4)),
  (('Equalize', 0.4, 4), ('Rotate', 0.8, 8)),
  (('Solarize', 0.6, 3), ('Equalize', 0.6, 7)),
  (('Posterize', 0.8, 5), ('Equalize', 1.0, 2)),
  (('Rotate', 0.2, 3), ('Solarize', 0.6, 8)),
  (('Equalize', 0.6, 8), ('Posterize', 0.4, 6)),
  (('Rotate', 0.8, 8), ('Color', 0.4, 0)),
  (('Rotate', 0.4, 9), ('Equalize', 0.6, 2)),
  (('Equalize', 0.0, 7), ('Equalize', 0.8, 8)),
  (('Invert', 0.6, 4), ('Equalize', 1.0, 8)),
  (('Color', 0.6, 4), ('Contrast', 1.0, 8)),
  (('Rotate', 0.8, 8), ('Color', 1.0, 2)),
  (('Color', 0.8, 8), ('Solarize', 0.8, 7)),
  (('Sharpness', 0.4, 7), ('Invert', 0.6, 8)),
  (('ShearX', 0.6, 5), ('Equalize', 1.0, 9)),
  (('Color', 0.4, 0), ('Equalize', 0.6, 3)),
  (('Equalize', 0.4, 7), ('Solarize', 0.2, 4)),
  (('Solarize', 0.6, 5), ('AutoContrast', 0.6, 5)),
  (('Invert', 0.6, 4), ('Equalize', 1.0, 8)),
  (('Color', 0.6, 4), ('Contrast', 1.0, 8)),
  (('Equalize', 0.8, 8), ('Equalize', 0.6, 3)),
]

# AutoAugment paper, Appendix, "Policy found on reduced SVHN" (25 sub-policies).
_SVHN = [
    (('ShearX', 0.9, 4), ('Invert', 0.2, 3)),
    (('ShearY', 0.9, 8), ('Invert', 0.7, 5)),
    (('Equalize', 0.6, 5), ('Solarize', 0.6, 6)),
    (('Invert', 0.9, 3), ('Equalize', 0.6, 3)),
    (('Equalize', 0.6, 1), ('Rotate', 0.9, 3)),
    (('ShearX', 0.9, 4), ('AutoContrast', 0.8, 3)),
    (('ShearY', 0.9, 8), ('Invert', 0.4, 5)),
    (('ShearY', 0.9, 5), ('Solarize', 0.2, 6)),
    (('Invert', 0.9, 6), ('AutoContrast', 0.8, 1)),
    (('Equalize', 0.6, 3), ('Rotate', 0.9, 3)),
    (('ShearX', 0.9, 4), ('Solarize', 0.3, 3)),
    (('ShearY', 0.8, 8), ('Invert', 0.7, 4)),
    (('Equalize', 0.9, 5), ('TranslateY', 0.6, 6)),
    (('Invert', 0.9, 4), ('Equalize', 0.6, 7)),
    (('Contrast', 0.3, 3), ('Rotate', 0.8, 4)),
    (('Invert', 0.8, 5), ('TranslateY', 0.0, 2)),
    (('ShearY', 0.7, 6), ('Solarize', 0.4, 8)),
    (('Invert', 0.6, 4), ('Rotate', 0.8, 4)),
    (('ShearY', 0.3, 7), ('TranslateX', 0.9, 3)),
    (('ShearX', 0.1, 6), ('Invert', 0.6, 5)),
    (('Solarize', 0.7, 2), ('TranslateY', 0.6, 7)),
    (('ShearY', 0.8, 4), ('Invert', 0.8, 8)),
    (('ShearX', 0.7, 9), ('TranslateY', 0.8, 3)),
    (('ShearY', 0.8, 5), ('AutoContrast', 0.7, 3)),
    (('ShearX', 0.7, 2), ('Invert', 0.1, 5)),
]

POLICIES: dict[str, list] = {'cifar10': _CIFAR10, 'imagenet': _IMAGENET, 'svhn': _SVHN,
                             'tpu_policy_v0': _TPU_POLICY_V0}
# The appendix policies (CIFAR-10, ImageNet, SVHN) are read on the research code's magnitude scale, where a
# larger magnitude is always a stronger op (for ImageNet our choice: see docs/autoaugment.md; its table has no
# size-dependent op). policy_v0 was searched with the TPU code's scale.
_POLICY_MAPPING = {'cifar10': 'cifar', 'imagenet': 'cifar', 'svhn': 'cifar', 'tpu_policy_v0': 'imagenet'}

_FILL = 128  # Out-of-image fill of the geometric ops and the Cutout op (TPU code).
_MAX_MAGNITUDE = 10.0

Number = Union[int, float]
Scalar = Union[Number, tf.Tensor]  # Python when known at trace time, else a tensor.
Rand = Optional[tf.Tensor]  # float32 [B, 2] uniforms in [0, 1) for one op, or None.
Prob = Union[float, tf.Tensor]


# ----------------------------------------------------------------------------
# Validation: raised at trace time, so a bad config fails before any data flows.
# ----------------------------------------------------------------------------

def _check_choice(field: str, value: object, allowed: tuple[str, ...]) -> None:
  if value not in allowed:
    raise ValueError(f'unknown {field} {value!r}; allowed {field} values: {", ".join(allowed)}')


def _check_range(field: str, value: object, lo: float, hi: float) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
    raise ValueError(f'{field} must be a number in [{lo:g}, {hi:g}], got {value!r}')
  return float(value)


def _check_int(field: str, value: object, lo: int, hi: Optional[int] = None) -> int:
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo
          or (hi is not None and value > hi)):
    raise ValueError(f'{field} must be an int in [{lo}, {"inf" if hi is None else hi}], '
                     f'got {value!r}')
  return int(value)


def _check_image(image: tf.Tensor) -> tf.Tensor:
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8:
    raise ValueError(f'image must be uint8 HxWx3, got dtype {image.dtype.name}')
  return image


# ----------------------------------------------------------------------------
# Helpers. Every kernel works on a batch [B, H, W, 3] whose per-image arguments
# are [B] tensors (or one Python number for all): one call covers every image
# that takes the op, which is where the speed comes from on small images.
# ----------------------------------------------------------------------------

def _f64(x: Scalar) -> tf.Tensor:
  return tf.cast(x, tf.float64)


def _floor(x: Scalar) -> Scalar:
  """Python's int() of a non-negative value; stays Python when x is Python."""
  return math.floor(x) if isinstance(x, (int, float)) else tf.floor(x)


def _col(v: Scalar, rank: int) -> Scalar:
  """A per-image [B] value shaped [B, 1, ...] (rank dims) to broadcast over images; numbers pass through."""
  if isinstance(v, (int, float)):
    return v
  v = tf.convert_to_tensor(v)
  return tf.reshape(v, [-1] + [1] * (rank - 1)) if v.shape.rank == 1 else v


def _image_hw(images: tf.Tensor) -> tuple[Scalar, Scalar]:
  """(H, W) as Python floats when static, so op arguments fold at trace time."""
  h, w = images.shape[1], images.shape[2]
  if h is not None and w is not None:
    return float(h), float(w)
  shape = tf.shape(images)
  return _f64(shape[1]), _f64(shape[2])


_GOLDEN = 0x9E3779B97F4A7C15


def _u64(x: int) -> tf.Tensor:
  return tf.constant(np.uint64(x))


def _mix64(z: tf.Tensor) -> tf.Tensor:
  """splitmix64's finaliser (Steele et al. 2014): a bijection of uint64 that scrambles every bit."""
  z = (z ^ tf.bitwise.right_shift(z, _u64(30))) * _u64(0xBF58476D1CE4E5B9)
  z = (z ^ tf.bitwise.right_shift(z, _u64(27))) * _u64(0x94D049BB133111EB)
  return z ^ tf.bitwise.right_shift(z, _u64(31))


def batch_uniforms(seeds: tf.Tensor, n: int) -> tf.Tensor:
  """n uniforms in [0, 1) for each row of int64 `seeds` [B, 2]: float32 [B, n].

  A counter-based hash (splitmix64 of the seed pair, then its stream at 1..n), vectorised over the batch:
  each image's draws depend on its own seed only, and a batch costs a few whole-array ops instead of a
  random-op call per image (the per-image call was a large share of the pipeline on 32-px images).
  """
  s = tf.bitcast(tf.cast(seeds, tf.int64), tf.uint64)
  key = _mix64(_mix64(s[:, 0] + _u64(_GOLDEN)) ^ s[:, 1])
  # A numpy array: in graph mode a Python list of large ints goes through float64 and loses bits.
  steps = tf.constant(np.array([j * _GOLDEN % (1 << 64) for j in range(1, n + 1)], np.uint64))
  z = _mix64(key[:, tf.newaxis] + steps)
  return tf.cast(tf.bitwise.right_shift(z, _u64(40)), tf.float32) * (2.0 ** -24)


def uniforms(seed: tf.Tensor, n: int) -> tf.Tensor:
  """batch_uniforms for one shape-[2] seed."""
  return batch_uniforms(tf.reshape(seed, [1, 2]), n)[0]


def uniform_index(u: tf.Tensor, n: Union[int, tf.Tensor]) -> tf.Tensor:
  """Uniform int32 in [0, n) from uniform floats in [0, 1) (n a Python int or an int32 tensor)."""
  return tf.minimum(tf.cast(u * tf.cast(n, tf.float32), tf.int32), n - 1)


def _random_sign(rand: Rand) -> Scalar:
  """Per image -1 or +1 with equal probability; +1 (the PIL argument's own sign) when rand is None."""
  if rand is None:
    return 1.0
  return tf.where(rand[:, 0] < 0.5, tf.constant(-1.0, tf.float64), 1.0)


def _lut_index(images: tf.Tensor) -> tf.Tensor:
  """Each pixel's row in a flattened [B, 3, 256] lookup table."""
  b = tf.range(tf.shape(images)[0])[:, tf.newaxis, tf.newaxis, tf.newaxis]
  return tf.cast(images, tf.int32) + tf.constant([0, 256, 512]) + 768 * b


def _apply_lut(images: tf.Tensor, lut: tf.Tensor) -> tf.Tensor:
  """Maps channel c of image b through lut[b, c] (int32 [B, 3, 256]), as PIL's Image.point."""
  return tf.cast(tf.gather(tf.reshape(lut, [-1]), _lut_index(images)), tf.uint8)


def _grey(images: tf.Tensor) -> tf.Tensor:
  """PIL's RGB->L: (19595 R + 38470 G + 7471 B + 2**15) >> 16, as int32 [B, H, W]."""
  # Channel by channel: a sum over the last axis of 3 (reduce_sum) costs 2.7x as much at 224 px.
  x = tf.cast(images, tf.int32)
  return tf.bitwise.right_shift(x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 32768, 16)


def _blend(degenerate: tf.Tensor, images: tf.Tensor, factor: Scalar) -> tf.Tensor:
  """PIL Image.blend(degenerate, image, factor): float32 maths, clip, truncate."""
  degenerate = tf.cast(degenerate, tf.float32)
  factor = _col(tf.cast(factor, tf.float32), 4)
  out = degenerate + factor * (tf.cast(images, tf.float32) - degenerate)
  return tf.cast(tf.clip_by_value(tf.floor(out), 0.0, 255.0), tf.uint8)


# ----------------------------------------------------------------------------
# Geometric ops.
# ----------------------------------------------------------------------------

def _sample(images: tf.Tensor, yin: tf.Tensor, xin: tf.Tensor) -> tf.Tensor:
  """Nearest-neighbour lookup of integer source coordinates [B, H, W]; outside the image -> 128."""
  shape = tf.shape(images, out_type=tf.int64)
  b, h, w = shape[0], shape[1], shape[2]
  yin, xin = tf.broadcast_to(yin, [b, h, w]), tf.broadcast_to(xin, [b, h, w])
  valid = (yin >= 0) & (yin < h) & (xin >= 0) & (xin < w)
  flat = tf.range(b)[:, tf.newaxis, tf.newaxis] * (h * w) + yin * w + xin
  # Outside pixels read a fill pixel appended to the table: a select over the pixels broadcast along the
  # channels would cost as much as the rest of the op at 224 px.
  table = tf.concat([tf.reshape(images, [-1, 3]), tf.fill([1, 3], tf.constant(_FILL, tf.uint8))], 0)
  out = tf.gather(table, tf.where(valid, flat, b * h * w))
  out.set_shape(images.shape)
  return out


def _grid(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Output pixel indices y [1, H, 1] and x [1, 1, W], int64."""
  shape = tf.shape(images, out_type=tf.int64)
  return tf.range(shape[1])[tf.newaxis, :, tf.newaxis], tf.range(shape[2])[tf.newaxis, tf.newaxis, :]


def _fix(v: tf.Tensor) -> tf.Tensor:
  """PIL's 16.16 fixed point: floor(v * 65536 + 0.5)."""
  return tf.cast(tf.floor(v * 65536.0 + 0.5), tf.int64)


def _affine(images: tf.Tensor, coeffs: tuple) -> tf.Tensor:
  """PIL Image.transform(AFFINE, coeffs, NEAREST, fillcolor=128) for a sheared/rotated matrix.

  Output pixel (x, y) reads input (a x + b y + c, d x + e y + f) at pixel
  centres, evaluated like Pillow's affine_fixed (Geometry.c): coefficients
  rounded to 16.16 fixed point, floor. Bit-exact whenever Pillow itself takes
  that path (every |coordinate| < 32768, i.e. any realistic image).
  """
  a, b, c, d, e, f = (_col(_f64(v), 3) for v in coeffs)
  y, x = _grid(images)
  xin = _fix(c + b * 0.5 + a * 0.5) + y * _fix(b) + x * _fix(a)
  yin = _fix(f + e * 0.5 + d * 0.5) + y * _fix(e) + x * _fix(d)
  return _sample(images, tf.bitwise.right_shift(yin, 16), tf.bitwise.right_shift(xin, 16))


def _translate(images: tf.Tensor, dx: Scalar, dy: Scalar) -> tf.Tensor:
  """PIL transform(AFFINE, (1, 0, dx, 0, 1, dy)): Pillow's float ScaleAffine path,
  input = floor(output + 0.5 + d)."""
  y, x = _grid(images)
  xin = tf.cast(tf.floor(_f64(x) + _col(_f64(dx) + 0.5, 3)), tf.int64)
  yin = tf.cast(tf.floor(_f64(y) + _col(_f64(dy) + 0.5, 3)), tf.int64)
  return _sample(images, yin, xin)


def _rotate(images: tf.Tensor, degrees: Scalar) -> tf.Tensor:
  """PIL Image.rotate(degrees) about the image centre, counter-clockwise for degrees > 0."""
  theta = -(tf.math.floormod(_f64(degrees), 360.0) * (math.pi / 180.0))
  cos, sin = tf.cos(theta), tf.sin(theta)
  h, w = _image_hw(images)
  cx, cy = _f64(w) / 2.0, _f64(h) / 2.0
  return _affine(images, (cos, sin, (cos * -cx + sin * -cy) + cx,
                          -sin, cos, (-sin * -cx + cos * -cy) + cy))


def _cutout(images: tf.Tensor, rand: Rand, size: Scalar, fill: int,
            keep: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Fills rows/cols [centre - size//2, centre + size//2) clipped to the image
  (only in images where `keep`, when given).

  The centre is uniform over the pixels (the image centre when rand is None).
  """
  shape = tf.shape(images)
  h, w = shape[1], shape[2]
  if rand is None:
    cy, cx = h // 2, w // 2
  else:
    cy, cx = _col(uniform_index(rand[:, 0], h), 3), _col(uniform_index(rand[:, 1], w), 3)
  half = _col(tf.cast(size, tf.int32) // 2, 3)
  rows = tf.range(h)[tf.newaxis, :, tf.newaxis]
  cols = tf.range(w)[tf.newaxis, tf.newaxis, :]
  inside = ((rows >= cy - half) & (rows < cy + half) &
            (cols >= cx - half) & (cols < cx + half))
  if keep is not None:
    inside &= keep[:, tf.newaxis, tf.newaxis]
  return tf.where(inside[..., tf.newaxis], tf.constant(fill, tf.uint8), images)


# ----------------------------------------------------------------------------
# Colour ops (PIL ImageOps / ImageEnhance).
# ----------------------------------------------------------------------------

def _autocontrast(images: tf.Tensor) -> tf.Tensor:
  """ImageOps.autocontrast(cutoff=0): per channel, lut = int(i*scale - lo*scale) in float64."""
  lo = _f64(tf.reduce_min(images, axis=[1, 2]))[..., tf.newaxis]
  hi = _f64(tf.reduce_max(images, axis=[1, 2]))[..., tf.newaxis]
  scale = 255.0 / tf.maximum(hi - lo, 1.0)
  ramp = _f64(tf.range(256))[tf.newaxis, tf.newaxis]
  lut = tf.clip_by_value(tf.floor(ramp * scale + (-lo * scale)), 0.0, 255.0)
  return _apply_lut(images, tf.cast(tf.where(hi > lo, lut, ramp), tf.int32))


def _equalize(images: tf.Tensor) -> tf.Tensor:
  """ImageOps.equalize: per channel, step = (n - hist[last]) // 255,
  lut[i] = (step//2 + hist[:i].sum()) // step clipped to 255, identity if step == 0."""
  idx = _lut_index(images)
  flat = tf.reshape(idx, [-1])
  hist = tf.math.unsorted_segment_sum(tf.ones_like(flat), flat, 768 * tf.shape(images)[0])
  hist = tf.reshape(hist, [-1, 3, 256])
  last = tf.gather(hist, tf.cast(tf.reduce_max(images, axis=[1, 2]), tf.int32), batch_dims=2)
  step = ((tf.reduce_sum(hist, axis=2) - last) // 255)[..., tf.newaxis]
  cum = tf.cumsum(hist, axis=2, exclusive=True)
  lut = tf.minimum((step // 2 + cum) // tf.maximum(step, 1), 255)
  lut = tf.where(step > 0, lut, tf.range(256)[tf.newaxis, tf.newaxis])
  return tf.cast(tf.gather(tf.reshape(lut, [-1]), idx), tf.uint8)


def _solarize(images: tf.Tensor, threshold: Scalar) -> tf.Tensor:
  """Inverts the pixels at or above `threshold`: 255 - x is x XOR 255 (a uint8 select costs 5x as much)."""
  threshold = _col(tf.cast(threshold, tf.int32), 4)
  return tf.bitwise.bitwise_xor(images, tf.cast(tf.cast(images, tf.int32) >= threshold, tf.uint8) * 255)


def _solarize_add(images: tf.Tensor, addition: Scalar) -> tf.Tensor:
  """TPU code's SolarizeAdd: pixels below 128 get +addition, clipped to 255."""
  x = tf.cast(images, tf.int32)
  added = tf.minimum(x + _col(tf.cast(addition, tf.int32), 4), 255)
  return tf.cast(tf.where(x < 128, added, x), tf.uint8)


def _posterize(images: tf.Tensor, bits: Scalar) -> tf.Tensor:
  """Keeps the top `bits` bits; bits == 0 gives black (old PIL; Pillow >= 9 raises)."""
  shift = _col(8 - tf.cast(bits, tf.int32), 4)
  mask = tf.bitwise.left_shift(tf.bitwise.right_shift(tf.constant(255), shift), shift)
  return tf.cast(tf.bitwise.bitwise_and(tf.cast(images, tf.int32), mask), tf.uint8)


def _contrast(images: tf.Tensor, factor: Scalar) -> tf.Tensor:
  """Blend toward int(mean(L) + 0.5), each image's mean grey level (ImageEnhance.Contrast)."""
  grey = _grey(images)
  h, w = _image_hw(images)
  mean = _f64(tf.reduce_sum(grey, axis=[1, 2])) / (_f64(h) * _f64(w))
  return _blend(_col(tf.floor(mean + 0.5), 4), images, factor)


def _color(images: tf.Tensor, factor: Scalar) -> tf.Tensor:
  return _blend(_grey(images)[..., tf.newaxis], images, factor)


def _brightness(images: tf.Tensor, factor: Scalar) -> tf.Tensor:
  return _blend(tf.constant(0.0), images, factor)


def _sharpness(images: tf.Tensor, factor: Scalar) -> tf.Tensor:
  """Blend with PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]]/13, rounded); border kept.

  Separable slice sums: exact integers in float32, and ~2x cheaper than a
  depthwise conv on 32x32 images.
  """
  x = tf.cast(images, tf.float32)
  rows = x[:, :, :-2] + x[:, :, 1:-1] + x[:, :, 2:]
  box = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
  centre = x[:, 1:-1, 1:-1]
  delta = tf.floor((box + 4.0 * centre) / 13.0 + 0.5) - centre
  return _blend(x + tf.pad(delta, [[0, 0], [1, 1], [1, 1], [0, 0]]), images, factor)


# ----------------------------------------------------------------------------
# Op table: kernel(images, arg, rand) and magnitude -> arg for each mapping.
# ----------------------------------------------------------------------------

_Kernel = Callable[[tf.Tensor, Scalar, Rand], tf.Tensor]
_KERNELS: dict[str, _Kernel] = {
    'ShearX': lambda im, v, r: _affine(im, (1, v * _random_sign(r), 0, 0, 1, 0)),
    'ShearY': lambda im, v, r: _affine(im, (1, 0, 0, v * _random_sign(r), 1, 0)),
    'TranslateX': lambda im, v, r: _translate(im, v * _random_sign(r), 0.0),
    'TranslateY': lambda im, v, r: _translate(im, 0.0, v * _random_sign(r)),
    'Rotate': lambda im, v, r: _rotate(im, v * _random_sign(r)),
    'AutoContrast': lambda im, v, r: _autocontrast(im),
    'Invert': lambda im, v, r: 255 - im,
    'Equalize': lambda im, v, r: _equalize(im),
    'Solarize': lambda im, v, r: _solarize(im, v),
    'Posterize': lambda im, v, r: _posterize(im, v),
    'Contrast': lambda im, v, r: _contrast(im, v),
    'Color': lambda im, v, r: _color(im, v),
    'Brightness': lambda im, v, r: _brightness(im, v),
    'Sharpness': lambda im, v, r: _sharpness(im, v),
    'Cutout': lambda im, v, r: _cutout(im, r, v, _FILL),
    'SolarizeAdd': lambda im, v, r: _solarize_add(im, v),
    'Identity': lambda im, v, r: im,
}

# arg(m, h, w) from magnitude m and image size, Python numbers or float64 tensors
# alike. Sizes rescale the research code's 32 px (cifar) and the TPU code's
# 331 px (imagenet) constants; see docs/autoaugment.md.
_ArgFn = Callable[[Scalar, Scalar, Scalar], Scalar]
_ENHANCE = ('Contrast', 'Color', 'Brightness', 'Sharpness')
_CIFAR_ARGS: dict[str, _ArgFn] = {
    'ShearX': lambda m, h, w: m * 0.3 / 10.0,
    'ShearY': lambda m, h, w: m * 0.3 / 10.0,
    'TranslateX': lambda m, h, w: _floor(m * w / 32.0),
    'TranslateY': lambda m, h, w: _floor(m * h / 32.0),
    'Rotate': lambda m, h, w: _floor(m * 30.0 / 10.0),
    'Solarize': lambda m, h, w: 256 - _floor(m * 256.0 / 10.0),
    'Posterize': lambda m, h, w: 4 - _floor(m * 4.0 / 10.0),
    'Cutout': lambda m, h, w: _floor(m * 2.0 * w / 32.0),
    'SolarizeAdd': lambda m, h, w: _floor(m / 10.0 * 110.0),
    **{k: (lambda m, h, w: m * 1.8 / 10.0 + 0.1) for k in _ENHANCE},
}
_IMAGENET_ARGS: dict[str, _ArgFn] = {
    'ShearX': lambda m, h, w: m / 10.0 * 0.3,
    'ShearY': lambda m, h, w: m / 10.0 * 0.3,
    'TranslateX': lambda m, h, w: m / 10.0 * 250.0 * w / 331.0,
    'TranslateY': lambda m, h, w: m / 10.0 * 250.0 * h / 331.0,
    'Rotate': lambda m, h, w: m / 10.0 * 30.0,
    'Solarize': lambda m, h, w: _floor(m / 10.0 * 256.0),
    'Posterize': lambda m, h, w: _floor(m / 10.0 * 4.0),
    'Cutout': lambda m, h, w: 2 * _floor(m / 10.0 * 100.0 * w / 331.0),
    'SolarizeAdd': lambda m, h, w: _floor(m / 10.0 * 110.0),
    **{k: (lambda m, h, w: m / 10.0 * 1.8 + 0.1) for k in _ENHANCE},
}
_ARGS = {'cifar': _CIFAR_ARGS, 'imagenet': _IMAGENET_ARGS}


def op_argument(name: str, magnitude: float, mapping: str = 'cifar',
                image_size: tuple[int, int] = (32, 32)) -> Optional[Number]:
  """The PIL argument `name` gets at `magnitude` (None for argument-free ops); for docs/tests."""
  _check_choice('op name', name, OP_NAMES)
  _check_choice('mapping', mapping, MAPPINGS)
  fn = _ARGS[mapping].get(name)
  return None if fn is None else fn(float(magnitude), float(image_size[0]), float(image_size[1]))


def _run_op(name: str, images: tf.Tensor, magnitude: Scalar, rand: Rand,
            mapping: str) -> tf.Tensor:
  """The single code path of every public entry point: one op on a batch, per-image magnitudes allowed."""
  fn = _ARGS[mapping].get(name)
  arg = None if fn is None else fn(magnitude, *_image_hw(images))
  return _KERNELS[name](images, arg, rand)


def partitioned(which: tf.Tensor, count: int, fn: Callable[..., tf.Tensor], images: tf.Tensor,
                *per_image: tf.Tensor) -> tf.Tensor:
  """Splits the batch by `which` (int32 [B] in [0, count)), runs fn(j, images_j, *per_image_j) once per
  group, and stitches the results back in batch order.

  A per-image switch would run a small graph per image; on small images its fixed cost is most of the work.
  """
  positions = tf.dynamic_partition(tf.range(tf.shape(images)[0]), which, count)
  parts = [tf.dynamic_partition(t, which, count) for t in (images, *per_image)]
  out = tf.dynamic_stitch(positions, [fn(j, *(p[j] for p in parts)) for j in range(count)])
  out.set_shape(images.shape)
  return out


def _dispatch(images: tf.Tensor, op: tf.Tensor, names: tuple[str, ...], magnitude: Scalar,
              rand: tf.Tensor, mapping: str) -> tf.Tensor:
  """Image b gets op names[op[b]] (op[b] == len(names): unchanged); each op runs once, on its images only."""
  n = len(names)

  def run(j, part, rand_j, *magnitude_j):
    if j == n:
      return part
    return _run_op(names[j], part, magnitude_j[0] if magnitude_j else magnitude, rand_j, mapping)
  per_image = (rand, magnitude) if tf.is_tensor(magnitude) else (rand,)
  return partitioned(op, n + 1, run, images, *per_image)


# ----------------------------------------------------------------------------
# Public API: batches (the input pipeline) and single images (the same code, B = 1).
# ----------------------------------------------------------------------------

def _check_batch(images: tf.Tensor) -> tf.Tensor:
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8 or images.shape.rank != 4:
    raise ValueError(f'images must be uint8 BxHxWx3, got {images.dtype.name} of rank {images.shape.rank}')
  return images


def _one(fn: Callable[[tf.Tensor], tf.Tensor], image: tf.Tensor) -> tf.Tensor:
  image = _check_image(image)
  out = fn(image[tf.newaxis])[0]
  out.set_shape(image.shape)
  return out


def apply_op(image: tf.Tensor, name: str, magnitude: float, seed: Optional[tf.Tensor] = None,
             mapping: str = 'cifar') -> tf.Tensor:
  """Applies one op at `magnitude` in [0, 10]; uint8 HxWx3 in and out.

  Signed ops (shear/translate/rotate) take a stateless random sign from `seed`
  (shape-[2] int tensor); seed=None means the positive PIL argument. Cutout
  with seed=None centres the square on the image centre.
  """
  _check_choice('op name', name, OP_NAMES)
  magnitude = _check_range('magnitude', magnitude, 0.0, _MAX_MAGNITUDE)
  _check_choice('mapping', mapping, MAPPINGS)
  rand = None if seed is None else uniforms(seed, 2)[tf.newaxis]
  return _one(lambda images: _run_op(name, images, magnitude, rand, mapping), image)


AUTOAUGMENT_DRAWS = 8  # [gate, sub-policy, op1 prob, op2 prob, op1 rand (2), op2 rand (2)] per image


def subpolicy_index(seed: tf.Tensor, policy: str = 'cifar10') -> tf.Tensor:
  """The sub-policy autoaugment() applies for `seed` (when it applies one)."""
  _check_choice('policy', policy, tuple(POLICIES))
  return uniform_index(uniforms(seed, AUTOAUGMENT_DRAWS)[1], len(POLICIES[policy]))


def autoaugment_batch(images: tf.Tensor, u: tf.Tensor, policy: str = 'cifar10',
                      prob: Prob = 1.0) -> tf.Tensor:
  """AutoAugment on a batch; `u` holds each image's AUTOAUGMENT_DRAWS uniforms ([B, 8]).

  Image b gets a sub-policy with probability `prob` (u[b, 0]), drawn uniformly (u[b, 1]); each of its two ops
  runs with its own probability (u[b, 2 + k]). `prob` may be a scalar tensor, so a schedule can change it
  without retracing.
  """
  _check_choice('policy', policy, tuple(POLICIES))
  if not tf.is_tensor(prob):
    _check_range('prob', prob, 0.0, 1.0)
  images = _check_batch(images)
  subpolicies = POLICIES[policy]
  s = uniform_index(u[:, 1], len(subpolicies))
  gate = u[:, 0] < tf.cast(prob, tf.float32)
  for k in range(2):
    stage = [sp[k] for sp in subpolicies]
    names = tuple(sorted({name for name, _, _ in stage} - {'Identity'}))
    op_id = tf.constant([names.index(name) if name in names else len(names) for name, _, _ in stage])
    p = tf.constant([p for _, p, _ in stage], tf.float32)
    m = tf.constant([m for _, _, m in stage], tf.float64)
    op = tf.where(gate & (u[:, 2 + k] < tf.gather(p, s)), tf.gather(op_id, s), len(names))
    images = _dispatch(images, op, names, tf.gather(m, s), u[:, 4 + 2 * k:6 + 2 * k],
                       _POLICY_MAPPING[policy])
  return images


def autoaugment(image: tf.Tensor, seed: tf.Tensor, policy: str = 'cifar10',
                prob: Prob = 1.0) -> tf.Tensor:
  """autoaugment_batch on one image, its uniforms drawn from `seed`."""
  u = uniforms(seed, AUTOAUGMENT_DRAWS)[tf.newaxis]
  return _one(lambda images: autoaugment_batch(images, u, policy, prob), image)


def randaugment_draws(num_ops: int) -> int:
  return 3 * max(num_ops, 1)


def randaugment_batch(images: tf.Tensor, u: tf.Tensor, num_ops: int = 2, magnitude: float = 9.0,
                      keep: Optional[tf.Tensor] = None) -> tf.Tensor:
  """RandAugment: `num_ops` ops drawn uniformly from RANDAUGMENT_OPS, each always applied (to the images
  where `keep`, when given); `u` is [B, randaugment_draws(num_ops)].

  Uses the 'imagenet' (TPU) magnitude mapping, translate/cutout scaled to the image size.
  """
  num_ops = _check_int('num_ops', num_ops, 0)
  magnitude = _check_range('magnitude', magnitude, 0.0, _MAX_MAGNITUDE)
  images = _check_batch(images)
  names = RANDAUGMENT_OPS[1:]
  assert RANDAUGMENT_OPS[0] == 'Identity'
  for k in range(num_ops):
    op = uniform_index(u[:, 3 * k], len(RANDAUGMENT_OPS)) - 1
    op = tf.where(op < 0, len(names), op)
    if keep is not None:
      op = tf.where(keep, op, len(names))
    images = _dispatch(images, op, names, magnitude, u[:, 3 * k + 1:3 * k + 3], 'imagenet')
  return images


def randaugment(image: tf.Tensor, seed: tf.Tensor, num_ops: int = 2,
                magnitude: float = 9.0) -> tf.Tensor:
  """randaugment_batch on one image, its uniforms drawn from `seed`."""
  u = uniforms(seed, randaugment_draws(_check_int('num_ops', num_ops, 0)))[tf.newaxis]
  return _one(lambda images: randaugment_batch(images, u, num_ops, magnitude), image)


def cutout_batch(images: tf.Tensor, rand: tf.Tensor, size: int, fill: int = 128,
                 keep: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Cutout (DeVries & Taylor 2017) per image: centre uniform over the image (rand [B, 2]), square with
  edges centre -/+ size//2, clipped to the image, filled with `fill`; only where `keep`, when given."""
  size = _check_int('size', size, 0)
  fill = _check_int('fill', fill, 0, 255)
  return _cutout(_check_batch(images), rand, size, fill, keep)


def cutout(image: tf.Tensor, seed: tf.Tensor, size: int, fill: int = 128) -> tf.Tensor:
  """cutout_batch on one image, its centre drawn from `seed`."""
  rand = uniforms(seed, 2)[tf.newaxis]
  return _one(lambda images: cutout_batch(images, rand, size, fill), image)
