"""Meta Bayesian nets: a model-building function that can be re-run with observations.

Two ways to write the builder, both thread-safe:

* explicit (recommended): the builder takes an ``observed`` keyword and hands it to
  ``BayesianNet(observed)``;
* ZhuSuan's way: no ``observed`` argument, ``bn = zs.BayesianNet()`` inside. ``observe``
  then runs the builder with the observations in a :class:`contextvars.ContextVar`
  (per thread and per asyncio task, never process-global), from which every
  ``BayesianNet()`` created without ``observed`` takes them.

>>> @zs.meta_bayesian_net(scope="model")                       # doctest: +SKIP
... def build_model(x_dim, z_dim, n_particles, observed=None):
...     bn = zs.BayesianNet(observed)
...     z = bn.normal("z", np.zeros(z_dim), std=1., group_ndims=1, n_samples=n_particles)
...     bn.bernoulli("x", decoder(z), group_ndims=1)
...     return bn
>>> model = build_model(784, 40, 10)
>>> bn = model.observe(x=x_batch, z=z_samples)
>>> bn.log_joint()
>>> @zs.meta_bayesian_net(scope="model")                       # doctest: +SKIP
... def build_model(x_dim, z_dim, n_particles):                # ZhuSuan 0.4 style
...     bn = zs.BayesianNet()
...     ...
...     return bn
"""
import functools
import inspect

from .bn import BayesianNet, _OBSERVED, _unknown

__all__ = ["MetaBayesianNet", "meta_bayesian_net"]


class MetaBayesianNet:
    """A builder bound to its arguments; ``observe(**obs)`` builds a fresh BayesianNet.

    Attributes
    ----------
    scope : str or None
        A label for the model (ZhuSuan used it to share TensorFlow variables; here
        parameters live in ``zs.nn`` modules, so it is only a name).
    log_joint : callable or None
        Assign ``fn(bn) -> Tensor`` to override the nets' ``log_joint()``.
    """

    def __init__(self, builder, args=(), kwargs=None, scope=None):
        self._builder = builder
        self._explicit = "observed" in inspect.signature(builder).parameters
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.scope = scope
        self.log_joint = None

    def observe(self, **observed):
        """Re-run the builder with these observations; returns the new BayesianNet.

        Raises
        ------
        ValueError
            If an observation names a node the model never creates (the closest
            existing name is suggested).
        """
        if self._explicit:
            bn = self._builder(*self._args, observed=observed, **self._kwargs)
        else:
            token = _OBSERVED.set(dict(observed))
            try:
                bn = self._builder(*self._args, **self._kwargs)
            finally:
                _OBSERVED.reset(token)
        if not isinstance(bn, BayesianNet):
            raise TypeError(f"meta_bayesian_net: the builder {self._builder.__name__}() must "
                            f"return its BayesianNet, got {type(bn).__name__}")
        for name in observed:
            if name not in bn._nodes:
                raise ValueError(_unknown(name, bn._nodes,
                                          "observe: the model never creates a node named"))
        missing = [n for n in observed if bn._observed.get(n) is not observed[n]]
        if missing:
            how = ("did not pass its observed= argument to BayesianNet(observed)"
                   if self._explicit else "returned a BayesianNet built with its own "
                   "observed= argument (or before observe() ran)")
            raise ValueError(f"meta_bayesian_net: the builder {self._builder.__name__}() "
                             f"{how} (observations {missing} were dropped)")
        bn._meta = self
        bn._log_joint_fn = self.log_joint
        return bn

    def __call__(self, **observed):
        return self.observe(**observed)

    def builder_parameters(self):
        """Names of the builder's parameters (besides ``observed``)."""
        return [n for n in inspect.signature(self._builder).parameters if n != "observed"]

    def rebind(self, **kwargs):
        """A copy bound to these keyword arguments of the builder (others unchanged);
        e.g. a minibatch of covariates. The ``log_joint`` override is kept."""
        unknown = [k for k in kwargs if k not in self.builder_parameters()]
        if unknown:
            raise TypeError(f"rebind: {self._builder.__name__}() has no parameters {unknown}")
        names = self.builder_parameters()
        args = dict(zip(names, self._args))
        if len(self._args) > len(names):
            raise TypeError("rebind: the builder takes *args; bind by keyword instead")
        meta = MetaBayesianNet(self._builder, (), {**args, **self._kwargs, **kwargs},
                               scope=self.scope)
        meta.log_joint = self.log_joint
        return meta

    def __repr__(self):
        return f"MetaBayesianNet({self._builder.__name__}, scope={self.scope!r})"


def meta_bayesian_net(scope=None, reuse_variables=False):
    """Decorator: a builder ``f(*args, observed=None, **kwargs) -> BayesianNet`` (or,
    ZhuSuan's way, ``f(*args, **kwargs)`` creating ``BayesianNet()``; see the module)
    becomes a function returning a :class:`MetaBayesianNet` bound to ``args``/``kwargs``.

    ``reuse_variables`` is accepted for ZhuSuan compatibility and ignored (parameters
    are held by ``zs.nn`` modules, not created by the builder).
    """
    del reuse_variables  # kept for ZhuSuan signature compatibility

    def decorator(builder):
        @functools.wraps(builder)
        def make(*args, **kwargs):
            return MetaBayesianNet(builder, args, kwargs, scope=scope)
        return make
    return decorator
