"""CIFAR-10, PreActResNet-18, Mixup (γ = 1) for 400 epochs, then 50 refinement epochs (paper, Table 1).

    python -m refine_jax.main --config=configs/cifar10_preact18_mixup.py --workdir=W \
        --config.data_dir=../shared/data/tensorflow_datasets

Paper: batch 128, lr 0.1 ÷10 at epochs 150 and 275, weight decay 1e-4; refinement at the final rate 0.001 on
standard (pad 4 + crop 32 + flip) data. Aim: the paper's Table 1 row for CIFAR-10 / PreActResNet-18 / Mixup,
where refinement raises test accuracy over Mixup alone (its CIFAR-100 twin: 78.95 → 80.85).
"""
from configs import common


def get_config():
  c = common.get_config()
  c.dataset = 'cifar10'
  c.model = 'preact_resnet18'
  c.phases.augmented = common.phase(400, common.CIFAR_PP, common.mix('mixup', 1.0),
                                    common.lr('multistep', 0.1, (150, 275), 0.1))
  c.phases.refine = common.phase(50, common.CIFAR_PP, common.mix('none'), common.lr('constant', None))
  return c
