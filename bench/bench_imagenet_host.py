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

PIPELINES = ('rrc', 'rrc_autoaugment', 'eval')
BATCH = 256  # the ImageNet configs' batch_size: one GPU's host batch
SKIP = 2


def spec_of(pipeline: str) -> str:
  """The host ops the ImageNet configs run for `pipeline` (read from configs/paper.py, not restated)."""
  from configs import paper
  c = paper.get_config('dataset=imagenet,model=resnet50,aug=' + ('autoaugment' if pipeline == 'rrc_autoaugment'
                                                                    else 'standard'))
  return c.pp_eval if pipeline == 'eval' else c.phases.augmented.pp


def ours(folder: str, pipeline: str, images: int) -> dict:
  """Images/s of the trainer's own path over the image folder's `train` split (runs in the pinned process)."""
  from configs import common as cfg_common
  from refine_jax.data import ops
  from refine_jax.data import pipeline as pipeline_lib
  from refine_jax.data import sources
  c = cfg_common.get_config()
  c.dataset, c.data_dir, c.image_folder_skip_corrupt = 'image_folder', folder, False
  train = pipeline != 'eval'
  split = sources.load(c, 'train', train=train)
  op = ops.build(spec_of(pipeline))
  if train:
    it = pipeline_lib.train_batches(split, lambda e: op, batch=BATCH,
                                    steps_per_epoch=pipeline_lib.steps_per_epoch(split, BATCH), seed=0, start_step=0)
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


def run_pinned(cmd: list[str], cores: int) -> dict:
  """Runs `cmd` in a process pinned to the first `cores` of this process's cores; its last stdout line, JSON."""
  cpus = sorted(os.sched_getaffinity(0))[:cores]
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
  if out.returncode:
    raise RuntimeError(f'{cmd} failed:\n{out.stderr[-3000:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])


def measure(side: str, pipeline: str, cores: int, a) -> dict:
  folder = os.path.join(a.out, 'photos')
  if side == 'ours':
    cmd = [sys.executable, os.path.abspath(__file__), f'--worker={pipeline}', f'--out={a.out}', f'--images={a.images}']
  else:
    cmd = [a.torch_python, '-m', 'bench.torch_input', f'--folder={folder}/train', f'--pipeline={pipeline}',
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


def fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


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
    print(json.dumps(ours(os.path.join(a.out, 'photos'), a.worker, a.images)))
    return
  most = len(os.sched_getaffinity(0))
  try:
    a.cores = [int(n) for n in a.cores.split(',')]
  except ValueError:
    a.cores = [0]
  a.pipelines = a.pipelines.split(',')
  if [p for p in a.pipelines if p not in PIPELINES]:
    fail(f'--pipelines={",".join(a.pipelines)}; allowed: a comma-separated subset of {",".join(PIPELINES)}')
  if not all(1 <= n <= most for n in a.cores):
    fail(f'--cores: allowed: comma-separated core counts from 1 to {most} (the cores this process may use)')
  if a.repeats < 1 or a.images < BATCH or a.images + (SKIP + 1) * BATCH > a.photos:
    fail(f'--images={a.images}, --photos={a.photos}, --repeats={a.repeats}; allowed: repeats >= 1, images >= {BATCH} '
         f'and photos >= images + {(SKIP + 1) * BATCH} (every measurement within one pass over the files)')
  stats = photos.write(os.path.join(a.out, 'photos'), a.photos)
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
  text += (f'\n\nFiles: {stats["files"]} JPEGs from {stats["photographs"]} photographs, mean '
           f'{stats["mean_width"]}x{stats["mean_height"]} px, {stats["mean_kb"]} KB ({stats["bytes_per_pixel"]} bytes '
           f'per pixel). Batch {BATCH}, {a.images} images timed after {SKIP} batches, {a.repeats} repeats. '
           f'torchvision side: torch {versions.get("torch")}, torchvision {versions.get("torchvision")}, PIL, '
           'DataLoader with one worker per core. Ours: tensorflow ' + versions.get('tensorflow', '?') + '.')
  print(text)
  if not a.no_record:
    common.append('ImageNet host pipeline per core: ours (tf.data) vs torchvision, photographs', text,
                  ('tensorflow', 'PIL'))


if __name__ == '__main__':
  main()
