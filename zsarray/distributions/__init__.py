"""Probability distributions on NumPy/CuPy arrays with autodiff gradients.

ZhuSuan's set and shape rule (samples ``[n_samples] + batch_shape + value_shape``,
``log_prob`` summing the last ``group_ndims`` batch axes), NumPyro-style class-level
declarations (``arg_constraints``, ``support``), pathwise and implicit reparameterization
gradients, a KL registry, and fused Numba kernels for the Normal's SGVB hot path.

>>> import numpy as np, zsarray.distributions as zd
>>> q = zd.Normal(np.zeros(3), std=np.ones(3), group_ndims=1)
>>> z = q.sample(10, rng=0)                # shape (10, 3)
>>> q.log_prob(z).shape                    # (10,), fused with the sample
(10,)
"""
from .base import Constraint, Distribution, constraints, make_rng
from .fused import fused_normal_sample_logprob, unfused_normal_sample_logprob
from .kl import KL_REGISTRY, kl_divergence, register_kl
from .multivariate import (Concrete, Dirichlet, ExpConcrete, MatrixVariateNormalCholesky,
                           Multinomial, MultivariateNormalCholesky, OnehotCategorical,
                           UnnormalizedMultinomial)
from .special import Empirical, FlowDistribution, Implicit
from .univariate import (Bernoulli, Beta, BinConcrete, Categorical, Cauchy, Exponential,
                         FoldNormal, Gamma, HalfCauchy, HalfNormal, InverseGamma, Laplace,
                         Logistic, LogNormal, Normal, Poisson, StudentT, Uniform, Binomial,
                         gamma_sample, gamma_sample_grad, log_gamma_sample,
                         log_gamma_sample_grad)

__all__ = [
    # base
    "Distribution", "Constraint", "constraints", "make_rng",
    # univariate
    "Normal", "FoldNormal", "HalfNormal", "LogNormal", "Bernoulli", "Categorical", "Uniform",
    "Gamma", "Beta", "Poisson", "Binomial", "InverseGamma", "Laplace", "Exponential",
    "Logistic", "StudentT", "Cauchy", "HalfCauchy", "BinConcrete",
    # multivariate
    "MultivariateNormalCholesky", "MatrixVariateNormalCholesky", "Multinomial",
    "UnnormalizedMultinomial", "OnehotCategorical", "Dirichlet", "ExpConcrete", "Concrete",
    # special
    "Empirical", "Implicit", "FlowDistribution",
    # KL, fused kernels, implicit reparameterization
    "kl_divergence", "register_kl", "KL_REGISTRY",
    "fused_normal_sample_logprob", "unfused_normal_sample_logprob",
    "gamma_sample", "gamma_sample_grad", "log_gamma_sample", "log_gamma_sample_grad",
]
