"""Host preprocessing ops, registered by name and composed from strings.

    'pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)'

An op is one of two kinds. An example op, `fn(image, seed) -> image`, runs on one uint8 HxWx3 image with `seed` a
shape-[2] int64 tensor (decoding, crops to a size, resizes). A `BatchOp` runs on a whole batch [B, H, W, 3]
with each image's randomness handed in as uniforms hashed from that image's own seed, so an image's result does
not depend on the batch it lands in. The input pipeline runs a spec's example ops per example, batches, then
runs its trailing batch ops once per batch: on 32-px images a per-image TF graph costs more than the pixels.
The same spec applied to a single image (`Pipeline.__call__`) runs the batch ops on a batch of one, and gives
the very same pixels.

Streamed sources hand over encoded bytes: a spec whose first op takes them (`decode`, `inception_crop`, which
decodes only the crop window of a JPEG) gets them as they are; any other spec gets the image decoded first
(`tf.io.decode_image`). `decoders(specs)` gives those decodes as whole-image functions (inception_crop's with the
window of the whole image: every byte a crop may read), which the image-folder source runs on every file at
start-up, so that no file passes that check and fails to decode in training. All
randomness is stateless, so an example's augmentation is a pure function of (run seed, epoch, position) and a
resumed run sees the very same pixels. Normalisation happens on device, so the host ships uint8 (4x less data).

Every op runs in TensorFlow, imported when an op is built (`refine_jax.data.tensorflow()`), not with this module:
parsing, validating and building a spec without ops (`''`) needs no TensorFlow.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import re
from typing import Any, Callable, Iterable, Optional, Union

from refine_jax.data import tensorflow
from refine_jax.errors import ConfigError

ExampleOp = Callable[[Any, Any], Any]  # (image tf.Tensor, seed tf.Tensor) -> image tf.Tensor


@dataclasses.dataclass(frozen=True)
class BatchOp:
  """fn(images [B, H, W, C] uint8, u [B, draws] float32 uniforms in [0, 1)) -> images."""
  draws: int
  fn: Callable[[Any, Any], Any]


AnyOp = Union[ExampleOp, BatchOp]
# factory(*args, aug_prob=float) -> op; `aug_prob` scales the ops that the paper's gradual variant weakens.
_REGISTRY: dict[str, Callable[..., AnyOp]] = {}
_SCALED = set()  # ops whose probability follows the aug_prob schedule
# Ops that accept an encoded image string as well as uint8 pixels, each with its decode of a whole file.
_ENCODED: dict[str, Callable[[Any], Any]] = {}


def register(name: str, *, scaled: bool = False, encoded: bool = False, decodes: Optional[Callable] = None):
  """Registers an op factory under `name`; a second op of the same name is refused (it would replace the
  first silently). An `encoded` op, first in a spec, gets the file's bytes; `decodes(bytes) -> image` is how it
  decodes a whole file (default `tf.io.decode_image`, as for every other spec), run by the start-up check."""
  if name in _REGISTRY:
    raise ValueError(f'a host op named {name!r} is already registered ({_REGISTRY[name].__module__}.'
                     f'{_REGISTRY[name].__qualname__})')

  def deco(factory):
    _REGISTRY[name] = factory
    if scaled:
      _SCALED.add(name)
    if encoded:
      _ENCODED[name] = decodes or _decode
    return factory
  return deco


def _autoaugment():
  """refine_jax.augment.autoaugment, imported (with TensorFlow, accelerators hidden) when an op needs it."""
  tensorflow()
  from refine_jax.augment import autoaugment
  return autoaugment


def _decode(image, channels: int = 3):
  return tensorflow().io.decode_image(image, channels=channels, expand_animations=False)


def _decode_window(image, window):
  """inception_crop's decode of an encoded image and crop to `window(shape) -> (begin, size)` ([y, x, 0],
  [h, w, -1]): of a JPEG only the window is decoded (`decode_and_crop_jpeg`), any other format whole
  (`tf.io.decode_image`), then cropped."""
  tf = tensorflow()

  def jpeg():
    begin, size = window(tf.image.extract_jpeg_shape(image))
    return tf.image.decode_and_crop_jpeg(image, tf.stack([begin[0], begin[1], size[0], size[1]]), channels=3)

  def other():
    decoded = _decode(image)
    return _crop(decoded, *window(tf.shape(decoded)))
  return tf.cond(tf.io.is_jpeg(image), jpeg, other)


def _crop(image, begin, size):
  """image[begin : begin + size] over height and width: a slice that keeps the static channel count (tf.slice's
  sizes tensor would hide it), so that the batches' shape is known and trailing batch ops run once per batch."""
  return image[begin[0]:begin[0] + size[0], begin[1]:begin[1] + size[1]]


