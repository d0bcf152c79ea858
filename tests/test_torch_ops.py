"""Every pygenmod torch op is a torch.library custom op: torch.library.opcheck (schema, fake
kernel, autograd registration, AOT dispatch with dynamic shapes) in float32 and float64 on odd
shapes, torch.compile(fullgraph=True) equal to eager (forward and backward), values and
gradients against torch.distributions or an independent torch reference in float64, seeds as
op arguments under compile, and bad input raising clear exceptions. The gradchecks of the
sampling and spatial wrappers are in test_sampling_torch.py / test_spatial_torch.py."""

import math
import pathlib
import re

import numpy as np
import pytest
import reference as oracle

torch = pytest.importorskip("torch")
T = pytest.importorskip("pygenmod.torch")
import pygenmod  # noqa: E402
from pygenmod import random as prandom  # noqa: E402
from pygenmod import returns as R  # noqa: E402
from pygenmod import sampling as S  # noqa: E402

ops = torch.ops.pygenmod
inf = math.inf
F64 = torch.float64
ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)"
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _r(g, *shape, dt=F64, grad=True, pos=False):
    x = torch.randn(*shape, generator=g, dtype=dt)
    return (x.exp() if pos else x).requires_grad_(grad)


def _L(g, *lead, D, dt=F64, grad=True):
    A = torch.randn(*lead, D, D, generator=g, dtype=dt) * 0.3
    L = torch.tril(A, -1) + torch.diag_embed(torch.rand(*lead, D, generator=g, dtype=dt) + 0.5)
    return L.requires_grad_(grad)


