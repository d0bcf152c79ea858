"""Demo section: the ELBO of a toy VAE head (pygenmod.elbo), checked against NumPy."""

import numpy as np

import pygenmod
from pygenmod import elbo as E
from pygenmod import sampling

TITLE = "The VAE evidence lower bound of a toy VAE head (pygenmod.elbo)"


def _reference(x, logits, mu, logvar, beta):
    """The same ELBO in float64 NumPy: mean over samples of the Bernoulli log-likelihood minus
    beta times the closed-form KL to N(0, I)."""
    ll = (x * logits - np.logaddexp(0.0, logits)).sum(-1).mean(0)
    kl = 0.5 * (np.exp(logvar) + mu**2 - 1.0 - logvar).sum(-1)
    return ll - beta * kl, ll, kl


def run(report) -> None:
    rng = np.random.default_rng(0)
    B, D, X, S, beta = 512, 8, 64, 4, 0.5
    x = (rng.uniform(size=(B, X)) < 0.3).astype(np.float64)  # binary "images"
    W_enc = rng.standard_normal((X, 2 * D)) / np.sqrt(X)  # a linear encoder and decoder
    W_dec = rng.standard_normal((D, X)) / np.sqrt(D)
    h = x @ W_enc
    mu, logvar = h[:, :D], 0.5 * np.tanh(h[:, D:])
    z = sampling.rsample_normal(mu, logvar, seed=1, n_samples=S)  # (S, B, D): pygenmod's sampler
    logits = z @ W_dec  # the decoder runs on z between the sampler and the ELBO

    report.line(f"x (B={B}, X={X}) Bernoulli, latent D={D}, S={S} samples of z, beta={beta}")
    want = _reference(x, logits, mu, logvar, beta)
    rows = []
    for name, b in pygenmod.backends().items():
        if not b["available"] or name == "cuda":
            continue
        with pygenmod.use_backend(name):
            for dt in (np.float32, np.float64):
                args = [a.astype(dt) for a in (x, logits, mu, logvar)]
                E.elbo_terms(*args, likelihood="bernoulli", beta=beta)  # warm-up (JIT / first touch)
                with report.timed(f"{name} {np.dtype(dt).name}: elbo_terms (after a warm-up call)"):
                    t = E.elbo_terms(*args, likelihood="bernoulli", beta=beta)
                err = max(float(np.abs(np.asarray(g, np.float64) - w).max()) for g, w in zip(t, want))
                rows.append(
                    (
                        name,
                        np.dtype(dt).name,
                        f"{float(np.mean(t.elbo)):.4f}",
                        f"{float(np.mean(t.log_lik)):.4f}",
                        f"{float(np.mean(t.kl)):.4f}",
                        f"{err:.1e}",
                    )
                )
    rows.append(
        ("NumPy float64", "", f"{want[0].mean():.4f}", f"{want[1].mean():.4f}", f"{want[2].mean():.4f}", "reference")
    )
    report.table(("backend", "dtype", "mean ELBO", "mean log p(x|z)", "mean KL", "max |diff|"), rows)

    report.line()
    report.line("Gradient w.r.t. the encoder and decoder outputs (fused backward) vs central differences")
    g = E.elbo_backward(x, logits, mu, logvar, likelihood="bernoulli", beta=beta, grad_elbo=np.ones(B))
    rows = []
    for name, arr, grad, idx in (
        ("mu", mu, g.mu, (3, 1)),
        ("logvar", logvar, g.scale, (5, 2)),
        ("logits", logits, g.dec, (1, 7, 9)),
    ):
        hstep = 1e-6
        up, dn = arr.copy(), arr.copy()
        up[idx] += hstep
        dn[idx] -= hstep
        call = {
            "mu": lambda a: _reference(x, logits, a, logvar, beta),
            "logvar": lambda a: _reference(x, logits, mu, a, beta),
            "logits": lambda a: _reference(x, a, mu, logvar, beta),
        }[name]
        fd = (call(up)[0].sum() - call(dn)[0].sum()) / (2 * hstep)
        rows.append((f"d ELBO / d {name}{list(idx)}", f"{float(grad[idx]):+.8f}", f"{fd:+.8f}"))
    report.table(("", "elbo_backward", "finite difference"), rows)
