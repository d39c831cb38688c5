"""Normalizing flows: invertible maps with tractable log-Jacobians, as :mod:`zsarray.nn` modules.

Every flow maps ``x`` of shape ``[..., D]`` (leading axes are batch axes) and offers

* ``forward(x) -> (y, log_det)`` with ``log_det = log|det dy/dx|``, shape ``[...]``;
* ``inverse(y) -> (x, log_det)`` with ``log_det = log|det dx/dy|`` (``= -`` the forward
  log-det at ``x``), shape ``[...]``,

the convention of :mod:`zsarray.transforms` and of
:class:`zsarray.distributions.FlowDistribution`. Flows are :class:`zsarray.nn.Module` s:
their parameters are found by attribute and train with any :mod:`zsarray.optim`
optimizer; initial parameters come from an explicit ``rng``; ``dtype`` is float32
(default, as :mod:`zsarray.nn`) or float64.

>>> import zsarray as zs                                     # doctest: +SKIP
>>> flows = zs.flows.real_nvp(2, n_couplings=4, hidden_sizes=(32, 32), rng=0)
>>> y, log_det = flows.forward(x)                 # x: [n, 2] -> y: [n, 2], log_det: [n]
>>> q = FlowDistribution(base, [flows])          # base with value_shape (2,)

Flows here
----------
:class:`Planar`
    ``y = x + u_hat tanh(w.x + b)`` (Rezende & Mohamed, 2015), forward only.
:class:`IAF`
    Inverse autoregressive flow with a :class:`MADE` network and the LSTM-type update
    ``y = sigma * x + (1 - sigma) * m`` (Kingma et al., 2016; Germain et al., 2015).
:class:`AffineCoupling`, :func:`real_nvp`
    RealNVP affine coupling with a tanh-bounded log-scale (Dinh, Sohl-Dickstein &
    Bengio, 2017).
:class:`AdditiveCoupling`, :class:`Scaling`, :func:`nice`
    NICE additive coupling and its diagonal scaling layer (Dinh, Krueger & Bengio, 2015).
:class:`Sequential` (alias :data:`Compose`)
    Composition: log-dets summed, inverse applied in reverse order.

References
----------
Rezende & Mohamed (2015), Variational inference with normalizing flows, ICML.
Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), Improved variational
inference with inverse autoregressive flow, NeurIPS.
Germain, Gregor, Murray & Larochelle (2015), MADE: masked autoencoder for distribution
estimation, ICML.
Dinh, Krueger & Bengio (2015), NICE: non-linear independent components estimation, ICLR
workshop.
Dinh, Sohl-Dickstein & Bengio (2017), Density estimation using Real NVP, ICLR.
"""
import math

import numpy as np

import autodiff as ad
from autodiff import backend
from autodiff.core import Tensor

from .nn import MLP, Module, init, get_activation

__all__ = ["Flow", "Planar", "MADE", "MaskedLinear", "IAF", "AffineCoupling",
           "AdditiveCoupling", "Scaling", "Sequential", "Compose", "real_nvp", "nice",
           "checkerboard_mask"]


def _rng(rng):
    return np.random.default_rng() if rng is None else init._rng(rng)


def _dim(owner, dim, least=1):
    if isinstance(dim, bool) or int(dim) != dim or dim < least:
        raise ValueError(f"{owner}: dim must be an integer >= {least}, got {dim!r}")
    return int(dim)


