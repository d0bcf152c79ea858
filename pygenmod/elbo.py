"""The VAE evidence lower bound (ELBO), fused per row, forward and backward.

``elbo = mean_s log p(x | dec_s) - beta * KL(q(z | x) || p(z))`` per row (thesis eq. 1.1),
with the KL in closed form. The reparameterized sample is drawn before this call
(:func:`pygenmod.sampling.rsample_normal` / :func:`~pygenmod.sampling.rsample_mvn`, with
``n_samples=S``) and the decoder runs on it; this call takes the encoder's outputs, the data
and the decoder's outputs, and returns the per-row ELBO (:func:`elbo`), its terms
(:func:`elbo_terms`) or the gradients with respect to the encoder's and the decoder's outputs
(:func:`elbo_backward`; the path through z is the sampler's own backward, or autograd's).

Shapes (docs/elbo.md): ``mu`` (B, D); the posterior's scale as one of ``logvar``, ``log_std``,
``std`` (B, D) or ``scale_tril`` (B, D, D) / shared (D, D); ``x`` (B, *F); the decoder's
outputs ``dec`` (B, *F) for one sample of z or (S, B, *F) for S samples (their mean is taken),
with a trailing category axis K for the categorical likelihood. A single row without the batch
axis (``mu`` (D,), ``x`` (*F)) is accepted.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _fast
from . import _validate as val
from . import sampling as _s
from ._arrays import broadcast_contiguous, is_device, new_output, output_like, returner, xp_of
from ._dispatch import kernel
from ._typing import Array, ArrayLike, Likelihood

LIKELIHOODS = {"gaussian": 0, "bernoulli": 1, "categorical": 2}


class Terms(NamedTuple):
    """Output of :func:`elbo_terms`, each (B,)."""

    elbo: object  #: log_lik - beta * kl
    log_lik: object  #: the reconstruction term, mean over the samples of log p(x | dec_s)
    kl: object  #: KL(q(z | x) || p(z)), in closed form


class ElboGrads(NamedTuple):
    """Output of :func:`elbo_backward`: the gradient for each input, shaped like it (None for
    an input not given or not differentiated, such as a fixed decoder scale)."""

    dec: object
    mu: object
    scale: object  #: w.r.t. the posterior's scale argument (logvar, log_std, std or scale_tril)
    dec_scale: object  #: w.r.t. a learned decoder scale (dec_logvar, dec_log_std or dec_std)
    prior_mu: object
    prior_scale: object


class _Args(NamedTuple):
    kargs: tuple  #: the kernel's input arguments
    back: object
    one: bool
    dec_shape: tuple
    shared_tril: bool
    learned: bool
    prior: tuple  #: (prior_mu shape or None, prior scale shape or None) as given
    mvn_prior: tuple  #: (prior_mu, prior_scale_tril) for a full covariance with a given prior, else None


def _opt1(named, what):
    given = [(n, v) for n, v in named if v is not None]
    if len(given) > 1:
        raise TypeError(f"give at most one of {', '.join(n for n, _ in named)} ({what})")
    return given[0] if given else (None, None)


def _prior_arr(v, name, m):
    """A prior parameter (scalar, (D,) or (B, D)) as a (B, D) array; size 0 when not given."""
    xp = xp_of(m)
    if v is None:
        return xp.empty(0, m.dtype)
    a = _s._like(v, name, m, finite=False)
    try:
        return broadcast_contiguous(xp, a, m.shape)
    except ValueError:
        raise ValueError(f"{name}: shape {tuple(a.shape)} does not broadcast to {tuple(m.shape)}") from None


def _beta(beta):
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
        raise TypeError(f"beta: expected a real number, got {type(beta).__name__}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta: expected a finite number >= 0, got {beta!r}")
    return float(beta)


def _args(
    x,
    dec,
    mu,
    logvar,
    log_std,
    std,
    scale_tril,
    prior_mu,
    prior_logvar,
    prior_log_std,
    prior_std,
    prior_scale_tril,
    likelihood,
    dec_logvar,
    dec_log_std,
    dec_std,
    beta,
    clamp,
) -> _Args:
    back = returner(mu)
    m = val.float_array(mu, "mu", ndim=(1, 2), finite=False)
    one = m.ndim == 1
    m = m.reshape(1, -1) if one else m
    xp, dt = xp_of(m), m.dtype
    B, D = m.shape
    lik = val.choice(likelihood, "likelihood", tuple(LIKELIHOODS))
    beta = _beta(beta)
    empty = xp.empty(0, dt)

    # posterior
    pname, p = _opt1(
        (("logvar", logvar), ("log_std", log_std), ("std", std), ("scale_tril", scale_tril)), "the posterior's scale"
    )
    if pname is None:
        raise TypeError("give one of logvar, log_std, std or scale_tril (the posterior's scale)")
    lo, hi = _s._clamp(clamp)
    shared_tril = False
    mvn_prior = None
    pm = pp = empty
    prior_shapes = (None, None)
    if pname == "scale_tril":
        if clamp is not None:
            raise TypeError("clamp: applies to a diagonal scale, not to scale_tril")
        L = _s._tril_arg(p, "scale_tril", m)
        shared_tril = L.shape[0] == 1 and (getattr(p, "ndim", 3) == 2 and not one)
        L = broadcast_contiguous(xp, L, (B, D, D))
        if prior_logvar is not None or prior_log_std is not None or prior_std is not None:
            raise TypeError("with scale_tril, give the prior as prior_mu / prior_scale_tril")
        if prior_mu is not None or prior_scale_tril is not None:
            mvn_prior = (prior_mu, prior_scale_tril)
        pk, kind = empty, 0
    else:
        if prior_scale_tril is not None:
            raise TypeError("prior_scale_tril: give the posterior as scale_tril too (or a diagonal prior scale)")
        pk = _s._like(p, pname, m, shape=m.shape)
        L, kind = empty, _s.KINDS[pname]
        qname, q = _opt1(
            (("prior_logvar", prior_logvar), ("prior_log_std", prior_log_std), ("prior_std", prior_std)),
            "the prior's scale",
        )
        if qname is not None and qname != "prior_" + pname:
            raise TypeError(f"the prior's scale must use the same parametrisation as {pname} ({'prior_' + pname})")
        pm = _prior_arr(prior_mu, "prior_mu", m)
        pp = _prior_arr(q, qname, m)
        prior_shapes = (None if prior_mu is None else np.shape(prior_mu), None if qname is None else np.shape(q))

    # data and decoder
    cat = lik == "categorical"
    d = val.float_array(dec, "dec", dtype=dt, xp=xp, finite=False)
    if cat:
        xa = val.int_array(x, "x", xp=xp, dtype=np.int32)
    else:
        xa = val.float_array(x, "x", dtype=dt, xp=xp, finite=False)
    if one:
        xa = xa.reshape((1,) + xa.shape)
    if xa.ndim < 1 or xa.shape[0] != B:
        raise ValueError(f"x: expected {B} rows (mu has shape {tuple(np.shape(mu))}), got shape {tuple(np.shape(x))}")
    F = xa.shape[1:]
    X = math.prod(F)
    if cat and d.ndim < 1:
        raise ValueError("dec: expected a last axis of categories")
    tail = F + ((d.shape[-1],) if cat else ())
    nl = d.ndim - len(tail)
    base = () if one else (B,)
    lead = d.shape[: max(nl, 0)]
    if nl < len(base) or tuple(d.shape[nl:]) != tail or lead not in (base, lead[:1] + base):
        want = ", ".join(map(str, base + tail))
        raise ValueError(
            f"dec: expected shape ({want}) or (S, {want}) to match x's features {tuple(F)}, got {tuple(d.shape)}"
        )
    multi = nl == len(base) + 1
    S = lead[0] if multi else 1
    if S < 1:
        raise ValueError("dec: expected at least one sample (S >= 1)")
    K = d.shape[-1] if cat else 1
    if cat and K < 1:
        raise ValueError("dec: the category axis is empty")
    d = xp.ascontiguousarray(d.reshape((S, B, X, K) if cat else (S, B, X)))
    xf = xp.ascontiguousarray(xa.reshape(B, X))
    if xf.size:
        if cat:
            if bool((xf < 0).any()) or bool((xf >= K).any()):
                raise ValueError(f"x: category indices must lie in [0, {K})")
        elif lik == "bernoulli":
            if not bool(((xf >= 0) & (xf <= 1)).all()):
                raise ValueError("x: the Bernoulli likelihood needs values in [0, 1] (NaN rejected)")
        elif not val._all_finite(xf):
            raise ValueError("x: contains NaN or infinity")

    # decoder scale (Gaussian only)
    dname, dsc = _opt1(
        (("dec_logvar", dec_logvar), ("dec_log_std", dec_log_std), ("dec_std", dec_std)), "the decoder's scale"
    )
    learned = False
    if lik != "gaussian":
        if dname is not None:
            raise TypeError(f"{dname}: only the Gaussian likelihood has a decoder scale")
        dp, dkind = empty, 0
    elif dname is None:  # unit variance: no scale array (the kernels' unit-variance row)
        dp, dkind = empty, 0
    else:
        dkind = _s.KINDS[dname[4:]]
        if isinstance(dsc, (int, float)) and not isinstance(dsc, bool):
            dp = xp.full(X, float(dsc), dt)
        else:
            a = val.float_array(dsc, dname, dtype=dt, xp=xp, finite=False)
            if a.shape == tuple(np.shape(dec)):  # (first: for one row and one sample dec's shape is F)
                dp, learned = xp.ascontiguousarray(a.reshape(S, B, X)), True
            elif a.ndim == 0:
                dp = xp.zeros(X, dt) + a.reshape(())
            elif a.shape == F:
                dp = xp.ascontiguousarray(a.reshape(X))
            else:
                raise ValueError(
                    f"{dname}: expected a scalar, shape {tuple(F)} (fixed) or dec's shape "
                    f"{tuple(np.shape(dec))} (learned), got {tuple(a.shape)}"
                )
    kargs = (
        m,
        pk,
        L,
        pm,
        pp,
        kind,
        lo,
        hi,
        LIKELIHOODS[lik],
        empty if cat else xf,
        xf if cat else xp.empty(0, np.int32),
        d,
        dp,
        dkind,
        0.0 if mvn_prior else beta,
    )
    return _Args(
        kargs,
        back,
        one,
        tuple(np.shape(dec)),
        shared_tril,
        learned,
        prior_shapes,
        mvn_prior + (beta, pname) if mvn_prior else None,
    )


def _check(status, pname):
    if not status.size or not bool(status.any()):
        return
    st = np.asarray(status.get() if hasattr(status, "get") else status)
    b = int(np.flatnonzero(st)[0])
    code = int(st[b])
    if code == 2:
        raise ValueError(f"scale_tril: matrix {b} is not lower triangular with a positive diagonal, or not finite")
    if code == 3:
        raise ValueError(f"dec: row {b} contains NaN or infinity (or the decoder's scale is not positive/finite)")
    raise ValueError(f"mu, {pname} or the prior: row {b} contains NaN or infinity or a non-positive std")


def _terms(a: _Args):
    m = a.kargs[0]
    xp, B = xp_of(m), m.shape[0]
    out, ll, kl = xp.empty(B, m.dtype), xp.empty(B, m.dtype), xp.empty(B, m.dtype)
    status = xp.empty(B, np.int32)
    if B:  # (with no rows a size-0 scale_tril would read as "not given")
        _, fn = kernel("elbo", "elbo", is_device(m))
        fn(*a.kargs, out, ll, kl, status)
    return out, ll, kl, status


def _fast_kernel(
    name,
    x,
    dec,
    mu,
    logvar,
    log_std,
    std,
    scale_tril,
    prior_mu,
    prior_logvar,
    prior_log_std,
    prior_std,
    prior_scale_tril,
    dec_logvar,
    dec_log_std,
    dec_std,
    clamp,
):
    """The cpu backend's one-call path ``name`` (pygenmod._fast) when the call may take it:
    NumPy arrays, a logvar, an N(0, I) prior, no decoder scale (unit variance: the binding also
    takes the Bernoulli likelihood) and no clamp; else None. The binding checks the rest."""
    if (
        type(mu) is np.ndarray
        and type(logvar) is np.ndarray
        and type(x) is np.ndarray
        and type(dec) is np.ndarray
        and log_std is None
        and std is None
        and scale_tril is None
        and prior_mu is None
        and prior_logvar is None
        and prior_log_std is None
        and prior_std is None
        and prior_scale_tril is None
        and dec_logvar is None
        and dec_log_std is None
        and dec_std is None
        and clamp is None
    ):
        return _fast.cpu_kernel("elbo", name)
    return None


def _pname(logvar, log_std, std, scale_tril):
    return (
        next(
            n
            for n, v in (("logvar", logvar), ("log_std", log_std), ("std", std), ("scale_tril", scale_tril))
            if v is not None
        )
        if any(v is not None for v in (logvar, log_std, std, scale_tril))
        else "scale"
    )


def _terms_general(
    x,
    dec,
    mu,
    logvar,
    log_std,
    std,
    scale_tril,
    prior_mu,
    prior_logvar,
    prior_log_std,
    prior_std,
    prior_scale_tril,
    likelihood,
    dec_logvar,
    dec_log_std,
    dec_std,
    beta,
    clamp,
):
    """elbo_terms's general path (every option, every backend)."""
    a = _args(
        x,
        dec,
        mu,
        logvar,
        log_std,
        std,
        scale_tril,
        prior_mu,
        prior_logvar,
        prior_log_std,
        prior_std,
        prior_scale_tril,
        likelihood,
        dec_logvar,
        dec_log_std,
        dec_std,
        beta,
        clamp,
    )
    out, ll, kl, status = _terms(a)
    _check(status, _pname(logvar, log_std, std, scale_tril))
    if a.mvn_prior is not None:  # a full covariance against a given prior: sampling.kl_mvn's solves
        pmu, pL, beta, _ = a.mvn_prior
        kl = xp_of(out).asarray(_s.kl_mvn(a.kargs[0], a.kargs[2], pmu, pL))
        out = ll - beta * kl
    if a.one:
        out, ll, kl = out[0], ll[0], kl[0]
    return Terms(a.back(out), a.back(ll), a.back(kl))


