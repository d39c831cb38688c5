"""Estimating log marginal likelihoods ``log p(x)`` (``zs.evaluation``).

* :func:`is_loglikelihood` -- importance sampling with a proposal ``q``:
  ``log (1/K) sum_k p(x, z_k) / q(z_k)``, a stochastic lower bound in expectation
  (Jensen), consistent as ``K`` grows (Burda et al. 2016).
* :class:`AIS` -- annealed importance sampling (Neal 2001, "Annealed importance
  sampling"): anneal from the proposal ``q(z)`` (often the prior) to the posterior
  through ``f_t(z) = q(z)^(1 - beta_t) p(x, z)^beta_t`` with HMC transitions, along
  the sigmoidal schedule of Wu, Burda, Salakhutdinov & Grosse 2017 ("On the
  quantitative analysis of decoder-based generative models"). One chain per
  (particle, data point); every chain moves in the same batched HMC call.

Both take ``rows=`` to split a data set by rows into fixed blocks, each estimated on its
own with its own random stream, run here or by an ``executor=`` (a process pool, a Dask
client) in shards, with the same numbers either way (:mod:`zsarray.row_blocks`); AIS
runs checkpoint and resume bit for bit (``checkpoint=``).
"""
import copy
import hashlib
from typing import NamedTuple

import numpy as np

import autodiff as ad
from autodiff import backend

from .framework.bn import StochasticTensor
from .framework.meta_bn import MetaBayesianNet
from .variational.base import VariationalObjective, log_mean_exp

__all__ = ["is_loglikelihood", "AIS", "AISResult", "sigmoid_schedule"]


class _ISObjective(VariationalObjective):
    _name = "is_loglikelihood"


def is_loglikelihood(model, observed, proposal=None, axis=0, *, rows=None, rng=None,
                     block_rows=None, executor=None, n_shards=None):
    """Importance-sampling estimate of ``log p(x)`` per batch element.

    Parameters
    ----------
    model : MetaBayesianNet or callable
        ``p(x, z)``; a callable gets ``{**observed, **z}`` and returns the log joint.
    observed : dict
        ``name -> value`` of the model's observed nodes.
    proposal : BayesianNet
        ``q(z)``; its unobserved stochastic nodes supply ``K`` samples per batch
        element along ``axis`` (e.g. nodes with ``n_samples=K``). None with ``rows``.
    axis : int
        The particle axis of the log weights (required).
    rows : callable, optional
        Split the data set by rows (the first axis of the observed arrays) into blocks
        of ``block_rows`` rows, each estimated on its own (:mod:`zsarray.row_blocks`):
        ``rows(rows: slice, rng: numpy.random.Generator) -> dict`` gives the block's
        ``"proposal"`` (a BayesianNet drawing its ``K`` samples with ``rng``, or a
        MetaBayesianNet, then drawn by ``observe()``) and optionally its ``"model"`` and
        ``"observed"`` (default: ``model``, and ``observed`` sliced by ``rows``). The
        estimate depends on ``rng`` and ``block_rows`` only, whatever the executor, the
        number of shards or workers. The rows are the first axis of the estimate.
    rng : int or numpy.random.Generator
        With ``rows``: block ``b`` draws from ``SeedSequence(rng).spawn(n_blocks)[b]``
        (its first child goes to ``rows``, as in :meth:`AIS.run`).
    block_rows : int, optional
        Rows per block (default ``ceil(n_rows / 16)``); also bounds the memory of one
        estimate (``K x block_rows`` particles at a time).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        With ``rows``: run the blocks in ``n_shards`` shards (unions of consecutive
        blocks) through ``executor.submit``; a Dask client gets ``rows``, ``model`` and
        ``observed`` once per worker. Without: the blocks run here, one after another.
    n_shards : int, optional
        Number of shards (default: one block per shard).

    Returns
    -------
    autodiff.Tensor
        ``log (1/K) sum_k exp(log p(x, z_k) - log q(z_k))``, the log-weight shape with
        ``axis`` removed (with ``rows``: blocks concatenated along its first axis, no
        gradient).

    Raises
    ------
    ValueError
        Without ``axis``, or on a proposal without latent nodes.
    """
    if axis is None:
        raise ValueError("is_loglikelihood: axis is required: the particle axis of the "
                         "proposal samples")
    if rows is not None:
        return _is_blocks(model, observed, proposal, axis, rows, rng, block_rows, executor,
                          n_shards)
    _no_block_options(rng=rng, block_rows=block_rows, executor=executor, n_shards=n_shards)
    obj = _ISObjective(model, observed, proposal, axis)
    return log_mean_exp(obj._log_weights("pathwise"), axis=obj.axis)