# ------------------------------------------------------------------------------ opcheck
def _opcheck_cases(dt):
    """(id, op overload, args): every op, odd shapes (B=3, D=5, a single row, S samples)."""
    g = _gen(1)
    B, D = 3, 5

    def r(*s, **kw):
        return _r(g, *s, dt=dt, **kw)

    def L(*lead, **kw):
        return _L(g, *lead, D=D, dt=dt, **kw)

    x4 = r(2, 3, 4, 5)
    t = torch.tensor(1.1, dtype=dt, requires_grad=True)
    rew, val = r(7, B, grad=False), r(7, B, grad=False)
    c = [
        ("normal_head", ops.sampling_normal_head, (r(B, D), r(B, D), 0, None, 7, -1, 0, 0, -inf, inf, False)),
        (
            "normal_head_std_S_clamp",
            ops.sampling_normal_head,
            (r(B, D), r(B, D, pos=True), 2, None, 2**63 + 5 - 2**64, 2, 3, 1, 0.1, 5.0, True),
        ),
        (
            "normal_head_one_row_eps",
            ops.sampling_normal_head,
            (r(D), r(D), 1, r(D, grad=False), 7, -1, 0, 0, -inf, inf, True),
        ),
        ("mvn_head", ops.sampling_mvn_head, (r(B, D), L(B), None, 7, 2, 0, 0, True, True, True)),
        ("mvn_head_shared_no_kl", ops.sampling_mvn_head, (r(B, D), L(), None, 7, -1, 0, 0, False, False, True)),
        ("kl_normal", ops.sampling_kl_normal, (r(B, D), r(B, D), 0, None, None, -inf, inf)),
        ("kl_normal_prior", ops.sampling_kl_normal, (r(B, D), r(B, D), 1, r(D), r(B, D), -2.0, 2.0)),
        ("normal_log_prob", ops.sampling_normal_log_prob, (r(2, B, D), r(B, D), r(B, D), 0, -inf, inf)),
        ("kl_mvn", ops.sampling_kl_mvn, (r(B, D), L(B), None, None)),
        ("kl_mvn_prior", ops.sampling_kl_mvn, (r(B, D), L(B), r(D), L())),
        ("mvn_log_prob", ops.sampling_mvn_log_prob, (r(2, B, D), r(B, D), L(B))),
        ("mahalanobis", ops.sampling_mahalanobis, (r(B, D), r(B, D), L(), False, True)),
        ("mahalanobis_precision", ops.sampling_mahalanobis, (r(2, B, D), r(B, D), L(B), True, False)),
        ("gumbel_softmax", ops.sampling_gumbel_softmax, (r(B, 4, D), 0.7, 3, 0, 0, False)),
        ("gumbel_softmax_hard", ops.sampling_gumbel_softmax, (r(B, D), 0.7, 3, 0, 0, True)),
        ("spatial_softmax", ops.spatial_softmax_fwd, (x4, t, None, "NCHW", "normalized", "xy", True, True)),
        ("spatial_softmax_nhwc", ops.spatial_softmax_fwd, (x4, t, None, "NHWC", "pixel", "yx", False, False)),
        (
            "gae",
            ops.returns_gae,
            (
                rew,
                val,
                torch.tensor(0.9, dtype=dt),
                torch.full((B,), 0.8, dtype=dt),
                torch.rand(7, B, generator=g) < 0.2,
                None,
                None,
                torch.zeros(B, dtype=dt),
                None,
                0,
                True,
                False,
            ),
        ),
        (
            "gae_batch_major",
            ops.returns_gae,
            (
                rew.T.contiguous(),
                val.T.contiguous(),
                torch.tensor(0.9, dtype=dt),
                torch.tensor(0.8, dtype=dt),
                None,
                None,
                None,
                None,
                None,
                1,
                False,
                False,
            ),
        ),
        (
            "discounted",
            ops.returns_gae,
            (
                rew,
                None,
                torch.tensor(0.9, dtype=dt),
                torch.tensor(1.0, dtype=dt),
                None,
                None,
                None,
                None,
                torch.rand(7, B, generator=g) < 0.9,
                0,
                False,
                True,
            ),
        ),
    ]
    # the backward ops (called by the autograd formulas), on inputs without grad
    d = lambda *s: r(*s, grad=False)  # noqa: E731
    c += [
        (
            "normal_head_backward",
            ops.sampling_normal_head_backward,
            (d(B, D), d(B, D), 0, None, 7, 2, 0, 0, -inf, inf, d(2, B, D), d(B), None),
        ),
        (
            "mvn_head_backward",
            ops.sampling_mvn_head_backward,
            (d(B, D), L(grad=False), None, 7, -1, 0, 0, d(B, D), None, d(B)),
        ),
        ("kl_normal_backward", ops.sampling_kl_normal_backward, (d(B), d(B, D), d(B, D), 0, d(D), None, -inf, inf)),
        (
            "normal_log_prob_backward",
            ops.sampling_normal_log_prob_backward,
            (d(B), d(B, D), d(B, D), d(B, D), 0, -inf, inf),
        ),
        ("kl_mvn_backward", ops.sampling_kl_mvn_backward, (d(B), d(B, D), L(B, grad=False), None, L(grad=False))),
        ("mvn_log_prob_backward", ops.sampling_mvn_log_prob_backward, (d(B), d(B, D), d(B, D), L(grad=False))),
        (
            "mahalanobis_backward",
            ops.sampling_mahalanobis_backward,
            (d(B), d(B, D), d(B, D), L(grad=False), False, True),
        ),
        ("gumbel_softmax_backward", ops.sampling_gumbel_softmax_backward, (d(B, D), torch.softmax(d(B, D), -1), 0.7)),
        ("spatial_softmax_bwd", ops.spatial_softmax_bwd, None),  # built below from a forward
    ]
    return c


def _spatial_bwd_args(dt):
    x = torch.randn(2, 3, 4, 5, generator=_gen(3), dtype=dt)
    t = torch.tensor(0.9, dtype=dt)
    kp, cov, _maps, stats = ops.spatial_softmax_fwd(x, t, None, "NCHW", "normalized", "xy", True, False)
    return (x, t, None, "NCHW", "normalized", "xy", kp, cov, stats, torch.randn_like(kp), torch.randn_like(cov), None)


_IDS = [c[0] for c in _opcheck_cases(F64)]


