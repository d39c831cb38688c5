"""The ZhuSuan-style inference front: MCMC on the latents of a MetaBayesianNet.

>>> result = zs.NUTS().sample(model, observed={"y": y}, latent={"w": None, "sigma": None},
...                           n_chains=4, n_samples=1000, n_warmup=1000, rng=0)  # doctest: +SKIP
>>> result.draws["sigma"].shape          # [n_chains, n_samples, *node_shape]
>>> result.summary()

The latents are flattened into one ``[n_chains, dim]`` vector on the unconstrained space:
each latent node is mapped through the default transform of its distribution's support
(:func:`zsarray.transforms.biject_to`) and the log-Jacobians are added, so the samplers
never leave the support. Draws come back constrained, one array per latent.

How chains reach the model
--------------------------
``vectorized=True`` (default) observes every latent with a leading chain axis
``[n_chains, *node_shape]`` and evaluates the model once for all chains, as ZhuSuan's
models broadcast over a leading particle axis: write the model so that values depending
on a latent keep that axis (e.g. ``ad.einsum("nd,...d->...n", x, w)`` rather than
``x @ w``). Each node's log-probability is then summed over every axis but the chain axis;
a term without the chain axis (one that depends on no latent) is added to every chain.
``vectorized=False`` evaluates the model once per chain with plain ``node_shape``
latents: any model works, at ``n_chains`` times the Python cost.
"""
import numpy as np

import autodiff as ad
import samplers
from autodiff import backend

from . import transforms
from .framework.bn import StochasticTensor
from .framework.meta_bn import MetaBayesianNet

__all__ = ["HMC", "NUTS", "MALA", "RWMH", "SGLD", "PSGLD", "SGHMC", "SGNHT",
           "InferenceResult", "LatentLayout"]


class LatentLayout:
    """Where each latent lives in the flat unconstrained vector, and its transform.

    Attributes
    ----------
    names : list of str
    shapes : dict name -> constrained node shape
    unconstrained_shapes : dict name -> unconstrained shape
    transforms : dict name -> Transform
    slices : dict name -> slice into the flat vector
    dim : int
        Total unconstrained dimension.
    """

    def __init__(self, model, observed, names):
        bn = model.observe(**observed)
        self.names, self.shapes, self.unconstrained_shapes = [], {}, {}
        self.transforms, self.slices = {}, {}
        offset = 0
        for name in names:
            if name not in bn:
                raise ValueError(f"latent: the model has no node named '{name}' "
                                 f"(nodes: {sorted(bn.nodes)})")
            node = bn[name]
            if not isinstance(node, StochasticTensor):
                raise ValueError(f"latent: node '{name}' is deterministic, not stochastic")
            if name in observed:
                raise ValueError(f"latent: '{name}' is also given in observed")
            if not node.dist.is_continuous:
                raise ValueError(f"latent '{name}': {type(node.dist).__name__} is discrete; "
                                 f"HMC-family samplers need continuous latents")
            shape = tuple(node.dist.batch_shape) + tuple(node.dist.value_shape)
            if node.n_samples is not None:
                shape = (node.n_samples,) + shape
            t = _transform_for(node)
            ushape = t.unconstrained_shape(shape)
            size = int(np.prod(ushape, dtype=int))
            self.names.append(name)
            self.shapes[name], self.unconstrained_shapes[name] = shape, ushape
            self.transforms[name], self.slices[name] = t, slice(offset, offset + size)
            offset += size
        self.dim = offset

    def constrain(self, q):
        """Unconstrained ``q [n, dim]`` -> (dict name -> [n, *shape] Tensors, log-Jacobian [n])."""
        n = q.shape[0]
        values, ldj = {}, 0.0
        for name in self.names:
            u = ad.reshape(q[:, self.slices[name]], (n,) + self.unconstrained_shapes[name])
            x, l = self.transforms[name].forward(u)
            values[name] = x
            ldj = ldj + _sum_but_first(l, n, True)
        return values, ldj

    def unconstrain(self, values, n_chains, xp):
        """Constrained initial values (dict, None entries allowed) -> ``[n_chains, dim]``
        with NaN where a value was not given."""
        q = np.full((n_chains, self.dim), np.nan)
        for name in self.names:
            v = values.get(name)
            if v is None:
                continue
            v = backend.asnumpy(ad.unwrap(v))
            v = np.asarray(v, dtype=float)
            shape = self.shapes[name]
            if v.shape == shape:
                v = np.broadcast_to(v, (n_chains,) + shape)
            elif v.shape != (n_chains,) + shape:
                raise ValueError(f"latent['{name}']: initial value of shape {v.shape}; expected "
                                 f"{shape} or {(n_chains,) + shape} (one per chain)")
            u = self.transforms[name].inverse(v)[0].data
            if not np.all(np.isfinite(u)):
                raise ValueError(f"latent['{name}']: initial value is outside the support of "
                                 f"the node's distribution")
            q[:, self.slices[name]] = u.reshape(n_chains, -1)
        return xp.asarray(q)


