"""Host input pipeline throughput on CIFAR-10: standard vs standard + AutoAugment + Cutout, side by side.

    python bench/bench_input.py --data_dir=../shared/data/tensorflow_datasets [--images=20000] [--repeats=3]

Images are decoded into memory first (as training does), then each pipeline runs through
`refine_jax.data.pipeline.train_batches` — the very code the trainer uses — for `--images` images, alternating
pipelines `--repeats` times; the table reports the best pass of each and the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from configs import common as cfg_common  # noqa: E402
from refine_jax.data import ops, pipeline, sources  # noqa: E402

PIPES = {
    'standard (pad_crop + flip)': 'pad_crop(32,4)|flip_lr',
    'standard + AutoAugment(cifar10) + Cutout(16)': 'pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)',
}


def images_per_s(split, spec: str, n: int, batch: int = 128) -> float:
  op = ops.build(spec)
  spe = split.num_examples // batch
  it = pipeline.train_batches(split, lambda e: op, local_batch=batch, steps_per_epoch=spe, seed=0, start_step=0)
  next(it)  # start-up (tracing, thread pools) is not throughput
  t = time.perf_counter()
  for _ in range(n // batch):
    next(it)
  return (n // batch) * batch / (time.perf_counter() - t)


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--data_dir', default='../shared/data/tensorflow_datasets')
  ap.add_argument('--images', type=int, default=20000)
  ap.add_argument('--repeats', type=int, default=3)
  a = ap.parse_args()
  c = cfg_common.get_config()
  c.data_dir = a.data_dir
  split = sources.load(c, 'train', train=True)
  best = {k: 0.0 for k in PIPES}
  for _ in range(a.repeats):
    for name, spec in PIPES.items():
      best[name] = max(best[name], images_per_s(split, spec, a.images))
  base = best['standard (pad_crop + flip)']
  rows = ['| pipeline | images/s (best of %d) | images/s per core | vs standard |' % a.repeats, '|---|---|---|---|']
  for name, v in best.items():
    rows.append(f'| {name} | {v:,.0f} | {v / os.cpu_count():,.0f} | {v / base:.2f} |')
  table = '\n'.join(rows)
  print(table)
  common.append('Input pipeline, CIFAR-10 (tf.data, uint8, batch 128)', table, ('tensorflow',))


if __name__ == '__main__':
  main()
