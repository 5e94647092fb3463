"""The paper's tables and stated settings, as data: He et al. 2019, "Data Augmentation Revisited" (1909.09148).

Transcribed from `../shared/paper/README.md` (the tables put back together from the text extraction) and
checked against the text itself (`../shared/paper/he2019_data_augmentation_revisited.txt`). Accuracies are top-1
in % unless a value's name says otherwise; Table 2's losses are cross-entropies ×10⁻³, as the paper prints them.
A value the paper leaves blank ("-") is absent from `values`.

Each paper config names its row in the config field `paper_row` (a key of `ROWS`; None for our extensions):

    from refine_jax import paper
    r = paper.row('table1/cifar100/preact18/mixup')   # Row(table=1, values={'aug': 78.95, 'ref': 80.85}, ...)
    paper.same_run('table1/cifar100/preact18/mixup')  # the Table 2 row measured on the same runs

Keys are `table{N}/{dataset}/{model}/{augmentation}`; models `preact18`, `wrn28_10`, `shake26`, `resnet50`,
`resnet101`; `text/...` rows are numbers the paper states in its text only. Nothing here imports JAX or
TensorFlow.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping, Optional

CITATION = ('He, Xie, Chen, Zhang, Wang, Tian, "Data Augmentation Revisited: Rethinking the Distribution Gap '
            'between Clean and Augmented Data", arXiv 1909.09148 (2019)')

# What each table's values mean (the columns of the paper's table).
COLUMNS: Mapping[int, Mapping[str, str]] = MappingProxyType({
    1: {'aug': 'test top-1 (%) after the intensive augmentation',
        'ref': 'test top-1 (%) after refinement'},
    2: {'aug_raug': 'R̂aug ×10⁻³ at the end of the augmented phase',
        'aug_r': 'R̂ ×10⁻³ at the end of the augmented phase',
        'ref_raug': 'R̂aug ×10⁻³ after refinement (standard augmentation)',
        'ref_r': 'R̂ ×10⁻³ after refinement'},
    3: {'aug': 'test top-1 (%) after T1 AutoAugment epochs', 'ref': 'test top-1 (%) after T2 refinement epochs'},
    4: {'aug_best': 'best val top-1 (%), augmented', 'aug_last': 'last val top-1 (%), augmented',
        'ref_best': 'best val top-1 (%), refined', 'ref_last': 'last val top-1 (%), refined'},
    5: {'aug_top1': 'val top-1 (%), augmented', 'aug_top5': 'val top-5 (%), augmented',
        'ref_top1': 'val top-1 (%), refined', 'ref_top5': 'val top-5 (%), refined'},
    6: {'aug': 'VOC 2007 test mAP (%), backbone as trained with the augmentation',
        'ref': 'VOC 2007 test mAP (%), backbone after refinement'},
    0: {'aug': 'test top-1 (%) without refinement', 'ref': 'test top-1 (%) with refinement'},
})

TITLES: Mapping[int, str] = MappingProxyType({
    1: 'Table 1: CIFAR-10 / CIFAR-100 test top-1 (%), aug → refined (PreActResNet-18 and WRN-28-10: mean of 3 '
       'runs, each the median of its last 10 epochs)',
    2: 'Table 2: cross-entropy ×10⁻³ on CIFAR-100 training data, PreActResNet-18',
    3: 'Table 3: AutoAugment epochs T1 and refinement epochs T2, CIFAR-100',
    4: 'Table 4: Tiny-ImageNet validation top-1 (%), PreActResNet-18, 400 + 50 epochs, best / last',
    5: 'Table 5: ImageNet (ILSVRC2012) validation top-1 / top-5 (%)',
    6: 'Table 6: PASCAL VOC 2007 detection mAP (%), Faster R-CNN, ImageNet-trained ResNet-50 backbone',
    0: 'Stated in the text only',
})


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of a paper table: what was trained and the paper's numbers for it."""
  key: str
  table: int  # 1-6; 0 for a number stated in the text only
  dataset: str  # cifar10, cifar100, tinyimagenet, imagenet, voc2007
  model: str
  augmentation: str  # standard, mixup, manifold_mixup, cutmix, autoaugment (+ a variant suffix)
  values: Mapping[str, float]
  note: str = ''

  def value(self, column: str) -> Optional[float]:
    """The paper's number in `column` (see COLUMNS[table]), or None where the paper has a dash."""
    if column not in COLUMNS[self.table]:
      raise KeyError(f'table {self.table} has no column {column!r}; columns: {", ".join(COLUMNS[self.table])}')
    return self.values.get(column)


