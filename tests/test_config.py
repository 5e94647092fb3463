"""Step conversion and config diffs, against hand-computed values (the phase table: test_plan.py)."""
import pytest

from configs import digits_demo
from refine_jax import config as config_lib
from refine_jax.config import ConfigError


def test_steps_of_epochs_and_steps():
  """The one conversion of durations (`spec.Duration.to_steps`): epochs × steps per epoch, a set `steps` wins, a
  tuple converts elementwise; a phase without either is refused by validation."""
  from refine_jax import registries
  from refine_jax.spec import Duration
  assert Duration(epochs=2.5).to_steps(100) == 250
  assert Duration(steps=7).to_steps(100) == 7
  assert Duration(epochs=2.5, steps=3).to_steps(100) == 3  # steps win over epochs, so a CLI override in steps needs no epochs=None
  assert Duration().to_steps(100) is None and not Duration().is_set
  c = digits_demo.get_config()
  c.phases.augmented.epochs, c.phases.augmented.steps = None, None
  with pytest.raises(ConfigError, match='one of epochs / steps'):
    config_lib.validate(c, registries.default())
  assert Duration(epochs=(150, 275), steps=()).to_steps(391) == (150 * 391, 275 * 391)


def test_config_diff_names_fields():
  a = digits_demo.get_config().to_dict()
  b = digits_demo.get_config()
  b.batch_size = 32
  b.phases.refine.lr.base = 0.5
  d = config_lib.diff(a, b.to_dict())
  assert [x[0] for x in d] == ['batch_size', 'phases.refine.lr.base']
