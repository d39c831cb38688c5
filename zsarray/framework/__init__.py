"""Modelling framework: BayesianNet, its nodes, and meta nets."""
from .bn import BayesianNet, StochasticTensor, DeterministicNode
from .meta_bn import MetaBayesianNet, meta_bayesian_net

__all__ = ["BayesianNet", "StochasticTensor", "DeterministicNode", "MetaBayesianNet",
           "meta_bayesian_net"]