def _whole_window(shape):
  tf = tensorflow()
  return tf.zeros([3], tf.int32), tf.stack([shape[0], shape[1], -1])


def _decode_whole_window(image):
  """inception_crop's decode with the window of the whole image: every byte its crops may read."""
  return _decode_window(image, _whole_window)


def decoders(specs: Iterable[str], field: str = 'pp') -> tuple[Callable[[Any], Any], ...]:
  """The decodes training runs on the encoded files of a split read under `specs`, each once, as functions of
  the bytes giving the whole image: a spec's first op decides (inception_crop: a JPEG's crop window through
  `decode_and_crop_jpeg`, other formats `tf.io.decode_image`; every other spec, '' included,
  `tf.io.decode_image`)."""
  out = []
  for spec in specs:
    parsed = _parse(spec, field)
    fn = _ENCODED.get(parsed[0][0], _decode) if parsed else _decode
    if fn not in out:
      out.append(fn)
  return tuple(out)


def _resample_rows(x, size):
  """The rows of a 2-D [n, m] tensor resampled to `size` rows: bilinear with antialiasing (a triangle filter
  widened by the downscale factor, as PIL's), float32, the weights ScaleAndTranslate computes for n -> size."""
  tf = tensorflow()
  n, m = tf.shape(x)[0], tf.shape(x)[1]
  out = tf.raw_ops.ScaleAndTranslate(
      images=tf.reshape(x, [1, n, 1, m]), size=tf.stack([size, 1]),
      scale=tf.stack([tf.cast(size, tf.float32) / tf.cast(n, tf.float32), 1.0]), translation=tf.zeros([2]),
      kernel_type='triangle', antialias=True)
  return tf.reshape(out, [size, m])


def _resize(image, height, width):
  """uint8 HxWxC -> height x width, bilinear with antialiasing, rounded: bit for bit the pixels of
  `tf.image.resize(image, [height, width], antialias=True)`, in 40 % of its time.

  tf.image.resize runs ScaleAndTranslate, which resamples the rows with a vectorised loop over whole rows and
  then the columns with a scalar loop per pixel and channel (0.9 ms of a 1.3 ms JPEG crop on ImageNet photos).
  Here both axes take the row loop: the rows as it does, then the transposed intermediate's rows, with the same
  weights and the same order of additions; the axis of size 1 each call adds is resampled with weight 1.0."""
  tf = tensorflow()
  c = image.shape[-1] or tf.shape(image)[2]
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  rows = _resample_rows(tf.reshape(image, [h, w * c]), height)  # [height, w * c]
  cols = _resample_rows(tf.reshape(tf.transpose(tf.reshape(rows, [height, w, c]), [1, 0, 2]), [w, height * c]),
                        width)  # [width, height * c]
  out = tf.cast(tf.clip_by_value(tf.round(cols), 0, 255), tf.uint8)
  return tf.transpose(tf.reshape(out, [width, height, c]), [1, 0, 2])


