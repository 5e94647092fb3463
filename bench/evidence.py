"""A small Table 1 on real CIFAR-10 that fits a 2-core CPU: standard vs Mixup vs Mixup + refinement vs
CutMix + refinement at equal total epochs, several seeds, with clean and augmented training losses.

    python bench/evidence.py --data_dir=../shared/data/tensorflow_datasets [--seeds=0,1,2] [--epochs=12]
        [--refine_epochs=2] [--train_split=train[:5000]] [--root=bench/out/evidence]

Every run is `python -m refine_jax.main` on configs/cifar10_preact18_*.py with `resnet_tiny`, a training
subset, the full 10,000-image test split and a short multistep schedule (÷10 at 60% and 85% of the augmented
epochs; refinement continues at the final rate). The table reports mean ± std over seeds of the final test
top-1 and of the last R̂ / R̂aug; every run is listed, none dropped.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench import common  # noqa: E402

ARMS = {  # name: (config, refine?)
    'standard': ('cifar10_preact18_standard.py', False),
    'Mixup': ('cifar10_preact18_mixup.py', False),
    'Mixup + refinement': ('cifar10_preact18_mixup.py', True),
    'CutMix + refinement': ('cifar10_preact18_cutmix.py', True),
}


def command(arm: str, seed: int, a) -> tuple[list[str], str]:
  config, refine = ARMS[arm]
  aug_epochs = a.epochs - a.refine_epochs if refine else a.epochs
  b = (round(0.6 * aug_epochs), round(0.85 * aug_epochs))
  workdir = os.path.join(a.root, f'{arm.replace(" + ", "_").replace(" ", "_").lower()}_seed{seed}')
  cmd = [sys.executable, '-m', 'refine_jax.main', f'--config=configs/{config}', f'--workdir={workdir}',
         f'--config.data_dir={a.data_dir}', '--config.model=resnet_tiny', f'--config.train_split={a.train_split}',
         f'--config.seed={seed}', f'--config.phases.augmented.epochs={aug_epochs}',
         f'--config.phases.augmented.lr.boundaries_epochs={b}', '--config.eval_every_epochs=2',
         '--config.diag_examples=2000', '--config.log_every_steps=1000']
  cmd += ([f'--config.phases.refine.epochs={a.refine_epochs}'] if refine else ['--config.phase_order=augmented'])
  return cmd, workdir


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument('--data_dir', default=os.path.join(os.path.dirname(ROOT), 'shared/data/tensorflow_datasets'))
  ap.add_argument('--seeds', default='0,1,2')
  ap.add_argument('--epochs', type=int, default=12)
  ap.add_argument('--refine_epochs', type=int, default=2)
  ap.add_argument('--train_split', default='train[:5000]')
  ap.add_argument('--root', default=os.path.join(ROOT, 'bench', 'out', 'evidence'))
  a = ap.parse_args()
  seeds = [int(s) for s in a.seeds.split(',')]
  results = {}
  for arm in ARMS:
    for seed in seeds:
      cmd, w = command(arm, seed, a)
      print(' '.join(cmd), flush=True)
      subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
      with open(os.path.join(w, 'summary.json')) as f:
        s = json.load(f)
      last = s['phases']['refine' if 'refine' in s['phases'] else 'augmented']
      aug_end = s['phases']['augmented']
      results.setdefault(arm, []).append((s['final_top1'], aug_end['last_train_clean_loss'],
                                          aug_end['last_train_aug_loss'], last['last_train_clean_loss'],
                                          last['last_train_aug_loss']))

  def ms(v):
    return f'{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}'
  rows = [f'| arm ({a.epochs} epochs, resnet_tiny, {a.train_split}, n={len(seeds)} seeds) | final test top-1 | '
          'end of augmented phase R̂ / R̂aug | end of run R̂ / R̂aug | per-seed top-1 |', '|---|---|---|---|---|']
  for arm, r in results.items():
    cols = list(zip(*r))
    rows.append(f'| {arm} | {ms(cols[0])} | {ms(cols[1])} / {ms(cols[2])} | {ms(cols[3])} / {ms(cols[4])} | '
                + ', '.join(f'{v:.4f}' for v in cols[0]) + ' |')
  table = '\n'.join(rows)
  print(table)
  common.append('Evidence: small Table 1 on CIFAR-10 (CPU)', table, ('jax', 'flax', 'tensorflow'))


if __name__ == '__main__':
  main()
