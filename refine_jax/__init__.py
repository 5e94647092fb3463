"""refine_jax: refined data augmentation (He et al., arXiv 1909.09148) in JAX/Flax.

Importing the package first sets the process environment JAX needs (`runtime_env`), before any of its modules
imports JAX.
"""
from refine_jax import runtime_env

runtime_env.apply()