def _float_dtype(owner, dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"{owner}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _param(a):
    return ad.tensor(a, requires_grad=True)


def _on(a, x):
    """The raw constant ``a`` (a NumPy array) on the device of ``x``."""
    xp = backend.get_array_module(x.data)
    return a if xp is np else xp.asarray(a)


def _zeros(x):
    """A zero log-det (leaf Tensor) of shape ``x.shape[:-1]``, dtype and device of ``x``."""
    xp = backend.get_array_module(x.data)
    return Tensor(xp.zeros(x.shape[:-1], dtype=x.dtype))


class Flow(Module):
    """Base class: a bijection of ``R^dim`` applied over the last axis.

    Subclasses set ``self.dim`` and implement :meth:`_forward` and, if invertible,
    :meth:`_inverse`, on a Tensor of shape ``[..., dim]``; the public methods check the
    shape once. ``flow(x)`` is ``flow.forward(x)``.
    """

    dim = None

    def forward(self, x):
        """``x [..., dim] -> (y [..., dim], log|det dy/dx| [...])``."""
        return self._forward(self._check(x, "forward", "x"))

    def inverse(self, y):
        """``y [..., dim] -> (x [..., dim], log|det dx/dy| [...])``."""
        return self._inverse(self._check(y, "inverse", "y"))

    def _check(self, x, method, argname):
        if type(x) is not Tensor:
            x = ad.tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__}.{method}: {argname} has shape "
                             f"{tuple(x.shape)}, expected [..., {self.dim}] (the flow's dim "
                             f"is {self.dim}, the last axis given is "
                             f"{x.shape[-1] if x.ndim else 'missing'})")
        return x

    def _forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not define _forward()")

    def _inverse(self, y):
        raise NotImplementedError(f"{type(self).__name__}.inverse: not implemented")

    def extra_repr(self):
        return f"dim={self.dim}"


# ----------------------------------------------------------------------------- planar

class Planar(Flow):
    """Planar flow ``y = x + u_hat * tanh(w . x + b)`` (Rezende & Mohamed, 2015).

    ``log|det dy/dx| = log|1 + (1 - tanh^2(w.x + b)) w.u_hat|``. The map is invertible
    iff ``w . u_hat >= -1`` (their appendix A.1); ``u`` is reparameterized as

    ``u_hat = u + (m(w.u) - w.u) w / |w|^2``,  ``m(a) = -1 + softplus(a)``,

    so ``w . u_hat = m(w . u) > -1`` for every ``u, w``; the log-det is computed as
    ``log(h^2 + (1 - h^2) softplus(w.u))`` (equal, ``h = tanh(w.x + b)``, and positive). There is no closed-form inverse: :meth:`inverse`
    raises NotImplementedError. Use planar flows where only the forward direction is
    needed (sampling, and ``log q`` of those samples from the forward log-dets).

    Parameters
    ----------
    dim : int
    dtype : float32 (default) or float64
    rng : int or numpy.random.Generator, optional
        ``u, w ~ N(0, 1/dim)``, ``b = 0``.

    Attributes
    ----------
    u, w : Tensor, shape ``[dim]``
    b : Tensor, shape ``[]``
    """

    def __init__(self, dim, dtype=np.float32, rng=None):
        self.dim = _dim("Planar", dim)
        dtype = _float_dtype("Planar", dtype)
        rng = _rng(rng)
        std = 1.0 / math.sqrt(self.dim)
        self.u = _param(init.normal(self.dim, rng, std=std, dtype=dtype))
        self.w = _param(init.normal(self.dim, rng, std=std, dtype=dtype))
        self.b = _param(np.zeros((), dtype=dtype))

    def u_hat(self):
        """``u_hat`` (shape ``[dim]``) and ``w . u_hat = m(w . u)`` (shape ``[]``)."""
        wu = ad.sum(self.w * self.u)
        m = ad.softplus(wu) - 1.0
        return self.u + (m - wu) / ad.sum(ad.square(self.w)) * self.w, m

    def _forward(self, x):
        u_hat, _ = self.u_hat()
        h = ad.tanh(ad.sum(x * self.w, axis=-1) + self.b)          # [...]
        y = x + ad.expand_dims(h, -1) * u_hat
        # det = 1 + psi(x).u_hat, psi = h' w, h' = 1 - h^2: 1 + h' m(w.u) rewritten as
        # h^2 + h' softplus(w.u), a sum of nonnegative terms with no cancellation (the
        # first form rounds to 0 when softplus(w.u) < 1e-16 and h = 0).
        h2 = ad.square(h)
        return y, ad.log(h2 + (1.0 - h2) * ad.softplus(ad.sum(self.w * self.u)))

    def _inverse(self, y):
        raise NotImplementedError(
            "Planar.inverse: a planar flow has no closed-form inverse (Rezende & Mohamed "
            "2015); it is invertible (w.u_hat > -1) but inverting needs a 1-D root solve. "
            "Use it in the forward direction only (e.g. a variational posterior whose "
            "log-density is evaluated at its own samples), or use IAF / AffineCoupling")


# ----------------------------------------------------------------------------- MADE / IAF