@pytest.mark.parametrize("dt", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", _IDS)
def test_opcheck(case, dt):
    name, op, args = next(c for c in _opcheck_cases(dt) if c[0] == case)
    if args is None:
        args = _spatial_bwd_args(dt)
    torch.library.opcheck(op.default, args)


_HALF_IDS = [
    c[0]
    for c in _opcheck_cases(F64)
    if c[1]._qualified_op_name.startswith("pygenmod::sampling_") and not c[0].endswith("_backward")
]


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("case", _HALF_IDS)
def test_opcheck_half_precision(case, dt):
    # the sampling ops compute half in float32: the fake kernels must give the same dtypes
    # (samples and gradients in the input dtype, reductions in float32). Spatial softmax takes
    # a float32 temperature with half maps (its wrapper converts); GAE takes float32/float64.
    name, op, args = next(c for c in _opcheck_cases(dt) if c[0] == case)
    torch.library.opcheck(op.default, args)


def test_every_op_is_registered_and_covered():
    # a new pygenmod:: op must get an opcheck case here
    import pygenmod._torch_returns
    import pygenmod._torch_sampling  # noqa: F401

    covered = {c[1]._qualified_op_name.split("::")[1] for c in _opcheck_cases(F64)}
    registered = {
        n for n in dir(ops) if not n.startswith("_") and isinstance(getattr(ops, n), torch._ops.OpOverloadPacket)
    }
    mine = {n for n in registered if n.startswith(("sampling_", "spatial_", "returns_"))}
    assert len(mine) >= 19 and mine <= covered, mine - covered


# ------------------------------------------------------------------------------ references (float64)
def _compare(ours, ref, inputs, seed=0, **tol):
    """Outputs equal, and the gradients of one random linear functional of them equal."""
    a = ours(*inputs)
    b_in = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    b = ref(*b_in)
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    g = _gen(seed)
    ws = [torch.randn(x.shape, generator=g, dtype=x.dtype) for x in b]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **tol)
    ga = torch.autograd.grad(sum((x * w).sum() for x, w in zip(a, ws)), [x for x in inputs if x.requires_grad])
    gb = torch.autograd.grad(sum((x * w).sum() for x, w in zip(b, ws)), [x for x in b_in if x.requires_grad])
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, **tol)


def _eps(mu, L=None, seed=0, S=None):
    if L is None:
        return torch.from_numpy(
            S_.rsample_normal(mu.detach().numpy(), np.zeros(mu.shape), seed=seed, n_samples=S, return_eps=True)[1]
        )
    return torch.from_numpy(
        S_.rsample_mvn(mu.detach().numpy(), L.detach().numpy(), seed=seed, n_samples=S, return_eps=True)[1]
    )


S_ = S
dist = torch.distributions


@pytest.mark.parametrize("shared", [False, True], ids=["per_row_L", "shared_L"])
def test_mvn_head_matches_torch_distributions(shared):
    g = _gen(4)
    B, D, n = 4, 3, 2
    mu, L = _r(g, B, D), _L(g, *(() if shared else (B,)), D=D)
    eps = _eps(mu, L, seed=9, S=n)

    def ours(mu, L):
        return T.mvn_head(mu, L, seed=9, n_samples=n, log_q=True)

    def ref(mu, L):
        Lb = torch.tril(L).expand(B, D, D)  # the op reads only the lower triangle
        q = dist.MultivariateNormal(mu, scale_tril=Lb)
        z = mu + (Lb @ eps.unsqueeze(-1)).squeeze(-1)
        p0 = dist.MultivariateNormal(torch.zeros(D, dtype=F64), scale_tril=torch.eye(D, dtype=F64))
        return z, dist.kl_divergence(q, p0), q.log_prob(z)

    _compare(ours, ref, (mu, L))
    _compare(lambda m, L: T.rsample_mvn(m, L, seed=9, n_samples=n), lambda m, L: ref(m, L)[0], (mu, L))