def _no_block_options(**options):
    given = [k for k, v in options.items() if v is not None]
    if given:
        raise ValueError(f"{given[0]}: only with rows= (a function building a block of rows "
                         f"of the data set; see zsarray.row_blocks)")


def _is_blocks(model, observed, proposal, axis, rows_fn, rng, block_rows, executor, n_shards):
    from . import row_blocks as rb
    if proposal is not None:
        raise ValueError("proposal: with rows=, each block's proposal comes from rows(rows, "
                         "rng); leave proposal=None")
    if not isinstance(observed, dict):
        raise TypeError(f"observed must be a dict, got {type(observed).__name__}")
    blocks = rb.block_bounds(rb.n_rows_of(observed), block_rows)
    seeds = rb.block_seeds(rng, len(blocks))
    shared = (rows_fn, model, dict(observed), int(axis))
    if executor is None:
        _no_block_options(n_shards=n_shards)
        parts = _is_shard(shared, (blocks, seeds))
    else:
        shards = rb.shards_of(len(blocks), n_shards)
        tasks = [(blocks[a:b], seeds[a:b]) for a, b in shards]
        parts = [p for part in rb.run_shards(
            executor, _is_shard, shared, tasks,
            lambda i: (blocks[shards[i][0]][0], blocks[shards[i][1] - 1][1])) for p in part]
    return ad.tensor(np.concatenate(parts, axis=0))


def _is_shard(shared, task):
    """The IS estimates (NumPy, rows first) of a shard's blocks, in order."""
    rows_fn, model, observed, axis = shared
    out = []
    for (a, b), seed in zip(*task):
        try:
            m, q, obs = _build_block(rows_fn, a, b, seed, model, observed)
            if isinstance(q, MetaBayesianNet):
                q = q.observe()
            with ad.no_grad():
                est = backend.asnumpy(is_loglikelihood(m, obs, q, axis).data)
            _check_rows(est.shape, 0, a, b, "the estimate")
        except Exception as err:
            _note_rows(err, a, b)
            raise
        out.append(est)
    return out


def _build_block(rows_fn, a, b, seed, model, observed):
    from . import row_blocks as rb
    return rb.build_block(rows_fn, slice(a, b), np.random.default_rng(_child(seed, 0)),
                          model, observed)


def _child(seed, j):
    """``seed.spawn(j + 1)[j]`` without counting the spawn (a rerun gets the same)."""
    return np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + (j,),
                                  pool_size=seed.pool_size)


def _check_rows(shape, row_axis, a, b, what):
    if len(shape) <= row_axis or shape[row_axis] != b - a:
        raise ValueError(f"rows: {what} of rows {a}-{b - 1} has shape {tuple(shape)}; its "
                         f"axis {row_axis} (the rows) should have length {b - a}: does "
                         f"rows(rows, rng) build the model and proposal for those rows only?")


def _note_rows(err, a, b):
    if hasattr(err, "add_note"):
        err.add_note(f"zs.evaluation: raised on rows {a}-{b - 1} of the data set")


def sigmoid_schedule(n_temperatures, delta=4.0):
    """The sigmoidal annealing schedule of Wu et al. 2017 (Grosse's AIS code).

    ``beta_t = (s(t) - s(0)) / (s(T) - s(0))``, ``s(t) = sigmoid(delta (2t/T - 1))``:
    small steps near both ends, where the log weights change fastest.

    Parameters
    ----------
    n_temperatures : int >= 1
        Number of annealing steps ``T``.
    delta : float > 0
        Steepness.

    Returns
    -------
    numpy.ndarray, shape [T + 1]
        ``beta_0 = 0 < beta_1 < ... < beta_T = 1``.
    """
    if int(n_temperatures) != n_temperatures or n_temperatures < 1:
        raise ValueError(f"n_temperatures: expected a positive int, got {n_temperatures!r}")
    if not delta > 0:
        raise ValueError(f"delta: expected a positive float, got {delta!r}")
    s = 1.0 / (1.0 + np.exp(-np.linspace(-delta, delta, int(n_temperatures) + 1)))
    beta = (s - s[0]) / (s[-1] - s[0])
    beta[0], beta[-1] = 0.0, 1.0
    return beta


