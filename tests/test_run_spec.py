"""One run spec (issue 24): every field declared once with its role, resume / fork / report deciding from those
roles, the ConfigDict stopping at the plan, and the drifts that the old copies of that knowledge caused."""
from __future__ import annotations

import json
import sys

import jax
import ml_collections
import numpy as np
import pytest

from configs import common, digits_demo
from refine_jax import config as config_lib
from refine_jax import fields, registries
from refine_jax.errors import ConfigError
from tests.conftest import TINY_DIGITS, read_rows, run_main


# --------------------------------------------------------------------------- declarations


def test_every_field_of_the_default_config_is_declared_once():
  flat = fields.flatten(common.get_config().to_dict())
  undeclared = [k for k in flat if fields.field(k) is None]
  assert not undeclared
  declared = set(fields.FIELDS) | {f'phases.{p}.{k}' for p in fields.PHASE_NAMES for k in fields.PHASE_FIELDS}
  assert declared == set(flat), declared ^ set(flat)
  for k, f in fields.FIELDS.items():  # each default passes its own check, and is the default config's value
    f.check(f.default, k)
    assert fields.plain(flat[k]) == fields.plain(f.default), k


def test_roles_decide_resume_fork_and_report_alike():
  """A bookkeeping field may differ for all three; the seed splits no report group but no resume or fork may
  change it; a field that changes what is trained or measured differs for all three."""
  a = common.get_config().to_dict()
  for path, value, resume_ok, fork_ok, same_experiment in [
      ('prefetch_to_device', 0, True, True, True), ('log_every_steps', 7, True, True, True),
      ('keep_checkpoints', 9, True, True, True), ('paper_row', 'x', True, True, False),
      ('seed', 3, False, False, True), ('eval_every_epochs', 2.0, False, False, False),
      ('optimizer.momentum', 0.5, False, False, False)]:
    b = json.loads(json.dumps(a))
    node = b
    *head, last = path.split('.')
    for k in head:
      node = node[k]
    node[last] = value
    assert (not fields.differences(a, b, fields.RESUME_MAY_DIFFER)) == resume_ok, path
    assert (not fields.differences(a, b, fields.FORK_MAY_DIFFER)) == fork_ok, path
    assert (not fields.differences(a, b, fields.SAME_EXPERIMENT_MAY_DIFFER)) == same_experiment, path


def test_a_config_json_without_a_newer_field_reads_at_its_default():
  new = common.get_config().to_dict()
  old = json.loads(json.dumps(new))
  del old['prefetch_to_device'], old['synthetic'], old['phases']['augmented']['mix']['decay_of']
  assert fields.differences(old, new, ()) == []
  old['prefetch_to_device'] = 0  # a value that is not the default still counts
  assert [k for k, _, _ in fields.differences(old, new, ())] == ['prefetch_to_device']


def test_an_undeclared_field_is_refused_naming_the_nearest():
  c = ml_collections.ConfigDict(digits_demo.get_config().to_dict(), type_safe=False)
  with c.unlocked():
    c.log_every_step = 5
  with pytest.raises(ConfigError, match=r'config\.log_every_step: is not a config field; did you mean log_every_steps'):
    config_lib.validate(c, registries.default())


# --------------------------------------------------------------------------- the ConfigDict stops at the plan


BELOW_THE_PLAN = ('refine_jax.steps', 'refine_jax.evaluate', 'refine_jax.checkpoint', 'refine_jax.restore',
                  'refine_jax.clock', 'refine_jax.metrics', 'refine_jax.workdir', 'refine_jax.data.',
                  'refine_jax.augment.', 'refine_jax.models', 'refine_jax.schedules', 'refine_jax.plan')
TRAIN_ENTRY = {'train_and_evaluate', 'set_up'}  # train.py's functions that take the config and hand it to prepare


def test_no_module_below_the_plan_receives_a_config_dict(tmp_path):
  """A short real run, in this process, watched by a profiler: no function of the modules below the plan, nor of
  train.py's loop, is called with a ConfigDict among its arguments."""
  offenders = set()

  def watch(frame, event, arg):
    if event != 'call':
      return
    mod = frame.f_globals.get('__name__', '')
    name = frame.f_code.co_name
    below = mod.startswith(BELOW_THE_PLAN) or (mod == 'refine_jax.train' and name not in TRAIN_ENTRY)
    if not below:
      return
    code = frame.f_code
    args = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    if any(isinstance(frame.f_locals.get(a), ml_collections.ConfigDict) for a in args):
      offenders.add(f'{mod}.{code.co_qualname if hasattr(code, "co_qualname") else name}')

  from refine_jax import train
  c = digits_demo.get_config()
  c.phases.augmented.steps, c.phases.refine.steps, c.eval_every_steps = 4, 2, 3
  c.phases.augmented.lr.boundaries_epochs = ()
  sys.setprofile(watch)
  try:
    train.train_and_evaluate(c, str(tmp_path / 'w'))
  finally:
    sys.setprofile(None)
  assert not offenders, sorted(offenders)