def _rows() -> dict[str, Row]:
  out: dict[str, Row] = {}

  def add(table, dataset, model, aug, note='', /, **values):
    key = f'table{table}/{dataset}/{model}/{aug}' if table else f'text/{dataset}/{model}/{aug}'
    assert key not in out, key
    out[key] = Row(key, table, dataset, model, aug, MappingProxyType(values), note)

  # Table 1: (C10 aug, C10 ref, C100 aug, C100 ref); None = "-".
  no_aug_ref = 'ref: refined with no augmentation at all'
  for model, aug, c10a, c10r, c100a, c100r, note in [
      ('preact18', 'standard', 94.63, 94.48, 75.79, 76.06, no_aug_ref),
      ('preact18', 'mixup', 95.92, 96.26, 78.95, 80.85, ''),
      ('preact18', 'manifold_mixup', 95.81, 96.07, 80.19, 81.39, ''),
      ('preact18', 'cutmix', 96.21, 96.38, 79.75, 80.46, ''),
      ('preact18', 'autoaugment', 96.02, 96.20, 79.33, 80.09, ''),
      ('wrn28_10', 'standard', 96.11, None, 81.15, None, ''),
      ('wrn28_10', 'mixup', 97.05, 97.52, 82.11, 84.25, ''),
      ('wrn28_10', 'manifold_mixup', 97.13, 97.32, 83.02, 84.77, ''),
      ('wrn28_10', 'cutmix', 97.11, 97.24, 82.75, 83.40, ''),
      ('wrn28_10', 'autoaugment', 97.59, 97.73, 83.85, 85.24, ''),
      ('shake26', 'standard', 97.00, None, 82.87, None, ''),
      ('shake26', 'mixup', 97.80, 98.02, 84.22, 85.19, ''),
      ('shake26', 'cutmix', 97.77, 97.76, 84.51, 84.64, ''),
      ('shake26', 'autoaugment', 98.02, 98.05, 85.62, 86.13, ''),
  ]:
    for dataset, a, r in (('cifar10', c10a, c10r), ('cifar100', c100a, c100r)):
      add(1, dataset, model, aug, note, **({'aug': a} | ({} if r is None else {'ref': r})))

  # Table 2 (×10⁻³): aug R̂aug, aug R̂, ref R̂aug, ref R̂.
  for aug, aug_raug, aug_r, ref_raug, ref_r in [
      ('standard', 3.3, 1.1, None, 1.0),
      ('mixup', 1356, 98, 4.7, 2.4),
      ('manifold_mixup', 1253, 67, 4.2, 2.2),
      ('cutmix', 785, 14, 1.9, 0.8),
      ('autoaugment', 245, 0.9, 1.5, 0.8),
  ]:
    vals = {'aug_raug': aug_raug, 'aug_r': aug_r, 'ref_r': ref_r}
    if ref_raug is not None:
      vals['ref_raug'] = ref_raug
    add(2, 'cifar100', 'preact18', aug, no_aug_ref if aug == 'standard' else '', **vals)

  # Table 3: AutoAugment for T1 epochs, then T2 refinement epochs (CIFAR-100).
  add(3, 'cifar100', 'preact18', 'autoaugment_t400', 'T1 = 400, T2 = 50; lr 0.1 ÷10 at 150 and 275 (Table 1)',
      aug=79.33, ref=80.09)
  add(3, 'cifar100', 'preact18', 'autoaugment_t1000', 'T1 = 1000, T2 = 200; lr 0.1 ÷10 at 400 and 800',
      aug=78.16, ref=80.38)
  add(3, 'cifar100', 'wrn28_10', 'autoaugment_t200', 'T1 = 200, T2 = 50; cosine lr', aug=83.73, ref=84.06)
  add(3, 'cifar100', 'wrn28_10', 'autoaugment_t400', 'T1 = 400, T2 = 50; cosine lr (Table 1)', aug=83.85, ref=85.24)

  # Table 4: Tiny-ImageNet, aug best/last, ref best/last.
  for aug, ab, al, rb, rl in [
      ('standard', 60.84, 60.68, None, None),
      ('mixup_g02', 63.18, 63.08, 64.54, 64.20),
      ('mixup_g05', 63.95, 63.34, 65.45, 65.08),
      ('manifold_mixup_g02', 63.66, 63.28, 64.54, 64.33),
      ('manifold_mixup_g05', 64.88, 64.43, 65.98, 65.80),
      ('cutmix_p05', 64.90, 64.61, 65.84, 65.59),
      ('cutmix_p1', 65.97, 65.23, 66.29, 65.87),
      ('autoaugment_cifar', 65.08, 64.29, 65.31, 65.12),
      ('autoaugment_imagenet', 61.06, 60.65, 61.82, 61.75),
  ]:
    vals = {'aug_best': ab, 'aug_last': al} | ({} if rb is None else {'ref_best': rb, 'ref_last': rl})
    note = {'autoaugment_cifar': 'CIFAR-10 policy + Cutout 32', 'autoaugment_imagenet': 'ImageNet policy, no Cutout'}
    add(4, 'tinyimagenet', 'preact18', aug, note.get(aug, ''), **vals)

  # Table 5: ImageNet, aug top-1/top-5, ref top-1/top-5.
  for model, aug, a1, a5, r1, r5 in [
      ('resnet50', 'standard', 76.39, 93.19, None, None),
      ('resnet50', 'mixup_g02', 77.47, 93.75, 77.69, 93.83),
      ('resnet50', 'mixup_g05', 77.26, 93.78, 77.65, 93.93),
      ('resnet50', 'autoaugment', 77.83, 93.70, 77.98, 93.86),
      ('resnet101', 'standard', 78.13, 93.71, None, None),
      ('resnet101', 'mixup_g05', 79.41, 94.70, 79.61, 94.73),
      ('resnet101', 'autoaugment', 79.20, 94.45, 79.33, 94.46),
  ]:
    vals = {'aug_top1': a1, 'aug_top5': a5} | ({} if r1 is None else {'ref_top1': r1, 'ref_top5': r5})
    add(5, 'imagenet', model, aug, 'epochs not stated' if aug == 'standard' else '', **vals)

  # Table 6: VOC 2007 mAP of Faster R-CNN with the ImageNet ResNet-50 backbone.
  add(6, 'voc2007', 'resnet50', 'standard', aug=72.0)
  add(6, 'voc2007', 'resnet50', 'mixup', 'which Mixup γ gave the backbone is not stated', aug=67.4, ref=73.3)
  add(6, 'voc2007', 'resnet50', 'autoaugment', aug=70.5, ref=73.1)

  # Text: P-DARTS on CIFAR-10, 600 AutoAugment epochs vs 550 + 50 refinement epochs.
  add(0, 'cifar10', 'pdarts', 'autoaugment', 'aug: 600 AutoAugment epochs (P-DARTS paper); ref: 550 + 50 refinement',
      aug=97.81, ref=97.97)
  # Text: Standard → refined with no augmentation at all, PreActResNet-18 (also in Table 1's Standard row).
  add(0, 'cifar100', 'preact18', 'standard_refined_no_aug_gain', 'refinement gain in points, "0.27% gain"',
      ref=0.27)
  add(0, 'cifar10', 'preact18', 'standard_refined_no_aug_gain', 'refinement gain in points, "0.15% drop"',
      ref=-0.15)
  return out


