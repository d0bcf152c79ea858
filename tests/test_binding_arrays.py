"""The bindings' array checks (csrc/bind/array_access.hpp): a bad array raises ValueError naming
the argument, with the same message from a CPU binding (NumPy) and its CUDA twin
(__cuda_array_interface__). The CUDA side needs no GPU here: the fake device arrays carry a null
data pointer, so every check runs and no kernel is launched."""

import importlib

import numpy as np
import pytest

_TYPESTR = {np.float64: "<f8", np.float32: "<f4", np.int64: "<i8", np.int32: "<i4", np.uint8: "|u1", np.bool_: "|b1"}


class Spec:
    """One argument: a NumPy array for the CPU binding, a fake device array for the CUDA one."""

    def __init__(self, shape, dtype=np.float64, readonly=False, fortran=False):
        self.shape, self.dtype, self.readonly, self.fortran = tuple(shape), dtype, readonly, fortran

    def host(self):
        a = np.zeros(self.shape, self.dtype, order="F" if self.fortran else "C")
        a.setflags(write=not self.readonly)
        return a

    def device(self):
        strides = None
        if self.fortran:
            st, strides = np.dtype(self.dtype).itemsize, []
            for n in self.shape:
                strides.append(st)
                st *= n
        return _FakeCudaArray(self.shape, _TYPESTR[self.dtype], self.readonly, strides)


class _FakeCudaArray:
    def __init__(self, shape, typestr, readonly, strides):
        self.__cuda_array_interface__ = {
            "data": (0, readonly),
            "shape": shape,
            "typestr": typestr,
            "strides": None if strides is None else tuple(strides),
            "version": 3,
        }


def _args(specs, side):
    return [
        tuple(_args(s, side)) if isinstance(s, tuple) else getattr(s, side)() if isinstance(s, Spec) else s
        for s in specs
    ]


T, B = 3, 2
F8 = Spec((T, B))


def _gae(**bad):
    args = dict(
        rewards=F8,
        values=Spec((T, B)),
        next_values=None,
        bootstrap=None,
        terminated=None,
        truncated=None,
        mask=None,
        gamma=Spec((B,)),
        lam=Spec((B,)),
        advantages=Spec((T, B)),
        returns=None,
        status=Spec((1,), np.uint8),
    )
    args.update(bad)
    return list(args.values())


def _logp(**bad):
    args = dict(
        logits=Spec((B, 4)), mask=None, actions=Spec((B,), np.int64), out=Spec((B,)), status=Spec((B,), np.int32)
    )
    args.update(bad)
    return list(args.values())


def _kl(**bad):  # sampling.kl_normal, D = 3; size-0 priors are absent
    args = dict(
        mu=Spec((B, 3)),
        scale=Spec((B, 3)),
        prior_mu=Spec((0,)),
        prior_scale=Spec((0,)),
        kind=0,
        lo=0.0,
        hi=1.0,
        kl=Spec((B,)),
        status=Spec((B,), np.int32),
    )
    args.update(bad)
    return list(args.values())


def _estep(**bad):  # gmm.e_step, full covariances, N = 5, K = 2, D = 3
    args = dict(
        X=Spec((B, 5, 3)),
        weights=Spec((B, 2)),
        means=Spec((B, 2, 3)),
        prec_chol=Spec((B, 2, 3, 3)),
        cov_type=0,
        lp=Spec((B, 5, 2)),
        log_resp=Spec((B, 5, 2)),
        log_norm=Spec((B, 5)),
    )
    args.update(bad)
    return list(args.values())


def _sample(**bad):  # mcts.sample_action, A = 4
    args = dict(weights=Spec((B, 4)), temperature=Spec((B,)), seed=0, stream0=0, out=Spec((B,), np.int64))
    args.update(bad)
    return list(args.values())


def _backup(**bad):  # mdp.backup_dense, S = 3, A = 2, kind 0 (optimal)
    args = dict(
        P=Spec((B, 3, 2, 3)),
        R=Spec((B, 3, 2)),
        V=Spec((B, 3)),
        gamma=Spec((B,)),
        kind=0,
        pi_det=None,
        pi_stoch=None,
        tau=None,
        Q=Spec((B, 3, 2)),
        V_out=Spec((B, 3)),
        policy=Spec((B, 3), np.int64),
    )
    args.update(bad)
    return list(args.values())


