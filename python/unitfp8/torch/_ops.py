"""The unitfp8 kernels as PyTorch custom operators (``torch.ops.unitfp8.*``).

Each operator has a fake (meta) implementation, so it runs under FakeTensor,
``torch.compile(fullgraph=True)`` and ``torch.export`` without graph breaks. CPU tensors run on
the library's CPU back end; CUDA tensors run its ``unitfp8_cuda_*`` entry points on
``torch.cuda.current_stream()`` when the library was built with CUDA (else a clear error).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .. import _args, _lib

CODE_OF = {
    torch.float32: _lib.F32,
    torch.bfloat16: _lib.BF16,
    torch.float16: _lib.F16,
    torch.float8_e4m3fn: _lib.E4M3,
    torch.float8_e5m2: _lib.E5M2,
}
FLOAT = (torch.float32, torch.bfloat16, torch.float16)
FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)
GEMM_OUT = (torch.float32, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2)


def _check_dtype(dtype: torch.dtype, name: str, allowed) -> int:
    if dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise TypeError(f"{name} must be one of {names}, got {dtype}")
    return CODE_OF[dtype]


def _check_rounding(rounding: int, dtype: torch.dtype) -> None:
    if rounding not in (0, 1, 2):
        raise _lib.InvalidArgumentError(f"rounding must be 0, 1 or 2 (a unitfp8.Rounding), got {rounding}")
    if rounding == 2 and dtype not in FP8:
        raise _lib.UnsupportedError(f"rounding: stochastic rounding needs an FP8 dtype, got {dtype}")


def _same_device(a: Tensor, b: Tensor, an: str, bn: str) -> None:
    if a.device != b.device:
        raise _lib.InvalidArgumentError(f"{bn} must be on {an}'s device {a.device}, got {b.device}")


def _check_step(x: Tensor, step: Optional[Tensor]) -> None:
    if step is None:
        return
    if step.numel() != 1 or step.dtype.is_floating_point or step.dtype.is_complex or step.dtype == torch.bool:
        raise TypeError(f"step must be a one-element integer tensor, got {step.dtype} of shape {tuple(step.shape)}")
    if step.device != x.device and step.device.type != "cpu":
        raise _lib.InvalidArgumentError(f"step must be on the CPU or x's device {x.device}, got {step.device}")


def _same(a: Tensor, b: Tensor, an: str, bn: str) -> None:
    if a.shape != b.shape:
        raise _lib.InvalidArgumentError(f"{bn} must have {an}'s shape {tuple(a.shape)}, got {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"{bn} must have {an}'s dtype {a.dtype}, got {b.dtype}")
    _same_device(a, b, an, bn)


def mix_step(seed: int, step: int) -> int:
    """The stochastic-rounding key of step ``step`` for a tensor keyed ``seed`` (SplitMix64)."""
    z = (int(seed) + (int(step) + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def _cuda_stream(t: Tensor):
    """The current stream of ``t``'s device, after checking that the library can run CUDA."""
    st = _lib.cuda_status()
    if st != _lib.OK:
        why = _lib.describe(st)
        raise _lib.UnsupportedError(
            f"{t.device} tensors need the unitfp8 CUDA back end, which cannot run here: {why} "
            f"(status {st}); build the package with UNITFP8_FEATURES=cuda on a machine with nvcc, "
            "or move the tensors to the CPU",
            _lib.ERROR_UNSUPPORTED,
        )
    return torch.cuda.current_stream(t.device).cuda_stream


