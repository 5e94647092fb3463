"""Mixup, CutMix and Manifold Mixup on device, inside the jitted step.

Pure functions of (key, strength, probability): no state, so the mixing of step s is `fold_in(seed, s)` and a
resumed run mixes the same pairs with the same λ. The partner of each example is drawn from its own device's
shard of the batch (a permutation per shard, applied inside `shard_map`), so mixing moves no data between
devices whatever the mesh. Knows nothing of models beyond arrays.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class MixSpec:
  """The static part of a phase's mixing (what the jitted step is specialised on)."""
  kind: str = 'none'            # none | mixup | cutmix | manifold_mixup
  per_example: bool = False     # one λ per example instead of one per batch (extension)
  layers: tuple[int, ...] = (0,)  # manifold mixup: eligible mixing points, drawn uniformly each step


# Marsaglia–Tsang candidates evaluated per Gamma variate (K in `sample_lambda`, which states what it buys).
GAMMA_CANDIDATES = 16
# γ in (0, GAMMA_FLOOR) is drawn as GAMMA_FLOOR: it keeps log(U)/γ finite in float32 (|t| ≤ 1.6e31), and at it
# λ is 0 or 1 in float32 but for a fraction ~1e-28 of draws anyway.
GAMMA_FLOOR = 1e-30


def _log_v(key: Array, d: Array, shape: tuple[int, ...]) -> Array:
  """log V of one Marsaglia–Tsang draw Gamma(α) = d·V (d = α − 1/3, α ≥ 1) per element of `shape`, from
  GAMMA_CANDIDATES candidates evaluated at once: the first accepted one, or V = 1 (log V = 0) if none is.

  Candidate: z ~ N(0, 1), u ~ U[0, 1), V = (1 + c·z)³ with c = 1/√(9d), accepted iff 1 + c·z > 0 and
  log u < z²/2 + d·(1 − V + log V). log V = 3·log1p(c·z) and 1 − V + log V = log V − expm1(log V) keep the
  test accurate in float32 when c·z is small (large α).
  """
  k_z, k_u = jax.random.split(key)
  z = jax.random.normal(k_z, (GAMMA_CANDIDATES,) + shape)
  u = jax.random.uniform(k_u, (GAMMA_CANDIDATES,) + shape)
  cz = z / jnp.sqrt(9.0 * d)
  ok = cz > -1.0
  log_v = 3.0 * jnp.log1p(jnp.where(ok, cz, 0.0))
  accept = ok & (jnp.log(u) < 0.5 * z * z - d * (jnp.expm1(log_v) - log_v))
  first = jnp.argmax(accept, axis=0)   # the first accepted candidate (0 when none is: replaced below)
  chosen = jnp.take_along_axis(log_v, first[None], axis=0)[0]
  return jnp.where(accept.any(axis=0), chosen, 0.0)


def sample_lambda(key: Array, gamma: Array, shape: tuple[int, ...]) -> Array:
  """λ ~ Beta(γ, γ) in float32, with no loop whose trip count depends on the draws; γ = 0 gives λ = 1 exactly
  (mixing off); λ in [0, 1] and finite for every γ ≥ 0.

  Why no loop: jax.random.beta draws its Gammas by rejection in a `while` loop, and XLA's GPU runtime copies
  such a loop's condition to the host and waits for it on every iteration (several stalls per mixed step).

  How: λ = X / (X + Y) with X, Y ~ Gamma(γ) independent, each Gamma(γ + 1)·U^(1/γ) (exact for every γ > 0,
  and it keeps Marsaglia–Tsang (ACM TOMS 26(3), 2000) at α = γ + 1 ≥ 1, where it accepts best), Gamma(γ + 1)
  from K = GAMMA_CANDIDATES candidates evaluated at once (`_log_v`). In log space, t = log X − log Y (the
  common log d cancels; U^(1/γ) cannot underflow to 0/0 at small γ) and λ = 1 − m for t ≥ 0, m for t < 0,
  with m = e / (1 + e), e = exp(−|t|): m = min(λ, 1 − λ) is accurate to a few ulp, and 1 − m is λ rounded to
  the nearest float32 (jax.random.beta's 1 / (1 + e) is 1 whenever e < 2⁻²⁴: at γ = 0.2, 1.9 % of its draws
  are exactly 1, where Beta rounded to float32 has 1.6 %).

  Exactness: one candidate is accepted with probability ≥ 0.95167 (at α = 1; it rises with α), so all K are
  rejected with probability ≤ 0.04833^K = 8.9e-22 per Gamma (K = 16); that Gamma is then d = γ + 2/3 (V = 1),
  finite. The distribution of λ is therefore within total variation 1.8e-21 of Beta(γ, γ) rounded to float32,
  up to float32 arithmetic and the 2⁻²³ grid of float32 uniforms (as for jax.random's own samplers).
  γ < GAMMA_FLOOR is drawn as GAMMA_FLOOR. A pure function of (key, γ, shape) with no collective: the same on
  every device.
  """
  g = jnp.maximum(jnp.asarray(gamma, jnp.float32), GAMMA_FLOOR)
  k_v, k_u = jax.random.split(key)
  log_v = _log_v(k_v, g + 2.0 / 3.0, (2,) + shape)                 # X and Y: d = (γ + 1) − 1/3
  log_u = jnp.log1p(-jax.random.uniform(k_u, (2,) + shape))        # log U, U = 1 − uniform ∈ (0, 1]: finite
  t = (log_v[0] - log_v[1]) + (log_u[0] - log_u[1]) / g
  e = jnp.exp(-jnp.abs(t))                                          # ∈ [0, 1]: no overflow
  m = e / (1.0 + e)
  lam = jnp.where(t >= 0, 1.0 - m, m)
  return jnp.where(gamma > 0, lam, 1.0).astype(jnp.float32)