# --------------------------------------------------------------------------- drifts, each fixed


def test_resuming_with_another_log_every_steps_needs_no_allow_config_change(tmp_path):
  w = str(tmp_path / 'w')
  run_main('digits_demo.py', w, *TINY_DIGITS)
  before = read_rows(w)
  p = run_main('digits_demo.py', w, *TINY_DIGITS[:-1], '--config.log_every_steps=7', '--config.prefetch_to_device=0',
               check=False)
  assert p.returncode == 0, p.stderr[-3000:]
  assert read_rows(w) == before


def test_a_workdir_whose_config_json_lacks_a_newer_field_resumes(tmp_path):
  w = tmp_path / 'w'
  run_main('digits_demo.py', str(w), *TINY_DIGITS)
  cfg = json.loads((w / 'config.json').read_text())
  del cfg['synthetic'], cfg['phase_end_diag_examples']  # fields a newer version added, at their defaults here
  (w / 'config.json').write_text(json.dumps(cfg))
  p = run_main('digits_demo.py', str(w), *TINY_DIGITS, check=False)
  assert p.returncode == 0, p.stderr[-3000:]
  assert 'synthetic' in json.loads((w / 'config.json').read_text())  # rewritten complete


def test_pp_ops_take_keyword_arguments_checked_against_their_signature():
  from refine_jax.data import ops
  ops.validate_spec('inception_crop(16, min_scale=0.35)|flip_lr', 'pp')
  p = ops.build('inception_crop(16, min_scale=0.35)', 1.0, 'pp')
  assert p == ops.build('inception_crop(16, min_scale=0.35)', 1.0, 'pp')  # equal by spec and probability
  assert p != ops.build('inception_crop(16, min_scale=0.35)', 0.5, 'pp')
  with pytest.raises(ConfigError, match=r"config\.pp: op inception_crop: got an unexpected keyword argument "
                                        r"'scale'; its arguments: size, min_scale=0\.08"):
    ops.validate_spec('inception_crop(16, scale=1)', 'pp')
  with pytest.raises(ConfigError, match=r"op pad_crop: missing a required argument: 'pad'"):
    ops.validate_spec('pad_crop(32)', 'pp')


def test_an_unknown_schedule_kind_is_refused():
  from refine_jax import schedules
  with pytest.raises(ValueError, match="unknown learning-rate schedule 'exponential'; allowed: multistep, cosine"):
    schedules.phase_lr(0, 100, 'exponential', 0.1)
  c = digits_demo.get_config()
  c.phases.augmented.lr.schedule = 'exponential'
  with pytest.raises(ConfigError, match=r'phases\.augmented\.lr\.schedule: unknown value'):
    config_lib.validate(c, registries.default())


def test_preview_mixes_as_the_first_step_does():
  """The preview's mixed row is the first step's mixing: its keys split from fold_in(seed, step) as train_step
  splits them (written out here), the same λ and partners, on the same batch as the host row."""
  from refine_jax import prepare, preview
  from refine_jax.augment import mixing
  c = digits_demo.get_config()
  c.batch_size = 16
  plan, train, _ = prepare.plan_and_splits(prepare.spec_of(c, devices=False), check=False)
  rows = preview.preview_rows(plan, train, 16)
  (_, host), (label, mixed) = rows[0], rows[1]
  phase = plan.phases[0]
  k_mix = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(c.seed), 0), 3)[0]
  m = mixing.draw(k_mix, phase.mix, plan.mix_gamma(0), plan.mix_prob(0), 16, host.shape[1:3])
  want = np.clip(np.round(np.asarray(m.inputs(host.astype(np.float32)))), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(mixed, want)
  assert f'λ = {float(m.lam[0]):.2f}' in label
  # One batch through every row: the refine phase has the same host ops here, so its host row is the same images.
  assert plan.phases[1].pp == phase.pp
  np.testing.assert_array_equal(rows[2][1], host)