def _device_kind(t: Tensor, name: str) -> str:
    if t.device.type == "cpu":
        return "cpu"
    if t.device.type == "cuda":
        return "cuda"
    raise _lib.UnsupportedError(f"{name} is on {t.device}: unitfp8 runs CPU and CUDA tensors only")


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("unitfp8::cast", mutates_args=())
def cast(
    x: Tensor, dtype: torch.dtype, scale: float, rounding: int, seed: int, step: Optional[Tensor] = None
) -> Tensor:
    """``round(x * scale)`` to ``dtype`` (see :func:`unitfp8.cast`). ``step`` (optional 0-dim
    integer tensor, read at run time) makes the stochastic-rounding key ``mix_step(seed, step)``,
    so a training step counter kept in a buffer needs no recompilation under ``torch.compile``."""
    _check_step(x, step)
    src = _check_dtype(x.dtype, "x.dtype", tuple(CODE_OF))
    dst = _check_dtype(dtype, "dtype", tuple(CODE_OF))
    _check_rounding(rounding, dtype)
    _args.scale(scale)
    if step is not None:
        seed = mix_step(seed, int(step.item()))
    x = x.contiguous()
    y = torch.empty(x.shape, dtype=dtype, device=x.device)
    if _device_kind(x, "x") == "cuda":
        stream = _cuda_stream(x)
        st = _lib.cuda_cast(_ptr(x), src, _ptr(y), dst, x.numel(), scale, rounding, _args.seed(seed), None, stream)
    else:
        st = _lib.cast(_ptr(x), src, _ptr(y), dst, x.numel(), scale, rounding, _args.seed(seed), None)
    _lib.check(st, "unitfp8::cast")
    return y


@cast.register_fake
def _(x, dtype, scale, rounding, seed, step=None):
    _check_step(x, step)
    _check_dtype(dtype, "dtype", tuple(CODE_OF))
    return torch.empty(x.shape, dtype=dtype, device=x.device)


@torch.library.custom_op("unitfp8::cast_transpose", mutates_args=())
def cast_transpose(x: Tensor, dtype: torch.dtype, scale: float, rounding: int, seed: int) -> Tuple[Tensor, Tensor]:
    """``(round(x*scale), round(x*scale).T)`` of a 2-D ``x`` in one pass, both contiguous."""
    if x.dim() != 2:
        raise _lib.InvalidArgumentError(f"x must be 2-D, got shape {tuple(x.shape)}")
    src = _check_dtype(x.dtype, "x.dtype", tuple(CODE_OF))
    dst = _check_dtype(dtype, "dtype", tuple(CODE_OF))
    _check_rounding(rounding, dtype)
    _args.scale(scale)
    rows, cols = x.shape
    unit_cols = cols <= 1 or x.stride(1) == 1
    disjoint_rows = rows <= 1 or x.stride(0) >= cols
    if not (unit_cols and disjoint_rows):
        x = x.contiguous()  # e.g. a transposed view, or expanded rows that share memory
    ld = x.stride(0) if rows > 1 else max(cols, 1)
    y = torch.empty((rows, cols), dtype=dtype, device=x.device)
    yt = torch.empty((cols, rows), dtype=dtype, device=x.device)
    args = (_ptr(x), src, rows, cols, ld, _ptr(y), max(cols, 1), _ptr(yt), max(rows, 1), dst, scale, rounding, _args.seed(seed), None)
    if _device_kind(x, "x") == "cuda":
        st = _lib.cuda_cast_transpose(*args, _cuda_stream(x))
    else:
        st = _lib.cast_transpose(*args)
    _lib.check(st, "unitfp8::cast_transpose")
    return y, yt


@cast_transpose.register_fake
def _(x, dtype, scale, rounding, seed):
    if x.dim() != 2:
        raise _lib.InvalidArgumentError(f"x must be 2-D, got shape {tuple(x.shape)}")
    rows, cols = x.shape
    return (
        torch.empty((rows, cols), dtype=dtype, device=x.device),
        torch.empty((cols, rows), dtype=dtype, device=x.device),
    )


def _mix(x: Tensor, f: Tensor, out: Tensor, tau: float, y8, fp8: int, rounding: int, seed: int, name: str) -> None:
    io = _check_dtype(x.dtype, "x.dtype", FLOAT)
    args = (_ptr(x), _ptr(f), _ptr(out), io, x.numel(), tau, _ptr(y8) if y8 is not None else None, fp8, rounding, _args.seed(seed))
    if _device_kind(x, "x") == "cuda":
        st = _lib.cuda_residual_mix(*args, _cuda_stream(x))
    else:
        st = _lib.residual_mix(*args)
    _lib.check(st, name)


def _mix_checks(x: Tensor, f: Tensor, tau: float) -> None:
    _check_dtype(x.dtype, "x.dtype", FLOAT)
    _same(x, f, "x", "f")
    _args.tau(tau)


