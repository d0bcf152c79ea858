"""pygenmod.torch's direct eager path (pygenmod/_torch_eager.py). For every op, in float32 and
float64 (the sampling ops also in float16 / bfloat16) on test_torch_ops' odd-shaped cases: a
plain eager call runs the op's kernel without torch's dispatcher and gives the same values and
gradients, bit for bit, as the op itself. Any call that is not plain (a torch function or
dispatch mode, FakeTensors, a functorch transform, meta tensors, jit tracing, the profiler,
keyword arguments, an argument outside the op's schema) goes through the op; kept scalar
tensors come only from plain calls."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
T = pytest.importorskip("pygenmod.torch")
from test_torch_ops import _HALF_IDS, _IDS, _opcheck_cases, _spatial_bwd_args  # noqa: E402

import pygenmod._torch_categorical  # noqa: E402,F401  (registers the categorical ops)
import pygenmod._torch_elbo  # noqa: E402,F401
import pygenmod.returns  # noqa: E402
from pygenmod._torch_eager import OPS  # noqa: E402


class _ThroughOps(torch.overrides.TorchFunctionMode):
    """A mode that changes nothing, except that calls inside it are not plain eager."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class _Spy:
    """Stands in for an EagerOp's custom op: counts the calls that go through the dispatcher."""

    def __init__(self, op):
        self.real, self.calls = op, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def spy(monkeypatch):
    def install(eager):
        s = _Spy(eager.op)
        monkeypatch.setattr(eager, "op", s)
        return s

    return install


def _flat(out):
    return [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(o, torch.Tensor)]


def _grads(out, leaves):
    """Gradients of the sum of every differentiable output (None where unused)."""
    outs = [o for o in _flat(out) if o.requires_grad]
    if not outs or not leaves:
        return []
    total = sum(o.double().sum() for o in outs)
    return torch.autograd.grad(total, leaves, allow_unused=True)


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x is None) == (y is None)
        if x is not None:
            torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)


_CASES = [(c, dt) for dt in (torch.float32, torch.float64) for c in _IDS] + [
    (c, dt) for dt in (torch.float16, torch.bfloat16) for c in _HALF_IDS
]


@pytest.mark.parametrize(("case", "dt"), _CASES, ids=[f"{c}-{str(dt)[6:]}" for c, dt in _CASES])
def test_direct_path_equals_the_op(case, dt, spy):
    name, op, args = next(c for c in _opcheck_cases(dt) if c[0] == case)
    if args is None:
        args = _spatial_bwd_args(dt)
    eager = OPS[op._qualified_op_name]
    s = spy(eager)
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]

    direct = eager(*args)
    assert s.calls == 0, "a plain eager call must not go through the dispatcher"
    with _ThroughOps():
        through = eager(*args)
    assert s.calls == 1
    _same(_flat(direct), _flat(through))
    assert [o.requires_grad for o in _flat(direct)] == [o.requires_grad for o in _flat(through)]
    _same(_grads(direct, leaves), _grads(through, leaves))


def _normal_head_args(mu, lv):
    return (mu, lv, 0, None, 7, -1, 0, 0, -float("inf"), float("inf"), False)


def test_not_plain_calls_take_the_op(spy):
    eager = OPS["pygenmod::sampling_normal_head"]
    s = spy(eager)
    mu, lv = torch.randn(3, 4), torch.randn(3, 4)
    ref = eager(*_normal_head_args(mu, lv))
    assert s.calls == 0
    # a Parameter is a plain tensor
    eager(*_normal_head_args(torch.nn.Parameter(mu.clone()), lv))
    assert s.calls == 0

    # keyword arguments: the dispatcher binds them
    out = eager(*_normal_head_args(mu, lv)[:-1], log_q=False)
    assert s.calls == 1
    _same(_flat(out), _flat(ref))

    # an argument outside the schema: the dispatcher's own error, as before
    with pytest.raises((TypeError, RuntimeError)):
        eager(*_normal_head_args(mu.numpy(), lv))
    assert s.calls == 2
    # an int where the schema says bool: the dispatcher converts it
    eager(*_normal_head_args(mu, lv)[:-1], 0)
    assert s.calls == 3

    # FakeTensors (a dispatch mode): the op's fake kernel
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fz = eager(*_normal_head_args(mode.from_tensor(mu), mode.from_tensor(lv)))
    assert s.calls == 4 and fz[0].shape == ref[0].shape

    # a functorch transform: vmap over a leading axis gives the per-slice results
    out = torch.func.vmap(lambda m, v: eager(*_normal_head_args(m, v))[1])(mu[:, None], lv[:, None])
    assert s.calls >= 5
    assert out.shape == (3, 1)


def test_eager_wrappers_take_the_direct_path(spy):
    # the public wrappers, forward and backward: no call reaches the dispatcher
    head, head_bwd = OPS["pygenmod::sampling_normal_head"], OPS["pygenmod::sampling_normal_head_backward"]
    s, sb = spy(head), spy(head_bwd)
    mu = torch.randn(2, 4, requires_grad=True)
    lv = torch.randn(2, 4, requires_grad=True)
    z = T.rsample_normal(mu, lv, seed=3)
    z.sum().backward()
    assert (s.calls, sb.calls) == (0, 0)
    with torch.no_grad():
        T.rsample_normal(mu, lv, seed=3)
    assert s.calls == 0
    g_direct = (mu.grad.clone(), lv.grad.clone())
    mu.grad = lv.grad = None
    with _ThroughOps():
        z2 = T.rsample_normal(mu, lv, seed=3)
        z2.sum().backward()
    assert s.calls == 1  # the forward; torch runs the backward op with the mode stack empty
    torch.testing.assert_close(z2, z, rtol=0, atol=0)
    _same(g_direct, (mu.grad, lv.grad))


