"""Every experiment of He et al. 2019 from one description: `get_config('dataset=…,model=…,aug=…[,…]')`.

    python -m refine_jax.main --config=configs/paper.py:dataset=cifar100,model=wrn28_10,aug=cutmix --workdir=W \
        --config.data_dir=TFDS_DIR

(ml_collections' config flag passes everything after the first `:` to `get_config`.) The `configs/NAME.py`
files the README lists are one-line aliases of this builder, each docstring giving its paper row's numbers
and its exact command; this file and `configs/common.py` (the defaults) are all there is to read.

Arguments (comma-separated `key=value`):

  dataset   cifar10, cifar100, tinyimagenet, imagenet
  model     preact18, wrn28_10, shake26 (CIFAR); preact18 (Tiny-ImageNet); resnet50, resnet101 (ImageNet)
  aug       standard, mixup, manifold_mixup, cutmix, autoaugment: the augmented phase's intensive augmentation
  gamma     Mixup / Manifold Mixup Beta(γ, γ) (default: 1 on CIFAR and Tiny-ImageNet, 0.2 on ImageNet)
  p         CutMix probability (default 0.5)
  policy    cifar10, imagenet: the AutoAugment policy (default: imagenet on ImageNet, else cifar10)
  t1, t2    augmented / refinement epochs (Table 3); step boundaries only where the paper gives them
  refine    standard (default with an intensive augmentation): refine on standard augmentation;
            no_aug: refine with no augmentation at all;
            off (default for aug=standard): no refine phase, one phase of t1 + t2 epochs
  gradual   1: the paper's gradual variant, one phase of t1 + t2 epochs whose last t2 epochs fade Mixup's γ
            (probability kept), or CutMix's / AutoAugment's probability (strength kept), to 0

Where the paper states a setting it is used as stated (`refine_jax/paper.py` `STATED` has the sentences);
where it does not, the value below is marked OUR CHOICE, and so is every docstring that uses it. The ablation
"refine without any augmentation" is `refine=no_aug`, or on any config file the one override
`--config.phases.refine.pp=''`.
"""
from __future__ import annotations

import ml_collections

from configs import common
from refine_jax import paper as paper_lib

DATASETS = ('cifar10', 'cifar100', 'tinyimagenet', 'imagenet')
MODELS = {'cifar10': ('preact18', 'wrn28_10', 'shake26'), 'cifar100': ('preact18', 'wrn28_10', 'shake26'),
          'tinyimagenet': ('preact18',), 'imagenet': ('resnet50', 'resnet101')}
AUGS = ('standard', 'mixup', 'manifold_mixup', 'cutmix', 'autoaugment')
REFINE = ('standard', 'no_aug', 'off')
KEYS = ('dataset', 'model', 'aug', 'gamma', 'p', 'policy', 't1', 't2', 'refine', 'gradual')
REGISTRY = {'preact18': 'preact_resnet18', 'wrn28_10': 'wide_resnet28_10', 'shake26': 'shake_shake26_2x96d',
            'resnet50': 'resnet50', 'resnet101': 'resnet101'}

TINY_PP = 'pad_crop(64,4)|flip_lr'  # OUR CHOICE: CIFAR's pad-4 crop at 64 px (the paper: "same settings")
# OUR CHOICE: PreActResNet-18 as in the mixup authors' CIFAR code (conv-BN-ReLU stem, no BN-ReLU before the
# pooling; models/preact_resnet.py), the code whose CIFAR protocol (γ = 1, pad-4 crop + flip) the paper follows.
# The paper only cites the architecture ("PreActResNet-18 [20]"); `--config.model_kwargs.variant=
# identity_mappings` gives the Identity Mappings form with its final BN-ReLU. Both have 11.17M parameters.
PREACT_VARIANT = 'mixup_cifar'
# OUR CHOICE: refinement rates after a cosine schedule (it ends at ~0; the paper: "a reasonably small value").
WRN_COSINE_REFINE_LR = 8e-4  # 0.1·0.2³, the rate the step-schedule WRN rows refine at
SHAKE_REFINE_LR = 1e-4  # base/100, the PreActResNet-18 ratio (0.1 → 0.001)