def test_diagonal_kl_and_log_prob_match_torch_distributions():
    g = _gen(5)
    B, D = 4, 3
    mu, lv, pm, plv, x = _r(g, B, D), _r(g, B, D), _r(g, D), _r(g, B, D), _r(g, 2, B, D)

    def N(m, lv):
        return dist.Normal(m, torch.exp(0.5 * lv))

    _compare(
        lambda a, b, c, d: T.kl_normal(a, b, c, d),
        lambda a, b, c, d: dist.kl_divergence(N(a, b), N(c.expand(B, D), d)).sum(-1),
        (mu, lv, pm, plv),
    )
    _compare(lambda x, a, b: T.normal_log_prob(x, a, b), lambda x, a, b: N(a, b).log_prob(x).sum(-1), (x, mu, lv))
    ls = _r(g, B, D)
    _compare(
        lambda a, b: T.kl_normal(a, log_std=b, prior_mu=0.5, prior_log_std=0.2),
        lambda a, b: dist.kl_divergence(dist.Normal(a, b.exp()), dist.Normal(0.5, math.exp(0.2))).sum(-1),
        (mu, ls),
    )


def test_full_covariance_kl_log_prob_mahalanobis_match_torch():
    g = _gen(6)
    B, D = 4, 3
    mu, L, pm, pL, x = _r(g, B, D), _L(g, B, D=D), _r(g, D), _L(g, D=D), _r(g, 2, B, D)

    def MVN(m, L):  # the ops read only the lower triangle (gradients are lower triangular)
        return dist.MultivariateNormal(m, scale_tril=torch.tril(L))

    _compare(
        lambda a, b, c, d: T.kl_mvn(a, b, c, d),
        lambda a, b, c, d: dist.kl_divergence(MVN(a, b), MVN(c.expand(B, D), d.expand(B, D, D))),
        (mu, L, pm, pL),
    )
    _compare(
        lambda a, b: T.kl_mvn(a, b),
        lambda a, b: dist.kl_divergence(MVN(a, b), MVN(torch.zeros(D, dtype=F64), torch.eye(D, dtype=F64))),
        (mu, L),
    )
    _compare(lambda x, a, b: T.mvn_log_prob(x, a, b), lambda x, a, b: MVN(a, b).log_prob(x), (x, mu, L))

    def maha_ref(x, m, L, precision, squared):
        d = (x - m).unsqueeze(-1)
        Lb = torch.tril(L).expand(*x.shape[:-1], D, D)
        y = Lb.transpose(-1, -2) @ d if precision else torch.linalg.solve_triangular(Lb, d, upper=False)
        r = y.square().sum((-1, -2))
        return r if squared else r.sqrt()

    for precision in (False, True):
        for squared in (True, False):
            kw = {"precision_tril" if precision else "scale_tril": None}

            def ours(x, m, L, kw=kw, squared=squared):
                return T.mahalanobis(x, m, **{k: L for k in kw}, squared=squared)

            _compare(ours, lambda x, m, L, p=precision, s=squared: maha_ref(x, m, L, p, s), (x, mu, pL))


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_matches_torch_composition(hard):
    g = _gen(7)
    logits = _r(g, 3, 2, 6)
    noise = torch.from_numpy(prandom.gumbel(5, (6, 6), dtype=np.float64)).reshape(3, 2, 6)
    tau = 0.6

    def ref(lg):  # torch.nn.functional.gumbel_softmax with our noise
        y = torch.softmax((lg + noise) / tau, -1)
        if not hard:
            return y
        one = torch.zeros_like(y).scatter_(-1, y.argmax(-1, keepdim=True), 1.0)
        return one - y.detach() + y

    _compare(lambda lg: T.gumbel_softmax(lg, tau, seed=5, hard=hard), ref, (logits,), atol=1e-12, rtol=1e-12)


