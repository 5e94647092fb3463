"""Tests for refine_jax.augment.mixing against independent numpy / scipy references.

CutMix is pinned to hand-computed boxes (Yun et al.'s `rand_bbox`), λ distributions to Beta(γ, γ) by
Kolmogorov–Smirnov (100k draws against scipy, float32 rounding accounted for), the loop-free Gamma candidates
to scipy's Gamma and their stated rejection probability to a quadrature, Manifold-Mixup layer choice to
uniform by chi-square, every mix to a float64 numpy blend. The compiled train and eval steps of every kind are
checked to hold no `while` loop of unknown trip count. The 8-device test runs in a subprocess (XLA_FLAGS must
be set before jax starts), launched when the module's first test starts so it compiles on the second core
while the rest run; it checks in-shard partners, values and that the compiled mixing has no cross-device
collective.

The draw is compiled once per MixSpec (vmapped over keys, γ and prob traced) and reused by every test of that
spec.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from configs import common, digits_demo
from refine_jax import plan as plan_lib
from refine_jax import steps
from refine_jax.augment import mixing
from refine_jax.augment.mixing import MixSpec

from .conftest import ROOT, env_for
from tests.conftest import plan_of  # noqa: E402

B, HW, C = 8, (32, 32), 10
LAYERS = (0, 1, 2, 3)
SPECS = {
    'mixup': MixSpec('mixup', per_example=False),
    'mixup_pe': MixSpec('mixup', per_example=True),
    'cutmix': MixSpec('cutmix', per_example=False),
    'cutmix_pe': MixSpec('cutmix', per_example=True),
    'manifold': MixSpec('manifold_mixup', per_example=False, layers=LAYERS),
    'manifold_pe': MixSpec('manifold_mixup', per_example=True, layers=(0, 2, 3)),   # non-contiguous points
}


N = 4000   # keys per draw call: one compiled shape for every test


def _draw_one(key, gamma, prob):
  out = {}
  for name, spec in SPECS.items():
    m = mixing.draw(key, spec, gamma, prob, B, HW, None)
    out[name] = (m.idx, m.lam, m.layer, m.box)
  return out


_draw_keys = jax.jit(jax.vmap(_draw_one, in_axes=(0, None, None)))


def draw_keys(keys, gamma=1.0, prob=1.0):
  return jax.tree.map(np.asarray, _draw_keys(keys, jnp.float32(gamma), jnp.float32(prob)))


@functools.lru_cache(maxsize=None)
def draws(seed, gamma=1.0, prob=1.0):
  """N draws of every spec: name -> (idx [N,B], lam [N,B], layer [N], box 4×[N,B] or None)."""
  return draw_keys(jax.random.split(jax.random.key(seed), N), gamma, prob)


@jax.jit
def _apply_all(one, x, y, acts):
  out = {}
  for name, spec in SPECS.items():
    m = mixing.Mixing(spec, *one[name], None)
    hook = m.hook()
    out[name] = (m.inputs(x), m.targets(y), [hook(a, i) for i, a in enumerate(acts)] if hook else list(acts))
  return out


def apply(name, d, j, x, y, acts):
  """Mixing.inputs(x), targets(y), [hook(act_i, i)] for the j-th draw of spec `name` in `d`."""
  one = jax.tree.map(lambda a: a[j], d)
  return jax.tree.map(np.asarray, _apply_all(one, x, y, acts)[name])


def data(seed):
  """Images x [B,32,32,3], label-smoothed one-hot y [B,10], activations at hook points 0..4 (4 ineligible)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B,) + HW + (3,)).astype(np.float32)
  y = (np.eye(C)[rng.integers(0, C, B)] * 0.9 + 0.01).astype(np.float32)
  acts = [x] + [rng.normal(size=(B, s, s, c)).astype(np.float32) for s, c in ((16, 8), (8, 16), (4, 32), (2, 64))]
  return x, y, acts


def np_mix(a, b, lam):
  lam = np.asarray(lam, np.float64).reshape((-1,) + (1,) * (a.ndim - 1))
  return lam * a.astype(np.float64) + (1 - lam) * b.astype(np.float64)


