"""ImageNet on a GPU host: our host pipeline per core beside torchvision's, on photographs.

    python bench/bench_imagenet_host.py [--photos=3000] [--images=2048] [--repeats=3] [--cores=1,2]
        [--torch_python=python3] [--pipelines=rrc,rrc_autoaugment,eval]

`bench/photos.py` writes `--photos` distinct JPEGs that decode like ImageNet's (windows of real photographs at
ImageNet's sizes, quality 90) into an image folder under `--out`. Each pipeline then runs on those files, for each
core count, in a process of its own pinned to that many cores (`os.sched_setaffinity`, inherited by threads and
worker processes):
- ours: the trainer's own path: the image-folder source (`sources.load`, a stream of encoded bytes), then
  `pipeline.train_batches` (or `eval_batches`) with the spec strings the ImageNet configs use (taken from
  `configs/paper.py`), at the configs' batch of 256; tf.data sizes its thread pools from the cores it may use;
- torchvision: `bench/torch_input.py`, `ImageFolder` (PIL decode) + the same transforms + a DataLoader with one
  worker process per core.
Pipelines: `rrc` = decode + RandomResizedCrop(224, scale 0.08-1, ratio 3/4-4/3) + flip (ours:
`inception_crop(224)|flip_lr`); `rrc_autoaugment` = the same + the AutoAugment ImageNet policy (ours:
`...|autoaugment("imagenet")`, torchvision's `AutoAugment(IMAGENET)`, the same 25 sub-policies); `eval` = decode
+ resize the shorter side to 256 + centre crop 224. Both ship uint8 batches (normalisation is on device).

Each measurement skips 2 batches (start-up), then times `--images` images. Ours and torchvision's alternate (A B,
then B A in the next repeat) so that drifts of a shared machine's load hit both; the table gives medians over
the repeats, their spread, and the median of the paired ratios; the 1-min load average before and after each
pipeline is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import common, photos  # noqa: E402
from refine_jax import cli  # noqa: E402

# name: (what the ImageNet configs run: 'standard' / 'autoaugment' (the augmented phase's host ops) or 'eval',
#        the torchvision pipeline of bench/torch_input.py, the files' shorter side (None: as written))
PIPELINES = {
    'rrc': ('standard', 'rrc', None),
    'rrc_autoaugment': ('autoaugment', 'rrc_autoaugment', None),
    'eval': ('eval', 'eval', None),
    'rrc_short256': ('standard', 'rrc', 256),
}
BATCH = 256  # the ImageNet configs' batch_size: one GPU's host batch
SKIP = 2


def spec_of(pipeline: str) -> str:
  """The host ops the ImageNet configs run for `pipeline` (read from configs/paper.py, not restated)."""
  from configs import paper
  what = PIPELINES[pipeline][0]
  c = paper.get_config('dataset=imagenet,model=resnet50,aug=' + ('standard' if what == 'eval' else what))
  return c.pp_eval if what == 'eval' else c.phases.augmented.pp


def folder_of(out: str, pipeline: str) -> str:
  short = PIPELINES[pipeline][2]
  return os.path.join(out, f'photos_short{short}' if short else 'photos')


def ours(folder: str, pipeline: str, images: int) -> dict:
  """Images/s of the trainer's own path over the image folder's `train` split (runs in the pinned process)."""
  from configs import paper
  from refine_jax.data import ops
  from refine_jax.data import pipeline as pipeline_lib
  c = paper.get_config('dataset=imagenet,model=resnet50,aug=standard')
  c.dataset, c.data_dir, c.image_folder_skip_corrupt = 'image_folder', folder, False
  train = PIPELINES[pipeline][0] != 'eval'
  split = common.train_split(c, (spec_of(pipeline),))
  op = ops.build(spec_of(pipeline))
  if train:
    it = pipeline_lib.train_batches(split, lambda e: op, batch=BATCH,
                                    steps_per_epoch=split.num_examples_global // BATCH, seed=0, start_step=0)
  else:
    it = pipeline_lib.eval_batches(split, op, batch=BATCH)
  for _ in range(SKIP):
    next(it)
  steps = images // BATCH
  t, c = time.perf_counter(), time.process_time()  # process_time: every thread of this process
  for _ in range(steps):
    b = next(it)
  t, c = time.perf_counter() - t, time.process_time() - c
  assert b['image'].shape == (BATCH, 224, 224, 3) and b['image'].dtype.name == 'uint8', b['image'].shape
  import tensorflow as tf
  return {'images_per_s': steps * BATCH / t, 'images_per_cpu_s': steps * BATCH / c, 'tensorflow': tf.__version__}


def _cpu_ms(fn, args: list) -> float:
  """CPU milliseconds per call of `fn` over `args` (after one warm-up call)."""
  fn(*args[0])
  c = time.process_time()
  for a in args:
    fn(*a)
  return (time.process_time() - c) / len(args) * 1e3


def profile_ours(folder: str, folder_q97: str, count: int = 300) -> dict:
  """CPU ms per image of each stage of our RRC + flip on images 0..count-1 of a bench/photos.py folder, one
  thread, each stage a traced function of its own (the call overhead is its own row); the decodes again on the
  same images saved at quality 97 (`folder_q97`): what a file's bytes cost."""
  import tensorflow as tf
  from refine_jax.augment import autoaugment as aa
  from refine_jax.data import ops
  files = photos.first(folder, count)
  u8 = tf.TensorSpec([None, None, 3], tf.uint8)
  data = [tf.io.read_file(f) for f in files]
  data_q97 = [tf.io.read_file(f) for f in photos.first(folder_q97, count)]
  seeds = [tf.constant([0, i], tf.int64) for i in range(len(files))]

  @tf.function
  def window(d, s):  # the crop box inception_crop draws: [y, x, height, width]
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.image.extract_jpeg_shape(d), tf.zeros([0, 0, 4]), seed=s, area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True)
    return tf.stack([begin[0], begin[1], size[0], size[1]])
  windows = [window(d, s) for d, s in zip(data, seeds)]
  decode_window = tf.function(lambda d, w: tf.image.decode_and_crop_jpeg(d, w, channels=3))
  decode = tf.function(lambda d: tf.io.decode_jpeg(d, channels=3))
  crops = [decode_window(d, w) for d, w in zip(data, windows)]
  tf_resize = tf.function(lambda x: tf.cast(tf.clip_by_value(tf.round(
      tf.image.resize(x, [224, 224], antialias=True)), 0, 255), tf.uint8), input_signature=[u8])
  our_resize = tf.function(lambda x: ops._resize(x, 224, 224), input_signature=[u8])  # noqa: SLF001
  outs = [our_resize(x) for x in crops]
  batch = tf.stack(outs[:64])
  u = aa.batch_uniforms(tf.constant([[0, i] for i in range(64)], tf.int64), aa.AUTOAUGMENT_DRAWS)
  each = lambda xs: [(x,) for x in xs]  # noqa: E731
  rows = {
      'call overhead (an empty traced function)': _cpu_ms(tf.function(lambda x: x, input_signature=[u8]), each(outs)),
      'read the file': _cpu_ms(tf.function(tf.io.read_file), each(tf.constant(f) for f in files)),
      'JPEG header + crop box': _cpu_ms(window, list(zip(data, seeds))),
      'decode the crop window (decode_and_crop_jpeg)': _cpu_ms(decode_window, list(zip(data, windows))),
      'decode the crop window, the same images at quality 97': _cpu_ms(decode_window, list(zip(data_q97, windows))),
      'decode the whole JPEG (decode_jpeg)': _cpu_ms(decode, each(data)),
      'decode the whole JPEG, quality 97': _cpu_ms(decode, each(data_q97)),
      'resize the window to 224, before: tf.image.resize (antialiased)': _cpu_ms(tf_resize, each(crops)),
      'resize the window to 224, now: ops._resize (the same pixels)': _cpu_ms(our_resize, each(crops)),
      'flip (tf.reverse)': _cpu_ms(tf.function(lambda x: tf.reverse(x, [1]), input_signature=[u8]), each(outs)),
      'the whole op, one image (inception_crop(224)|flip_lr)': _cpu_ms(tf.function(ops.build(spec_of('rrc')).__call__),
                                                                      list(zip(data, seeds))),
      'AutoAugment ImageNet policy, per image of a batch of 64': _cpu_ms(
          tf.function(lambda x: aa.autoaugment_batch(x, u, 'imagenet')), [(batch,)] * 5) / 64,
  }
  # Each op of the ImageNet policy on every image of the batch (magnitude 7): where the policy's time goes.
  rand = tf.random.stateless_uniform([64, 2], [0, 0])
  for name in sorted({op for sub in aa.POLICIES['imagenet'] for op, _, _ in sub}):
    run = tf.function(lambda x, name=name: aa._run_op(  # noqa: SLF001
        name, x, tf.constant(7.0, tf.float64), rand, 'cifar'))
    rows[f'AutoAugment op {name}, on every image of the batch'] = _cpu_ms(run, [(batch,)] * 5) / 64
  return {'rows': rows, 'mean_window_px': sum(int(x.shape[0]) * int(x.shape[1]) for x in crops) / len(crops)}