def _transform_for(node):
    try:
        return transforms.biject_to(node.dist.support)
    except ValueError as err:
        raise ValueError(f"latent '{node.name}': {err}") from None


def _sum_but_first(x, n, per_chain):
    """Reduce a per-node log term to ``[n]``: sum every axis but the leading chain axis
    (``per_chain``), or, for a term without the chain axis (one that depends on no
    latent), sum it all and add it to every chain."""
    x = ad.unwrap(x)
    if not isinstance(x, ad.Tensor):
        x = ad.tensor(x)
    if per_chain:
        return ad.sum(ad.reshape(x, (n, -1)), axis=1) if x.ndim > 1 else x
    return ad.sum(x) + ad.tensor(backend.get_array_module(x).zeros(n, dtype=x.dtype))


def _node_terms(model, observed):
    """``{node name: cond_log_p}`` of the stochastic nodes (``{None: log_joint}`` with a
    ``model.log_joint`` override)."""
    bn = model.observe(**observed)
    if model.log_joint is not None:
        return {None: bn.log_joint()}
    return {name: node.cond_log_p for name, node in bn.nodes.items()
            if isinstance(node, StochasticTensor)}


def _chain_terms(model, observed, layout, q0):
    """Which nodes' log terms carry the leading chain axis, found by evaluating the
    model at ``n`` and at ``n + 1`` chains (the extra chain a copy of the first).

    A shape alone cannot tell: a node that drops the chain axis (``mean = w[..., 0]``
    for an observation of ``N`` values) has the shape of a per-chain term when ``N``
    equals the number of chains, and would silently pair chain ``c`` with ``y[c]``. A
    per-chain term grows with the chain count and keeps its first ``n`` rows; a term
    without the chain axis keeps its shape and value. Anything else mixes chains and
    is an error naming the node."""
    q0 = backend.asnumpy(q0)
    n = q0.shape[0]
    xp = backend.get_array_module(*observed.values()) if observed else np
    runs = []
    for q in (q0, np.concatenate([q0, q0[:1]], axis=0)):
        q = xp.asarray(q)
        m = q.shape[0]
        with ad.no_grad():
            values, _ = layout.constrain(ad.tensor(q))
            try:
                terms = _node_terms(model, {**observed, **values})
            except ValueError as err:
                raise ValueError(
                    f"the model fails with {m} chains ({err}); with vectorized=True every "
                    f"latent has a leading chain axis and every value computed from latents "
                    f"must keep it (write x @ w.T-style code that broadcasts over it, or pass "
                    f"vectorized=False)") from err
        runs.append({k: backend.asnumpy(ad.unwrap(t).data if isinstance(ad.unwrap(t), ad.Tensor)
                                        else np.asarray(t)) for k, t in terms.items()})
    flags = {}
    for name, a in runs[0].items():
        b = runs[1][name]
        what = "the log joint" if name is None else f"node '{name}'"
        if a.shape == b.shape and _same(a, b):
            flags[name] = False
        elif a.ndim >= 1 and b.shape == (n + 1,) + a.shape[1:] and a.shape[0] == n \
                and _same(a, b[:n]):
            flags[name] = True
        else:
            raise ValueError(
                f"{what}: its log-probability has shape {a.shape} with {n} chains and "
                f"{b.shape} with {n + 1} (one more chain, a copy of the first)"
                + (", and its values change" if a.shape == b.shape else "")
                + f": the model does not keep the leading chain axis of the latents apart "
                f"(it drops it or mixes chains). Every value computed from a latent must "
                f"keep the chain axis first, e.g. x @ w[..., None] rather than x @ w[0]; or "
                f"pass vectorized=False")
    return flags


def _same(a, b):
    with np.errstate(invalid="ignore"):
        return a.shape == b.shape and bool(np.all((a == b) | np.isclose(a, b, rtol=1e-6,
                                                                        atol=1e-12)
                                                  | (np.isnan(a) & np.isnan(b))))