def test_second_derivatives_raise_as_the_op_does():
    # the backward ops have no autograd formula: differentiating a gradient raises torch's own
    # error on the direct path too (its autograd.Function defers to the op there)
    g = torch.Generator().manual_seed(0)
    p = torch.randn(3, 6, generator=g, dtype=torch.float64)
    q = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)

    def second():
        (d,) = torch.autograd.grad(T.categorical_kl(p, q).sum(), q, create_graph=True)
        return torch.autograd.grad(d.sum(), q)

    with pytest.raises(RuntimeError, match="no autograd formula"):
        second()
    with _ThroughOps(), pytest.raises(RuntimeError, match="no autograd formula"):
        second()


def test_scalar_arguments_take_the_numbers_path():
    # a Python float becomes one kept 0-d tensor (no torch.tensor per call), and a 0-d CPU
    # tensor reaches the NumPy API as a number: the same results, bit for bit, as a tensor
    # argument of the same value, for float32 and float64
    from pygenmod._torch_common import scalar_tensor

    a = scalar_tensor(0.97, torch.float32, torch.device("cpu"))
    assert a is scalar_tensor(0.97, torch.float32, torch.device("cpu"))
    assert a.dtype == torch.float32 and a.shape == ()
    assert scalar_tensor(0.97, torch.float64, torch.device("cpu")).dtype == torch.float64
    z, nz = (scalar_tensor(v, torch.float64, torch.device("cpu")) for v in (0.0, -0.0))
    assert str(z.item()) == "0.0" and str(nz.item()) == "-0.0"

    g = torch.Generator().manual_seed(5)
    for dt in (torch.float32, torch.float64):
        rew, val = torch.randn(9, 3, generator=g, dtype=dt), torch.randn(9, 3, generator=g, dtype=dt)
        by_float = T.gae(rew, val, gamma=0.97, lam=0.9)
        by_tensor = T.gae(rew, val, gamma=torch.full((3,), 0.97, dtype=dt), lam=torch.full((3,), 0.9, dtype=dt))
        _same(by_float, by_tensor)
        x = torch.randn(2, 3, 5, 4, generator=g, dtype=dt)
        _same((T.spatial_softmax(x, 0.7),), (T.spatial_softmax(x, torch.full((3,), 0.7, dtype=dt)),))


def test_other_callers_that_must_see_the_op(spy):
    eager = OPS["pygenmod::sampling_kl_normal"]
    s = spy(eager)
    mu, lv = torch.randn(3, 4), torch.randn(3, 4)
    args = (mu, lv, 0, None, None, -float("inf"), float("inf"))
    ref = eager(*args)
    assert s.calls == 0
    # meta tensors (no data): the op's fake kernel
    out = eager(mu.to("meta"), lv.to("meta"), *args[2:])
    assert s.calls == 1 and out.device.type == "meta" and out.shape == ref.shape
    # torch.jit.trace records the op (not its NumPy calls, as constants)
    traced = torch.jit.trace(lambda m, v: eager(m, v, *args[2:]), (mu, lv), check_trace=False)
    assert "pygenmod::sampling_kl_normal" in str(traced.graph)
    torch.testing.assert_close(traced(mu, lv), ref, rtol=0, atol=0)
    # the profiler lists the op
    with torch.profiler.profile() as prof:
        eager(*args)
    assert any(e.name == "pygenmod::sampling_kl_normal" for e in prof.events())


def test_kept_scalars_come_only_from_plain_calls():
    # a float temperature's tensor kept from an inference-mode call would be an inference
    # tensor (not savable for a later backward); one from a FakeTensorMode call a FakeTensor
    x = torch.randn(2, 3, 5, 4)
    with torch.inference_mode():
        T.spatial_softmax(x, 0.6125)
    xg = x.clone().requires_grad_()
    T.spatial_softmax(xg, 0.6125).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()

    from torch._subclasses.fake_tensor import FakeTensorMode

    rew, val = torch.randn(9, 3), torch.randn(9, 3)
    with FakeTensorMode() as mode:
        T.gae(mode.from_tensor(rew), mode.from_tensor(val), gamma=0.9375)
    got = T.gae(rew, val, gamma=0.9375)
    want = pygenmod.returns.gae(rew.numpy(), val.numpy(), gamma=0.9375)
    assert type(got.advantages) is torch.Tensor
    np.testing.assert_array_equal(got.advantages.numpy(), want.advantages)


@pytest.mark.parametrize("dt", [torch.float32, torch.float64])
def test_tiny_calls_reach_the_one_call_paths(dt, monkeypatch):
    """The ops' NumPy-side calls take the compiled one-call paths (pygenmod._fast) where their
    arguments allow: spatial softmax forward and backward (with the forward's saved keypoints and
    stats), the Gumbel-softmax forward and backward (from the saved y_soft)."""
    from pygenmod import _fast

    used = []
    real = _fast.cpu_kernel

    def recording(family, name):
        fn = real(family, name)
        if fn is None:
            return None

        def call(*args):
            out = fn(*args)
            used.append((name, out is not None, tuple(a is not None for a in args)))
            return out

        return call

    monkeypatch.setattr(_fast, "cpu_kernel", recording)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=dt, requires_grad=True)
    T.spatial_softmax(x, 0.8).sum().backward()
    assert ("forward_fast", True, (True, True, True)) in used
    assert ("backward_fast", True, (True, True, True, True, True)) in used  # saved keypoints, stats
    used.clear()
    logits = torch.randn(4, 6, generator=g, dtype=dt, requires_grad=True)
    T.gumbel_softmax(logits, tau=0.5, seed=3).square().sum().backward()
    assert [n for n, ok, _ in used if ok] == ["gumbel_softmax_fast", "gumbel_softmax_backward_fast"]
