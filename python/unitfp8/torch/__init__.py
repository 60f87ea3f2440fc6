"""unitfp8 for PyTorch: custom operators, autograd functions and μS layers.

- Operators: ``torch.ops.unitfp8.{cast, cast_transpose, residual_mix, residual_mix_fp8,
  residual_mix_, residual_mix_backward, residual_mix_backward_fp8, gemm, linear_forward,
  linear_backward_data, linear_backward_weight}``, each with a fake implementation (works under
  ``torch.compile(fullgraph=True)``, FakeTensor and ``torch.export``).
- Functional forms with autograd: :func:`unit_scaled_linear`, :func:`residual_mix`,
  :func:`residual_mix_fp8`; casts :func:`cast`, :func:`cast_transpose`; :func:`gemm`.
- Modules and helpers: :mod:`unitfp8.torch.nn` (``UnitScaledLinear``, ``ResidualMix``,
  ``convert_to_unit_scaled``, ``mus_param_groups``).

CPU tensors run on the CPU back end; CUDA tensors run the library's CUDA entry points on the
current stream when the library was built with CUDA, else raise :class:`unitfp8.UnsupportedError`.
"""

from __future__ import annotations

from typing import Optional, Tuple

try:
    import torch
    from torch import Tensor
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("unitfp8.torch needs PyTorch (pip install torch); the numpy API (unitfp8) does not") from e

from .. import Rounding, RoundingLike, _args, _rounding
from . import _ops

__all__ = [
    "cast",
    "cast_transpose",
    "residual_mix",
    "residual_mix_fp8",
    "residual_mix_backward",
    "gemm",
    "unit_scaled_linear",
    "step_seed",
    "ops",
    "nn",
]

ops = _ops


def _seed63(seed: int) -> int:
    """A seed folded into the int64 range the operator schema takes."""
    s = _args.seed(seed)
    return s - (1 << 64) if s >= (1 << 63) else s


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A per-(seed, step, stream) key for stochastic rounding (a SplitMix64 mix), so a run is
    reproducible per seed and step while each step and tensor draws fresh bits."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9 + int(stream) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return _seed63(z ^ (z >> 31))


def cast(
    x: Tensor,
    dtype: torch.dtype,
    *,
    scale: float = 1.0,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
    step: Optional[Tensor] = None,
) -> Tensor:
    """``round(x * scale)`` as a new contiguous tensor of ``dtype`` (float32, bfloat16,
    float16, float8_e4m3fn, float8_e5m2). Rounding modes and errors as :func:`unitfp8.cast`;
    not differentiable. ``step``: optional 0-dim integer tensor mixed into the seed at run time."""
    return _ops.cast(x, dtype, _args.scale(scale), _rounding(rounding), _seed63(seed), step)


def cast_transpose(
    x: Tensor,
    dtype: torch.dtype,
    *,
    scale: float = 1.0,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
) -> Tuple[Tensor, Tensor]:
    """``(y, y.T)`` with ``y = round(x * scale)`` for a 2-D ``x``, both contiguous, in one pass."""
    return _ops.cast_transpose(x, dtype, _args.scale(scale), _rounding(rounding), _seed63(seed))


def residual_mix(x: Tensor, f: Tensor, tau: float) -> Tensor:
    """The μS fixed(τ) residual ``sqrt(1-tau)*x + sqrt(tau)*f`` (differentiable; the backward
    runs the library's backward kernel). ``x`` and ``f``: same shape, float32/bfloat16/float16."""
    return _ops.residual_mix(x, f, _args.tau(tau))


def residual_mix_fp8(
    x: Tensor,
    f: Tensor,
    tau: float,
    *,
    fp8_dtype: torch.dtype = torch.float8_e4m3fn,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
) -> Tuple[Tensor, Tensor]:
    """:func:`residual_mix` plus the FP8 copy of its output (not differentiable), to pass as
    ``x_fp8`` to the next :func:`unit_scaled_linear` instead of casting again."""
    return _ops.residual_mix_fp8(x, f, _args.tau(tau), fp8_dtype, _rounding(rounding), _seed63(seed))


def residual_mix_backward(grad_out: Tensor, tau: float) -> Tuple[Tensor, Tensor]:
    """The gradients ``(sqrt(1-tau)*grad_out, sqrt(tau)*grad_out)`` of ``x`` and ``f``."""
    return _ops.residual_mix_backward(grad_out, _args.tau(tau))


def gemm(a: Tensor, b: Tensor, *, alpha: float = 1.0, out_dtype: torch.dtype = torch.float32) -> Tensor:
    """``alpha·a·b`` for FP8 ``a`` (m×k) and ``b`` (k×n) with any strides (not differentiable)."""
    return _ops.gemm(a, b, _args.f32(alpha, "alpha"), out_dtype)