class MaskedLinear(Module):
    """``y = x @ (weight * mask) + bias``: a linear layer with a fixed connectivity mask.

    Parameters
    ----------
    mask : array, shape ``[in_features, out_features]``
        0/1 entries; ``mask[i, j] = 0`` cuts input ``i`` from output ``j``.
    dtype : float32 or float64
    rng : numpy.random.Generator
        Weights ``U(-1/sqrt(in), 1/sqrt(in))`` as :class:`zsarray.nn.Linear`.

    Notes
    -----
    Shapes: ``[..., in_features] -> [..., out_features]``.
    """

    def __init__(self, mask, dtype, rng):
        mask = np.asarray(mask, dtype=dtype)
        n_in, n_out = mask.shape
        bound = 1.0 / math.sqrt(n_in)
        self.mask = mask
        self.weight = _param(init.uniform((n_in, n_out), rng, -bound, bound, dtype))
        self.bias = _param(init.uniform(n_out, rng, -bound, bound, dtype))

    def forward(self, x):
        return ad.matmul(x, self.weight * _on(self.mask, self.weight)) + self.bias

    def extra_repr(self):
        return f"in_features={self.mask.shape[0]}, out_features={self.mask.shape[1]}"


def _order(owner, order, dim):
    """The generation order as a permutation of ``range(dim)`` (None: natural order)."""
    if order is None:
        return np.arange(dim)
    if isinstance(order, str):
        if order != "reverse":
            raise ValueError(f"{owner}: order must be None, 'reverse' or a permutation of "
                             f"range({dim}), got {order!r}")
        return np.arange(dim)[::-1].copy()
    order = np.asarray(order)
    if order.shape != (dim,) or not np.array_equal(np.sort(order), np.arange(dim)):
        raise ValueError(f"{owner}: order must be a permutation of range({dim}), got "
                         f"{order.tolist()}")
    return order.astype(int)


class MADE(Module):
    """Masked autoencoder for distribution estimation (Germain et al., 2015).

    An MLP whose weight masks make output ``j`` of every head depend only on the inputs
    that come before ``j`` in ``order``. Degrees: input ``order[k]`` has degree ``k + 1``;
    hidden unit ``h`` of every layer has degree ``1 + h mod (dim - 1)`` (each degree in
    ``1..dim-1`` is used, so no unit is dead; 0 when ``dim = 1``); a hidden unit sees the
    units of the previous layer of degree ``<=`` its own, and output ``j`` sees the last
    hidden units of degree ``<`` the degree of input ``j``.

    Parameters
    ----------
    dim : int
    hidden_sizes : sequence of int
        At least one hidden layer.
    n_heads : int
        Outputs per input coordinate (IAF uses 2: ``m`` and ``s``).
    order : None, "reverse" or permutation of ``range(dim)``
    activation : str or callable
        Between layers (default ``"elu"``, as in Kingma et al., 2016).
    dtype : float32 or float64
    rng : int or numpy.random.Generator

    Notes
    -----
    Shapes: ``[..., dim] -> [..., n_heads * dim]``; head ``k`` is
    ``out[..., k * dim:(k + 1) * dim]``.
    """

    def __init__(self, dim, hidden_sizes=(64,), n_heads=2, order=None, activation="elu",
                 dtype=np.float32, rng=None):
        self.dim = _dim("MADE", dim)
        dtype = _float_dtype("MADE", dtype)
        hidden_sizes = [int(h) for h in hidden_sizes]
        if not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError(f"MADE: hidden_sizes must be a non-empty list of positive ints, "
                             f"got {hidden_sizes}")
        rng = _rng(rng)
        self.order = _order("MADE", order, self.dim)
        self.n_heads = int(n_heads)
        degrees = np.empty(self.dim, dtype=int)
        degrees[self.order] = np.arange(1, self.dim + 1)
        self.degrees = degrees
        prev, layers = degrees, []
        for h in hidden_sizes:
            hid = (1 + np.arange(h) % (self.dim - 1)) if self.dim > 1 else np.zeros(h, int)
            layers.append(MaskedLinear(hid[None, :] >= prev[:, None], dtype, rng))
            prev = hid
        out_mask = np.tile(degrees[None, :] > prev[:, None], (1, self.n_heads))
        layers.append(MaskedLinear(out_mask, dtype, rng))
        self.layers = layers
        self.activation = get_activation(activation, "MADE activation")

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)

    def extra_repr(self):
        return f"dim={self.dim}, order={self.order.tolist()}"