def op_names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def _parse(spec: str, field: str) -> list[tuple[str, tuple, dict]]:
  """[(name, positional arguments, keyword arguments)] of each op of `spec`, the arguments checked against the
  op's signature (a ConfigError names a bad or missing argument and lists the op's own)."""
  out = []
  for part in [s.strip() for s in spec.split('|') if s.strip()]:
    m = re.fullmatch(r'([A-Za-z_][A-Za-z0-9_]*)(\((.*)\))?', part)
    if not m:
      raise ConfigError(field, f'cannot parse op {part!r}; expected name or name(args), e.g. pad_crop(32,4)')
    name, args = m.group(1), m.group(3) or ''
    if name not in _REGISTRY:
      near = difflib.get_close_matches(name, op_names(), n=3, cutoff=0.6)
      hint = f'did you mean {", ".join(near)}? ' if near else ''
      raise ConfigError(field, f'unknown op {name!r}; {hint}allowed: {", ".join(op_names())}')
    try:
      call = ast.parse(f'_({args})', mode='eval').body
      if any(k.arg is None for k in call.keywords) or any(isinstance(a, ast.Starred) for a in call.args):
        raise ValueError('no * or ** arguments')
      pos = tuple(ast.literal_eval(a) for a in call.args)
      kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (ValueError, SyntaxError, TypeError) as e:
      raise ConfigError(field, f'bad arguments to {name}: {args!r} ({e})') from None
    _bind(name, pos, kw, field)
    out.append((name, pos, kw))
  return out


def _bind(name: str, pos: tuple, kw: dict, field: str) -> None:
  """Checks the arguments against the op's signature (aug_prob is the plan's, not the spec's)."""
  sig = inspect.signature(_REGISTRY[name])
  params = [p for p in sig.parameters.values() if p.name != 'aug_prob']
  try:
    sig.replace(parameters=params).bind(*pos, **kw)
  except TypeError as e:
    own = ', '.join(p.name + ('' if p.default is p.empty else f'={p.default!r}') for p in params) or 'none'
    raise ConfigError(field, f'op {name}: {e}; its arguments: {own}') from None


def describe(name: str, pos: tuple, kw: dict) -> str:
  """'pad_crop(32, 4)' or 'inception_crop(16, min_scale=0.35)': an op as a spec writes it."""
  args = [*map(repr, pos), *(f'{k}={v!r}' for k, v in kw.items())]
  return f'{name}({", ".join(args)})' if args else name


class Pipeline:
  """A compiled spec: example ops up to `tail_start`, then a tail of batch ops run once per batch. Two pipelines
  of the same spec and augmentation probability are equal (`key`), whoever built them."""

  def __init__(self, ops: list[AnyOp], takes_encoded: bool, key: tuple = ()):
    self.ops = ops
    self.takes_encoded = takes_encoded
    self.key = key
    self.tail_start = len(ops)
    while self.tail_start > 0 and isinstance(ops[self.tail_start - 1], BatchOp):
      self.tail_start -= 1
    self._cols, n = [], 0  # each batch op's columns of an example's uniforms
    for op in ops:
      d = op.draws if isinstance(op, BatchOp) else 0
      self._cols.append((n, n + d))
      n += d
    self.draws = n

  def __eq__(self, other) -> bool:
    return isinstance(other, Pipeline) and bool(self.key) and self.key == other.key

  def __hash__(self) -> int:
    return hash(self.key) if self.key else id(self)

  @property
  def has_tail(self) -> bool:
    return self.tail_start < len(self.ops)

  def _uniforms(self, seeds):
    return _autoaugment().batch_uniforms(seeds, self.draws)

  def example(self, image, seed):
    """Runs the ops before the tail on one image (a batch op there runs on a batch of one); tf.Tensors."""
    tf = tensorflow()
    if image.dtype == tf.string and not self.takes_encoded:
      image = _decode(image)
    u = self._uniforms(seed[tf.newaxis]) if any(isinstance(op, BatchOp) for op in self.ops[:self.tail_start]) \
        else None
    for i, op in enumerate(self.ops[:self.tail_start]):
      if isinstance(op, BatchOp):
        lo, hi = self._cols[i]
        image = op.fn(image[tf.newaxis], u[:, lo:hi])[0]
      else:
        image = op(image, tf.random.experimental.stateless_fold_in(seed, i))
    return image

  def batch(self, images, seeds):
    """Runs the tail on a batch of `example` outputs with their seeds ([B, 2]); each image's draws come
    from its own seed (`batch_uniforms`), so its pixels do not depend on the rest of the batch."""
    if not self.has_tail:
      return images
    u = self._uniforms(seeds)
    for i in range(self.tail_start, len(self.ops)):
      lo, hi = self._cols[i]
      images = self.ops[i].fn(images, u[:, lo:hi])
    return images

  def __call__(self, image, seed):
    """The whole spec on one image: the same pixels as the example-then-batch route."""
    image = self.example(image, seed)
    return self.batch(image[None], tensorflow().reshape(seed, [1, 2]))[0] if self.has_tail else image


