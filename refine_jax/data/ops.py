"""Host preprocessing ops, registered by name and composed from strings.

    'pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)'

Every op is `fn(image, seed) -> image` on one uint8 HxWx3 image, with `seed` a shape-[2] int64 tensor. Streamed
sources hand over encoded bytes: a spec whose first op takes them (`decode`, `inception_crop`, which decodes only
the crop window of a JPEG) gets them as they are; any other spec gets the image decoded first. All
randomness is stateless, so an example's augmentation is a pure function of (run seed, epoch, position) and a
resumed run sees the very same pixels. Normalisation happens on device, so the host ships uint8 (4x less data).
"""
from __future__ import annotations

import ast
import re
from typing import Callable

import tensorflow as tf

Op = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
# factory(*args, aug_prob=float) -> Op; `aug_prob` scales the ops that the paper's gradual variant weakens.
_REGISTRY: dict[str, Callable[..., Op]] = {}
_SCALED = set()  # ops whose probability follows the aug_prob schedule
_ENCODED = set()  # ops that accept an encoded image string as well as uint8 pixels


def register(name: str, *, scaled: bool = False, encoded: bool = False):
  def deco(factory):
    _REGISTRY[name] = factory
    if scaled:
      _SCALED.add(name)
    if encoded:
      _ENCODED.add(name)
    return factory
  return deco


def _decode(image: tf.Tensor, channels: int = 3) -> tf.Tensor:
  return tf.io.decode_image(image, channels=channels, expand_animations=False)


def op_names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def _parse(spec: str, field: str) -> list[tuple[str, tuple]]:
  from refine_jax.config import ConfigError
  out = []
  for part in [s.strip() for s in spec.split('|') if s.strip()]:
    m = re.fullmatch(r'([A-Za-z_][A-Za-z0-9_]*)(\((.*)\))?', part)
    if not m:
      raise ConfigError(field, f'cannot parse op {part!r}; expected name or name(args), e.g. pad_crop(32,4)')
    name, args = m.group(1), m.group(3)
    if name not in _REGISTRY:
      raise ConfigError(field, f'unknown op {name!r}; allowed: {", ".join(op_names())}')
    try:
      parsed = ast.literal_eval(f'({args},)') if args and args.strip() else ()
    except (ValueError, SyntaxError) as e:
      raise ConfigError(field, f'bad arguments to {name}: {args!r} ({e})') from None
    out.append((name, parsed))
  return out