def elbo_terms(
    x: ArrayLike,
    dec: ArrayLike,
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    prior_mu: ArrayLike | None = None,
    prior_logvar: ArrayLike | None = None,
    prior_log_std: ArrayLike | None = None,
    prior_std: ArrayLike | None = None,
    prior_scale_tril: ArrayLike | None = None,
    likelihood: Likelihood = "gaussian",
    dec_logvar: ArrayLike | None = None,
    dec_log_std: ArrayLike | None = None,
    dec_std: ArrayLike | None = None,
    beta: float = 1.0,
    clamp: tuple[float | None, float | None] | None = None,
) -> Terms:
    """The ELBO and its two terms per row, as :class:`Terms` ``(elbo, log_lik, kl)``.

    ``likelihood``: ``"gaussian"`` (``dec`` the means; the decoder's scale ``dec_logvar``,
    ``dec_log_std`` or ``dec_std`` is a scalar or (*F) array for a fixed variance, dec's shape for
    a learned one, unit variance when none is given), ``"bernoulli"`` (``dec`` the logits; x in
    [0, 1], for x outside {0, 1} the binary cross-entropy) or ``"categorical"`` (``dec`` (..., K)
    logits; x integer indices in [0, K)). The prior is N(0, I) by default, or a diagonal Gaussian
    ``prior_mu`` / ``prior_<scale>`` (scalar, (D,) or (B, D), the posterior's parametrisation),
    or with ``scale_tril`` a full Gaussian ``prior_mu`` / ``prior_scale_tril``. ``beta`` weights
    the KL; ``clamp`` clamps the posterior's (and a diagonal prior's) scale parameter.
    """
    fast = _fast_kernel(
        "elbo_fast",
        x,
        dec,
        mu,
        logvar,
        log_std,
        std,
        scale_tril,
        prior_mu,
        prior_logvar,
        prior_log_std,
        prior_std,
        prior_scale_tril,
        dec_logvar,
        dec_log_std,
        dec_std,
        clamp,
    )
    t = None if fast is None else fast(x, dec, mu, logvar, likelihood, beta)
    if t is not None:
        return Terms(*t)
    return _terms_general(
        x,
        dec,
        mu,
        logvar,
        log_std,
        std,
        scale_tril,
        prior_mu,
        prior_logvar,
        prior_log_std,
        prior_std,
        prior_scale_tril,
        likelihood,
        dec_logvar,
        dec_log_std,
        dec_std,
        beta,
        clamp,
    )


