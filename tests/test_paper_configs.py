"""Every paper config against the settings the paper states, transcribed here from ../shared/paper.

The expectations below are written from the paper (He et al. 2019, §4 and Tables 1-5, via
../shared/paper/README.md and the full text), not from configs/paper.py: one row per config file, and a config
file without a row fails. A value the paper does not state is marked OURS(value): the config must use it *and*
its docstring must say "OUR CHOICE".
"""
from __future__ import annotations

import glob
import importlib
import os

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from refine_jax import config as config_lib
from refine_jax import paper as paper_lib
from refine_jax import plan as plan_lib
from refine_jax import registries
from tests.conftest import plan_of  # noqa: E402
from tests.conftest import ROOT


class OURS:
  """A setting the paper does not state: the config's value, which its docstring must call OUR CHOICE."""

  def __init__(self, value):
    self.value = value

  def __repr__(self):
    return f'OURS({self.value!r})'


def _v(x):
  return x.value if isinstance(x, OURS) else x


# ------------------------------------------------------------------ the paper, transcribed

CIFAR_STD = 'pad_crop(32,4)|flip_lr'  # §4.1: random crop (pad 4) + horizontal flip
AA_CIFAR = CIFAR_STD + '|autoaugment("cifar10")|cutout(16)'  # §4.1: standard → policy → Cutout 16×16
TINY_STD = OURS('pad_crop(64,4)|flip_lr')  # §4.2: "same settings as before"; pad 4 at 64 px is ours
IMNET_STD = 'inception_crop(224)|flip_lr'  # §4.3: scale and aspect-ratio distortion, random crop, flip

# Per model: batch, weight decay, (T1, T2), augmented lr (schedule, base, boundaries, factor), refine lr.
# The paper cites PreActResNet-18 without saying which form; the mixup authors' CIFAR form is ours.
PREACT = dict(model='preact_resnet18', batch=128, wd=1e-4, epochs=(400, 50), variant=OURS('mixup_cifar'),
              lr=('multistep', 0.1, (150, 275), 0.1), refine_lr=0.1 * 0.1 * 0.1)  # ÷10 at 150, 275; final rate
WRN = dict(model='wide_resnet28_10', batch=128, wd=5e-4, epochs=(400, 50),
           lr=('multistep', 0.1, (120, 240, 320), 0.2), refine_lr=0.1 * 0.2 ** 3)  # ÷5 at 120, 240, 320
WRN_AA = dict(WRN, lr=('cosine', 0.1, (), None), refine_lr=OURS(8e-4), dropout=0.3)  # cosine; dropout 0.3
SHAKE = dict(model='shake_shake26_2x96d', batch=128, wd=1e-3, epochs=(1800, 200),
             lr=('cosine', 0.01, (), None), refine_lr=OURS(1e-4))
IMNET = dict(model='resnet50', batch=256, wd=OURS(1e-4), epochs=(200, 20),
             lr=('multistep', 0.1, (60, 120, 180), 0.1), refine_lr=1e-4)  # §4.3, Mixup; refine 20 at 1e-4


def exp(base, aug_pp, mix=('none', None, None), refine_pp='std', std=CIFAR_STD, **over):
  """The expected settings of one config: `base` model settings, the augmented phase's host ops and mixing."""
  e = dict(base, aug_pp=aug_pp, mix=mix, refine_pp=std if refine_pp == 'std' else refine_pp, **over)
  e.setdefault('dropout', 0.0)
  e.setdefault('image_size', 32)  # CIFAR's 32 x 32 (tiny/imagenet pass theirs)
  e.setdefault('order', ('augmented', 'refine'))
  return e


def standard(base, std=CIFAR_STD, epochs=None, lr=None):
  """A Standard row: one phase (OURS: the refined rows' T1 + T2 on the same lr path; epochs unstated)."""
  t = epochs or (OURS(base['epochs'][0] + base['epochs'][1]),)
  return exp(base, std, epochs=t, order=('augmented',), refine_pp=None, refine_lr=None,
             **({'lr': lr} if lr else {}))


