"""CIFAR-100, PreActResNet-18, AutoAugment (CIFAR-10 policy, then Cutout 16), 1000 + 200 refinement epochs.

    python -m refine_jax.main --config=configs/cifar100_preact18_autoaugment_t1000.py --workdir=W \
        --config.data_dir=TFDS_DIR

The same as `--config=configs/paper.py:dataset=cifar100,model=preact18,aug=autoaugment,t1=1000,t2=200` (all
settings live in configs/paper.py).

Paper row: Table 3, `table3/cifar100/preact18/autoaugment_t1000`: aug 78.16 → ref 80.38 (T1 = 1000, T2 = 200; lr
0.1 ÷10 at 400 and 800).

Settings: batch 128, weight decay 1e-4; augmented phase: 1000 epochs, lr 0.1 ÷10 at 400/800, host ops
`pad_crop(32,4)|flip_lr|autoaugment("cifar10")|cutout(16)`; refine phase: 200 epochs at the augmented phase's final
rate, host ops `pad_crop(32,4)|flip_lr`; PreActResNet-18 variant `mixup_cifar` (conv-BN-ReLU stem, no BN-ReLU
before pooling): OUR CHOICE (configs/paper.py PREACT_VARIANT).
"""
from configs import paper


def get_config():
  return paper.get_config('dataset=cifar100,model=preact18,aug=autoaugment,t1=1000,t2=200')
