"""The package's import structure: no circle (lazy imports inside functions count), `config` at the bottom,
and the device path (models, steps, mixing, schedules, plan, flops) importable and runnable without TensorFlow."""
from __future__ import annotations

import ast
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
  graph = module_imports(ROOT, PKG)
  assert graph['refine_jax.config'] == {'refine_jax.errors'}
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
    from refine_jax import flops, models, plan, schedules, steps
    from refine_jax.augment import mixing
    from configs import digits_demo

    c = digits_demo.get_config()
    p = plan.resolve(c, 22)
    env = steps.make_env(c, p, steps.make_mesh(), num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3)
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