# Per (dataset family, model): epochs of the two phases and the augmented phase's schedule, as the paper states.
_CIFAR_SCHEDULES = {
    # model: (t1, t2, lr base, schedule, {t1: boundaries}, factor, weight decay)
    'preact18': (400, 50, 0.1, 'multistep', {400: (150, 275), 1000: (400, 800)}, 0.1, 1e-4),
    'wrn28_10': (400, 50, 0.1, 'multistep', {400: (120, 240, 320)}, 0.2, 5e-4),
    'shake26': (1800, 200, 0.01, 'cosine', {}, 1.0, 1e-3),
}
_IMAGENET_T2, _IMAGENET_REFINE_LR = 20, 1e-4
_IMAGENET_BOUNDARIES = {200: (60, 120, 180), 300: (75, 150, 225)}  # Mixup 200; ResNet-50 AutoAugment 300


def parse(arg: str | None) -> dict[str, str]:
  """'a=1,b=x' → {'a': '1', 'b': 'x'}; unknown keys and missing required ones raise naming the allowed."""
  out: dict[str, str] = {}
  for item in (arg or '').split(','):
    if not item.strip():
      continue
    if '=' not in item:
      raise ValueError(f'configs/paper.py: {item!r} is not key=value; keys: {", ".join(KEYS)}')
    k, v = (s.strip() for s in item.split('=', 1))
    if k not in KEYS:
      raise ValueError(f'configs/paper.py: unknown key {k!r}; allowed: {", ".join(KEYS)}')
    out[k] = v
  return out


def _choice(key: str, value: str, allowed) -> str:
  if value not in allowed:
    raise ValueError(f'configs/paper.py: {key}={value!r}; allowed: {", ".join(allowed)}')
  return value


def _tag(x: float) -> str:
  """0.2 → 'g02', 0.5 → 'g05', 1 → 'p1' style suffix digits."""
  return f'{x:g}'.replace('.', '')


def paper_row(a: dict) -> str | None:
  """The key of the paper row this experiment reproduces (refine_jax/paper.py), or None for an extension."""
  ds, model, aug = a['dataset'], a['model'], a['aug']
  if a['gradual'] or (a['refine'] == 'no_aug' and aug != 'standard'):
    return None  # the paper reports no numbers for these
  if ds in ('cifar10', 'cifar100'):
    t1, t2 = a['t1'], a['t2']
    default_t1, default_t2 = _CIFAR_SCHEDULES[model][:2]
    if aug == 'standard':
      # Table 1's Standard rows: trained with standard augmentation (the "aug" column); only PreActResNet-18
      # has a "ref" column, and it is refined with no augmentation at all.
      ok = a['refine'] == 'off' or (a['refine'] == 'no_aug' and model == 'preact18')
      return f'table1/{ds}/{model}/standard' if ok and (a['t1'], a['t2']) == (default_t1, default_t2) else None
    if (t1, t2) != (default_t1, default_t2):
      key = f'table3/{ds}/{model}/{aug}_t{t1}'
      ok = key in paper_lib.ROWS and (model, t2) in (('preact18', 200), ('wrn28_10', 50))
      return key if ok else None
    if a['gamma'] != 1.0 or a['p'] != 0.5 or a['policy'] != 'cifar10':
      return None
    key = f'table1/{ds}/{model}/{aug}'
  elif aug == 'standard' and a['refine'] != 'off':
    return None  # Tables 4 and 5 have no refined Standard row
  elif ds == 'tinyimagenet':
    suffix = {'standard': '', 'mixup': f'_g{_tag(a["gamma"])}', 'manifold_mixup': f'_g{_tag(a["gamma"])}',
              'cutmix': f'_p{_tag(a["p"])}', 'autoaugment': f'_{a["policy"].replace("cifar10", "cifar")}'}[aug]
    key = f'table4/tinyimagenet/preact18/{aug}{suffix}'
  else:
    suffix = f'_g{_tag(a["gamma"])}' if aug == 'mixup' else ''
    key = f'table5/imagenet/{model}/{aug}{suffix}'
  return key if key in paper_lib.ROWS else None