def table1(ds):
  pre = f'table1/{ds}'
  out = {}
  for m, b, baa in (('preact18', PREACT, PREACT), ('wrn28_10', WRN, WRN_AA), ('shake26', SHAKE, SHAKE)):
    out[f'{ds}_{m}_standard'] = (standard(b), f'{pre}/{m}/standard')
    out[f'{ds}_{m}_mixup'] = (exp(b, CIFAR_STD, ('mixup', 1.0, 1.0)), f'{pre}/{m}/mixup')  # γ = 1
    out[f'{ds}_{m}_manifold_mixup'] = (exp(b, CIFAR_STD, ('manifold_mixup', 1.0, 1.0)),
                                       None if m == 'shake26' else f'{pre}/{m}/manifold_mixup')  # no Shake row
    out[f'{ds}_{m}_cutmix'] = (exp(b, CIFAR_STD, ('cutmix', 1.0, 0.5)), f'{pre}/{m}/cutmix')  # p 0.5, Beta(1, 1)
    out[f'{ds}_{m}_autoaugment'] = (exp(baa, AA_CIFAR), f'{pre}/{m}/autoaugment')
  # Standard → refined with no augmentation at all (Table 1's PreActResNet-18 Standard "ref" column).
  out[f'{ds}_preact18_standard_refined'] = (exp(PREACT, CIFAR_STD, refine_pp=''), f'{pre}/preact18/standard')
  return out


def tiny(aug_pp=None, mix=('none', None, None)):
  t = dict(PREACT, epochs=(400, 50))  # §4.2: 400 + 50, other hyper-parameters as CIFAR
  return exp(t, aug_pp or TINY_STD, mix, std=TINY_STD, dataset='image_folder', image_size=64)


def imagenet(model, aug_pp, mix=('none', None, None), **over):
  return exp(dict(IMNET, model=model, **over), aug_pp, mix, std=IMNET_STD, dataset='imagenet2012', image_size=224)