def partner_index(key: Array, batch: int, num_shards: int) -> Array:
  """For each example, the in-shard index of its partner: an independent permutation per shard.

  Returns local indices in [0, batch // num_shards), laid out shard after shard.
  """
  if num_shards < 1 or batch % num_shards:
    raise ValueError(f'batch {batch} is not divisible into {num_shards} equal shards')
  local = batch // num_shards
  keys = jax.random.split(key, num_shards)
  return jax.vmap(lambda k: jax.random.permutation(k, local))(keys).reshape(batch)


def take_partner(x: Array, idx: Array, mesh: Optional[Mesh]) -> Array:
  """x of each example's partner, gathered inside each device's shard."""
  if mesh is None or mesh.size == 1:
    return x[idx]
  return jax.shard_map(lambda xs, i: xs[i], mesh=mesh, in_specs=(P('data'), P('data')),
                       out_specs=P('data'))(x, idx)


def _bcast(lam: Array, ndim: int) -> Array:
  return lam.reshape(lam.shape + (1,) * (ndim - lam.ndim))


def mix(x: Array, partner: Array, lam: Array) -> Array:
  """λ·x + (1−λ)·partner, with λ per batch (scalar) or per example ([B]).

  Computed in (at least) float32 and cast back, so a bf16 activation gets the same λ as the float32 targets
  (λ rounded to bf16 would weight inputs and targets differently). λ = 1 returns x and λ = 0 the partner
  exactly (bitwise; no 0·inf = NaN from the other operand), so mixing switched off is the identity.
  """
  lam = _bcast(jnp.asarray(lam, jnp.float32), x.ndim)
  ct = jnp.promote_types(x.dtype, jnp.float32)
  mixed = (lam * x.astype(ct) + (1 - lam) * partner.astype(ct)).astype(x.dtype)
  return jnp.where(lam == 1, x, jnp.where(lam == 0, partner, mixed))