def _joint(model, observed, n, per_chain, scaled=(), scale=1.0):
    """The model's log joint at ``observed`` reduced to ``[n]`` per chain (``per_chain``:
    :func:`_chain_terms`'s flags); the ``cond_log_p`` of the nodes named in ``scaled``
    is multiplied by ``scale`` (minibatch likelihoods). A ``model.log_joint`` override
    is used as is."""
    if model.log_joint is not None and scaled:
        raise ValueError("SG-MCMC fronts scale the minibatched nodes' log-likelihood by "
                         "N / batch_size node by node, which a model.log_joint override "
                         "hides; remove the override or scale inside it")
    total = 0.0
    for name, t in _node_terms(model, observed).items():
        term = _sum_but_first(t, n, per_chain.get(name, True) if per_chain else
                              ad.unwrap(t).ndim >= 1 and ad.unwrap(t).shape[0] == n)
        total = total + (term * scale if name in scaled else term)
    return total


def _model_log_density(model, observed, layout, vectorized, compile=True, q0=None):
    """``logdensity(q [n, dim]) -> [n]`` of the model on the unconstrained space.

    Returned under :func:`autodiff.compile` (or :func:`autodiff.trace` with
    ``compile=False``): the BayesianNet is built and observed only while recording,
    later calls run the compiled program. Models whose ops depend on the values (a
    Python ``if`` on a latent) are detected and evaluated normally."""
    if q0 is None:                      # any point will do for the chain-axis check
        q0 = np.zeros((2, layout.dim))
    per_chain = _chain_terms(model, observed, layout, q0) if vectorized else None

    def joint(values, n):
        return _joint(model, {**observed, **values}, n, per_chain)

    def log_density(q):
        n = q.shape[0]
        values, ldj = layout.constrain(q)
        if vectorized:
            return joint(values, n) + ldj
        per_chain = [joint({k: v[i] for k, v in values.items()}, 1) for i in range(n)]
        return ad.concatenate([ad.reshape(p, (1,)) for p in per_chain], axis=0) + ldj
    return ad.compile(log_density, warn=False) if compile else ad.trace(log_density,
                                                                         warn=False)


class InferenceResult:
    """Constrained draws per latent plus the sampler's statistics.

    Attributes
    ----------
    draws : dict name -> array [n_chains, n_samples, *node_shape]
        Constrained values.
    unconstrained : array [n_chains, n_samples, dim]
        The raw sampler draws.
    stats, warmup_stats, step_size, inverse_mass, n_divergent, n_nonfinite
        As in :class:`samplers.Result`.
    layout : LatentLayout
    """

    def __init__(self, result, layout):
        self.result, self.layout = result, layout
        self.unconstrained = result.draws
        self.stats = result.stats
        # SG-MCMC results have no warmup, mass matrix or divergences
        self.warmup_stats = getattr(result, "warmup_stats", None)
        self.step_size = getattr(result, "step_size", None)
        self.inverse_mass = getattr(result, "inverse_mass", None)
        self.n_divergent = getattr(result, "n_divergent", 0)
        self.n_nonfinite = getattr(result, "n_nonfinite", 0)
        c, s, d = result.draws.shape
        with ad.no_grad():
            values, _ = layout.constrain(ad.tensor(result.draws.reshape(c * s, d)))
        self.draws = {k: v.data.reshape((c, s) + layout.shapes[k]) for k, v in values.items()}

    def coordinate_names(self):
        """Flat names (``w[0]``, ``w[1, 2]``, ``sigma``) of every constrained coordinate."""
        names = []
        for k in self.layout.names:
            shape = self.layout.shapes[k]
            if shape == ():
                names.append(k)
            else:
                names += [f"{k}[{', '.join(map(str, i))}]" for i in np.ndindex(*shape)]
        return names

    def flat_draws(self):
        """All constrained draws as one ``[n_chains, n_samples, n_coordinates]`` array."""
        c, s = self.unconstrained.shape[:2]
        return np.concatenate([backend.asnumpy(self.draws[k]).reshape(c, s, -1)
                               for k in self.layout.names], axis=-1)

    def summary(self, quantiles=(0.05, 0.5, 0.95), print_table=True):
        """Print and return the posterior summary of every constrained coordinate."""
        table = samplers.diagnostics.summary(self.flat_draws(), names=self.coordinate_names(),
                                             quantiles=quantiles)
        if print_table:
            print(table)
        return table

    def to_arviz(self):
        """An ``arviz.InferenceData`` with one variable per latent (needs ArviZ)."""
        try:
            import arviz as az
        except ImportError:
            raise ImportError("InferenceResult.to_arviz() needs ArviZ, which is not "
                              "installed: pip install arviz") from None
        stats = {k: backend.asnumpy(v) for k, v in self.stats.items()}
        return az.from_dict(posterior={k: backend.asnumpy(v) for k, v in self.draws.items()},
                            sample_stats=stats)

    def __repr__(self):
        c, s, _ = self.unconstrained.shape
        return (f"InferenceResult({c} chains x {s} draws of {self.layout.names}, "
                f"{self.n_divergent} divergent)")