ROWS = {
    **table1('cifar10'), **table1('cifar100'),
    # Table 3: T1 = 1000, T2 = 200, ÷10 at 400 and 800; refinement at the final rate (the step-schedule rule).
    'cifar100_preact18_autoaugment_t1000': (
        exp(PREACT, AA_CIFAR, epochs=(1000, 200), lr=('multistep', 0.1, (400, 800), 0.1)),
        'table3/cifar100/preact18/autoaugment_t1000'),
    # Table 3: T1 = 200, T2 = 50, cosine, as Table 1's WRN AutoAugment row.
    'cifar100_wrn28_10_autoaugment_t200': (exp(WRN_AA, AA_CIFAR, epochs=(200, 50)),
                                           'table3/cifar100/wrn28_10/autoaugment_t200'),
    # Gradual variant (§4.1): no numbers, so no paper row; one phase of T1 + T2 whose last T2 epochs fade.
    'cifar100_preact18_mixup_gradual': (
        exp(PREACT, CIFAR_STD, ('mixup', 1.0, 1.0), epochs=(OURS(450),), order=('augmented',), refine_pp=None,
            refine_lr=None, gradual=('gamma', OURS(50))), None),
    'cifar100_preact18_cutmix_gradual': (
        exp(PREACT, CIFAR_STD, ('cutmix', 1.0, 0.5), epochs=(OURS(450),), order=('augmented',), refine_pp=None,
            refine_lr=None, gradual=('prob', OURS(50))), None),
    'cifar100_preact18_autoaugment_gradual': (
        exp(PREACT, AA_CIFAR, epochs=(OURS(450),), order=('augmented',), refine_pp=None, refine_lr=None,
            gradual=('aug_prob', OURS(50))), None),
    # Table 4: Tiny-ImageNet.
    'tinyimagenet_preact18_standard': (dict(standard(PREACT, std=TINY_STD), dataset='image_folder', image_size=64),
                                       'table4/tinyimagenet/preact18/standard'),
    'tinyimagenet_preact18_mixup_g02': (tiny(mix=('mixup', 0.2, 1.0)), 'table4/tinyimagenet/preact18/mixup_g02'),
    'tinyimagenet_preact18_mixup_g05': (tiny(mix=('mixup', 0.5, 1.0)), 'table4/tinyimagenet/preact18/mixup_g05'),
    'tinyimagenet_preact18_manifold_mixup_g02': (tiny(mix=('manifold_mixup', 0.2, 1.0)),
                                                 'table4/tinyimagenet/preact18/manifold_mixup_g02'),
    'tinyimagenet_preact18_manifold_mixup_g05': (tiny(mix=('manifold_mixup', 0.5, 1.0)),
                                                 'table4/tinyimagenet/preact18/manifold_mixup_g05'),
    'tinyimagenet_preact18_cutmix_p05': (tiny(mix=('cutmix', 1.0, 0.5)), 'table4/tinyimagenet/preact18/cutmix_p05'),
    'tinyimagenet_preact18_cutmix_p1': (tiny(mix=('cutmix', 1.0, 1.0)), 'table4/tinyimagenet/preact18/cutmix_p1'),
    # §4.2: Cutout 32×32 after the CIFAR policy only.
    'tinyimagenet_preact18_autoaugment_cifar': (tiny(_v(TINY_STD) + '|autoaugment("cifar10")|cutout(32)'),
                                                'table4/tinyimagenet/preact18/autoaugment_cifar'),
    'tinyimagenet_preact18_autoaugment_imagenet': (tiny(_v(TINY_STD) + '|autoaugment("imagenet")'),
                                                   'table4/tinyimagenet/preact18/autoaugment_imagenet'),
    # Table 5: ImageNet. Mixup 200 epochs ÷10 at 60/120/180; R-50 AutoAugment 300 epochs ÷10 at 75/150/225;
    # R-101 AutoAugment 200 epochs (boundaries unstated); refinement 20 epochs at 1e-4; Standard epochs unstated.
    'imagenet_r50_standard': (dict(standard(IMNET, std=IMNET_STD), dataset='imagenet2012', image_size=224),
                              'table5/imagenet/resnet50/standard'),
    'imagenet_r101_standard': (dict(standard(dict(IMNET, model='resnet101'), std=IMNET_STD), dataset='imagenet2012',
                                    image_size=224), 'table5/imagenet/resnet101/standard'),
    'imagenet_r50_mixup': (imagenet('resnet50', IMNET_STD, ('mixup', 0.2, 1.0)), 'table5/imagenet/resnet50/mixup_g02'),
    'imagenet_r50_mixup_g05': (imagenet('resnet50', IMNET_STD, ('mixup', 0.5, 1.0)),
                               'table5/imagenet/resnet50/mixup_g05'),
    'imagenet_r101_mixup': (imagenet('resnet101', IMNET_STD, ('mixup', 0.2, 1.0)), None),  # Table 5: γ 0.5 only
    'imagenet_r101_mixup_g05': (imagenet('resnet101', IMNET_STD, ('mixup', 0.5, 1.0)),
                                'table5/imagenet/resnet101/mixup_g05'),
    'imagenet_r50_autoaugment': (imagenet('resnet50', IMNET_STD + '|autoaugment("imagenet")', epochs=(300, 20),
                                          lr=('multistep', 0.1, (75, 150, 225), 0.1)),
                                 'table5/imagenet/resnet50/autoaugment'),
    'imagenet_r101_autoaugment': (imagenet('resnet101', IMNET_STD + '|autoaugment("imagenet")', epochs=(200, 20),
                                           lr=('multistep', 0.1, OURS((60, 120, 180)), 0.1)),
                                  'table5/imagenet/resnet101/autoaugment'),
}
# Not paper experiments: the embedded demo, the builder itself (its default is checked below), and the paper's
# ImageNet refinement applied to a given torchvision checkpoint (an extension, trained in tests/test_export.py).
NOT_PAPER = {'digits_demo', 'paper', 'imagenet_r50_refine_pretrained'}

# ImageNet Standard epochs (unstated, OURS): the refined rows' 200 + 20 on the Mixup lr path (÷10 at 60/120/180,
# then 1e-4 to the end).
for _n in ('imagenet_r50_standard', 'imagenet_r101_standard'):
  ROWS[_n][0]['epochs'] = (OURS(220),)