class AISResult(NamedTuple):
    """What :meth:`AIS.run` returns.

    Attributes
    ----------
    log_marginal : array, shape ``batch``
        ``log (1/K) sum_k w_k`` per batch element: the log-weight shape with the
        particle axis removed (e.g. ``[n_data]``).
    stderr : array, shape ``batch``
        Delta-method standard error of ``log_marginal``:
        ``sd(w) / (sqrt(K) mean(w))`` over the ``K`` particles (NaN when K = 1).
    log_weights : array, shape ``chain_shape``
        The final log AIS weights of every chain (e.g. ``[K, n_data]``).
    samples : dict
        ``name -> array`` of the latents at the end of annealing (approximate
        posterior draws), shape ``chain_shape + event_shape``.
    acceptance : array, shape [n_temperatures]
        Mean HMC acceptance probability over chains at each temperature.
    step_size : float
        The HMC step size used after adaptation.
    blocks : list of (int, int) or None
        With ``AIS.run(rows=...)``: each block's ``(first row, last row + 1)``;
        ``acceptance`` is then ``[n_blocks, n_temperatures]`` and ``step_size``
        ``[n_blocks]``, one per block. None for a run on all rows at once.
    """
    log_marginal: object
    stderr: object
    log_weights: object
    samples: dict
    acceptance: object
    step_size: float
    blocks: list = None

    @property
    def total_log_marginal(self):
        """Sum of ``log_marginal`` over the batch (the data set's ``log p(x)`` when
        the data points are independent given their latents)."""
        return float(np.sum(backend.asnumpy(self.log_marginal)))

    @property
    def total_stderr(self):
        """Standard error of :attr:`total_log_marginal` (independent terms)."""
        return float(np.sqrt(np.sum(backend.asnumpy(self.stderr) ** 2)))


_HMC_KEYS = {"step_size", "n_leapfrogs", "inverse_mass", "integrator", "grad_fn",
             "divergence_threshold"}


