"""Host input pipeline throughput: ours (tf.data) against a PyTorch DataLoader with torchvision, side by side.

    python bench/bench_input.py --data_dir=../shared/data/tensorflow_datasets [--images=20000] [--repeats=3]
        [--torch_python=BENCH_ENV/bin/python]

CIFAR-10: the training images are decoded into memory first (as training does), then each pipeline runs for
`--images` images: ours through `refine_jax.data.pipeline.train_batches` — the very code the trainer uses —
and, with `--torch_python` (an environment with torch and torchvision, see bench/README.md), a DataLoader with
os.cpu_count() workers over the same uint8 images with torchvision's RandomCrop(32, 4) + RandomHorizontalFlip
(+ AutoAugment(CIFAR10) + Cutout(16)). ImageNet-style: `--jpegs` JPEGs (CIFAR images upscaled to 256 px) in an
image folder, decoded and random-resized-cropped to 224 + flipped, by our image_folder source and by
torchvision's ImageFolder. Pipelines alternate `--repeats` times; the table reports the best pass of each,
images/s per core, and our ratio to torchvision.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from configs import paper  # noqa: E402
from refine_jax.data import ops, pipeline  # noqa: E402

# name: (our op string, torchvision pipeline in bench/torch_input.py, data)
PIPES = {
    'standard (pad_crop + flip)': ('pad_crop(32,4)|flip_lr', 'standard', 'cifar'),
    'standard + AutoAugment(cifar10) + Cutout(16)':
        ('pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)', 'autoaugment', 'cifar'),
    'JPEG decode + random-resized-crop(224) + flip': ('inception_crop(224)|flip_lr', 'rrc', 'jpeg'),
}


def ours_images_per_s(split, spec: str, n: int, batch: int = 128) -> float:
  op = ops.build(spec)
  spe = split.num_examples_global // batch
  it = pipeline.train_batches(split, lambda e: op, batch=batch, steps_per_epoch=spe, seed=0, start_step=0)
  next(it)  # start-up (tracing, thread pools) is not throughput
  steps = min(n // batch, spe - 1)  # within the first epoch: a new epoch restarts the stream (rare at scale)
  t = time.perf_counter()
  for _ in range(steps):
    next(it)
  return steps * batch / (time.perf_counter() - t)


def torch_images_per_s(python: str, name: str, data: dict, n: int) -> tuple[float, str]:
  _, tv, kind = PIPES[name]
  src = [f'--npz={data["npz"]}'] if kind == 'cifar' else [f'--folder={data["jpeg_root"]}/train']
  out = subprocess.run([python, '-m', 'bench.torch_input', *src, f'--pipeline={tv}', f'--images={n}'],
                       cwd=ROOT, capture_output=True, text=True, check=True).stdout
  r = json.loads(out.strip().splitlines()[-1])
  return r['images_per_s'], f'torch {r["torch"]}, torchvision {r["torchvision"]}, {r["workers"]} workers'


def write_jpegs(images: np.ndarray, labels: np.ndarray, root: str, count: int) -> None:
  """The first `count` images, upscaled to 256 px, as ROOT/train/class_k/i.jpg (quality 90), once."""
  from PIL import Image
  marker = os.path.join(root, f'.done{count}')
  if os.path.exists(marker):
    return
  for i in range(count):
    d = os.path.join(root, 'train', f'class_{labels[i]}')
    os.makedirs(d, exist_ok=True)
    Image.fromarray(images[i]).resize((256, 256), Image.BILINEAR).save(os.path.join(d, f'{i}.jpg'), quality=90)
  open(marker, 'w').close()


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--data_dir', default=os.path.join(os.path.dirname(ROOT), 'shared/data/tensorflow_datasets'))
  ap.add_argument('--images', type=int, default=20000)
  ap.add_argument('--jpegs', type=int, default=5000, help='images in the JPEG folder (0: skip that pipeline)')
  ap.add_argument('--repeats', type=int, default=3)
  ap.add_argument('--torch_python', help='python of an environment with torch and torchvision')
  ap.add_argument('--out', default=os.path.join(ROOT, 'bench', 'out'))
  a = ap.parse_args()
  c = paper.get_config('dataset=cifar10,model=preact18,aug=standard')
  c.data_dir = a.data_dir
  split = common.train_split(c)
  data = {'npz': os.path.join(a.out, 'cifar_train.npz'), 'jpeg_root': os.path.join(a.out, 'jpegs')}
  os.makedirs(a.out, exist_ok=True)
  if a.torch_python:
    np.savez(data['npz'], images=split.images, labels=split.labels)
  splits = {'cifar': split}
  pipes = dict(PIPES)
  if a.jpegs:
    write_jpegs(split.images, split.labels, data['jpeg_root'], a.jpegs)
    c.dataset, c.data_dir, c.image_folder_skip_corrupt = 'image_folder', data['jpeg_root'], False
    splits['jpeg'] = common.train_split(c, tuple(v[0] for v in PIPES.values() if v[2] == 'jpeg'))
  else:
    pipes = {k: v for k, v in pipes.items() if v[2] != 'jpeg'}
  n_of = {'cifar': a.images, 'jpeg': min(a.images, a.jpegs - 256)}
  best = {(k, side): 0.0 for k in pipes for side in ('ours', 'torch')}
  torch_versions = ''
  for _ in range(a.repeats):
    for name, (spec, _, kind) in pipes.items():
      best[name, 'ours'] = max(best[name, 'ours'], ours_images_per_s(splits[kind], spec, n_of[kind]))
      if a.torch_python:
        v, torch_versions = torch_images_per_s(a.torch_python, name, data, n_of[kind])
        best[name, 'torch'] = max(best[name, 'torch'], v)
  cores = os.cpu_count()
  rows = [f'| pipeline | ours images/s (best of {a.repeats}) | ours per core | torchvision images/s | '
          'torchvision per core | ours / torchvision |', '|---|---|---|---|---|---|']
  for name in pipes:
    o, t = best[name, 'ours'], best[name, 'torch']
    tcols = f'{t:,.0f} | {t / cores:,.0f} | {o / t:.2f}' if t else '— | — | —'
    rows.append(f'| {name} | {o:,.0f} | {o / cores:,.0f} | {tcols} |')
  table = '\n'.join(rows)
  if torch_versions:
    table += f'\n\nPyTorch side: {torch_versions}; images {a.images} (CIFAR) / {n_of["jpeg"]} (JPEG).'
  print(table)
  common.append('Input pipeline: tf.data vs PyTorch DataLoader + torchvision (uint8 out, batch 128)', table,
                ('tensorflow',))


if __name__ == '__main__':
  main()
