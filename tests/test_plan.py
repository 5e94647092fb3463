"""The run plan resolved from a config: the phase table, the event steps and the step schedules, against
hand-computed values."""
import math

import numpy as np
import pytest

from configs import cifar100_preact18_mixup, common, digits_demo, imagenet_r50_mixup
from refine_jax import plan as plan_lib
from tests.conftest import plan_of  # noqa: E402


def test_phase_table_paper_cifar():
  c = cifar100_preact18_mixup.get_config()
  spe = 50000 // 128  # 390
  plan = plan_of(c, spe)
  assert [(p.name, p.start, p.end) for p in plan.phases] == [('augmented', 0, 400 * spe),
                                                             ('refine', 400 * spe, 450 * spe)]
  assert plan.total_steps == 450 * spe
  assert plan.phase_at(400 * spe - 1).name == 'augmented'
  assert plan.phase_at(400 * spe).name == 'refine'
  evals = sorted(plan.eval_steps)
  assert evals[:2] == [spe, 2 * spe] and evals[-1] == 450 * spe and len(evals) == 450
  saves = sorted(plan.save_steps)
  assert 400 * spe in saves and 450 * spe in saves and saves[0] == 10 * spe


def test_paper_lr_schedule_and_refine_default():
  """0.1 ÷10 at 150 and 275 epochs; refinement continues at the final 0.001 (the paper's rule)."""
  c = cifar100_preact18_mixup.get_config()
  spe = 390
  lr = plan_of(c, spe).lr
  for epoch, want in [(0, 0.1), (149.99, 0.1), (150, 0.01), (274.9, 0.01), (275, 0.001), (399.99, 0.001),
                      (400, 0.001), (449.99, 0.001)]:
    assert float(lr(int(epoch * spe))) == pytest.approx(want, rel=1e-6), epoch


def test_imagenet_refine_explicit_lr():
  c = imagenet_r50_mixup.get_config()
  spe = 1281167 // 256
  plan = plan_of(c, spe)
  lr = plan.lr
  assert float(lr(0)) == pytest.approx(0.1)
  assert float(lr(200 * spe - 1)) == pytest.approx(1e-4)  # 0.1 / 10^3 after 180
  assert float(lr(200 * spe)) == pytest.approx(1e-4)
  assert plan.phases[1].end == 220 * spe


def test_cosine_warmup_and_decay_schedules():
  c = digits_demo.get_config()
  c.phases.augmented.lr = common.lr('cosine', 0.2, warmup_epochs=1)
  c.phases.augmented.mix.decay_epochs = 2
  c.phases.augmented.aug_prob_decay_steps = 10
  spe = 10
  plan = plan_of(c, spe)  # augmented: 300 steps
  lr = plan.lr
  assert float(lr(0)) == pytest.approx(0.2 / 10)
  assert float(lr(9)) == pytest.approx(0.2)
  mid = 10 + (300 - 10) // 2
  assert float(lr(mid)) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * (mid - 10) / 290)), rel=1e-5)
  # refine inherits the cosine's last value
  assert float(lr(300)) == pytest.approx(float(lr(299)))
  g = plan.mix_gamma
  assert float(g(0)) == 1.0 and float(g(279)) == 1.0
  assert float(g(290)) == pytest.approx(0.5) and float(g(299)) == pytest.approx(0.05)
  assert float(g(300)) == 0.0  # refine phase: kind none
  a = plan.aug_prob
  assert float(a(289)) == 1.0 and float(a(295)) == pytest.approx(0.5)


def test_schedules_are_jittable_and_agree_with_host():
  import jax
  c = cifar100_preact18_mixup.get_config()
  spe = 390
  lr = plan_of(c, spe).lr
  steps = np.array([0, 150 * spe, 275 * spe, 400 * spe + 5], np.int32)
  np.testing.assert_allclose(jax.jit(jax.vmap(lr))(steps), [float(lr(int(s))) for s in steps], rtol=1e-7)


def test_digits_plan_events_and_phases():
  """digits_demo at 22 steps per epoch: evals every 2 epochs from each phase's start, saves every 10 epochs
  from step 0 and at each phase end, a log line every 100 steps."""
  c = digits_demo.get_config()
  spe = 22
  plan = plan_of(c, spe)
  aug, ref = plan.phases
  assert (aug.start, aug.end, ref.start, ref.end) == (0, 660, 660, 836)
  want_evals = set(range(44, 660, 44)) | {660} | set(range(660 + 44, 836, 44)) | {836}
  assert plan.eval_steps == want_evals
  assert plan.save_steps == {220, 440, 660, 836}
  e = plan.events(440)
  assert (e.log, e.eval, e.save, e.sync) == (False, True, True, True)
  e = plan.events(400)
  assert (e.log, e.eval, e.save, e.sync) == (True, False, False, True)
  e = plan.events(401)
  assert (e.log, e.eval, e.save, e.sync) == (False, False, False, False)
  assert (aug.mix.kind, aug.mix.per_example, aug.mix.layers) == ('mixup', False, (0, 1, 2))
  assert ref.mix.kind == 'none'
  assert float(plan.mix_prob(659)) == 1.0 and float(plan.mix_prob(660)) == 0.0
  assert float(plan.lr(439)) == pytest.approx(0.1) and float(plan.lr(440)) == pytest.approx(0.01)
  assert float(plan.lr(700)) == pytest.approx(0.01)  # refine: constant at the augmented phase's last rate


def test_fork_points_add_evals_saves_and_kept_checkpoints():
  """digits_demo at 22 steps per epoch with fork points at epochs 3 and 20.5 (steps 66, 451): evaluated, saved
  and kept beside the phase ends; the other steps as without them."""
  c = digits_demo.get_config()
  base = plan_of(c, 22)
  c.fork_points_epochs = (3, 20.5)
  plan = plan_of(c, 22)
  assert plan.eval_steps == base.eval_steps | {66, 451}
  assert plan.save_steps == {220, 440, 660, 836, 66, 451}
  assert base.keep_steps == {660, 836} and plan.keep_steps == {66, 451, 660, 836}
  c.fork_points_steps = (7,)  # a set *_steps wins
  assert plan_of(c, 22).keep_steps == {7, 660, 836}


def test_host_ops_are_built_once_per_probability_through_the_given_compiler():
  c = digits_demo.get_config()
  c.pp_eval = 'resize(16)'
  calls = []

  def build(spec, prob, field):
    calls.append((spec, prob, field))
    return object()
  plan = plan_of(c, 22, build)
  aug = plan.phases[0]
  a = aug.host_ops(0.5)
  assert aug.host_ops(0.5) is a and aug.host_ops(1.0) is not a
  assert plan.eval_ops() is plan.eval_ops()
  assert calls == [('pad_crop(16,2)', 0.5, 'phases.augmented.pp'), ('pad_crop(16,2)', 1.0, 'phases.augmented.pp'),
                   ('resize(16)', 1.0, 'pp_eval')]
  with pytest.raises(RuntimeError, match='without a host-op compiler'):
    plan_of(c, 22).phases[0].host_ops(1.0)