class AIS:
    """Annealed importance sampling from a proposal to the posterior.

    The intermediate targets are ``log f_t(z) = (1 - beta_t) log q(z) + beta_t
    log p(x, z)``; chain ``c`` starts at ``z_0 ~ q``, gains the log weight increment
    ``log f_t(z_{t-1}) - log f_{t-1}(z_{t-1})`` and then moves by one HMC transition
    leaving ``f_t`` invariant, for ``t = 1..T``. ``E[w] = p(x)`` for every chain, so
    ``log mean_k w_k`` over the ``K`` particles of a data point estimates
    ``log p(x)`` (biased low by Jensen for finite ``K``, like any log of an unbiased
    estimate).

    Parameters
    ----------
    model : MetaBayesianNet or callable
        ``p(x, z)``; a callable gets ``{**observed, **z}`` and returns the log joint.
    proposal : MetaBayesianNet
        Builds ``q(z)``: ``proposal.observe()`` draws the initial latents (with the
        rng its builder gives its BayesianNet: seed it for reproducibility) and
        ``proposal.observe(**z)`` evaluates ``log q(z)``. Its latent nodes must be
        exactly ``latent``.
    hmc_kernel_options : dict
        Options of :class:`samplers.HMC`: ``step_size`` (initial; default 0.1),
        ``n_leapfrogs`` (default 10), ``inverse_mass``, ``integrator``,
        ``divergence_threshold``.
    observed : dict
        The model's observed nodes.
    latent : str or list of str
        The latent names annealed (the proposal's unobserved stochastic nodes).
        Each latent value must have shape ``chain_shape + event_shape``, where
        ``chain_shape`` is the shape of ``log p(x, z)`` (e.g. ``[K, n_data]``): one
        independent chain per element of ``chain_shape``. Latents shared across
        data points (global parameters) are not supported.
    n_temperatures : int
        Number of annealing steps ``T`` (one HMC transition each).
    n_adapt : int
        The HMC step size (shared by all chains) is adapted by dual averaging
        (Hoffman & Gelman 2014) towards ``target_acceptance`` during the first
        ``n_adapt`` temperatures and set to its averaged value at the end of them.
        Afterwards, since the tempered targets narrow as ``beta`` grows, it keeps
        tracking the target as in Wu et al. 2017's AIS code (times 1.02 when the mean
        acceptance is above target, times 0.98 below) unless ``track_step_size`` is
        False (then it stays frozen). The step size depends only on past
        transitions, so each transition still leaves its ``f_t`` invariant.
    axis : int
        The particle axis of ``chain_shape``, reduced in the estimate.
    target_acceptance : float
        0.65 (Neal 2011's optimum for HMC).
    delta : float
        Steepness of :func:`sigmoid_schedule`.
    track_step_size : bool
        Keep adapting the step size after ``n_adapt`` (see above).
    compile : bool
        Compile the tempered log density once for every temperature (beta is an
        input of the program; :func:`autodiff.compile`, default), or replay it
        (:func:`autodiff.trace`, which repeats the tape's arithmetic exactly).

    Examples
    --------
    >>> ais = zs.evaluation.AIS(model, prior, {"step_size": 0.1, "n_leapfrogs": 10},
    ...                         {"x": x}, "z", n_temperatures=1000)    # doctest: +SKIP
    >>> res = ais.run(rng=0)
    >>> res.log_marginal, res.stderr                          # [n_data], [n_data]
    """

    def __init__(self, model, proposal, hmc_kernel_options, observed, latent,
                 n_temperatures=1000, n_adapt=30, axis=0, target_acceptance=0.65,
                 delta=4.0, track_step_size=True, compile=True):
        if not (isinstance(model, MetaBayesianNet) or callable(model)):
            raise TypeError(f"AIS: model must be a zs.MetaBayesianNet or a log-joint function, "
                            f"got {type(model).__name__}")
        if not isinstance(proposal, MetaBayesianNet):
            raise TypeError(f"AIS: proposal must be a zs.MetaBayesianNet (it is sampled once "
                            f"and re-evaluated at every HMC position), got "
                            f"{type(proposal).__name__}")
        opts = dict(hmc_kernel_options or {})
        unknown = sorted(set(opts) - _HMC_KEYS)
        if unknown:
            raise ValueError(f"AIS: unknown hmc_kernel_options {unknown}; expected some of "
                             f"{sorted(_HMC_KEYS)}")
        opts.setdefault("step_size", 0.1)
        opts.setdefault("n_leapfrogs", 10)
        if not (np.ndim(opts["step_size"]) == 0 and float(opts["step_size"]) > 0):
            raise ValueError(f"AIS: hmc_kernel_options['step_size'] must be a positive "
                             f"scalar (adapted for all chains), got {opts['step_size']!r}")
        if observed is None:
            observed = {}
        if not isinstance(observed, dict):
            raise TypeError(f"AIS: observed must be a dict, got {type(observed).__name__}")
        latent = [latent] if isinstance(latent, str) else list(latent)
        if not latent:
            raise ValueError("AIS: latent must name at least one latent node")
        if int(n_adapt) != n_adapt or not 0 <= n_adapt <= n_temperatures:
            raise ValueError(f"AIS: n_adapt must be an int in [0, n_temperatures="
                             f"{n_temperatures}], got {n_adapt!r}")
        if not 0 < target_acceptance < 1:
            raise ValueError(f"AIS: target_acceptance must be in (0, 1), got "
                             f"{target_acceptance!r}")
        self.betas = sigmoid_schedule(n_temperatures, delta)
        self.delta = float(delta)
        self.model, self.proposal, self.observed = model, proposal, dict(observed)
        self.latent = latent
        self.hmc_kernel_options = opts
        self.n_temperatures, self.n_adapt = int(n_temperatures), int(n_adapt)
        self.axis, self.target_acceptance = int(axis), float(target_acceptance)
        self.track_step_size = bool(track_step_size)
        self.compile = bool(compile)

    # ---------------------------------------------------------------- densities
    def _log_q(self, values):
        qbn = self.proposal.observe(**values)
        terms = [qbn[n].cond_log_p for n in self.latent]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    def _log_p(self, values):
        values = {**self.observed, **values}
        if isinstance(self.model, MetaBayesianNet):
            return self.model.observe(**values).log_joint()
        return self.model(values)

    def _initial(self):
        """Initial latents from the proposal; checks names and shapes.

        Returns ``(z0: name -> array, chain_shape, event_shapes)``.
        """
        qbn = self.proposal.observe()
        nodes = qbn.nodes
        for n in self.latent:
            if n not in nodes or not isinstance(nodes[n], StochasticTensor) \
                    or nodes[n].is_observed():
                raise ValueError(f"AIS: latent '{n}' is not an unobserved stochastic node of "
                                 f"the proposal (its nodes: {sorted(nodes)})")
        extra = sorted(n for n, node in nodes.items() if isinstance(node, StochasticTensor)
                       and not node.is_observed() and n not in self.latent)
        if extra:
            raise ValueError(f"AIS: the proposal has latent node(s) {extra} not listed in "
                             f"latent={self.latent}; anneal all of them")
        z0 = {n: qbn[n].tensor.data for n in self.latent}
        with ad.no_grad():
            lq = self._log_q(z0)
            lp = self._log_p(z0)
        try:
            chain_shape = tuple(np.broadcast_shapes(lq.shape, lp.shape))
        except ValueError:
            raise ValueError(f"AIS: log q(z) of shape {tuple(lq.shape)} and log p(x, z) of "
                             f"shape {tuple(lp.shape)} do not broadcast") from None
        if not -len(chain_shape) <= self.axis < len(chain_shape):
            raise ValueError(f"AIS: axis={self.axis} is out of range for the chain shape "
                             f"{chain_shape} (the shape of log p(x, z))")
        events = {}
        for n, v in z0.items():
            if tuple(v.shape[:len(chain_shape)]) != chain_shape:
                raise ValueError(f"AIS: latent '{n}' has shape {tuple(v.shape)}, which does "
                                 f"not start with the chain shape {chain_shape} (the shape of "
                                 f"log p(x, z)); every chain needs its own latents")
            events[n] = tuple(v.shape[len(chain_shape):])
        return z0, chain_shape, events

    # ---------------------------------------------------------------- run
    def run(self, rng=None, *, rows=None, block_rows=None, executor=None, n_shards=None,
            checkpoint=None, checkpoint_every=100):
        """Anneal every chain; returns an :class:`AISResult`.

        Parameters
        ----------
        rng : int, numpy.random.Generator or cupy Generator
            Drives the HMC momenta and accept decisions (the initial draws come from
            the proposal's own rng). With ``rows``: an int seed or a NumPy generator,
            from which block ``b`` gets ``s = SeedSequence(rng).spawn(n_blocks)[b]``;
            the children ``s.spawn(2)`` drive ``rows``' proposal and the HMC.
        rows : callable, optional
            Split the data set by rows (the first axis of the observed arrays) into
            blocks of ``block_rows`` rows, each annealed as its own batched run with its
            own step-size adaptation (:mod:`zsarray.row_blocks`):
            ``rows(rows: slice, rng: numpy.random.Generator) -> dict`` gives the block's
            ``"proposal"`` (a MetaBayesianNet drawing with ``rng``) and optionally its
            ``"model"`` and ``"observed"`` (default: the AIS's model, and its observed
            arrays sliced by ``rows``); the AIS's own proposal is then not used. The
            estimate depends on ``rng`` and ``block_rows`` only, whatever the executor,
            the number of shards or workers. The rows are the first axis of the chain
            shape besides ``axis`` (e.g. ``[K, n_rows]``).
        block_rows : int, optional
            Rows per block (default ``ceil(n_rows / 16)``); one block is one batched
            HMC run of ``K x block_rows`` chains, which bounds the memory.
        executor : concurrent.futures.Executor or dask.distributed.Client, optional
            With ``rows``: run the blocks in ``n_shards`` shards (unions of consecutive
            blocks) through ``executor.submit``; a Dask client gets ``rows``, the model
            and the observed data once per worker. Without: the blocks run here.
        n_shards : int, optional
            Number of shards (default: one block per shard).
        checkpoint : str or os.PathLike, optional
            A file to save the annealing to every ``checkpoint_every`` temperatures and
            on Ctrl-C (temperature index, positions, log densities and gradients, log
            weights, acceptance so far, step size and its adaptation state, generator
            state): written atomically, and the same call resumes from it and repeats
            the uninterrupted run bit for bit; a finished run's file returns its result
            at once. With ``rows``, finished blocks are kept too, and with an executor
            shard ``i`` checkpoints to ``PATH.shard{i}``. A file written by another run
            or damaged is an error naming the path and what differs. NumPy generators
            only.
        checkpoint_every : int
            Temperatures between two saves (100).

        Returns
        -------
        AISResult
            With ``rows``: blocks concatenated along the rows; ``acceptance`` is
            ``[n_blocks, n_temperatures]``, ``step_size`` ``[n_blocks]`` and ``blocks``
            lists each block's ``(first row, last row + 1)``; its arrays are NumPy
            arrays (as is a checkpointed run's).

        Raises
        ------
        ValueError
            A checkpoint written by another run or damaged (naming the path and the
            field); ``executor``, ``n_shards`` or ``block_rows`` without ``rows``;
            ``n_shards`` out of ``[1, n_blocks]``; a block whose chain shape does not
            have its rows (naming them). An error raised on a block carries notes
            naming its rows and shard.
        TypeError
            ``rows`` returning anything but a dict with ``"proposal"``; ``rng`` None
            with ``rows``.
        KeyboardInterrupt
            On Ctrl-C with a checkpoint: saying after how many temperatures it stopped
            and that the same call resumes.
        """
        if rows is not None:
            return self._run_blocks(rows, rng, block_rows, executor, n_shards, checkpoint,
                                    checkpoint_every)
        _no_block_options(block_rows=block_rows, executor=executor, n_shards=n_shards)
        if rng is None or isinstance(rng, (int, np.integer)):
            seed, rng = rng, np.random.default_rng(rng)
        elif isinstance(rng, np.random.Generator):
            # a generator is known by its state at the start (resuming needs the same)
            seed = "generator " + hashlib.sha1(repr(rng.bit_generator.state).encode()
                                               ).hexdigest()[:16]
        else:
            seed = None
        if checkpoint is None:
            return self._anneal(rng)
        if not isinstance(rng, np.random.Generator):
            raise ValueError("checkpoint: needs a NumPy generator (a CuPy generator's state "
                             "cannot be saved yet)")
        from .row_blocks import BlocksCheckpoint
        ckpt = BlocksCheckpoint(checkpoint, checkpoint_every,
                                self._fingerprint(seed, rows=None), self.n_temperatures)
        return _blocks_with_checkpoint(ckpt, [0], lambda b, resume, keep: self._anneal(
            rng, resume, keep))[0]

    def _fingerprint(self, seed, **extra):
        from .row_blocks import describe_options
        return {"kind": "zs.evaluation.AIS", "latent": list(self.latent),
                "observed": {k: (tuple(np.shape(v)), str(getattr(v, "dtype", type(v))))
                             for k, v in sorted(self.observed.items())},
                "n_temperatures": self.n_temperatures, "n_adapt": self.n_adapt,
                "axis": self.axis, "target_acceptance": self.target_acceptance,
                "delta": self.delta, "track_step_size": self.track_step_size,
                "compile": self.compile,
                "hmc_kernel_options": describe_options(self.hmc_kernel_options),
                "seed": seed if seed is None or isinstance(seed, str) else int(seed),
                **extra}

    def _run_blocks(self, rows_fn, rng, block_rows, executor, n_shards, checkpoint, every):
        from . import row_blocks as rb
        blocks = rb.block_bounds(rb.n_rows_of(self.observed), block_rows)
        seeds = rb.block_seeds(rng, len(blocks))
        seed = seeds[0].entropy               # the int seed, or the one drawn from a generator
        # what every shard needs, without the full-data proposal (each block has its own)
        lite = copy.copy(self)
        lite.proposal = None
        shared = (lite, rows_fn)
        fp = None if checkpoint is None else self._fingerprint(
            seed, block_rows=block_rows, blocks=[list(b) for b in blocks])
        if checkpoint is not None:                # checkpoint_every checked here, not remotely
            rb.BlocksCheckpoint(checkpoint, every, fp, self.n_temperatures)
        if executor is None:
            _no_block_options(n_shards=n_shards)
            parts = _ais_shard(shared, (list(range(len(blocks))), blocks, seeds,
                                        checkpoint, every, fp))
        else:
            shards = rb.shards_of(len(blocks), n_shards)
            tasks = [(list(range(a, b)), blocks[a:b], seeds[a:b],
                      None if checkpoint is None else f"{checkpoint}.shard{i}", every,
                      None if fp is None else dict(fp, shard=[a, b]))
                     for i, (a, b) in enumerate(shards)]
            parts = [p for part in rb.run_shards(
                executor, _ais_shard, shared, tasks,
                lambda i: (blocks[shards[i][0]][0], blocks[shards[i][1] - 1][1]))
                for p in part]
        return _merge_blocks(parts, blocks, self.axis)

    def _anneal(self, rng, resume=None, keep=None):
        """The annealing loop. ``resume``: a saved snapshot to continue from;
        ``keep(snapshot)``: called after every temperature (checkpoints)."""
        import samplers
        from samplers.adaptation import dual_averaging

        z0, chain_shape, events = self._initial()
        n_chains = int(np.prod(chain_shape))
        sizes = [int(np.prod(events[n])) for n in self.latent]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        xp = backend.get_array_module(next(iter(z0.values())))
        position = xp.concatenate([xp.reshape(z0[n], (n_chains, s))
                                   for n, s in zip(self.latent, sizes)], axis=1)

        def unflatten(pos):
            return {n: ad.reshape(pos[:, offsets[i]:offsets[i + 1]], chain_shape + events[n])
                    for i, n in enumerate(self.latent)}

        def logdensity(pos, beta):
            values = unflatten(pos)
            lq = self._log_q(values)
            lp = self._log_p(values)
            f = lq + beta * (lp - lq)
            if tuple(f.shape) != chain_shape:
                f = ad.broadcast_to(f, chain_shape)
            return ad.reshape(f, (n_chains,))

        # one recorded program for every temperature: beta is a per-call input
        traced = (ad.compile if self.compile else ad.trace)(logdensity, warn=False)

        def tempered(beta):
            return _AtTemperature(traced, xp.asarray(beta, dtype=position.dtype))

        opts = dict(self.hmc_kernel_options)
        step_size = float(opts.pop("step_size"))
        da_init, da_update, da_final = dual_averaging(target=self.target_acceptance)
        betas = self.betas
        acceptance = np.empty(self.n_temperatures)
        shapes = {"chain_shape": chain_shape, "events": events, "dtype": str(position.dtype)}
        if resume is None:
            t0, da = 0, da_init(step_size)
            state = samplers.HMC(tempered(0.0), step_size, **opts).init(position)
            log_w = xp.zeros(n_chains, dtype=position.dtype)
        else:
            for key, v in shapes.items():
                if resume[key] != v:
                    raise ValueError(f"checkpoint {resume['path']!r} was written by a "
                                     f"different run ({key}: checkpoint has {resume[key]!r}, "
                                     f"this call has {v!r}); use another path or delete it")
            t0, da, step_size = resume["t"], resume["da"], resume["step_size"]
            state, log_w = resume["state"], resume["log_w"]
            acceptance[:t0] = resume["acceptance"]
            rng.bit_generator.state = resume["rng"]
        for t in range(t0 + 1, self.n_temperatures + 1):
            kernel = samplers.HMC(tempered(float(betas[t])), step_size, **opts)
            new = kernel.init(state.position)
            log_w = log_w + (new.logdensity - state.logdensity)   # log f_t - log f_{t-1}
            state, info = kernel.step(new, rng)
            acceptance[t - 1] = float(np.mean(np.nan_to_num(
                backend.asnumpy(info.acceptance_rate), nan=0.0)))
            if t <= self.n_adapt:
                da = da_update(da, info.acceptance_rate)
                step_size = da_final(da) if t == self.n_adapt else da.step_size
            elif self.track_step_size:
                step_size *= 1.02 if acceptance[t - 1] > self.target_acceptance else 0.98
            if keep is not None:
                keep(dict(shapes, t=t, state=state, log_w=log_w, acceptance=acceptance,
                          da=da, step_size=step_size, rng=rng.bit_generator.state))
        log_w = xp.reshape(log_w, chain_shape)
        log_marginal, stderr = _log_mean_and_stderr(log_w, self.axis)
        pos = state.position
        samples = {n: xp.reshape(pos[:, offsets[i]:offsets[i + 1]], chain_shape + events[n])
                   for i, n in enumerate(self.latent)}
        return AISResult(log_marginal, stderr, log_w, samples, acceptance, step_size)


