"""Checkpoints to and from torchvision ResNet-50 / ResNet-101 state_dicts.

    python -m refine_jax.export --workdir=W [--step=S | --phase=augmented|refine] --format=torchvision \
        --out=r50.pt|r50.safetensors

writes a `state_dict` that `torchvision.models.resnet50(num_classes=N).load_state_dict(sd, strict=True)` takes,
BN running statistics included (N: the run's class count). Without `--step`/`--phase` the newest checkpoint is
exported; `--phase=P` takes the newest checkpoint whose last trained step lay in phase P (for `augmented`, the
phase boundary, which the run always keeps). The workdir must be a local path (a gs:// run: copy its
config.json and the checkpoint first). The other way, `load_torchvision(path, target)` turns such a file
(ours or a public one, `.pt`/`.pth`/`.safetensors`) into our variables; `--config.init_from=FILE` uses it.

The two models are the same network: our `models/resnet.py` is torchvision's ResNet v1.5 (stride on the
bottleneck's 3x3 conv, projection shortcut `downsample` = 1x1 conv + BN), with PyTorch's symmetric k//2
padding on every conv (not Flax's 'SAME', which pads strided convs asymmetrically), the 3x3/2 max-pool padded
by 1 with -inf, BN epsilon 1e-5 and momentum 0.1 (Flax's 0.9 is the same rule: new = 0.9 old + 0.1 batch).
Layouts: conv HWIO <-> OIHW, dense (in, out) <-> (out, in); the rest is renaming, so the conversion is exact
both ways. One real difference remains, in training only: PyTorch updates `running_var` with the unbiased batch
variance (times n/(n-1), n = batch x height x width), Flax with the biased one; the normalisation itself
uses the biased variance on both sides (tests/test_export.py checks both facts).
`num_batches_tracked` (used by PyTorch only when momentum=None) is written as the checkpoint's step.

torch (and safetensors) are imported lazily inside the functions that read or write files; converting arrays
needs only numpy.
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
from absl import logging

from refine_jax.errors import BadInput

# Our model name -> bottleneck counts per stage (torchvision's resnet50 / resnet101).
TORCHVISION_MODELS: dict[str, tuple[int, ...]] = {'resnet50': (3, 4, 6, 3), 'resnet101': (3, 4, 23, 3)}
SUFFIXES = ('.pt', '.pth', '.safetensors')
_BN = (('weight', 'params', 'scale'), ('bias', 'params', 'bias'), ('running_mean', 'batch_stats', 'mean'),
       ('running_var', 'batch_stats', 'var'))


class ExportError(BadInput):
  """A bad export / import request or file; the commands turn it into exit code 2 and write nothing."""


def _torch():
  try:
    import torch
  except ImportError:
    raise ExportError("reading or writing torchvision files needs PyTorch: pip install -e '.[torch]'") from None
  return torch


def _safetensors_torch():
  try:
    import safetensors.torch
  except ImportError:
    raise ExportError("reading or writing .safetensors needs safetensors: pip install -e '.[torch]'") from None
  return safetensors.torch


def is_torchvision_file(path: str) -> bool:
  """Whether `path` names a torchvision-format file (by suffix) rather than a run's workdir."""
  return str(path).endswith(SUFFIXES)


def check_model(model: str) -> tuple[int, ...]:
  if model not in TORCHVISION_MODELS:
    raise ExportError(f'model {model!r} has no torchvision counterpart; allowed: '
                      + ', '.join(TORCHVISION_MODELS))
  return TORCHVISION_MODELS[model]


# --------------------------------------------------------------------------- the name map


def _entries(stage_sizes: tuple[int, ...]) -> Iterator[tuple[str, str, tuple[str, ...], str]]:
  """(torch key, our collection, our path, kind) for every tensor of the network but `num_batches_tracked`.

  kind: 'conv' (OIHW <-> HWIO), 'dense' (transposed), 'vec' (as is).
  """
  def conv(tk: str, path: tuple[str, ...]):
    yield f'{tk}.weight', 'params', path + ('kernel',), 'conv'

  def bn(tk: str, path: tuple[str, ...]):
    for tname, coll, name in _BN:
      yield f'{tk}.{tname}', coll, path + (name,), 'vec'

  yield from conv('conv1', ('conv1',))
  yield from bn('bn1', ('bn1',))
  for i, blocks in enumerate(stage_sizes):
    for j in range(blocks):
      t, f = f'layer{i + 1}.{j}', f'layer{i + 1}_{j}'
      for k in (1, 2, 3):
        yield from conv(f'{t}.conv{k}', (f, f'conv{k}'))
        yield from bn(f'{t}.bn{k}', (f, f'bn{k}'))
      if j == 0:
        yield from conv(f'{t}.downsample.0', (f, 'downsample_conv'))
        yield from bn(f'{t}.downsample.1', (f, 'downsample_bn'))
  yield 'fc.weight', 'params', ('fc', 'kernel'), 'dense'
  yield 'fc.bias', 'params', ('fc', 'bias'), 'vec'