def _tree(**bad):  # an MCTS tree tuple (pygenmod/mcts_fields.hpp's order): N = 3 nodes, A = 4 actions
    N, A, i32 = 3, 4, np.int32
    fields = dict(
        visits=Spec((B, N), i32),
        value_sum=Spec((B, N)),
        raw_value=Spec((B, N)),
        reward=Spec((B, N)),
        discount=Spec((B, N)),
        parent=Spec((B, N), i32),
        action=Spec((B, N), i32),
        children=Spec((B, N, A), i32),
        logits=Spec((B, N, A)),
        prior=Spec((B, N, A)),
        invalid=Spec((B, N, A), np.uint8),
        state=Spec((B, N), np.int64),
        num_nodes=Spec((B,), i32),
        gumbel=Spec((B, A)),
        qbounds=Spec((B, 2)),
    )
    fields.update(bad)
    return tuple(fields.values())


CASES = [
    ("returns", "gae", _gae(rewards=Spec((T, B), np.int64)), "rewards: expected float32 or float64, got int64"),
    ("returns", "gae", _gae(rewards=Spec((T, B, 1))), "rewards: expected shape (T, B)"),
    ("returns", "gae", _gae(values=Spec((T, 3))), "values: unexpected shape (3, 3), expected (3, 2)"),
    (
        "returns",
        "gae",
        _gae(gamma=Spec((B,), np.float32)),
        "gamma: wrong dtype for this kernel (got float32, expected float64)",
    ),
    ("returns", "gae", _gae(lam=Spec((B, 1))), "lam: expected 1 dimensions, got shape (2, 1)"),
    ("returns", "gae", _gae(advantages=Spec((T, B), fortran=True)), "advantages: must be C-contiguous"),
    ("returns", "gae", _gae(advantages=Spec((T, B), readonly=True)), "advantages: output is read-only"),
    (
        "returns",
        "gae",
        _gae(returns=Spec((T, B), np.float32)),
        "returns: wrong dtype for this kernel (got float32, expected float64)",
    ),
    (
        "returns",
        "gae",
        _gae(terminated=Spec((T, B), np.uint8), truncated=Spec((T, B))),
        "flags: terminated, truncated and mask must share a dtype",
    ),
    (
        "returns",
        "gae",
        _gae(terminated=Spec((T, B), np.bool_)),
        "terminated: wrong dtype for this kernel (got bool, expected float64)",
    ),
    ("cem", "top_k", [Spec((6,)), Spec((1, 2), np.int64)], "x and idx must be 2-D"),
    ("cem", "top_k", [Spec((2, 3)), Spec((2, 4), np.int64)], "idx: k exceeds the row length"),
    (
        "cem",
        "top_k",
        [Spec((2, 3)), Spec((2, 2), np.int32)],
        "idx: wrong dtype for this kernel (got int32, expected int64)",
    ),
    ("categorical", "log_prob", _logp(logits=Spec((B, 4, 1))), "logits: expected shape (B, K)"),
    ("categorical", "log_prob", _logp(mask=Spec((3, 4), np.uint8)), "mask: expected shape (B, K) or (1, K)"),
    (
        "categorical",
        "log_prob",
        _logp(mask=Spec((1, 4), np.bool_)),
        "mask: wrong dtype for this kernel (got bool, expected uint8)",
    ),
    (
        "categorical",
        "log_prob",
        _logp(actions=Spec((B,), np.int32)),
        "actions: wrong dtype for this kernel (got int32, expected int64)",
    ),
    ("categorical", "log_prob", _logp(out=Spec((B,), readonly=True)), "out: output is read-only"),
    ("categorical", "log_prob", _logp(status=Spec((B + 1,), np.int32)), "status: unexpected shape (3,), expected (2,)"),
    ("sampling", "kl_normal", _kl(mu=Spec((B, 3), np.int64)), "mu: expected float32 or float64, got int64"),
    ("sampling", "kl_normal", _kl(scale=Spec((B, 4))), "scale: unexpected shape (2, 4), expected (2, 3)"),
    (
        "sampling",
        "kl_normal",
        _kl(prior_mu=Spec((B, 3), np.float32)),
        "prior_mu: wrong dtype for this kernel (got float32, expected float64)",
    ),
    ("sampling", "kl_normal", _kl(kl=Spec((B,), readonly=True)), "kl: output is read-only"),
    ("gmm", "e_step", _estep(X=Spec((B, 5, 3), np.int64)), "X: expected float32 or float64, got int64"),
    ("gmm", "e_step", _estep(prec_chol=Spec((B, 2, 3))), "prec_chol: expected 4 dimensions, got shape (2, 2, 3)"),
    ("gmm", "e_step", _estep(log_norm=Spec((B, 5), fortran=True)), "log_norm: must be C-contiguous"),
    (
        "mcts",
        "sample_action",
        _sample(weights=Spec((B, 4), np.int32)),
        "weights: expected float32 or float64, got int32",
    ),
    (
        "mcts",
        "sample_action",
        _sample(temperature=Spec((B,), np.float32)),
        "temperature: wrong dtype for this kernel (got float32, expected float64)",
    ),
    ("mcts", "sample_action", _sample(out=Spec((B,), np.int64, readonly=True)), "out: output is read-only"),
    (
        "mcts",
        "backup",
        [_tree(), Spec((B,), np.int64)],
        "node: wrong dtype for this kernel (got int64, expected int32)",
    ),
    (
        "mcts",
        "backup",
        [_tree(value_sum=Spec((B, 4))), Spec((B,), np.int32)],
        "value_sum: unexpected shape (2, 4), expected (2, 3)",
    ),
    ("mcts", "gumbel_noise", [0, 0, Spec((4,))], "out: expected 2 dimensions, got shape (4,)"),
    (
        "gmm",
        "kmeans",
        [Spec((B, 5, 3)), Spec((B, 5)), 1, 3, Spec((B, 2, 3)), Spec((B, 4), np.int64)],
        "labels: unexpected shape (2, 4), expected (2, 5)",
    ),
    ("mdp", "backup_dense", _backup(V=Spec((B, 4))), "V: unexpected shape (2, 4), expected (2, 3)"),
    (
        "mdp",
        "backup_dense",
        _backup(gamma=Spec((B,), np.float32)),
        "gamma: wrong dtype for this kernel (got float32, expected float64)",
    ),
    (
        "mdp",
        "backup_dense",
        _backup(policy=Spec((B, 3))),
        "policy_out: wrong dtype for this kernel (got float64, expected int64)",
    ),
]


