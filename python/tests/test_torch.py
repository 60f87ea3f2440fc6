"""unitfp8.torch: custom operators (opcheck), torch.compile / export, autograd against float64
math with the same FP8 rounding, modules, conversion helpers, threads, CUDA error behaviour."""

import math
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import unitfp8  # noqa: E402
import unitfp8.torch as ut  # noqa: E402
from unitfp8.torch import _ops  # noqa: E402
from unitfp8.torch.nn import ResidualMix, UnitScaledLinear, convert_to_unit_scaled, mus_param_groups  # noqa: E402

from reference import E4M3, E5M2, cast_ref, mix_coeffs  # noqa: E402

E4 = torch.float8_e4m3fn
E5 = torch.float8_e5m2


@pytest.fixture
def gen(request):
    seed = abs(hash(request.node.nodeid)) % (2**31)
    return torch.Generator().manual_seed(seed)


def exact(gen, shape, lim=32):
    """Values k/8 (|k| <= lim): representable in E4M3 after rounding, and every GEMM sum of them
    is exact in f32."""
    v = torch.randint(-lim, lim + 1, shape, generator=gen).double() / 8
    return v.to(E4).to(torch.float32)


def q(t, dtype):
    """The saturating FP8 rounding of t, as float64 (the reference's rounding, via ml_dtypes)."""
    np_dtype = E4M3 if dtype == E4 else E5M2
    return torch.from_numpy(cast_ref(t.detach().float().numpy(), np_dtype).astype(np.float64))


def bits_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    if a.element_size() == 1:
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8))
    elif a.element_size() == 2:
        assert torch.equal(a.view(torch.int16), b.view(torch.int16))
    else:
        assert torch.equal(a.view(torch.int32), b.view(torch.int32))


# ---------------------------------------------------------------------------------------------
# operators


def _op_samples(gen):
    x = torch.randn(6, 10, generator=gen)
    f = torch.randn(6, 10, generator=gen)
    xg = x.clone().requires_grad_(True)
    fg = f.clone().requires_grad_(True)
    a8 = torch.randn(5, 12, generator=gen).to(E4)
    b8 = torch.randn(7, 12, generator=gen).to(E5)
    x8 = torch.randn(5, 12, generator=gen).to(E4)
    w8 = torch.randn(9, 12, generator=gen).to(E4)
    dy8 = torch.randn(5, 9, generator=gen).to(E5)
    return {
        _ops.cast: [(x, E4, 1.0, 0, 0), (x.bfloat16(), E5, 2.0, 2, 11), (x, torch.bfloat16, 1.0, 1, 0),
                    (x, E5, 1.0, 2, 11, torch.tensor(3))],
        _ops.cast_transpose: [(x, E4, 1.0, 0, 0), (x.t(), E5, 1.0, 2, 5)],
        _ops.residual_mix: [(x, f, 0.3), (xg, fg, 0.1), (xg.bfloat16(), fg.bfloat16(), 0.5)],
        _ops.residual_mix_fp8: [(x, f, 0.3, E4, 0, 0), (x.half(), f.half(), 0.2, E5, 2, 3)],
        _ops.residual_mix_: [(x.clone(), f, 0.4)],
        _ops.residual_mix_backward: [(x, 0.3), (x.half(), 0.7)],
        _ops.residual_mix_backward_fp8: [(x, 0.3, E5, 0, 0)],
        _ops.gemm: [(a8, b8.t(), 0.5, torch.float32), (a8, b8.t(), 1.0, torch.bfloat16)],
        _ops.linear_forward: [(x8, w8, 0.25, torch.float32), (x8, w8, 1.0, torch.bfloat16)],
        _ops.linear_backward_data: [(dy8, w8, 0.25, torch.float32)],
        _ops.linear_backward_weight: [(dy8, x8, 0.25)],
    }


def _fp8_aware_allclose(real):
    """PyTorch's schema check compares inputs before and after the call with torch.allclose,
    which has no FP8 kernel on CPU: compare FP8 tensors by their bytes instead."""

    def allclose(a, b, *args, **kwargs):
        if a.dtype in (E4, E5) and b.dtype == a.dtype:
            return torch.equal(a.view(torch.uint8), b.view(torch.uint8))
        return real(a, b, *args, **kwargs)

    return allclose


