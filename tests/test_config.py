"""Step conversion and config diffs, against hand-computed values (the phase table: test_plan.py)."""
import ml_collections
import pytest

from configs import digits_demo
from refine_jax import config as config_lib
from refine_jax.config import ConfigError


def test_steps_of_epochs_and_steps():
  n = ml_collections.ConfigDict({'epochs': 2.5, 'steps': None, 'warmup_epochs': None, 'warmup_steps': 7})
  assert config_lib.steps_of(n, '', 100, path='p') == 250
  assert config_lib.steps_of(n, 'warmup', 100, path='p') == 7
  n.steps = 3  # steps win over epochs, so a CLI override in steps needs no epochs=None
  assert config_lib.steps_of(n, '', 100, path='p') == 3
  n.epochs, n.steps = None, None
  with pytest.raises(ConfigError, match='one of epochs / steps'):
    config_lib.steps_of(n, '', 100, path='p', required=True)
  b = ml_collections.ConfigDict({'boundaries_epochs': (150, 275), 'boundaries_steps': ()})
  assert config_lib.list_steps_of(b, 'boundaries', 391, path='p') == (150 * 391, 275 * 391)


def test_config_diff_names_fields():
  a = digits_demo.get_config().to_dict()
  b = digits_demo.get_config()
  b.batch_size = 32
  b.phases.refine.lr.base = 0.5
  d = config_lib.diff(a, b.to_dict())
  assert [x[0] for x in d] == ['batch_size', 'phases.refine.lr.base']