def _resolve(arg: str | None) -> dict:
  raw = parse(arg)
  for k in ('dataset', 'model', 'aug'):
    if k not in raw:
      raise ValueError(f'configs/paper.py: {k}= is required, e.g. dataset=cifar100,model=preact18,aug=mixup')
  ds = _choice('dataset', raw['dataset'], DATASETS)
  model = _choice('model', raw['model'], MODELS[ds])
  aug = _choice('aug', raw['aug'], AUGS)
  if ds == 'imagenet' and aug in ('manifold_mixup', 'cutmix'):
    raise ValueError(f'configs/paper.py: aug={aug!r} has no ImageNet experiment; allowed: standard, mixup, '
                     'autoaugment')
  if ds in ('cifar10', 'cifar100'):
    t1, t2 = _CIFAR_SCHEDULES[model][:2]
  elif ds == 'tinyimagenet':
    t1, t2 = 400, 50  # stated (§4.2)
  else:
    t1 = 300 if (aug == 'autoaugment' and model == 'resnet50') else 200  # stated (§4.3)
    t2 = _IMAGENET_T2
  a = {
      'dataset': ds, 'model': model, 'aug': aug,
      'gamma': float(raw.get('gamma', 0.2 if ds == 'imagenet' else 1.0)),
      'p': float(raw.get('p', 0.5)),
      'policy': _choice('policy', raw.get('policy', 'imagenet' if ds == 'imagenet' else 'cifar10'),
                        ('cifar10', 'imagenet')),
      't1': int(raw.get('t1', t1)), 't2': int(raw.get('t2', t2)),
      'refine': _choice('refine', raw.get('refine', 'off' if aug == 'standard' else 'standard'), REFINE),
      'gradual': bool(int(raw.get('gradual', '0'))),
  }
  if a['gradual'] and aug not in ('mixup', 'manifold_mixup', 'cutmix', 'autoaugment'):
    raise ValueError('configs/paper.py: gradual=1 fades an intensive augmentation; aug=standard has none')
  return a


def _mix(aug: str, gamma: float, p: float) -> ml_collections.ConfigDict:
  if aug in ('mixup', 'manifold_mixup'):
    return common.mix(aug, gamma, 1.0, layers=(0, 1, 2))  # Manifold Mixup: input, stage-1 or stage-2 output
  if aug == 'cutmix':
    return common.mix('cutmix', 1.0, p)  # λ ~ Beta(1, 1), applied with probability p
  return common.mix('none')


def _augmented_pp(a: dict, std_pp: str) -> str:
  if a['aug'] != 'autoaugment':
    return std_pp
  pp = f'{std_pp}|autoaugment("{a["policy"]}")'
  # Cutout follows the CIFAR-10 policy only (Cubuk et al.; He et al. §4.1 and §4.2): 16 px at 32, 32 px at 64.
  if a['policy'] == 'cifar10':
    pp += '|cutout(32)' if a['dataset'] == 'tinyimagenet' else '|cutout(16)'
  return pp


def _lr(a: dict, epochs: int) -> ml_collections.ConfigDict:
  ds, model, aug = a['dataset'], a['model'], a['aug']
  if ds == 'imagenet':
    if epochs not in _IMAGENET_BOUNDARIES and epochs != 220:
      raise ValueError(f'configs/paper.py: t1={epochs}: the paper gives ImageNet boundaries for '
                       f'{sorted(_IMAGENET_BOUNDARIES)} epochs only')
    # 220 = Standard's one phase (200 + 20, OUR CHOICE: the paper does not state Standard's epochs): the Mixup
    # schedule, then its 1e-4 to the end. ResNet-101 AutoAugment's 200 epochs: boundaries 60/120/180,
    # OUR CHOICE (the paper states 200 epochs, not the boundaries).
    return common.lr('multistep', 0.1, _IMAGENET_BOUNDARIES.get(epochs, _IMAGENET_BOUNDARIES[200]), 0.1)
  name = 'preact18' if ds == 'tinyimagenet' else model
  _, _, base, schedule, bounds, factor, _ = _CIFAR_SCHEDULES[name]
  if model == 'wrn28_10' and aug == 'autoaugment':
    schedule = 'cosine'  # stated: cosine for WRN + AutoAugment
  if schedule == 'cosine':
    return common.lr('cosine', base)
  t1 = a['t1']
  if t1 not in bounds:
    raise ValueError(f'configs/paper.py: t1={t1}: the paper gives the {name} step boundaries for '
                     f'{sorted(bounds)} augmented epochs only')
  # A one-phase run of t1 + t2 epochs keeps t1's boundaries and ends at the rate refinement would use.
  return common.lr('multistep', base, bounds[t1], factor)


