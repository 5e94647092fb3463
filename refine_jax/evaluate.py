"""The Evaluator: test metrics and the paper's R̂ / R̂aug diagnostics, with a cache of their host batches.

R̂ (`train_clean_loss`) is the loss on training examples under the eval preprocessing; R̂aug
(`train_aug_loss`) the loss on the same examples under the current phase's host ops and mixing. The inputs of
all three are the same at every eval (fixed examples and seeds), so their host batches are kept while they fit
a byte budget instead of re-running the pipeline (and re-tracing AutoAugment) each time.

At each phase's end (`Evaluator.phase_end`) both are measured again over the whole training split (or its first
`phase_end_diag_examples`): the paper's Table 2. Those batches are read once and not cached.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from refine_jax import metrics
from refine_jax import steps
from refine_jax.data import pipeline
from refine_jax.data.sources import Split
from refine_jax.plan import Phase, Plan

CACHE_BYTES = 1 << 30  # host memory for eval/diagnostic batches reused across evals


class Evaluator:
  """`evaluator(state, phase, step)` → the metrics.jsonl row of an eval after `step` steps."""

  def __init__(self, env: steps.Env, plan: Plan, train: Split, test: Split, *, image_shape: tuple[int, ...],
               budget: int = CACHE_BYTES):
    """What and how much it measures comes from `plan.spec.eval` (its batch, the diagnostics' subset, the
    phase-end examples: None for all of the training split, 0 for none)."""
    ev = plan.spec.eval
    batch, diag_examples = ev.batch_size, ev.diag_examples
    self._env, self._plan, self._train, self._test, self._batch = env, plan, train, test, batch
    self._sharding = NamedSharding(env.mesh, P('data'))
    self._repl = NamedSharding(env.mesh, P())
    self._rows = pipeline.process_rows(self._sharding, batch)  # this process's rows of each global batch
    # Whole eval batches only: a padded row could become a real example's mixing partner.
    self._diag_count = max(min(diag_examples, train.num_examples_global) // batch, 1) * batch
    self.phase_end_examples = ev.phase_end_examples
    self._row_bytes = len(self._rows) * int(np.prod(image_shape))
    self.budget = budget  # bytes left for cached host batches
    self._cache: dict[tuple, list] = {}
    self._clean_fn = jax.jit(functools.partial(steps.eval_sums, env, None), out_shardings=self._repl)
    self._aug_fns: dict[str, object] = {}

  def _aug_fn(self, phase: Phase):
    # R̂aug estimates the expected loss under the phase's mixing: a λ per example (same marginal as one per
    # batch) and a key per diagnostic batch average over many draws instead of resting on one.
    if phase.name not in self._aug_fns:
      spec = dataclasses.replace(phase.mix, per_example=True)
      self._aug_fns[phase.name] = jax.jit(functools.partial(steps.eval_sums, self._env, spec),
                                          out_shardings=self._repl)
    return self._aug_fns[phase.name]

  def _host_batches(self, key: tuple, split: Split, op, count=None):
    if key in self._cache:
      return self._cache[key]
    batches = pipeline.eval_batches(split, op, batch=self._batch, rows=self._rows, count=count,
                                    aug_seed=self._plan.seed)
    size = pipeline.num_eval_batches(split, self._batch, count) * self._row_bytes
    if size > self.budget:
      return batches
    self.budget -= size
    self._cache[key] = list(batches)
    return self._cache[key]

  def _sums(self, fn, state, batches, key=None) -> dict:
    # The per-batch sums come back in one transfer and are added on the host in float64, rather than by a
    # small device program per batch.
    sums = [fn(state, pipeline.to_global(b, self._sharding), None if key is None else jax.random.fold_in(key, i))
            for i, b in enumerate(batches)]
    sums = jax.device_get(sums)
    return {k: float(np.sum([s[k] for s in sums], dtype=np.float64)) for k in sums[0]}

  def __call__(self, state: steps.TrainState, phase: Phase, step: int) -> dict:
    plan, last = self._plan, step - 1  # the schedules of the last trained step
    eval_op = plan.eval_ops()
    test = self._sums(self._clean_fn, state, self._host_batches(('test',), self._test, eval_op))
    clean = self._sums(self._clean_fn, state,
                       self._host_batches(('clean',), self._train, eval_op, self._diag_count))
    prob = float(plan.aug_prob(last))
    aug_batches = self._host_batches(('aug', phase.name, prob), self._train, phase.host_ops(prob),
                                     self._diag_count)
    key = jax.random.fold_in(jax.random.PRNGKey(plan.seed), steps.DIAG_KEY_DATA)
    aug = self._sums(self._aug_fn(phase), state, aug_batches, key)
    return {'step': step, 'epoch': round(step / plan.steps_per_epoch, 4), 'phase': phase.name,
            'lr': float(plan.lr(last)), **metrics.row_values(metrics.EVAL_METRICS, dict(test=test, clean=clean, aug=aug)),
            'test_count': int(test['count']), 'mix_gamma': float(plan.mix_gamma(last)), 'aug_prob': prob}

  def phase_end(self, state: steps.TrainState, phase: Phase, step: int) -> dict:
    """R̂ and R̂aug over the whole training split (or its first `phase_end_examples`) after `step` steps, the
    phase's last: the keys the phase's last eval row and summary.json carry. R̂aug under the phase's host ops
    (its augmentation probability at the last step) and its mixing, keyed by fold_in(seed, step) and the batch
    index, so it is a pure function of step and seed; its last batch is filled with real examples
    (`pipeline.eval_batches(full_last=True)`), so no example is mixed with padding."""
    plan, last, count = self._plan, step - 1, self.phase_end_examples
    kw = dict(batch=self._batch, rows=self._rows, count=count, aug_seed=plan.seed)
    clean = self._sums(self._clean_fn, state, pipeline.eval_batches(self._train, plan.eval_ops(), **kw))
    ops = phase.host_ops(float(plan.aug_prob(last)))
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(plan.seed), steps.DIAG_KEY_DATA), step)
    aug = self._sums(self._aug_fn(phase), state, pipeline.eval_batches(self._train, ops, full_last=True, **kw), key)
    if clean['count'] != aug['count']:
      raise AssertionError(f'phase-end diagnostics counted {clean["count"]} clean and {aug["count"]} augmented '
                           'examples')
    return {**metrics.row_values(metrics.PHASE_END_METRICS, dict(clean=clean, aug=aug)),
            metrics.PHASE_END_COUNT: int(clean['count'])}
