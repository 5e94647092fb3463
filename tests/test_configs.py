"""Every config in configs/ loads, validates, and trains a few steps on the shared CIFAR-10 (tiny overrides)."""
import glob
import importlib
import os

import pytest

from refine_jax import config as config_lib
from refine_jax import train
from tests.conftest import ROOT, TFDS_DIR, needs_cifar

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not os.path.basename(p).startswith(('_', 'common')))


def _load(name):
  return importlib.import_module(f'configs.{name}').get_config()


def test_every_config_is_listed_in_the_readme():
  readme = open(os.path.join(ROOT, 'README.md')).read()
  missing = [n for n in CONFIGS if f'{n}.py' not in readme]
  assert not missing, missing


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates_and_documents_its_command(name):
  c = _load(name)
  if c.dataset != 'digits':
    c.data_dir = TFDS_DIR
  config_lib.validate(c)
  doc = importlib.import_module(f'configs.{name}').__doc__
  assert f'--config=configs/{name}.py' in doc and 'refine_jax.main' in doc


def _tiny(c):
  """A few steps of the config's own phases, augmentations and schedules on a tiny model and split."""
  c.dataset, c.data_dir, c.image_size = 'cifar10', TFDS_DIR, 32
  c.train_split, c.eval_split = 'train[:96]', 'test[:64]'
  c.model, c.model_kwargs = 'resnet_tiny', {'width': 8}
  c.batch_size, c.eval_batch_size, c.diag_examples = 16, 32, 32
  if 'inception_crop' in c.phases[c.phase_order[0]].pp:  # ImageNet-style ops at CIFAR size
    for p in c.phase_order:
      c.phases[p].pp = 'decode|inception_crop(32)|flip_lr'
    c.pp_eval = 'decode|resize_small(36)|center_crop(32)'
  for p in c.phase_order:
    c.phases[p].steps = 3
    c.phases[p].lr.boundaries_epochs = ()
  c.eval_every_steps, c.checkpoint_every_steps = 3, 3
  return c


# cifar100_* configs equal their cifar10_* twins but for `dataset` (checked below); with the dataset
# overridden to the shared CIFAR-10 they would train bitwise the same steps, so the twins stand for them.
TRAINED = [n for n in CONFIGS if n != 'digits_demo' and not n.startswith('cifar100_')]


@pytest.mark.parametrize('name', [n for n in CONFIGS if n.startswith('cifar100_')])
def test_cifar100_configs_differ_from_their_twin_only_in_dataset(name):
  a, b = _load(name).to_dict(), _load(name.replace('cifar100_', 'cifar10_')).to_dict()
  assert [d[0] for d in config_lib.diff(a, b)] == ['dataset'] and a['dataset'] == 'cifar100'


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