def _gae_ref(r, v, gamma, lam, term, boot):
    """The shared float64 GAE oracle on tensors."""
    B = r.shape[1]
    t = term.numpy()
    adv, ret = oracle.gae(
        r.numpy(), v.numpy(), t, np.zeros_like(t), None, boot.numpy(), None, np.full(B, gamma), np.full(B, lam)
    )
    return torch.from_numpy(adv), torch.from_numpy(ret)


def test_gae_matches_torch_loop_and_is_not_differentiable():
    g = _gen(8)
    Tn, B = 9, 3
    r, v = _r(g, Tn, B), _r(g, Tn, B)
    term = torch.rand(Tn, B, generator=g) < 0.25
    boot = torch.randn(B, generator=g, dtype=F64)
    adv, ret = T.gae(r, v, gamma=0.97, lam=0.9, terminated=term, bootstrap_value=boot)
    adv2, ret2 = _gae_ref(r.detach(), v.detach(), 0.97, 0.9, term, boot)
    torch.testing.assert_close(adv, adv2)
    torch.testing.assert_close(ret, ret2)
    assert not adv.requires_grad and not ret.requires_grad  # targets: gradients do not flow
    torch.testing.assert_close(T.lambda_returns(r, v, gamma=0.97, lam=0.9, terminated=term, bootstrap_value=boot), ret2)
    # batch-major input, per-environment gamma, advantages only
    gam = torch.tensor([0.9, 0.95, 0.99], dtype=F64)
    out = T.gae(r.T, v.T, gamma=gam, lam=0.8, time_axis=1, compute_returns=False)
    assert out.returns is None
    np.testing.assert_allclose(
        out.advantages.numpy(),
        R.gae(r.detach().T.numpy(), v.detach().T.numpy(), gamma=gam.numpy(), lam=0.8, time_axis=1).advantages,
    )
    np.testing.assert_allclose(
        T.discounted_returns(r, gamma=0.9, terminated=term).numpy(),
        R.discounted_returns(r.detach().numpy(), gamma=0.9, terminated=term.numpy()),
    )


# ------------------------------------------------------------------------------ torch.compile
def _all_ops(mu, lv, L, x, logits, img, t, rew, val, seed):
    """One call of every op family (shared by the compile tests: one compilation)."""
    z, kl, lq = T.normal_head(mu, lv, seed=seed, n_samples=2, log_q=True)
    zm, klm, lqm = T.mvn_head(mu, L, seed=seed, log_q=True)
    out = [
        z,
        kl,
        lq,
        zm,
        klm,
        lqm,
        T.rsample_mvn(mu, L[0], seed=seed, stream=3),
        T.kl_normal(mu, lv, 0.5, lv.flip(0)),
        T.normal_log_prob(x, mu, lv),
        T.kl_mvn(mu, L, mu.flip(0), L[0]),
        T.mvn_log_prob(x, mu, L),
        T.mahalanobis(x, mu, L, squared=False),
        T.mahalanobis(x, mu, precision_tril=L[0]),
        T.gumbel_softmax(logits, 0.5, seed=seed),
        T.gumbel_softmax(logits, 0.5, seed=seed, hard=True),
        *T.spatial_softmax(img, t, return_cov=True),
    ]
    adv, ret = T.gae(rew, val, gamma=0.9, lam=0.95)
    return out, adv, ret


def _inputs(dt=torch.float32, seed=0):
    g = _gen(seed)
    B, D = 3, 5
    return dict(
        mu=_r(g, B, D, dt=dt),
        lv=_r(g, B, D, dt=dt),
        L=_L(g, B, D=D, dt=dt),
        x=_r(g, 2, B, D, dt=dt),
        logits=_r(g, B, 4, dt=dt),
        img=_r(g, 2, 3, 4, 5, dt=dt),
        t=torch.tensor(1.2, dtype=dt, requires_grad=True),
        rew=_r(g, 6, B, dt=dt, grad=False),
        val=_r(g, 6, B, dt=dt),
    )