CONFIG_FILES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                      if not os.path.basename(p).startswith(('_', 'common')))


def _load(name):
  mod = importlib.import_module(f'configs.{name}')
  return mod.get_config(), mod.__doc__ or ''


# ------------------------------------------------------------------ tests


def test_every_config_file_has_a_row_and_every_row_a_file():
  assert sorted(set(CONFIG_FILES) - set(ROWS) - NOT_PAPER) == [], 'config files without a row in this test'
  assert sorted(set(ROWS) - set(CONFIG_FILES)) == [], 'rows without a config file'


def _lr_at(c, epoch_float, spe=10):
  return float(plan_of(c, spe).lr(int(round(epoch_float * spe))))


@pytest.mark.parametrize('name', sorted(ROWS))
def test_config_matches_the_paper(name):
  e, row_key = ROWS[name]
  c, doc = _load(name)
  c.data_dir = '/nonexistent'  # validation only needs it set
  config_lib.validate(c, registries.default())
  ours = []

  def check(what, got, want):
    if isinstance(want, OURS):
      ours.append(what)
    assert got == pytest.approx(_v(want)) if isinstance(_v(want), float) else got == _v(want), (what, got, want)

  check('dataset', c.dataset, e.get('dataset', name.split('_')[0]))
  check('model', c.model, e['model'])
  check('batch_size', c.batch_size, e['batch'])
  check('weight_decay', c.optimizer.weight_decay, e['wd'])
  check('dropout', dict(c.model_kwargs).get('dropout_rate', 0.0), e['dropout'])
  check('variant', dict(c.model_kwargs).get('variant'), e.get('variant'))
  if 'image_size' in e:
    check('image_size', c.image_size, e['image_size'])
  check('phase_order', tuple(c.phase_order), e['order'])
  aug = c.phases.augmented
  check('augmented.epochs', aug.epochs, e['epochs'][0])
  sched, base, bounds, factor = e['lr']
  check('augmented.lr.schedule', aug.lr.schedule, sched)
  check('augmented.lr.base', aug.lr.base, base)
  if sched == 'multistep':
    check('augmented.lr.boundaries', tuple(aug.lr.boundaries_epochs), bounds)
    check('augmented.lr.factor', aug.lr.factor, factor)
    b = _v(bounds)
    # Behaviour: the rate just before and after each boundary (the schedule as trained).
    for i, epoch in enumerate(b):
      assert _lr_at(c, epoch - 0.5) == pytest.approx(base * factor ** i, rel=1e-5)
      assert _lr_at(c, epoch) == pytest.approx(base * factor ** (i + 1), rel=1e-5)
  check('augmented.pp', aug.pp, e['aug_pp'])
  kind, gamma, prob = e['mix']
  check('mix.kind', aug.mix.kind, kind)
  if kind != 'none':
    check('mix.gamma', aug.mix.gamma, gamma)
    check('mix.prob', aug.mix.prob, prob)
  if 'refine' in c.phase_order:
    r = c.phases.refine
    check('refine.epochs', r.epochs, e['epochs'][1])
    check('refine.pp', r.pp, e['refine_pp'])
    assert r.mix.kind == 'none' and r.aug_prob == 1.0
    total = e['epochs'][0] + e['epochs'][1]
    for at in (e['epochs'][0], total - 0.5):  # the refine rate, at its start and its end
      got = _lr_at(c, at)
      assert got == pytest.approx(_v(e['refine_lr']), rel=1e-5), ('refine lr', at, got)
    if isinstance(e['refine_lr'], OURS):
      ours.append('refine lr')
  else:
    assert e['refine_pp'] is None
  if 'gradual' in e:
    ours.append('gradual length')
  # The paper row, its numbers in the docstring, and OUR CHOICE wherever an unstated setting is used.
  assert c.paper_row == row_key
  flat = ' '.join(doc.split())
  assert f'--config=configs/{name}.py' in doc and 'python -m refine_jax.main' in doc
  if row_key is None:
    assert 'EXTENSION' in doc
  else:
    for v in paper_lib.row(row_key).values.values():
      assert f'{v:.2f}' in flat, (row_key, v)
  if ours:
    assert 'OUR CHOICE' in flat, (name, ours)


