"""A run made ready, with nothing written: the validated spec, this process's splits, the plan, the size checks.

    spec = prepare.spec_of(config)                       # ConfigError naming the field; the ConfigDict stops here
    plan, train, test = prepare.plan_and_splits(spec)    # the data read, steps per epoch, the plan, sizes checked

Training, fork, preview, analysis and the benchmarks all start here: one sequence "load the training split →
steps per epoch → resolve the plan", one check of what every host-op spec makes of every image size.
"""
from __future__ import annotations

import jax
import ml_collections
from absl import logging

from refine_jax import plan as plan_lib
from refine_jax import registries
from refine_jax import spec as spec_lib
from refine_jax.data import ops as ops_lib
from refine_jax.data import pipeline, sources
from refine_jax.spec import Spec


def spec_of(config: ml_collections.ConfigDict, *, devices: bool = True) -> Spec:
  """The validated spec of `config`; with `devices`, batch sizes are checked against this job's device and
  process counts too."""
  counts = dict(num_devices=jax.device_count(), process_count=jax.process_count()) if devices else {}
  return spec_lib.from_config(config, registries.default(), **counts)


def split(spec: Spec, *, train: bool, **kw) -> sources.Split:
  """The training (`train`) or eval split, its files checked with the decodes of every spec that reads it
  (`Spec.readers`); `kw`: this process's part (process_index, process_count; default the whole split)."""
  return sources.load(spec.data, train=train, pp=[pp for _, pp in spec.readers(train)], **kw)


def splits(spec: Spec) -> tuple[sources.Split, sources.Split]:
  """This process's training and eval splits."""
  kw = dict(process_index=jax.process_index(), process_count=jax.process_count())
  train, test = split(spec, train=True, **kw), split(spec, train=False, **kw)
  logging.info('%s: %d classes, %d train / %d eval images', spec.data.dataset, train.num_classes,
               train.num_examples_global, test.num_examples_global)
  return train, test


def plan_and_splits(spec: Spec, *, check: bool = True) -> tuple[plan_lib.Plan, sources.Split, sources.Split]:
  """The splits, the plan resolved on the training split's size, and (`check`) the size checks."""
  train, test = splits(spec)
  plan = plan_lib.resolve(spec, train.num_examples_global, ops_lib.build)
  if check:
    check_sizes(plan, train, test)
  return plan, train, test


def check_sizes(plan: plan_lib.Plan, train: sources.Split, test: sources.Split) -> None:
  """Every pairing of host ops and split the run uses (`Spec.readers`: each phase's pp and pp_eval on the
  training split, pp_eval on the eval split) on each image size of the split, and the size they give against
  `image_size`, before anything is written."""
  spec = plan.spec
  ops = {f'phases.{p.name}.pp': p.host_ops(1.0) for p in plan.phases}
  ops['pp_eval'] = plan.eval_ops()
  checks = [(split_of, ops[field], pp, field, spec.data.split(is_train))
            for split_of, is_train in ((train, True), (test, False)) for field, pp in spec.readers(is_train)]
  for args in checks:
    pipeline.check_sizes(*args)
  for args in checks:  # image_size: what every phase and the eval give the model, for every dataset
    pipeline.check_image_size(*args, spec.data.image_size)


def describe(config: ml_collections.ConfigDict) -> list[str]:
  """`--dry_run`: the resolved plan of `config` in words, and the paper row it names, from the split's size alone
  (no image read, no array built, nothing written)."""
  from refine_jax import paper
  spec = spec_of(config, devices=False)
  n = sources.count(spec.data, train=True)
  plan = plan_lib.resolve(spec, n)
  out = plan_lib.describe(plan, n)
  if spec.paper_row is None:
    out.append('paper row: none (an extension of the paper)')
  else:
    row = paper.row(spec.paper_row)
    values = ', '.join(f'{paper.COLUMNS[row.table][k]}: {v:g}' for k, v in row.values.items())
    out.append(f'paper row: {row.key} ({paper.TITLES[row.table].split(":")[0]}): {values}')
  return out
