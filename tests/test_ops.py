"""Host ops on encoded images: implicit decode, and inception_crop decoding only a JPEG's crop window."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refine_jax.data import ops
from tests.conftest import load_split  # noqa: E402


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


# --------------------------------------------------------------------------- batch ops


BATCH_SPECS = ['pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)', 'randaugment(2,9)',
               'autoaugment("imagenet")|cutout(8)', 'cutout(8)|resize(16)|flip_lr', 'flip_lr|pad_crop(28,0)']


@pytest.mark.parametrize('spec', BATCH_SPECS)
@pytest.mark.parametrize('prob', [1.0, 0.5])
def test_batch_route_equals_single_images_in_any_batch(spec, prob):
  """The example ops then the batched tail give each image exactly what the spec gives it alone, whatever
  else is in its batch (a batch reversed gives the reversed output); and the spec does change images."""
  op = ops.build(spec, prob)
  imgs = np.random.default_rng(1).integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
  seeds = tf.constant([[7, 1000 + i] for i in range(48)], tf.int64)
  single = np.stack([op(tf.constant(x), s).numpy() for x, s in zip(imgs, seeds)])
  heads = tf.stack([op.example(tf.constant(x), s) for x, s in zip(imgs, seeds)])
  batch = tf.function(op.batch)
  np.testing.assert_array_equal(batch(heads, seeds).numpy(), single)
  np.testing.assert_array_equal(batch(heads[::-1], seeds[::-1]).numpy(), single[::-1])
  if single.shape == imgs.shape:
    assert np.mean([not np.array_equal(a, b) for a, b in zip(single, imgs)]) > 0.3


def test_tail_of_batch_ops_is_the_longest_suffix():
  assert ops.build('pad_crop(32,4)|flip_lr|autoaugment|cutout(16)').tail_start == 0
  assert ops.build('cutout(8)|resize(16)|flip_lr').tail_start == 2
  assert ops.build('inception_crop(64)').tail_start == 1
  assert not ops.build('').has_tail


def test_train_batches_apply_the_spec_to_each_example():
  """In memory the trainer's batches are built batch-first (gather, draws, ops on the batch): every row must
  be the spec applied to that example alone, with the seed [epoch seed, global position]."""
  from configs import digits_demo
  from refine_jax.data import pipeline, sources
  split = load_split(digits_demo.get_config(), 'train[:200]', train=True)
  spec = 'pad_crop(16,2)|flip_lr|autoaugment("cifar10")|cutout(4)'
  op, batch, seed = ops.build(spec, 0.7), 32, 3
  spe = split.num_examples_global // batch
  rows = np.array([1, 5, 6, 30])  # a process's rows of each global batch
  it = pipeline.train_batches(split, lambda e: op, batch=batch, steps_per_epoch=spe, seed=seed, start_step=spe - 1,
                              rows=rows)
  for step in (spe - 1, spe):  # the last batch of epoch 0, the first of epoch 1
    e, j = divmod(step, spe)
    perm = np.random.default_rng([seed, e]).permutation(split.num_examples)
    got = next(it)
    for r, img, label in zip(rows, got['image'], got['label']):
      pos = j * batch + r
      want = op(tf.constant(split.images[perm[pos]]), tf.constant([pipeline.epoch_seed(seed, e), pos], tf.int64))
      np.testing.assert_array_equal(img, want.numpy())
      assert label == split.labels[perm[pos]]


def test_registry_refuses_a_second_op_of_the_same_name():
  before = ops.op_names()
  with pytest.raises(ValueError, match="'flip_lr' is already registered"):
    @ops.register('flip_lr')
    def flip_lr():  # would silently replace the real one
      return None
  assert ops.op_names() == before
  img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
  outs = {ops.build('flip_lr')(tf.constant(img), tf.constant([0, s], tf.int64)).numpy().tobytes() for s in range(16)}
  assert outs == {img.tobytes(), img[:, ::-1].tobytes()}  # still the real flip: both outcomes, nothing else


# --------------------------------------------------------------------------- resizing


def _tf_resize(img, h, w) -> np.ndarray:
  """The reference: TensorFlow's own antialiased bilinear resize, rounded to uint8 (what the ops ran before)."""
  out = tf.image.resize(tf.constant(img), [h, w], antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()


RESIZES = [((300, 400, 3), (224, 224)), ((120, 90, 3), (224, 224)), ((375, 500, 3), (256, 341)),
           ((50, 700, 3), (224, 64)), ((1, 9, 3), (5, 1)), ((33, 47, 1), (17, 80)), ((20, 30, 4), (20, 30))]


@pytest.mark.parametrize('shape,size', RESIZES)
def test_resize_is_bit_for_bit_tf_image_resize(shape, size):
  """ops._resize (both axes through ScaleAndTranslate's row loop) gives exactly tf.image.resize's pixels, down,
  up, mixed, with 1, 3 or 4 channels, eagerly and traced with unknown sizes (as inside tf.data); and the filter
  is PIL's bilinear (antialiased: its support widens with the downscale), up to fixed-point rounding."""
  img = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
  want = _tf_resize(img, *size)
  np.testing.assert_array_equal(ops._resize(tf.constant(img), *size).numpy(), want)
  traced = tf.function(ops._resize, input_signature=[tf.TensorSpec([None, None, shape[2]], tf.uint8),
                                                     tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
  np.testing.assert_array_equal(traced(tf.constant(img), *size).numpy(), want)
  if shape[2] == 3:
    pil = np.asarray(Image.fromarray(img).resize(size[::-1], Image.BILINEAR)).astype(int)
    assert np.abs(pil - want).max() <= 1


def test_crop_and_eval_resize_keep_their_pixels():
  """inception_crop and resize_small give the pixels of the window resized by tf.image.resize (the code before
  the faster resize), on a photo-like image."""
  img = _photo(375, 500)
  seed = tf.constant([5, 6], tf.int64)
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      img.shape, tf.zeros([0, 0, 4]), seed=seed, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
      max_attempts=10, use_image_if_no_bounding_boxes=True)
  window = tf.slice(tf.constant(img), begin, crop_size).numpy()
  crop = ops.build('inception_crop(224)').ops[0]
  np.testing.assert_array_equal(crop(tf.constant(img), seed).numpy(), _tf_resize(window, 224, 224))
  small = ops.build('resize_small(256)').ops[0]
  np.testing.assert_array_equal(small(tf.constant(img), seed).numpy(), _tf_resize(img, 256, 341))


def test_inception_crop_of_encoded_images_has_a_static_shape():
  """On a stream of encoded images the crop's shape is fully known, so a spec's trailing batch ops (flip_lr,
  autoaugment) run once per batch in the trainer's pipeline rather than once per image."""
  jpeg = tf.constant(_encode(_photo(), 'JPEG'))
  ds = tf.data.Dataset.from_tensors({'image': jpeg, 'seed': tf.constant([1, 2], tf.int64)})
  op = ops.build('inception_crop(64)|flip_lr')
  assert ds.map(lambda ex: op.example(ex['image'], ex['seed'])).element_spec.shape == (64, 64, 3)
