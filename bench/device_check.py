"""The prepared accelerator benchmark behind bench/device_check.sh: our jitted train step against the same model
in PyTorch on the same device, batch and precision, plus the cost of on-device mixing.

    bash bench/device_check.sh [--smoke] [--budget_s=450] [--peak_tflops=N]      # the usual way
    python -m bench.device_check --out=DIR [--smoke] ...                          # what the script runs

Three halves, each in its own process so that each framework has the whole device to itself (JAX preallocates
most of a GPU's memory), run one after the other by `main`:
- `jax`: per case, the Env training builds (`bench.common.step_env`), the state made by `jax.jit(init_state,
  out_shardings=replicated)` and the batch put on the `data` axis of the mesh (`NamedSharding`), the step
  `jax.jit(train_step, donate_argnums=0)` — exactly as `refine_jax.train` does — lowered and compiled once; the
  model FLOPs of one step (the TFLOP/s and MFU numerator) counted from the step's jaxpr by `refine_jax.flops`
  (matrix products and convolutions, forward and backward, PyTorch's flop counter's convention), with XLA's cost
  analysis of the compiled and the lowered step beside it for reference only (on GPU the compiled one misses the
  cuDNN convolutions). Right after the case the mixing block
  shares (its `none`), Mixup / CutMix / Manifold Mixup, timed interleaved with it round by round.
- `torch`: the same models (bench/torch_step.get_model; torchvision's ResNet-50) in eager PyTorch, bf16
  autocast, channels_last, the same SGD (lr 0.01, Nesterov momentum 0.9, weight decay 5e-4), the same uint8
  batch normalised inside the step; model FLOPs of one step from torch.utils.flop_counter (an independent
  count beside ours).
- `torch_compile`: the ResNet-50 case again with `torch.compile(model)`, in a process of its own under a
  timeout; a failure or a timeout is recorded, not fatal.

Timing, both sides alike: the first step (random init, step 0) gives the first-step loss; `warmup` more steps
are run untimed; then `rounds` rounds of `steps` steps each, with no host sync inside a round and one
`block_until_ready` (JAX, on the whole new state and the loss) or `torch.cuda.synchronize` (PyTorch) at each
round's start and end; the reported step time is the median over rounds of round time ÷ steps.

Each half writes its JSON after every case (a half stopped by its time limit keeps what it measured);
`main` merges them into OUT/device_check.json, prints the table and writes it to OUT/device_check.md.
`--smoke` runs the same code on tiny batches and images, one timed step each (CPU, in tests).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# H200 SXM dense bf16 (no sparsity) from NVIDIA's data sheet; the H100 SXM shares it. KINDS.md
# (/work/.library/device) measured about 790 TFLOP/s on an 8192³ bf16 matmul through PyTorch on the lent H200.
SPEC_PEAK_BF16 = {'H200': 989.4, 'H100': 989.4}
MEASURED_MATMUL_BF16 = {'H200': 790.0}
MEAN, STD = (0.5,) * 3, (0.25,) * 3  # bench.common.step_env's normalisation; the PyTorch side uses the same
MIX_KINDS = ('none', 'mixup', 'cutmix', 'manifold_mixup')
FLOPS_SOURCE = ('refine_jax.flops: the jaxpr\'s matrix products and convolutions, forward and backward, '
                '2 per multiply-add')


def plan(smoke: bool) -> dict:
  """The cases: (model, batch, image size, classes). Smoke: the same code on tiny sizes, ResNet-50 (torchvision's
  on the PyTorch side) and PreActResNet-18 only (WRN-28-10 runs the same code, and its compile would double the
  smoke's time on a 2-core CPU)."""
  if smoke:
    return {'dtype': 'bfloat16', 'warmup': 0, 'rounds': 1, 'steps': 1,
            'cases': [('resnet50', 2, 32, 10), ('preact_resnet18', 2, 16, 10)],
            'mixing': ('preact_resnet18', 2, 16, 10), 'compile_case': ('preact_resnet18', 2, 16, 10)}
  return {'dtype': 'bfloat16', 'warmup': 3, 'rounds': 5, 'steps': 10,
          'cases': [('resnet50', 256, 224, 1000), ('preact_resnet18', 128, 32, 10), ('preact_resnet18', 512, 32, 10),
                    ('wide_resnet28_10', 128, 32, 10), ('wide_resnet28_10', 512, 32, 10)],
          'mixing': ('preact_resnet18', 128, 32, 10), 'compile_case': ('resnet50', 256, 224, 1000)}


def case_key(model: str, batch: int, size: int, classes: int) -> str:
  return f'{model}/b{batch}/{size}px/c{classes}'


def host_batch(batch: int, size: int, classes: int):
  """The uint8 NHWC images and int32 labels both sides train on (one seed)."""
  import numpy as np
  rng = np.random.default_rng(0)
  return (rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
          rng.integers(0, classes, (batch,), dtype=np.int32))


def write_json(path: str, obj) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


def _time_rounds(run_steps, sync, rounds: int, steps: int) -> list[float]:
  out = []
  for _ in range(rounds):
    sync()
    t = time.perf_counter()
    run_steps(steps)
    sync()
    out.append((time.perf_counter() - t) / steps)
  return out


# ---------------------------------------------------------------------------------------------------- JAX half

class OurStep:
  """One compiled train step of ours, built as refine_jax.train builds it."""

  def __init__(self, model: str, batch: int, size: int, classes: int, dtype: str, kind: str = 'none'):
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from bench import common
    from refine_jax import flops
    from refine_jax import steps
    self.jax = jax
    env, phase = common.step_env(model, classes, dtype=dtype, kind=kind)
    repl, data = NamedSharding(env.mesh, P()), NamedSharding(env.mesh, P('data'))
    self.state = jax.jit(functools.partial(steps.init_state, env, (size, size, 3)), static_argnums=0,
                         out_shardings=repl)(0)
    self.params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.state.params))
    images, labels = host_batch(batch, size, classes)
    self.batch = jax.device_put({'image': images, 'label': labels}, data)
    step_fn = jax.jit(functools.partial(steps.train_step, env, phase.mix), donate_argnums=0)
    t = time.perf_counter()
    lowered = step_fn.lower(self.state, self.batch)
    self.fn = lowered.compile()  # the executable a call of step_fn would build and run
    self.compile_s = time.perf_counter() - t
    # The MFU's FLOPs, counted from the step's jaxpr (traced, not run: the donated state stays valid); XLA's
    # cost analysis of the compiled and the lowered step for reference only.
    self.flops = float(flops.count(step_fn, self.state, self.batch))
    self.xla_flops, self.xla_flops_lowered = _xla_flops(self.fn.cost_analysis()), _xla_flops(lowered.cost_analysis())
    self.state, loss = self.fn(self.state, self.batch)
    self.first_loss = float(loss)  # random init, step 0

  def run(self, n: int) -> None:
    for _ in range(n):
      self.state, self.loss = self.fn(self.state, self.batch)

  def sync(self) -> None:
    self.jax.block_until_ready(self.state)


