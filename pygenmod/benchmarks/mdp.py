"""Workloads W6 (Bellman backups) and W7 (GAE) of WORKLOADS.md. Data is built lazily, inside setups.

W6a  dense S=2000, A=8, gamma=0.95: one sweep, and time to an epsilon-optimal V
W6b  B=1024 MDPs, S=64, A=4, 200 value-iteration sweeps each
W6c  sparse S=100_000, A=4, 8 successors, 100 sweeps
W6d  policy iteration on W6a's MDP
W7   GAE over (T=1024, B=4096) float32, gamma=0.99, lambda=0.95
"""

from __future__ import annotations

import functools

import numpy as np

from .runner import Candidate, Missing, Workload

GAMMA = 0.95
EPS = 1e-6  # W6a time-to-solution: every method is asked for an epsilon-optimal V


def _need(name):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        raise Missing(f"{name} not installed") from exc


@functools.lru_cache(maxsize=2)
def _dense(S, A, B=None, seed=0):
    from pygenmod import mdp

    return mdp.random_mdp(S, A, B, seed=seed)


@functools.lru_cache(maxsize=1)
def _sparse(S, A, k, seed=0):
    from pygenmod import mdp

    return mdp.random_mdp(S, A, successors=k, seed=seed)


@functools.lru_cache(maxsize=1)
def _gae_data(Tn, B, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.standard_normal((Tn, B)).astype(np.float32)
    v = rng.standard_normal((Tn, B)).astype(np.float32)
    d = (rng.random((Tn, B)) < 0.01).astype(np.float32)
    return r, v, d, rng.standard_normal(B).astype(np.float32)


# ------------------------------------------------------------------ W6a: dense
def _w6a(quick):
    S, A = (400, 8) if quick else (2000, 8)
    nbytes = S * A * S * 8

    def ours_sweep():
        from pygenmod import mdp

        P, R = _dense(S, A)
        V = np.zeros(S)
        V[:] = np.random.default_rng(1).standard_normal(S)
        return lambda: mdp.bellman_backup(P, R, V, GAMMA, check=False)

    def numpy_sweep():
        P, R = _dense(S, A)
        P2 = P.reshape(S * A, S)
        V = np.random.default_rng(1).standard_normal(S)
        return lambda: (R + GAMMA * (P2 @ V).reshape(S, A)).max(1)

    def qe_sweep():
        qe = _need("quantecon")
        P, R = _dense(S, A)
        ddp = qe.markov.DiscreteDP(R, P, GAMMA)
        V = np.random.default_rng(1).standard_normal(S)
        return lambda: ddp.bellman_operator(V)

    def mdptb_sweep():
        mdptoolbox = _need("mdptoolbox.mdp")
        from pygenmod import mdp

        P, R = _dense(S, A)
        Pt, Rt = mdp.to_mdptoolbox(P, R)
        vi = mdptoolbox.ValueIteration(Pt, Rt, GAMMA)
        V = np.random.default_rng(1).standard_normal(S)
        return lambda: vi._bellmanOperator(V)

    sweep = Workload(
        "W6a",
        f"one dense optimality sweep, S={S}, A={A}, float64 (P read once: {nbytes / 1e6:.0f} MB)",
        [
            Candidate("pygenmod bellman_backup", ours_sweep, is_ours=True, note="check=False"),
            Candidate("numpy P@V", numpy_sweep),
            Candidate("quantecon bellman_operator", qe_sweep),
            Candidate("pymdptoolbox _bellmanOperator", mdptb_sweep),
        ],
        bytes_moved=nbytes,
        unit="sweep",
    )

    def ours_solve():
        from pygenmod import mdp

        P, R = _dense(S, A)
        return lambda: mdp.solve(P, R, GAMMA, epsilon=EPS)

    def ours_vi_sup():
        from pygenmod import mdp

        P, R = _dense(S, A)
        return lambda: mdp.value_iteration(P, R, GAMMA, tol=1e-8, stop="sup")

    def qe_mpi():
        qe = _need("quantecon")
        P, R = _dense(S, A)
        ddp = qe.markov.DiscreteDP(R, P, GAMMA)
        return lambda: ddp.solve("modified_policy_iteration", epsilon=EPS)

    def qe_vi():
        qe = _need("quantecon")
        P, R = _dense(S, A)
        ddp = qe.markov.DiscreteDP(R, P, GAMMA)
        return lambda: ddp.solve("value_iteration", epsilon=EPS)

    def mdptb_vi():
        mdptoolbox = _need("mdptoolbox.mdp")
        from pygenmod import mdp

        P, R = _dense(S, A)
        Pt, Rt = mdp.to_mdptoolbox(P, R)

        def run():
            vi = mdptoolbox.ValueIteration(Pt, Rt, GAMMA, epsilon=EPS)
            vi.run()
            return vi

        return run

    def numpy_vi():
        P, R = _dense(S, A)
        P2 = P.reshape(S * A, S)

        def run():
            V = np.zeros(S)
            while True:
                U = (R + GAMMA * (P2 @ V).reshape(S, A)).max(1)
                if np.abs(U - V).max() < 1e-8:
                    return U
                V = U

        return run

    solve = Workload(
        "W6a-solve",
        f"time to an epsilon-optimal V (epsilon={EPS:g}), S={S}, A={A}",
        [
            Candidate("pygenmod solve (default MPI)", ours_solve, is_ours=True, note="span stop, checks P"),
            Candidate("pygenmod VI sup<1e-8", ours_vi_sup, is_ours=True),
            Candidate("quantecon MPI (k=20)", qe_mpi),
            Candidate("quantecon VI", qe_vi),
            Candidate("pymdptoolbox VI", mdptb_vi, note="span stop, V uncorrected"),
            Candidate("numpy VI sup<1e-8", numpy_vi),
        ],
        unit="solve",
        repeats=3,
    )

    def ours_pi():
        from pygenmod import mdp

        P, R = _dense(S, A)
        return lambda: mdp.policy_iteration(P, R, GAMMA, epsilon=EPS)

    def ours_pi_exact():
        from pygenmod import mdp

        P, R = _dense(S, A)
        return lambda: mdp.policy_iteration(P, R, GAMMA, evaluation="exact")

    def qe_pi():
        qe = _need("quantecon")
        P, R = _dense(S, A)
        ddp = qe.markov.DiscreteDP(R, P, GAMMA)
        return lambda: ddp.solve("policy_iteration")

    def mdptb_pi():
        mdptoolbox = _need("mdptoolbox.mdp")
        from pygenmod import mdp

        P, R = _dense(S, A)
        Pt, Rt = mdp.to_mdptoolbox(P, R)

        def run():
            pi = mdptoolbox.PolicyIteration(Pt, Rt, GAMMA)
            pi.run()
            return pi

        return run

    pi = Workload(
        "W6d",
        f"policy iteration on W6a's MDP (S={S}, A={A})",
        [
            Candidate("pygenmod PI (iterative eval)", ours_pi, is_ours=True),
            Candidate("pygenmod PI (exact eval)", ours_pi_exact, is_ours=True),
            Candidate("quantecon PI", qe_pi),
            Candidate("pymdptoolbox PI", mdptb_pi),
        ],
        unit="solve",
        repeats=3,
    )
    return [sweep, solve, pi]


# ------------------------------------------------------------------ W6b: batched small MDPs
def _w6b(quick):
    B, S, A, sweeps = (64, 64, 4, 50) if quick else (1024, 64, 4, 200)

    def ours():
        from pygenmod import mdp

        P, R = _dense(S, A, B)
        return lambda: mdp.value_iteration(P, R, GAMMA, tol=0.0, stop="sup", max_iter=sweeps, check=False)

    def ours_full_sweeps():
        from pygenmod import mdp

        P, R = _dense(S, A, B)

        def run():
            mdp._solvers._ACTION_ELIMINATION = False  # every row of every sweep read (the kernel's speed)
            try:
                return mdp.value_iteration(P, R, GAMMA, tol=0.0, stop="sup", max_iter=sweeps, check=False)
            finally:
                mdp._solvers._ACTION_ELIMINATION = True

        return run

    def ours_default():
        from pygenmod import mdp

        P, R = _dense(S, A, B)
        return lambda: mdp.value_iteration(P, R, GAMMA, epsilon=EPS, max_iter=sweeps, check=False)

    def numpy_batched(block=None):
        def setup():
            P, R = _dense(S, A, B)
            P3 = P.reshape(B, S * A, S)

            def run():
                out = np.empty((B, S))
                step = block or B
                for b0 in range(0, B, step):
                    Pb, Rb = P3[b0 : b0 + step], R[b0 : b0 + step]
                    V = np.zeros((len(Pb), S))
                    for _ in range(sweeps):
                        V = (Rb + GAMMA * np.matmul(Pb, V[:, :, None]).reshape(len(Pb), S, A)).max(-1)
                    out[b0 : b0 + step] = V
                return out

            return run

        return setup

    return [
        Workload(
            "W6b",
            f"{sweeps} value-iteration sweeps on each of B={B} MDPs, S={S}, A={A}, float64",
            [
                Candidate(
                    "pygenmod value_iteration", ours, is_ours=True, note="check=False; action elimination (same floats)"
                ),
                Candidate("pygenmod VI, full sweeps", ours_full_sweeps, note="elimination off: every row read"),
                Candidate(
                    "pygenmod VI, own stop",
                    ours_default,
                    note=f"per-MDP span stop eps={EPS:g}: fewer sweeps, not the same work",
                ),
                Candidate("numpy batched matmul", numpy_batched()),
                Candidate("numpy blocked 8 MDPs", numpy_batched(8)),
            ],
            flops=2.0 * B * S * A * S * sweeps,
            unit="solve",
            repeats=3,
        )
    ]


# ------------------------------------------------------------------ W6c: sparse
def _w6c(quick):
    S, A, k, sweeps = (10_000, 4, 8, 20) if quick else (100_000, 4, 8, 100)

    def ours():
        from pygenmod import mdp

        P, R = _sparse(S, A, k)
        return lambda: mdp.value_iteration(P, R, GAMMA, tol=0.0, stop="sup", max_iter=sweeps, check=False)

    def scipy_csr():
        sp = _need("scipy.sparse")
        P, R = _sparse(S, A, k)
        M = sp.csr_matrix((P.data, P.indices, P.indptr), shape=(S * A, S))

        def run():
            V = np.zeros(S)
            for _ in range(sweeps):
                V = (R + GAMMA * (M @ V).reshape(S, A)).max(1)
            return V

        return run

    def mdptb_sparse():
        # pymdptoolbox's own ValueIteration(...) densifies an (S, S) matrix at this size
        # (MemoryError), so this runs its Bellman operator's loop (one CSR matvec per action).
        _need("mdptoolbox")
        sp = _need("scipy.sparse")
        P, R = _sparse(S, A, k)
        M = sp.csr_matrix((P.data, P.indices, P.indptr), shape=(S * A, S))
        Pl = [M[a::A].tocsr() for a in range(A)]
        Rt = np.ascontiguousarray(R.T)

        def run():
            V = np.zeros(S)
            Q = np.empty((A, S))
            for _ in range(sweeps):
                for a in range(A):
                    Q[a] = Rt[a] + GAMMA * Pl[a].dot(V)
                V = Q.max(0)
            return V

        return run

    nnz = S * A * k
    return [
        Workload(
            "W6c",
            f"{sweeps} sparse value-iteration sweeps, S={S}, A={A}, {k} successors (CSR)",
            [
                Candidate("pygenmod value_iteration", ours, is_ours=True, note="check=False"),
                Candidate("scipy CSR matvec", scipy_csr),
                Candidate(
                    "pymdptoolbox-style per-action CSR", mdptb_sparse, note="its constructor runs out of memory here"
                ),
            ],
            bytes_moved=sweeps * nnz * 12.0,
            unit="solve",
            repeats=3,
        )
    ]


# ------------------------------------------------------------------ W7: GAE
def _gae_numpy(r, v, d, boot, gamma, lam):
    Tn = r.shape[0]
    adv = np.empty_like(r)
    last = np.zeros(r.shape[1], r.dtype)
    nd = 1.0 - d
    for t in range(Tn - 1, -1, -1):
        vn = v[t + 1] if t + 1 < Tn else boot
        delta = r[t] + gamma * vn * nd[t] - v[t]
        last = delta + gamma * lam * nd[t] * last
        adv[t] = last
    return adv


@functools.lru_cache(maxsize=1)
def _gae_numba_serial():
    import numba as nb

    @nb.njit(cache=True)
    def run(r, v, d, boot, gamma, lam):
        Tn, B = r.shape
        adv = np.empty_like(r)
        last = np.zeros(B, r.dtype)
        for t in range(Tn - 1, -1, -1):
            for b in range(B):
                vn = v[t + 1, b] if t + 1 < Tn else boot[b]
                nd = 1.0 - d[t, b]
                delta = r[t, b] + gamma * vn * nd - v[t, b]
                last[b] = delta + gamma * lam * nd * last[b]
                adv[t, b] = last[b]
        return adv

    return run


def _w7(quick):
    Tn, B = (256, 1024) if quick else (1024, 4096)
    gamma, lam = np.float32(0.99), np.float32(0.95)

    def ours():
        from pygenmod import returns

        r, v, d, boot = _gae_data(Tn, B)
        return lambda: returns.gae(r, v, gamma=0.99, lam=0.95, terminated=d, bootstrap_value=boot)

    def ours_out():
        from pygenmod import returns

        r, v, d, boot = _gae_data(Tn, B)
        out = (np.empty_like(r), np.empty_like(r))
        return lambda: returns.gae(r, v, gamma=0.99, lam=0.95, terminated=d, bootstrap_value=boot, out=out)

    def ours_adv_only():
        from pygenmod import returns

        r, v, d, boot = _gae_data(Tn, B)
        out = (np.empty_like(r),)
        return lambda: returns.gae(
            r, v, gamma=0.99, lam=0.95, terminated=d, bootstrap_value=boot, out=out, compute_returns=False
        )

    def numpy_vec():
        r, v, d, boot = _gae_data(Tn, B)
        return lambda: _gae_numpy(r, v, d, boot, gamma, lam)

    def numba_serial():
        _need("numba")
        fn = _gae_numba_serial()
        r, v, d, boot = _gae_data(Tn, B)
        return lambda: fn(r, v, d, boot, gamma, lam)

    return [
        Workload(
            "W7",
            f"GAE over (T={Tn}, B={B}) float32, gamma=0.99, lambda=0.95",
            [
                Candidate("pygenmod gae", ours, is_ours=True, note="advantages + lambda-returns"),
                Candidate("pygenmod gae out=", ours_out, is_ours=True, note="reused output buffers"),
                Candidate(
                    "pygenmod advantages only",
                    ours_adv_only,
                    is_ours=True,
                    note="out=, compute_returns=False: what the peers compute",
                ),
                Candidate("numpy vectorised over B", numpy_vec),
                Candidate("numba serial loop", numba_serial),
            ],
            bytes_moved=Tn * B * 4 * 5.0,
            unit="call",
        )
    ]


def workloads(quick: bool = False):
    return [*_w6a(quick), *_w6b(quick), *_w6c(quick), *_w7(quick)]