class IAF(Flow):
    """Inverse autoregressive flow (Kingma et al., 2016), the LSTM-type update.

    ``[m, s] = MADE(x)``, ``sigma = sigmoid(s + forget_bias)``,
    ``y = sigma * x + (1 - sigma) * m``, ``log|det dy/dx| = sum log sigma``.

    ``y_j`` depends on ``x_j`` and on the ``x_i`` before ``j`` in ``order``, so the
    Jacobian is triangular in that order with diagonal ``sigma``. The forward pass (the
    direction used to sample a variational posterior) is one network pass; the inverse
    is sequential: ``dim`` passes, each fixing one more coordinate in the order.
    Stack IAFs with alternating ``order`` (e.g. ``None`` and ``"reverse"``).

    Parameters
    ----------
    dim : int
    hidden_sizes : sequence of int
        Of the MADE.
    order : None, "reverse" or permutation of ``range(dim)``
    activation : str or callable
    forget_bias : float
        Added to ``s``; positive values start the flow near the identity (the paper
        suggests +1 or +2).
    dtype : float32 (default) or float64
    rng : int or numpy.random.Generator

    Attributes
    ----------
    made : MADE
    """

    def __init__(self, dim, hidden_sizes=(64,), order=None, activation="elu",
                 forget_bias=1.0, dtype=np.float32, rng=None):
        self.dim = _dim("IAF", dim)
        self.made = MADE(self.dim, hidden_sizes, 2, order, activation, dtype, rng)
        self.forget_bias = float(forget_bias)

    def _gate(self, x):
        out = self.made(x)
        d = self.dim
        s = out[..., d:] + self.forget_bias
        return out[..., :d], ad.sigmoid(s), ad.log_sigmoid(s)

    def _forward(self, x):
        m, sigma, log_sigma = self._gate(x)
        return sigma * x + (1.0 - sigma) * m, ad.sum(log_sigma, axis=-1)

    def _inverse(self, y):
        # After pass k the first k coordinates in the MADE order are exact, because
        # (m, sigma)_j read only coordinates before j: dim passes give x exactly.
        x = y
        for _ in range(self.dim):
            m, sigma, log_sigma = self._gate(x)
            x = (y - (1.0 - sigma) * m) / sigma
        return x, -ad.sum(log_sigma, axis=-1)

    def extra_repr(self):
        return f"dim={self.dim}, forget_bias={self.forget_bias}"


# ----------------------------------------------------------------------------- couplings

def checkerboard_mask(dim, parity=0, dtype=np.float32):
    """The alternating 0/1 mask ``[(i + parity) % 2 == 0 for i in range(dim)]``.

    Ones mark the coordinates a coupling layer keeps (and conditions on).
    """
    return ((np.arange(_dim("checkerboard_mask", dim)) + int(parity)) % 2 == 0).astype(dtype)


def _coupling_mask(owner, dim, mask, parity, dtype):
    if mask is None:
        return checkerboard_mask(dim, parity, dtype)
    mask = np.asarray(mask)
    if mask.shape != (dim,) or not np.all((mask == 0) | (mask == 1)):
        raise ValueError(f"{owner}: mask must be a 0/1 vector of shape ({dim},), got "
                         f"shape {mask.shape}")
    if mask.all() or not mask.any():
        raise ValueError(f"{owner}: mask must keep some coordinates and transform others, "
                         f"got {mask.tolist()}")
    return mask.astype(dtype)


class _Coupling(Flow):
    """Shared constructor of the coupling layers: mask plus conditioner MLP."""

    _heads = 1

    def __init__(self, dim, hidden_sizes, mask, parity, activation, dtype, rng):
        name = type(self).__name__
        self.dim = _dim(name, dim, least=2)
        dtype = _float_dtype(name, dtype)
        self.mask = _coupling_mask(name, self.dim, mask, parity, dtype)
        self.net = MLP([self.dim, *hidden_sizes, self._heads * self.dim], activation=activation,
                       dtype=dtype, rng=_rng(rng))

    def _net(self, x):
        """The conditioner on the kept coordinates; ``(mask, 1 - mask, net(mask * x))``."""
        b = _on(self.mask, x)
        return b, 1.0 - b, self.net(x * b)


