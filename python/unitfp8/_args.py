"""Checks of scalar arguments, shared by the numpy API and :mod:`unitfp8.torch`.

Each returns the value the library takes and raises ``TypeError`` for the wrong kind of value
or :class:`InvalidArgumentError` for a bad value; the message names the argument. Multipliers
travel to the library as float32, so they are checked as float32 values: a float64 that is
finite but overflows float32 is rejected, never turned into infinity, and a positive one that
underflows to zero is not taken as positive.
"""

from __future__ import annotations

import math
import operator
from typing import Optional

import numpy as np

from ._lib import InvalidArgumentError

#: The largest value of size_t on the platforms the library supports (64-bit).
SIZE_MAX = (1 << 64) - 1


def _is_bool(value) -> bool:
    """A Python, numpy or torch boolean (0-d arrays and tensors included)."""
    return isinstance(value, (bool, np.bool_)) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool")


def real(value, name: str) -> float:
    """``value`` as a Python float; ``TypeError`` unless it is a real number (not a bool,
    string or None); an integer too large for a float is an :class:`InvalidArgumentError`."""
    if value is None or _is_bool(value) or isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise InvalidArgumentError(f"{name} must be finite, got a number too large for a float") from None
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None


# Float32 rounds a magnitude of 2^128 - 2^103 or more to infinity, and one of 2^-150 or less
# to zero (round to nearest even). Plain comparisons, so that torch.compile traces them.
_F32_OVERFLOW = 2.0**128 - 2.0**103
_F32_UNDERFLOW = 2.0**-150


def f32(value, name: str) -> float:
    """A finite real number that stays finite when rounded to float32."""
    v = real(value, name)
    if not math.isfinite(v):
        raise InvalidArgumentError(f"{name} must be finite, got {v}")
    if abs(v) >= _F32_OVERFLOW:
        raise InvalidArgumentError(f"{name} must be finite in float32 (|{name}| < 3.4e38), got {v}")
    return v


def scale(value) -> float:
    """The cast multiplier: finite and nonzero in float32."""
    s = f32(value, "scale")
    if abs(s) <= _F32_UNDERFLOW:
        raise InvalidArgumentError(f"scale must be nonzero in float32, got {s}")
    return s


def default_alpha(fan_in: int) -> float:
    """The μS multiplier ``1/sqrt(fan_in)`` exactly as the library computes it (in f32).

    Raises ``TypeError`` for a non-integer and :class:`InvalidArgumentError` for ``fan_in < 1``.
    """
    n = integer(fan_in, "fan_in")
    if n < 1:
        raise InvalidArgumentError(f"fan_in must be at least 1 for the default alpha 1/sqrt(fan_in), got {n}")
    return float(np.float32(1.0) / np.sqrt(np.float32(n)))


def alpha(value: Optional[float], fan_in: int) -> float:
    """The multiplier of a linear layer: ``None`` means ``1/sqrt(fan_in)``; anything else must
    be positive and finite in float32 (the library reads a zero, negative or NaN alpha as the
    default, so such values are rejected here rather than silently replaced)."""
    if value is None:
        # with fan_in = 0 every product is empty and alpha multiplies nothing
        return default_alpha(fan_in) if fan_in != 0 else 1.0
    a = f32(value, "alpha")
    if not a > _F32_UNDERFLOW:
        raise InvalidArgumentError(f"alpha must be positive in float32 (None for 1/sqrt(fan_in)), got {a}")
    return a


def tau(value) -> float:
    """The residual mixing weight, in [0, 1]."""
    t = real(value, "tau")
    if not (0.0 <= t <= 1.0):
        raise InvalidArgumentError(f"tau must be in [0, 1], got {t}")
    return t


def integer(value, name: str) -> int:
    """``value`` as a Python int; ``TypeError`` unless it is an integer: Python and numpy ints
    and 0-d integer arrays or tensors, not bools or floats."""
    if _is_bool(value):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def seed(value) -> int:
    """A stochastic-rounding seed: any int, taken modulo 2^64."""
    return integer(value, "seed") & 0xFFFFFFFFFFFFFFFF


def flag(value, name: str) -> bool:
    """A yes/no argument: ``True`` or ``False`` (numpy booleans, 0 and 1 too), nothing else."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")
