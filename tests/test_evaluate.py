"""The Evaluator: its host-batch cache changes no number, and its budget is spent by exactly the cached bytes."""
import numpy as np

from configs import digits_demo
from refine_jax import evaluate, plan as plan_lib, steps
from refine_jax.data import ops, pipeline, sources
from tests.conftest import load_split, plan_of  # noqa: E402


def test_cached_and_uncached_evals_agree_and_the_budget_counts_bytes():
  c = digits_demo.get_config()
  train = load_split(c, c.train_split, train=True)
  test = load_split(c, c.eval_split, train=False)
  plan = plan_of(c, train.num_examples_global // c.batch_size, ops.build)
  env = steps.make_env(plan, steps.make_mesh(), num_classes=train.num_classes, mean=train.mean, std=train.std)
  state = steps.init_state(env, (16, 16, 3), 0).replace(step=np.int32(5))
  phase = plan.phases[0]

  def make(budget):
    return evaluate.Evaluator(env, plan, train, test, image_shape=(16, 16, 3), budget=budget)
  cached, uncached = make(evaluate.CACHE_BYTES), make(0)
  first = cached(state, phase, 5)
  # test: 360 examples = 3 batches of 120; clean and aug diagnostics: 360 training examples, 3 batches each.
  assert cached.budget == evaluate.CACHE_BYTES - 9 * 120 * 16 * 16 * 3
  assert cached(state, phase, 5) == first  # from the cache
  assert uncached(state, phase, 5) == first and uncached.budget == 0
  assert first['test_count'] == test.num_examples_global == 360
  assert first['step'] == 5 and first['phase'] == 'augmented' and first['mix_gamma'] == 1.0