def _blocks_with_checkpoint(ckpt, block_ids, run_block):
    """``[run_block(b, resume, keep) for b in block_ids]`` saved to ``ckpt``: finished
    blocks are kept in the file, the block in progress every ``ckpt.every`` temperatures
    and on Ctrl-C. ``ckpt`` None runs them plainly."""
    if ckpt is None:
        return [run_block(b, None, None) for b in block_ids]
    saved = ckpt.load() or {"done": {}, "current": None}
    done, current = dict(saved["done"]), saved["current"]
    last = {}

    def save(snap):
        cur = None if snap is None else dict(snap, acceptance=snap["acceptance"][:snap["t"]]
                                             .copy())
        ckpt.save(phase="blocks", done=done, current=cur)

    for b in block_ids:
        if b in done:
            continue
        resume = None
        if current is not None and current.get("block") == b:
            resume = dict(current, path=ckpt.path)

        def keep(snap, b=b):
            snap["block"] = b
            last["snap"] = snap
            if ckpt.due(snap["t"]):
                save(snap)
        last.clear()
        try:
            res = run_block(b, resume, keep)
        except KeyboardInterrupt:
            if last:
                save(last["snap"])
            t = last["snap"]["t"] if last else (resume or {}).get("t", 0)
            raise KeyboardInterrupt(f"zs.evaluation.AIS interrupted after {t} of "
                                    f"{ckpt.n_steps} temperatures (block {b}); checkpoint "
                                    f"saved to {ckpt.path!r}: the same call resumes") from None
        done[b] = _to_host(res)
        current = None
        save(None)
    return [done[b] for b in block_ids]


