"""μS modules and the helpers that convert a PyTorch model to them.

- :class:`UnitScaledLinear`: drop-in for a hidden ``nn.Linear`` (FP8 GEMMs, unit init, α).
- :class:`ResidualMix`: the fixed(τ) residual ``sqrt(1-τ)·x + sqrt(τ)·f``.
- :func:`convert_to_unit_scaled`: swaps a model's hidden ``nn.Linear`` layers in place.
- :func:`mus_param_groups`: optimizer parameter groups with the μS learning-rate rule.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .. import InvalidArgumentError, Rounding, RoundingLike, _args, _rounding
from . import residual_mix, residual_mix_fp8, unit_scaled_linear
from ._ops import FLOAT

__all__ = ["UnitScaledLinear", "ResidualMix", "convert_to_unit_scaled", "mus_param_groups"]


class UnitScaledLinear(nn.Module):
    """A μS hidden linear layer: ``y = alpha · E4M3(x) · E4M3(W)ᵀ (+ bias)``, computed by the
    unitfp8 FP8 GEMM with f32 accumulation.

    - Weights are initialised N(0, 1) (unit variance), kept in ``dtype`` (float32 master
      weights by default) and cast to E4M3 with the saturating static cast at every forward.
    - ``alpha`` defaults to ``1/sqrt(in_features)``, so unit-variance inputs give unit-variance
      outputs.
    - Backward: dy is cast to E5M2; ``dx = alpha·dy·W`` and ``dW = alpha·dyᵀ·x`` run in the
      library; dW is f32.
    - ``rounding`` / ``grad_rounding``: ``"nearest_saturate"`` (default) or ``"stochastic"``;
      stochastic rounding is keyed by ``seed`` and an internal step counter (reproducible per
      seed and step).

    ``forward(x, x_fp8=None)``: ``x`` of shape ``[..., in_features]`` (float32/bfloat16/float16);
    ``x_fp8`` an optional E4M3 copy of ``x`` (see :meth:`ResidualMix.forward_fp8`). The output
    has ``x``'s dtype unless ``out_dtype`` is set.

    The constructor raises ``TypeError`` or :class:`unitfp8.InvalidArgumentError` (a
    ``ValueError``) for sizes below 1, a non-positive ``alpha``, an unsupported ``dtype`` or
    ``out_dtype`` and an unknown rounding mode.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        alpha: Optional[float] = None,
        out_dtype: Optional[torch.dtype] = None,
        rounding: RoundingLike = Rounding.NEAREST_SATURATE,
        grad_rounding: RoundingLike = Rounding.NEAREST_SATURATE,
        seed: int = 0,
        device=None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self.in_features = _args.integer(in_features, "in_features")
        self.out_features = _args.integer(out_features, "out_features")
        if self.in_features < 1 or self.out_features < 1:
            raise InvalidArgumentError(
                f"in_features and out_features must be at least 1, got {self.in_features} and {self.out_features}"
            )
        self.alpha = _args.alpha(alpha, self.in_features)
        if out_dtype is not None and out_dtype not in FLOAT:
            raise TypeError(f"out_dtype must be float32, bfloat16, float16 or None, got {out_dtype}")
        if dtype is not None and dtype not in FLOAT:
            raise TypeError(f"dtype (of the master weight) must be float32, bfloat16 or float16, got {dtype}")
        self.out_dtype = out_dtype
        _rounding(rounding, "rounding")
        _rounding(grad_rounding, "grad_rounding")
        self.rounding = rounding
        self.grad_rounding = grad_rounding
        self.seed = _args.integer(seed, "seed")
        # the stochastic-rounding step counter: a buffer, so checkpoints keep it and
        # torch.compile reads it at run time instead of recompiling for each value
        self.register_buffer("step", torch.zeros((), dtype=torch.int64, device=device))
        kw = {"device": device, "dtype": dtype or torch.float32}
        self.weight = nn.Parameter(torch.empty((self.out_features, self.in_features), **kw))
        self.bias = nn.Parameter(torch.empty(self.out_features, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Unit-variance weights (N(0, 1)) and zero bias, the μS initialisation."""
        with torch.no_grad():
            nn.init.normal_(self.weight, 0.0, 1.0)
            if self.bias is not None:
                self.bias.zero_()

    def _stochastic(self) -> bool:
        return Rounding.STOCHASTIC_SATURATE in (_rounding(self.rounding), _rounding(self.grad_rounding))

    def forward(self, x: Tensor, x_fp8: Optional[Tensor] = None) -> Tensor:
        """``alpha · E4M3(x) · E4M3(W)ᵀ (+ bias)`` (see the class doc)."""
        stochastic = self._stochastic()
        y = unit_scaled_linear(
            x,
            self.weight,
            self.bias,
            alpha=self.alpha,
            x_fp8=x_fp8,
            out_dtype=self.out_dtype,
            rounding=self.rounding,
            grad_rounding=self.grad_rounding,
            seed=self.seed,
            step=self.step if stochastic else 0,
        )
        if stochastic and self.training:
            with torch.no_grad():
                self.step.add_(1)
        return y

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, init: str = "unit", **kwargs) -> "UnitScaledLinear":
        """A ``UnitScaledLinear`` with ``linear``'s shape, device and dtype.

        Args:
            linear: the ``nn.Linear`` to replace.
            init: ``"unit"`` draws N(0, 1) weights (μS training from scratch); ``"keep"`` keeps
                the layer's function up to FP8 rounding: ``W_new = W_old / alpha``, so that
                ``alpha·W_new = W_old``, and the bias is copied.
            kwargs: passed to the constructor (``alpha``, ``rounding``...).

        Raises:
            ValueError: unknown ``init``.
        """
        if init not in ("unit", "keep"):
            raise ValueError(f"init must be 'unit' or 'keep', got {init!r}")
        m = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
            **kwargs,
        )
        if init == "keep":
            with torch.no_grad():
                m.weight.copy_(linear.weight / m.alpha)
                if linear.bias is not None:
                    m.bias.copy_(linear.bias)
        return m

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, alpha={self.alpha:.6g}"
        )


class ResidualMix(nn.Module):
    """The μS fixed(τ) residual: ``forward(x, f) = sqrt(1-tau)·x + sqrt(tau)·f`` (forward and
    backward through the library; ``x`` and ``f`` of one shape and dtype).

    :meth:`forward_fp8` also returns the E4M3 copy of the output, for the next layer's
    ``x_fp8``. A ``tau`` outside [0, 1] raises :class:`unitfp8.InvalidArgumentError`.
    """

    def __init__(self, tau: float, *, fp8_dtype: torch.dtype = torch.float8_e4m3fn) -> None:
        super().__init__()
        self.tau = _args.tau(tau)
        self.fp8_dtype = fp8_dtype

    def forward(self, x: Tensor, f: Tensor) -> Tensor:
        """``sqrt(1-tau)·x + sqrt(tau)·f``."""
        return residual_mix(x, f, self.tau)

    def forward_fp8(self, x: Tensor, f: Tensor) -> Tuple[Tensor, Tensor]:
        """``(out, E4M3(out))``: the mix and its saturating FP8 copy (not differentiable)."""
        return residual_mix_fp8(x, f, self.tau, fp8_dtype=self.fp8_dtype)

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


Exclude = Union[None, Iterable[str], Callable[[str, nn.Linear], bool]]


def convert_to_unit_scaled(
    model: nn.Module,
    *,
    exclude: Exclude = None,
    init: str = "unit",
    **kwargs,
) -> nn.Module:
    """Replaces the hidden ``nn.Linear`` layers of ``model`` (in place) by
    :class:`UnitScaledLinear`, and returns ``model``.

    The input embedding (``nn.Embedding``) is never touched; the output head stays as it is: by
    default the last ``nn.Linear`` registered in ``model`` and any whose name ends in ``head``
    are excluded, as in μS (first and last layers in high precision).

    Args:
        model: the model to convert.
        exclude: names (as in ``model.named_modules()``) to keep, or a predicate
            ``(name, linear) -> bool``; replaces the default rule.
        init: ``"unit"`` (μS init, for training from scratch) or ``"keep"`` (function
            preserving: ``W_new = W_old·sqrt(fan_in)``); see :meth:`UnitScaledLinear.from_linear`.
        kwargs: passed to :class:`UnitScaledLinear` (``rounding``, ``out_dtype``...).

    Sharing is kept: a layer registered under several names becomes one
    :class:`UnitScaledLinear` under all of them (it is kept as it is if any of its names is
    excluded), and converted layers that share a weight or bias share the new one.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: a layer to convert shares a parameter with a module that is not converted
            (tied weights would come apart); exclude both or neither.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    linears = [(n, m) for n, m in model.named_modules(remove_duplicate=False) if type(m) is nn.Linear]
    if exclude is None:
        last = linears[-1][0] if linears else None
        skip = lambda n, m: n == last or n.split(".")[-1].endswith("head")  # noqa: E731
    elif callable(exclude):
        skip = exclude
    else:
        names = set(exclude)
        skip = lambda n, m: n in names  # noqa: E731
    kept = {id(m) for n, m in linears if skip(n, m)}
    todo = [(n, m) for n, m in linears if id(m) not in kept]
    # A parameter of a converted layer must not also belong to a module that stays.
    converted = {id(m) for _, m in todo}
    layer_of_param = {id(p): n for n, m in todo for p in m.parameters(recurse=False)}
    for mname, mod in model.named_modules():
        if id(mod) in converted:
            continue
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in layer_of_param:
                where = f"{mname}.{pname}" if mname else pname
                raise ValueError(
                    f"{where} is shared with {layer_of_param[id(p)]}, which would be converted while "
                    f"{mname or 'the model'} stays as it is; exclude both or neither"
                )
    new_layer: Dict[int, UnitScaledLinear] = {}
    new_param: Dict[int, nn.Parameter] = {}
    for name, lin in todo:
        new = new_layer.get(id(lin))
        if new is None:
            new = UnitScaledLinear.from_linear(lin, init=init, **kwargs)
            for attr in ("weight", "bias"):
                old = getattr(lin, attr)
                if old is None:
                    continue
                if id(old) in new_param:
                    setattr(new, attr, new_param[id(old)])
                else:
                    new_param[id(old)] = getattr(new, attr)
            new_layer[id(lin)] = new
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model


def mus_param_groups(
    model: nn.Module,
    lr: float,
    *,
    width: int,
    base_width: int,
    weight_decay: float = 0.0,
    hidden_types: Tuple[type, ...] = (),
) -> List[Dict]:
    """Optimizer parameter groups with the μS transfer rule, for ``torch.optim.AdamW`` (or any
    optimizer taking ``lr`` and ``weight_decay`` per group).

    - Hidden weights (the ``weight`` of every :class:`UnitScaledLinear`, and of modules of
      ``hidden_types``): ``lr·sqrt(base_width/width)``.
    - Everything else (embeddings, norms, head, biases): ``lr``.
    - Decoupled weight decay: each group's ``weight_decay`` is set so that AdamW's per-step
      decay ``group_lr·weight_decay`` equals ``lr·weight_decay`` for every group and width
      (norm gains and biases get none).

    Args:
        model: the (converted) model.
        lr: the base learning rate η, tuned at ``base_width``.
        width: this model's width ``d``; base_width: the width η was tuned at.
        weight_decay: decoupled decay coefficient (relative to ``lr``).
        hidden_types: more module classes whose ``weight`` is a hidden weight (e.g. a plain
            PyTorch μS linear used as a high-precision reference).

    Raises:
        TypeError: a non-numeric ``lr``, ``width``, ``base_width`` or ``weight_decay``.
        ValueError: ``lr``, ``width`` or ``base_width`` not positive and finite, or a negative or
            non-finite ``weight_decay``.
    """
    for name, v in (("lr", lr), ("width", width), ("base_width", base_width)):
        if not 0.0 < _args.real(v, name) < math.inf:
            raise ValueError(f"{name} must be positive and finite, got {v}")
    if not 0.0 <= _args.real(weight_decay, "weight_decay") < math.inf:
        raise ValueError(f"weight_decay must be >= 0 and finite, got {weight_decay}")
    hidden_lr = lr * math.sqrt(base_width / width)
    hidden, decay, no_decay = [], [], []
    seen = set()
    for mod in model.modules():
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            if isinstance(mod, (UnitScaledLinear,) + tuple(hidden_types)) and pname == "weight":
                hidden.append(p)
            elif p.dim() >= 2:
                decay.append(p)
            else:
                no_decay.append(p)
    groups = []
    if hidden:
        groups.append({"params": hidden, "lr": hidden_lr, "weight_decay": weight_decay * lr / hidden_lr, "name": "hidden"})
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay, "name": "embed_head"})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": "norm_bias"})
    return groups