def _xla_flops(cost) -> float:
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost.get('flops', 0.0)) if cost else 0.0


def jax_half(a, p: dict, path: str) -> None:
  import jax
  res = {'backend': jax.default_backend(), 'device_kind': jax.devices()[0].device_kind,
         'device_count': jax.device_count(), 'jax': jax.__version__, 'xla_flags': os.environ.get('XLA_FLAGS', ''),
         'steps': {}, 'mixing': {}, 'skipped': []}
  try:
    import flax
    res['flax'] = flax.__version__
  except ImportError:
    pass
  write_json(path, res)
  t0 = deadline = time.time()
  deadline += a.start_cases_s
  for model, batch, size, classes in p['cases']:
    key = case_key(model, batch, size, classes)
    if time.time() > deadline:
      res['skipped'].append(key)
      continue
    s = OurStep(model, batch, size, classes, p['dtype'])
    s.run(p['warmup'])
    t = _time_rounds(s.run, s.sync, p['rounds'], p['steps'])
    res['steps'][key] = {'model': model, 'batch': batch, 'size': size, 'classes': classes, 'dtype': p['dtype'],
                         'step_s': t, 'median_step_s': statistics.median(t), 'flops_per_step': s.flops,
                         'xla_flops': s.xla_flops, 'xla_flops_lowered': s.xla_flops_lowered, 'compile_s': s.compile_s,
                         'first_loss': s.first_loss, 'params': s.params}
    print(f'jax  {key}: {batch / statistics.median(t):,.1f} images/s, first loss {s.first_loss:.4f}, '
          f'compile {s.compile_s:.1f} s (at {time.time() - t0:.0f} s)', flush=True)
    write_json(path, res)
    if (model, batch, size, classes) == tuple(p['mixing']):  # the mixing block next, this step as its 'none'
      mixing_half(p, s, res, deadline)
      medians = ', '.join(f'{k} {v["median_step_s"]:.5f}' for k, v in res['mixing'].items())
      print(f'jax  mixing, median step (s): {medians} (at {time.time() - t0:.0f} s)', flush=True)
      write_json(path, res)
    del s
  res['tensorflow_modules'] = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets'))
  # What the step path pulled in beyond the standard library and this repository: each must be on the lent
  # machine or travel as a wheel (bench/device_check.sh's WHEELS).
  tops = {m.split('.')[0] for m in sys.modules}
  not_packages = {'refine_jax', 'configs', 'bench', 'cython_runtime', 'sitecustomize', 'usercustomize'}
  res['third_party_modules'] = sorted(m for m in tops - set(sys.stdlib_module_names) - not_packages
                                      if not m.startswith('_'))
  write_json(path, res)