def _module(prefix, family):
    try:
        return importlib.import_module(f"pygenmod._{prefix}_{family}")
    except ImportError:
        return None


@pytest.mark.parametrize("family,fn,specs,message", CASES, ids=[f"{c[0]}.{c[1]}-{c[3][:30]}" for c in CASES])
def test_host_and_device_bindings_reject_bad_arrays_alike(family, fn, specs, message):
    cpu = _module("cpu", family)
    if cpu is None:
        pytest.skip("compiled extension not built")
    with pytest.raises(ValueError) as host:
        getattr(cpu, fn)(*_args(specs, "host"))
    assert str(host.value) == message
    cuda = _module("cuda", family)
    if cuda is None:
        return  # the CPU half still checks the message
    with pytest.raises(ValueError) as dev:
        getattr(cuda, fn)(*_args(specs, "device"))
    assert str(dev.value) == message


def test_non_arrays_are_named():
    cpu = _module("cpu", "categorical")
    if cpu is None:
        pytest.skip("compiled extension not built")
    with pytest.raises(ValueError, match="mask: expected a NumPy array"):
        cpu.log_prob(*_args(_logp(mask=[[1, 1, 1, 1]]), "host"))
    cuda = _module("cuda", "categorical")
    if cuda is not None:
        with pytest.raises(ValueError, match=r"logits: expected a CUDA array \(CuPy or DLPack\)"):
            cuda.log_prob(*_args(_logp(), "host"))
