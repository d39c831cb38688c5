"""zsarray: Bayesian deep learning on NumPy/CuPy arrays, in the spirit of ZhuSuan.

Models are :class:`BayesianNet` s of stochastic and deterministic nodes; gradients
come from the :mod:`autodiff` tape; MCMC comes from :mod:`samplers`.

>>> import zsarray as zs
>>> bn = zs.BayesianNet(observed={"y": y})                       # doctest: +SKIP
>>> w = bn.normal("w", np.zeros(3), std=1., group_ndims=1)
>>> bn.bernoulli("y", x @ w, group_ndims=1)
>>> bn.log_joint()
"""
from . import distributions, transforms, nn, optim, flows, datasets
from .framework import (BayesianNet, StochasticTensor, DeterministicNode, MetaBayesianNet,
                        meta_bayesian_net)
from .framework.bn import _install_helpers

_install_helpers()

from . import variational, evaluation  # noqa: E402  (they build on the framework above)
from .inference import HMC, NUTS, MALA, RWMH, SGLD, PSGLD, SGHMC, SGNHT  # noqa: E402

def __getattr__(name):
    """``zs.sample`` (:func:`samplers.sample`, the array-level driver) and
    ``zs.diagnostics`` (:mod:`samplers.diagnostics`), imported on first use so that
    ``import zsarray`` stays quick."""
    if name in ("sample", "diagnostics"):
        import samplers
        return getattr(samplers, name)
    raise AttributeError(f"module 'zsarray' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = ["distributions", "transforms", "nn", "optim", "flows", "datasets", "variational", "evaluation", "BayesianNet", "StochasticTensor", "DeterministicNode",
           "MetaBayesianNet", "meta_bayesian_net", "HMC", "NUTS", "MALA", "RWMH", "SGLD",
           "PSGLD", "SGHMC", "SGNHT", "sample", "diagnostics"]