def _to_host(res):
    """An AISResult with NumPy arrays (for files and for the wire)."""
    asnp = backend.asnumpy
    return AISResult(asnp(res.log_marginal), asnp(res.stderr), asnp(res.log_weights),
                     {k: asnp(v) for k, v in res.samples.items()}, res.acceptance,
                     res.step_size, res.blocks)


def _ais_shard(shared, task):
    """The AIS results (NumPy) of a shard's blocks, in order (checkpointed when asked)."""
    from .row_blocks import BlocksCheckpoint
    lite, rows_fn = shared
    ids, blocks, seeds, path, every, fp = task
    by_id = {b: (bounds, seed) for b, bounds, seed in zip(ids, blocks, seeds)}

    def run_block(b, resume, keep):
        (a, z), seed = by_id[b]
        try:
            model, proposal, observed = _build_block(rows_fn, a, z, seed, lite.model,
                                                     lite.observed)
            block = copy.copy(lite)
            block.model, block.proposal, block.observed = model, proposal, dict(observed)
            if not isinstance(proposal, MetaBayesianNet):
                raise TypeError(f"rows: the AIS proposal must be a zs.MetaBayesianNet "
                                f"(sampled once, re-evaluated at every HMC position), got "
                                f"{type(proposal).__name__}")
            res = block._anneal(np.random.default_rng(_child(seed, 1)), resume, keep)
            row_axis = 1 if block.axis % len(res.log_weights.shape) == 0 else 0
            _check_rows(res.log_weights.shape, row_axis, a, z, "the chain shape")
        except Exception as err:
            _note_rows(err, a, z)
            raise
        return _to_host(res)
    ckpt = None if path is None else BlocksCheckpoint(path, every, fp, lite.n_temperatures)
    return _blocks_with_checkpoint(ckpt, ids, run_block)