def test_opcheck_every_op(gen, monkeypatch):
    monkeypatch.setattr(torch, "allclose", _fp8_aware_allclose(torch.allclose))
    samples = _op_samples(gen)
    assert set(samples) == set(_ops.ALL_OPS)
    for op, cases in samples.items():
        for args in cases:
            torch.library.opcheck(op, args)
    # The FP8 copy's autograd with inputs that need grad: the AOT test cannot sum an FP8
    # output (PyTorch has no FP8 sum), so it runs the other three checks; the gradients
    # themselves are tested in test_residual_mix_gradients_exact.
    xg = torch.randn(3, 4, generator=gen, requires_grad=True)
    torch.library.opcheck(
        _ops.residual_mix_fp8,
        (xg, xg.detach().clone().requires_grad_(True), 0.3, E4, 0, 0),
        test_utils=("test_schema", "test_autograd_registration", "test_faketensor"),
    )


def test_ops_match_numpy(gen):
    x = torch.randn(33, 17, generator=gen) * 40
    bits_equal(ut.cast(x, E4), torch.from_numpy(unitfp8.cast(x.numpy(), E4M3).view(np.uint8)).view(E4))
    y, yt = ut.cast_transpose(x, E5, rounding="stochastic", seed=3)
    ny, nyt = unitfp8.cast_transpose(x.numpy(), E5M2, rounding="stochastic", seed=3)
    bits_equal(y, torch.from_numpy(ny.view(np.uint8)).view(E5))
    bits_equal(yt, torch.from_numpy(nyt.view(np.uint8)).view(E5))
    # non-contiguous input: the op makes the contiguous copy itself, results unchanged
    bits_equal(ut.cast(x.t(), E4), ut.cast(x.t().contiguous(), E4))
    a8 = torch.randn(9, 40, generator=gen).to(E4)
    b8 = torch.randn(23, 40, generator=gen).to(E4)
    c = ut.gemm(a8, b8.t(), alpha=0.5)  # b passed as a strided (transposed) view
    ref = unitfp8.gemm(a8.view(torch.uint8).numpy().view(E4M3), b8.view(torch.uint8).numpy().view(E4M3).T, alpha=0.5)
    bits_equal(c, torch.from_numpy(ref))


def test_op_errors_name_the_argument():
    x = torch.zeros(4, 8)
    with pytest.raises(TypeError, match="dtype"):
        ut.cast(x, torch.int8)
    with pytest.raises(ValueError, match="tau"):
        ut.residual_mix(x, x, 2.0)
    with pytest.raises(ValueError, match="f must have x's shape"):
        ut.residual_mix(x, x[:2], 0.5)
    with pytest.raises(NotImplementedError, match="rounding"):
        ut.cast(x, torch.bfloat16, rounding="stochastic")
    with pytest.raises(ValueError, match="w must have 8 columns"):
        _ops.linear_forward(x.to(E4), torch.zeros(3, 5).to(E4), 1.0, torch.float32)
    with pytest.raises(TypeError, match="dy must be"):
        _ops.linear_backward_data(x.to(E4), torch.zeros(8, 3).to(E4), 1.0, torch.float32)
    with pytest.raises(ValueError, match="x must end in fan_in"):
        ut.unit_scaled_linear(x, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="tau"):
        ResidualMix(1.5)


