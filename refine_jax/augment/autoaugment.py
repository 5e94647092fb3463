"""AutoAugment, RandAugment and Cutout in pure TensorFlow with PIL semantics.

Every op reproduces what the PIL-based AutoAugment research code computes, so
policies learned with PIL transfer unchanged, but runs as TF graph ops inside
`tf.data` (no `py_function`, no per-image Python). All randomness is one
stateless Philox draw per image, so an (image, seed) pair always yields the
same output, eagerly or inside `Dataset.map`; the trainer relies on this for
bit-exact resume. See docs/autoaugment.md for the magnitude tables.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Callable, Optional, Union

import tensorflow as tf
# indexed_case(lower_using_switch_merge=False): see _case().
from tensorflow.python.ops import cond_v2

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

# policy_v0 of tensorflow/tpu models/official/efficientnet/autoaugment.py.
_IMAGENET = [
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

POLICIES: dict[str, list] = {'cifar10': _CIFAR10, 'imagenet': _IMAGENET, 'svhn': _SVHN}
# The CIFAR/SVHN policies were searched with the research code's magnitude scale,
# the ImageNet one with the TPU code's.
_POLICY_MAPPING = {'cifar10': 'cifar', 'imagenet': 'imagenet', 'svhn': 'cifar'}

_FILL = 128  # Out-of-image fill of the geometric ops and the Cutout op (TPU code).
_MAX_MAGNITUDE = 10.0

Number = Union[int, float]
Scalar = Union[Number, tf.Tensor]  # Python when known at trace time, else a tensor.
Rand = Optional[tf.Tensor]  # float32 [2] uniforms in [0, 1) for one op, or None.
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
# Helpers.
# ----------------------------------------------------------------------------

def _f64(x: Scalar) -> tf.Tensor:
    return tf.cast(x, tf.float64)


def _floor(x: Scalar) -> Scalar:
    """Python's int() of a non-negative value; stays Python when x is Python."""
    return math.floor(x) if isinstance(x, (int, float)) else tf.floor(x)


def _image_hw(image: tf.Tensor) -> tuple[Scalar, Scalar]:
    """(H, W) as Python floats when static, so op arguments fold at trace time."""
    h, w = image.shape[0], image.shape[1]
    if h is not None and w is not None:
        return float(h), float(w)
    shape = tf.shape(image)
    return _f64(shape[0]), _f64(shape[1])


def _uniforms(seed: tf.Tensor, n: int) -> tf.Tensor:
    """n stateless Philox uniforms in [0, 1): all of an image's randomness in one draw.

    The V1 op takes the seed directly; tf.random.stateless_uniform adds a
    StatelessRandomGetKeyCounter op that costs ~15 us per image in tf.data.
    """
    return tf.raw_ops.StatelessRandomUniform(shape=[n], seed=seed, dtype=tf.float32)


def _index(u: tf.Tensor, n: int) -> tf.Tensor:
    """Uniform int in [0, n) from a uniform float in [0, 1)."""
    return tf.minimum(tf.cast(u * n, tf.int32), n - 1)


def _random_sign(rand: Rand) -> tf.Tensor:
    """-1 or +1 with equal probability; +1 (the PIL argument's own sign) when rand is None."""
    if rand is None:
        return tf.constant(1.0, tf.float64)
    return tf.where(rand[0] < 0.5, tf.constant(-1.0, tf.float64), 1.0)


def _case(index: tf.Tensor, branches: list[Callable[[], tf.Tensor]]) -> tf.Tensor:
    """Runs only branches[index].

    tf.switch_case lowers to Switch/Merge inside tf.data, where every untaken
    branch's nodes are still visited per image (cost grows with the branch
    count: ~2x slower AutoAugment); an unlowered Case runs one function call.
    """
    if tf.executing_eagerly():
        return branches[int(index)]()
    return cond_v2.indexed_case(index, branches, lower_using_switch_merge=False)


def _apply_lut(image: tf.Tensor, lut: tf.Tensor) -> tf.Tensor:
    """Maps each channel c through lut[c] (int32 [3, 256]), as PIL's Image.point."""
    idx = tf.cast(image, tf.int32) + [0, 256, 512]
    return tf.cast(tf.gather(tf.reshape(lut, [-1]), idx), tf.uint8)


