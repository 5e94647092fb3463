"""Host ops on encoded images: implicit decode, and inception_crop decoding only a JPEG's crop window."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refine_jax.data import ops


def _photo(h=180, w=240, seed=0) -> np.ndarray:
  """A smooth image with some texture (JPEG artefacts stay small, as on real photos)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  img = np.stack([128 + 100 * np.sin(x / 17 + c) * np.cos(y / 23 - c) for c in range(3)], -1)
  img += rng.normal(0, 4, img.shape)
  return np.clip(img, 0, 255).astype(np.uint8)


def _encode(img: np.ndarray, fmt: str) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format=fmt, **({'quality': 95} if fmt == 'JPEG' else {}))
  return buf.getvalue()


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_inception_crop_on_a_jpeg_decodes_only_the_same_window(seed):
  """Same seed, same box: the fused decode_and_crop path equals decoding the whole JPEG and cropping (libjpeg
  may differ by a unit or two at window edges through chroma upsampling), and PNGs take the full decode."""
  img = _photo(seed=seed)
  s = tf.constant([seed, 11], tf.int64)
  op = ops.build('inception_crop(64)')
  jpeg = _encode(img, 'JPEG')
  fused = op(tf.constant(jpeg), s).numpy()
  full = op(tf.io.decode_jpeg(jpeg, channels=3), s).numpy()
  assert fused.shape == full.shape == (64, 64, 3) and fused.dtype == np.uint8
  diff = np.abs(fused.astype(int) - full.astype(int))
  assert diff.max() <= 3 and diff.mean() < 0.5, (diff.max(), diff.mean())
  png = _encode(img, 'PNG')
  np.testing.assert_array_equal(op(tf.constant(png), s).numpy(), op(tf.constant(img), s).numpy())


def test_other_ops_get_encoded_images_decoded_first():
  img = _photo(40, 48)
  png = tf.constant(_encode(img, 'PNG'))
  s = tf.constant([3, 4], tf.int64)
  for spec in ('pad_crop(32,4)|flip_lr', 'resize(16)', ''):
    np.testing.assert_array_equal(ops.build(spec)(png, s).numpy(), ops.build(spec)(tf.constant(img), s).numpy())
  np.testing.assert_array_equal(ops.build('decode|flip_lr')(png, s).numpy(),
                                ops.build('flip_lr')(tf.constant(img), s).numpy())