@torch.library.custom_op("unitfp8::residual_mix", mutates_args=())
def residual_mix(x: Tensor, f: Tensor, tau: float) -> Tensor:
    """``sqrt(1-tau)*x + sqrt(tau)*f`` (f32 arithmetic, see :func:`unitfp8.residual_mix`)."""
    _mix_checks(x, f, tau)
    x, f = x.contiguous(), f.contiguous()
    out = torch.empty_like(x)
    _mix(x, f, out, tau, None, _lib.E4M3, 0, 0, "unitfp8::residual_mix")
    return out


@residual_mix.register_fake
def _(x, f, tau):
    _mix_checks(x, f, tau)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("unitfp8::residual_mix_fp8", mutates_args=())
def residual_mix_fp8(
    x: Tensor, f: Tensor, tau: float, fp8_dtype: torch.dtype, rounding: int, seed: int
) -> Tuple[Tensor, Tensor]:
    """``residual_mix`` plus its FP8 copy ``round(out)`` in ``fp8_dtype`` (the next layer's
    input), rounded with ``rounding`` and ``seed``."""
    _mix_checks(x, f, tau)
    fp8 = _check_dtype(fp8_dtype, "fp8_dtype", FP8)
    _check_rounding(rounding, fp8_dtype)
    x, f = x.contiguous(), f.contiguous()
    out = torch.empty_like(x)
    y8 = torch.empty(x.shape, dtype=fp8_dtype, device=x.device)
    _mix(x, f, out, tau, y8, fp8, rounding, seed, "unitfp8::residual_mix_fp8")
    return out, y8


@residual_mix_fp8.register_fake
def _(x, f, tau, fp8_dtype, rounding, seed):
    _mix_checks(x, f, tau)
    _check_dtype(fp8_dtype, "fp8_dtype", FP8)
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        torch.empty(x.shape, dtype=fp8_dtype, device=x.device),
    )


@torch.library.custom_op("unitfp8::residual_mix_", mutates_args=("x",))
def residual_mix_(x: Tensor, f: Tensor, tau: float) -> None:
    """In place: ``x ← sqrt(1-tau)*x + sqrt(tau)*f`` (``x`` must be contiguous). Not
    differentiable: with grad mode on, ``x`` or ``f`` requiring grad is an error."""
    _mix_checks(x, f, tau)
    if not x.is_contiguous():
        raise _lib.InvalidArgumentError("x must be contiguous for the in-place mix")
    f = f.contiguous()
    if f.data_ptr() == x.data_ptr() and x.numel() > 0:
        f = f.clone()
    _mix(x, f, x, tau, None, _lib.E4M3, 0, 0, "unitfp8::residual_mix_")


@residual_mix_.register_fake
def _(x, f, tau):
    _mix_checks(x, f, tau)
    return None


# PyTorch takes no derivative formula for a custom operator that mutates an input, and its
# default would run the in-place mix as if it did not change x: gradients through x would be
# silently wrong. This kernel, at the autograd keys of the devices the library serves, refuses
# the call when autograd would have to record it.
def _residual_mix_inplace_autograd(x: Tensor, f: Tensor, tau: float) -> None:
    if torch.is_grad_enabled() and (x.requires_grad or f.requires_grad):
        raise RuntimeError(
            "unitfp8::residual_mix_ is not differentiable and x or f requires grad: use "
            "unitfp8::residual_mix (out of place), or call it under torch.no_grad()"
        )
    with torch._C._AutoDispatchBelowAutograd():
        torch.ops.unitfp8.residual_mix_(x, f, tau)


_AUTOGRAD_GUARDS = torch.library.Library("unitfp8", "FRAGMENT")
for _key in ("AutogradCPU", "AutogradCUDA"):
    _AUTOGRAD_GUARDS.impl("residual_mix_", _residual_mix_inplace_autograd, _key)


def _mix_bwd(g: Tensor, tau: float, gx: Tensor, gf: Tensor, g8, fp8: int, rounding: int, seed: int, name: str) -> None:
    io = _check_dtype(g.dtype, "grad_out.dtype", FLOAT)
    args = (_ptr(g), _ptr(gx), _ptr(gf), io, g.numel(), tau, 0, _ptr(g8) if g8 is not None else None, fp8, rounding, _args.seed(seed))
    if _device_kind(g, "grad_out") == "cuda":
        st = _lib.cuda_residual_mix_backward(*args, _cuda_stream(g))
    else:
        st = _lib.residual_mix_backward(*args)
    _lib.check(st, name)