def _grey(image: tf.Tensor) -> tf.Tensor:
    """PIL's RGB->L: (19595 R + 38470 G + 7471 B + 2**15) >> 16, as int32 [H, W]."""
    weighted = tf.reduce_sum(tf.cast(image, tf.int32) * [19595, 38470, 7471], axis=-1)
    return tf.bitwise.right_shift(weighted + 32768, 16)


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """PIL Image.blend(degenerate, image, factor): float32 maths, clip, truncate."""
    degenerate = tf.cast(degenerate, tf.float32)
    out = degenerate + tf.cast(factor, tf.float32) * (tf.cast(image, tf.float32) - degenerate)
    return tf.cast(tf.clip_by_value(tf.floor(out), 0.0, 255.0), tf.uint8)


# ----------------------------------------------------------------------------
# Geometric ops.
# ----------------------------------------------------------------------------

def _sample(image: tf.Tensor, yin: tf.Tensor, xin: tf.Tensor) -> tf.Tensor:
    """Nearest-neighbour lookup of integer source coordinates; outside the image -> 128."""
    shape = tf.shape(image, out_type=tf.int64)
    h, w = shape[0], shape[1]
    valid = (yin >= 0) & (yin < h) & (xin >= 0) & (xin < w)
    pixels = tf.gather(tf.reshape(image, [-1, 3]), tf.where(valid, yin * w + xin, 0))
    out = tf.where(valid[..., tf.newaxis], pixels, tf.constant(_FILL, tf.uint8))
    out.set_shape(image.shape)
    return out


