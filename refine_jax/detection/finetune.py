"""Faster R-CNN ResNet-50-FPN on VOC2007 from an exported ResNet-50: model, data, the loop, evaluation.

The detector is torchvision's `FasterRCNN` over `resnet_fpn_backbone('resnet50', weights=None)` (nothing is
downloaded) with the standard fine-tuning setup of a pre-trained backbone (torchvision's and Detectron's
default): frozen BatchNorm (the backbone's running statistics and affine parameters are used as they are),
conv1 and layer1 frozen (`trainable_layers=3`). Input: shorter side 600, longer at most 1000 (the VOC setting
of Detectron / mmdetection), horizontal flip with p = 0.5 in training, ImageNet mean / std (what our
ImageNet configs normalise with). Optimisation: SGD, momentum 0.9, weight decay 1e-4, 12 epochs, batch 16,
lr 0.01 divided by 10 after epoch 9 (the paper), plus a linear warm-up over the first 500 iterations from
lr / 1000 (ours: the standard Faster R-CNN recipe's, which the paper does not spell out). Difficult objects
are left out of training (they are ignored by the metric).

A batch larger than what fits on the device is reached by gradient accumulation (`--micro_batch`); several
GPUs are not used (one process).
"""
from __future__ import annotations

import json
import os
import random
import time
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torchvision
from absl import logging
from PIL import Image
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import misc as misc_nn_ops

from refine_jax import export
from refine_jax.errors import BadInput
from refine_jax.detection import voc

CHECKPOINT = 'checkpoint_epoch{:03d}.pt'
RESULT = 'voc07_test_map.json'


class BackboneError(BadInput):
  """The --backbone file is not a torchvision ResNet-50 state_dict; exit code 2, nothing written."""


def backbone_state_dict(path: str) -> dict[str, torch.Tensor]:
  """The file's ResNet-50 body (conv1 .. layer4, without fc), checked key by key and shape by shape against
  torchvision's resnet50."""
  try:
    sd = export.read_state_dict(path)
  except export.ExportError as e:
    raise BackboneError(str(e)) from None
  want = {k: tuple(v.shape) for k, v in torchvision.models.resnet50(weights=None).state_dict().items()
          if not k.startswith('fc.')}
  if 'conv1.weight' not in sd or 'layer1.0.conv1.weight' not in sd:
    raise BackboneError(f'{path!r} is not a ResNet state_dict (no conv1.weight / layer1.0.conv1.weight)')
  extra = [k for k in sd if k not in want and not k.startswith('fc.')]
  if extra:
    raise BackboneError(f'{path!r} is not a ResNet-50 state_dict: it holds {extra[0]!r} ({len(extra)} tensors '
                        'a ResNet-50 lacks; the detector here is ResNet-50-FPN)')
  for k, shape in want.items():
    if k not in sd:
      raise BackboneError(f'{path!r} lacks {k!r}')
    if tuple(sd[k].shape) != shape:
      raise BackboneError(f'{path!r}: tensor {k!r} has shape {tuple(sd[k].shape)}, ResNet-50 needs {shape}')
  return {k: torch.from_numpy(np.array(sd[k])) for k in want}


def build_model(backbone: Optional[dict[str, torch.Tensor]], num_classes: int = len(voc.CLASSES) + 1,
                min_size: int = 600, max_size: int = 1000, trainable_layers: int = 3) -> FasterRCNN:
  body = resnet_fpn_backbone(backbone_name='resnet50', weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d,
                             trainable_layers=trainable_layers)
  if backbone is not None:
    body.body.load_state_dict(backbone, strict=True)
  return FasterRCNN(body, num_classes=num_classes, min_size=min_size, max_size=max_size)


class VOCDetection(torch.utils.data.Dataset):
  """Images as float [0, 1] CHW tensors and torchvision detection targets; flip when `train`."""

  def __init__(self, root: str, annotations: Sequence[voc.Annotation], train: bool, seed: int = 0):
    self.root, self.anns, self.train, self.seed, self.epoch = root, list(annotations), train, seed, 0

  def __len__(self) -> int:
    return len(self.anns)

  def __getitem__(self, idx: int):
    a = self.anns[idx]
    with Image.open(voc.image_path(self.root, a.image_id)) as im:
      img = torchvision.transforms.functional.pil_to_tensor(im.convert('RGB')).float() / 255.0
    keep = ~a.difficult if self.train else np.ones(len(a.labels), bool)
    boxes, labels = torch.from_numpy(a.boxes[keep].copy()), torch.from_numpy(a.labels[keep].copy())
    if self.train and random.Random(hash((self.seed, self.epoch, idx))).random() < 0.5:
      img = img.flip(-1)
      w = img.shape[-1]
      boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1)
    return img, {'boxes': boxes.reshape(-1, 4), 'labels': labels, 'image_id': a.image_id}


def _collate(batch):
  return tuple(zip(*batch))


def lr_at(it: int, iters_per_epoch: int, base: float, decay_epochs: Sequence[int], warmup_iters: int) -> float:
  """lr of iteration `it` (0-based): ÷10 after each epoch in decay_epochs, linear warm-up from base / 1000."""
  lr = base * 0.1 ** sum(it >= e * iters_per_epoch for e in decay_epochs)
  if it < warmup_iters:
    lr *= 1e-3 + (1 - 1e-3) * it / warmup_iters
  return lr


def _latest_checkpoint(out: str) -> Optional[str]:
  names = sorted(n for n in os.listdir(out) if n.startswith('checkpoint_epoch') and n.endswith('.pt'))
  return os.path.join(out, names[-1]) if names else None


def _hms(s: float) -> str:
  s = int(s)
  return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'


