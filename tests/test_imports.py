"""The package's import structure: no circle (lazy imports inside functions count), `config` at the bottom,
the device path (models, steps, mixing, schedules, plan, flops) importable and runnable without TensorFlow, and
TensorFlow loaded only by the tf.data half of the pipeline and AutoAugment (a synthetic run never needs it)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, env_for

PKG = 'refine_jax'


def module_imports(root: str, pkg: str) -> dict[str, set[str]]:
  """{module: the package's modules it imports anywhere in its source}; importing a.b.c imports a.b too,
  unless a.b encloses the importer (a package's own submodules run inside its initialisation)."""
  mods = {}
  for d, _, files in os.walk(os.path.join(root, pkg)):
    for f in files:
      if f.endswith('.py'):
        rel = os.path.relpath(os.path.join(d, f), root)[:-3].split(os.sep)
        mods['.'.join(rel[:-1] if rel[-1] == '__init__' else rel)] = os.path.join(d, f)
  graph = {}
  for name, path in mods.items():
    is_pkg = path.endswith('__init__.py')
    here = name if is_pkg else name.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level:
          up = here.split('.')[:len(here.split('.')) - node.level + 1]
          base = '.'.join(up + ([base] if base else []))
        targets = [base] + [f'{base}.{a.name}' for a in node.names]
      else:
        continue
      for t in targets:
        while t and t not in mods:
          t = t.rpartition('.')[0]
        while t:  # a module and the packages above it
          if t != name and not name.startswith(t + '.'):
            out.add(t)
          t = t.rpartition('.')[0]
    graph[name] = out
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
  """One import circle as [a, b, ..., a], or [] if there is none."""
  state, stack = {}, []

  def visit(n):
    state[n] = 'open'
    stack.append(n)
    for m in sorted(graph.get(n, ())):
      if state.get(m) == 'open':
        return stack[stack.index(m):] + [m]
      if m not in state:
        found = visit(m)
        if found:
          return found
    stack.pop()
    state[n] = 'done'
    return []

  for n in sorted(graph):
    if n not in state:
      found = visit(n)
      if found:
        return found
  return []


def test_cycle_finder_sees_a_lazy_circle(tmp_path):
  pkg = tmp_path / 'p'
  (pkg / 'sub').mkdir(parents=True)
  (pkg / '__init__.py').write_text('')
  (pkg / 'sub' / '__init__.py').write_text('')
  (pkg / 'a.py').write_text('from p.sub import b\n')
  (pkg / 'sub' / 'b.py').write_text('def f():\n  from .. import a\n  return a\n')
  (pkg / 'c.py').write_text('import p.a\n')
  graph = module_imports(str(tmp_path), 'p')
  assert graph['p.a'] == {'p.sub', 'p.sub.b'} and graph['p.sub.b'] == {'p.a'} and graph['p.c'] == {'p.a'}
  cycle = find_cycle(graph)
  assert cycle[0] == cycle[-1] and {'p.a', 'p.sub.b'} <= set(cycle)
  (pkg / 'sub' / 'b.py').write_text('def f():\n  return 1\n')
  assert find_cycle(module_imports(str(tmp_path), 'p')) == []


def test_no_import_circle_in_the_package():
  graph = module_imports(ROOT, PKG)
  assert 'refine_jax.train' in graph and 'refine_jax.steps' in graph['refine_jax.train']
  assert find_cycle(graph) == []


def test_config_is_the_bottom_layer():
  """config imports only the field declarations and the errors; those import nothing else of the package."""
  graph = module_imports(ROOT, PKG)
  assert graph['refine_jax.config'] == {'refine_jax.errors', 'refine_jax.fields'}
  assert graph['refine_jax.fields'] == {'refine_jax.errors'}
  assert graph['refine_jax.errors'] == set()


_NO_TF = textwrap.dedent('''
    import importlib.abc, sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets'):
          raise ImportError(f'{name} is absent on this machine')
        return None

    sys.meta_path.insert(0, NoTensorFlow())
    try:
      import tensorflow
    except ImportError:
      pass
    else:
      raise SystemExit('the blocker let tensorflow in')

    import jax, jax.numpy as jnp, numpy as np
    from refine_jax import flops, models, plan, schedules, spec, steps
    from refine_jax.augment import mixing
    from configs import digits_demo

    c = digits_demo.get_config()
    p = plan.resolve(spec.from_dict(spec.as_dict(c)), 22 * c.batch_size)
    env = steps.make_env(p, steps.make_mesh(), num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3)
    state = steps.init_state(env, (16, 16, 3), 0)
    rng = np.random.default_rng(0)
    batch = {'image': rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
             'label': rng.integers(0, 10, (8,), dtype=np.int32)}
    step = jax.jit(lambda s, b: steps.train_step(env, p.phases[0].mix, s, b))
    assert flops.count(step, state, batch) > 0
    state, loss = step(state, batch)
    assert int(state.step) == 1 and np.isfinite(float(loss)), loss
    bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets'))
    assert not bad, bad
    print('ok', float(loss))
''')


def test_device_path_imports_and_steps_without_tensorflow():
  p = subprocess.run([sys.executable, '-c', _NO_TF], cwd=ROOT, env=env_for(), capture_output=True, text=True,
                     timeout=300)
  assert p.returncode == 0 and p.stdout.startswith('ok'), p.stdout + p.stderr


_SYNTHETIC_NO_TF = textwrap.dedent('''
    import importlib, json, sys
    from tests.test_device_check import _SITECUSTOMIZE
    exec(_SITECUSTOMIZE)  # `import tensorflow` (and tensorflow_datasets) now fails

    from tests.test_imports import ROOT, PKG, module_imports
    failed = {}
    for name in sorted(module_imports(ROOT, PKG)):
      if name in ('refine_jax.fork', 'refine_jax.preview'):  # define absl flags as main does: one of the three
        continue
      try:
        importlib.import_module(name)
      except ImportError as e:
        failed[name] = str(e)

    import numpy as np
    from configs import digits_demo
    from refine_jax import plan as plan_lib, registries, spec as spec_lib
    from refine_jax.data import ops, pipeline, sources
    c = digits_demo.get_config()
    c.dataset, c.phases.augmented.pp, c.phases.refine.pp = 'synthetic', '', ''
    spec = spec_lib.from_config(c, registries.default())
    train = sources.load(spec.data, train=True)
    test = sources.load(spec.data, train=False)
    p = plan_lib.resolve(spec, train.num_examples_global, ops.build)
    op = p.phases[0].host_ops(1.0)
    pipeline.check_sizes(train, op, '', 'phases.augmented.pp', 'train')
    pipeline.check_image_size(test, p.eval_ops(), '', 'pp_eval', 'test', c.image_size)
    b = next(pipeline.train_batches(train, lambda e: op, batch=64, steps_per_epoch=32, seed=0, start_step=5))
    e = list(pipeline.eval_batches(test, p.eval_ops(), batch=120))
    assert b['image'].shape == (64, 16, 16, 3) and len(e) == 5 and sum(x['mask'].sum() for x in e) == 512
    tf = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'clu'))
    print(json.dumps({'failed': failed, 'tf': tf}))
''')


def test_only_the_tf_data_half_and_autoaugment_need_tensorflow():
  """With `import tensorflow` failing, every module of the package imports but the two that run TensorFlow at import
  (`data.tf_pipeline`, `augment.autoaugment`), and a synthetic config validates, plans, checks its sizes and makes
  its batches without loading TensorFlow, TFDS or clu."""
  p = subprocess.run([sys.executable, '-c', _SYNTHETIC_NO_TF], cwd=ROOT, env=env_for(), capture_output=True, text=True,
                     timeout=300)
  assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
  got = json.loads(p.stdout.strip().splitlines()[-1])
  assert sorted(got['failed']) == ['refine_jax.augment.autoaugment', 'refine_jax.data.tf_pipeline'], got['failed']
  assert all('absent on this machine' in v for v in got['failed'].values()) and got['tf'] == []
