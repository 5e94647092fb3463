"""The tf.data half of the host pipeline: host ops on in-memory batches, streamed splits, the size checks.

`pipeline` decides which examples go where (each epoch's order, the eval positions and masks, the augmentation
seeds) and hands them here whenever a spec has ops or a split streams; an in-memory split without ops never
comes here (no TensorFlow). In memory a batch is built whole (gather, each image's draws, the spec's batch ops:
see data/ops.py); streamed examples go through the spec's example ops (decode, crops) one by one, then its batch
ops per batch. Either way an image's pixels depend on its own seed only, never on the batch it lands in.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
from absl import logging

from refine_jax.data import ops as ops_lib
from refine_jax.data import tensorflow
from refine_jax.data.sources import Split
from refine_jax.errors import ConfigError

tf = tensorflow()
Batch = dict[str, np.ndarray]


def _options() -> tf.data.Options:
  o = tf.data.Options()
  o.deterministic = True
  o.experimental_optimization.map_parallelization = True
  return o


def _images_tensor(split: Split) -> tf.Tensor:
  # One host copy for the whole run; the per-epoch datasets gather from it by index.
  if not hasattr(split, '_tf_images'):
    split._tf_images = tf.constant(split.images)
    split._tf_labels = tf.constant(split.labels)
  return split._tf_images, split._tf_labels


def _finish(d: dict, image: tf.Tensor) -> dict:
  return {'image': image, **{k: d[k] for k in ('label', 'mask') if k in d}}


def _augment_examples(ds: tf.data.Dataset, op: ops_lib.Pipeline, batch: int, *,
                      drop_remainder: bool) -> tf.data.Dataset:
  """Examples {'image', 'label', 'seed', ['mask']} -> augmented batches {'image', 'label', ['mask']}.

  The op's example ops run per example; its trailing batch ops once per batch, when the examples then have
  one fixed shape (else everything runs per example: the same pixels either way)."""
  head = ds.map(lambda ex: {**ex, 'image': op.example(ex['image'], ex['seed'])},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if op.has_tail and head.element_spec['image'].shape.is_fully_defined():
    return head.batch(batch, drop_remainder=drop_remainder).map(
        lambda b: _finish(b, op.batch(b['image'], b['seed'])), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
  return ds.map(lambda ex: _finish(ex, op(ex['image'], ex['seed'])), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).batch(batch, drop_remainder=drop_remainder)


def _augment_batches(ds: tf.data.Dataset, op: ops_lib.Pipeline, batch: int) -> tf.data.Dataset:
  """Batches of decoded same-shape images {'image', 'label', 'seed' [B, 2], ['mask']} -> augmented batches.

  In memory the whole pipeline can work batch by batch (gather, draws, ops): nothing runs per example unless
  the spec has example ops."""
  if op.tail_start == 0:
    return ds.map(lambda b: _finish(b, op.batch(b['image'], b['seed'])), num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)
  return _augment_examples(ds.unbatch(), op, batch, drop_remainder=False)


def _seeds(es: tf.Tensor, pos: tf.Tensor) -> tf.Tensor:
  """Augmentation seeds [..., 2] of the examples at positions `pos` of the epoch with seed `es`."""
  return tf.stack([tf.broadcast_to(tf.cast(es, tf.int64), tf.shape(pos)), pos], axis=-1)


def _numpy(ds: tf.data.Dataset) -> Iterator[Batch]:
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_options()).as_numpy_iterator()


def memory_train_batches(split: Split, op: ops_lib.Pipeline, order: Iterator, local_batch: int) -> Iterator[Batch]:
  """The augmented local batches of in-memory epochs; `order` yields each epoch's (example indices, positions,
  epoch seed) as `pipeline` computes them ([steps, local_batch] each). Consecutive epochs of one op share this
  one tf.data pipeline (tracing AutoAugment's graph costs seconds, an epoch's work on small data a fraction)."""
  images, labels = _images_tensor(split)
  spec = (tf.TensorSpec([None, local_batch], tf.int64), tf.TensorSpec([None, local_batch], tf.int64),
          tf.TensorSpec([], tf.int64))
  ds = tf.data.Dataset.from_generator(lambda: order, output_signature=spec)
  ds = ds.flat_map(lambda idx, pos, es: tf.data.Dataset.from_tensor_slices(
      {'index': idx, 'pos': pos, 'es': tf.fill(tf.shape(idx)[:1], es)}))
  ds = ds.map(lambda b: {'image': tf.gather(images, b['index']), 'label': tf.gather(labels, b['index']),
                         'seed': _seeds(b['es'], b['pos'])}, num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  yield from _numpy(_augment_batches(ds, op, local_batch))


def _stream_examples(split: Split, order_seed: int, count: int, *, shuffle: bool) -> tf.data.Dataset:
  """The first `count` {image, label} of this process's stream, in order or shuffled with a fixed seed."""
  ds = split.stream(order_seed % (1 << 31))
  if shuffle and not split.stream_shuffled:
    ds = ds.shuffle(16384, seed=order_seed % (1 << 31), reshuffle_each_iteration=False)
  return ds.take(count)