def _loss_and_grads(fn, inp, seed):
    out, adv, ret = fn(**inp, seed=seed)
    loss = sum((o.float() * (i + 1)).sum() for i, o in enumerate(out)) + (adv * inp["val"]).sum()
    leaves = [v for v in inp.values() if v.requires_grad]
    return out, adv, ret, torch.autograd.grad(loss, leaves)


_COMPILED = {}


def _compiled():
    if "fn" not in _COMPILED:
        _COMPILED["fn"] = torch.compile(_all_ops, fullgraph=True)  # fullgraph: a graph break raises
    return _COMPILED["fn"]


def test_compile_fullgraph_matches_eager_forward_and_backward():
    torch._dynamo.reset()
    inp = _inputs()
    got = _loss_and_grads(_compiled(), inp, 11)
    want = _loss_and_grads(_all_ops, inp, 11)
    for a, b in zip(got[0] + list(got[1:3]) + list(got[3]), want[0] + list(want[1:3]) + list(want[3])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not got[1].requires_grad  # GAE: no gradient even inside a compiled graph


def test_compile_seed_is_an_int_argument():
    # The seed is an op argument: a compiled function takes it as an int argument, and after
    # one recompilation (torch makes a changing int dynamic) draws with any seed without
    # recompiling. Results equal eager with the same seed.
    counts = []

    def draw(mu, lv, seed):
        return T.rsample_normal(mu, lv, seed=seed)

    def backend(gm, example_inputs):
        counts.append(1)
        return gm.forward

    fn = torch.compile(draw, fullgraph=True, backend=backend)
    mu, lv = torch.randn(3, 4), torch.randn(3, 4)
    outs = [fn(mu, lv, s) for s in (1, 2, 3, 4, T.fresh_seed())]
    for s, o in zip((1, 2, 3, 4), outs):
        torch.testing.assert_close(o, T.rsample_normal(mu, lv, seed=s))
    assert not torch.equal(outs[0], outs[1])
    assert len(counts) <= 2, f"{len(counts)} compilations for 5 seeds"
    # seed=None inside a fullgraph compile would be a constant: refused (dynamo reports the
    # TypeError as an unsupported exception; without fullgraph it graph-breaks and runs eagerly)
    with pytest.raises(Exception, match="explicit integer seed"):
        torch.compile(lambda m, l: T.rsample_normal(m, l), fullgraph=True, backend=backend)(mu, lv)
    loose = torch.compile(lambda m, l: T.rsample_normal(m, l) * 2, backend="eager")
    assert not torch.equal(loose(mu, lv), loose(mu, lv))  # a graph break: fresh noise per call


def test_docs_page_examples_run():
    # docs/torch.md's examples, including the torch.compile ones that tests/test_docs.py skips
    ns = {"__name__": "__doc_example__"}
    for code in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "torch.md").read_text(), flags=re.S):
        exec(compile(code, "docs/torch.md", "exec"), ns)


