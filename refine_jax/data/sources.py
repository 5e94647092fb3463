"""Data sources: TFDS by name, image folders, the embedded `digits` set and `synthetic` data, as this process's
part of a split.

A source hands the pipeline the examples of one split in a fixed order, plus the facts the trainer needs (class
count, normalisation). Small splits are held in memory as uint8 arrays (CIFAR-10 train is 150 MB) — whole, in
every process, so an epoch's order is one global index permutation and the run does not depend on the process
count; large ones (ImageNet) stream from TFDS, each process reading its own disjoint part. TensorFlow and TFDS
are imported by the sources that read through them (TFDS, image folders, digits' resize), not by `synthetic`.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Optional, Sequence

import numpy as np
from absl import logging

from refine_jax.data import ops as ops_lib
from refine_jax.data import tensorflow
from refine_jax.errors import BadInput, ConfigError
from refine_jax.spec import DataSpec

# Normalisation statistics (per channel, on [0, 1] pixels); unknown datasets use ImageNet's.
_MEAN_STD = {
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    'cifar100': ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    'digits': ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    'imagenet': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # `synthetic`: the moments of a uniform uint8 pixel, on [0, 1]
    'synthetic': ((0.5,) * 3, (((256 ** 2 - 1) / 12) ** 0.5 / 255,) * 3),
}
_IN_MEMORY_MAX_BYTES = 4 << 30
DIGITS_DEFAULT_SIZE = 32  # digits' render size when config.image_size is None
# Datasets known without asking TFDS (config validation lists TFDS's builders only for other names).
BUILTIN_DATASETS = ('digits', 'image_folder', 'synthetic')
# `synthetic`'s splits and the field of config.synthetic that sizes each.
SYNTHETIC_SPLITS = {'train': 'train_examples', 'test': 'eval_examples', 'validation': 'eval_examples'}


@dataclasses.dataclass
class Split:
  """One split as this process sees it.

  Either `images`/`labels` (in memory, uint8 NHWC: the whole split, in every process) or `stream` (a function
  of a shuffle seed returning a tf.data of {image, label} of this process's part, in a seed-determined order).
  """
  num_examples: int            # examples this process holds (the whole split when in memory)
  num_examples_global: int     # examples of the whole split
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  images: Optional[np.ndarray] = None
  labels: Optional[np.ndarray] = None
  stream: Optional[Callable[[int], tf.data.Dataset]] = None
  process_index: int = 0       # whose part `stream` reads
  process_count: int = 1
  stream_shuffled: bool = False  # `stream` already shuffles example by example (no buffer shuffle needed)
  # (height, width) -> (how many, one file of that size) when known before reading (decoded at start-up, or
  # in memory); None for a TFDS stream. The host ops are checked against each size before compute.
  image_sizes: Optional[dict] = None

  def __post_init__(self):
    if self.image_sizes is None and self.images is not None:
      self.image_sizes = {tuple(self.images.shape[1:3]): (len(self.images), None)}


def dataset_names() -> tuple[str, ...]:
  """Allowed values of `config.dataset`: the built-in ones and TFDS builder names."""
  tensorflow()
  import tensorflow_datasets as tfds
  return BUILTIN_DATASETS + tuple(tfds.list_builders(with_community_datasets=False))


def _split_parts(split: str) -> tuple[str, Optional[str]]:
  """A split string's name and slice: ('train', ':2000') of 'train[:2000]', ('train', None) of 'train'."""
  return re.fullmatch(r'(\w+)(?:\[(.*)\])?', split).groups()


def _slice(n: int, spec: Optional[str]) -> tuple[int, int]:
  """Resolves the '[a:b]' part of a split string ('train[:2000]', 'train[10%:]') to indices; None: all n."""
  if spec is None:
    return 0, n
  m = re.fullmatch(r'\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*', spec)
  if not m:
    raise ValueError(f'cannot parse split slice [{spec}]')

  def idx(v, default):
    if v is None:
      return default
    i = int(v[:-1]) * n // 100 if v.endswith('%') else int(v)
    return max(0, min(n, i + n if i < 0 else i))
  return idx(m.group(1), 0), idx(m.group(2), n)


def _process_range(n: int, process_index: int, process_count: int, drop_remainder: bool) -> tuple[int, int]:
  """Contiguous part of n examples for one process. Train parts are equal (remainder dropped); eval parts
  cover every example (sizes differ by at most one)."""
  if drop_remainder:
    per = n // process_count
    return process_index * per, (process_index + 1) * per
  bounds = np.linspace(0, n, process_count + 1).round().astype(int)
  return int(bounds[process_index]), int(bounds[process_index + 1])


DIGITS_TEST = 360  # digits' test split; the train split is the rest (1437 of 1797)


def _digits(split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's bundled 8x8 digits: fixed stratified split (1437 train / 360 test), upscaled, 3 channels."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split
  d = load_digits()
  idx_train, idx_test = train_test_split(np.arange(len(d.target)), test_size=DIGITS_TEST, random_state=0,
                                         stratify=d.target)
  name, sl = _split_parts(split)
  if name not in ('train', 'test'):
    raise ValueError(f'digits has splits train and test, got {name!r}')
  idx = idx_train if name == 'train' else idx_test
  a, b = _slice(len(idx), sl)
  idx = idx[a:b]
  imgs = (d.images[idx] * (255.0 / 16.0)).astype(np.float32)[..., None]
  imgs = tensorflow().image.resize(imgs, [image_size, image_size], method='bilinear').numpy()
  imgs = np.repeat(np.clip(np.round(imgs), 0, 255).astype(np.uint8), 3, axis=-1)
  return imgs, d.target[idx].astype(np.int32)


def load(data: DataSpec, *, train: bool, pp: Sequence[str] = ('',), process_index: int = 0,
         process_count: int = 1) -> Split:
  """The training (`train`) or eval split of `data.dataset`: whole if it fits in memory, else this process's
  part as a stream. `pp`: the host-op specs that will read the split (`Spec.readers`); an image folder's files
  are checked with the decodes they run."""
  name, split = data.dataset, data.split(train)
  mean, std = _MEAN_STD.get(name, _MEAN_STD['imagenet'])
  if name == 'digits':
    images, labels = _digits(split, data.image_size or DIGITS_DEFAULT_SIZE)
    return Split(len(labels), len(labels), 10, mean, std, images=images, labels=labels)
  if name == 'image_folder':
    return _load_image_folder(data, split, train=train, pp=pp, process_index=process_index,
                              process_count=process_count)
  if name == 'synthetic':
    images, labels = _synthetic(data, split, data.split_field(train))
    return Split(len(labels), len(labels), data.synthetic.num_classes, mean, std, images=images, labels=labels)
  return _load_tfds(data, split, train=train, process_index=process_index, process_count=process_count,
                    mean=mean, std=std)


def count(data: DataSpec, *, train: bool) -> int:
  """The examples of the training (`train`) or eval split, counted without reading any image: TFDS's dataset
  info, digits' and synthetic's sizes, an image folder's file listing (before unreadable files are skipped)."""
  name, split = data.dataset, data.split(train)
  base, sl = _split_parts(split)
  if name == 'digits':
    from sklearn.datasets import load_digits
    total = len(load_digits().target)
    n = {'train': total - DIGITS_TEST, 'test': DIGITS_TEST}.get(base, 0)
  elif name == 'synthetic':
    n = getattr(data.synthetic, SYNTHETIC_SPLITS.get(base, 'eval_examples'))
  elif name == 'image_folder':
    n = len(_listing(data, base)[0])
  else:
    tensorflow()
    import tensorflow_datasets as tfds
    return tfds.builder(name, data_dir=data.data_dir).info.splits[split].num_examples
  a, b = _slice(n, sl)
  return b - a


def fingerprint(data: DataSpec) -> dict:
  """What the training split is, to tell whether two runs train on the same data without reading any image:
  {'examples': n, 'digest': SHA-256 of its identity}. An image folder's identity is its files' names and sizes
  (relative to data_dir, so a moved folder keeps it); a TFDS split's is the builder's full name (name, config,
  version) and the split string; digits' and synthetic's are their sizes and what makes them (image size, seed)."""
  import hashlib
  name, split = data.dataset, data.train_split
  if name == 'image_folder':
    base, sl = _split_parts(split)
    paths = _listing(data, base)[0]
    a, b = _slice(len(paths), sl)
    ident = [(os.path.relpath(p, data.data_dir), os.path.getsize(p)) for p in paths[a:b]]
  elif name in ('digits', 'synthetic'):
    ident = [name, split, data.image_size] + ([data.seed, data.synthetic.num_classes] if name == 'synthetic' else [])
  else:
    tensorflow()
    import tensorflow_datasets as tfds
    ident = [tfds.builder(name, data_dir=data.data_dir).info.full_name, split]
  digest = hashlib.sha256(repr(ident).encode()).hexdigest()
  # An image folder's listing above is the count (no second walk of the folder); the others count cheaply.
  return {'examples': len(ident) if name == 'image_folder' else count(data, train=True), 'digest': digest}


def _synthetic(data: DataSpec, split: str, field: str) -> tuple[np.ndarray, np.ndarray]:
  """Random uint8 images (`image_size` square, 3 channels) and labels uniform over `synthetic.num_classes`, made
  by numpy from (seed, split name): the same on every process and in every run of the seed. A slice ('train[:512]')
  takes those examples of the whole split. Benchmarks and accelerator checks: nothing to read, no TensorFlow."""
  name, sl = _split_parts(split)
  if name not in SYNTHETIC_SPLITS:
    raise ConfigError(field, f'synthetic has no split {name!r}; allowed: {", ".join(SYNTHETIC_SPLITS)} '
                      '(optionally sliced, e.g. "train[:512]")')
  size_field = SYNTHETIC_SPLITS[name]
  n, side = getattr(data.synthetic, size_field), data.image_size
  per_image = side * side * 3
  if n * per_image > _IN_MEMORY_MAX_BYTES:
    raise ConfigError(f'synthetic.{size_field}', f'{n} images of {side}x{side}x3 take {n * per_image / 2**30:.1f} GiB; '
                      f'allowed: at most {_IN_MEMORY_MAX_BYTES >> 30} GiB per split (synthetic splits are held in '
                      f'memory), i.e. {_IN_MEMORY_MAX_BYTES // per_image} images at {side} px')
  rng = np.random.default_rng([data.seed & 0xFFFFFFFF, *name.encode()])
  images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
  labels = rng.integers(0, data.synthetic.num_classes, n, dtype=np.int32)
  a, b = _slice(n, sl)
  return images[a:b], labels[a:b]


def _load_tfds(data: DataSpec, split: str, *, train: bool, process_index: int, process_count: int, mean,
               std) -> Split:
  tf = tensorflow()
  import tensorflow_datasets as tfds
  builder = tfds.builder(data.dataset, data_dir=data.data_dir)
  if data.download:
    builder.download_and_prepare()
  elif not tf.io.gfile.exists(builder.data_dir):
    raise FileNotFoundError(f'config.data_dir: no prepared TFDS data for {data.dataset!r} under '
                            f'{data.data_dir!r} (looked for {builder.data_dir}); set data_dir to a TFDS data '
                            'directory, or download=True to fetch it')
  info = builder.info
  num_classes = info.features['label'].num_classes
  n_global = info.splits[split].num_examples
  a, b = _process_range(n_global, process_index, process_count, train)
  # Absolute [from, to) of the split in its base split, so each process reads only its own records.
  (abs_ri,) = tfds.core.ReadInstruction.from_spec(split).to_absolute(
      info.splits)
  lo = abs_ri.from_ or 0
  local_split = f'{abs_ri.splitname}[{lo + a}:{lo + b}]'
  shape = info.features['image'].shape
  fixed = all(s is not None for s in shape)
  if fixed and n_global * int(np.prod(shape)) <= _IN_MEMORY_MAX_BYTES:
    ds = builder.as_dataset(split=split, shuffle_files=False, batch_size=4096)
    images, labels = [], []
    for ex in tfds.as_numpy(ds):
      images.append(ex['image'])
      labels.append(ex['label'])
    return Split(n_global, n_global, num_classes, mean, std,
                 images=np.concatenate(images), labels=np.concatenate(labels).astype(np.int32))

  def stream(seed: int) -> tf.data.Dataset:
    read = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=16)
    ds = builder.as_dataset(split=local_split, shuffle_files=train, read_config=read,
                            decoders={'image': tfds.decode.SkipDecoding()})
    return ds.map(lambda ex: {'image': ex['image'], 'label': tf.cast(ex['label'], tf.int32)})
  return Split(b - a, n_global, num_classes, mean, std, stream=stream, process_index=process_index,
               process_count=process_count)


_IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif')


class CorruptImageError(BadInput):
  """An unreadable file in an image folder; the message names its path."""


def _check_images(paths: list[str], decoders: tuple[Callable, ...]) -> list[tuple[Optional[str], Optional[tuple]]]:
  """For each file, (None, (height, width)) if every one of `decoders` (training's, `ops.decoders`) decodes it,
  else (TensorFlow's reason, None).

  All files go through one parallel tf.data map (TensorFlow's own threads, no GIL; one graph per file, so that
  inception_crop's decode costs no eager op dispatches), which drops those that fail; only those are decoded
  again, one by one and eagerly, for the verdict and the reason. bench/bench_image_check.py times it against
  the PIL check it replaced."""
  tf = tensorflow()
  table = tf.constant(paths or [''])

  def sizes(i):
    data = tf.io.read_file(table[i])
    return i, tf.stack([tf.shape(decode(data))[:2] for decode in decoders])  # every decode's output is used
  ds = tf.data.Dataset.range(len(paths)).map(sizes, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  got = {int(i): (None, (int(hw[0][0]), int(hw[0][1]))) for i, hw in ds.ignore_errors().as_numpy_iterator()}
  return [got[i] if i in got else _check_image(p, decoders) for i, p in enumerate(paths)]


def _check_image(path: str, decoders: tuple[Callable, ...]) -> tuple[Optional[str], Optional[tuple]]:
  """`_check_images` of one file, eagerly; the reason is TensorFlow's message without the kernel's device
  prefix ('InvalidArgumentError: Unknown image file format. One of JPEG, ... required. [Op:DecodeImage]')."""
  tf = tensorflow()
  try:
    data = tf.io.read_file(path)
    shapes = [decode(data).shape for decode in decoders]
    return None, (int(shapes[0][0]), int(shapes[0][1]))
  except Exception as e:  # noqa: BLE001 - any failure to read or decode: training would fail on the file too
    message = re.sub(r'\{\{function_node [^}]*\}\}\s*', '', getattr(e, 'message', None) or str(e))
    message = re.sub(r'\s*name:\s*$', '', message.strip())
    return f'{type(e).__name__}: {message}', None


def _class_dirs(root: str) -> list[str]:
  return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) if os.path.isdir(root) else []


def _warn_class_mismatch(name: str, classes: list[str], root: str, labels: list[int]) -> None:
  """Warnings for classes without training images (still model outputs) and, for another split, classes it
  lacks and classes only it has (their images are left out: the model has no output for them)."""
  counts = np.bincount(np.asarray(labels, np.int64), minlength=len(classes))
  empty = [c for c, n in zip(classes, counts) if n == 0]
  if name == 'train' and empty:
    logging.warning('image_folder: class(es) %s have no training images; they remain outputs of the model',
                    empty)
  if name == 'train':
    return
  if empty:
    logging.warning('image_folder: class(es) %s of train have no images in split %r', empty, name)
  extra = [c for c in _class_dirs(root) if c not in classes]
  if extra:
    n = sum(len(os.listdir(os.path.join(root, c))) for c in extra)
    logging.warning('image_folder: class(es) %s of split %r are not in train; their %d file(s) are left out',
                    extra, name, n)


def _listing(data: DataSpec, name: str) -> tuple[list[str], list[int], list[str]]:
  """(paths, labels, classes) of split `name` of an image folder: DATA_DIR/name/CLASS/*.{jpg,png,...}, the classes
  being the sorted folder names of 'train'."""
  root = os.path.join(data.data_dir, name)
  if not os.path.isdir(root):
    raise FileNotFoundError(f'config.data_dir: image folder split {name!r} not found: {root} (expected '
                            f'{data.data_dir}/{{train,val,...}}/CLASS/*.jpg)')
  classes = _class_dirs(os.path.join(data.data_dir, 'train'))
  paths, labels = [], []
  for i, c in enumerate(classes):
    d = os.path.join(root, c)
    if not os.path.isdir(d):
      continue
    for f in sorted(os.listdir(d)):
      if f.lower().endswith(_IMAGE_EXTENSIONS):
        paths.append(os.path.join(d, f))
        labels.append(i)
  return paths, labels, classes


def _load_image_folder(data: DataSpec, split: str, *, train: bool, pp: Sequence[str], process_index: int,
                       process_count: int) -> Split:
  """Users' own data: DATA_DIR/{split}/CLASS/*.{jpg,png,...}; classes are the sorted folder names of 'train'.

  Every file is decoded up front (in parallel, `_check_images`) by TensorFlow as training will decode it under
  `pp` (`ops.decoders`), so a file that training could not decode (corrupt, or a TIFF named .jpg, which PIL
  reads) is reported by path before training — or, with `image_folder_skip_corrupt`, left out and counted. The
  decoded sizes are kept for the size checks.
  """
  tf = tensorflow()
  name, sl = _split_parts(split)
  root = os.path.join(data.data_dir, name)
  paths, labels, classes = _listing(data, name)
  problems, sizes = zip(*_check_images(paths, ops_lib.decoders(pp))) if paths else ((), ())
  bad = [(p, why) for p, why in zip(paths, problems) if why]
  if bad and not data.skip_corrupt:
    listing = '; '.join(f'{p} ({why})' for p, why in bad[:3]) + (f'; and {len(bad) - 3} more' if bad[3:] else '')
    raise CorruptImageError(f'config.data_dir: {len(bad)} corrupt image(s) in {root} that training cannot decode '
                            f'(TensorFlow\'s decoder): {listing}. Remove them, or set '
                            'image_folder_skip_corrupt=True to skip and count them')
  if bad:
    logging.warning('image_folder: skipped %d corrupt file(s) in %s that training cannot decode (first: %s: %s)',
                    len(bad), root, *bad[0])
    keep = [not why for why in problems]
    paths = [p for p, k in zip(paths, keep) if k]
    labels = [l for l, k in zip(labels, keep) if k]
    sizes = [z for z, k in zip(sizes, keep) if k]
  _warn_class_mismatch(name, classes, root, labels)
  a, b = _slice(len(paths), sl)
  paths, labels, sizes = paths[a:b], labels[a:b], sizes[a:b]
  by_size: dict = {}
  for p, z in zip(paths, sizes):
    n, first = by_size.get(z, (0, p))
    by_size[z] = (n + 1, first)
  a, b = _process_range(len(paths), process_index, process_count, train)
  local_paths, local_labels = np.array(paths[a:b]), np.array(labels[a:b], np.int32)
  mean, std = _MEAN_STD['imagenet']

  def stream(seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((local_paths, local_labels))
    if train:
      ds = ds.shuffle(len(local_paths), seed=seed, reshuffle_each_iteration=False)
    # Encoded bytes: the preprocessing decodes (only the crop window of a JPEG for inception_crop).
    return ds.map(lambda p, l: {'image': tf.io.read_file(p), 'label': l},
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return Split(b - a, len(paths), len(classes), mean, std, stream=stream, process_index=process_index,
               process_count=process_count, stream_shuffled=train, image_sizes=by_size)