def train(args, train_anns, test_anns, backbone) -> dict:
  """The fine-tune (resuming from the newest checkpoint in args.out), then the VOC07 test evaluation."""
  device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
  torch.manual_seed(args.seed)
  model = build_model(backbone, min_size=args.min_size, max_size=args.max_size).to(device)
  params = [p for p in model.parameters() if p.requires_grad]
  opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
  ds = VOCDetection(args.voc_root, train_anns, train=True, seed=args.seed)
  micro = args.micro_batch or args.batch_size
  if args.batch_size % micro:
    raise ValueError(f'--batch_size {args.batch_size} is not a multiple of --micro_batch {micro}')
  accum = args.batch_size // micro
  iters_per_epoch = len(ds) // args.batch_size
  if iters_per_epoch < 1:
    raise ValueError(f'--batch_size {args.batch_size} is larger than the training split ({len(ds)} images)')
  start_epoch = 0
  ck = _latest_checkpoint(args.out)
  if ck is not None:
    state = torch.load(ck, map_location=device, weights_only=True)
    model.load_state_dict(state['model'])
    opt.load_state_dict(state['optimizer'])
    start_epoch = int(state['epoch'])
    logging.info('resumed from %s (epoch %d done)', ck, start_epoch)
  total = args.epochs * iters_per_epoch if args.max_iters is None else min(args.max_iters,
                                                                            args.epochs * iters_per_epoch)
  it = start_epoch * iters_per_epoch
  t0, it0 = time.time(), it
  for epoch in range(start_epoch, args.epochs):
    if it >= total:
      break
    model.train()
    ds.epoch = epoch
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch)).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, order[:iters_per_epoch * args.batch_size]),
                                         batch_size=micro, shuffle=False, num_workers=args.workers,
                                         collate_fn=_collate)
    batches: Iterator = iter(loader)
    for _ in range(iters_per_epoch):
      if it >= total:
        break
      lr = lr_at(it, iters_per_epoch, args.lr, args.decay_epochs, args.warmup_iters)
      for g in opt.param_groups:
        g['lr'] = lr
      opt.zero_grad(set_to_none=True)
      losses = {}
      for _ in range(accum):
        images, targets = next(batches)
        images = [im.to(device) for im in images]
        targets = [{'boxes': t['boxes'].to(device), 'labels': t['labels'].to(device)} for t in targets]
        parts = model(images, targets)
        loss = sum(parts.values()) / accum
        if not torch.isfinite(loss):
          raise FloatingPointError(f'non-finite loss {float(loss)} at iteration {it} (epoch {epoch + 1}); the '
                                   f'checkpoints in {args.out} are intact')
        loss.backward()
        for k, v in parts.items():
          losses[k] = losses.get(k, 0.0) + float(v) / accum
      opt.step()
      it += 1
      if it % args.log_every == 0 or it == total:
        dt = time.time() - t0
        ips = (it - it0) * args.batch_size / max(dt, 1e-9)
        eta = (total - it) * args.batch_size / max(ips, 1e-9)
        logging.info('iter %d/%d  epoch %d/%d  loss %.4f (%s)  lr %.5g  %.1f images/s  ETA %s', it, total,
                     epoch + 1, args.epochs, sum(losses.values()),
                     ' '.join(f'{k[5:] if k.startswith("loss_") else k} {v:.3f}' for k, v in losses.items()),
                     lr, ips, _hms(eta))
    if it == (epoch + 1) * iters_per_epoch:  # a whole epoch: checkpoint it
      path = os.path.join(args.out, CHECKPOINT.format(epoch + 1))
      torch.save({'model': model.state_dict(), 'optimizer': opt.state_dict(), 'epoch': epoch + 1,
                  'args': vars(args)}, path + '.tmp')
      os.replace(path + '.tmp', path)
      logging.info('saved %s', path)
  torch.save(model.state_dict(), os.path.join(args.out, 'model_final.pt.tmp'))
  os.replace(os.path.join(args.out, 'model_final.pt.tmp'), os.path.join(args.out, 'model_final.pt'))
  return evaluate_model(model, args.voc_root, test_anns, device, args.eval_batch, args.workers)


@torch.no_grad()
def detect(model: FasterRCNN, root: str, anns: Sequence[voc.Annotation], device, batch: int = 4,
           workers: int = 0) -> dict:
  """image_id -> (boxes, scores, labels) of the model in eval mode (torchvision's 100 detections per image)."""
  model.eval()
  ds = VOCDetection(root, anns, train=False)
  loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers,
                                       collate_fn=_collate)
  out, t0, done = {}, time.time(), 0
  for images, targets in loader:
    res = model([im.to(device) for im in images])
    for t, r in zip(targets, res):
      out[t['image_id']] = (r['boxes'].cpu().numpy(), r['scores'].cpu().numpy(), r['labels'].cpu().numpy())
    done += len(images)
    if done % (25 * batch) < batch or done == len(ds):
      ips = done / max(time.time() - t0, 1e-9)
      logging.info('test %d/%d images  %.1f images/s  ETA %s', done, len(ds), ips, _hms((len(ds) - done) / ips))
  return out


def evaluate_model(model, root, anns, device, batch=4, workers=0) -> dict:
  res = voc.evaluate(detect(model, root, anns, device, batch, workers), anns)
  res['num_test_images'] = len(anns)
  return res


def write_result(out: str, result: dict, meta: dict) -> str:
  path = os.path.join(out, RESULT)
  with open(path + '.tmp', 'w') as f:
    json.dump(dict(result, **meta), f, indent=2, sort_keys=True, allow_nan=False)
  os.replace(path + '.tmp', path)
  return path


def map_percent(result: dict) -> str:
  return 'n/a' if result.get('map') is None else f'{100 * result["map"]:.2f}'