# ------------------------------------------------------------------------------ seeds
def test_seed_full_64_bit_range_and_one_key_for_forward_and_backward():
    mu = torch.randn(2, 3, dtype=F64, requires_grad=True)
    lv = torch.randn(2, 3, dtype=F64, requires_grad=True)
    big = 2**64 - 3  # an int64 schema argument carries the same bits
    z = T.rsample_normal(mu, lv, seed=big)
    np.testing.assert_array_equal(
        z.detach().numpy(), S.rsample_normal(mu.detach().numpy(), lv.detach().numpy(), seed=big)
    )
    torch.manual_seed(0)  # torch's generator plays no part
    z1 = T.rsample_normal(mu, lv)  # seed=None: one fresh key, shared by forward and backward
    z1.sum().backward()
    eps = (z1.detach() - mu.detach()) / torch.exp(0.5 * lv.detach())
    torch.testing.assert_close(lv.grad, 0.5 * torch.exp(0.5 * lv.detach()) * eps)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_raises_clear_errors():
    mu, lv = torch.randn(3, 4), torch.randn(3, 4)
    L = torch.eye(4)
    with pytest.raises(TypeError, match="mu"):
        T.rsample_normal(torch.ones(3, 4, dtype=torch.int64), lv, seed=0)
    with pytest.raises(ValueError, match="logvar"):
        T.rsample_normal(mu, torch.randn(3, 5), seed=0)
    with pytest.raises(ValueError, match="n_samples"):
        T.normal_head(mu, lv, seed=0, n_samples=-1)
    with pytest.raises(ValueError, match="seed"):
        T.normal_head(mu, lv, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        T.normal_head(mu, lv, seed=1.5)
    with pytest.raises(ValueError, match="stream"):
        T.normal_head(mu, lv, seed=0, stream=-2)
    with pytest.raises(TypeError, match="exactly one"):
        T.normal_head(mu, lv, std=lv.exp(), seed=0)
    with pytest.raises(ValueError, match="std"):
        T.normal_head(mu, std=-torch.ones(3, 4), seed=0)
    with pytest.raises(ValueError, match="clamp"):
        T.rsample_normal(mu, lv, seed=0, clamp=(1.0, -1.0))
    with pytest.raises(ValueError, match="scale_tril"):
        T.rsample_mvn(mu, torch.ones(4, 4), seed=0)
    with pytest.raises(ValueError, match="scale_tril"):
        T.mvn_log_prob(mu, mu, -L)
    with pytest.raises(TypeError, match="exactly one"):
        T.mahalanobis(mu, mu, L, precision_tril=L)
    with pytest.raises(ValueError, match="x"):
        T.normal_log_prob(torch.randn(3, 5), mu, lv)
    with pytest.raises(ValueError, match="tau"):
        T.gumbel_softmax(mu, 0.0, seed=0)
    with pytest.raises(ValueError, match="logits"):
        T.gumbel_softmax(torch.full((2, 3), -inf), seed=0)
    with pytest.raises(ValueError, match="rewards"):
        T.gae(torch.randn(5), torch.randn(5))
    with pytest.raises(ValueError, match="values"):
        T.gae(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="gamma"):
        T.gae(torch.randn(5, 2), torch.randn(5, 2), gamma=1.5)
    with pytest.raises(TypeError, match="rewards"):
        T.gae(np.zeros((5, 2)), np.zeros((5, 2)))


# ------------------------------------------------------------------------------ CUDA
@needs_cuda
def test_cuda_tensors_run_on_torchs_current_stream():
    pytest.importorskip("cupy")
    inp = {k: v.detach().cuda().requires_grad_(v.requires_grad) for k, v in _inputs().items()}
    cpu = _inputs()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        got = _loss_and_grads(_all_ops, inp, 5)
    s.synchronize()
    want = _loss_and_grads(_all_ops, cpu, 5)
    for a, b in zip(got[0] + list(got[3]), want[0] + list(want[3])):
        assert a.is_cuda
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=1e-4)


@needs_cuda
def test_cuda_compile_fullgraph():
    pytest.importorskip("cupy")
    inp = {k: v.detach().cuda().requires_grad_(v.requires_grad) for k, v in _inputs().items()}
    got = _loss_and_grads(_compiled(), inp, 2)
    want = _loss_and_grads(_all_ops, inp, 2)
    for a, b in zip(got[0] + list(got[3]), want[0] + list(want[3])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_default_seed_after_a_graph_break_refills_the_generator():
    # A graph break runs rsample_normal's frames eagerly, and dynamo compiles those frames: the
    # package generator's block refill (NumPy uint64 arithmetic) must not be traced. 80 draws
    # cross the one-at-a-time keys after a reseed and a 64-key refill.
    pygenmod.manual_seed(5)
    loose = torch.compile(lambda m, l: T.rsample_normal(m, l) * 2, backend="eager")
    mu, lv = torch.randn(2, 3), torch.randn(2, 3)
    outs = [loose(mu, lv) for _ in range(80)]
    pygenmod.manual_seed(5)
    for o in outs:
        torch.testing.assert_close(o, T.rsample_normal(mu, lv) * 2)
