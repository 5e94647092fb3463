"""Bad input stops before any compute, names the field and the allowed values, and writes nothing."""
import os

import ml_collections
import pytest

from configs import digits_demo
from refine_jax import train
from refine_jax.config import ConfigError
from tests.conftest import TFDS_DIR, run_main


def _set(c, path, value):
  *parents, leaf = path.split('.')
  node = c
  for p in parents:
    node = node[p]
  node[leaf] = value


# (field path, bad value, words the error must contain: the field and the allowed values)
BAD = [
    ('dataset', 'cifar11', ['dataset', 'allowed', 'digits', 'cifar10']),
    ('model', 'resnet9000', ['model', 'allowed', 'resnet_tiny', 'preact_resnet18']),
    ('dtype', 'float8', ['dtype', 'float32', 'bfloat16']),
    ('batch_size', 0, ['batch_size', '>= 1']),
    ('batch_size', 3.5, ['batch_size', 'integer']),
    ('eval_batch_size', -4, ['eval_batch_size', '>= 1']),
    ('train_split', 'train[:', ['train_split', 'split string']),
    ('seed', 'zero', ['seed', 'integer']),
    ('mesh_model', 2, ['mesh_model', 'is not a config field']),  # gone: nothing was sharded over it
    ('label_smoothing', 1.5, ['label_smoothing', '<= 1']),
    ('optimizer.momentum', -0.1, ['optimizer.momentum', '>= 0']),
    ('optimizer.weight_decay', -1e-4, ['optimizer.weight_decay', '>= 0']),
    ('optimizer.nesterov', 'yes', ['optimizer.nesterov', 'true or false']),
    ('phases.augmented.epochs', 0.0, ['phases.augmented.epochs', '> 0']),
    ('phases.refine.epochs', -3.0, ['phases.refine.epochs', '> 0']),
    ('phases.augmented.lr.schedule', 'exponential', ['phases.augmented.lr.schedule', 'multistep', 'cosine',
                                                     'constant']),
    ('phases.augmented.lr.base', 0.0, ['phases.augmented.lr.base', 'positive']),
    ('phases.augmented.lr.factor', 2.0, ['phases.augmented.lr.factor', '(0, 1]']),
    ('phases.augmented.lr.boundaries_epochs', (20, 10), ['boundaries_epochs', 'increasing']),
    ('phases.augmented.mix.kind', 'mixdown', ['phases.augmented.mix.kind', 'mixup', 'cutmix',
                                              'manifold_mixup']),
    ('phases.augmented.mix.gamma', -1.0, ['phases.augmented.mix.gamma', '>= 0']),
    ('phases.augmented.mix.prob', 1.5, ['phases.augmented.mix.prob', '[0, 1]']),
    ('phases.augmented.mix.layers', (0, 9), ['phases.augmented.mix.layers', 'allowed', 'input'],
     {'phases.augmented.mix.kind': 'manifold_mixup'}),
    ('phases.augmented.aug_prob', -0.5, ['phases.augmented.aug_prob', '[0, 1]']),
    ('phases.augmented.pp', 'pad_crop(16,2)|sharpen_all', ['phases.augmented.pp', 'unknown op', 'flip_lr']),
    ('phases.augmented.pp', 'pad_crop(-16,2)', ['phases.augmented.pp', 'size must be > 0']),
    ('pp_eval', 'resize(', ['pp_eval', 'cannot parse']),
    ('phases.augmented.pp', 'autoaugment("cifar11")', ['phases.augmented.pp', 'unknown policy', 'cifar10',
                                                       'imagenet', 'svhn']),
    ('phases.augmented.pp', 'randaugment(2, 11)', ['phases.augmented.pp', 'magnitude', '[0, 10]']),
    ('phase_order', ('refine',), ['phase_order', 'init_from', 'augmented']),
    ('phase_order', ('refine', 'augmented'), ['phase_order', 'order']),
    ('phase_order', ('finetune',), ['phase_order', 'allowed', 'augmented', 'refine']),
    ('eval_every_epochs', -1.0, ['eval_every_epochs', '> 0']),
    ('keep_checkpoints', 0, ['keep_checkpoints', '>= 1']),
    ('diag_examples', -5, ['diag_examples', '>= 0']),
    ('phase_end_diag_examples', -1, ['phase_end_diag_examples', 'the whole training split', '0 (off)']),
    ('phase_end_diag_examples', 2.5, ['phase_end_diag_examples', 'positive integer']),
    ('fork_points_epochs', (20, 10), ['fork_points_epochs', 'increasing']),
    ('fork_points_epochs', (50.0,), ['fork_points_epochs', "outside the run's steps", '(0, 38]']),
]


@pytest.mark.parametrize('case', BAD, ids=[f'{c[0]}={c[1]!r}' for c in BAD])
def test_bad_field_is_named_and_nothing_written(tmp_path, case):
  path, value, words, *extra = case
  # type_safe=False: set values of the wrong type too (the CLI refuses those while parsing: see below).
  c = ml_collections.ConfigDict(digits_demo.get_config().to_dict(), type_safe=False)
  for k, v in (extra[0] if extra else {}).items():
    _set(c, k, v)
  _set(c, path, value)
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'keep.txt').write_text('precious')
  with pytest.raises(ConfigError) as e:
    train.train_and_evaluate(c, str(workdir))
  msg = str(e.value)
  for w in words:
    assert w in msg, (w, msg)
  assert sorted(os.listdir(workdir)) == ['keep.txt'] and (workdir / 'keep.txt').read_text() == 'precious'


def test_manifold_mixup_needs_a_model_with_layers():
  from refine_jax import config as config_lib
  from refine_jax import models, registries
  c = digits_demo.get_config()
  c.phases.augmented.mix.kind = 'manifold_mixup'
  config_lib.validate(c, registries.default())  # resnet_tiny has mixing points
  assert len(models.mix_points('resnet_tiny')) >= 3


def test_cli_exit_code_2_and_existing_workdir_untouched(tmp_path):
  w = tmp_path / 'w'
  w.mkdir()
  (w / 'metrics.jsonl').write_text('{"step": 1}\n')
  cases = [
      (['--config.model=nope'], 'config.model'),
      (['--config.dataset=cifar10', f'--config.data_dir={tmp_path / "missing"}'], 'config.data_dir'),
      (['--config.batch_size=60'], 'config.batch_size'),  # 8 devices
      (['--config.no_such_field=1'], 'no_such_field'),
      (['--config.batch_size=3.5'], 'batch_size'),
      (['--config.mesh_model=3'], 'config.mesh_model is not a config field'),  # gone: nothing was sharded over it
  ]
  for overrides, field in cases:
    p = run_main('digits_demo.py', str(w), *overrides, devices=8, check=False, timeout=300)
    assert p.returncode == 2, (overrides, p.returncode, p.stderr[-2000:])
    assert field in p.stderr, (field, p.stderr[-2000:])
    assert 'Traceback' not in p.stderr
  assert sorted(os.listdir(w)) == ['metrics.jsonl'] and (w / 'metrics.jsonl').read_text() == '{"step": 1}\n'