class _UnitScaledLinearFn(torch.autograd.Function):
    """y = α·q8(x)·q8(W)ᵀ; dx = α·q8(dy)·q8(W), dW = α·q8(dy)ᵀ·q8(x) (q8: E4M3 forward, E5M2
    backward)."""

    @staticmethod
    def forward(ctx, x2, weight, x8, alpha, out_dtype, rounding, grad_rounding, seed_x, seed_w, seed_dy, step):
        if x8 is None:
            x8 = _ops.cast(x2, torch.float8_e4m3fn, 1.0, rounding, seed_x, step)
        w8 = _ops.cast(weight, torch.float8_e4m3fn, 1.0, rounding, seed_w, step)
        y = _ops.linear_forward(x8, w8, alpha, out_dtype)
        if step is not None:
            step = step.clone()  # the counter may be advanced before backward runs
        ctx.save_for_backward(x8, w8, step)
        ctx.alpha = alpha
        ctx.grad_rounding = grad_rounding
        ctx.seed_dy = seed_dy
        ctx.x_dtype = x2.dtype
        ctx.w_dtype = weight.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        x8, w8, step = ctx.saved_tensors
        dy8 = _ops.cast(dy.contiguous(), torch.float8_e5m2, 1.0, ctx.grad_rounding, ctx.seed_dy, step)
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx_dtype = ctx.x_dtype if ctx.x_dtype in (torch.float32, torch.bfloat16) else torch.float32
            dx = _ops.linear_backward_data(dy8, w8, ctx.alpha, dx_dtype)
            if dx.dtype != ctx.x_dtype:
                dx = dx.to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            dw = _ops.linear_backward_weight(dy8, x8, ctx.alpha)
            if dw.dtype != ctx.w_dtype:
                dw = dw.to(ctx.w_dtype)
        return dx, dw, None, None, None, None, None, None, None, None, None


def unit_scaled_linear(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    *,
    alpha: Optional[float] = None,
    x_fp8: Optional[Tensor] = None,
    out_dtype: Optional[torch.dtype] = None,
    rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    grad_rounding: RoundingLike = Rounding.NEAREST_SATURATE,
    seed: int = 0,
    step: "int | Tensor" = 0,
) -> Tensor:
    """The μS FP8 linear layer, differentiable:
    ``y = alpha · E4M3(x) · E4M3(weight)ᵀ (+ bias)``; backward ``dx = alpha·E5M2(dy)·E4M3(W)`` and
    ``dW = alpha·E5M2(dy)ᵀ·E4M3(x)`` in f32 (the true gradients of the forward with one α).

    Args:
        x: ``[..., fan_in]`` float32, bfloat16 or float16.
        weight: ``[fan_out, fan_in]`` master weight (float32 normally); its gradient is computed
            in f32 and converted to ``weight.dtype``.
        bias: optional ``[fan_out]``, added in PyTorch after the GEMM.
        alpha: output multiplier, positive; ``None`` means ``1/sqrt(fan_in)``.
        x_fp8: optional E4M3 copy of ``x`` already made (e.g. by :func:`residual_mix_fp8`).
        out_dtype: float32, bfloat16 or float16; ``None`` means ``x``'s type (float16 outputs are
            computed in float32 and converted).
        rounding: the E4M3 casts of x and W (saturating; ``"stochastic"`` for stochastic).
        grad_rounding: the E5M2 cast of dy.
        seed, step: stochastic rounding keys, one per (seed, step) and tensor (x, W, dy). ``step``
            may be a 0-dim integer tensor (read when the kernels run, e.g. a module buffer), which
            keeps ``torch.compile`` from specialising on its value.

    Raises:
        TypeError / InvalidArgumentError: wrong dtypes, shapes, devices or values (the message
        names the argument).
    """
    bad = _ops._lib.InvalidArgumentError
    if weight.dim() != 2:
        raise bad(f"weight must be 2-D [fan_out, fan_in], got shape {tuple(weight.shape)}")
    fan_out, fan_in = weight.shape
    if weight.dtype not in _ops.FLOAT:
        raise TypeError(f"weight must be float32, bfloat16 or float16, got {weight.dtype}")
    if x.dtype not in _ops.FLOAT:
        raise TypeError(f"x must be float32, bfloat16 or float16, got {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != fan_in:
        raise bad(f"x must end in fan_in = {fan_in}, got shape {tuple(x.shape)}")
    _ops._same_device(x, weight, "x", "weight")
    if bias is not None:
        if bias.shape not in ((), (1,), (fan_out,)):
            raise bad(f"bias must have shape ({fan_out},) (fan_out), () or (1,), got {tuple(bias.shape)}")
        _ops._same_device(x, bias, "x", "bias")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, fan_in)
    x8 = None
    if x_fp8 is not None:
        if x_fp8.dtype != torch.float8_e4m3fn or x_fp8.shape != x.shape:
            raise TypeError(f"x_fp8 must be a float8_e4m3fn tensor of x's shape {tuple(x.shape)}")
        _ops._same_device(x, x_fp8, "x", "x_fp8")
        x8 = x_fp8.reshape(-1, fan_in)
    a = _args.alpha(alpha, fan_in)
    if out_dtype is not None and out_dtype not in _ops.FLOAT:
        raise TypeError(f"out_dtype must be float32, bfloat16, float16 or None, got {out_dtype}")
    want = out_dtype if out_dtype is not None else x.dtype
    od = want if want in (torch.float32, torch.bfloat16) else torch.float32
    r, gr = _rounding(rounding), _rounding(grad_rounding)
    seed = _args.integer(seed, "seed")
    if not isinstance(step, torch.Tensor):
        step = _args.integer(step, "step")
    if isinstance(step, torch.Tensor):
        keys = (step_seed(seed, 0, 1), step_seed(seed, 0, 2), step_seed(seed, 0, 3))
        step_t = step
    else:
        keys = (step_seed(seed, step, 1), step_seed(seed, step, 2), step_seed(seed, step, 3))
        step_t = None
    y = _UnitScaledLinearFn.apply(x2, weight, x8, a, od, r, gr, *keys, step_t)
    if y.dtype != want:
        y = y.to(want)
    y = y.reshape(*lead, fan_out)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y


from . import nn  # noqa: E402  (nn uses the functions above)
