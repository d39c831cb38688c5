"""BayesianNet: a model as named stochastic and deterministic nodes (ZhuSuan semantics).

A stochastic node's value is its observation when one is given, otherwise a sample
from its distribution, drawn once and cached. ``log_joint()`` sums the nodes'
conditional log-probabilities (with broadcasting, so a particle axis on observations
flows through). Observations are passed to the constructor, explicitly or, for a
ZhuSuan-style builder run by ``MetaBayesianNet.observe``, through a context variable
(per thread and per asyncio task, unlike ZhuSuan's process-wide stack), so nets can be
built in threads.
"""
import contextvars
import difflib
import inspect
import re

import numpy as np

import autodiff as ad

__all__ = ["BayesianNet", "StochasticTensor", "DeterministicNode"]

#: Observations for the nets a ZhuSuan-style builder (one without an ``observed``
#: argument) creates while :meth:`MetaBayesianNet.observe` runs it: per thread and per
#: asyncio task, never process-global.
_OBSERVED = contextvars.ContextVar("zsarray_observed", default=None)


def _as_tensor(value):
    if isinstance(value, ad.Tensor):
        return value
    if isinstance(value, (StochasticTensor, DeterministicNode)):
        return value.tensor
    return ad.tensor(value)


def _rng(rng):
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    return rng


class _NodeOps:
    """Arithmetic, indexing and shape attributes forwarded to ``.tensor``."""
    __slots__ = ()
    __array_ufunc__ = None       # ndarray + node -> node.__radd__

    shape = property(lambda self: self.tensor.shape)
    dtype = property(lambda self: self.tensor.dtype)
    ndim = property(lambda self: self.tensor.ndim)
    data = property(lambda self: self.tensor.data)

    def __getitem__(self, idx):
        return self.tensor[idx]

    def __len__(self):
        return len(self.tensor)


def _forward(op):
    def method(self, *args):
        return getattr(self.tensor, op)(*args)
    method.__name__ = op
    return method


for _op in ("__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ "
            "__pow__ __rpow__ __matmul__ __rmatmul__ __neg__ __abs__ __lt__ __le__ __gt__ "
            "__ge__ sum mean reshape").split():
    setattr(_NodeOps, _op, _forward(_op))


class StochasticTensor(_NodeOps):
    """A stochastic node of a :class:`BayesianNet`.

    Attributes
    ----------
    name : str
    dist : zsarray.distributions.Distribution
    n_samples : int or None
        Number of samples drawn when unobserved (a leading axis of the value).
    tensor : autodiff.Tensor
        The observation (if observed) or a sample drawn once and cached; shape
        ``[n_samples] + batch_shape + value_shape`` when sampled.
    cond_log_p : autodiff.Tensor
        ``dist.log_prob(tensor)``, computed once and cached.
    """
    __slots__ = ("name", "dist", "n_samples", "net", "_observation", "_tensor", "_log_p")

    def __init__(self, net, name, dist, n_samples=None, observation=None):
        self.net, self.name, self.dist, self.n_samples = net, name, dist, n_samples
        self._observation = observation
        self._tensor = None
        self._log_p = None
        if observation is not None:
            self._tensor = _as_tensor(observation)
            self._check_observation_shape()

    def _expected_shape(self):
        shape = tuple(self.dist.batch_shape) + tuple(self.dist.value_shape)
        return shape if self.n_samples is None else (self.n_samples,) + shape

    def _check_observation_shape(self):
        """The observation may carry extra leading axes (samples, chains) or lack leading
        axes of the node (one observation shared by every chain), but its own axes are
        never broadcast against the node's: an observation of shape (3, 1) for a node
        of shape (3,) would otherwise become a 3 x 3 table of pairs."""
        expected = self._expected_shape()
        obs = tuple(self._tensor.shape)
        try:
            full = np.broadcast_shapes(obs, expected)
        except ValueError:
            raise ValueError(f"observation of node '{self.name}' has shape {obs}, which "
                             f"cannot broadcast against the node's shape {expected} "
                             f"([n_samples] + batch_shape + value_shape)") from None
        if obs and full[len(full) - len(obs):] != obs:
            raise ValueError(f"observation of node '{self.name}' has shape {obs}, but the "
                             f"node's shape is {expected} ([n_samples] + batch_shape + "
                             f"value_shape): broadcasting them would repeat the observed "
                             f"values along their own axes (giving shape {full}); reshape "
                             f"the observation to the node's shape (or broadcast it "
                             f"explicitly if that is meant)")

    def is_observed(self):
        """Whether the node's value is an observation."""
        return self._observation is not None

    @property
    def tensor(self):
        if self._tensor is None:
            self._tensor = self.dist.sample(self.n_samples, rng=self.net.rng)
        return self._tensor

    @property
    def cond_log_p(self):
        if self._log_p is None:
            self._log_p = self.log_prob(self.tensor)
        return self._log_p

    def log_prob(self, given):
        """``dist.log_prob(given)``."""
        return self.dist.log_prob(given)

    def __repr__(self):
        kind = "observed" if self.is_observed() else "latent"
        return f"StochasticTensor({self.name!r}, {type(self.dist).__name__}, {kind})"


