"""At the phase boundary the augmentation switches off: R̂aug falls toward R̂ after the switch.

Digits learns in seconds on a CPU, so the model is past chance when the switch comes (on a few hundred CIFAR
steps a tiny model is still near chance, where clean and augmented losses coincide anyway).
"""
import pytest

from tests.conftest import read_rows, run_main

AUGMENTED = {
    'cutmix': ['--config.phases.augmented.mix.kind=cutmix', '--config.phases.augmented.mix.prob=1.0'],
    'autoaugment_cutout': ['--config.phases.augmented.mix.kind=none',
                           '--config.phases.augmented.pp=pad_crop(16,2)|autoaugment("cifar10")|cutout(8)'],
}


@pytest.mark.parametrize('kind', sorted(AUGMENTED))
def test_switch_to_standard_augmentation_closes_the_gap(kind, tmp_path):
  w = str(tmp_path / 'run')
  run_main('digits_demo.py', w, *AUGMENTED[kind], '--config.phases.augmented.epochs=10',
           '--config.phases.augmented.lr.boundaries_epochs=(8,)', '--config.phases.refine.epochs=3',
           '--config.eval_every_epochs=1', '--config.log_every_steps=1000')
  rows = read_rows(w)
  aug = [r for r in rows if r['phase'] == 'augmented']
  ref = [r for r in rows if r['phase'] == 'refine']
  assert len(aug) == 10 and len(ref) == 3 and aug[-1]['step'] == 220
  gap = lambda r: r['train_aug_loss'] - r['train_clean_loss']
  late = aug[5:]
  # Intensive augmentation: the augmented loss is clearly above the clean one ...
  assert all(gap(r) > 0.1 for r in late), [gap(r) for r in aug]
  # ... after the switch to pad/crop the two nearly meet, and the clean loss falls.
  assert all(abs(gap(r)) < 0.3 * gap(aug[-1]) for r in ref), ([gap(r) for r in aug], [gap(r) for r in ref])
  assert ref[-1]['train_clean_loss'] < aug[-1]['train_clean_loss']
  assert ref[0]['lr'] == pytest.approx(aug[-1]['lr'])
