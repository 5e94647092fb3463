"""Step conversion, the phase table and the step schedules, against hand-computed values."""
import math

import ml_collections
import numpy as np
import pytest

from configs import cifar100_preact18_mixup, common, digits_demo, imagenet_r50_mixup
from refine_jax import config as config_lib
from refine_jax import schedules
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


def test_phase_table_paper_cifar():
  c = cifar100_preact18_mixup.get_config()
  spe = 50000 // 128  # 390
  phases = config_lib.phase_table(c, spe)
  assert [(p.name, p.start, p.end) for p in phases] == [('augmented', 0, 400 * spe),
                                                        ('refine', 400 * spe, 450 * spe)]
  assert config_lib.phase_at(phases, 400 * spe - 1).name == 'augmented'
  assert config_lib.phase_at(phases, 400 * spe).name == 'refine'
  evals = config_lib.eval_steps(c, phases, spe)
  assert evals[:2] == [spe, 2 * spe] and evals[-1] == 450 * spe and len(evals) == 450
  saves = config_lib.checkpoint_steps(c, phases, spe)
  assert 400 * spe in saves and 450 * spe in saves and saves[0] == 10 * spe


def test_paper_lr_schedule_and_refine_default():
  """0.1 ÷10 at 150 and 275 epochs; refinement continues at the final 0.001 (the paper's rule)."""
  c = cifar100_preact18_mixup.get_config()
  spe = 390
  lr = schedules.learning_rate(config_lib.phase_table(c, spe), spe)
  for epoch, want in [(0, 0.1), (149.99, 0.1), (150, 0.01), (274.9, 0.01), (275, 0.001), (399.99, 0.001),
                      (400, 0.001), (449.99, 0.001)]:
    assert float(lr(int(epoch * spe))) == pytest.approx(want, rel=1e-6), epoch


def test_imagenet_refine_explicit_lr():
  c = imagenet_r50_mixup.get_config()
  spe = 1281167 // 256
  phases = config_lib.phase_table(c, spe)
  lr = schedules.learning_rate(phases, spe)
  assert float(lr(0)) == pytest.approx(0.1)
  assert float(lr(200 * spe - 1)) == pytest.approx(1e-4)  # 0.1 / 10^3 after 180
  assert float(lr(200 * spe)) == pytest.approx(1e-4)
  assert phases[1].end == 220 * spe


def test_cosine_warmup_and_decay_schedules():
  c = digits_demo.get_config()
  c.phases.augmented.lr = common.lr('cosine', 0.2, warmup_epochs=1)
  c.phases.augmented.mix.decay_epochs = 2
  c.phases.augmented.aug_prob_decay_steps = 10
  spe = 10
  phases = config_lib.phase_table(c, spe)  # augmented: 300 steps
  lr = schedules.learning_rate(phases, spe)
  assert float(lr(0)) == pytest.approx(0.2 / 10)
  assert float(lr(9)) == pytest.approx(0.2)
  mid = 10 + (300 - 10) // 2
  assert float(lr(mid)) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * (mid - 10) / 290)), rel=1e-5)
  # refine inherits the cosine's last value
  assert float(lr(300)) == pytest.approx(float(lr(299)))
  g = schedules.mix_strength(phases, spe)
  assert float(g(0)) == 1.0 and float(g(279)) == 1.0
  assert float(g(290)) == pytest.approx(0.5) and float(g(299)) == pytest.approx(0.05)
  assert float(g(300)) == 0.0  # refine phase: kind none
  a = schedules.aug_prob(phases, spe)
  assert float(a(289)) == 1.0 and float(a(295)) == pytest.approx(0.5)


def test_schedules_are_jittable_and_agree_with_host():
  import jax
  c = cifar100_preact18_mixup.get_config()
  spe = 390
  lr = schedules.learning_rate(config_lib.phase_table(c, spe), spe)
  steps = np.array([0, 150 * spe, 275 * spe, 400 * spe + 5], np.int32)
  np.testing.assert_allclose(jax.jit(jax.vmap(lr))(steps), [float(lr(int(s))) for s in steps], rtol=1e-7)


def test_config_diff_names_fields():
  a = digits_demo.get_config().to_dict()
  b = digits_demo.get_config()
  b.batch_size = 32
  b.phases.refine.lr.base = 0.5
  d = config_lib.diff(a, b.to_dict())
  assert [x[0] for x in d] == ['batch_size', 'phases.refine.lr.base']