def _bad_torch_calls():
    x = torch.zeros(4, 8)
    x8, w8, dy8 = x.to(E4), torch.zeros(3, 8).to(E4), torch.zeros(4, 3).to(E5)
    meta = torch.device("meta")
    step = torch.tensor(3)
    return [
        # alpha <= 0 would be read by the library as "the default"
        (lambda: _ops.linear_forward(x8, w8, -1.0, torch.float32), ValueError, "alpha must be positive"),
        (lambda: _ops.linear_forward(x8, w8, 0.0, torch.float32), ValueError, "alpha must be positive"),
        (lambda: _ops.linear_backward_data(dy8, w8, -0.0, torch.float32), ValueError, "alpha must be positive"),
        (lambda: _ops.linear_backward_weight(dy8, x8, 1e-50), ValueError, "alpha must be positive"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8), alpha=-0.5), ValueError, "alpha must be positive"),
        (lambda: UnitScaledLinear(8, 3, alpha=0.0), ValueError, "alpha must be positive"),
        (lambda: UnitScaledLinear.from_linear(torch.nn.Linear(8, 3), init="keep", alpha=0.0), ValueError, "alpha"),
        # finite in float64 but not in float32
        (lambda: ut.gemm(x8, w8.T, alpha=1e300), ValueError, "alpha must be finite in float32"),
        (lambda: _ops.linear_forward(x8, w8, 1e300, torch.float32), ValueError, "alpha must be finite in float32"),
        (lambda: ut.cast(x, E4, scale=1e39), ValueError, "scale must be finite in float32"),
        # one device for all tensors (a meta tensor would send the call to the shape function)
        (lambda: _ops.linear_forward(x8, w8.to(meta), 0.125, torch.float32), ValueError, "w must be on x's device"),
        (lambda: _ops.linear_backward_data(dy8, w8.to(meta), 0.125, torch.float32), ValueError, "w must be on dy's device"),
        (lambda: _ops.linear_backward_weight(dy8, x8.to(meta), 0.125), ValueError, "x must be on dy's device"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8, device=meta)), ValueError, "weight must be on x's device"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8), torch.zeros(3, device=meta)), ValueError, "bias must be on"),
        (lambda: ut.cast(x, E4, rounding="stochastic", step=step.to(meta)), ValueError, "step must be on the CPU"),
        (lambda: ut.cast(x, E4, rounding="stochastic", step=torch.tensor(True)), TypeError, "step must be"),
        (lambda: ut.cast(x, E4, seed=1.7), TypeError, "seed must be an int"),
        # arguments named as the caller knows them
        (lambda: UnitScaledLinear(8, 4, dtype=torch.float64), TypeError, "dtype (of the master weight)"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8, dtype=torch.float64)), TypeError, "weight must be"),
        (lambda: ut.unit_scaled_linear(torch.tensor(1.0), torch.zeros(3, 8)), ValueError, "x must end in fan_in"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8), out_dtype=torch.int32), TypeError, "out_dtype"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8), torch.zeros(3, 1)), ValueError, "bias must have shape"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8), step=1.5), TypeError, "step must be an int"),
        (lambda: UnitScaledLinear(0, 4), ValueError, "in_features and out_features must be at least 1"),
        (lambda: UnitScaledLinear(8, 4, out_dtype=torch.float64), TypeError, "out_dtype"),
        (lambda: UnitScaledLinear(8, 4, rounding="up"), ValueError, "rounding"),
        (lambda: ut.gemm(x8, w8.T, alpha=None), TypeError, "alpha must be a real number"),
        (lambda: ut.residual_mix(x, x, None), TypeError, "tau must be a real number"),
        (lambda: ResidualMix("0.5"), TypeError, "tau must be a real number"),
        (lambda: mus_param_groups(torch.nn.Linear(2, 2), float("nan"), width=4, base_width=2), ValueError, "lr"),
        (lambda: mus_param_groups(torch.nn.Linear(2, 2), 0.1, width=float("nan"), base_width=2), ValueError, "width"),
        (lambda: mus_param_groups(torch.nn.Linear(2, 2), 0.1, width=4, base_width=2, weight_decay=-1), ValueError, "weight_decay"),
        (lambda: ut.unit_scaled_linear(x, torch.zeros(3, 8), seed=1.7), TypeError, "seed must be an int"),
        (lambda: ut.residual_mix(x, x, torch.tensor(True)), TypeError, "tau must be a real number"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_torch_calls())))
def test_bad_arguments_raise_naming_them(case):
    fn, exc, text = _bad_torch_calls()[case]
    with pytest.raises(exc) as info:
        fn()
    assert text in str(info.value)


def test_scalars_of_numpy_and_torch_types_are_taken(gen):
    """Seeds and sizes may be numpy ints or 0-d integer tensors, multipliers numpy floats or
    0-d tensors; a 0-d bias broadcasts as in F.linear."""
    x = torch.randn(4, 8, generator=gen)
    ref = ut.cast(x, E4, rounding="stochastic", seed=5)
    for seed in (np.int64(5), torch.tensor(5)):
        got = ut.cast(x, E4, rounding="stochastic", seed=seed)
        assert torch.equal(got.view(torch.uint8), ref.view(torch.uint8))
    lin = UnitScaledLinear(np.int64(8), torch.tensor(3), alpha=np.float32(0.25), seed=torch.tensor(2))
    assert (lin.in_features, lin.out_features, lin.alpha, lin.seed) == (8, 3, 0.25, 2)
    w = torch.randn(3, 8, generator=gen)
    y = ut.unit_scaled_linear(x, w, torch.tensor(0.5), alpha=torch.tensor(0.125))
    torch.testing.assert_close(y, ut.unit_scaled_linear(x, w, alpha=0.125) + 0.5, rtol=0, atol=0)