def build(spec: str, aug_prob: float = 1.0, field: str = 'pp') -> Pipeline:
  """Compiles a spec string; `aug_prob` is this epoch's augmentation probability."""
  fns = []
  parsed = _parse(spec, field)
  takes_encoded = bool(parsed) and parsed[0][0] in _ENCODED
  for name, pos, kw in parsed:
    try:
      fns.append(_REGISTRY[name](*pos, **kw, **({'aug_prob': aug_prob} if name in _SCALED else {})))
    except (TypeError, ValueError) as e:
      raise ConfigError(field, f'op {describe(name, pos, kw)}: {e}') from None
  return Pipeline(fns, takes_encoded, key=(spec, float(aug_prob)))


def parse_spec(spec: str, field: str) -> None:
  """Parses `spec` and binds each op's arguments to its signature (ConfigError naming the field), building none
  of the ops: no TensorFlow."""
  _parse(spec, field)


def validate_spec(spec: str, field: str) -> None:
  """Parses and instantiates every op (bad names or arguments raise ConfigError) without running any."""
  build(spec, 1.0, field)


# --------------------------------------------------------------------------- standard ops


@register('decode', encoded=True)
def decode(channels: int = 3) -> ExampleOp:
  """Decodes an encoded image string (pass-through for already decoded uint8 images)."""
  tf = tensorflow()

  def fn(image, seed):
    if image.dtype == tf.string:
      image = _decode(image, channels)
    return image
  return fn


@register('flip_lr')
def flip_lr() -> BatchOp:
  """Mirrors each image with probability 1/2."""
  tf, aa = tensorflow(), _autoaugment()

  def mirror(images):
    # Rows of pixels [B * H, W, C] reversed: the same pixels as tf.reverse(images, [2]), 4x as fast at 224 px.
    shape = tf.shape(images)
    return tf.reshape(tf.reverse(tf.reshape(images, [-1, shape[2], shape[3]]), [1]), shape)

  def fn(images, u):
    # Reverse only the images that flip: a broadcast tf.where over the batch costs 6x as much at 224 px.
    flip = tf.cast(u[:, 0] < 0.5, tf.int32)
    return aa.partitioned(flip, 2, lambda j, part: mirror(part) if j else part, images)
  return BatchOp(1, fn)


@register('pad_crop')
def pad_crop(size: int, pad: int) -> BatchOp:
  """CIFAR-style: zero-pad by `pad` on each side, random `size`x`size` crop."""
  if size <= 0 or pad < 0:
    raise ValueError(f'size must be > 0 and pad >= 0, got {size}, {pad}')
  tf, aa = tensorflow(), _autoaugment()

  def fn(images, u):
    images = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    shape = tf.shape(images)
    y = aa.uniform_index(u[:, 0], shape[1] - size + 1)[:, tf.newaxis] + tf.range(size)
    x = aa.uniform_index(u[:, 1], shape[2] - size + 1)[:, tf.newaxis] + tf.range(size)
    out = tf.gather(tf.gather(images, y, axis=1, batch_dims=1), x, axis=2, batch_dims=1)
    return tf.ensure_shape(out, [None, size, size, None])
  return BatchOp(2, fn)