class _Front:
    """A sampler front: kernel options at construction, ``sample(model, ...)`` to run."""
    kernel = None

    def __init__(self, **kernel_options):
        self.kernel_options = kernel_options

    def _prepare(self, model, observed, latent, n_chains, rng):
        """Check the arguments; the latent layout, initial positions, generator, module."""
        if not isinstance(model, MetaBayesianNet):
            raise TypeError(f"{type(self).__name__}.sample: model must be a MetaBayesianNet "
                            f"(build it with @zs.meta_bayesian_net), got {type(model).__name__}")
        observed = dict(observed or {})
        if latent is None or len(latent) == 0:
            raise ValueError(f"{type(self).__name__}.sample: name the latent nodes to sample "
                             f"in latent={{name: initial value or None}}")
        if not isinstance(latent, dict):
            latent = {name: None for name in latent}
        gen = np.random.default_rng(rng) if not hasattr(rng, "standard_normal") else rng
        layout = LatentLayout(model, observed, list(latent))
        xp = backend.get_array_module(*observed.values())
        q0 = layout.unconstrain(latent, n_chains, np)
        missing = np.isnan(q0)
        q0[missing] = gen.uniform(-2.0, 2.0, size=int(missing.sum()))
        return layout, q0, gen, xp

    def sample(self, model, observed=None, latent=None, n_chains=4, n_samples=1000,
               n_warmup=1000, rng=0, progress=True, thin=1, vectorized=True, compile=True,
               **options):
        """Sample the latents of ``model`` given ``observed``.

        Parameters
        ----------
        model : MetaBayesianNet
        observed : dict name -> array
        latent : dict name -> initial value or None, or a list of names
            Constrained initial values (shape ``node_shape`` for all chains or
            ``[n_chains, *node_shape]``); None initialises as Stan does, uniform(-2, 2)
            on the unconstrained space.
        n_chains, n_samples, n_warmup, rng, progress, thin
            As in :func:`samplers.sample`.
        vectorized : bool
            Evaluate all chains in one model call with a leading chain axis (the model
            must broadcast over it), or one call per chain (see the module docstring).
        compile : bool
            Compile the model's log density (:func:`autodiff.compile`, default) or
            replay it (:func:`autodiff.trace`).
        **options
            More options for :func:`samplers.sample` (``dense_mass``, ``target_accept``,
            ``step_size``, ``max_tree_depth``...), overriding those given at construction.

        Returns
        -------
        InferenceResult
        """
        layout, q0, gen, xp = self._prepare(model, observed, latent, n_chains, rng)
        observed = dict(observed or {})
        log_density = _model_log_density(model, observed, layout, vectorized, compile, q0)
        opts = {**self.kernel_options, **options}
        try:
            result = samplers.sample(log_density, xp.asarray(q0), n_samples=n_samples,
                                     n_warmup=n_warmup, kernel=self.kernel, rng=gen,
                                     progress=progress, thin=thin, **opts)
        except ValueError as err:
            if vectorized and "shape" in str(err):
                raise ValueError(f"{err}\n(the model was evaluated with a leading chain axis "
                                 f"on every latent; if it does not broadcast over that axis, "
                                 f"pass vectorized=False)") from err
            raise
        return InferenceResult(result, layout)


class NUTS(_Front):
    """No-U-Turn sampler front: ``zs.NUTS(max_tree_depth=10, ...).sample(model, ...)``."""
    kernel = "nuts"


class HMC(_Front):
    """Hamiltonian Monte Carlo front: ``zs.HMC(n_leapfrogs=10, ...).sample(model, ...)``."""
    kernel = "hmc"


class MALA(_Front):
    """Metropolis-adjusted Langevin front."""
    kernel = "mala"


class RWMH(_Front):
    """Random-walk Metropolis front."""
    kernel = "rwmh"