def elbo(
    x: ArrayLike,
    dec: ArrayLike,
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    prior_mu: ArrayLike | None = None,
    prior_logvar: ArrayLike | None = None,
    prior_log_std: ArrayLike | None = None,
    prior_std: ArrayLike | None = None,
    prior_scale_tril: ArrayLike | None = None,
    likelihood: Likelihood = "gaussian",
    dec_logvar: ArrayLike | None = None,
    dec_log_std: ArrayLike | None = None,
    dec_std: ArrayLike | None = None,
    beta: float = 1.0,
    clamp: tuple[float | None, float | None] | None = None,
) -> Array:
    """Per-row ELBO ``mean_s log p(x | dec_s) - beta * KL(q || p)``, shape (B,) (see
    :func:`elbo_terms` for the arguments). Maximise it (minimise ``-elbo(...).mean()``)."""
    fast = _fast_kernel(
        "elbo_fast",
        x,
        dec,
        mu,
        logvar,
        log_std,
        std,
        scale_tril,
        prior_mu,
        prior_logvar,
        prior_log_std,
        prior_std,
        prior_scale_tril,
        dec_logvar,
        dec_log_std,
        dec_std,
        clamp,
    )
    t = None if fast is None else fast(x, dec, mu, logvar, likelihood, beta)
    if t is not None:
        return t[0]
    return _terms_general(
        x,
        dec,
        mu,
        logvar,
        log_std,
        std,
        scale_tril,
        prior_mu,
        prior_logvar,
        prior_log_std,
        prior_std,
        prior_scale_tril,
        likelihood,
        dec_logvar,
        dec_log_std,
        dec_std,
        beta,
        clamp,
    ).elbo