def _refine_lr(a: dict, aug_lr: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  if a['dataset'] == 'imagenet':
    return common.lr('constant', _IMAGENET_REFINE_LR)  # stated (§4.3)
  if aug_lr.schedule == 'multistep':
    return common.lr('constant', None)  # stated rule: the augmented phase's final rate
  return common.lr('constant', SHAKE_REFINE_LR if a['model'] == 'shake26' else WRN_COSINE_REFINE_LR)


def build(a: dict) -> ml_collections.ConfigDict:
  """The config of the resolved description `a` (see _resolve)."""
  c = common.get_config()
  ds, model = a['dataset'], a['model']
  c.model = REGISTRY[model]
  if ds in ('cifar10', 'cifar100'):
    c.dataset, c.image_size, std_pp = ds, 32, common.CIFAR_PP
    c.optimizer.weight_decay = _CIFAR_SCHEDULES[model][6]
  elif ds == 'tinyimagenet':
    # Tiny-ImageNet as an image folder (launch/prepare_tiny_imagenet.py); labelled val split for eval.
    c.dataset, c.image_size, c.train_split, c.eval_split, c.pp_eval = 'image_folder', 64, 'train', 'val', ''
    std_pp = TINY_PP
  else:
    c.dataset, c.eval_split = 'imagenet2012', 'validation'  # TFDS imagenet2012 'test' has no labels
    c.image_size, c.batch_size, c.eval_batch_size = 224, 256, 1000
    c.pp_eval = common.IMAGENET_PP_EVAL  # OUR CHOICE: resize 256 + centre crop 224
    c.diag_examples, c.checkpoint_every_epochs, c.log_every_steps = 10000, 5.0, 200
    std_pp = common.IMAGENET_PP  # random-resized crop + flip: the stated "scale and aspect ratio distortions"
    # weight decay 1e-4 (common.py): OUR CHOICE, the paper does not state ImageNet's.
  if model == 'preact18':
    c.model_kwargs.variant = PREACT_VARIANT
  if model == 'wrn28_10' and a['aug'] == 'autoaugment':
    c.model_kwargs.dropout_rate = 0.3  # stated: 0.3 with AutoAugment, else 0 (the model's default)
  refine = a['refine'] != 'off' and not a['gradual']
  aug_epochs = a['t1'] if refine else a['t1'] + a['t2']
  lr_cfg = _lr(a, aug_epochs)
  aug = common.phase(aug_epochs, _augmented_pp(a, std_pp), _mix(a['aug'], a['gamma'], a['p']), lr_cfg)
  c.phases.augmented = aug
  if a['gradual']:
    c.phases.augmented.mix.decay_epochs = float(a['t2'])
    if a['aug'] == 'cutmix':
      c.phases.augmented.mix.decay_of = ('prob',)  # CutMix: probability → 0, λ ~ Beta(1, 1) kept
    elif a['aug'] in ('mixup', 'manifold_mixup'):
      c.phases.augmented.mix.decay_of = ('gamma',)  # Mixup: γ → 0, applied to every batch still
    else:
      c.phases.augmented.mix.decay_epochs = None
      c.phases.augmented.aug_prob_decay_epochs = float(a['t2'])  # AutoAugment (+ Cutout) probability → 0
  if refine:
    c.phase_order = ('augmented', 'refine')
    # no_aug: no augmentation at all; ImageNet images still need the eval crop to a fixed size.
    no_aug_pp = common.IMAGENET_PP_EVAL if ds == 'imagenet' else ''
    c.phases.refine = common.phase(a['t2'], no_aug_pp if a['refine'] == 'no_aug' else std_pp, common.mix('none'),
                                   _refine_lr(a, lr_cfg))
  else:
    c.phase_order = ('augmented',)
  c.paper_row = paper_row(a)
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The config of `arg` ('dataset=…,model=…,aug=…[,…]'); no arg: Table 1's CIFAR-100 PreActResNet-18 Mixup."""
  return build(_resolve(arg or 'dataset=cifar100,model=preact18,aug=mixup'))
