"""python -m refine_jax.detection --backbone=r50.pt --voc_root=VOCdevkit/VOC2007 --out=DIR [--flags]

Fine-tunes Faster R-CNN ResNet-50-FPN on VOC2007 trainval from the backbone file and writes
DIR/voc07_test_map.json (per-class AP and mAP on VOC2007 test, VOC07 11-point metric). Re-running the same
command resumes from the newest DIR/checkpoint_epochNNN.pt. Everything (backbone, VOC layout, every
annotation of both splits) is checked before DIR is touched: a bad input exits with code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from absl import logging

from refine_jax.errors import BadInput


def parse(argv):
  p = argparse.ArgumentParser(prog='python -m refine_jax.detection', description=__doc__.split('\n\n')[0])
  p.add_argument('--backbone', required=True, help='torchvision ResNet-50 state_dict (.pt/.pth/.safetensors), '
                 'e.g. from python -m refine_jax.export')
  p.add_argument('--voc_root', required=True, help='the VOC2007 folder (Annotations/, JPEGImages/, ImageSets/)')
  p.add_argument('--out', required=True)
  p.add_argument('--train_split', default='trainval')
  p.add_argument('--test_split', default='test')
  p.add_argument('--epochs', type=int, default=12)
  p.add_argument('--batch_size', type=int, default=16, help='images per SGD step (the paper: 16)')
  p.add_argument('--micro_batch', type=int, default=None, help='images per forward pass (gradient accumulation)')
  p.add_argument('--lr', type=float, default=0.01)
  p.add_argument('--decay_epochs', type=lambda s: [int(x) for x in s.split(',') if x], default=[9],
                 help='comma-separated epochs after which lr is divided by 10')
  p.add_argument('--warmup_iters', type=int, default=500)
  p.add_argument('--weight_decay', type=float, default=1e-4)
  p.add_argument('--min_size', type=int, default=600)
  p.add_argument('--max_size', type=int, default=1000)
  p.add_argument('--max_iters', type=int, default=None, help='stop training after this many iterations (tests)')
  p.add_argument('--eval_batch', type=int, default=4)
  p.add_argument('--workers', type=int, default=4)
  p.add_argument('--log_every', type=int, default=20)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--device', default=None, help='cuda, cpu, ... (default: cuda when available)')
  args = p.parse_args(argv)
  for name in ('epochs', 'batch_size', 'eval_batch', 'log_every'):
    if getattr(args, name) < 1:
      p.error(f'--{name} must be >= 1')
  return args


def main(argv) -> int:
  """The command: its exit code (`cli.guarded`: bad input 2, a stop by SIGTERM 3)."""
  from refine_jax import cli
  return cli.guarded(_main, argv)


def _main(argv) -> int:
  args = parse(argv)  # usage errors exit with 2 (argparse)
  logging.set_verbosity(logging.INFO)
  logging.use_absl_handler()
  from refine_jax.detection import finetune, voc
  backbone = finetune.backbone_state_dict(args.backbone)
  train_anns = voc.load_split(args.voc_root, args.train_split)
  test_anns = voc.load_split(args.voc_root, args.test_split)
  micro = args.micro_batch or args.batch_size
  if args.batch_size % micro:
    raise BadInput(f'--batch_size {args.batch_size} is not a multiple of --micro_batch {micro}')
  if args.batch_size > len(train_anns):
    raise BadInput(f'--batch_size {args.batch_size} is larger than the {args.train_split} split '
                   f'({len(train_anns)} images)')
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    raise BadInput(f'--out {args.out!r} exists and is not a directory')
  os.makedirs(args.out, exist_ok=True)
  logging.info('VOC %s: %d images, %s: %d images; backbone %s', args.train_split, len(train_anns),
               args.test_split, len(test_anns), args.backbone)
  result = finetune.train(args, train_anns, test_anns, backbone)
  path = finetune.write_result(args.out, result, {'backbone': os.path.abspath(args.backbone),
                                                   'args': vars(args)})
  print(json.dumps({'map': result['map'], 'ap': result['ap'], 'result': path}, indent=2))
  logging.info('VOC07 test mAP@0.5 %s %% (%s)', finetune.map_percent(result), path)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