class DeterministicNode(_NodeOps):
    """A named deterministic value of a :class:`BayesianNet` (``.tensor``)."""
    __slots__ = ("name", "tensor")

    def __init__(self, name, value):
        self.name, self.tensor = name, _as_tensor(value)

    def __repr__(self):
        return f"DeterministicNode({self.name!r}, shape={tuple(self.tensor.shape)})"


ad.register_tensor_like(StochasticTensor, lambda node: node.tensor)
ad.register_tensor_like(DeterministicNode, lambda node: node.tensor)


class BayesianNet:
    """A directed graphical model built imperatively from named nodes.

    Parameters
    ----------
    observed : dict, optional
        ``name -> value`` (arrays or autodiff Tensors). A Tensor observation keeps its
        gradient path, which is how variational samples enter a model's log joint.
    rng : int, numpy.random.Generator or cupy Generator, optional
        Source of randomness for sampling unobserved nodes (an int seeds a new
        NumPy Generator; None uses fresh OS entropy).

    Examples
    --------
    >>> bn = BayesianNet(observed={"x": x})                      # doctest: +SKIP
    >>> z = bn.normal("z", 0., std=1., group_ndims=1, n_samples=10)
    >>> bn.bernoulli("x", z @ w, group_ndims=1)
    >>> bn.log_joint()                                  # [10, batch]
    """

    def __init__(self, observed=None, rng=None):
        if observed is None:
            observed = _OBSERVED.get()        # a ZhuSuan-style builder run by observe()
        self._observed = dict(observed or {})
        self._nodes = {}
        self.rng = _rng(rng)
        self._meta = None            # set by MetaBayesianNet when it builds this net
        self._log_joint_fn = None

    @property
    def observed(self):
        """The observations this net was built with (name -> value)."""
        return dict(self._observed)

    @property
    def nodes(self):
        """All nodes in creation order (name -> node)."""
        return dict(self._nodes)

    def _add(self, node):
        if node.name in self._nodes:
            raise ValueError(f"BayesianNet: a node named '{node.name}' already exists; node "
                             f"names must be unique")
        self._nodes[node.name] = node
        return node

    def stochastic(self, name, dist, n_samples=None):
        """Add a stochastic node ``name ~ dist`` and return it (a :class:`StochasticTensor`).

        Observed (value from ``observed``) if the net was given an observation for
        ``name``, otherwise sampled ``n_samples`` times on first use of ``.tensor``.
        """
        if not isinstance(name, str):
            raise TypeError(f"stochastic: name must be a str, got {type(name).__name__}")
        node = StochasticTensor(self, name, dist, n_samples, self._observed.get(name))
        return self._add(node)

    def deterministic(self, name, value):
        """Record a named deterministic value; returns the node (forwards to its tensor).

        Raises ``ValueError`` if the net was given an observation for ``name``: a
        deterministic node's value is computed, so the observation would be ignored."""
        if name in self._observed:
            raise ValueError(f"BayesianNet: node '{name}' is deterministic, so it cannot be "
                             f"observed (its value is computed from other nodes and the "
                             f"observation would be ignored); observe a stochastic node "
                             f"instead")
        return self._add(DeterministicNode(name, value))

    def __getitem__(self, name):
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(_unknown(name, self._nodes, "BayesianNet has no node")) from None

    def __contains__(self, name):
        return name in self._nodes

    def get(self, names):
        """The node(s) named ``names`` (a str or a list of str)."""
        if isinstance(names, str):
            return self[names]
        return [self[n] for n in names]

    def cond_log_prob(self, names):
        """``cond_log_p`` of one stochastic node (str) or a list of them."""
        self.check_observed()
        if isinstance(names, str):
            return self._stochastic(names).cond_log_p
        return [self._stochastic(n).cond_log_p for n in names]

    def _stochastic(self, name):
        node = self[name]
        if not isinstance(node, StochasticTensor):
            raise TypeError(f"node '{name}' is deterministic and has no log-probability")
        return node

    def check_observed(self):
        """Raise if an observation names a node this net never created."""
        for name in self._observed:
            if name not in self._nodes:
                raise ValueError(_unknown(name, self._nodes, "observed a node the model "
                                                              "never creates:"))

    def log_joint(self):
        """Sum of the stochastic nodes' ``cond_log_p`` (broadcast together).

        Uses the overriding function set on the meta net (``model.log_joint = fn``)
        when there is one.
        """
        if self._log_joint_fn is not None:
            return self._log_joint_fn(self)
        self.check_observed()
        terms = [n.cond_log_p for n in self._nodes.values() if isinstance(n, StochasticTensor)]
        if not terms:
            raise ValueError("log_joint: the BayesianNet has no stochastic nodes")
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    def observe(self, **observed):
        """A net rebuilt with these observations added (needs a meta net).

        A hand-built BayesianNet cannot be re-run; build it with
        :func:`zsarray.meta_bayesian_net` to re-observe, or pass ``observed=`` to the
        constructor.
        """
        if self._meta is None:
            raise TypeError("observe: this BayesianNet was built by hand and cannot be re-run "
                            "with new observations; pass observed= to BayesianNet(...) or "
                            "build it with @zs.meta_bayesian_net")
        return self._meta.observe(**{**self._observed, **observed})

    def __repr__(self):
        return f"BayesianNet({', '.join(map(repr, self._nodes.values()))})"