@register('resize')
def resize(size: int, method: str = 'bilinear') -> ExampleOp:
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')
  tf = tensorflow()

  def fn(image, seed):
    if method == 'bilinear':
      return _resize(image, size, size)
    out = tf.image.resize(image, [size, size], method=method, antialias=method != 'nearest')
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
  return fn


@register('resize_small')
def resize_small(size: int) -> ExampleOp:
  """Resizes so the shorter side is `size` (ImageNet eval: resize_small(256)|center_crop(224))."""
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')
  tf = tensorflow()

  def fn(image, seed):
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    scale = size / tf.minimum(h, w)
    new = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
    return _resize(image, new[0], new[1])
  return fn


@register('center_crop')
def center_crop(size: int) -> ExampleOp:
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')
  tf = tensorflow()

  def fn(image, seed):
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    y, x = (h - size) // 2, (w - size) // 2
    return tf.ensure_shape(image[y:y + size, x:x + size], [size, size, None])
  return fn


@register('inception_crop', encoded=True, decodes=_decode_whole_window)
def inception_crop(size: int, min_scale: float = 0.08, max_scale: float = 1.0,
                   min_ratio: float = 3 / 4, max_ratio: float = 4 / 3) -> ExampleOp:
  """ImageNet-style random-resized crop: area scale and aspect-ratio distortion, resized to `size`.

  Given an encoded JPEG, it reads the shape from the header and decodes only the crop window (the same box
  as decoding everything and cropping): the decode is most of an ImageNet pipeline's cost."""
  if not 0 < min_scale <= max_scale <= 1:
    raise ValueError(f'need 0 < min_scale <= max_scale <= 1, got {min_scale}, {max_scale}')
  tf = tensorflow()

  def box(shape, seed):
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, tf.zeros([0, 0, 4], tf.float32), seed=seed,
        area_range=(min_scale, max_scale), aspect_ratio_range=(min_ratio, max_ratio),
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    return begin, crop_size

  def fn(image, seed):
    if image.dtype == tf.string:
      crop = _decode_window(image, lambda shape: box(shape, seed))
    else:
      crop = _crop(image, *box(tf.shape(image), seed))
    return _resize(crop, size, size)
  return fn


def _keep(u, prob: float):
  """Which images a probability-`prob` op applies to (None: all), from one uniform each."""
  return None if prob >= 1.0 else u < prob


@register('autoaugment', scaled=True)
def autoaugment(policy: str = 'cifar10', *, aug_prob: float = 1.0) -> BatchOp:
  aa = _autoaugment()
  if policy not in aa.POLICIES:
    raise ValueError(f'unknown policy {policy!r}; allowed: {", ".join(sorted(aa.POLICIES))}')
  return BatchOp(aa.AUTOAUGMENT_DRAWS, lambda images, u: aa.autoaugment_batch(images, u, policy, aug_prob))


@register('randaugment', scaled=True)
def randaugment(num_ops: int = 2, magnitude: float = 9.0, *, aug_prob: float = 1.0) -> BatchOp:
  aa = _autoaugment()
  if not 0 <= magnitude <= 10:
    raise ValueError(f'magnitude must be in [0, 10], got {magnitude}')
  n = aa.randaugment_draws(num_ops)
  return BatchOp(n + 1, lambda images, u: aa.randaugment_batch(images, u[:, 1:], num_ops, magnitude,
                                                               _keep(u[:, 0], aug_prob)))


@register('cutout', scaled=True)
def cutout(size: int, *, aug_prob: float = 1.0) -> BatchOp:
  if size <= 0:
    raise ValueError(f'size must be > 0, got {size}')
  aa = _autoaugment()
  return BatchOp(3, lambda images, u: aa.cutout_batch(images, u[:, 1:], size, keep=_keep(u[:, 0], aug_prob)))