# --------------------------------------------------------------------------- the 8-device subprocess

_MULTI = textwrap.dedent('''
  import sys
  import jax, jax.numpy as jnp, numpy as np
  from jax.sharding import NamedSharding, PartitionSpec as P
  from refine_jax.augment import mixing
  assert jax.device_count() == 8, jax.devices()
  mesh = jax.make_mesh((8,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))
  sh = NamedSharding(mesh, P('data'))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
  y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
  h = rng.normal(size=(64, 4, 4, 5)).astype(np.float32)
  xs, ys, hs = (jax.device_put(a, sh) for a in (x, y, h))
  key = jax.random.key(123)
  SPECS = {'mixup': mixing.MixSpec('mixup', per_example=True), 'cutmix': mixing.MixSpec('cutmix'),
           'manifold': mixing.MixSpec('manifold_mixup', per_example=True, layers=(1,))}

  def f(key, x, y, h, mesh=mesh):
    out = {}
    for name, spec in SPECS.items():
      m = mixing.draw(key, spec, jnp.float32(1.0), jnp.float32(1.0), 64, (8, 8), mesh)
      hook = m.hook()
      out[name] = dict(xo=m.inputs(x), yo=m.targets(y), ho=hook(h, 1) if hook else h, idx=m.idx, lam=m.lam,
                       box=jnp.stack(m.box) if m.box is not None else jnp.zeros(0, jnp.int32))
    return out

  compiled = jax.jit(f).lower(key, xs, ys, hs).compile()   # the HLO checked is the one that runs
  res = compiled(key, xs, ys, hs)
  out = dict(x=x, y=y, h=h, hlo=compiled.as_text())
  for name, r in res.items():
    out[name + '_sharded'] = all(r[k].sharding.spec == P('data') for k in ('xo', 'yo', 'ho'))
    out.update({f'{name}_{k}': np.asarray(a) for k, a in r.items()})
  # The same key without a mesh (one device): its λ and box.
  single = jax.jit(lambda key: f(key, xs, ys, hs, None))(key)
  out.update({f'{name}_{k}1': np.asarray(single[name][k]) for name in SPECS for k in ('lam', 'box')})
  # Control: a cross-shard gather must show up as a collective, or the HLO check proves nothing.
  perm = np.random.default_rng(1).permutation(64)
  out['control_hlo'] = jax.jit(lambda x: x[perm] * 2).lower(xs).compile().as_text()
  np.savez(sys.argv[1], **out)
''')

COLLECTIVES = ('all-gather', 'all-to-all', 'collective-permute', 'all-reduce', 'reduce-scatter',
               'collective-broadcast')


@pytest.fixture(scope='module', autouse=True)
def _multi_proc(tmp_path_factory):
  """Starts the 8-device subprocess with the module's first test; the `multi` fixture collects it."""
  d = tmp_path_factory.mktemp('multi')
  env = env_for(8)
  env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
  with open(d / 'log', 'w') as log:
    p = subprocess.Popen([sys.executable, '-c', _MULTI, str(d / 'out.npz')], cwd=ROOT, env=env,
                         stdout=log, stderr=subprocess.STDOUT)
  yield p, d
  if p.poll() is None:
    p.kill()
    p.wait()


@pytest.fixture(scope='module')
def multi(_multi_proc):
  p, d = _multi_proc
  rc = p.wait(timeout=300)
  assert rc == 0, (d / 'log').read_text()[-4000:]
  return dict(np.load(d / 'out.npz'))


# --------------------------------------------------------------------------- CutMix


@pytest.mark.parametrize('centre, lo, hi, lam_adj', [
    (16, 5, 27, 0.52734375),     # cut = int(32·√0.5) = 22, 16 ∓ 11; 1 − 22²/1024
    (0, 0, 11, 0.8818359375),    # clipped at the top-left: 11×11
    (31, 20, 32, 0.859375),      # 31 − 11 = 20, 31 + 11 = 42 → 32: 12×12
])
def test_cutmix_box_hand_cases(centre, lo, hi, lam_adj):
  y1, y2, x1, x2, lam = mixing.cutmix_box(jnp.float32(0.5), jnp.int32(centre), jnp.int32(centre), 32, 32)
  assert (int(y1), int(y2), int(x1), int(x2)) == (lo, hi, lo, hi)
  assert float(lam) == lam_adj
  mask = np.asarray(mixing.box_mask(y1[None], y2[None], x1[None], x2[None], 32, 32))[0]
  ref = np.zeros((32, 32), bool)
  ref[lo:hi, lo:hi] = True
  np.testing.assert_array_equal(mask, ref)


