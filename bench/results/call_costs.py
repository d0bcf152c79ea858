"""Per-call cost of every public compute function of pygenmod at tiny sizes (issue 11: the fixed
cost of every public function at tiny sizes), a census: one row per function, called with default
options on plain NumPy float64 inputs (B=1 or a single problem; a few points, states, actions or
dims) on the default (cpu) backend. Wall time per call, median of the repeats; seeded functions get
seed=0. A call that raises shows the exception in its row instead of a time.

Usage: PYTHONPATH=$PWD python bench/results/call_costs.py [--repeats 9] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pygenmod import (
    adversarial,
    categorical,
    cem,
    elbo,
    gmm,
    goals,
    mcts,
    mdp,
    returns,
    sampling,
    spatial,
    trpo,
)
from pygenmod import random as prandom

THRESHOLD_US = 20.0


def spd(rng, B, n):
    """B symmetric positive definite n x n matrices."""
    A = rng.standard_normal((B, n, n))
    return A @ A.transpose(0, 2, 1) + n * np.eye(n)


def tril(rng, B, D):
    """B lower-triangular scale factors with a positive diagonal."""
    return np.linalg.cholesky(spd(rng, B, D))


# ------------------------------------------------------------------------------ families
def gmm_rows():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 2))
    resp = rng.dirichlet(np.ones(2), 8)
    p = gmm.m_step(X, resp)
    x_in = rng.standard_normal((1, 1))
    size = "N=8, D=2, K=2, full"
    return [
        ("e_step", size, lambda: gmm.e_step(X, p)),
        ("m_step", size, lambda: gmm.m_step(X, resp)),
        ("em_step", size, lambda: gmm.em_step(X, p)),
        ("log_prob", size, lambda: gmm.log_prob(X, p)),
        ("predict", size, lambda: gmm.predict(X, p)),
        ("predict_proba", size, lambda: gmm.predict_proba(X, p)),
        ("bic", size, lambda: gmm.bic(X, p)),
        ("aic", size, lambda: gmm.aic(X, p)),
        ("sample", "4 samples, D=2, K=2", lambda: gmm.sample(p, 4, seed=0)),
        ("gmr", "Q=1, in_dims=[0], D=2, K=2", lambda: gmm.gmr(p, x_in, [0])),
        ("gmr_sample", "Q=1, 4 samples, D=2, K=2", lambda: gmm.gmr_sample(p, x_in, [0], 4, seed=0)),
        ("fit", size + ", max_iter=5", lambda: gmm.fit(X, 2, max_iter=5, seed=0)),
    ]


def spatial_rows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 8, 8))
    gk = rng.standard_normal((1, 4, 2))
    size = "B=1, C=4, H=W=8"
    return [
        ("spatial_softmax", size, lambda: spatial.spatial_softmax(x)),
        ("spatial_softmax_forward", size, lambda: spatial.spatial_softmax_forward(x)),
        ("spatial_softmax_backward", size, lambda: spatial.spatial_softmax_backward(x, grad_keypoints=gk)),
        ("spatial_softmax_vjp", size, lambda: spatial.spatial_softmax_vjp(x, 1.0, gk)),
    ]


def sampling_rows():
    rng = np.random.default_rng(0)
    mu, lv, x, g = rng.standard_normal((4, 1, 4))
    L = tril(rng, 1, 4)
    g1 = np.ones(1)
    logits = rng.standard_normal((1, 4))
    size = "B=1, D=4"
    return [
        ("rsample_normal", size, lambda: sampling.rsample_normal(mu, lv, seed=0)),
        ("rsample_normal_backward", size, lambda: sampling.rsample_normal_backward(mu, lv, grad_z=g, seed=0)),
        ("rsample_mvn", size, lambda: sampling.rsample_mvn(mu, L, seed=0)),
        ("rsample_mvn_backward", size, lambda: sampling.rsample_mvn_backward(mu, L, grad_z=g, seed=0)),
        ("normal_log_prob", size, lambda: sampling.normal_log_prob(x, mu, lv)),
        ("normal_log_prob_backward", size, lambda: sampling.normal_log_prob_backward(x, mu, lv, grad_log_prob=g1)),
        ("mvn_log_prob", size, lambda: sampling.mvn_log_prob(x, mu, L)),
        ("mvn_log_prob_backward", size, lambda: sampling.mvn_log_prob_backward(x, mu, L, grad_log_prob=g1)),
        ("kl_normal", size, lambda: sampling.kl_normal(mu, lv)),
        ("kl_normal_backward", size, lambda: sampling.kl_normal_backward(mu, lv, grad_kl=g1)),
        ("kl_mvn", size, lambda: sampling.kl_mvn(mu, L)),
        ("kl_mvn_backward", size, lambda: sampling.kl_mvn_backward(mu, L, grad_kl=g1)),
        ("mahalanobis", size, lambda: sampling.mahalanobis(x, mu, L)),
        ("mahalanobis_backward", size, lambda: sampling.mahalanobis_backward(x, mu, L, grad_mahalanobis=g1)),
        ("gumbel_softmax", "B=1, N=4", lambda: sampling.gumbel_softmax(logits, seed=0)),
        ("gumbel_softmax_backward", "B=1, N=4", lambda: sampling.gumbel_softmax_backward(logits, grad_y=g, seed=0)),
        ("normal_head", size, lambda: sampling.normal_head(mu, lv, seed=0)),
        ("normal_head_backward", size, lambda: sampling.normal_head_backward(mu, lv, grad_z=g, seed=0)),
        ("mvn_head", size, lambda: sampling.mvn_head(mu, L, seed=0)),
        ("mvn_head_backward", size, lambda: sampling.mvn_head_backward(mu, L, grad_z=g, seed=0)),
    ]


def random_rows():
    return [
        ("normal", "4 values", lambda: prandom.normal(0, 4)),
        ("uniform", "4 values", lambda: prandom.uniform(0, 4)),
        ("gumbel", "4 values", lambda: prandom.gumbel(0, 4)),
        ("bits", "4 values", lambda: prandom.bits(0, 4)),
    ]


def mcts_rows():
    rng = np.random.default_rng(0)
    S, A = 4, 3
    model = mcts.tabular_model(
        rng.integers(0, S, (S, A)), rng.standard_normal((S, A)), rng.standard_normal((S, A)), rng.standard_normal(S)
    )
    root = np.array([0])
    size = "B=1, S=4, A=3, 8 simulations"
    return [
        ("muzero_policy", size, lambda: mcts.muzero_policy(root, model, 8, seed=0)),
        ("gumbel_muzero_policy", size, lambda: mcts.gumbel_muzero_policy(root, model, 8, seed=0)),
    ]


def mdp_rows():
    P, R = mdp.random_mdp(4, 2, seed=0)
    V = np.random.default_rng(1).standard_normal(4)
    pi = np.zeros(4, np.int64)
    size = "S=4, A=2, random_mdp"
    return [
        ("bellman_backup", size, lambda: mdp.bellman_backup(P, R, V, 0.95)),
        ("value_iteration", size + ", gamma=0.9", lambda: mdp.value_iteration(P, R, 0.9)),
        ("policy_iteration", size + ", gamma=0.9", lambda: mdp.policy_iteration(P, R, 0.9)),
        ("modified_policy_iteration", size + ", gamma=0.9", lambda: mdp.modified_policy_iteration(P, R, 0.9)),
        ("policy_evaluation", size + ", gamma=0.9", lambda: mdp.policy_evaluation(P, R, 0.9, pi)),
    ]


def returns_rows():
    rng = np.random.default_rng(0)
    r, v = rng.standard_normal((2, 8, 1))
    size = "T=8, B=1"
    return [
        ("gae", size, lambda: returns.gae(r, v)),
        ("discounted_returns", size, lambda: returns.discounted_returns(r)),
        ("lambda_returns", size, lambda: returns.lambda_returns(r, v)),
    ]


def cem_rows():
    rng = np.random.default_rng(0)
    mean, scale = np.zeros((1, 2)), np.ones((1, 2))
    samples = rng.standard_normal((1, 8, 2))
    ret = -(samples**2).sum(-1)
    objective = lambda X: -(X**2).sum(-1)  # noqa: E731
    return [
        ("top_k", "B=1, N=8, k=2", lambda: cem.top_k(ret, 2)),
        ("cem_step", "B=1, N=8, D=2, 2 elites", lambda: cem.cem_step(mean, scale, samples, ret, 2)),
        (
            "cem_optimize",
            "B=1, N=8, D=2, 2 elites, 3 iters",
            lambda: cem.cem_optimize(objective, mean, scale, n_samples=8, n_elite=2, n_iter=3, seed=0),
        ),
    ]


def elbo_rows():
    rng = np.random.default_rng(0)
    x, dec = rng.standard_normal((2, 1, 4))
    mu, lv = rng.standard_normal((2, 1, 2))
    size = "B=1, x D=4, z D=2, gaussian"
    return [
        ("elbo", size, lambda: elbo.elbo(x, dec, mu, lv)),
        ("elbo_terms", size, lambda: elbo.elbo_terms(x, dec, mu, lv)),
        ("elbo_backward", size, lambda: elbo.elbo_backward(x, dec, mu, lv)),
    ]


def categorical_rows():
    rng = np.random.default_rng(0)
    p, q = rng.standard_normal((2, 1, 4))
    w = rng.dirichlet(np.ones(4), 1)
    a = np.array([1])
    g1 = np.ones(1)
    size = "B=1, N=4"
    return [
        ("log_prob", size, lambda: categorical.log_prob(p, a)),
        ("log_prob_backward", size, lambda: categorical.log_prob_backward(p, a, grad_log_prob=g1)),
        ("entropy", size, lambda: categorical.entropy(p)),
        ("entropy_backward", size, lambda: categorical.entropy_backward(p, grad_entropy=g1)),
        ("kl", size, lambda: categorical.kl(p, q)),
        ("kl_backward", size, lambda: categorical.kl_backward(p, q, grad_kl=g1)),
        ("policy_target_kl", size, lambda: categorical.policy_target_kl(w, p)),
        ("policy_target_kl_backward", size, lambda: categorical.policy_target_kl_backward(w, p, grad_kl=g1)),
        ("pg_loss", "B=1, N=4 samples", lambda: categorical.pg_loss(p, q)),
    ]


def adversarial_rows():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((2, 4))
    rates = rng.uniform(0, 1, 4)
    size = "N=4 logits"
    return [
        ("gan_discriminator_loss", size, lambda: adversarial.gan_discriminator_loss(real, fake)),
        ("gan_generator_loss", size, lambda: adversarial.gan_generator_loss(fake)),
        ("gan_value", size, lambda: adversarial.gan_value(real, fake)),
        ("gail_discriminator_loss", size, lambda: adversarial.gail_discriminator_loss(real, fake)),
        ("gail_reward", size, lambda: adversarial.gail_reward(fake)),
        ("lsgan_discriminator_loss", size, lambda: adversarial.lsgan_discriminator_loss(real, fake)),
        ("lsgan_generator_loss", size, lambda: adversarial.lsgan_generator_loss(fake)),
        ("label_goals", "N=4 goals", lambda: adversarial.label_goals(rates)),
    ]


def trpo_rows():
    rng = np.random.default_rng(0)
    F = spd(rng, 1, 4)
    g, x0 = rng.standard_normal((2, 1, 4))
    fvp = lambda V: np.einsum("bij,bj->bi", F, V)  # noqa: E731
    surrogate = lambda X: (g * (X - x0)).sum(-1)  # noqa: E731
    kl = lambda X: 0.5 * ((X - x0) * fvp(X - x0)).sum(-1)  # noqa: E731
    full = 0.1 * np.linalg.solve(F, g[..., None])[..., 0]
    size = "B=1, n=4"
    return [
        ("conjugate_gradient", size + ", max_iter=10", lambda: trpo.conjugate_gradient(fvp, g)),
        ("line_search", size, lambda: trpo.line_search(surrogate, kl, x0, full, max_kl=0.01)),
        ("natural_step_size", size, lambda: trpo.natural_step_size(g, fvp(g), 0.01)),
        ("trpo_step", size, lambda: trpo.trpo_step(x0, g, fvp, surrogate, kl)),
    ]


def goals_rows():
    rng = np.random.default_rng(0)
    states = rng.uniform(-1, 1, (1, 2, 3, 2))
    gl = rng.uniform(-1, 1, (1, 2))
    mu, z = rng.standard_normal((2, 1, 2))
    lv = rng.standard_normal((1, 2))
    size = "1 goal, 2 rollouts, T=3, D=2"
    return [
        ("goal_reward", size, lambda: goals.goal_reward(states, gl, epsilon=0.5)),
        ("goal_success", size, lambda: goals.goal_success(states, gl, epsilon=0.5)),
        ("goal_returns", size, lambda: goals.goal_returns(states, gl, epsilon=0.5)),
        ("goal_labels", size, lambda: goals.goal_labels(states, gl, epsilon=0.5)),
        ("rig_reward", "B=1, D=2", lambda: goals.rig_reward(mu, z)),
        ("rig_posterior_reward", "B=1, D=2, logvar", lambda: goals.rig_posterior_reward(mu, z, logvar=lv)),
    ]


FAMILIES = {
    "adversarial": adversarial_rows,
    "categorical": categorical_rows,
    "cem": cem_rows,
    "elbo": elbo_rows,
    "gmm": gmm_rows,
    "goals": goals_rows,
    "mcts": mcts_rows,
    "mdp": mdp_rows,
    "random": random_rows,
    "returns": returns_rows,
    "sampling": sampling_rows,
    "spatial": spatial_rows,
    "trpo": trpo_rows,
}


def reraise(e):
    def f():
        raise e

    return f


def rows():
    """(family, name, tiny input, callable) for every function, sorted by family."""
    out = []
    for family in sorted(FAMILIES):
        try:
            out += [(family, name, size, f) for name, size, f in FAMILIES[family]()]
        except Exception as e:  # the inputs could not be built: one row says why
            out.append((family, "(inputs)", "", reraise(e)))
    return out


# ------------------------------------------------------------------------------ timing
def per_call_us(f, repeats, calls):
    """Median over the repeats of the wall time per call (us), after one warm-up call."""
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        times.append((time.perf_counter() - t) / calls)
    return statistics.median(times) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--calls", type=int, default=200)
    a = ap.parse_args()
    print("| family | function | tiny input | us per call |")
    print("|---|---|---|---:|")
    above, failed, n = [], [], 0
    for family, name, size, f in rows():
        n += 1
        try:
            us = per_call_us(f, a.repeats, a.calls)
        except Exception as e:
            failed.append(name)
            cell = f"{type(e).__name__}: {e}".replace("|", "/").replace("\n", " ")
            print(f"| {family} | {name} | {size} | {cell} |", flush=True)
            continue
        if us > THRESHOLD_US:
            above.append(name)
        print(f"| {family} | {name} | {size} | {us:.1f} |", flush=True)
    print()
    print(f"{len(above)} of {n} functions above {THRESHOLD_US:g} us per call ({len(failed)} could not be called).")


if __name__ == "__main__":
    main()