def mixing_half(p: dict, none: OurStep, res: dict, deadline: float) -> None:
  """Mixup / CutMix / Manifold Mixup against `none` (the step row's executable), timed interleaved round by round
  so that drifts hit every kind alike."""
  model, batch, size, classes = p['mixing']
  by_kind = {'none': none}
  for kind in MIX_KINDS[1:]:
    if time.time() > deadline:
      res['skipped'].append(f'mixing/{kind}')
      continue
    by_kind[kind] = OurStep(model, batch, size, classes, p['dtype'], kind)
    by_kind[kind].run(p['warmup'])
  times = {k: [] for k in by_kind}
  for _ in range(p['rounds']):
    for k, s in by_kind.items():
      times[k] += _time_rounds(s.run, s.sync, 1, p['steps'])
  for k, t in times.items():
    res['mixing'][k] = {'model': model, 'batch': batch, 'size': size, 'step_s': t,
                        'median_step_s': statistics.median(t), 'first_loss': by_kind[k].first_loss}


# ------------------------------------------------------------------------------------------------ PyTorch half

class TorchStep:
  """The same model's SGD step in PyTorch: bf16 autocast, channels_last, the uint8 batch normalised inside."""

  def __init__(self, model: str, batch: int, size: int, classes: int, bf16: bool, compile_model: bool = False):
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode
    from bench.torch_step import get_model
    self.torch = torch
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest kernels, as XLA autotunes its convolutions
    self.dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    net = get_model(model, classes).to(self.dev).to(memory_format=torch.channels_last)
    self.params = sum(q.numel() for q in net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    fwd = torch.compile(net) if compile_model else net
    images, labels = host_batch(batch, size, classes)
    u8 = torch.from_numpy(images).to(self.dev).permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels_last
    y = torch.from_numpy(labels).long().to(self.dev)
    mean = torch.tensor(MEAN, device=self.dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=self.dev).view(1, 3, 1, 1)

    def step():
      x = ((u8.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)
      with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(fwd(x).float(), y)
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
      return loss

    self.step = step
    net.train()
    t = time.perf_counter()
    if compile_model:  # the first call compiles; FlopCounterMode would not see inside the compiled graph
      self.first_loss, self.flops = float(step().detach()), None
    else:
      with FlopCounterMode(display=False) as fc:
        self.first_loss = float(step().detach())
      self.flops = float(fc.get_total_flops())
    self.sync()
    self.first_step_s = time.perf_counter() - t

  def run(self, n: int) -> None:
    for _ in range(n):
      self.step()

  def sync(self) -> None:
    if self.dev.type == 'cuda':
      self.torch.cuda.synchronize()


def torch_half(a, p: dict, path: str, compile_model: bool) -> None:
  import torch
  res = {'torch': torch.__version__, 'device': 'cuda' if torch.cuda.is_available() else 'cpu',
         'device_name': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu',
         'threads': torch.get_num_threads(), 'bf16_autocast': p['dtype'] == 'bfloat16', 'channels_last': True,
         'compile': compile_model, 'steps': {}, 'skipped': []}
  try:
    import torchvision
    res['torchvision'] = torchvision.__version__
  except ImportError:
    pass
  write_json(path, res)
  cases = [p['compile_case']] if compile_model else p['cases']
  deadline = time.time() + a.start_cases_s
  for model, batch, size, classes in cases:
    key = case_key(model, batch, size, classes)
    if time.time() > deadline:
      res['skipped'].append(key)
      continue
    s = TorchStep(model, batch, size, classes, p['dtype'] == 'bfloat16', compile_model)
    s.run(p['warmup'])
    t = _time_rounds(s.run, s.sync, p['rounds'], p['steps'])
    res['steps'][key] = {'step_s': t, 'median_step_s': statistics.median(t), 'flops_per_step': s.flops,
                         'first_loss': s.first_loss, 'first_step_s': s.first_step_s, 'params': s.params}
    print(f'torch{" compile" if compile_model else ""} {key}: {batch / statistics.median(t):,.1f} images/s, '
          f'first loss {s.first_loss:.4f}', flush=True)
    write_json(path, res)
    del s
    if torch.cuda.is_available():
      torch.cuda.empty_cache()


# -------------------------------------------------------------------------------------------------- the driver

def _peak(device_kind: str, override):
  if override:
    return float(override), f'--peak_tflops={override}'
  for name, v in SPEC_PEAK_BF16.items():
    if name in device_kind:
      return v, f'NVIDIA {name} SXM dense bf16 spec'
  return None, 'unknown for this device (pass --peak_tflops)'


def _run_half(a, half: str, timeout_s: float, log) -> dict:
  """Runs one half in its own process under a time limit; returns its status and whatever JSON it wrote."""
  path = os.path.join(a.out, f'{half}.json')
  if os.path.exists(path):
    os.remove(path)
  cmd = [sys.executable, '-m', 'bench.device_check', f'--half={half}', f'--out={a.out}',
         f'--start_cases_s={0.8 * timeout_s:.0f}'] + (['--smoke'] if a.smoke else [])
  t = time.perf_counter()
  status = 'ok'
  # Its own process group, so that a timeout also ends what it started (torch.compile's worker processes). Its
  # output is logged line by line as it comes, so that a run cut short still shows how far it got.
  p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       start_new_session=True)
  lines = []

  def pump():
    for line in p.stdout:
      lines.append(line.rstrip())
      log(lines[-1])

  reader = threading.Thread(target=pump, daemon=True)
  reader.start()
  try:
    p.wait(timeout=max(1.0, timeout_s))
    reader.join(timeout=30)
    if p.returncode:
      status = f'failed (exit {p.returncode}): ' + ' | '.join(lines[-3:])[-600:]
  except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    reader.join(timeout=30)
    status = f'timeout after {timeout_s:.0f} s'
  res = json.load(open(path)) if os.path.exists(path) else {}
  res['status'], res['wall_s'] = status, time.perf_counter() - t
  log(f'[{half}] {status}, {res["wall_s"]:.1f} s')
  return res


def merge(p: dict, j: dict, t: dict, tc: dict, peak, peak_source: str, measured) -> dict:
  rows = []
  for model, batch, size, classes in p['cases']:
    key = case_key(model, batch, size, classes)
    o, q = j.get('steps', {}).get(key), t.get('steps', {}).get(key)
    r = {'case': key, 'model': model, 'batch': batch, 'size': size, 'classes': classes, 'dtype': p['dtype'],
         'ln_classes': math.log(classes)}
    if o:
      ips = batch / o['median_step_s']
      tflops = o['flops_per_step'] / o['median_step_s'] / 1e12
      r.update({'ours_step_s': o['median_step_s'], 'ours_images_per_s': ips, 'ours_model_tflops': tflops,
                'ours_mfu': tflops / peak if peak else None,
                'ours_mfu_vs_measured_matmul': tflops / measured if measured else None,
                'ours_flops_per_step': o['flops_per_step'], 'ours_flops_source': FLOPS_SOURCE,
                'ours_xla_flops_per_step': o['xla_flops'], 'ours_xla_flops_lowered': o['xla_flops_lowered'],
                'ours_first_loss': o['first_loss'], 'ours_params': o['params'], 'ours_compile_s': o['compile_s']})
    if q:
      tflops = q['flops_per_step'] / q['median_step_s'] / 1e12
      r.update({'torch_step_s': q['median_step_s'], 'torch_images_per_s': batch / q['median_step_s'],
                'torch_model_tflops': tflops, 'torch_mfu': tflops / peak if peak else None,
                'torch_flops_per_step': q['flops_per_step'], 'torch_first_loss': q['first_loss'],
                'torch_params': q['params']})
    if o and q:
      r['ours_over_torch'] = r['ours_images_per_s'] / r['torch_images_per_s']
      # Our count of our step over PyTorch's FLOP counter on the same model and batch (both: matrix products and
      # convolutions, forward and backward): the check of the MFU's numerator. XLA's count over it for reference.
      tq = q['flops_per_step']
      r['ours_flops_over_torch'] = o['flops_per_step'] / tq if tq else None
      r['flops_xla_over_torch_counter'] = o['xla_flops'] / tq if tq else None
    c = tc.get('steps', {}).get(key)
    if c:
      r.update({'torch_compile_step_s': c['median_step_s'], 'torch_compile_images_per_s': batch / c['median_step_s'],
                'torch_compile_first_step_s': c['first_step_s']})
      if o:
        r['ours_over_torch_compile'] = r['ours_images_per_s'] / r['torch_compile_images_per_s']
    rows.append(r)
  mix = []
  base = j.get('mixing', {}).get('none')
  for k in MIX_KINDS:
    m = j.get('mixing', {}).get(k)
    if m:
      mix.append({'kind': k, 'model': m['model'], 'batch': m['batch'], 'size': m['size'],
                  'median_step_s': m['median_step_s'], 'images_per_s': m['batch'] / m['median_step_s'],
                  'vs_none': m['median_step_s'] / base['median_step_s'] if base else None,
                  'first_loss': m['first_loss']})
  return {'steps': rows, 'mixing': mix}


def table(res: dict) -> str:
  def f(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) else '—'
  m = res['meta']
  lines = [f'| model (batch, px, {m["dtype"]}) | ours images/s | PyTorch eager images/s | ours / PyTorch | '
           'PyTorch compile images/s | our model TFLOP/s | ours MFU | PyTorch MFU | first loss ours / PyTorch (ln C) |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in res['steps']:
    lines.append(f'| {r["model"]} ({r["batch"]}, {r["size"]}) | {f(r.get("ours_images_per_s"), ",.1f")} | '
                 f'{f(r.get("torch_images_per_s"), ",.1f")} | {f(r.get("ours_over_torch"), ".2f")} | '
                 f'{f(r.get("torch_compile_images_per_s"), ",.1f")} | {f(r.get("ours_model_tflops"), ".3f")} | '
                 f'{f(r.get("ours_mfu"), ".1%")} | {f(r.get("torch_mfu"), ".1%")} | '
                 f'{f(r.get("ours_first_loss"), ".3f")} / {f(r.get("torch_first_loss"), ".3f")} ({r["ln_classes"]:.3f}) |')
  if res['mixing']:
    x = res['mixing'][0]
    lines += ['', f'| mixing ({x["model"]}, batch {x["batch"]}, {x["size"]} px) | median step (s) | images/s | vs none |',
              '|---|---|---|---|']
    lines += [f'| {x["kind"]} | {x["median_step_s"]:.5f} | {x["images_per_s"]:,.1f} | {f(x["vs_none"], ".3f")} |'
              for x in res['mixing']]
  lines += ['', f'Device: {m["jax_device"]} (JAX {m.get("jax")}, {m.get("jax_backend")}); PyTorch {m.get("torch")} on '
            f'{m.get("torch_device")}. Peak for MFU: {m["peak_tflops"]} TFLOP/s ({m["peak_source"]}). '
            f'XLA_FLAGS={m["xla_flags"]!r}. torch.compile: {m["torch_compile_status"]}. '
            f'Timing: {m["warmup"]} warm-up steps untimed, median of {m["rounds"]} rounds × {m["steps"]} steps.',
            '', f'Model FLOPs (TFLOP/s, MFU), ours from {FLOPS_SOURCE}; PyTorch\'s from torch.utils.flop_counter. '
            'Ours / PyTorch\'s count per row: ' + ', '.join(f(r.get('ours_flops_over_torch'), '.4f')
                                                            for r in res['steps']) + '.']
  return '\n'.join(lines)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--out', default=os.environ.get('OUT') or os.path.join(ROOT, 'bench', 'out', 'device_check'))
  ap.add_argument('--smoke', action='store_true', help='tiny batches and images, one timed step each (CPU tests)')
  ap.add_argument('--budget_s', type=float, default=450.0, help='wall-time budget of the whole check')
  ap.add_argument('--compile_timeout_s', type=float, default=180.0, help='limit of the torch.compile half')
  ap.add_argument('--peak_tflops', type=float, help='the chip\'s bf16 peak (default: the spec of a known GPU)')
  ap.add_argument('--no_torch', action='store_true', help='JAX half only')
  ap.add_argument('--no_torch_compile', action='store_true')
  ap.add_argument('--half', choices=('jax', 'torch', 'torch_compile'), help=argparse.SUPPRESS)
  ap.add_argument('--start_cases_s', type=float, default=1e9, help=argparse.SUPPRESS)  # a half's: no new case after
  a = ap.parse_args()
  os.makedirs(a.out, exist_ok=True)
  p = plan(a.smoke)
  if a.half == 'jax':
    return jax_half(a, p, os.path.join(a.out, 'jax.json'))
  if a.half:
    return torch_half(a, p, os.path.join(a.out, f'{a.half}.json'), a.half == 'torch_compile')

  t0 = time.time()
  logf = open(os.path.join(a.out, 'device_check.log'), 'w')

  def log(s: str) -> None:
    print(s, flush=True)
    logf.write(s + '\n')
    logf.flush()

  def left() -> float:
    return a.budget_s - (time.time() - t0)

  # Shares of the budget: the JAX half until 60 %, eager PyTorch until 85 %, torch.compile the rest (≤ its own
  # limit). A half starts no new case after 80 % of its limit (those left are listed as skipped), so that the
  # case in flight can finish. The cases run in order of importance (ResNet-50 first, then the mixing block).
  j = _run_half(a, 'jax', 0.6 * a.budget_s, log)
  t = {'status': 'not run (--no_torch)'}
  tc = {'status': 'not run (--no_torch or --no_torch_compile)'}
  if not a.no_torch:
    t = _run_half(a, 'torch', max(1.0, left() - 0.15 * a.budget_s), log)
    if not a.no_torch_compile:
      tc = _run_half(a, 'torch_compile', min(a.compile_timeout_s, max(1.0, left())), log)
  kind = j.get('device_kind', '?')
  peak, peak_source = _peak(kind, a.peak_tflops)
  measured = next((v for n, v in MEASURED_MATMUL_BF16.items() if n in kind), None)
  res = merge(p, j, t, tc, peak, peak_source, measured)
  res['meta'] = {
      'smoke': a.smoke, 'dtype': p['dtype'], 'warmup': p['warmup'], 'rounds': p['rounds'], 'steps': p['steps'],
      'date_utc': time.strftime('%Y-%m-%d %H:%M', time.gmtime()), 'wall_s': time.time() - t0,
      'budget_s': a.budget_s, 'host': f'{os.cpu_count()} cores, {platform.processor() or platform.machine()}',
      'load_avg_1min_end': os.getloadavg()[0], 'python': platform.python_version(),
      'jax': j.get('jax'), 'flax': j.get('flax'), 'jax_backend': j.get('backend'), 'jax_device': kind,
      'xla_flags': j.get('xla_flags', os.environ.get('XLA_FLAGS', '')), 'jax_status': j['status'],
      'tensorflow_modules_in_jax_half': j.get('tensorflow_modules'),
      'third_party_modules_in_jax_half': j.get('third_party_modules'),
      'torch': t.get('torch'), 'torchvision': t.get('torchvision'), 'torch_device': t.get('device_name'),
      'torch_threads': t.get('threads'), 'torch_status': t['status'], 'torch_compile_status': tc['status'],
      'peak_tflops': peak, 'peak_source': peak_source, 'measured_matmul_tflops': measured,
      'measured_matmul_source': '/work/.library/device/KINDS.md: 8192^3 bf16 matmul via PyTorch, 769-798 TFLOP/s'
                                if measured else None,
      'skipped': j.get('skipped', []) + t.get('skipped', []) + tc.get('skipped', [])}
  write_json(os.path.join(a.out, 'device_check.json'), res)
  tab = table(res)
  with open(os.path.join(a.out, 'device_check.md'), 'w') as f:
    f.write(tab + '\n')
  log(tab)
  log(f'wrote {os.path.join(a.out, "device_check.json")} in {res["meta"]["wall_s"]:.0f} s')
  if j['status'] != 'ok' or not res['steps'] or not any('ours_images_per_s' in r for r in res['steps']):
    sys.exit(1)


if __name__ == '__main__':
  main()