@pytest.mark.parametrize('name', sorted(n for n, (_, key) in ROWS.items() if key))
def test_paper_row_names_the_same_experiment(name):
  """The row a config names is the paper's row for its dataset, model and augmentation (independent of keys)."""
  c, _ = _load(name)
  r = paper_lib.row(c.paper_row)
  ds = {'image_folder': 'tinyimagenet', 'imagenet2012': 'imagenet'}.get(c.dataset, c.dataset)
  assert r.dataset == ds
  short = {'preact_resnet18': 'preact18', 'wide_resnet28_10': 'wrn28_10', 'shake_shake26_2x96d': 'shake26'}
  assert r.model == short.get(c.model, c.model)
  aug = c.phases.augmented
  kind = aug.mix.kind if aug.mix.kind != 'none' else ('autoaugment' if 'autoaugment' in aug.pp else 'standard')
  assert r.augmentation.startswith(kind)


# Paper numbers, transcribed here once more from ../shared/paper/README.md, to check refine_jax/paper.py.
PAPER_NUMBERS = {
    'table1/cifar10/preact18/standard': (94.63, 94.48), 'table1/cifar100/preact18/standard': (75.79, 76.06),
    'table1/cifar10/preact18/mixup': (95.92, 96.26), 'table1/cifar100/preact18/mixup': (78.95, 80.85),
    'table1/cifar10/preact18/manifold_mixup': (95.81, 96.07), 'table1/cifar100/preact18/manifold_mixup': (80.19, 81.39),
    'table1/cifar10/preact18/cutmix': (96.21, 96.38), 'table1/cifar100/preact18/cutmix': (79.75, 80.46),
    'table1/cifar10/preact18/autoaugment': (96.02, 96.20), 'table1/cifar100/preact18/autoaugment': (79.33, 80.09),
    'table1/cifar10/wrn28_10/standard': (96.11, None), 'table1/cifar100/wrn28_10/standard': (81.15, None),
    'table1/cifar10/wrn28_10/mixup': (97.05, 97.52), 'table1/cifar100/wrn28_10/mixup': (82.11, 84.25),
    'table1/cifar10/wrn28_10/manifold_mixup': (97.13, 97.32), 'table1/cifar100/wrn28_10/manifold_mixup': (83.02, 84.77),
    'table1/cifar10/wrn28_10/cutmix': (97.11, 97.24), 'table1/cifar100/wrn28_10/cutmix': (82.75, 83.40),
    'table1/cifar10/wrn28_10/autoaugment': (97.59, 97.73), 'table1/cifar100/wrn28_10/autoaugment': (83.85, 85.24),
    'table1/cifar10/shake26/standard': (97.00, None), 'table1/cifar100/shake26/standard': (82.87, None),
    'table1/cifar10/shake26/mixup': (97.80, 98.02), 'table1/cifar100/shake26/mixup': (84.22, 85.19),
    'table1/cifar10/shake26/cutmix': (97.77, 97.76), 'table1/cifar100/shake26/cutmix': (84.51, 84.64),
    'table1/cifar10/shake26/autoaugment': (98.02, 98.05), 'table1/cifar100/shake26/autoaugment': (85.62, 86.13),
    'table3/cifar100/preact18/autoaugment_t400': (79.33, 80.09),
    'table3/cifar100/preact18/autoaugment_t1000': (78.16, 80.38),
    'table3/cifar100/wrn28_10/autoaugment_t200': (83.73, 84.06),
    'table3/cifar100/wrn28_10/autoaugment_t400': (83.85, 85.24),
    'table4/tinyimagenet/preact18/standard': (60.84, 60.68, None, None),
    'table4/tinyimagenet/preact18/mixup_g02': (63.18, 63.08, 64.54, 64.20),
    'table4/tinyimagenet/preact18/mixup_g05': (63.95, 63.34, 65.45, 65.08),
    'table4/tinyimagenet/preact18/manifold_mixup_g02': (63.66, 63.28, 64.54, 64.33),
    'table4/tinyimagenet/preact18/manifold_mixup_g05': (64.88, 64.43, 65.98, 65.80),
    'table4/tinyimagenet/preact18/cutmix_p05': (64.90, 64.61, 65.84, 65.59),
    'table4/tinyimagenet/preact18/cutmix_p1': (65.97, 65.23, 66.29, 65.87),
    'table4/tinyimagenet/preact18/autoaugment_cifar': (65.08, 64.29, 65.31, 65.12),
    'table4/tinyimagenet/preact18/autoaugment_imagenet': (61.06, 60.65, 61.82, 61.75),
    'table5/imagenet/resnet50/standard': (76.39, 93.19, None, None),
    'table5/imagenet/resnet50/mixup_g02': (77.47, 93.75, 77.69, 93.83),
    'table5/imagenet/resnet50/mixup_g05': (77.26, 93.78, 77.65, 93.93),
    'table5/imagenet/resnet50/autoaugment': (77.83, 93.70, 77.98, 93.86),
    'table5/imagenet/resnet101/standard': (78.13, 93.71, None, None),
    'table5/imagenet/resnet101/mixup_g05': (79.41, 94.70, 79.61, 94.73),
    'table5/imagenet/resnet101/autoaugment': (79.20, 94.45, 79.33, 94.46),
    'table6/voc2007/resnet50/standard': (72.0, None), 'table6/voc2007/resnet50/mixup': (67.4, 73.3),
    'table6/voc2007/resnet50/autoaugment': (70.5, 73.1),
}
TABLE2 = {'standard': (3.3, 1.1, None, 1.0), 'mixup': (1356, 98, 4.7, 2.4), 'manifold_mixup': (1253, 67, 4.2, 2.2),
          'cutmix': (785, 14, 1.9, 0.8), 'autoaugment': (245, 0.9, 1.5, 0.8)}
