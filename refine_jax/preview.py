"""What the model sees: a PNG grid of one batch as each phase's augmentation leaves it.

    python -m refine_jax.preview --config=configs/cifar10_preact18_cutmix.py --out=grid.png \
        --config.data_dir=../shared/data/tensorflow_datasets

One row per phase and stage: the phase's host ops (pp) alone, then after the on-device mixing of the phase's
first step (Mixup / CutMix; Manifold Mixup mixes hidden activations, so its input row equals the host row).
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from refine_jax import config as config_lib
from refine_jax import plan as plan_lib
from refine_jax import registries
from refine_jax.augment import mixing
from refine_jax.data import ops as ops_lib
from refine_jax.data import pipeline, sources

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file with get_config().')
_OUT = flags.DEFINE_string('out', 'preview.png', 'Output PNG path.')
_N = flags.DEFINE_integer('num', 8, 'Images per row.')


def preview_rows(config, num: int) -> list[tuple[str, np.ndarray]]:
  """[(label, uint8 [num, H, W, 3])] for each phase: host-augmented, then mixed on device."""
  split = sources.load(config, config.train_split, train=True)
  plan = plan_lib.resolve(config, max(pipeline.steps_per_epoch(split, config.batch_size), 1), ops_lib.build)
  rows = []
  for p in plan.phases:
    op = p.host_ops(float(plan.aug_prob(p.start)))
    batch = next(pipeline.train_batches(split, lambda e: op, batch=config.batch_size,
                                        steps_per_epoch=plan.steps_per_epoch, seed=plan.seed,
                                        start_step=p.start))
    imgs = batch['image'][:num]
    rows.append((f'{p.name}: host "{p.pp}"', imgs))
    key = jax.random.fold_in(jax.random.PRNGKey(plan.seed), p.start)
    x = jnp.asarray(batch['image'], jnp.float32)
    m = mixing.draw(key, p.mix, plan.mix_gamma(p.start), plan.mix_prob(p.start), x.shape[0], x.shape[1:3])
    mixed = np.clip(np.round(np.asarray(m.inputs(x))), 0, 255).astype(np.uint8)[:num]
    lam = np.asarray(m.lam)[:num]
    rows.append((f'{p.name}: device {p.mix.kind} (λ {lam.min():.2f}..{lam.max():.2f})', mixed))
  return rows


def save_grid(rows: list[tuple[str, np.ndarray]], out: str) -> None:
  """One row of thumbnails per label. A long label (an AutoAugment op string) wraps above its row; the
  thumbnails keep their size (no layout pass that shrinks them to make room for the text)."""
  import textwrap
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  n = max(len(r[1]) for r in rows)
  thumb, line, font = 1.2, 0.15, 8  # inches per thumbnail, per label line; label points
  width = 1.3 * n
  labels = [textwrap.fill(label, max(20, int(width * 72 / (font * 0.6)))) for label, _ in rows]
  title = line * max(l.count('\n') + 1 for l in labels) + 0.05
  height = len(rows) * (thumb + title) + 0.1
  fig, axes = plt.subplots(len(rows), n, figsize=(width, height), squeeze=False,
                           gridspec_kw=dict(left=0.01, right=0.99, bottom=0.05 / height, top=1 - title / height,
                                            wspace=0.05, hspace=title / thumb))
  for i, (label, (_, imgs)) in enumerate(zip(labels, rows)):
    for j in range(n):
      ax = axes[i][j]
      ax.axis('off')
      if j < len(imgs):
        ax.imshow(imgs[j], interpolation='nearest')
    axes[i][0].set_title(label, loc='left', fontsize=font)
  fig.savefig(out, dpi=100)
  plt.close(fig)


def main(argv) -> None:
  del argv
  config = _CONFIG.value
  try:
    config_lib.validate(config, registries.default())
  except config_lib.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  save_grid(preview_rows(config, _N.value), _OUT.value)
  print(_OUT.value)


if __name__ == '__main__':
  from refine_jax import cli
  app.run(main, flags_parser=cli.parse_flags)