class AffineCoupling(_Coupling):
    """RealNVP affine coupling layer (Dinh, Sohl-Dickstein & Bengio, 2017).

    With the binary ``mask`` b: ``[s_raw, t] = net(b * x)``, ``s = (1 - b) scale tanh(s_raw)``,
    ``y = b * x + (1 - b) * (x * exp(s) + t)``, ``log|det dy/dx| = sum s``. The tanh
    bounds the log-scale (the "tanh with a learned scale" of the paper's section 4.1),
    which keeps early training stable. Alternate the mask between layers
    (``parity=0, 1, 0, ...``; :func:`real_nvp` does).

    Parameters
    ----------
    dim : int
        At least 2.
    hidden_sizes : sequence of int
        Of the conditioner MLP ``[dim, *hidden_sizes, 2 dim]``.
    mask : array of shape ``[dim]``, optional
        1 marks kept coordinates; default ``checkerboard_mask(dim, parity)``.
    parity : int
    activation : str or callable
    dtype : float32 (default) or float64
    rng : int or numpy.random.Generator

    Attributes
    ----------
    net : zsarray.nn.MLP
    scale : Tensor, shape ``[dim]``
        The learned scale of ``tanh`` (initially 1).
    """

    _heads = 2

    def __init__(self, dim, hidden_sizes=(64, 64), mask=None, parity=0, activation="relu",
                 dtype=np.float32, rng=None):
        super().__init__(dim, hidden_sizes, mask, parity, activation, dtype, rng)
        self.scale = _param(np.ones(self.dim, dtype=self.mask.dtype))

    def _shift_log_scale(self, x):
        b, nb, h = self._net(x)
        d = self.dim
        return h[..., d:] * nb, ad.tanh(h[..., :d]) * self.scale * nb

    def _forward(self, x):
        t, s = self._shift_log_scale(x)
        return x * ad.exp(s) + t, ad.sum(s, axis=-1)

    def _inverse(self, y):
        t, s = self._shift_log_scale(y)        # b * y = b * x: the same conditioner input
        return (y - t) * ad.exp(-s), -ad.sum(s, axis=-1)


class AdditiveCoupling(_Coupling):
    """NICE additive coupling layer (Dinh, Krueger & Bengio, 2015).

    ``y = x + (1 - b) * net(b * x)``: volume preserving, ``log|det| = 0``. Follow a stack
    of them with a :class:`Scaling` layer (:func:`nice` does).

    Parameters
    ----------
    dim : int
        At least 2.
    hidden_sizes : sequence of int
        Of the coupling MLP ``[dim, *hidden_sizes, dim]``.
    mask, parity, activation, dtype, rng
        As :class:`AffineCoupling`.
    """

    def __init__(self, dim, hidden_sizes=(64, 64), mask=None, parity=0, activation="relu",
                 dtype=np.float32, rng=None):
        super().__init__(dim, hidden_sizes, mask, parity, activation, dtype, rng)

    def _forward(self, x):
        _, nb, h = self._net(x)
        return x + h * nb, _zeros(x)

    def _inverse(self, y):
        _, nb, h = self._net(y)
        return y - h * nb, _zeros(y)


class Scaling(Flow):
    """NICE's diagonal scaling layer ``y = exp(log_scale) * x`` (Dinh et al., 2015, 3.3).

    ``log|det dy/dx| = sum log_scale`` (the same for every batch point).

    Parameters
    ----------
    dim : int
    dtype : float32 (default) or float64
    rng : int or numpy.random.Generator, optional
        ``None`` starts at the identity (``log_scale = 0``); a seed or Generator draws
        ``log_scale ~ N(0, 0.1^2)``.

    Attributes
    ----------
    log_scale : Tensor, shape ``[dim]``
    """

    def __init__(self, dim, dtype=np.float32, rng=None):
        self.dim = _dim("Scaling", dim)
        dtype = _float_dtype("Scaling", dtype)
        s = (np.zeros(self.dim, dtype) if rng is None
             else init.normal(self.dim, init._rng(rng), std=0.1, dtype=dtype))
        self.log_scale = _param(s)

    def _ld(self, x):
        return _zeros(x) + ad.sum(self.log_scale)

    def _forward(self, x):
        return x * ad.exp(self.log_scale), self._ld(x)

    def _inverse(self, y):
        return y * ad.exp(-self.log_scale), -self._ld(y)