def run_pinned(cmd: list[str], cores: int) -> dict:
  """Runs `cmd` in a process pinned to the first `cores` of this process's cores; its last stdout line, JSON."""
  cpus = sorted(os.sched_getaffinity(0))[:cores]
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
  if out.returncode:
    raise RuntimeError(f'{cmd} failed:\n{out.stderr[-3000:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])


def measure(side: str, pipeline: str, cores: int, a) -> dict:
  if side == 'ours':
    cmd = [sys.executable, os.path.abspath(__file__), f'--worker={pipeline}', f'--out={a.out}', f'--images={a.images}']
  else:
    cmd = [a.torch_python, '-m', 'bench.torch_input', f'--folder={folder_of(a.out, pipeline)}/train',
           f'--pipeline={PIPELINES[pipeline][1]}',
           f'--images={a.images}', f'--batch={BATCH}', f'--workers={cores}', f'--skip={SKIP}']
  return run_pinned(cmd, cores)


def table(results: dict, a, loads: dict) -> str:
  """Per pipeline and core count: medians (min–max) of each side's images/s, per core, the paired ratio, and
  images per CPU-second (the work per image, less sensitive to the machine's other load)."""
  rows = ['| pipeline | cores | ours images/s | ours per core | torchvision images/s | torchvision per core | '
          'ours / torchvision | images per CPU-s, ours / torchvision | 1-min load before → after |',
          '|---|---|---|---|---|---|---|---|---|']
  for p in a.pipelines:
    for n in a.cores:
      o, t = ([r['images_per_s'] for r in results[p, n, side]] for side in ('ours', 'torch'))
      oc, tc = (statistics.median(r['images_per_cpu_s'] for r in results[p, n, side]) for side in ('ours', 'torch'))
      ratio = [x / y for x, y in zip(o, t)]
      mo, mt = statistics.median(o), statistics.median(t)
      rows.append(f'| {p} | {n} | {mo:,.0f} ({min(o):,.0f}–{max(o):,.0f}) | {mo / n:,.0f} | {mt:,.0f} '
                  f'({min(t):,.0f}–{max(t):,.0f}) | {mt / n:,.0f} | {statistics.median(ratio):.2f} '
                  f'({min(ratio):.2f}–{max(ratio):.2f}) | {oc:,.0f} / {tc:,.0f} | {loads[p, n][0]:.1f} → '
                  f'{loads[p, n][1]:.1f} |')
  return '\n'.join(rows)


def profile_table(a) -> str:
  """Where the time of RRC + flip goes, each side's stages in CPU ms per image, one core."""
  folder = folder_of(a.out, 'rrc')
  ours_rows = run_pinned([sys.executable, os.path.abspath(__file__), '--worker=profile', f'--out={a.out}'], 1)
  tv_rows = run_pinned([a.torch_python, '-m', 'bench.torch_input', f'--folder={folder}', '--pipeline=rrc',
                        f'--profile={a.out}/photos_q97'], 1)
  rows = ['| side | stage (one thread, CPU ms per image, images 0-299) | ms |', '|---|---|---|']
  for side, r in (('ours', ours_rows), ('torchvision', tv_rows)):
    rows += [f'| {side} | {k.replace("|", chr(92) + "|")} | {v:.3f} |' for k, v in r['rows'].items()]
  return '\n'.join(rows) + f'\n\nThe crop windows average {ours_rows["mean_window_px"]:,.0f} px.'


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--photos', type=int, default=3000, help='distinct JPEGs in the image folder')
  ap.add_argument('--images', type=int, default=2048, help='images timed per measurement')
  ap.add_argument('--repeats', type=int, default=3)
  ap.add_argument('--cores', default='1,2')
  ap.add_argument('--pipelines', default=','.join(PIPELINES))
  ap.add_argument('--torch_python', default=sys.executable, help='python with torch and torchvision')
  ap.add_argument('--out', default=os.path.join(ROOT, 'bench', 'out'))
  ap.add_argument('--no_record', action='store_true', help='print the table only')
  ap.add_argument('--worker', help=argparse.SUPPRESS)  # internal: one measurement of ours, in a pinned process
  a = ap.parse_args()
  if a.worker:
    if a.worker == 'profile':
      out = profile_ours(folder_of(a.out, 'rrc'), os.path.join(a.out, 'photos_q97'))
    else:
      out = ours(folder_of(a.out, a.worker), a.worker, a.images)
    print(json.dumps(out))
    return
  most = len(os.sched_getaffinity(0))
  try:
    a.cores = [int(n) for n in a.cores.split(',')]
  except ValueError:
    a.cores = [0]
  a.pipelines = a.pipelines.split(',')
  if [p for p in a.pipelines if p not in PIPELINES]:
    cli.usage_error(f'--pipelines={",".join(a.pipelines)}; allowed: a comma-separated subset of '
                    f'{",".join(PIPELINES)}')
  if not all(1 <= n <= most for n in a.cores):
    cli.usage_error(f'--cores: allowed: comma-separated core counts from 1 to {most} (the cores this process may '
                    'use)')
  if a.repeats < 1 or a.images < BATCH or a.images + (SKIP + 1) * BATCH > a.photos:
    cli.usage_error(f'--images={a.images}, --photos={a.photos}, --repeats={a.repeats}; allowed: repeats >= 1, '
                    f'images >= {BATCH} and photos >= images + {(SKIP + 1) * BATCH} (every measurement within one '
                    'pass over the files)')
  stats = {p: photos.write(folder_of(a.out, p), a.photos, short_side=PIPELINES[p][2]) for p in a.pipelines}
  stats['profile'] = photos.write(os.path.join(a.out, 'photos_q97'), 300, quality=97)
  results = {(p, n, s): [] for p in a.pipelines for n in a.cores for s in ('ours', 'torch')}
  loads, versions = {}, {}
  for p in a.pipelines:
    for n in a.cores:
      before = os.getloadavg()[0]
      for r in range(a.repeats):
        for side in (('ours', 'torch') if r % 2 == 0 else ('torch', 'ours')):
          out = measure(side, p, n, a)
          results[p, n, side].append(out)
          versions.update({k: v for k, v in out.items() if k in ('tensorflow', 'torch', 'torchvision')})
          print(f'{p} cores={n} {side}: {out["images_per_s"]:,.0f} images/s, {out["images_per_cpu_s"]:,.0f} per '
                f'CPU-s (load {os.getloadavg()[0]:.1f})', flush=True)
      loads[p, n] = (before, os.getloadavg()[0])
  text = table(results, a, loads)
  files = {json.dumps(st, sort_keys=True): st for st in stats.values()}.values()
  text += '\n\nFiles: ' + '; '.join(
      f'{st["files"]} JPEGs from {st["photographs"]} photographs' + (f' resized to a shorter side of '
      f'{st["short_side"]} px' if st['short_side'] else '') + f' at quality {st["quality"]}, mean '
      f'{st["mean_width"]}x{st["mean_height"]} px, {st["mean_kb"]} KB ({st["bytes_per_pixel"]} bytes per pixel)'
      for st in files)
  text += (f'. Ours: {", ".join(f"{p} `{spec_of(p)}`" for p in a.pipelines)}. Batch {BATCH}, {a.images} images '
           f'timed after {SKIP} batches, {a.repeats} repeats. torchvision side: torch {versions.get("torch")}, '
           f'torchvision {versions.get("torchvision")}, PIL, a DataLoader with one worker per core. Ours: tensorflow '
           f'{versions.get("tensorflow")}.')
  print(text, flush=True)
  profile = profile_table(a)
  print(profile)
  text += '\n\n' + profile
  if not a.no_record:
    common.append('ImageNet host pipeline per core: ours (tf.data) vs torchvision, photographs', text,
                  ('tensorflow', 'PIL'))


if __name__ == '__main__':
  main()