def build(spec: str, aug_prob: float = 1.0, field: str = 'pp') -> Op:
  """Compiles a spec string into one op; `aug_prob` is this epoch's augmentation probability."""
  from refine_jax.config import ConfigError
  fns = []
  parsed = _parse(spec, field)
  takes_encoded = bool(parsed) and parsed[0][0] in _ENCODED
  for name, args in parsed:
    try:
      fns.append(_REGISTRY[name](*args, aug_prob=aug_prob) if name in _SCALED else _REGISTRY[name](*args))
    except (TypeError, ValueError) as e:
      raise ConfigError(field, f'op {name}{args}: {e}') from None

  def apply(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    if image.dtype == tf.string and not takes_encoded:
      image = _decode(image)
    for i, fn in enumerate(fns):
      image = fn(image, tf.random.experimental.stateless_fold_in(seed, i))
    return image
  return apply


def validate_spec(spec: str, field: str) -> None:
  """Parses and instantiates every op (bad names or arguments raise ConfigError) without running any."""
  build(spec, 1.0, field)


# --------------------------------------------------------------------------- standard ops


def _uniform(seed, lo, hi, dtype=tf.float32):
  return tf.random.stateless_uniform([], seed, lo, hi, dtype=dtype)


@register('decode', encoded=True)
def decode(channels: int = 3) -> Op:
  """Decodes an encoded image string (pass-through for already decoded uint8 images)."""
  def fn(image, seed):
    if image.dtype == tf.string:
      image = _decode(image, channels)
    return image
  return fn


@register('flip_lr')
def flip_lr() -> Op:
  def fn(image, seed):
    # tf.cond, not tf.where: a select over the whole image costs 5x the flip itself inside tf.data.
    return tf.cond(_uniform(seed, 0.0, 1.0) < 0.5, lambda: tf.reverse(image, [1]), lambda: image)
  return fn


@register('pad_crop')
def pad_crop(size: int, pad: int) -> Op:
  """CIFAR-style: zero-pad by `pad` on each side, random `size`x`size` crop."""
  if size <= 0 or pad < 0:
    raise ValueError(f'size must be > 0 and pad >= 0, got {size}, {pad}')

  def fn(image, seed):
    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    y = tf.random.stateless_uniform([], s1, 0, h - size + 1, dtype=tf.int32)
    x = tf.random.stateless_uniform([], s2, 0, w - size + 1, dtype=tf.int32)
    return tf.ensure_shape(image[y:y + size, x:x + size], [size, size, None])
  return fn


@register('resize')
def resize(size: int, method: str = 'bilinear') -> Op:
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')

  def fn(image, seed):
    out = tf.image.resize(image, [size, size], method=method, antialias=method != 'nearest')
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
  return fn


@register('resize_small')
def resize_small(size: int) -> Op:
  """Resizes so the shorter side is `size` (ImageNet eval: resize_small(256)|center_crop(224))."""
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')

  def fn(image, seed):
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    scale = size / tf.minimum(h, w)
    new = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
    out = tf.image.resize(image, new, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
  return fn


@register('center_crop')
def center_crop(size: int) -> Op:
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')

  def fn(image, seed):
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    y, x = (h - size) // 2, (w - size) // 2
    return tf.ensure_shape(image[y:y + size, x:x + size], [size, size, None])
  return fn


@register('inception_crop', encoded=True)
def inception_crop(size: int, min_scale: float = 0.08, max_scale: float = 1.0,
                   min_ratio: float = 3 / 4, max_ratio: float = 4 / 3) -> Op:
  """ImageNet-style random-resized crop: area scale and aspect-ratio distortion, resized to `size`.

  Given an encoded JPEG, it reads the shape from the header and decodes only the crop window (the same box
  as decoding everything and cropping): the decode is most of an ImageNet pipeline's cost."""
  if not 0 < min_scale <= max_scale <= 1:
    raise ValueError(f'need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}')

  def box(shape, seed):
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, tf.zeros([0, 0, 4], tf.float32), seed=seed,
        area_range=(min_scale, max_scale), aspect_ratio_range=(min_ratio, max_ratio),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    return begin, crop_size

  def fn(image, seed):
    if image.dtype == tf.string:
      def jpeg():
        begin, crop_size = box(tf.image.extract_jpeg_shape(image), seed)
        window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
        return tf.image.decode_and_crop_jpeg(image, window, channels=3)

      def other():
        decoded = _decode(image)
        begin, crop_size = box(tf.shape(decoded), seed)
        return tf.slice(decoded, begin, crop_size)
      crop = tf.cond(tf.io.is_jpeg(image), jpeg, other)
    else:
      begin, crop_size = box(tf.shape(image), seed)
      crop = tf.slice(image, begin, crop_size)
    out = tf.image.resize(crop, [size, size], antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
  return fn


def _with_prob(fn: Op, prob: float) -> Op:
  if prob >= 1.0:
    return fn

  def wrapped(image, seed):
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return tf.cond(_uniform(s1, 0.0, 1.0) < prob, lambda: fn(image, s2), lambda: image)
  return wrapped


@register('autoaugment', scaled=True)
def autoaugment(policy: str = 'cifar10', *, aug_prob: float = 1.0) -> Op:
  from refine_jax.augment import autoaugment as aa
  if policy not in aa.POLICIES:
    raise ValueError(f'unknown policy {policy!r}; allowed: {", ".join(sorted(aa.POLICIES))}')
  return lambda image, seed: aa.autoaugment(image, seed, policy=policy, prob=aug_prob)


@register('randaugment', scaled=True)
def randaugment(num_ops: int = 2, magnitude: float = 9.0, *, aug_prob: float = 1.0) -> Op:
  from refine_jax.augment import autoaugment as aa
  if not 0 <= magnitude <= 10:
    raise ValueError(f'magnitude must be in [0, 10], got {magnitude}')
  return _with_prob(lambda image, seed: aa.randaugment(image, seed, num_ops, magnitude), aug_prob)


@register('cutout', scaled=True)
def cutout(size: int, *, aug_prob: float = 1.0) -> Op:
  from refine_jax.augment import autoaugment as aa
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')
  return _with_prob(lambda image, seed: aa.cutout(image, seed, size), aug_prob)
