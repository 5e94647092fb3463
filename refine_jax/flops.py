"""FLOPs of a JAX function counted from its jaxpr: the model FLOPs behind the benchmarks' TFLOP/s and MFU.

XLA's cost analysis is no substitute: on GPU it does not count the convolutions that run as cuDNN custom calls
(ResNet-50's step came out at 0.017 × PyTorch's count), and on CPU it counts other work by other rules (1.10 ×
and 0.84 × PyTorch's count for the device check's smoke cases). This count depends on the traced program only,
so it is the same on every backend and precision.

Convention, PyTorch's (`torch.utils.flop_counter.FlopCounterMode`), so that the two can stand side by side:
only matrix products (`dot_general`) and convolutions (`conv_general_dilated`) count, 2 FLOPs per multiply-add;
elementwise work, reductions, normalisation, pooling, mixing and the optimizer's update count nothing (one FLOP
per element of each arithmetic primitive would add 0.6-1.7 % to the train steps of ResNet-50, PreActResNet-18 and
WRN-28-10 at batch 2; on an accelerator that work is bound by memory, not by the matrix units a peak FLOP/s
figure describes).
- `dot_general`: 2 · (output elements) · (contracted size).
- `conv_general_dilated`: 2 · (output elements) · (kernel spatial size) · (kernel input features, i.e. input
  features / feature_group_count), except along an input-dilated (transposed) spatial dimension, where the
  positions that meet real, not inserted-zero, input are the input's, not the output's: the gradient of a
  stride-s convolution w.r.t. its input then costs what the forward costs, as in PyTorch's count of
  `convolution_backward`. The backward pass of a step traced through `jax.grad` is made of such ordinary
  convolutions and products and counts with them.
- Sub-programs: `jit`, `remat` (its recomputation counts: it runs), custom_jvp / custom_vjp calls and any other
  primitive holding jaxprs count the sum of what they hold, once; `cond` / `switch` its costliest branch (which
  one runs is not known when tracing: an upper bound, exact where the branches cost the same, as Manifold
  Mixup's, which hold no products); `scan` its body × its length (a fori_loop with static bounds is one);
  `while` nothing where its body and condition hold no products (the Beta sampler's rejection loop), otherwise a
  ValueError (its trip count is not known when tracing); `shard_map` its per-device body × the number of devices
  on its newly manual mesh axes: the work of all devices, which over a data axis is the global computation's,
  and which counts work the body replicates once per device.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.extend import core as jcore


def count(fn: Callable, *args: Any) -> int:
  """FLOPs of one call `fn(*args)`, args being arrays or jax.ShapeDtypeStruct: traced only, never compiled or
  run (a jitted function with donated arguments may be passed the live arguments)."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def jaxpr_flops(jaxpr: jcore.Jaxpr) -> int:
  return sum(eqn_flops(e) for e in jaxpr.eqns)


def eqn_flops(e: jcore.JaxprEqn) -> int:
  name = e.primitive.name
  if name == 'dot_general':
    return _dot(e)
  if name == 'conv_general_dilated':
    return _conv(e)
  subs = [jaxpr_flops(j) for j in _sub_jaxprs(e.params.values())]
  if name == 'cond':
    return max(subs)
  if name == 'scan':
    return int(e.params['length']) * sum(subs)
  if name == 'while' and sum(subs):
    raise ValueError('while loop with matrix products or convolutions in its body: its trip count is not known '
                     'when tracing (a fori_loop with static bounds traces as a scan, which counts)')
  if name == 'shard_map':
    return _manual_devices(e.params) * sum(subs)
  return sum(subs)


def _dot(e: jcore.JaxprEqn) -> int:
  (lhs_contract, _), _ = e.params['dimension_numbers']
  lhs = e.invars[0].aval.shape
  return 2 * math.prod(e.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)


def _conv(e: jcore.JaxprEqn) -> int:
  dn = e.params['dimension_numbers']
  lhs, rhs = (v.aval.shape for v in e.invars[:2])
  out = e.outvars[0].aval.shape
  lhs_spatial = [lhs[d] for d in dn.lhs_spec[2:]]
  out_spatial = [out[d] for d in dn.out_spec[2:]]
  positions = math.prod(o if dil == 1 else i for o, i, dil in zip(out_spatial, lhs_spatial, e.params['lhs_dilation']))
  kernel = math.prod(rhs[d] for d in dn.rhs_spec[2:]) * rhs[dn.rhs_spec[1]]
  return 2 * out[dn.out_spec[0]] * out[dn.out_spec[1]] * positions * kernel


def _manual_devices(params: dict) -> int:
  mesh = params['mesh']
  axes = params.get('newly_manual_axes', params.get('manual_axes', mesh.axis_names))
  return math.prod(mesh.shape[a] for a in axes)


def _sub_jaxprs(values):
  for v in values:
    if isinstance(v, jcore.ClosedJaxpr):
      yield v.jaxpr
    elif isinstance(v, jcore.Jaxpr):
      yield v
    elif isinstance(v, (tuple, list)):
      yield from _sub_jaxprs(v)
