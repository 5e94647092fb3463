"""Benchmark JPEGs that decode like ImageNet's: windows of real photographs at ImageNet's sizes, quality 90.

ImageNet's training JPEGs are mostly 400-500 px wide and 333-375 px high (a longer side of 500 is the common
case), baseline 4:2:0, about 110 KB each. CIFAR images upscaled to 256 px (what `bench_input.py` writes) are
smooth and small and decode far faster. Here each file is a random window of one of the photographs bundled
with scikit-learn (china, flower) and scikit-image (astronaut, chelsea, coffee, rocket, hubble_deep_field),
resized to a random ImageNet-like size (width 400-500, height 333-375; one in eight turned portrait), mirrored
at random, and saved by PIL at quality 90 (4:2:0): every file distinct. Made on the fly, never committed.
"""
from __future__ import annotations

import json
import math
import os
from typing import Optional

import numpy as np


def photographs() -> list[np.ndarray]:
  """The bundled colour photographs, uint8 HxWx3 (scikit-image is in the `bench` extra)."""
  from skimage import data
  from sklearn.datasets import load_sample_images
  return [*load_sample_images().images, data.astronaut(), data.chelsea(), data.coffee(), data.rocket(),
          data.hubble_deep_field()]


def _window(photo: np.ndarray, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
  """A random (left, top, right, bottom) box of aspect w/h covering 50-100 % of the largest such box."""
  ph, pw = photo.shape[:2]
  s = min(ph / h, pw / w) * math.sqrt(rng.uniform(0.5, 1.0))
  bh, bw = h * s, w * s
  y, x = rng.uniform(0, ph - bh), rng.uniform(0, pw - bw)
  return round(x), round(y), round(x + bw), round(y + bh)


def first(root: str, count: int) -> list[str]:
  """The paths of images 0..count-1 of a folder `write` made (the same windows in every folder it makes)."""
  paths = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, 'train')) for f in fs if f.endswith('.jpg')]
  return sorted(paths, key=os.path.basename)[:count]


def write(root: str, count: int, classes: int = 10, seed: int = 0, short_side: Optional[int] = None,
          quality: int = 90) -> dict:
  """`count` JPEGs as ROOT/train/class_k/NNNNN.jpg, once; returns their statistics (mean width, height,
  kilobytes), kept in ROOT/stats{count}.json, whose presence marks the files as written.

  `short_side`: the same images resized (Lanczos) so that their shorter side has that length, as fast ImageNet
  loaders store their data (256-320 px). `quality`: PIL's JPEG quality (the same windows: a higher one gives
  larger files, to measure what the bytes of a file cost to decode)."""
  from PIL import Image
  stats_file = os.path.join(root, f'stats{count}.json')
  if os.path.exists(stats_file):
    with open(stats_file) as f:
      return json.load(f)
  photos = photographs()
  rng = np.random.default_rng(seed)
  sizes = []
  for i in range(count):
    photo = photos[i % len(photos)]
    w, h = int(rng.integers(400, 501)), int(rng.integers(333, 376))
    im = Image.fromarray(photo).crop(_window(photo, h, w, rng)).resize((w, h), Image.LANCZOS)
    if rng.uniform() < 0.5:
      im = im.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.uniform() < 1 / 8:
      im = im.transpose(Image.ROTATE_90)
    if short_side:
      f = short_side / min(im.size)
      im = im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
    d = os.path.join(root, 'train', f'class_{i % classes}')
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f'{i:05d}.jpg')
    im.save(path, quality=quality)
    sizes.append((im.width, im.height, os.path.getsize(path)))
  w, h, b = (float(v) for v in np.mean(sizes, axis=0))
  per_pixel = float(np.mean([kb / (x * y) for x, y, kb in sizes]))
  stats = {'files': count, 'photographs': len(photos), 'short_side': short_side, 'quality': quality,
           'mean_width': round(w), 'mean_height': round(h), 'mean_kb': round(b / 1000, 1),
           'bytes_per_pixel': round(per_pixel, 3)}
  with open(stats_file, 'w') as f:
    json.dump(stats, f)
  return stats