class _SGFront(_Front):
    """A stochastic-gradient MCMC front over minibatches of the data.

    ``data`` maps names to arrays sharing a leading data axis of length N: names of
    observed nodes are observed at the minibatch, other names are passed to the
    model's builder as keyword arguments (covariates). Each step draws ``batch_size``
    distinct rows with the explicit rng and scales the data nodes' log-likelihood by
    N / batch_size (an unbiased estimate of the full-data gradient).
    """
    kernel_class = None

    def __init__(self, step_size, **kernel_options):
        self.step_size = step_size
        self.kernel_options = kernel_options

    def sample(self, model, observed=None, latent=None, data=None, batch_size=None,
               n_chains=4, n_samples=1000, burnin=0, thin=1, rng=0, progress=True,
               vectorized=True, compile=True, checkpoint=None, checkpoint_every=100):
        """Sample the latents of ``model`` with minibatch gradients.

        Parameters
        ----------
        model : MetaBayesianNet
        observed : dict name -> array
            Observations used whole at every step.
        latent : dict name -> initial value or None
        data : dict name -> array [N, ...]
            Minibatched along the first axis (observed nodes or builder arguments).
        batch_size : int
        n_chains, n_samples, burnin, thin, rng, progress
            As in :func:`samplers.sgmcmc.sample_sgmcmc`.
        compile : bool
            Compile the minibatch log density (default; the rows are inputs of the
            compiled program) or replay it (:func:`autodiff.trace`).
        checkpoint, checkpoint_every
            Save the run to ``checkpoint`` every ``checkpoint_every`` steps; calling again
            with the same arguments resumes it (:func:`samplers.sample`).

        Returns
        -------
        InferenceResult
        """
        from samplers import sgmcmc
        data = dict(data or {})
        if not data:
            raise ValueError(f"{type(self).__name__}.sample: give the minibatched arrays in "
                             f"data={{name: array [N, ...]}}")
        sizes = {k: len(v) for k, v in data.items()}
        n_data = next(iter(sizes.values()))
        if any(n != n_data for n in sizes.values()):
            raise ValueError(f"data: arrays must share their first axis, got lengths {sizes}")
        if not (isinstance(batch_size, (int, np.integer)) and 1 <= batch_size <= n_data):
            raise ValueError(f"batch_size: expected an int in [1, {n_data}], got {batch_size!r}")
        full = model.rebind(**{k: v for k, v in data.items()
                               if k in model.builder_parameters()})
        full_obs = {**dict(observed or {}), **{k: v for k, v in data.items()
                                               if k not in model.builder_parameters()}}
        layout, q0, gen, xp = self._prepare(full, full_obs, latent, n_chains, rng)
        per_chain = _chain_terms(full, full_obs, layout, q0) if vectorized else None
        scale = n_data / batch_size
        data_nodes = [k for k in data if k not in model.builder_parameters()]

        names = list(data)

        def minibatch_log_density(q, *rows):
            batch = dict(zip(names, rows))
            m = model.rebind(**{k: v for k, v in batch.items()
                                if k in model.builder_parameters()})
            obs = {**dict(observed or {}), **{k: batch[k] for k in data_nodes}}
            n = q.shape[0]
            values, ldj = layout.constrain(q)
            if not vectorized:
                raise NotImplementedError("SG fronts evaluate all chains at once: write the "
                                          "model to broadcast over a leading chain axis")
            return ldj + _joint(m, {**obs, **values}, n, per_chain, scaled=data_nodes,
                                scale=scale)

        # traced: the minibatch rows are inputs of the recorded program, new at every call
        traced = (ad.compile if compile else ad.trace)(minibatch_log_density, warn=False)

        def grad_estimator(q, rng):
            idx = rng.choice(n_data, size=batch_size, replace=False)
            return traced.value_and_grad(q, *[data[k][idx] for k in names])[1]

        kernel = self.kernel_class(grad_estimator, self.step_size, **self.kernel_options)
        result = sgmcmc.sample_sgmcmc(kernel, xp.asarray(q0), n_samples=n_samples, thin=thin,
                                      burnin=burnin, rng=gen, progress=progress,
                                      checkpoint=checkpoint,
                                      checkpoint_every=checkpoint_every)
        return InferenceResult(result, layout)


def _sg(name, doc):
    from samplers import sgmcmc
    return type(name, (_SGFront,), {"kernel_class": getattr(sgmcmc, name), "__doc__": doc})


SGLD = _sg("SGLD", "Stochastic gradient Langevin dynamics front (Welling & Teh 2011).")
PSGLD = _sg("PSGLD", "Preconditioned SGLD front (Li et al. 2016).")
SGHMC = _sg("SGHMC", "Stochastic gradient HMC front (Chen et al. 2014).")
SGNHT = _sg("SGNHT", "Stochastic gradient Nose-Hoover thermostat front (Ding et al. 2014).")