COLS = {1: ('aug', 'ref'), 3: ('aug', 'ref'), 6: ('aug', 'ref'), 4: ('aug_best', 'aug_last', 'ref_best', 'ref_last'),
        5: ('aug_top1', 'aug_top5', 'ref_top1', 'ref_top5'), 2: ('aug_raug', 'aug_r', 'ref_raug', 'ref_r')}


def test_paper_module_holds_the_tables():
  for key, nums in list(PAPER_NUMBERS.items()) + [(f'table2/cifar100/preact18/{a}', v) for a, v in TABLE2.items()]:
    r = paper_lib.row(key)
    assert tuple(r.value(col) for col in COLS[r.table]) == nums, key
  tables = {r.table for r in paper_lib.ROWS.values()}
  assert tables == {0, 1, 2, 3, 4, 5, 6}
  assert len(paper_lib.rows(1)) == 28 and len(paper_lib.rows(4)) == 9 and len(paper_lib.rows(5)) == 7
  assert {r.key for r in paper_lib.same_run('table1/cifar100/preact18/autoaugment')} == {
      'table2/cifar100/preact18/autoaugment', 'table3/cifar100/preact18/autoaugment_t400'}
  with pytest.raises(KeyError, match='table1/cifar100/preact18/mixup'):
    paper_lib.row('table1/cifar100/preact18/mixupp')
  with pytest.raises(KeyError, match='columns: aug, ref'):
    paper_lib.row('table1/cifar100/preact18/mixup').value('top1')


# ------------------------------------------------------------------ the gradual variant's schedules


