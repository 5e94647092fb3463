"""Every config in configs/ loads, validates, and trains a few steps on the shared CIFAR-10 (tiny overrides).

What each config sets is held against the paper in tests/test_paper_configs.py; this file checks that the configs
run. Expectations changed for the paper (issue 13): cifar100-only configs (Table 3, the gradual variant) have no
CIFAR-10 twin, and twins differ in `paper_row` as well as `dataset`.
"""
import glob
import importlib
import os

import pytest

from refine_jax import config as config_lib
from refine_jax import registries
from refine_jax import train
from tests.conftest import ROOT, TFDS_DIR, needs_cifar

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not os.path.basename(p).startswith(('_', 'common')))


def _load(name):
  return importlib.import_module(f'configs.{name}').get_config()


def test_every_config_is_listed_in_the_configs_doc():
  doc = open(os.path.join(ROOT, 'docs', 'configs.md')).read()
  missing = [n for n in CONFIGS if f'{n}.py' not in doc]
  assert not missing, missing


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates_and_documents_its_command(name):
  c = _load(name)
  if c.dataset != 'digits':
    c.data_dir = TFDS_DIR
  if 'augmented' not in c.phase_order and not c.init_from:  # refines a given model: the user names the file
    c.init_from = '/given/by/the/user/resnet50.pt'
  config_lib.validate(c, registries.default())
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert f'--config=configs/{name}.py' in doc and 'refine_jax.main' in doc


# Each model family shrunk to a CPU-sized member of the same class (ResNet-50/101 have no width knob: their
# ImageNet configs train resnet_tiny here, which still runs their data ops, mixing and schedules).
TINY_MODEL = {
    'preact_resnet18': {'width': 8},
    'wide_resnet28_10': {'depth': 10, 'widen_factor': 1},
    'shake_shake26_2x96d': {'depth': 8, 'base_channels': 4},
    'resnet_tiny': {'width': 8},
}


def _tiny(c):
  """A few steps of the config's own phases, augmentations and schedules on a tiny model and split."""
  c.dataset, c.data_dir, c.image_size = 'cifar10', TFDS_DIR, 32
  c.train_split, c.eval_split = 'train[:96]', 'test[:64]'
  if c.model not in TINY_MODEL:
    c.model = 'resnet_tiny'
  kw = dict(c.model_kwargs)
  kw.update(TINY_MODEL[c.model])
  c.model_kwargs = kw
  c.batch_size, c.eval_batch_size, c.diag_examples = 16, 32, 32
  for p in c.phase_order:  # 64 px and ImageNet-style ops at CIFAR size
    pp = c.phases[p].pp.replace('(64,', '(32,').replace('inception_crop(224)', 'inception_crop(32)')
    c.phases[p].pp = pp.replace('cutout(32)', 'cutout(16)')
    c.phases[p].steps = 3
    c.phases[p].lr.boundaries_epochs = ()
  c.pp_eval = c.pp_eval.replace('resize_small(256)|center_crop(224)', 'resize_small(36)|center_crop(32)')
  c.eval_every_steps, c.checkpoint_every_steps = 3, 3
  return c


def _features(name):
  """What a few tiny steps exercise: the model family, the data ops and mixing, the schedule kinds."""
  c = _tiny(_load(name))
  ops = tuple((p, c.phases[p].pp, c.phases[p].mix.kind) for p in c.phase_order)
  return {('model', c.model), ('ops', c.pp_eval, ops), ('lr', tuple(c.phases[p].lr.schedule for p in c.phase_order))}


def _representatives():
  """A covering set: every model family, every (ops, mixing) program and every schedule kind trains.

  cifar100_* configs equal their cifar10_* twins but for `dataset` (checked below); with the dataset overridden
  to the shared CIFAR-10 they would train bitwise the same steps. Model family and program are independent
  code paths (the model only sees arrays, the schedules only the step), so each is covered once.
  """
  covered, out = set(), []
  for n in CONFIGS:
    if n == 'digits_demo' or n.startswith('cifar100_'):
      continue
    if 'augmented' not in _load(n).phase_order:  # needs a given ResNet file: trained in tests/test_export.py
      continue
    f = _features(n)
    if not f <= covered:
      covered |= f
      out.append(n)
  return out


TRAINED = _representatives()


@pytest.mark.parametrize('name', [n for n in CONFIGS if n.startswith('cifar100_')
                                  and n.replace('cifar100_', 'cifar10_') in CONFIGS])
def test_cifar100_configs_differ_from_their_twin_only_in_dataset(name):
  """... and in the paper row they name (the same row's CIFAR-100 column)."""
  a, b = _load(name).to_dict(), _load(name.replace('cifar100_', 'cifar10_')).to_dict()
  diffs = {d[0]: d[1:] for d in config_lib.diff(a, b)}
  assert a['dataset'] == 'cifar100' and set(diffs) <= {'dataset', 'paper_row'} and 'dataset' in diffs
  assert (a['paper_row'] or '') == (b['paper_row'] or '').replace('/cifar10/', '/cifar100/')


@needs_cifar
@pytest.mark.parametrize('name', TRAINED)
def test_config_trains_a_few_steps_on_cifar10(name, tmp_path):
  c = _tiny(_load(name))
  s = train.train_and_evaluate(c, str(tmp_path))
  rows = [r for r in open(tmp_path / 'metrics.jsonl')]
  assert len(rows) == len(c.phase_order)
  assert set(s['phases']) == set(c.phase_order)
  for ph in s['phases'].values():
    assert 0.0 <= ph['last_top1'] <= 1.0 and ph['last_train_clean_loss'] > 0