def _grid(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Output pixel indices y [H, 1] and x [1, W], int64."""
    shape = tf.shape(image, out_type=tf.int64)
    return tf.range(shape[0])[:, tf.newaxis], tf.range(shape[1])[tf.newaxis, :]


def _fix(v: tf.Tensor) -> tf.Tensor:
    """PIL's 16.16 fixed point: floor(v * 65536 + 0.5)."""
    return tf.cast(tf.floor(v * 65536.0 + 0.5), tf.int64)


def _affine(image: tf.Tensor, coeffs: tuple) -> tf.Tensor:
    """PIL Image.transform(AFFINE, coeffs, NEAREST, fillcolor=128) for a sheared/rotated matrix.

    Output pixel (x, y) reads input (a x + b y + c, d x + e y + f) at pixel
    centres, evaluated like Pillow's affine_fixed (Geometry.c): coefficients
    rounded to 16.16 fixed point, floor. Bit-exact whenever Pillow itself takes
    that path (every |coordinate| < 32768, i.e. any realistic image).
    """
    a, b, c, d, e, f = (_f64(v) for v in coeffs)
    y, x = _grid(image)
    xin = _fix(c + b * 0.5 + a * 0.5) + y * _fix(b) + x * _fix(a)
    yin = _fix(f + e * 0.5 + d * 0.5) + y * _fix(e) + x * _fix(d)
    return _sample(image, tf.bitwise.right_shift(yin, 16), tf.bitwise.right_shift(xin, 16))


def _translate(image: tf.Tensor, dx: Scalar, dy: Scalar) -> tf.Tensor:
    """PIL transform(AFFINE, (1, 0, dx, 0, 1, dy)): Pillow's float ScaleAffine path,
    input = floor(output + 0.5 + d)."""
    y, x = _grid(image)
    xin = tf.cast(tf.floor(_f64(x) + (_f64(dx) + 0.5)), tf.int64)
    yin = tf.cast(tf.floor(_f64(y) + (_f64(dy) + 0.5)), tf.int64)
    return _sample(image, yin, xin)


def _rotate(image: tf.Tensor, degrees: Scalar) -> tf.Tensor:
    """PIL Image.rotate(degrees) about the image centre, counter-clockwise for degrees > 0."""
    theta = -(tf.math.floormod(_f64(degrees), 360.0) * (math.pi / 180.0))
    cos, sin = tf.cos(theta), tf.sin(theta)
    h, w = _image_hw(image)
    cx, cy = _f64(w) / 2.0, _f64(h) / 2.0
    return _affine(image, (cos, sin, (cos * -cx + sin * -cy) + cx,
                           -sin, cos, (-sin * -cx + cos * -cy) + cy))


def _cutout(image: tf.Tensor, rand: Rand, size: Scalar, fill: int) -> tf.Tensor:
    """Fills rows/cols [centre - size//2, centre + size//2) clipped to the image.

    The centre is uniform over the pixels (the image centre when rand is None).
    """
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    if rand is None:
        cy, cx = h // 2, w // 2
    else:
        cy = tf.minimum(tf.cast(rand[0] * tf.cast(h, tf.float32), tf.int32), h - 1)
        cx = tf.minimum(tf.cast(rand[1] * tf.cast(w, tf.float32), tf.int32), w - 1)
    half = tf.cast(size, tf.int32) // 2
    rows = tf.range(h)[:, tf.newaxis]
    cols = tf.range(w)[tf.newaxis, :]
    inside = ((rows >= cy - half) & (rows < cy + half) &
              (cols >= cx - half) & (cols < cx + half))
    return tf.where(inside[..., tf.newaxis], tf.constant(fill, tf.uint8), image)


# ----------------------------------------------------------------------------
# Colour ops (PIL ImageOps / ImageEnhance).
# ----------------------------------------------------------------------------

def _autocontrast(image: tf.Tensor) -> tf.Tensor:
    """ImageOps.autocontrast(cutoff=0): per channel, lut = int(i*scale - lo*scale) in float64."""
    lo = _f64(tf.reduce_min(image, axis=[0, 1]))[:, tf.newaxis]
    hi = _f64(tf.reduce_max(image, axis=[0, 1]))[:, tf.newaxis]
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    ramp = _f64(tf.range(256))[tf.newaxis]
    lut = tf.clip_by_value(tf.floor(ramp * scale + (-lo * scale)), 0.0, 255.0)
    return _apply_lut(image, tf.cast(tf.where(hi > lo, lut, ramp), tf.int32))


def _equalize(image: tf.Tensor) -> tf.Tensor:
    """ImageOps.equalize: per channel, step = (n - hist[last]) // 255,
    lut[i] = (step//2 + hist[:i].sum()) // step clipped to 255, identity if step == 0."""
    idx = tf.cast(image, tf.int32) + [0, 256, 512]
    flat = tf.reshape(idx, [-1])
    hist = tf.reshape(tf.math.unsorted_segment_sum(tf.ones_like(flat), flat, 768), [3, 256])
    last = tf.gather(hist, tf.cast(tf.reduce_max(image, axis=[0, 1]), tf.int32), batch_dims=1)
    step = ((tf.reduce_sum(hist, axis=1) - last) // 255)[:, tf.newaxis]
    cum = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.minimum((step // 2 + cum) // tf.maximum(step, 1), 255)
    lut = tf.where(step > 0, lut, tf.range(256)[tf.newaxis])
    return tf.cast(tf.gather(tf.reshape(lut, [-1]), idx), tf.uint8)


def _solarize(image: tf.Tensor, threshold: Scalar) -> tf.Tensor:
    return tf.where(tf.cast(image, tf.int32) < tf.cast(threshold, tf.int32), image, 255 - image)


def _solarize_add(image: tf.Tensor, addition: Scalar) -> tf.Tensor:
    """TPU code's SolarizeAdd: pixels below 128 get +addition, clipped to 255."""
    x = tf.cast(image, tf.int32)
    added = tf.minimum(x + tf.cast(addition, tf.int32), 255)
    return tf.cast(tf.where(x < 128, added, x), tf.uint8)


def _posterize(image: tf.Tensor, bits: Scalar) -> tf.Tensor:
    """Keeps the top `bits` bits; bits == 0 gives black (old PIL; Pillow >= 9 raises)."""
    shift = 8 - tf.cast(bits, tf.int32)
    mask = tf.bitwise.left_shift(tf.bitwise.right_shift(255, shift), shift)
    return tf.cast(tf.bitwise.bitwise_and(tf.cast(image, tf.int32), mask), tf.uint8)


def _contrast(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """Blend toward int(mean(L) + 0.5), the image's mean grey level (ImageEnhance.Contrast)."""
    grey = _grey(image)
    mean = _f64(tf.reduce_sum(grey)) / _f64(tf.size(grey))
    return _blend(tf.floor(mean + 0.5), image, factor)


def _color(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    return _blend(_grey(image)[..., tf.newaxis], image, factor)


def _brightness(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    return _blend(tf.constant(0.0), image, factor)


def _sharpness(image: tf.Tensor, factor: Scalar) -> tf.Tensor:
    """Blend with PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]]/13, rounded); border kept.

    Separable slice sums: exact integers in float32, and ~2x cheaper than a
    depthwise conv on 32x32 images.
    """
    x = tf.cast(image, tf.float32)
    rows = x[:, :-2] + x[:, 1:-1] + x[:, 2:]
    box = rows[:-2] + rows[1:-1] + rows[2:]
    centre = x[1:-1, 1:-1]
    delta = tf.floor((box + 4.0 * centre) / 13.0 + 0.5) - centre
    return _blend(x + tf.pad(delta, [[1, 1], [1, 1], [0, 0]]), image, factor)


# ----------------------------------------------------------------------------
# Op table: kernel(image, arg, rand) and magnitude -> arg for each mapping.
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


def _run_op(name: str, image: tf.Tensor, magnitude: Scalar, rand: Rand,
            mapping: str) -> tf.Tensor:
    """The single code path of every public entry point."""
    fn = _ARGS[mapping].get(name)
    arg = None if fn is None else fn(magnitude, *_image_hw(image))
    return _KERNELS[name](image, arg, rand)


# ----------------------------------------------------------------------------
# Public API.
# ----------------------------------------------------------------------------

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
    image = _check_image(image)
    rand = None if seed is None else _uniforms(seed, 2)
    return _run_op(name, image, magnitude, rand, mapping)


def _policy_uniforms(seed: tf.Tensor) -> tf.Tensor:
    """[gate, sub-policy, op1 prob, op2 prob, op1 rand (2), op2 rand (2)] for one image."""
    return _uniforms(seed, 8)


def subpolicy_index(seed: tf.Tensor, policy: str = 'cifar10') -> tf.Tensor:
    """The sub-policy autoaugment() applies for `seed` (when it applies one)."""
    _check_choice('policy', policy, tuple(POLICIES))
    return _index(_policy_uniforms(seed)[1], len(POLICIES[policy]))


def _subpolicy_branch(image: tf.Tensor, subpolicy: tuple, u: tf.Tensor,
                      mapping: str) -> Callable[[], tf.Tensor]:
    """One sub-policy: each op runs when its uniform is below its probability."""
    def branch() -> tf.Tensor:
        out = image
        for k, (name, p, m) in enumerate(subpolicy):
            op = functools.partial(_run_op, name, out, float(m), u[4 + 2 * k:6 + 2 * k], mapping)
            out = tf.cond(u[2 + k] < p, op, lambda out=out: out)
        return out
    return branch


def autoaugment(image: tf.Tensor, seed: tf.Tensor, policy: str = 'cifar10',
                prob: Prob = 1.0) -> tf.Tensor:
    """With probability `prob`, applies one uniformly drawn sub-policy of `policy`.

    Each of the sub-policy's two ops runs with its own probability. `prob` may be
    a scalar tensor so a schedule can change it without retracing.
    """
    _check_choice('policy', policy, tuple(POLICIES))
    if not tf.is_tensor(prob):
        _check_range('prob', prob, 0.0, 1.0)
    image = _check_image(image)
    subpolicies = POLICIES[policy]
    u = _policy_uniforms(seed)
    index = tf.where(u[0] < tf.cast(prob, tf.float32),
                     _index(u[1], len(subpolicies)), len(subpolicies))
    branches = [_subpolicy_branch(image, sp, u, _POLICY_MAPPING[policy]) for sp in subpolicies]
    out = _case(index, branches + [lambda: image])
    out.set_shape(image.shape)
    return out


def randaugment(image: tf.Tensor, seed: tf.Tensor, num_ops: int = 2,
                magnitude: float = 9.0) -> tf.Tensor:
    """RandAugment: `num_ops` ops drawn uniformly from RANDAUGMENT_OPS, each always applied.

    Uses the 'imagenet' (TPU) magnitude mapping, translate/cutout scaled to the image size.
    """
    num_ops = _check_int('num_ops', num_ops, 0)
    magnitude = _check_range('magnitude', magnitude, 0.0, _MAX_MAGNITUDE)
    image = _check_image(image)
    u = _uniforms(seed, 3 * max(num_ops, 1))
    for k in range(num_ops):
        rand = u[3 * k + 1:3 * k + 3]
        branches = [functools.partial(_run_op, name, image, magnitude, rand, 'imagenet')
                    for name in RANDAUGMENT_OPS]
        out = _case(_index(u[3 * k], len(RANDAUGMENT_OPS)), branches)
        out.set_shape(image.shape)
        image = out
    return image


def cutout(image: tf.Tensor, seed: tf.Tensor, size: int, fill: int = 128) -> tf.Tensor:
    """Cutout (DeVries & Taylor 2017): centre uniform over the image, square with
    edges centre -/+ size//2, clipped to the image, filled with `fill`."""
    size = _check_int('size', size, 0)
    fill = _check_int('fill', fill, 0, 255)
    return _cutout(_check_image(image), _uniforms(seed, 2), size, fill)
