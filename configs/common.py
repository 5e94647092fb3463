"""The default config every experiment starts from; each config file imports it and changes a few fields.

Durations are in epochs (`epochs`, `*_epochs`) or steps (`steps`, `*_steps`); a set `*_steps` wins, so
`--config.phases.refine.steps=100` overrides a duration written in epochs.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

CIFAR_PP = 'pad_crop(32,4)|flip_lr'
IMAGENET_PP = 'inception_crop(224)|flip_lr'  # decodes only the crop window of each JPEG
IMAGENET_PP_EVAL = 'decode|resize_small(256)|center_crop(224)'


def lr(schedule: str = 'multistep', base: float | None = 0.1, boundaries_epochs=(), factor: float = 0.1,
       warmup_epochs: float | None = None) -> ml_collections.ConfigDict:
  """A learning-rate schedule: multistep (×factor at each boundary), cosine, or constant.

  base=None (only after a first phase) continues at the previous phase's final rate.
  """
  return ml_collections.ConfigDict({
      'schedule': schedule,
      'base': config_dict.placeholder(float) if base is None else base,
      'boundaries_epochs': tuple(boundaries_epochs),
      'boundaries_steps': (),
      'factor': factor,
      'warmup_epochs': config_dict.placeholder(float) if warmup_epochs is None else warmup_epochs,
      'warmup_steps': config_dict.placeholder(int),
  })


def mix(kind: str = 'none', gamma: float = 1.0, prob: float = 1.0, layers=(0, 1, 2)) -> ml_collections.ConfigDict:
  """On-device mixing: kind none|mixup|cutmix|manifold_mixup, λ ~ Beta(gamma, gamma), applied with `prob`.

  decay_epochs/decay_steps: fall linearly to 0 over the end of the phase (the paper's gradual variant);
  decay_of names what falls: ('gamma',) for gradual Mixup (γ → 0, probability kept), ('prob',) for gradual
  CutMix (probability → 0, λ ~ Beta(γ, γ) kept), both by default.
  """
  return ml_collections.ConfigDict({
      'kind': kind, 'gamma': gamma, 'prob': prob, 'per_example': False, 'layers': tuple(layers),
      'decay_epochs': config_dict.placeholder(float), 'decay_steps': config_dict.placeholder(int),
      'decay_of': ('gamma', 'prob'),
  })


def phase(epochs: float | None, pp: str, mixing: ml_collections.ConfigDict,
          lr_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      'epochs': config_dict.placeholder(float) if epochs is None else float(epochs),
      'steps': config_dict.placeholder(int),
      'pp': pp,
      'aug_prob': 1.0,
      'aug_prob_decay_epochs': config_dict.placeholder(float),
      'aug_prob_decay_steps': config_dict.placeholder(int),
      'mix': mixing,
      'lr': lr_cfg,
  })


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Data.
  c.dataset = 'cifar10'
  c.data_dir = config_dict.placeholder(str)
  c.download = False
  c.image_folder_skip_corrupt = False  # dataset='image_folder': skip and count unreadable files
  # dataset='synthetic' (benchmarks; no TensorFlow, nothing read): uniform random uint8 images of image_size
  # (required) and labels, made by numpy from (seed, split name); splits train (train_examples) and test /
  # validation (eval_examples), held in memory. Every phase's pp and pp_eval must be '' (no host ops).
  c.synthetic = ml_collections.ConfigDict({'num_classes': 10, 'train_examples': 2048, 'eval_examples': 512})
  c.train_split = 'train'
  c.eval_split = 'test'
  # The side of the square images the model receives, checked for every dataset before compute (each phase's
  # pp and pp_eval must produce it); `digits` is also rendered at it. None: no check (digits at 32 px).
  c.image_size = config_dict.placeholder(int)
  c.pp_eval = ''
  # Model and precision.
  c.model = 'preact_resnet18'
  c.model_kwargs = ml_collections.ConfigDict()
  c.dtype = 'float32'
  # Optimisation (SGD, momentum 0.9, L2 weight decay as the paper).
  c.batch_size = 128
  # Devices on the mesh's 'model' axis (parameters are replicated over it for now: room for model parallelism);
  # the 'data' axis, over which the batch is split, takes the rest.
  c.mesh_model = 1
  c.eval_batch_size = 500
  c.seed = 0
  c.label_smoothing = 0.0
  c.max_grad_norm = 0.0
  c.optimizer = ml_collections.ConfigDict({'momentum': 0.9, 'nesterov': False, 'weight_decay': 1e-4})
  # The phases: intensive augmentation, then refinement on standard-augmented data at a small rate.
  c.phase_order = ('augmented', 'refine')
  c.phases = ml_collections.ConfigDict({
      'augmented': phase(None, CIFAR_PP, mix('mixup', 1.0), lr('multistep', 0.1)),
      'refine': phase(None, CIFAR_PP, mix('none'), lr('constant', None)),
  })
  # Evaluation, diagnostics, checkpoints, logging.
  c.eval_every_epochs = 1.0
  c.eval_every_steps = config_dict.placeholder(int)
  c.diag_examples = 2000
  # Table 2 at the paper's resolution: R̂ and R̂aug over the whole training split at the end of each phase
  # (keys phase_end_* of the phase's last eval row and of summary.json). None: the whole split; 0: off;
  # N: the first N training examples.
  c.phase_end_diag_examples = config_dict.placeholder(int)
  c.checkpoint_every_epochs = 10.0
  c.checkpoint_every_steps = config_dict.placeholder(int)
  c.keep_checkpoints = 3
  # Extra steps (global) at which the run also evaluates, saves a checkpoint and keeps it: the points later
  # forks start from (`analyze sweep` trains each seed's trunk once with its switch epochs here).
  c.fork_points_epochs = ()
  c.fork_points_steps = ()
  c.log_every_steps = 50
  # Device batches made ready ahead of the step by a background thread (0: the loop transfers each itself).
  c.prefetch_to_device = 2
  c.init_from = config_dict.placeholder(str)
  c.allow_config_change = False
  # The paper row this config reproduces: a key of refine_jax/paper.py ROWS, or None (an extension).
  c.paper_row = config_dict.placeholder(str)
  return c