def stream_train_epoch(split: Split, op: ops_lib.Pipeline, es: int, skip: int, steps_per_epoch: int,
                       local_batch: int) -> Iterator[Batch]:
  """One epoch of a streamed split from batch `skip` on, shuffled with the epoch seed `es`."""
  per_epoch = steps_per_epoch * local_batch
  ds = tf.data.Dataset.zip((_stream_examples(split, es, per_epoch, shuffle=True), tf.data.Dataset.range(per_epoch)))
  ds = ds.skip(skip * local_batch)
  # Positions interleave the processes' parts so that no two examples share an augmentation seed.
  ds = ds.map(lambda ex, pos: {'image': ex['image'], 'label': ex['label'],
                               'seed': _seeds(es, pos * split.process_count + split.process_index)})
  yield from _numpy(_augment_examples(ds, op, local_batch, drop_remainder=True))


def memory_eval_batches(split: Split, op: ops_lib.Pipeline, pos: np.ndarray, counted_from: np.ndarray, n: int,
                        es: int, *, blank: bool) -> Iterator[Batch]:
  """Eval batches of an in-memory split at positions `pos` [batches, local_batch] of its first `n` examples:
  mask 1 where n > pos >= counted_from; `blank`: the masked rows zeroed (images and labels)."""
  images, labels = _images_tensor(split)

  def gather(p, lo):
    i = tf.minimum(p, n - 1)
    return {'image': tf.gather(images, i), 'label': tf.gather(labels, i), 'seed': _seeds(es, p),
            'mask': tf.cast((p < n) & (p >= lo), tf.float32)}

  def blank_padding(b):
    keep = b['mask'] > 0

    def blanked():  # only a last, partly padded batch pays for the select
      return {'image': tf.where(keep[:, None, None, None], b['image'], tf.zeros_like(b['image'])),
              'label': tf.where(keep, b['label'], tf.zeros_like(b['label'])), 'mask': b['mask']}
    return tf.cond(tf.reduce_all(keep), lambda: b, blanked)

  ds = tf.data.Dataset.from_tensor_slices((pos, counted_from)).map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                                                                   deterministic=True)
  ds = _augment_batches(ds, op, pos.shape[1])
  yield from _numpy(ds.map(blank_padding) if blank else ds)