# ----------------------------------------------------------------------------- composition

def _event_sum(log_det, x):
    """Sum an elementwise log-det (shape of ``x``, as :mod:`zsarray.transforms` gives for
    elementwise transforms) over the last axis; leave a ``[...]`` log-det as it is."""
    if type(log_det) is Tensor and log_det.ndim == x.ndim and x.ndim > 0:
        return ad.sum(log_det, axis=-1)
    return log_det


class Sequential(Flow):
    """Compose flows: ``forward`` applies them in order and sums the log-dets;
    ``inverse`` applies their inverses in reverse order.

    Parameters
    ----------
    *flows : Flow, or objects with ``forward``/``inverse`` (e.g. :mod:`zsarray.transforms`)
        Or a single list of them. Elementwise transforms, whose log-det has the shape of
        ``x``, have it summed over the last axis.

    Raises
    ------
    ValueError
        When no flow is given or two flows have different ``dim`` (names them).
    TypeError
        When an element lacks ``forward``/``inverse``.
    """

    def __init__(self, *flows):
        if len(flows) == 1 and isinstance(flows[0], (list, tuple)):
            flows = tuple(flows[0])
        if not flows:
            raise ValueError("Sequential: needs at least one flow")
        dim = None
        for i, f in enumerate(flows):
            if not (callable(getattr(f, "forward", None)) and callable(getattr(f, "inverse", None))):
                raise TypeError(f"Sequential: flows[{i}] ({type(f).__name__}) must have "
                                f"forward(x) -> (y, log_det) and inverse(y) -> (x, log_det)")
            d = getattr(f, "dim", None)
            if d is not None:
                if dim is not None and d != dim[1]:
                    raise ValueError(f"Sequential: flows[{i}] ({type(f).__name__}) has dim {d} "
                                     f"but flows[{dim[0]}] has dim {dim[1]}; all flows must "
                                     f"share one dim")
                dim = dim or (i, d)
        self.dim = None if dim is None else dim[1]
        self.flows = list(flows)

    def _check(self, x, method, argname):
        if self.dim is None:
            return x if type(x) is Tensor else ad.tensor(x)
        return super()._check(x, method, argname)

    def _forward(self, x):
        total = None
        for f in self.flows:
            x, ld = f.forward(x)
            ld = _event_sum(ld, x)
            total = ld if total is None else total + ld
        return x, total

    def _inverse(self, y):
        total = None
        for f in reversed(self.flows):
            y, ld = f.inverse(y)
            ld = _event_sum(ld, y)
            total = ld if total is None else total + ld
        return y, total

    def __len__(self):
        return len(self.flows)

    def __getitem__(self, i):
        return self.flows[i]

    def __iter__(self):
        return iter(self.flows)


#: Alias of :class:`Sequential`.
Compose = Sequential


def real_nvp(dim, n_couplings=4, hidden_sizes=(64, 64), activation="relu", dtype=np.float32,
             rng=None):
    """A RealNVP stack: ``n_couplings`` :class:`AffineCoupling` layers with alternating
    checkerboard masks (Dinh et al., 2017), as a :class:`Sequential`.

    One generator ``rng`` initializes all layers in order.
    """
    rng = _rng(rng)
    return Sequential([AffineCoupling(dim, hidden_sizes, parity=i % 2, activation=activation,
                                      dtype=dtype, rng=rng) for i in range(int(n_couplings))])


def nice(dim, n_couplings=4, hidden_sizes=(64, 64), activation="relu", dtype=np.float32,
         rng=None):
    """A NICE stack: ``n_couplings`` :class:`AdditiveCoupling` layers with alternating
    masks, then a :class:`Scaling` layer (Dinh et al., 2015), as a :class:`Sequential`.

    The scaling layer starts at the identity.
    """
    rng = _rng(rng)
    layers = [AdditiveCoupling(dim, hidden_sizes, parity=i % 2, activation=activation,
                               dtype=dtype, rng=rng) for i in range(int(n_couplings))]
    return Sequential(layers + [Scaling(dim, dtype=dtype)])
