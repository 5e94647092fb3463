"""Start-up cost of the image-folder check: TensorFlow's decodes (what training decodes with) vs PIL's (the check
before issue 25), on the same files.

    python bench/bench_image_check.py --files=300 --rounds=5

Writes `--files` JPEGs of each of two sizes (ImageNet-like 500x375 and CIFAR-like 32x32, smooth photo-like
content) under `--out`, then times, round after round (interleaved, so load changes hit every variant alike):
PIL's full decode of each file in a 4-thread pool (`max(4, cores)` threads, as the old check ran), and
`sources._check_images` (one parallel tf.data map) with the decodes of three spec families: any spec
(`tf.io.decode_image`), `inception_crop` (a JPEG's whole crop window through `decode_and_crop_jpeg`), and a
split read under both (ImageNet: inception_crop in training, resize_small in pp_eval), which decodes every JPEG
twice. Prints best and median milliseconds per file and appends them to bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from refine_jax.data import ops, sources  # noqa: E402

SIZES = {'500x375': (375, 500), '32x32': (32, 32)}
SPECS = {'TF, any spec (decode_image)': [''], 'TF, inception_crop (crop window)': ['inception_crop(224)'],
         'TF, both (2 decodes a JPEG)': ['inception_crop(224)', 'resize_small(256)']}


def photo(h: int, w: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  img = np.stack([128 + 100 * np.sin(x / (17 + seed % 7) + c) * np.cos(y / 23 - c) for c in range(3)], -1)
  return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def write(root: str, n: int, hw: tuple[int, int]) -> list[str]:
  from PIL import Image
  os.makedirs(root, exist_ok=True)
  paths = [os.path.join(root, f'{i}.jpg') for i in range(n)]
  for i, p in enumerate(paths):
    if not os.path.exists(p):
      Image.fromarray(photo(*hw, i)).save(p, quality=90)
  return paths


def pil_check(path: str):
  """The check before issue 25 (sources._check_image then): PIL decodes the whole file."""
  from PIL import Image
  with Image.open(path) as im:
    im.load()
    return None, (im.height, im.width)


def pil_all(paths: list[str]) -> list:
  with concurrent.futures.ThreadPoolExecutor(max(4, os.cpu_count() or 1)) as pool:
    return list(pool.map(pil_check, paths))


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--files', type=int, default=300, help='files of each size')
  ap.add_argument('--rounds', type=int, default=5)
  ap.add_argument('--out', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'out', 'image_check'))
  a = ap.parse_args()
  sets = {name: write(os.path.join(a.out, name), a.files, hw) for name, hw in SIZES.items()}
  variants = {'PIL (the check before)': pil_all}
  for name, specs in SPECS.items():
    decoders = ops.decoders(specs)
    variants[name] = lambda paths, decoders=decoders: sources._check_images(paths, decoders)  # noqa: SLF001
  for fn in variants.values():  # warm-up: imports, tracing
    fn(sets['32x32'][:16])
  times: dict = {}
  for _ in range(a.rounds):
    for size, paths in sets.items():
      for name, fn in variants.items():
        t = time.perf_counter()
        out = fn(paths)
        times.setdefault((size, name), []).append((time.perf_counter() - t) / len(paths) * 1e3)
        assert all(why is None and hw == SIZES[size] for why, hw in out), name
  rows = [f'| files | check | ms per file, best of {a.rounds} | median | vs PIL (best) |', '|---|---|---|---|---|']
  for size in sets:
    pil = min(times[(size, 'PIL (the check before)')])
    for name in variants:
      v = times[(size, name)]
      rows.append(f'| {a.files} JPEGs {size} | {name} | {min(v):.3f} | {np.median(v):.3f} | {min(v) / pil:.2f} |')
  table = '\n'.join(rows)
  print(table)
  common.append('Image-folder start-up check: TensorFlow decodes vs PIL', table, ('tensorflow', 'PIL', 'numpy'))


if __name__ == '__main__':
  main()