@torch.library.custom_op("unitfp8::residual_mix_backward", mutates_args=())
def residual_mix_backward(grad_out: Tensor, tau: float) -> Tuple[Tensor, Tensor]:
    """``(sqrt(1-tau)*grad_out, sqrt(tau)*grad_out)``: the gradients of ``x`` and ``f``."""
    _check_dtype(grad_out.dtype, "grad_out.dtype", FLOAT)
    _args.tau(tau)
    g = grad_out.contiguous()
    gx, gf = torch.empty_like(g), torch.empty_like(g)
    _mix_bwd(g, tau, gx, gf, None, _lib.E5M2, 0, 0, "unitfp8::residual_mix_backward")
    return gx, gf


@residual_mix_backward.register_fake
def _(grad_out, tau):
    _check_dtype(grad_out.dtype, "grad_out.dtype", FLOAT)
    _args.tau(tau)
    e = torch.empty_like(grad_out, memory_format=torch.contiguous_format)
    return e, torch.empty_like(e)


@torch.library.custom_op("unitfp8::residual_mix_backward_fp8", mutates_args=())
def residual_mix_backward_fp8(
    grad_out: Tensor, tau: float, fp8_dtype: torch.dtype, rounding: int, seed: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """``residual_mix_backward`` plus the FP8 copy of ``grad_f`` (normally E5M2)."""
    _check_dtype(grad_out.dtype, "grad_out.dtype", FLOAT)
    _args.tau(tau)
    fp8 = _check_dtype(fp8_dtype, "fp8_dtype", FP8)
    _check_rounding(rounding, fp8_dtype)
    g = grad_out.contiguous()
    gx, gf = torch.empty_like(g), torch.empty_like(g)
    g8 = torch.empty(g.shape, dtype=fp8_dtype, device=g.device)
    _mix_bwd(g, tau, gx, gf, g8, fp8, rounding, seed, "unitfp8::residual_mix_backward_fp8")
    return gx, gf, g8


@residual_mix_backward_fp8.register_fake
def _(grad_out, tau, fp8_dtype, rounding, seed):
    _check_dtype(grad_out.dtype, "grad_out.dtype", FLOAT)
    _check_dtype(fp8_dtype, "fp8_dtype", FP8)
    e = torch.empty_like(grad_out, memory_format=torch.contiguous_format)
    return e, torch.empty_like(e), torch.empty(grad_out.shape, dtype=fp8_dtype, device=grad_out.device)


# Autograd of the mixes: the backward runs the library's backward kernel.
def _mix_setup(ctx, inputs, output):
    ctx.tau = inputs[2]


def _mix_backward(ctx, grad):
    gx, gf = residual_mix_backward(grad, ctx.tau)
    return gx, gf, None


def _mix_fp8_setup(ctx, inputs, output):
    ctx.tau = inputs[2]
    ctx.mark_non_differentiable(output[1])


def _mix_fp8_backward(ctx, grad, grad8):
    gx, gf = residual_mix_backward(grad, ctx.tau)
    return gx, gf, None, None, None, None


residual_mix.register_autograd(_mix_backward, setup_context=_mix_setup)
residual_mix_fp8.register_autograd(_mix_fp8_backward, setup_context=_mix_fp8_setup)


# ---------------------------------------------------------------------------------------------
# GEMM and linear


def _gemm_call(m, n, k, alpha, a, at, ars, acs, b, bt, brs, bcs, beta, c, ct, crs, ccs, name, dev_t):
    args = (m, n, k, alpha, _ptr(a), at, ars, acs, _ptr(b), bt, brs, bcs, beta, _ptr(c), ct, crs, ccs)
    if _device_kind(dev_t, "a") == "cuda":
        st = _lib.cuda_gemm(*args, _cuda_stream(dev_t))
    else:
        st = _lib.gemm(*args)
    _lib.check(st, name)


def _gemm_checks(a: Tensor, b: Tensor, out_dtype: torch.dtype, alpha: float) -> None:
    _check_dtype(a.dtype, "a.dtype", FP8)
    _check_dtype(b.dtype, "b.dtype", FP8)
    _check_dtype(out_dtype, "out_dtype", GEMM_OUT)
    _args.f32(alpha, "alpha")
    if a.dim() != 2 or b.dim() != 2:
        raise _lib.InvalidArgumentError(f"a and b must be 2-D, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise _lib.InvalidArgumentError(f"b must have {a.shape[1]} rows (a's columns), got shape {tuple(b.shape)}")
    _same_device(a, b, "a", "b")


@torch.library.custom_op("unitfp8::gemm", mutates_args=())
def gemm(a: Tensor, b: Tensor, alpha: float, out_dtype: torch.dtype) -> Tensor:
    """``alpha·a·b`` for FP8 ``a`` (m×k) and ``b`` (k×n) with any strides; f32 accumulation."""
    _gemm_checks(a, b, out_dtype, alpha)
    m, k = a.shape
    n = b.shape[1]
    c = torch.empty((m, n), dtype=out_dtype, device=a.device)
    _gemm_call(
        m, n, k, alpha, a, CODE_OF[a.dtype], a.stride(0), a.stride(1), b, CODE_OF[b.dtype], b.stride(0),
        b.stride(1), 0.0, c, CODE_OF[out_dtype], max(n, 1), 1, "unitfp8::gemm", a,
    )
    return c


@gemm.register_fake
def _(a, b, alpha, out_dtype):
    _gemm_checks(a, b, out_dtype, alpha)
    return torch.empty((a.shape[0], b.shape[1]), dtype=out_dtype, device=a.device)


def _dense(t: Tensor, name: str, dtype: torch.dtype) -> Tensor:
    if t.dtype != dtype:
        raise TypeError(f"{name} must be {dtype}, got {t.dtype}")
    if t.dim() != 2:
        raise _lib.InvalidArgumentError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    return t


def _lin_fwd_checks(x, w, alpha, out_dtype):
    _dense(x, "x", torch.float8_e4m3fn)
    _dense(w, "w", torch.float8_e4m3fn)
    _check_dtype(out_dtype, "out_dtype", GEMM_OUT)
    _same_device(x, w, "x", "w")
    if w.shape[1] != x.shape[1]:
        raise _lib.InvalidArgumentError(f"w must have {x.shape[1]} columns (x's fan_in), got shape {tuple(w.shape)}")
    _args.alpha(alpha, x.shape[1])


@torch.library.custom_op("unitfp8::linear_forward", mutates_args=())
def linear_forward(x: Tensor, w: Tensor, alpha: float, out_dtype: torch.dtype) -> Tensor:
    """``alpha·x·wᵀ`` with E4M3 ``x [batch, fan_in]`` and ``w [fan_out, fan_in]``."""
    _lin_fwd_checks(x, w, alpha, out_dtype)
    x, w = x.contiguous(), w.contiguous()
    batch, fan_in = x.shape
    fan_out = w.shape[0]
    y = torch.empty((batch, fan_out), dtype=out_dtype, device=x.device)
    if _device_kind(x, "x") == "cuda":
        st = _lib.cuda_linear_forward(batch, fan_in, fan_out, alpha, _ptr(x), _ptr(w), _ptr(y), CODE_OF[out_dtype], _cuda_stream(x))
    else:
        st = _lib.linear_forward(batch, fan_in, fan_out, alpha, _ptr(x), _ptr(w), _ptr(y), CODE_OF[out_dtype])
    _lib.check(st, "unitfp8::linear_forward")
    return y


@linear_forward.register_fake
def _(x, w, alpha, out_dtype):
    _lin_fwd_checks(x, w, alpha, out_dtype)
    return torch.empty((x.shape[0], w.shape[0]), dtype=out_dtype, device=x.device)


def _lin_bwd_data_checks(dy, w, alpha, out_dtype):
    _dense(dy, "dy", torch.float8_e5m2)
    _dense(w, "w", torch.float8_e4m3fn)
    _check_dtype(out_dtype, "out_dtype", GEMM_OUT)
    _same_device(dy, w, "dy", "w")
    if w.shape[0] != dy.shape[1]:
        raise _lib.InvalidArgumentError(f"w must have {dy.shape[1]} rows (dy's fan_out), got shape {tuple(w.shape)}")
    _args.alpha(alpha, w.shape[1])


@torch.library.custom_op("unitfp8::linear_backward_data", mutates_args=())
def linear_backward_data(dy: Tensor, w: Tensor, alpha: float, out_dtype: torch.dtype) -> Tensor:
    """``alpha·dy·w`` with E5M2 ``dy [batch, fan_out]`` and E4M3 ``w [fan_out, fan_in]``."""
    _lin_bwd_data_checks(dy, w, alpha, out_dtype)
    dy = dy.contiguous()
    batch, fan_out = dy.shape
    fan_in = w.shape[1]
    dx = torch.empty((batch, fan_in), dtype=out_dtype, device=dy.device)
    if _device_kind(dy, "dy") == "cuda":
        # The device kernel takes Wᵀ ([fan_in, fan_out], the K-major operand).
        wt = w.t().contiguous()
        st = _lib.cuda_linear_backward_data(
            batch, fan_in, fan_out, alpha, _ptr(dy), _ptr(wt), 0.0, _ptr(dx), CODE_OF[out_dtype], _cuda_stream(dy)
        )
    else:
        w = w.contiguous()
        st = _lib.linear_backward_data(batch, fan_in, fan_out, alpha, _ptr(dy), _ptr(w), 0.0, _ptr(dx), CODE_OF[out_dtype])
    _lib.check(st, "unitfp8::linear_backward_data")
    return dx


@linear_backward_data.register_fake
def _(dy, w, alpha, out_dtype):
    _lin_bwd_data_checks(dy, w, alpha, out_dtype)
    return torch.empty((dy.shape[0], w.shape[1]), dtype=out_dtype, device=dy.device)


def _lin_bwd_w_checks(dy, x, alpha):
    _dense(dy, "dy", torch.float8_e5m2)
    _dense(x, "x", torch.float8_e4m3fn)
    _same_device(dy, x, "dy", "x")
    if x.shape[0] != dy.shape[0]:
        raise _lib.InvalidArgumentError(f"x must have {dy.shape[0]} rows (dy's batch), got shape {tuple(x.shape)}")
    _args.alpha(alpha, x.shape[1])


@torch.library.custom_op("unitfp8::linear_backward_weight", mutates_args=())
def linear_backward_weight(dy: Tensor, x: Tensor, alpha: float) -> Tensor:
    """``alpha·dyᵀ·x`` in f32 with E5M2 ``dy [batch, fan_out]`` and E4M3 ``x [batch, fan_in]``."""
    _lin_bwd_w_checks(dy, x, alpha)
    batch, fan_out = dy.shape
    fan_in = x.shape[1]
    dw = torch.empty((fan_out, fan_in), dtype=torch.float32, device=dy.device)
    if _device_kind(dy, "dy") == "cuda":
        dyt, xt = dy.t().contiguous(), x.t().contiguous()
        st = _lib.cuda_linear_backward_weight(
            batch, fan_in, fan_out, alpha, _ptr(dyt), _ptr(xt), 0.0, _lib.ctypes.cast(_ptr(dw), _lib._fp), _cuda_stream(dy)
        )
    else:
        dy, x = dy.contiguous(), x.contiguous()
        st = _lib.linear_backward_weight(
            batch, fan_in, fan_out, alpha, _ptr(dy), _ptr(x), 0.0, _lib.ctypes.cast(_ptr(dw), _lib._fp)
        )
    _lib.check(st, "unitfp8::linear_backward_weight")
    return dw


@linear_backward_weight.register_fake
def _(dy, x, alpha):
    _lin_bwd_w_checks(dy, x, alpha)
    return torch.empty((dy.shape[1], x.shape[1]), dtype=torch.float32, device=dy.device)


ALL_OPS = (
    cast,
    cast_transpose,
    residual_mix,
    residual_mix_fp8,
    residual_mix_,
    residual_mix_backward,
    residual_mix_backward_fp8,
    gemm,
    linear_forward,
    linear_backward_data,
    linear_backward_weight,
)