def _unknown(name, known, what):
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; nodes are {sorted(known)}"
    return f"{what} '{name}'{hint}"


def _snake(name):
    """CamelCase class name -> snake_case helper name (MultivariateNormalCholesky ->
    multivariate_normal_cholesky)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _helper(cls):
    def helper(self, name, *args, n_samples=None, **kwargs):
        return self.stochastic(name, cls(*args, **kwargs), n_samples=n_samples)
    helper.__name__ = _snake(cls.__name__)
    helper.__doc__ = (f"Add a stochastic node ``name ~ {cls.__name__}(*args, **kwargs)`` "
                      f"drawn ``n_samples`` times when unobserved; see "
                      f"zsarray.distributions.{cls.__name__}. Returns the StochasticTensor.")
    helper.__signature__ = _helper_signature(cls)
    return helper


def _helper_signature(cls):
    """``(self, name, <cls's parameters>, *, <Distribution's options>, n_samples=None)``
    for ``inspect.signature`` and IDEs (the helper itself forwards ``*args, **kwargs``)."""
    P = inspect.Parameter
    own = list(inspect.signature(cls.__init__).parameters.values())[1:]
    params = [P("self", P.POSITIONAL_OR_KEYWORD), P("name", P.POSITIONAL_OR_KEYWORD)]
    params += [p for p in own if p.kind not in (P.VAR_KEYWORD, P.KEYWORD_ONLY)]
    keyword = [p for p in own if p.kind is P.KEYWORD_ONLY]
    if any(p.kind is P.VAR_KEYWORD for p in own):      # the options it forwards to the base
        from ..distributions import Distribution
        taken = {p.name for p in params + keyword}
        keyword += [p for p in inspect.signature(Distribution.__init__).parameters.values()
                    if p.kind is P.KEYWORD_ONLY and p.name not in taken]
    keyword.append(P("n_samples", P.KEYWORD_ONLY, default=None))
    return inspect.Signature(params + keyword)


def _install_helpers():
    """One helper method per distribution, generated from the distributions' table."""
    from .. import distributions
    for cls_name in distributions.__all__:
        cls = getattr(distributions, cls_name)
        if isinstance(cls, type) and issubclass(cls, distributions.Distribution) \
                and cls is not distributions.Distribution:
            setattr(BayesianNet, _snake(cls_name), _helper(cls))