@pytest.mark.parametrize('name, fades, kept', [
    ('cifar100_preact18_mixup_gradual', 'gamma', 'prob'),  # Mixup: γ → 0, every batch still mixed
    ('cifar100_preact18_cutmix_gradual', 'prob', 'gamma'),  # CutMix: probability → 0, Beta(1, 1) kept
    ('cifar100_preact18_autoaugment_gradual', 'aug_prob', None),  # AutoAugment: probability → 0
])
def test_gradual_variant_fades_what_the_paper_says(name, fades, kept):
  c, _ = _load(name)
  spe = 10
  plan = plan_of(c, spe)
  fns = {'gamma': plan.mix_gamma, 'prob': plan.mix_prob, 'aug_prob': plan.aug_prob}
  start = {'gamma': c.phases.augmented.mix.gamma if c.phases.augmented.mix.kind != 'none' else 0.0,
           'prob': c.phases.augmented.mix.prob if c.phases.augmented.mix.kind != 'none' else 0.0,
           'aug_prob': 1.0}
  end = 450 * spe
  for epoch, frac in ((0, 1.0), (399.9, 1.0), (400, 1.0), (425, 0.5), (449.9, 0.002)):
    step = int(round(epoch * spe))
    want = start[fades] * min(1.0, (end - step) / (50 * spe))
    assert float(fns[fades](step)) == pytest.approx(want, rel=1e-5, abs=1e-7), (epoch, fades)
    assert want == pytest.approx(start[fades] * frac, rel=0.01, abs=1e-3)
    if kept:
      assert float(fns[kept](step)) == pytest.approx(start[kept]), (epoch, kept)


def test_mix_decay_of_rejects_unknown_fields():
  c, _ = _load('cifar100_preact18_mixup_gradual')
  c.data_dir = '/nonexistent'
  for bad in (('lambda',), (), ('gamma', 'gamma')):
    c.phases.augmented.mix.decay_of = bad
    with pytest.raises(config_lib.ConfigError, match='phases.augmented.mix.decay_of.*gamma, prob'):
      config_lib.validate(c, registries.default())


# ------------------------------------------------------------------ the builder and its flag


def test_refine_without_any_augmentation_is_one_override():
  """The ablation: `--config.phases.refine.pp=''` on an intensive-augmentation config equals the builder's
  refine=no_aug (but for paper_row: the paper gives no numbers for it)."""
  from configs import paper as builder
  for name in ('cifar100_preact18_mixup', 'cifar100_preact18_cutmix', 'cifar100_preact18_autoaugment',
               'cifar100_preact18_manifold_mixup'):
    c, _ = _load(name)
    c.phases.refine.pp = ''
    aug = name.split('preact18_')[1]
    b = builder.get_config(f'dataset=cifar100,model=preact18,aug={aug},refine=no_aug')
    diffs = config_lib.diff(c.to_dict(), b.to_dict())
    assert [d[0] for d in diffs] == ['paper_row'] and b.paper_row is None


def test_config_flag_passes_the_builder_argument():
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'test', flag_values=fv)
  path = os.path.join(ROOT, 'configs', 'paper.py')
  fv(['prog', f'--config={path}:dataset=cifar100,model=wrn28_10,aug=cutmix'])
  c = fv.config
  assert c.model == 'wide_resnet28_10' and c.phases.augmented.mix.kind == 'cutmix'
  assert c.paper_row == 'table1/cifar100/wrn28_10/cutmix'
  from configs import paper as builder
  assert builder.get_config().to_dict() == _load('cifar100_preact18_mixup')[0].to_dict()


@pytest.mark.parametrize('arg, match', [
    ('dataset=cifar100,model=preact18', 'aug= is required'),
    ('dataset=cifar100,model=resnet50,aug=mixup', "model='resnet50'.*preact18, wrn28_10, shake26"),
    ('dataset=cifar100,model=preact18,aug=mixup,lr=0.2', "unknown key 'lr'.*dataset"),
    ('dataset=cifar100,model=preact18,aug=mixup,t1=600', 't1=600.*150|t1=600.*400, 1000'),
    ('dataset=imagenet,model=resnet50,aug=cutmix', 'no ImageNet experiment'),
    ('dataset=cifar100,model=preact18,aug=standard,gradual=1', 'gradual=1'),
])
def test_builder_refuses_what_the_paper_does_not_define(arg, match):
  from configs import paper as builder
  with pytest.raises(ValueError, match=match):
    builder.get_config(arg)


def test_ml_collections_config_is_a_configdict():
  c, _ = _load('paper')
  assert isinstance(c, ml_collections.ConfigDict)