@pytest.mark.parametrize('name', ['cutmix', 'cutmix_pe'])
def test_cutmix_pastes_partner_box_and_targets_use_adjusted_lambda(name):
  x, y, acts = data(1)
  d = draws(0)
  idx, lam, _, (y1, y2, x1, x2) = d[name]
  area = (y2 - y1) * (x2 - x1)
  np.testing.assert_array_equal(lam, (1.0 - area / 1024.0).astype(np.float32))       # λ' from the box
  assert np.all((y1 >= 0) & (y1 <= y2) & (y2 <= 32) & (x1 >= 0) & (x1 <= x2) & (x2 <= 32))
  if name == 'cutmix':
    assert np.all(y1 == y1[:, :1]) and np.all(x1 == x1[:, :1]) and np.all(lam == lam[:, :1])   # one box
  else:
    assert np.all(lam.std(1) > 0)                                                                # box per example
  nontrivial = 0
  for j in range(16):
    xo, yo, _ = apply(name, d, j, x, y, acts)
    ref = x.copy()
    for b in range(B):
      ref[b, y1[j, b]:y2[j, b], x1[j, b]:x2[j, b]] = x[idx[j, b], y1[j, b]:y2[j, b], x1[j, b]:x2[j, b]]
    np.testing.assert_array_equal(xo, ref)            # partner's pixels inside the box, own pixels outside
    np.testing.assert_allclose(yo, np_mix(y, y[idx[j]], lam[j]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(yo.sum(-1), 1.0, atol=1e-6)
    nontrivial += np.sum((area[j] > 0) & (idx[j] != np.arange(B)))
  assert nontrivial > 10


def test_cutmix_lambda_matches_authors_rand_bbox():
  """λ' of `draw` is distributed as in Yun et al.'s code: λ ~ Beta(1, 1), uniform centre, clipped box."""
  h = w = 32
  lams = draws(0)['cutmix'][1][:, 0]
  rng = np.random.default_rng(0)
  ref = []
  for _ in range(N):   # rand_bbox of github.com/clovaai/CutMix-PyTorch (train.py), float64 numpy
    lam = rng.beta(1.0, 1.0)
    cut = int(h * np.sqrt(1.0 - lam))
    cy, cx = rng.integers(h), rng.integers(w)
    y1, y2 = np.clip(cy - cut // 2, 0, h), np.clip(cy + cut // 2, 0, h)
    x1, x2 = np.clip(cx - cut // 2, 0, w), np.clip(cx + cut // 2, 0, w)
    ref.append(1 - (y2 - y1) * (x2 - x1) / (h * w))
  assert stats.ks_2samp(lams, ref).pvalue > 0.01


# --------------------------------------------------------------------------- Mixup λ, prob, pairs, values


@pytest.mark.parametrize('gamma', [0.2, 1.0, 2.0])
def test_mixup_lambda_is_beta(gamma):
  """4000 λ per mode: one per key per batch, and one per example (500 keys × 8) in per-example mode."""
  d = draws(0, gamma)
  per_batch, per_example = d['mixup'][1], d['mixup_pe'][1][:N // B]
  assert np.all(per_batch == per_batch[:, :1])         # one λ per batch
  assert np.all(per_example.std(1) > 0)                # one λ per example
  ref = stats.beta(gamma, gamma).cdf
  for sample in (per_batch[:, 0], per_example.reshape(-1)):
    assert sample.size == N and np.all((sample >= 0) & (sample <= 1))
    assert stats.kstest(sample, ref).pvalue > 0.01


def test_prob_gates_batch_or_example():
  """With probability 1 − prob the batch (per-batch) or the example (per-example) is left unmixed."""
  prob = 0.3
  d = draws(0, 1.0, prob)
  for unmixed in (d['mixup'][1][:, 0] == 1.0, (d['mixup_pe'][1][:N // B] == 1.0).reshape(-1)):  # Beta(1,1) ≠ 1
    assert unmixed.size == N
    assert stats.binomtest(int(unmixed.sum()), N, 1 - prob).pvalue > 0.01


def test_partner_is_uniform_permutation():
  idx = draws(0)['mixup'][0]
  np.testing.assert_array_equal(np.sort(idx, 1), np.broadcast_to(np.arange(B), idx.shape))
  for i in range(B):
    assert stats.chisquare(np.bincount(idx[:, i], minlength=B)).pvalue > 0.01


@pytest.mark.parametrize('name', ['mixup', 'mixup_pe'])
def test_mixup_inputs_and_targets_match_numpy(name):
  x, y, acts = data(2)
  d = draws(0)
  idx, lam, _, box = d[name]
  assert box is None
  for j in range(4):
    xo, yo, hs = apply(name, d, j, x, y, acts)
    assert np.any(idx[j] != np.arange(B)) and np.all(lam[j] < 1)
    np.testing.assert_allclose(xo, np_mix(x, x[idx[j]], lam[j]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(yo, np_mix(y, y[idx[j]], lam[j]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(yo.sum(-1), 1.0, atol=1e-6)
    assert all(h.tobytes() == a.tobytes() for h, a in zip(hs, acts))   # no hook for input mixup


def test_mix_bf16_uses_float32_lambda():
  """A bf16 input is mixed with the float32 λ and rounded once, so inputs and float32 targets get one λ."""
  lam = np.array([0.999, 0.3, 0.6, 0.9], np.float32)      # bf16(0.999) = 1.0 would drop the partner entirely
  out = mixing.mix(jnp.zeros((4, 3), jnp.bfloat16), jnp.ones((4, 3), jnp.bfloat16), jnp.asarray(lam))
  assert out.dtype == jnp.bfloat16
  want = np.asarray(jnp.asarray(np.float32(1) - lam, jnp.bfloat16), np.float32)   # exact f32 1 − λ, rounded once
  np.testing.assert_array_equal(np.asarray(out, np.float32), np.repeat(want[:, None], 3, 1))
  rng = np.random.default_rng(0)
  a16, b16 = (jnp.asarray(rng.normal(size=(4, 256)), jnp.bfloat16) for _ in range(2))
  ref = np_mix(np.asarray(a16, np.float32), np.asarray(b16, np.float32), lam)
  got = np.asarray(mixing.mix(a16, b16, jnp.asarray(lam)), np.float64)
  half_ulp = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(ref), 1e-30))) - 8)
  assert np.all(np.abs(got - ref) <= half_ulp * 1.001)


# --------------------------------------------------------------------------- the λ sampler itself

M = 100_000
_lambdas = jax.jit(lambda key, gamma: mixing.sample_lambda(key, gamma, (M,)))


def lambdas(seed, gamma):
  return np.asarray(_lambdas(jax.random.key(seed), jnp.float32(gamma)))


def float32_pit(x, dist, rng):
  """Randomised probability integral transform of a float32 sample: U(0, 1) iff x is `dist` rounded to float32.

  A float32 x stands for the reals that round to it, [midpoint below, midpoint above]; u is drawn uniformly in
  [F(lo), F(hi)] (for a discrete law this is the exact PIT). A plain KS test cannot be used: Beta(0.2, 0.2)
  puts 1.6 % of its mass within 2⁻²⁵ of 1, where every float32 sampler returns exactly 1. XLA:CPU flushes
  subnormal results to zero; where the sample holds no subnormal, 0 stands for [0, smallest normal).
  """
  x = np.asarray(x, np.float32)
  lo = (x.astype(np.float64) + np.nextafter(x, np.float32(-1))) / 2
  hi = (x.astype(np.float64) + np.nextafter(x, np.float32(2))) / 2
  if not np.any((x > 0) & (x < np.finfo(np.float32).tiny)):
    hi = np.where(x == 0, np.finfo(np.float32).tiny, hi)
  lo, hi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
  f_lo, f_hi = dist.cdf(lo), dist.cdf(hi)
  return f_lo + rng.uniform(size=x.shape) * (f_hi - f_lo)


@pytest.mark.parametrize('gamma', [0.2, 0.5, 1.0, 2.0, 0.05, 20.0])
def test_lambda_100k_draws_are_beta(gamma):
  """100k draws of `sample_lambda` against scipy's Beta(γ, γ): KS on the float32 PIT, p > 0.01."""
  lam = lambdas(0, gamma)
  assert lam.dtype == np.float32 and np.all((lam >= 0) & (lam <= 1))
  u = float32_pit(lam, stats.beta(gamma, gamma), np.random.default_rng(0))
  assert stats.kstest(u, 'uniform').pvalue > 0.01


@pytest.mark.parametrize('gamma', [0.2, 1.0])
def test_float32_pit_accepts_rounded_beta_and_rejects_a_wrong_gamma(gamma):
  """The KS check's own control: scipy's Beta draws rounded to float32 pass, Beta(1.1γ, 1.1γ) draws fail."""
  rng = np.random.default_rng(1)
  d = stats.beta(gamma, gamma)
  right = d.rvs(M, random_state=rng).astype(np.float32)
  wrong = stats.beta(1.1 * gamma, 1.1 * gamma).rvs(M, random_state=rng).astype(np.float32)
  assert stats.kstest(float32_pit(right, d, rng), 'uniform').pvalue > 0.01
  assert stats.kstest(float32_pit(wrong, d, rng), 'uniform').pvalue < 1e-6
  if gamma == 0.2:
    assert stats.kstest(right, d.cdf).pvalue < 1e-6   # why the PIT: the plain test rejects the rounded truth


def test_lambda_edges_and_purity():
  """γ = 0 → exactly 1; tiny and huge γ → finite, in [0, 1]; the same key gives the same bits."""
  sample = jax.jit(mixing.sample_lambda, static_argnums=2)
  for shape in ((), (B,)):
    assert np.all(np.asarray(sample(jax.random.key(7), jnp.float32(0.0), shape)) == 1.0)
  # From the smallest normal float32 γ up (XLA:CPU reads a subnormal γ as 0, i.e. mixing off).
  for gamma in (np.finfo(np.float32).tiny, 1e-30, 1e-12, 1e-6, 0.01):
    lam = lambdas(1, gamma)
    assert np.all(np.isfinite(lam) & (lam >= 0) & (lam <= 1)), gamma
    ends = np.mean((lam == 0) | (lam == 1))
    assert ends > (0.99 if gamma <= 1e-6 else 0.5), (gamma, ends)    # Beta(γ, γ)'s mass piles up at the ends
    assert abs(np.mean(lam < 0.5) - 0.5) < 0.01                      # symmetric: half of it at each end
  for gamma in (1e4, 1e8, 1e30):
    lam = lambdas(1, gamma)
    assert np.all(np.isfinite(lam)) and np.all(np.abs(lam - 0.5) <= 6 / np.sqrt(8 * gamma + 4) + 1e-7), gamma
  a, b = lambdas(2, 0.3), lambdas(2, 0.3)
  assert a.tobytes() == b.tobytes() and np.any(a != lambdas(3, 0.3))


def _accept_probability(alpha):
  """Marsaglia–Tsang's acceptance probability at α, by quadrature: ∫ φ(z)·exp(z²/2 + d(1 − v + log v)) dz over
  1 + cz > 0, v = (1 + cz)³, i.e. ∫ v^d e^{d(1 − v)} / √(2π) dz."""
  d = alpha - 1 / 3
  c = 1 / np.sqrt(9 * d)
  f = lambda z: np.exp(3 * d * np.log1p(c * z) + d * (1 - (1 + c * z) ** 3)) / np.sqrt(2 * np.pi)
  return integrate.quad(f, -1 / c, np.inf, limit=200)[0]


def test_gamma_candidates_reject_as_stated_and_accept_gamma(monkeypatch):
  """With K = 1 or 2 candidates the fallback (log V = 0 exactly) occurs at the quadrature's rate; the
  docstring's bound holds; with the real K, d·V is scipy's Gamma(α)."""
  assert abs(_accept_probability(1.0) - 0.95167) < 1e-5                  # the figure sample_lambda states
  assert all(_accept_probability(a) > _accept_probability(1.0) for a in (1.01, 1.5, 3.0, 30.0))
  assert (1 - _accept_probability(1.0)) ** mixing.GAMMA_CANDIDATES <= 8.9e-22
  n = 200_000
  for k in (1, 2):
    monkeypatch.setattr(mixing, 'GAMMA_CANDIDATES', k)
    for alpha in (1.0, 3.0):
      log_v = np.asarray(jax.jit(lambda key: mixing._log_v(key, jnp.float32(alpha - 1 / 3), (n,)))(jax.random.key(k)))
      fails = int(np.sum(log_v == 0))
      assert stats.binomtest(fails, n, (1 - _accept_probability(alpha)) ** k).pvalue > 0.01, (k, alpha, fails)
  monkeypatch.undo()
  for alpha in (1.0, 1.2, 3.0, 50.0):
    d = alpha - 1 / 3
    log_v = jax.jit(lambda key: mixing._log_v(key, jnp.float32(d), (M,)))(jax.random.key(5))
    g = d * np.exp(np.asarray(log_v, np.float64))
    assert stats.kstest(g, stats.gamma(alpha).cdf).pvalue > 0.01, alpha


# --------------------------------------------------------------------------- switched off, NaN-safety


@pytest.mark.parametrize('gamma, prob', [(0.0, 1.0), (1.0, 0.0)])
def test_switched_off_is_bitwise_identity(gamma, prob):
  """γ = 0 or prob = 0: inputs, targets and every hook point unchanged bit for bit, for every kind."""
  x, y, acts = data(3)
  x[0, 0, 0, 0] = -0.0          # 1·(−0) + 0·p = +0: only an exact identity keeps −0
  x[1, 0, 0, 0] = np.inf        # 0·inf = NaN in the partner's blend
  acts[2][2, 1, 1, 1] = -np.inf
  acts[0] = x
  d = draws(0, gamma, prob)
  for name in SPECS:
    np.testing.assert_array_equal(d[name][1], 1.0)
    for j in range(3):
      xo, yo, hs = apply(name, d, j, x, y, acts)
      for got, want in [(xo, x), (yo, y)] + list(zip(hs, acts)):
        assert got.tobytes() == want.tobytes(), name


def test_never_nan():
  """Tiny to huge γ: λ in [0, 1] (exact 0 and 1 included), finite mixes."""
  x, y, acts = data(4)
  for gamma in (1e-8, 1e-3, 0.1, 1e4):
    d = draws(0, gamma)
    for name in SPECS:
      assert np.all((d[name][1] >= 0) & (d[name][1] <= 1)), (name, gamma)
    for j in range(4):
      out = jax.tree.map(np.asarray, _apply_all(jax.tree.map(lambda a: a[j], d), x, y, acts))
      assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(out)), gamma
  lam = draws(0, 1e-3)['mixup_pe'][1]
  assert np.any(lam == 0) and np.any(lam == 1)          # the degenerate ends really were exercised


# --------------------------------------------------------------------------- Manifold Mixup


@pytest.mark.parametrize('name', ['manifold', 'manifold_pe'])
def test_manifold_layer_is_uniform_over_spec_layers(name):
  layers = SPECS[name].layers
  chosen = draws(0)[name][2]
  assert set(chosen.tolist()) == set(layers)
  assert stats.chisquare([(chosen == l).sum() for l in layers]).pvalue > 0.01


@pytest.mark.parametrize('name', ['manifold', 'manifold_pe'])
def test_manifold_hook_mixes_only_at_chosen_point(name):
  x, y, acts = data(5)
  d = draws(0)
  idx, lam, layer, box = d[name]
  assert box is None
  for j in range(24):
    xo, yo, hs = apply(name, d, j, x, y, acts)
    assert xo.tobytes() == x.tobytes()               # manifold mixup leaves the input to hook(·, 0)
    changed = [i for i, (h, a) in enumerate(zip(hs, acts)) if h.tobytes() != a.tobytes()]
    assert changed == [layer[j]]
    np.testing.assert_allclose(hs[layer[j]], np_mix(acts[layer[j]], acts[layer[j]][idx[j]], lam[j]),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(yo, np_mix(y, y[idx[j]], lam[j]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(yo.sum(-1), 1.0, atol=1e-6)
  assert set(layer[:24].tolist()) == set(SPECS[name].layers)


def test_none_and_input_kinds_have_no_hook():
  for kind in ('none', 'mixup', 'cutmix'):
    m = mixing.Mixing(MixSpec(kind), jnp.arange(B), jnp.full((B,), 0.5), jnp.int32(0),
                      (jnp.zeros(B, jnp.int32),) * 4 if kind == 'cutmix' else None)
    assert m.hook() is None
  x, y, _ = data(6)
  m = mixing.Mixing(MixSpec('none'), jnp.arange(B)[::-1], jnp.full((B,), 0.5), jnp.int32(0))
  assert np.asarray(m.inputs(x)).tobytes() == x.tobytes()
  assert np.asarray(m.targets(y)).tobytes() == y.tobytes()


# --------------------------------------------------------------------------- purity


def test_same_key_same_mixing_different_keys_differ():
  keys = jax.random.split(jax.random.key(0), N)
  a = draws(0)
  b = draw_keys(keys)                                   # a second call
  r = draw_keys(keys[::-1])                              # the same keys in reverse order: a function of the key only
  for u, v, w in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(r)):
    assert u.tobytes() == v.tobytes() == w[::-1].tobytes()
  c = draws(1)
  for name in SPECS:
    assert np.any(a[name][0] != c[name][0]) and np.any(a[name][1] != c[name][1])
    rows = [b''.join(np.asarray(leaf[k]).tobytes() for leaf in jax.tree.leaves(a[name])) for k in range(100)]
    assert len(set(rows)) == 100                          # 100 keys, 100 different mixings
  assert np.any(a['manifold'][2] != c['manifold'][2])


def test_partner_index_rejects_uneven_shards():
  with pytest.raises(ValueError):
    mixing.partner_index(jax.random.key(0), 10, 4)


# --------------------------------------------------------------------------- compiled steps: no data-dependent loop

TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"\d+"\}')


def uncounted_loops(hlo: str) -> tuple[list[str], list[str]]:
  """(every `while` instruction of optimized HLO text, those whose backend_config has no known_trip_count).

  XLA's GPU runtime copies the condition of a loop of unknown trip count to the host on every iteration. The
  text is the same on jax 0.10 and 0.12: `... while(%tuple), condition=..., body=..., backend_config={...,
  "known_trip_count":{"n":"5"}}` (no backend_config at all, or none naming a count, when it is unknown)."""
  loops = [l.strip() for l in hlo.splitlines() if re.search(r'\swhile\(', l) and 'condition=' in l]
  return loops, [l for l in loops if not TRIP_COUNT.search(l)]


def test_loop_detector_sees_jax_random_beta():
  """Control: jax.random.beta (rejection loops) compiles to loops of unknown trip count, which are found."""
  hlo = jax.jit(lambda k, g: jax.random.beta(k, g, g, (B,))).lower(jax.random.key(0), 1.0).compile().as_text()
  loops, bad = uncounted_loops(hlo)
  assert bad and len(loops) > len(bad)          # its threefry loops are counted, its rejection loops are not


@pytest.mark.parametrize('kind', ['none', 'mixup', 'cutmix', 'manifold_mixup'])
def test_compiled_steps_have_no_loop_of_unknown_trip_count(kind):
  """The digits demo's train step for each mixing kind, and its eval steps (clean; mixed with the phase's
  spec, per batch and per example as R̂aug and the phase-end diagnostics draw it), compiled as training
  compiles them: every `while` carries a known trip count."""
  c = digits_demo.get_config()
  c.phases.augmented.mix = common.mix(kind, 1.0)
  plan = plan_of(c, 22)
  env = steps.make_env(plan, steps.make_mesh(), num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3)
  spec = plan.phases[0].mix
  assert spec.kind == kind
  state = jax.eval_shape(functools.partial(steps.init_state, env, (16, 16, 3), 0))

  def batch(n, mask=False):
    b = {'image': jax.ShapeDtypeStruct((n, 16, 16, 3), jnp.uint8), 'label': jax.ShapeDtypeStruct((n,), jnp.int32)}
    return dict(b, mask=jax.ShapeDtypeStruct((n,), jnp.float32)) if mask else b

  key = jax.random.fold_in(jax.random.PRNGKey(0), steps.DIAG_KEY_DATA)   # a raw key, as the Evaluator's
  texts = {'train_step': jax.jit(functools.partial(steps.train_step, env, spec)).lower(state, batch(c.batch_size))}
  for name, s in (('eval_sums clean', None), ('eval_sums mixed', spec),
                  ('eval_sums mixed per example', dataclasses.replace(spec, per_example=True))):
    texts[name] = jax.jit(functools.partial(steps.eval_sums, env, s)).lower(state, batch(c.eval_batch_size, True),
                                                                            key)
  for name, lowered in texts.items():
    loops, bad = uncounted_loops(lowered.compile().as_text())
    assert not bad, (kind, name, len(loops), bad[:2])


# --------------------------------------------------------------------------- 8 devices (subprocess)


@pytest.mark.parametrize('name', ['mixup', 'cutmix', 'manifold'])
def test_multi_device_partners_stay_in_shard_and_values_match(multi, name):
  idx = multi[name + '_idx']                              # local index within each shard of 8
  shards = idx.reshape(8, 8)
  np.testing.assert_array_equal(np.sort(shards, 1), np.broadcast_to(np.arange(8), (8, 8)))   # permutation each
  assert len({s.tobytes() for s in shards}) > 1          # independent permutations, not one repeated
  glob = np.arange(64) // 8 * 8 + idx                     # the partner's global index
  assert np.all(glob // 8 == np.arange(64) // 8)
  x, y, h, lam = multi['x'], multi['y'], multi['h'], multi[name + '_lam']
  assert np.all(lam < 1)
  if name == 'cutmix':
    y1, y2, x1, x2 = multi['cutmix_box']
    ref = x.copy()
    for b in range(64):
      ref[b, y1[b]:y2[b], x1[b]:x2[b]] = x[glob[b], y1[b]:y2[b], x1[b]:x2[b]]
    np.testing.assert_array_equal(multi['cutmix_xo'], ref)
    np.testing.assert_array_equal(lam, (1 - (y2 - y1) * (x2 - x1) / 64.0).astype(np.float32))
  elif name == 'mixup':
    np.testing.assert_allclose(multi['mixup_xo'], np_mix(x, x[glob], lam), rtol=1e-6, atol=1e-6)
  else:
    assert multi['manifold_xo'].tobytes() == x.tobytes()
    np.testing.assert_allclose(multi['manifold_ho'], np_mix(h, h[glob], lam), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(multi[name + '_yo'], np_mix(y, y[glob], lam), rtol=1e-6, atol=1e-6)
  assert multi[name + '_sharded']                         # outputs stay sharded P('data')


def test_multi_device_mixing_has_no_collectives(multi):
  """The compiled mixing (draw, inputs, targets, hook for all three kinds) moves no data between devices."""
  assert [c for c in COLLECTIVES if c in str(multi['control_hlo'])]   # the detector sees a cross-shard gather
  assert [c for c in COLLECTIVES if c in str(multi['hlo'])] == []


def test_multi_device_lambda_equals_single_device_draw(multi):
  """λ and the box do not depend on the mesh: each device computes the single-device draw locally."""
  for name in ('mixup', 'cutmix', 'manifold'):
    np.testing.assert_array_equal(multi[name + '_lam'], multi[name + '_lam1'])
    np.testing.assert_array_equal(multi[name + '_box'], multi[name + '_box1'])


def test_multi_device_draw_has_no_loop_of_unknown_trip_count(multi):
  """The draw inside shard_map on 8 devices (all three kinds) compiles to counted loops only."""
  assert uncounted_loops(str(multi['hlo']))[1] == []