def _reduce_to(g, shape, xp):
    """Sum a (B, D) gradient down to the shape its (broadcast) input had."""
    if shape is None:
        return None
    shape = tuple(shape)
    while g.ndim > len(shape):
        g = g.sum(0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(i, keepdims=True)
    return xp.ascontiguousarray(g.reshape(shape))


def _upstream(g, name, B, m):
    if g is None:
        return xp_of(m).empty(0, m.dtype)
    a = val.float_array(g, name, dtype=m.dtype, xp=xp_of(m))
    a = xp_of(m).broadcast_to(a, (B,)) if a.ndim == 0 else a.reshape(-1)
    val.check_shape(a, name, (B,))
    return xp_of(m).ascontiguousarray(a)


def elbo_backward(
    x: ArrayLike,
    dec: ArrayLike,
    mu: ArrayLike,
    logvar: ArrayLike | None = None,
    *,
    log_std: ArrayLike | None = None,
    std: ArrayLike | None = None,
    scale_tril: ArrayLike | None = None,
    prior_mu: ArrayLike | None = None,
    prior_logvar: ArrayLike | None = None,
    prior_log_std: ArrayLike | None = None,
    prior_std: ArrayLike | None = None,
    prior_scale_tril: ArrayLike | None = None,
    likelihood: Likelihood = "gaussian",
    dec_logvar: ArrayLike | None = None,
    dec_log_std: ArrayLike | None = None,
    dec_std: ArrayLike | None = None,
    beta: float = 1.0,
    clamp: tuple[float | None, float | None] | None = None,
    grad_elbo: ArrayLike | None = None,
    grad_log_lik: ArrayLike | None = None,
    grad_kl: ArrayLike | None = None,
) -> ElboGrads:
    """VJP of :func:`elbo_terms` (and of :func:`elbo`, with only ``grad_elbo``): returns
    :class:`ElboGrads` ``(dec, mu, scale, dec_scale, prior_mu, prior_scale)``, each shaped like
    its input (None where not given or fixed). The upstream gradients are (B,) or scalars."""
    fast = _fast_kernel(
        "elbo_backward_fast",
        x,
        dec,
        mu,
        logvar,
        log_std,
        std,
        scale_tril,
        prior_mu,
        prior_logvar,
        prior_log_std,
        prior_std,
        prior_scale_tril,
        dec_logvar,
        dec_log_std,
        dec_std,
        clamp,
    )
    g = None if fast is None else fast(x, dec, mu, logvar, likelihood, beta, grad_elbo, grad_log_lik, grad_kl)
    if g is not None:
        return ElboGrads(*g, None, None, None)
    a = _args(
        x,
        dec,
        mu,
        logvar,
        log_std,
        std,
        scale_tril,
        prior_mu,
        prior_logvar,
        prior_log_std,
        prior_std,
        prior_scale_tril,
        likelihood,
        dec_logvar,
        dec_log_std,
        dec_std,
        beta,
        clamp,
    )
    m = a.kargs[0]
    xp, (B, D), dt = xp_of(m), m.shape, m.dtype
    ge, gl, gk = (
        _upstream(g, n, B, m)
        for g, n in ((grad_elbo, "grad_elbo"), (grad_log_lik, "grad_log_lik"), (grad_kl, "grad_kl"))
    )
    full = a.kargs[2].ndim == 3
    pm, pp = a.kargs[3], a.kargs[4]
    d, dp = a.kargs[11], a.kargs[12]
    dmu = new_output(xp, (B, D), dt)
    dsc = xp.empty(0, dt) if full else new_output(xp, (B, D), dt)
    dL = new_output(xp, (B, D, D), dt) if full else xp.empty(0, dt)
    dpm = new_output(xp, (B, D), dt) if pm.size else xp.empty(0, dt)
    dpp = new_output(xp, (B, D), dt) if pp.size else xp.empty(0, dt)
    ddec = output_like(d)
    ddp = output_like(dp) if a.learned else xp.empty(0, dt)
    kgk = gk if a.mvn_prior is None else xp.empty(0, dt)  # the given prior's KL: kl_mvn_backward below
    if B:
        _, fn = kernel("elbo", "elbo_backward", is_device(m))
        fn(*a.kargs, ge, gl, kgk, dmu, dsc, dL, dpm, dpp, ddec, ddp)
    g_prior_mu = g_prior_scale = None
    if a.mvn_prior is not None:
        pmu, pL, beta_, _ = a.mvn_prior
        gkl_total = (gk if gk.size else 0) - beta_ * (ge if ge.size else 0)
        gkl_total = broadcast_contiguous(xp, xp.asarray(gkl_total, dt), (B,))
        r = _s.kl_mvn_backward(m, a.kargs[2], pmu, pL, grad_kl=gkl_total)
        dmu = dmu + xp.asarray(r[0])
        dL = dL + xp.asarray(r[1])
        g_prior_mu = None if r[2] is None else _reduce_to(xp.asarray(r[2]), np.shape(pmu), xp)
        g_prior_scale = (
            None
            if r[3] is None
            else _reduce_to(
                xp.asarray(r[3]).reshape(-1, D, D).sum(0) if np.ndim(pL) == 2 else xp.asarray(r[3]), np.shape(pL), xp
            )
        )
    else:
        g_prior_mu = _reduce_to(dpm, a.prior[0], xp)
        g_prior_scale = _reduce_to(dpp, a.prior[1], xp)
    if full:
        g_scale = dL.sum(0) if a.shared_tril else (dL[0] if a.one else dL)
    else:
        g_scale = dsc[0] if a.one else dsc
    back = a.back
    return ElboGrads(
        back(ddec.reshape(a.dec_shape)),
        back(dmu[0] if a.one else dmu),
        back(g_scale),
        back(ddp.reshape(a.dec_shape)) if a.learned else None,
        None if g_prior_mu is None else back(g_prior_mu),
        None if g_prior_scale is None else back(g_prior_scale),
    )


__all__ = ["ElboGrads", "LIKELIHOODS", "Terms", "elbo", "elbo_backward", "elbo_terms"]