def _merge_blocks(parts, blocks, axis):
    """One AISResult from the blocks' results, rows in order."""
    first = parts[0]
    nd = len(first.log_weights.shape)
    row_axis = 1 if axis % nd == 0 else 0
    cat = np.concatenate
    return AISResult(cat([p.log_marginal for p in parts], axis=0),
                     cat([p.stderr for p in parts], axis=0),
                     cat([p.log_weights for p in parts], axis=row_axis),
                     {k: cat([p.samples[k] for p in parts], axis=row_axis)
                      for k in first.samples},
                     np.stack([p.acceptance for p in parts]),
                     np.array([p.step_size for p in parts]), [tuple(b) for b in blocks])


class _AtTemperature:
    """``pos -> logdensity(pos, beta)`` for the samplers, replayed by the trace."""
    _ad_traced = True

    def __init__(self, traced, beta):
        self.traced, self.beta = traced, beta

    def __call__(self, pos):
        return self.traced(pos, self.beta)

    def value_and_grad(self, pos):
        return self.traced.value_and_grad(pos, self.beta)


def _log_mean_and_stderr(log_w, axis):
    """``log mean(w)`` and its delta-method standard error along ``axis``."""
    xp = backend.get_array_module(log_w)
    k = log_w.shape[axis]
    m = xp.max(log_w, axis=axis, keepdims=True)
    w = xp.exp(log_w - m)
    mean = xp.mean(w, axis=axis)
    log_mean = xp.log(mean) + xp.squeeze(m, axis=axis)
    if k < 2:
        return log_mean, xp.full(log_mean.shape, np.nan)
    stderr = xp.std(w, axis=axis, ddof=1) / (np.sqrt(k) * mean)
    return log_mean, stderr