def _bn_keys(stage_sizes: tuple[int, ...]) -> list[str]:
  return [k[:-len('.weight')] for k, _, p, _ in _entries(stage_sizes) if p[-1] == 'scale']


def _to_torch_layout(a: np.ndarray, kind: str) -> np.ndarray:
  if kind == 'conv':
    return np.ascontiguousarray(np.transpose(a, (3, 2, 0, 1)))
  if kind == 'dense':
    return np.ascontiguousarray(a.T)
  return np.ascontiguousarray(a)


def _from_torch_layout(a: np.ndarray, kind: str) -> np.ndarray:
  if kind == 'conv':
    return np.ascontiguousarray(np.transpose(a, (2, 3, 1, 0)))
  if kind == 'dense':
    return np.ascontiguousarray(a.T)
  return np.ascontiguousarray(a)


def _torch_shape(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
  if kind == 'conv':
    return (shape[3], shape[2], shape[0], shape[1])
  return shape[::-1] if kind == 'dense' else shape


def _get(tree: Mapping, path: tuple[str, ...]) -> Any:
  for p in path:
    tree = tree[p]
  return tree


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _stage_sizes_of(variables: Mapping) -> tuple[int, ...]:
  """Bottlenecks per stage, read off the parameter names (layerI_J)."""
  counts: dict[int, int] = {}
  for name in variables['params']:
    m = re.fullmatch(r'layer(\d+)_(\d+)', name)
    if m:
      counts[int(m[1])] = max(counts.get(int(m[1]), 0), int(m[2]) + 1)
  return tuple(counts[i] for i in sorted(counts))


# --------------------------------------------------------------------------- ours -> torchvision


def to_torchvision(variables: Mapping, model: str, num_batches_tracked: int = 0) -> dict[str, np.ndarray]:
  """Our {'params', 'batch_stats'} of `model` (resnet50/101) -> torchvision state_dict as numpy arrays.

  Every array is float32 (ours are), `num_batches_tracked` int64 scalars; the keys come in torchvision's order.
  """
  sizes = check_model(model)
  have = _stage_sizes_of(variables)
  if have != sizes:
    raise ExportError(f'the variables are not a {model} (bottlenecks per stage {have}, {model} has {sizes})')
  bn_keys = set(_bn_keys(sizes))
  out: dict[str, np.ndarray] = {}
  for tk, coll, path, kind in _entries(sizes):
    try:
      a = np.asarray(_get(variables[coll], path))
    except KeyError:
      raise ExportError(f'the variables have no {coll}/{"/".join(path)} (for {tk})') from None
    out[tk] = _to_torch_layout(a, kind)
    if tk.endswith('.running_var') and tk[:-len('.running_var')] in bn_keys:
      out[tk[:-len('.running_var')] + '.num_batches_tracked'] = np.asarray(num_batches_tracked, np.int64)
  return out


def save_state_dict(state_dict: Mapping[str, np.ndarray], path: str, metadata: Optional[dict] = None) -> None:
  """Writes `.pt`/`.pth` (torch.save of a dict of tensors) or `.safetensors`, atomically (temp file + rename)."""
  if not is_torchvision_file(path):
    raise ExportError(f'--out {path!r}: allowed suffixes ' + ', '.join(SUFFIXES))
  torch = _torch()
  tensors = {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}
  tmp = f'{path}.tmp.{os.getpid()}'
  try:
    if path.endswith('.safetensors'):
      _safetensors_torch().save_file(tensors, tmp, metadata={k: str(v) for k, v in (metadata or {}).items()})
    else:
      torch.save(tensors, tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


# --------------------------------------------------------------------------- torchvision -> ours


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """A torchvision-format file -> {key: numpy array}. Accepts a bare state_dict or one wrapped as
  {'model': ...} / {'state_dict': ...} (torchvision's and timm's training scripts), and strips DDP's `module.`."""
  if not os.path.isfile(path):
    raise ExportError(f'{path!r} is not a file')
  torch = _torch()
  try:
    if path.endswith('.safetensors'):
      obj = _safetensors_torch().load_file(path)
    else:
      obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # noqa: BLE001 - any read failure means "not a state_dict file"
    raise ExportError(f'{path!r} cannot be read as a PyTorch state_dict ({type(e).__name__}: {str(e)[:200]})') \
        from None
  if isinstance(obj, Mapping):
    for wrapper in ('state_dict', 'model'):
      if wrapper in obj and isinstance(obj[wrapper], Mapping):
        obj = obj[wrapper]
        break
  if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
    raise ExportError(f'{path!r} is not a ResNet state_dict (expected a dict of tensors, got '
                      f'{type(obj).__name__})')
  if all(str(k).startswith('module.') for k in obj):
    obj = {k[len('module.'):]: v for k, v in obj.items()}
  return {str(k): (v.float() if v.is_floating_point() else v).numpy() for k, v in obj.items()}


def from_torchvision(state_dict: Mapping[str, np.ndarray], target: Mapping, source: str = 'the file') -> dict:
  """A torchvision ResNet state_dict -> our {'params', 'batch_stats'} shaped like `target`.

  `target` holds arrays or ShapeDtypeStructs (e.g. jax.eval_shape of model.init). The classifier is taken
  when the file has one of the target's shape; without one, or with another class count, the target's `fc`
  is kept (a log line says so). Any other missing, extra or misshapen tensor is an ExportError naming the first.
  """
  sizes = _stage_sizes_of(target)
  if 'conv1.weight' not in state_dict or 'layer1.0.conv1.weight' not in state_dict:
    raise ExportError(f'{source} is not a ResNet state_dict (no conv1.weight / layer1.0.conv1.weight; first '
                      f'keys: {", ".join(list(state_dict)[:5])})')
  entries = list(_entries(sizes))
  known = {e[0] for e in entries} | {k + '.num_batches_tracked' for k in _bn_keys(sizes)}
  extra = [k for k in state_dict if k not in known]
  if extra:
    raise ExportError(f'{source} holds tensors the target ResNet (bottlenecks per stage {sizes}) lacks, first: '
                      f'{extra[0]!r} ({len(extra)} in all; a ResNet of another depth?)')
  missing = [e[0] for e in entries if e[0] not in state_dict and not e[0].startswith('fc.')]
  if missing:
    raise ExportError(f'{source} lacks {missing[0]!r} ({len(missing)} tensors missing in all)')
  out: dict = {'params': {}, 'batch_stats': {}}
  fc_w = state_dict.get('fc.weight')
  want_fc = tuple(_get(target['params'], ('fc', 'kernel')).shape)[::-1]
  take_fc = fc_w is not None and 'fc.bias' in state_dict
  if take_fc and tuple(fc_w.shape) != want_fc:
    if fc_w.ndim == 2 and fc_w.shape[1] == want_fc[1]:
      logging.warning('%s: its classifier has %d classes, the model %d: dropping the head (fc starts fresh).',
                      source, fc_w.shape[0], want_fc[0])
      take_fc = False
  elif fc_w is None:
    logging.info('%s has no classifier (fc): fc starts fresh.', source)
  for tk, coll, path, kind in entries:
    want = _get(target[coll], path)
    if tk.startswith('fc.') and not take_fc:
      _set(out[coll], path, want)  # the target's own (freshly initialised) classifier
      continue
    a = _from_torch_layout(np.asarray(state_dict[tk]), kind)
    if tuple(a.shape) != tuple(want.shape):
      raise ExportError(f'{source}: tensor {tk!r} has shape {tuple(state_dict[tk].shape)}, the model needs '
                        f'{_torch_shape(tuple(want.shape), kind)}')
    _set(out[coll], path, a.astype(np.float32, copy=False))
  return out


def load_torchvision(path: str, target: Mapping) -> dict:
  """`read_state_dict` + `from_torchvision`: a torchvision file -> our variables shaped like `target`."""
  return from_torchvision(read_state_dict(path), target, source=repr(path))


# --------------------------------------------------------------------------- the command


def export_workdir(workdir: str, out: str, step: Optional[int] = None, phase: Optional[str] = None,
                   verify: bool = True) -> dict:
  """Exports one checkpoint of a run in `workdir` to `out`; returns a description of what was written.

  Everything is checked before `out` is written; `verify` also loads the state_dict into torchvision's model
  (strict) when torchvision is installed.
  """
  from refine_jax import checkpoint as ckpt_lib
  from refine_jax import workdir as workdir_lib
  if step is not None and phase is not None:
    raise ExportError('give --step or --phase, not both')
  if phase is not None and phase not in ('augmented', 'refine'):
    raise ExportError(f'--phase {phase!r}: allowed: augmented, refine')
  if not is_torchvision_file(out):
    raise ExportError(f'--out {out!r}: allowed suffixes ' + ', '.join(SUFFIXES))
  if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
    raise ExportError(f'--out {out!r}: the directory {os.path.dirname(os.path.abspath(out))!r} does not exist')
  config = workdir_lib.read_config(workdir) if os.path.isdir(workdir) else None
  if config is None:
    raise ExportError(f'--workdir {workdir!r} holds no run (no {workdir_lib.CONFIG})')
  model = config.get('model')
  check_model(model)  # before asking for PyTorch: a model with no torchvision counterpart is refused first
  _torch()  # before any work: the file is written with torch
  if out.endswith('.safetensors'):
    _safetensors_torch()
  ckpts = workdir_lib.open_checkpoints(workdir)
  try:
    try:
      step = workdir_lib.pick_step(ckpts, step=step, phase=phase)
    except LookupError as e:
      what = f'--step {step}:' if step is not None else f'--phase {phase!r}:' if phase is not None else \
          f'--workdir {workdir!r}'
      raise ExportError(f'{what} {e}') from None
    try:
      state, meta = ckpts.restore_raw(step)
    except ckpt_lib.Corrupt as e:
      raise ExportError(f'{e}; nothing was exported. Choose another --step (the checkpoints are: '
                        + ', '.join(map(str, ckpts.steps())) + ')') from None
  finally:
    ckpts.close()
  variables = {'params': state['params'], 'batch_stats': state['batch_stats']}
  sd = to_torchvision(variables, model, num_batches_tracked=int(meta['step']))
  num_classes = int(sd['fc.weight'].shape[0])
  if verify:
    verify_torchvision(sd, model, num_classes)
  info = {'model': model, 'num_classes': num_classes, 'step': int(meta['step']), 'phase': meta['phase'],
          'workdir': workdir, 'format': 'torchvision'}
  save_state_dict(sd, out, metadata=info)
  return dict(info, out=out, tensors=len(sd))


def verify_torchvision(sd: Mapping[str, np.ndarray], model: str, num_classes: int) -> bool:
  """Loads `sd` into torchvision.models.<model>(num_classes) with strict=True; False if torchvision is absent."""
  try:
    import torch
    import torchvision
  except ImportError:
    logging.info('torchvision is not installed: the strict load check is skipped')
    return False
  net = getattr(torchvision.models, model)(weights=None, num_classes=num_classes)
  net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=True)
  return True


def main(argv: Sequence[str]) -> int:
  """The command: its exit code (`cli.guarded`: bad input 2, a stop by SIGTERM 3)."""
  from refine_jax import cli
  return cli.guarded(_main, argv)


def _main(argv: Sequence[str]) -> int:
  import argparse
  p = argparse.ArgumentParser(prog='python -m refine_jax.export', description=__doc__.split('\n\n')[0])
  p.add_argument('--workdir', required=True)
  g = p.add_mutually_exclusive_group()
  g.add_argument('--step', type=int)
  g.add_argument('--phase', choices=('augmented', 'refine'))
  p.add_argument('--format', default='torchvision', choices=('torchvision',))
  p.add_argument('--out', required=True, help='FILE.pt, FILE.pth or FILE.safetensors')
  p.add_argument('--no_verify', action='store_true', help='skip the strict load into torchvision')
  args = p.parse_args(argv)  # usage errors: argparse exits with 2
  info = export_workdir(args.workdir, args.out, step=args.step, phase=args.phase, verify=not args.no_verify)
  print(json.dumps(info, indent=2, sort_keys=True))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
