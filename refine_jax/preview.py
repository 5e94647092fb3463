"""What the model sees: a PNG grid of one batch as each phase's augmentation leaves it.

    python -m refine_jax.preview --config=configs/cifar10_preact18_cutmix.py --out=grid.png \
        --config.data_dir=../shared/data/tensorflow_datasets

One batch, the one the run's first step trains on, through every row: per phase, its host ops (pp) alone, then
the on-device mixing its first step draws (the very keys, λ and partners of that step: `steps.step_keys`;
Manifold Mixup mixes hidden activations, so its input row equals the host row). Each mixed row's label gives λ
as drawn: the weight of the image shown over its partner's.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import config_flags

from refine_jax import cli

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file with get_config().')
_OUT = flags.DEFINE_string('out', 'preview.png', 'Output PNG path.')
_N = flags.DEFINE_integer('num', 8, 'Images per row.')


def preview_rows(plan, split, num: int) -> list[tuple[str, np.ndarray]]:
  """[(label, uint8 [num, H, W, 3])] for each phase: host-augmented, then mixed on device, all of one batch."""
  from refine_jax import steps
  from refine_jax.augment import mixing
  from refine_jax.data import pipeline
  spec, rows = plan.spec, []
  first = plan.phases[0].start
  for p in plan.phases:
    op = p.host_ops(float(plan.aug_prob(p.start)))
    batch = next(pipeline.train_batches(split, lambda e: op, batch=spec.batch_size,
                                        steps_per_epoch=plan.steps_per_epoch, seed=plan.seed, start_step=first))
    rows.append((f'{p.name}: host "{p.pp}"', batch['image'][:num]))
    x = jnp.asarray(batch['image'], jnp.float32)
    k_mix = steps.step_keys(plan.seed, p.start)[0]
    m = mixing.draw(k_mix, p.mix, plan.mix_gamma(p.start), plan.mix_prob(p.start), x.shape[0], x.shape[1:3])
    mixed = np.clip(np.round(np.asarray(m.inputs(x))), 0, 255).astype(np.uint8)[:num]
    rows.append((f'{p.name}: device {p.mix.kind} as step {p.start} draws it ({_lam_label(p.mix, m.lam[:num])})',
                 mixed))
  return rows


def _lam_label(mix, lam) -> str:
  lam = np.asarray(lam)
  if mix.kind == 'none':
    return 'no mixing'
  if np.all(lam == lam[0]):
    return f'λ = {lam[0]:.2f}: each image {lam[0]:.0%}, its partner {1 - lam[0]:.0%}'
  return 'λ per image: ' + ' '.join(f'{v:.2f}' for v in lam)


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
  from refine_jax import config as config_lib
  from refine_jax import prepare, registries
  config_lib.validate(_CONFIG.value, registries.light())  # the names and values that need no heavy import
  spec = prepare.spec_of(_CONFIG.value, devices=False)
  plan, train, _ = prepare.plan_and_splits(spec, check=False)
  save_grid(preview_rows(plan, train, _N.value), _OUT.value)
  print(_OUT.value)


if __name__ == '__main__':
  cli.run(main)
