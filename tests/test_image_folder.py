"""Users' own data: an image folder of JPEGs trains end to end; a corrupt file is named by its path."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import load_split  # noqa: E402
from tests.conftest import TFDS_DIR, read_rows, read_summary, run_main


def _make_folder(root, per_class=(60, 10)):
  """Digits 0-2 from scikit-learn as 24 px JPEGs: ROOT/{train,val}/digit_k/*.jpg (disjoint images)."""
  from sklearn.datasets import load_digits
  d = load_digits()
  for split, n, start in (('train', per_class[0], 0), ('val', per_class[1], 1200)):
    counts = {k: 0 for k in range(3)}
    for k in range(3):
      os.makedirs(os.path.join(root, split, f'digit_{k}'), exist_ok=True)
    for i in range(start, len(d.target)):
      y = int(d.target[i])
      if y < 3 and counts[y] < n:
        arr = np.repeat((d.images[i] * 255 / 16).astype(np.uint8)[..., None], 3, -1)
        Image.fromarray(arr).resize((24, 24)).save(os.path.join(root, split, f'digit_{y}', f'{i}.jpg'))
        counts[y] += 1
  return root


ARGS = ['--config.dataset=image_folder', '--config.eval_split=val', '--config.phases.augmented.pp=resize(16)|pad_crop(16,2)',
        '--config.phases.refine.pp=resize(16)', '--config.pp_eval=resize(16)', '--config.batch_size=16',
        '--config.eval_batch_size=12', '--config.diag_examples=24', '--config.phases.augmented.epochs=8',
        '--config.phases.augmented.lr.boundaries_epochs=()', '--config.phases.refine.epochs=2',
        '--config.eval_every_epochs=2']


def test_image_folder_trains_end_to_end(tmp_path):
  root = _make_folder(str(tmp_path / 'data'))
  n_val = sum(len(fs) for _, _, fs in os.walk(os.path.join(root, 'val')))
  w = str(tmp_path / 'w')
  run_main('digits_demo.py', w, f'--config.data_dir={root}', *ARGS)
  rows = read_rows(w)
  assert all(r['test_count'] == n_val for r in rows)
  assert read_summary(w)['final_top1'] > 0.6  # 3 classes: chance is 1/3


def test_corrupt_file_is_named_or_skipped_and_counted(tmp_path):
  root = _make_folder(str(tmp_path / 'data'))
  bad = os.path.join(root, 'train', 'digit_1', 'broken.jpg')
  good = os.path.join(root, 'train', 'digit_1', os.listdir(os.path.join(root, 'train', 'digit_1'))[0])
  with open(good, 'rb') as f:
    data = f.read()
  with open(bad, 'wb') as f:
    f.write(data[: len(data) // 3])  # a truncated JPEG
  w = tmp_path / 'w'
  p = run_main('digits_demo.py', str(w), f'--config.data_dir={root}', *ARGS, check=False)
  assert p.returncode == 2 and bad in p.stderr and 'image_folder_skip_corrupt' in p.stderr
  assert not w.exists() or not os.listdir(w)
  p = run_main('digits_demo.py', str(w), f'--config.data_dir={root}', *ARGS,
               '--config.image_folder_skip_corrupt=True', '--config.phases.augmented.epochs=1',
               '--config.phases.refine.epochs=1')
  assert 'skipped 1 corrupt file' in p.stderr


@pytest.mark.parametrize('process_count', [1, 2, 3])
def test_streamed_eval_scores_every_file_once_across_processes(tmp_path, process_count):
  """A streamed split (image folders are never held in memory) is read in disjoint per-process parts; with the
  padding every process runs the same batch count and each file is scored once."""
  import collections
  import ml_collections
  from refine_jax.data import ops, pipeline, sources, tf_pipeline
  root = _make_folder(str(tmp_path / 'data'), per_class=(1, 7))  # 21 val files
  cfg = ml_collections.ConfigDict({'dataset': 'image_folder', 'data_dir': root,
                                   'image_folder_skip_corrupt': False})
  batch = 6
  op = ops.build('', 1.0)
  counts, seen = set(), collections.Counter()
  for p in range(process_count):
    split = load_split(cfg, 'val', train=False, process_index=p, process_count=process_count)
    assert split.images is None and split.num_examples_global == 21
    got = list(pipeline.eval_batches(split, op, batch=batch, rows=np.arange(batch // process_count)))
    counts.add(len(got))
    for b in got:
      for img, label, m in zip(b['image'], b['label'], b['mask']):
        if m:
          seen[(int(label), img.tobytes())] += 1
  full = load_split(cfg, 'val', train=False)
  want = collections.Counter((int(b['label']), op(b['image'], None).numpy().tobytes()) for b in
                             tf_pipeline._stream_examples(full, 0, 21, shuffle=False))
  assert len(counts) == 1 and seen == want and sum(seen.values()) == 21


def _png_folder(root, sizes: dict) -> str:
  """ROOT/SPLIT/CLASS/i.png of random pixels; sizes: {(split, class): [(h, w), ...]} (an empty list: an empty
  class folder)."""
  rng = np.random.default_rng(0)
  for (split, cls), shapes in sizes.items():
    d = os.path.join(root, split, cls)
    os.makedirs(d, exist_ok=True)
    for i, (h, w) in enumerate(shapes):
      Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(os.path.join(d, f'{i}.png'))
  return root


SMALL = ['--config.dataset=image_folder', '--config.eval_split=val', '--config.batch_size=8',
         '--config.eval_batch_size=8', '--config.diag_examples=8']


def test_a_mixed_size_eval_split_is_refused_at_start_naming_the_file_and_classes_are_reported(tmp_path):
  """One 40x40 image among 32x32 ones in val with pp_eval='' (finding 3): exit 2 before anything is written,
  naming pp_eval, the file and the fix. On the way: the class / image counts line, a warning for the train class
  without images, and one for the val-only class whose 2 files are left out."""
  sizes = {('train', c): [(32, 32)] * 8 for c in ('a', 'b')}
  sizes.update({('train', 'empty'): [], ('val', 'a'): [(32, 32)] * 3, ('val', 'b'): [(32, 32), (40, 40)],
                ('val', 'only_val'): [(32, 32)] * 2})
  root = _png_folder(str(tmp_path / 'data'), sizes)
  w = tmp_path / 'w'
  p = run_main('digits_demo.py', str(w), f'--config.data_dir={root}', *SMALL, '--config.pp_eval=', check=False)
  assert p.returncode == 2, p.stderr[-3000:]
  last = p.stderr.strip().splitlines()[-1]
  odd = os.path.join(root, 'val', 'b', '1.png')
  assert 'config.pp_eval' in last and '40x40' in last and odd in last and 'resize(' in last, last
  assert 'image_folder: 3 classes, 16 train / 5 eval images' in p.stderr, p.stderr[-3000:]
  assert re.search(r"class\(es\) \['empty'\] have no training images", p.stderr)
  assert re.search(r"class\(es\) \['only_val'\] of split 'val' are not in train; their 2 file", p.stderr)
  assert not w.exists()


def test_an_op_that_cannot_take_the_image_size_is_refused_before_compute(tmp_path):
  """pad_crop(64,4) on 32 px images: exit 2 naming the field, the op and the size; no workdir."""
  sizes = {(s, c): [(32, 32)] * 4 for s in ('train', 'val') for c in ('a', 'b')}
  root = _png_folder(str(tmp_path / 'data'), sizes)
  w = tmp_path / 'w'
  p = run_main('digits_demo.py', str(w), f'--config.data_dir={root}', *SMALL, '--config.pp_eval=',
               '--config.phases.augmented.pp=pad_crop(64,4)', check=False)
  assert p.returncode == 2, p.stderr[-3000:]
  last = p.stderr.strip().splitlines()[-1]
  assert 'config.phases.augmented.pp' in last and 'pad_crop(64, 4)' in last and '32x32' in last, last
  assert not w.exists()


@pytest.mark.parametrize('dataset', ['image_folder', 'cifar10'])
def test_image_size_is_checked_against_what_the_model_gets_for_every_dataset(dataset, tmp_path):
  """image_size means one thing everywhere: the side of the images the model receives. 16 px out of the ops with
  image_size=32 is refused before compute, naming image_size, the op string and the size; no workdir."""
  if dataset == 'cifar10':
    if not os.path.isdir(os.path.join(TFDS_DIR, 'cifar10')):
      pytest.skip(f'no TFDS cifar10 under {TFDS_DIR}')
    data = ['--config.dataset=cifar10', f'--config.data_dir={TFDS_DIR}', '--config.train_split=train[:64]',
            '--config.eval_split=test[:16]', '--config.batch_size=8', '--config.eval_batch_size=8',
            '--config.diag_examples=8']
  else:
    root = _png_folder(str(tmp_path / 'data'), {(s, c): [(32, 32)] * 4 for s in ('train', 'val') for c in 'ab'})
    data = [f'--config.data_dir={root}', *SMALL]
  w = tmp_path / 'w'
  # digits_demo's pp is pad_crop(16,2): 16 px to the model; pp_eval resize(16) keeps eval consistent.
  p = run_main('digits_demo.py', str(w), *data, '--config.pp_eval=resize(16)', '--config.image_size=32',
               check=False)
  assert p.returncode == 2, p.stderr[-3000:]
  last = p.stderr.strip().splitlines()[-1]
  assert 'config.image_size' in last and "'pad_crop(16,2)'" in last and '16x16' in last, last
  assert 'image_size=16' in last and 'resize(32)' in last, last
  assert not w.exists()


def test_fork_on_a_folder_with_a_corrupt_image_exits_2_with_one_line_like_main(tmp_path):
  """The same bad folder gives the same one `error:` line and exit 2 from main and from fork (fork once let the
  error through as a traceback). The parent needs only its config.json: the data is read before any checkpoint."""
  import json
  import subprocess
  import sys
  from refine_jax import spec as spec_lib
  from tests.conftest import ROOT, env_for
  root = _make_folder(str(tmp_path / 'data'), per_class=(8, 2))
  with open(os.path.join(root, 'train', 'digit_0', 'broken.jpg'), 'wb') as f:
    f.write(b'\xff\xd8\xff\xe0 not a jpeg')
  from configs import digits_demo
  c = digits_demo.get_config()
  c.dataset, c.data_dir, c.eval_split = 'image_folder', root, 'val'
  parent = tmp_path / 'parent'
  parent.mkdir()
  (parent / 'config.json').write_text(json.dumps(spec_lib.from_dict(spec_lib.as_dict(c)).as_dict()))
  args = [f'--config={ROOT}/configs/digits_demo.py', '--config.dataset=image_folder', f'--config.data_dir={root}',
          '--config.eval_split=val']
  errors = {}
  for cmd in (['refine_jax.main', f'--workdir={tmp_path / "w_main"}'],
              ['refine_jax.fork', f'--workdir={tmp_path / "w_fork"}', f'--from={parent}', '--at_epoch=1']):
    p = subprocess.run([sys.executable, '-m', *cmd, *args], cwd=ROOT, env=env_for(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 2, p.stderr[-3000:]
    lines = [l for l in p.stderr.splitlines() if l.startswith('error:')]
    assert len(lines) == 1 and 'broken.jpg' in lines[0] and 'image_folder_skip_corrupt' in lines[0], p.stderr[-3000:]
    assert 'Traceback' not in p.stderr
    errors[cmd[0]] = lines[0]
  assert errors['refine_jax.main'] == errors['refine_jax.fork']


def test_a_fork_whose_folder_gained_an_image_exits_2_naming_data_dir(tmp_path):
  """The parent records its training data's fingerprint (file names and sizes); a fork of a folder that gained a
  file since is refused before anything is written, naming data_dir. The same fork of the unchanged folder runs."""
  import json
  import shutil
  import subprocess
  import sys
  from tests.conftest import ROOT, env_for
  root = _make_folder(str(tmp_path / 'data'), per_class=(16, 4))
  parent = str(tmp_path / 'parent')
  args = ['--config.dataset=image_folder', f'--config.data_dir={root}', '--config.eval_split=val',
          '--config.phases.augmented.pp=resize(16)', '--config.pp_eval=resize(16)', '--config.batch_size=16',
          '--config.eval_batch_size=12', '--config.diag_examples=12', '--config.phases.augmented.steps=4',
          '--config.eval_every_steps=2', '--config.checkpoint_every_steps=2',
          '--config.phases.augmented.lr.boundaries_epochs=()', "--config.phase_order=('augmented',)"]
  run_main('digits_demo.py', parent, *args)
  assert json.loads(open(os.path.join(parent, 'config.json')).read())['train_data']['examples'] == 48

  def fork(workdir):  # at step 2 of 3 steps per epoch, where the parent saved a checkpoint
    cmd = [sys.executable, '-m', 'refine_jax.fork', f'--config={ROOT}/configs/digits_demo.py', f'--from={parent}',
           '--at_epoch=0.6666667', f'--workdir={workdir}', *args]
    return subprocess.run(cmd, cwd=ROOT, env=env_for(), capture_output=True, text=True, timeout=600)
  p = fork(str(tmp_path / 'same'))
  assert p.returncode == 0, p.stderr[-3000:]
  cat = os.path.join(root, 'train', 'digit_1')
  first = sorted(os.listdir(cat))[0]
  shutil.copy(os.path.join(cat, first), os.path.join(cat, 'zz_new.jpg'))
  w = tmp_path / 'gained'
  p = fork(str(w))
  assert p.returncode == 2, p.stderr[-3000:]
  err = [l for l in p.stderr.splitlines() if l.startswith('error:')]
  assert len(err) == 1 and err[0].startswith('error: config.data_dir: the training data differs'), p.stderr[-3000:]
  assert '49 examples' in err[0] and 'against 48' in err[0]
  assert not w.exists() or not os.listdir(w)


# --------------------------------------------------------------------------- issue 25: decodes and size pairings


def _image_folder(root, sizes: dict, odd: dict = ()) -> str:
  """ROOT/SPLIT/CLASS/i.jpg, JPEGs of random pixels; sizes: {(split, class): [(h, w), ...]}; odd: {relative path:
  (PIL format, (h, w))} for files whose content is not what their name says."""
  rng = np.random.default_rng(0)
  files = {os.path.join(s, c, f'{i}.jpg'): ('JPEG', hw) for (s, c), shapes in sizes.items()
           for i, hw in enumerate(shapes)}
  for rel, (fmt, (h, w)) in {**files, **dict(odd)}.items():
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(os.path.join(root, rel), format=fmt)
  return root


# The issue's BASE, in small: pad_crop(32,4)|flip_lr in both phases, image_size 32, pp_eval '' (the default).
ISSUE = ['--config.dataset=image_folder', '--config.eval_split=val', '--config.image_size=32',
         '--config.phases.augmented.pp=pad_crop(32,4)|flip_lr', '--config.phases.refine.pp=pad_crop(32,4)|flip_lr',
         '--config.batch_size=8', '--config.eval_batch_size=8', '--config.diag_examples=8',
         '--config.phases.augmented.steps=4', '--config.phases.refine.steps=2']
SQUARES = {(s, c): [(32, 32)] * n for s, n in (('train', 8), ('val', 4)) for c in ('cat', 'dog')}


@pytest.mark.parametrize('side', [40, 24])
def test_a_train_image_of_another_size_is_refused_for_pp_eval_before_anything_is_written(tmp_path, side):
  """Issue 25.2: one 40x40 (or 24x24) JPEG among 32x32 ones in train/cat. The phases' pad_crop(32,4) brings it to
  32x32, but pp_eval ('') runs on the training split too (the R̂ diagnostics, the phase-end Table 2) and would
  leave it at its size: exit 2 before anything is written, naming pp_eval, the size, the split and the file
  (it used to train the phase and die at its end in TensorFlow's batching, exit 1, on every re-run)."""
  root = _image_folder(str(tmp_path / 'data'), SQUARES, {'train/cat/odd.jpg': ('JPEG', (side, side))})
  w = tmp_path / 'w'
  p = run_main('digits_demo.py', str(w), f'--config.data_dir={root}', *ISSUE, check=False)
  assert p.returncode == 2, p.stderr[-3000:]
  last = p.stderr.strip().splitlines()[-1]
  assert last.startswith('error: config.pp_eval:'), last
  assert f'{side}x{side} images of the train split' in last and os.path.join(root, 'train/cat/odd.jpg') in last, last
  assert 'resize(' in last, last
  assert not w.exists()


def test_a_24px_train_image_is_accepted_when_a_resize_leads_every_spec(tmp_path):
  """The fix the refusal points to: resize(32) first in both phases' pp and in pp_eval. The run trains; every
  phase-end Table 2 row counts all 17 training images (the 24x24 one included) and the eval all 8."""
  root = _image_folder(str(tmp_path / 'data'), SQUARES, {'train/cat/odd.jpg': ('JPEG', (24, 24))})
  w = str(tmp_path / 'w')
  pp = 'resize(32)|pad_crop(32,4)|flip_lr'
  p = run_main('digits_demo.py', w, f'--config.data_dir={root}', *ISSUE, f'--config.phases.augmented.pp={pp}',
               f'--config.phases.refine.pp={pp}', '--config.pp_eval=resize(32)')
  assert 'pp_eval: the train split holds images of 2 sizes (24x24: 1, 32x32: 16)' in p.stderr, p.stderr[-3000:]
  rows = read_rows(w)
  ends = [r for r in rows if 'phase_end_examples' in r]
  assert [r['step'] for r in ends] == [4, 6] and all(r['phase_end_examples'] == 17 for r in ends), ends
  assert all(r['test_count'] == 8 for r in rows)


def test_tiff_content_named_jpg_is_refused_up_front_or_skipped_and_counted(tmp_path):
  """Issue 25.4: a TIFF named .jpg, which PIL reads but TensorFlow (training) does not, with inception_crop in one
  phase and pad_crop in the other (both of training's decodes run at start-up). Refused before anything is written,
  naming the file; with image_folder_skip_corrupt it is skipped and counted, and the run trains on the other 16
  images — among them a PNG named .jpg, which inception_crop decodes whole (not a JPEG: no crop-window decode)."""
  odd = {'train/cat/tiff.jpg': ('TIFF', (32, 32)), 'train/dog/png.jpg': ('PNG', (32, 32))}
  sizes = {**SQUARES, ('train', 'dog'): [(32, 32)] * 7}
  root = _image_folder(str(tmp_path / 'data'), sizes, odd)
  tiff = os.path.join(root, 'train/cat/tiff.jpg')
  with Image.open(tiff) as im:  # what the start-up check used to decode with accepts it
    im.load()
  args = [f'--config.data_dir={root}', *ISSUE, '--config.phases.augmented.pp=inception_crop(32)|flip_lr',
          '--config.pp_eval=resize(32)']
  w = tmp_path / 'w'
  p = run_main('digits_demo.py', str(w), *args, check=False)
  assert p.returncode == 2, p.stderr[-3000:]
  last = p.stderr.strip().splitlines()[-1]
  assert last.startswith('error: config.data_dir:') and tiff in last and 'image_folder_skip_corrupt' in last, last
  assert 'cannot decode' in last and 'png.jpg' not in last, last
  assert not w.exists()
  p = run_main('digits_demo.py', str(w), *args, '--config.image_folder_skip_corrupt=True')
  assert re.search(r'skipped 1 corrupt file\(s\) in \S+ that training cannot decode \(first: ' + re.escape(tiff),
                   p.stderr), p.stderr[-3000:]
  assert all(r['phase_end_examples'] == 16 for r in read_rows(str(w)) if 'phase_end_examples' in r)
  assert read_summary(str(w))['total_steps'] == 6


def _encoded(kind: str) -> bytes:
  """A 40x48 image as `kind`: formats TensorFlow decodes, ones it does not, and damaged files."""
  import io
  rng = np.random.default_rng(3)
  rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
  fmt, im = {'jpeg': ('JPEG', Image.fromarray(rgb)), 'gray_jpeg': ('JPEG', Image.fromarray(rgb[..., 0])),
             'cmyk_jpeg': ('JPEG', Image.fromarray(rgb).convert('CMYK')), 'png': ('PNG', Image.fromarray(rgb)),
             'png16': ('PNG', Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)),
             'gif': ('GIF', Image.fromarray(rgb)), 'bmp': ('BMP', Image.fromarray(rgb)),
             'tiff': ('TIFF', Image.fromarray(rgb)),
             'progressive_jpeg': ('JPEG', Image.fromarray(rgb))}.get(kind.replace('truncated_', ''), (None, None))
  if fmt is None:
    return {'empty': b'', 'text': b'not an image\n'}[kind]
  buf = io.BytesIO()
  im.save(buf, format=fmt, **({'progressive': True} if kind == 'progressive_jpeg' else {}))
  data = buf.getvalue()
  return data[:len(data) // 3] if kind.startswith('truncated_') else data


KINDS = ['jpeg', 'progressive_jpeg', 'gray_jpeg', 'cmyk_jpeg', 'png', 'png16', 'gif', 'bmp', 'tiff', 'truncated_jpeg',
         'truncated_png', 'empty', 'text']


@pytest.mark.parametrize('spec', ['', 'pad_crop(32,4)|flip_lr', 'inception_crop(16)|flip_lr', 'decode|resize(16)'])
def test_the_start_up_check_passes_a_file_exactly_when_training_decodes_it(tmp_path, spec):
  """The reference is training itself: a one-file streamed split through `pipeline.train_batches` under `spec`
  (one epoch; three for inception_crop: three crop windows). The check (`_check_images` with `ops.decoders`) passes
  a file if and only if those batches come out, and reports PIL's (height, width) for it. Not vacuous: TIFF and
  the damaged files are refused, the common formats pass; and PIL reads the TIFF (what the check used to use)."""
  import tensorflow as tf
  from refine_jax.data import ops, pipeline, sources
  paths = []
  for kind in KINDS:
    paths.append(str(tmp_path / f'{kind}.jpg'))
    with open(paths[-1], 'wb') as f:
      f.write(_encoded(kind))
  verdicts = dict(zip(KINDS, sources._check_images(paths, ops.decoders([spec]))))  # noqa: SLF001
  op = ops.build(spec)
  for kind, path in zip(KINDS, paths):
    split = sources.Split(1, 1, 1, (0.5,) * 3, (0.5,) * 3, stream=lambda seed, path=path: tf.data.Dataset.from_tensors(
        {'image': tf.io.read_file(path), 'label': tf.constant(0, tf.int32)}))
    try:
      batches = pipeline.train_batches(split, lambda e: op, batch=1, steps_per_epoch=1, seed=0, start_step=0)
      trains = all(next(batches)['image'].ndim == 4 for _ in range(3 if 'inception' in spec else 1))
    except tf.errors.OpError:
      trains = False
    why, size = verdicts[kind]
    assert (why is None) == trains, (kind, spec, why, trains)
    if trains:
      with Image.open(path) as im:
        assert size == (im.height, im.width), (kind, size)
  refused = {k for k, (why, _) in verdicts.items() if why}
  assert {'tiff', 'truncated_jpeg', 'truncated_png', 'empty', 'text'} <= refused, refused
  assert not refused & {'jpeg', 'progressive_jpeg', 'gray_jpeg', 'png', 'gif', 'bmp'}, refused
  with Image.open(paths[KINDS.index('tiff')]) as im:
    im.load()


def test_decoders_follow_each_specs_first_op():
  """inception_crop decodes a JPEG's crop window (decode_and_crop_jpeg), every other spec with decode_image: a
  split read under both gets both, once each."""
  from refine_jax.data import ops
  assert ops.decoders(['', 'pad_crop(32,4)', 'decode|flip_lr']) == ops.decoders([''])
  both = ops.decoders(['inception_crop(16)|flip_lr', 'resize(16)', 'inception_crop(32)'])
  assert len(both) == 2 and both[1] == ops.decoders([''])[0] and both[0] == ops.decoders(['inception_crop(8)'])[0]