ROWS: Mapping[str, Row] = MappingProxyType(_rows())

# Rows measured on the same runs as another row (Table 2 and Table 3's T1 = 400 rows are Table 1's runs).
_SAME_RUN = {
    **{f'table1/cifar100/preact18/{a}': (f'table2/cifar100/preact18/{a}',)
       for a in ('standard', 'mixup', 'manifold_mixup', 'cutmix')},
    'table1/cifar100/preact18/autoaugment': ('table2/cifar100/preact18/autoaugment',
                                             'table3/cifar100/preact18/autoaugment_t400'),
    'table1/cifar100/wrn28_10/autoaugment': ('table3/cifar100/wrn28_10/autoaugment_t400',),
}

# Settings the paper states (value, and where: section and the sentence's gist). Settings it does not state
# are absent: a config that needs one says "our choice" in its docstring.
STATED: Mapping[str, tuple[object, str]] = MappingProxyType({
    'cifar.batch_size': (128, '§4.1: mini-batch size of 128 (all CIFAR models)'),
    'cifar.standard_aug': ('random crop + horizontal flip (p 0.5)', '§4.1: standard data augmentation'),
    'preact18.epochs': (400, '§4.1: PreActResNet-18 and WRN-28-10 trained for 400 epochs'),
    'preact18.lr': ((0.1, 'multistep', (150, 275), 0.1), '§4.1: starts at 0.1, divided by 10 after 150, 275'),
    'preact18.weight_decay': (1e-4, '§4.1'),
    'wrn28_10.epochs': (400, '§4.1'),
    'wrn28_10.lr': ((0.1, 'multistep', (120, 240, 320), 0.2), '§4.1: 0.1, divided by 5 after 120, 240, 320'),
    'wrn28_10.lr_autoaugment': ((0.1, 'cosine'), '§4.1: cosine decay for AutoAugment'),
    'wrn28_10.weight_decay': (5e-4, '§4.1'),
    'wrn28_10.dropout': ({'autoaugment': 0.3, 'other': 0.0}, '§4.1: 0.3 with AutoAugment, 0 in other experiments'),
    'shake26.epochs': (1800, '§4.1: 1800 epochs on 2 GPUs, batch 128'),
    'shake26.lr': ((0.01, 'cosine'), '§4.1: starts at 0.01 with cosine decay'),
    'shake26.weight_decay': (1e-3, '§4.1'),
    'mixup.gamma': (1.0, '§4.1: γ = 1 for Mixup and Manifold Mixup'),
    'cutmix.prob': (0.5, '§4.1: CutMix with a probability of 50%'),
    'autoaugment.order': ('standard → policy → Cutout 16×16', '§4.1, following Cubuk et al.'),
    'autoaugment.policies': ('the AutoAugment paper\'s reported policies', '§4.1: "directly use the AutoAugment '
                             'policies reported in [8]"'),
    'refine.aug': ('standard augmentation kept', '§4.1'),
    'refine.epochs': ({'preact18': 50, 'wrn28_10': 50, 'shake26': 200}, '§4.1'),
    'refine.lr': ('final rate of a step schedule; "a reasonably small value" after cosine', '§4.1'),
    'table3.preact18_t1000.lr': ((0.1, 'multistep', (400, 800), 0.1), '§4.1 ablation: T1 = 1000, ÷10 at 400, 800'),
    'table3.wrn28_10.lr': ((0.1, 'cosine'), '§4.1 ablation: cosine decay'),
    'gradual': ('Mixup: γ decreased gradually to 0; CutMix and AutoAugment: probability decreased gradually; no '
                'significant difference', '§4.1'),
    'tinyimagenet.epochs': ((400, 50), '§4.2: 400 epochs + 50 refinement; other hyper-parameters as before'),
    'tinyimagenet.cutout': (32, '§4.2: Cutout 32×32 after the CIFAR policy'),
    'imagenet.batch_size': (256, '§4.3: 256 on 8 GPUs'),
    'imagenet.lr': (0.1, '§4.3'),
    'imagenet.standard_aug': ('scale and aspect-ratio distortion, random crop, flip', '§4.3'),
    'imagenet.mixup': ((200, (60, 120, 180)), '§4.3: 200 epochs, ÷10 at 60, 120, 180'),
    'imagenet.resnet50_autoaugment': ((300, (75, 150, 225)), '§4.3: 300 epochs, ÷10 at 75, 150, 225'),
    'imagenet.resnet101_autoaugment': ((200, None), '§4.3: 200 epochs (boundaries not stated)'),
    'imagenet.refine': ((20, 1e-4), '§4.3: 20 epochs, standard augmentation, lr 1e-4'),
    'detection': ((12, 16, 0.01, 9), '§4.4: Faster R-CNN, 12 epochs, batch 16, lr 0.01 ÷10 after 9'),
})


def row(key: str) -> Row:
  """The paper's row `key`; a KeyError lists the keys of the nearest table."""
  if key not in ROWS:
    prefix = key.split('/')[0]
    near = sorted(k for k in ROWS if k.startswith(prefix)) or sorted(ROWS)
    raise KeyError(f'no paper row {key!r}; rows of {prefix}: {", ".join(near)}')
  return ROWS[key]


def rows(table: Optional[int] = None, **fields: str) -> list[Row]:
  """Rows of `table` (all tables when None) whose fields equal `fields` (dataset=, model=, augmentation=)."""
  return [r for r in ROWS.values()
          if (table is None or r.table == table) and all(getattr(r, k) == v for k, v in fields.items())]


def same_run(key: str) -> tuple[Row, ...]:
  """Rows of other tables measured on the same runs as row `key` (e.g. Table 2 for Table 1's C100 PreAct)."""
  row(key)
  return tuple(ROWS[k] for k in _SAME_RUN.get(key, ()))