def stream_eval_batches(split: Split, op: ops_lib.Pipeline, es: int, local_batch: int, num_batches: int,
                        count: Optional[int]) -> Iterator[Batch]:
  """`num_batches` eval batches of this process's part of a streamed split (its first count / process_count
  examples), in order, blank-padded (mask 0) to the largest part."""
  n = split.num_examples if count is None else min(count // split.process_count, split.num_examples)
  ds = tf.data.Dataset.zip((_stream_examples(split, es, n, shuffle=False), tf.data.Dataset.range(n)))
  ds = ds.map(lambda ex, pos: {'image': ex['image'], 'label': ex['label'],
                               'seed': _seeds(es, pos * split.process_count + split.process_index)})
  produced, template = 0, None
  for b in _numpy(_augment_examples(ds, op, local_batch, drop_remainder=False)):
    k = len(b['label'])
    b = {key: _pad(v, local_batch) for key, v in b.items()}
    b['mask'] = (np.arange(local_batch) < k).astype(np.float32)
    template = b
    produced += 1
    yield b
  if template is None:  # this process holds no example: shape the padding from the op's output
    img = op(tf.zeros([8, 8, 3], tf.uint8), tf.constant([0, 0], tf.int64)).numpy()
    template = {'image': np.zeros((local_batch,) + img.shape, img.dtype),
                'label': np.zeros(local_batch, np.int32)}
  for _ in range(produced, num_batches):
    yield {'image': np.zeros_like(template['image']), 'label': np.zeros_like(template['label']),
           'mask': np.zeros(local_batch, np.float32)}


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  if len(x) == size:
    return x
  return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


def output_shape(split: Split, op: ops_lib.Pipeline) -> tuple[int, ...]:
  """The shape `op` gives an example of `split` (runs it once on the first example)."""
  img = split.images[0] if split.images is not None else next(iter(split.stream(0).take(1)))['image']
  return tuple(op(tf.convert_to_tensor(img), tf.constant([0, 0], tf.int64)).shape)


def _first_failing_op(op: ops_lib.Pipeline, spec: str, field: str, image: tf.Tensor) -> str:
  """The name (and arguments) of the first op of `spec` that fails on `image`."""
  parsed = ops_lib._parse(spec, field)  # noqa: SLF001 - the op names of a spec, as built
  for k in range(1, len(op.ops) + 1):
    try:
      ops_lib.Pipeline(op.ops[:k], op.takes_encoded)(image, tf.constant([0, 0], tf.int64))
    except Exception:  # noqa: BLE001 - the op that cannot take the image
      return ops_lib.describe(*parsed[k - 1])
  return 'the decode'


def check_sizes(split: Split, op: ops_lib.Pipeline, spec: str, field: str, what: str) -> None:
  """Runs `op` once on an image of each size `split` holds (known at start-up); raises ConfigError naming the op,
  the size and a file of that size when an op cannot take it, or when sizes give different output shapes (one
  batch needs one shape). Nothing is checked for a TFDS stream (sizes unknown before reading)."""
  shapes = {}
  for (h, w), (n, path) in sorted((split.image_sizes or {}).items()):
    image = tf.io.encode_png(tf.zeros([h, w, 3], tf.uint8))
    example = f' (e.g. {path})' if path else ''
    try:
      shapes[(h, w)] = tuple(op(image, tf.constant([0, 0], tf.int64)).shape)
    except Exception as e:  # noqa: BLE001 - any failure of the ops on this size
      raise ConfigError(field, f'op {_first_failing_op(op, spec, field, image)} of {spec!r} cannot take the '
                        f'{h}x{w} images of the {what} split{example} ({type(e).__name__}); fix the op\'s size, or '
                        f'start {field} with resize(N) or center_crop(N)') from None
  if len(set(shapes.values())) > 1:  # named: a file of the rarest size that differs from the commonest
    count = lambda z: split.image_sizes[z][0]  # noqa: E731
    zb = max(shapes, key=count)
    za = min((z for z in shapes if shapes[z] != shapes[zb]), key=count)
    sa, sb, path = shapes[za], shapes[zb], split.image_sizes[za][1]
    raise ConfigError(field, f'{spec!r} turns the {za[0]}x{za[1]} images of the {what} split (e.g. {path}) into '
                      f'{sa} but the {zb[0]}x{zb[1]} ones into {sb}; a batch needs one shape: start {field} with '
                      'resize(N) (bilinear, to N x N), or make the images one size')
  if len(shapes) > 1:
    logging.warning('%s: the %s split holds images of %d sizes (%s); %r brings all to %s', field, what,
                    len(shapes), ', '.join(f'{h}x{w}: {split.image_sizes[(h, w)][0]}' for h, w in shapes), spec,
                    next(iter(shapes.values())))