def test_cast_transpose_of_views_with_shared_rows(gen):
    """Expanded (row stride 0) and transposed inputs are copied first, as documented."""
    row = torch.randn(1, 9, generator=gen) * 4
    x = row.expand(5, 9)
    y, yt = ut.cast_transpose(x, E4)
    ref = ut.cast(x.contiguous(), E4)
    assert torch.equal(y.view(torch.uint8), ref.view(torch.uint8))
    assert torch.equal(yt.view(torch.uint8), ref.t().contiguous().view(torch.uint8))
    z = torch.randn(9, 5, generator=gen).t()
    y2, _ = ut.cast_transpose(z, E4)
    assert torch.equal(y2.view(torch.uint8), ut.cast(z.contiguous(), E4).view(torch.uint8))


def test_inplace_mix_refuses_autograd():
    """The in-place mix has no derivative: with grad mode on it refuses inputs that require
    grad (instead of leaving gradients that ignore it); under no_grad it runs."""
    a0 = torch.ones(3, requires_grad=True)
    f = torch.full((3,), 2.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        _ops.residual_mix_(a0 * 1.0, f, 0.36)
    leaf = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        _ops.residual_mix_(leaf, torch.ones(3), 0.36)
    with torch.no_grad():
        _ops.residual_mix_(leaf, torch.full((3,), 2.0), 0.36)
    assert torch.equal(leaf.detach(), torch.full((3,), 0.8 + 0.6 * 2.0))
    plain = torch.ones(3)
    _ops.residual_mix_(plain, torch.full((3,), 2.0), 0.36)
    assert torch.equal(plain, torch.full((3,), 0.8 + 0.6 * 2.0))


def test_cuda_tensors_without_cuda_backend_raise_clearly():
    if unitfp8.cuda_available():
        pytest.skip("this library runs CUDA here; the error path does not apply")
    # The library reports why CUDA cannot run; a CUDA tensor would be refused with that reason.
    with pytest.raises(NotImplementedError, match="CUDA back end"):
        _ops._cuda_stream(torch.zeros(1))
    if torch.cuda.is_available():  # a GPU but a library without CUDA
        with pytest.raises(NotImplementedError, match="CUDA back end"):
            ut.cast(torch.zeros(4, device="cuda"), E4)


# ---------------------------------------------------------------------------------------------
# autograd


@pytest.mark.parametrize("alpha", [0.25, None])
def test_unit_scaled_linear_exact_gradients(gen, alpha):
    """Exact-valued operands: forward and both gradients equal the float64 math bit for bit; a
    wrong transpose, a wrong α or a missing E5M2 cast of dy would not."""
    batch, fan_in, fan_out = 12, 48, 20
    x = exact(gen, (batch, fan_in)).requires_grad_(True)
    w = exact(gen, (fan_out, fan_in)).requires_grad_(True)
    dy = exact(gen, (batch, fan_out), lim=16).to(E5).float()
    a = unitfp8.default_alpha(fan_in) if alpha is None else alpha
    y = ut.unit_scaled_linear(x, w, alpha=alpha)
    y.backward(dy)
    x64, w64, dy64 = x.detach().double(), w.detach().double(), dy.double()
    a64 = float(np.float32(a))
    y_ref = (a64 * (x64 @ w64.T)).float()
    if alpha is not None:
        bits_equal(y.detach(), y_ref)
        bits_equal(x.grad, (a64 * (dy64 @ w64)).float())
        bits_equal(w.grad, (a64 * (dy64.T @ x64)).float())
    else:  # α = 1/sqrt(48) is not a power of two: one f32 rounding of α·(exact sum)
        torch.testing.assert_close(y.detach(), y_ref, rtol=2**-23, atol=0)
        torch.testing.assert_close(x.grad, (a64 * (dy64 @ w64)).float(), rtol=2**-23, atol=0)
        torch.testing.assert_close(w.grad, (a64 * (dy64.T @ x64)).float(), rtol=2**-23, atol=0)
    # the checks above can fail: the transposed or differently scaled products differ
    assert not torch.allclose(w.grad, (a64 * (dy64.T @ x64)).float().flip(0))
    assert not torch.allclose(x.grad, 2 * (a64 * (dy64 @ w64)).float())


def test_unit_scaled_linear_general_values(gen):
    """Random operands: results equal float64 math on the FP8-rounded operands within the f32
    accumulation bound."""
    batch, fan_in, fan_out = 3, 5, 64  # [3, 5, 64] input: leading dims are flattened
    x = (torch.randn(batch, fan_in, fan_out, generator=gen) * 3).requires_grad_(True)
    w = torch.randn(40, fan_out, generator=gen).requires_grad_(True)
    dy = torch.randn(batch, fan_in, 40, generator=gen)
    y = ut.unit_scaled_linear(x, w)
    y.backward(dy)
    a = float(np.float32(unitfp8.default_alpha(fan_out)))
    x8, w8 = q(x.reshape(-1, fan_out), E4), q(w, E4)
    dy8 = q(dy.reshape(-1, 40), E5)
    y_ref = a * (x8 @ w8.T)
    dx_ref = a * (dy8 @ w8)
    dw_ref = a * (dy8.T @ x8)

    def close(got, ref, absprod):
        bound = 4 * (fan_out + 2) * 2.0**-24 * absprod + 1e-30
        assert torch.all((got.double() - ref).abs() <= bound), (got.double() - ref).abs().max()

    close(y.detach().reshape(-1, 40), y_ref, a * (x8.abs() @ w8.abs().T))
    close(x.grad.reshape(-1, fan_out), dx_ref, a * (dy8.abs() @ w8.abs()))
    close(w.grad, dw_ref, a * (dy8.abs().T @ x8.abs()))


def test_unit_scaled_linear_on_the_amx_kernel(gen):
    """With the opt-in AMX GEMM kernel (where the CPU has it): forward and both gradients within
    its documented bound of the float64 math; large enough (> 32 rows) to run the AMX kernel
    itself in every GEMM."""
    try:
        unitfp8.set_gemm_kernel("amx-bf16")
    except unitfp8.UnsupportedError:
        pytest.skip("this CPU or system has no usable AMX-BF16 (the kernel is opt-in)")
    try:
        batch, fan_in, fan_out = 96, 200, 72
        x = (torch.randn(batch, fan_in, generator=gen) * 3).requires_grad_(True)
        w = torch.randn(fan_out, fan_in, generator=gen).requires_grad_(True)
        dy = torch.randn(batch, fan_out, generator=gen)
        y = ut.unit_scaled_linear(x, w)
        y.backward(dy)
        a = float(np.float32(unitfp8.default_alpha(fan_in)))
        x8, w8, dy8 = q(x, E4), q(w, E4), q(dy, E5)

        def close(got, ref, absprod, k):
            bound = ((k / 32 + 4) * 2.0**-23 + 2.0**-22) * absprod + 1e-30
            assert torch.all((got.double() - ref).abs() <= bound), (got.double() - ref).abs().max()

        close(y.detach(), a * (x8 @ w8.T), a * (x8.abs() @ w8.abs().T), fan_in)
        close(x.grad, a * (dy8 @ w8), a * (dy8.abs() @ w8.abs()), fan_out)
        close(w.grad, a * (dy8.T @ x8), a * (dy8.abs().T @ x8.abs()), batch)
    finally:
        unitfp8.set_gemm_kernel(None)


def test_bf16_activations(gen):
    x = torch.randn(8, 32, generator=gen).bfloat16().requires_grad_(True)
    lin = UnitScaledLinear(32, 16)
    y = lin(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and lin.weight.grad.dtype == torch.float32
    x8, w8 = q(x, E4), q(lin.weight, E4)
    torch.testing.assert_close(y.double(), lin.alpha * (x8 @ w8.T), rtol=2**-8, atol=1e-6)


def test_residual_mix_gradients_exact(gen):
    tau = 0.3
    a, b = (float(c) for c in mix_coeffs(tau))
    x = torch.randn(5, 31, generator=gen, requires_grad=True)
    f = torch.randn(5, 31, generator=gen, requires_grad=True)
    g = torch.randn(5, 31, generator=gen)
    mix = ResidualMix(tau)
    out = mix(x, f)
    out.backward(g)
    xa = (torch.tensor(a) * x.detach()).float()
    fb = (torch.tensor(b) * f.detach()).float()
    bits_equal(out.detach(), xa + fb)
    bits_equal(x.grad, torch.tensor(a) * g)
    bits_equal(f.grad, torch.tensor(b) * g)
    out2, out8 = mix.forward_fp8(x, f)
    bits_equal(out2.detach(), out.detach())
    bits_equal(out8, ut.cast(out.detach(), E4))
    assert not out8.requires_grad


def test_stochastic_rounding_reproducible_per_seed_and_step(gen):
    x = torch.randn(16, 64, generator=gen)
    m1 = UnitScaledLinear(64, 32, rounding="stochastic", grad_rounding="stochastic", seed=5)
    m2 = UnitScaledLinear(64, 32, rounding="stochastic", grad_rounding="stochastic", seed=5)
    m2.load_state_dict(m1.state_dict())
    y1a, y2a = m1(x), m2(x)
    bits_equal(y1a, y2a)
    y1b = m1(x)  # next step: fresh random bits
    assert not torch.equal(y1a, y1b)
    m3 = UnitScaledLinear(64, 32, rounding="stochastic", seed=6)
    m3.load_state_dict(m2.state_dict())  # same weights and step as m2 after one step
    assert not torch.equal(m3(x), y1b)
    assert int(m1.step) == 2 and int(m2.step) == 1
    # the key of a step tensor equals the op's documented mix of (seed, step)
    k = ut.step_seed(5, 0, 1)
    bits_equal(ut.cast(x, E4, rounding="stochastic", seed=k, step=torch.tensor(7)),
               ut.cast(x, E4, rounding="stochastic", seed=_ops.mix_step(k & (2**64 - 1), 7)))


def test_stochastic_rounding_under_compile_needs_no_recompile(gen):
    """The step counter is a buffer read at run time: 12 compiled steps equal 12 eager ones
    with fullgraph=True (a Python-int counter would recompile every step and fail)."""
    torch._dynamo.reset()
    x = torch.randn(4, 32, generator=gen, requires_grad=True)
    m1 = UnitScaledLinear(32, 16, rounding="stochastic", grad_rounding="stochastic", seed=3)
    m2 = UnitScaledLinear(32, 16, rounding="stochastic", grad_rounding="stochastic", seed=3)
    m2.load_state_dict(m1.state_dict())
    c = torch.compile(m2, fullgraph=True)
    for _ in range(12):
        a, b = m1(x), c(x)
        bits_equal(a.detach(), b.detach())
        ga = torch.autograd.grad(a.sum(), m1.weight)[0]
        gb = torch.autograd.grad(b.sum(), m2.weight)[0]
        bits_equal(ga, gb)
    assert int(m1.step) == int(m2.step) == 12


# ---------------------------------------------------------------------------------------------
# torch.compile / export


class Block(torch.nn.Module):
    def __init__(self, d, tau=0.2):
        super().__init__()
        self.up = UnitScaledLinear(d, 2 * d)
        self.down = UnitScaledLinear(2 * d, d)
        self.mix = ResidualMix(tau)

    def forward(self, x):
        h, h8 = self.mix.forward_fp8(x, self.down(torch.relu(self.up(x))))
        return self.mix(h, self.down(torch.relu(self.up(h, x_fp8=h8))))


def test_compile_fullgraph_bit_for_bit(gen):
    torch.manual_seed(0)
    blk = Block(32)
    x = torch.randn(4, 8, 32, generator=gen, requires_grad=True)
    y = blk(x)
    y.backward(torch.ones_like(y))
    grads = [p.grad.clone() for p in blk.parameters()]
    gx = x.grad.clone()
    blk.zero_grad()
    x.grad = None
    cblk = torch.compile(blk, fullgraph=True)
    yc = cblk(x)
    yc.backward(torch.ones_like(yc))
    bits_equal(yc.detach(), y.detach())
    bits_equal(x.grad, gx)
    for p, g in zip(blk.parameters(), grads):
        bits_equal(p.grad, g)


def test_export(gen):
    blk = Block(16)
    x = torch.randn(3, 16, generator=gen)
    ep = torch.export.export(blk, (x,))
    names = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("unitfp8.linear_forward" in s for s in names), names
    bits_equal(ep.module()(x), blk(x))


# ---------------------------------------------------------------------------------------------
# conversion and optimizer groups


class Tiny(torch.nn.Module):
    def __init__(self, vocab=11, d=16):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.l1 = torch.nn.Linear(d, 4 * d, bias=False)
        self.l2 = torch.nn.Linear(4 * d, d, bias=False)
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, t):
        h = self.embed(t)
        h = self.norm(h + self.l2(torch.relu(self.l1(h))))
        return self.head(h)


def test_convert_and_param_groups():
    m = Tiny()
    head_w = m.head.weight.detach().clone()
    convert_to_unit_scaled(m)
    assert isinstance(m.l1, UnitScaledLinear) and isinstance(m.l2, UnitScaledLinear)
    assert type(m.head) is torch.nn.Linear and torch.equal(m.head.weight, head_w)
    assert isinstance(m.embed, torch.nn.Embedding)
    assert abs(m.l1.weight.std().item() - 1.0) < 0.1  # unit init
    out = m(torch.randint(0, 11, (2, 5)))
    out.sum().backward()
    groups = mus_param_groups(m, 1e-2, width=64, base_width=16, weight_decay=0.1)
    by = {g["name"]: g for g in groups}
    assert by["hidden"]["lr"] == pytest.approx(1e-2 * math.sqrt(16 / 64))
    assert by["hidden"]["lr"] * by["hidden"]["weight_decay"] == pytest.approx(1e-2 * 0.1)
    assert {id(p) for p in by["hidden"]["params"]} == {id(m.l1.weight), id(m.l2.weight)}
    assert by["embed_head"]["lr"] == 1e-2 and by["norm_bias"]["weight_decay"] == 0.0
    opt = torch.optim.AdamW(groups)
    opt.step()
    # init="keep" preserves the layer's function up to FP8 rounding
    lin = torch.nn.Linear(64, 32, bias=True)
    kept = UnitScaledLinear.from_linear(lin, init="keep")
    x = torch.randn(8, 64)
    torch.testing.assert_close(kept(x), lin(x), rtol=0.15, atol=0.05)


def test_convert_keeps_sharing():
    """A layer registered twice becomes one layer; tied weights stay tied; a weight shared with
    a module that is not converted is an error, not a silent untying."""

    class Shared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 8)
            self.b = self.a  # the same layer under two names
            self.c = torch.nn.Linear(8, 8)
            self.d = torch.nn.Linear(8, 8)
            self.d.weight = self.c.weight  # tied weights
            self.head = torch.nn.Linear(8, 2)

    m = convert_to_unit_scaled(Shared(), init="keep")
    assert isinstance(m.a, UnitScaledLinear) and m.b is m.a
    assert isinstance(m.c, UnitScaledLinear) and isinstance(m.d, UnitScaledLinear)
    assert m.d.weight is m.c.weight and m.d.bias is not m.c.bias
    assert type(m.head) is torch.nn.Linear
    names = [n for n, _ in m.named_parameters()]
    assert "d.weight" not in names and "c.weight" in names  # one parameter, one name
    kept_tied = Shared()
    kept_tied.head.weight = torch.nn.Parameter(torch.zeros(2, 8))
    kept_tied.c.weight = torch.nn.Parameter(torch.zeros(8, 8))
    kept_tied.d.weight = kept_tied.c.weight
    with pytest.raises(ValueError, match="d.weight is shared with c"):
        convert_to_unit_scaled(kept_tied, exclude=["d", "head"])


# ---------------------------------------------------------------------------------------------
# threads


def test_torch_threads(gen):
    lin = UnitScaledLinear(64, 48)
    xs = [torch.randn(32, 64, generator=gen) for _ in range(6)]
    with torch.no_grad():
        expect = [lin(x) for x in xs]
    got = [None] * len(xs)

    def work(i):
        with torch.no_grad():
            for _ in range(10):
                got[i] = lin(xs[i])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for e, g in zip(expect, got):
        bits_equal(e, g)