def cutmix_box(lam: Array, cy: Array, cx: Array, height: int, width: int):
  """The CutMix box of Yun et al.'s code and its corrected λ.

  cut = int(side·√(1−λ)); edges centre ∓ cut//2 clipped to the image; λ' = 1 − box_area / (H·W).
  Returns (y1, y2, x1, x2, λ'), each shaped like `lam`.
  """
  r = jnp.sqrt(1.0 - lam)
  cut_h = jnp.floor(height * r).astype(jnp.int32)
  cut_w = jnp.floor(width * r).astype(jnp.int32)
  y1 = jnp.clip(cy - cut_h // 2, 0, height)
  y2 = jnp.clip(cy + cut_h // 2, 0, height)
  x1 = jnp.clip(cx - cut_w // 2, 0, width)
  x2 = jnp.clip(cx + cut_w // 2, 0, width)
  lam_adj = 1.0 - ((y2 - y1) * (x2 - x1)).astype(jnp.float32) / (height * width)
  return y1, y2, x1, x2, lam_adj


def box_mask(y1, y2, x1, x2, height: int, width: int) -> Array:
  """Boolean [..., H, W] mask of the box (per batch or per example)."""
  rows = jnp.arange(height)
  cols = jnp.arange(width)
  inside_r = (rows >= y1[..., None]) & (rows < y2[..., None])
  inside_c = (cols >= x1[..., None]) & (cols < x2[..., None])
  return inside_r[..., :, None] & inside_c[..., None, :]


@dataclasses.dataclass
class Mixing:
  """One step's draw: what to mix, with whom, how much. Built by `draw`, used by `inputs` / `hook` / `targets`."""
  spec: MixSpec
  idx: Array                 # partner index within each shard, [B]
  lam: Array                 # λ per example [B] (equal across the batch in per-batch mode)
  layer: Array               # manifold mixup: the chosen mixing point (int scalar)
  box: Optional[tuple] = None  # cutmix: (y1, y2, x1, x2), each [B]
  mesh: Optional[Mesh] = None

  def inputs(self, x: Array) -> Array:
    """Mixes the images (mixup, cutmix); identity for manifold mixup and none."""
    if self.spec.kind == 'mixup':
      return mix(x, take_partner(x, self.idx, self.mesh), self.lam)
    if self.spec.kind == 'cutmix':
      m = box_mask(*self.box, x.shape[1], x.shape[2])[..., None]
      return jnp.where(m, take_partner(x, self.idx, self.mesh), x)
    return x

  def hook(self) -> Optional[Callable[[Array, int], Array]]:
    """For manifold mixup, the model hook that mixes activations at the drawn point."""
    if self.spec.kind != 'manifold_mixup':
      return None
    layers = self.spec.layers

    def h(act: Array, i: int) -> Array:
      if i not in layers:
        return act
      # lax.cond runs the mixing only at the drawn point (jnp.where would compute it at every eligible one).
      return jax.lax.cond(self.layer == i,
                          lambda a: mix(a, take_partner(a, self.idx, self.mesh), self.lam),
                          lambda a: a, act)
    return h

  def targets(self, y: Array) -> Array:
    """Mixed soft targets: λ·y + (1−λ)·y_partner."""
    if self.spec.kind == 'none':
      return y
    return mix(y, take_partner(y, self.idx, self.mesh), self.lam)


def draw(key: Array, spec: MixSpec, gamma: Array, prob: Array, batch: int, image_hw: tuple[int, int],
         mesh: Optional[Mesh] = None) -> Mixing:
  """Samples one step's mixing. With probability 1 − `prob` the batch (or example) is left unmixed (λ = 1).

  With a multi-device mesh the draw runs inside `shard_map` with everything replicated: each device computes
  the same (tiny, [B]-sized) draw locally, so it needs no collective whatever the partitioner would choose,
  and the values are those of the single-device draw. (Left to the partitioner, the per-example λ of the
  former rejection-sampled Beta, a while loop, was sharded over `data`, with an all-reduce of its predicate
  every iteration.) No loop of the draw has a data-dependent trip count (`sample_lambda`).
  """
  num_shards = 1 if mesh is None else mesh.shape['data']

  def sample(key, gamma, prob):
    k_perm, k_lam, k_apply, k_layer, k_box = jax.random.split(key, 5)
    shape = (batch,) if spec.per_example else ()
    lam = sample_lambda(k_lam, gamma, shape)
    apply = jax.random.uniform(k_apply, shape) < prob
    lam = jnp.where(apply, lam, 1.0)
    layer = jnp.asarray(spec.layers, jnp.int32)[jax.random.randint(k_layer, (), 0, len(spec.layers))]
    box = None
    if spec.kind == 'cutmix':
      h, w = image_hw
      ky, kx = jax.random.split(k_box)
      cy = jax.random.randint(ky, shape, 0, h)
      cx = jax.random.randint(kx, shape, 0, w)
      *box, lam = cutmix_box(lam, cy, cx, h, w)
      box = tuple(jnp.broadcast_to(b, (batch,)) for b in box)
    lam = jnp.broadcast_to(lam, (batch,))
    if spec.kind == 'none':
      lam = jnp.ones((batch,), jnp.float32)
    return partner_index(k_perm, batch, num_shards), lam, layer, box

  if mesh is not None and mesh.size > 1:
    sample = jax.shard_map(sample, mesh=mesh, in_specs=(P(), P(), P()), out_specs=P())
  idx, lam, layer, box = sample(key, jnp.asarray(gamma, jnp.float32), jnp.asarray(prob, jnp.float32))
  return Mixing(spec, idx, lam, layer, box, mesh)
