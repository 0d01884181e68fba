"""Initializers for parameters and states, computed by numpy from a seed.

Every engine copies the arrays numpy produced here, so all engines start from
bit-identical weights. An initializer is a small object with a JSON form
(``to_json()`` / :func:`get`); strings name the Keras-style defaults.

The random generator of a parameter is ``numpy.random.default_rng([seed, crc32(name)])``:
a parameter's initial value depends only on the model seed and its qualified name,
not on the order parameters were created in.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .errors import RshopConfigError

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomUniform",
    "RandomNormal",
    "TruncatedNormal",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "Orthogonal",
    "Identity",
    "LogitUniform",
    "Concatenate",
    "Learned",
    "InitializerLike",
    "get",
    "rng_for",
]

Dims = tuple[int, ...]
Generator = np.random.Generator

# stddev of a unit normal truncated at +-2, used to keep variance-scaling targets exact
_TRUNC_STD = 0.87962566103423978


def rng_for(seed: int, name: str) -> np.random.Generator:
    """The generator for the value called ``name`` in a model seeded with ``seed``."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def _fans(shape: Dims) -> tuple[float, float]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(rng: Generator, shape: Dims, mean: float, std: float) -> np.ndarray:
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():  # redraw outside +-2 std: a deterministic rejection sampler
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + std * out


def _finite(where: str, **values: object) -> list[float]:
    """Each value as a float, refused unless it is a finite number (not a bool)."""
    out = []
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise RshopConfigError(f"{where} {k}: expected a finite number, received {v!r}.")
        out.append(float(v))
    return out


def _orthonormal_columns(a: np.ndarray) -> np.ndarray:
    """The Q of ``a = Q R`` (``a`` tall) with R's diagonal positive, which makes Q unique.

    Cholesky QR: ``R = cholesky(a.T a).T`` and ``Q = a R^-1`` use only matrix products, several
    times faster than Householder QR for the (units, 4 units) recurrent kernel of a wide LSTM. One
    pass is exact to rounding when ``a`` is at least 4x taller than wide (a Gaussian ``a`` is then
    well conditioned); nearer square shapes take a second pass (CholeskyQR2). Householder QR
    remains the fallback if the Gram matrix is not numerically positive definite.
    """
    q = a
    try:
        for _ in range(1 if 4 * a.shape[1] <= a.shape[0] else 2):
            q = q @ np.linalg.inv(np.linalg.cholesky(q.T @ q)).T
    except np.linalg.LinAlgError:
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
    return q


class Initializer:
    """Base class: ``init(shape, dtype, rng) -> numpy array``."""

    name = "initializer"
    random = False

    def config(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.config()}

    def __call__(self, shape: Sequence[int], dtype: DTypeLike = "float32", rng: Generator | None = None) -> np.ndarray:
        if self.random and rng is None:
            raise RshopConfigError(f"initializer {self.name!r}: expected a numpy Generator, received None.")
        value = np.asarray(self._value(tuple(shape), rng), dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            out = value.astype(dtype)
        if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
            raise RshopConfigError(f"initializer {self!r}: expected values finite in {dtype}, received overflow.")
        return out

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Initializer) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self))


class Zeros(Initializer):
    name = "zeros"

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        return np.zeros(shape)


class Ones(Initializer):
    name = "ones"

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        return np.ones(shape)


class Constant(Initializer):
    """Every entry equal to ``value`` (a float)."""

    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RshopConfigError(f"Constant: expected a finite number, received {value!r}.")
        self.value = float(value)

    def config(self) -> dict[str, Any]:
        return {"value": self.value}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        return np.full(shape, self.value)


class RandomUniform(Initializer):
    name = "random_uniform"
    random = True

    def __init__(self, minval: float = -0.05, maxval: float = 0.05) -> None:
        self.minval, self.maxval = _finite("RandomUniform", minval=minval, maxval=maxval)
        if not self.minval <= self.maxval or not math.isfinite(self.maxval - self.minval):
            raise RshopConfigError(
                f"RandomUniform: expected minval <= maxval with a finite width maxval - minval, received "
                f"minval={self.minval!r}, maxval={self.maxval!r}."
            )

    def config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        assert rng is not None, "__call__ refuses a random initializer without a generator"
        return rng.uniform(self.minval, self.maxval, shape)


class RandomNormal(Initializer):
    name = "random_normal"
    random = True

    def __init__(self, mean: float = 0.0, stddev: float = 0.05) -> None:
        self.mean, self.stddev = _finite(type(self).__name__, mean=mean, stddev=stddev)
        if self.stddev < 0:
            raise RshopConfigError(f"{type(self).__name__} stddev: expected a number >= 0, received {stddev!r}.")

    def config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        assert rng is not None, "__call__ refuses a random initializer without a generator"
        return self.mean + self.stddev * rng.standard_normal(shape)


class TruncatedNormal(RandomNormal):
    """Normal, redrawn where more than two standard deviations from the mean."""

    name = "truncated_normal"

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        assert rng is not None, "__call__ refuses a random initializer without a generator"
        return _truncated_normal(rng, shape, self.mean, self.stddev)


class _VarianceScaling(Initializer):
    random = True
    scale = 1.0
    mode = "fan_avg"
    distribution = "uniform"

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        assert rng is not None, "__call__ refuses a random initializer without a generator"
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            lim = math.sqrt(3.0 * var)
            return rng.uniform(-lim, lim, shape)
        return _truncated_normal(rng, shape, 0.0, math.sqrt(var) / _TRUNC_STD)


class GlorotUniform(_VarianceScaling):
    """Uniform in +-sqrt(6 / (fan_in + fan_out))."""

    name = "glorot_uniform"


class GlorotNormal(_VarianceScaling):
    name = "glorot_normal"
    distribution = "normal"


class HeUniform(_VarianceScaling):
    name = "he_uniform"
    scale, mode = 2.0, "fan_in"


class HeNormal(_VarianceScaling):
    name = "he_normal"
    scale, mode, distribution = 2.0, "fan_in", "normal"


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``; shapes of rank > 2 are flattened to 2-D."""

    name = "orthogonal"
    random = True

    def __init__(self, gain: float = 1.0) -> None:
        (self.gain,) = _finite(type(self).__name__, gain=gain)

    def config(self) -> dict[str, Any]:
        return {"gain": self.gain}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        assert rng is not None, "__call__ refuses a random initializer without a generator"
        if len(shape) < 2:
            raise RshopConfigError(f"orthogonal: expected a shape of rank >= 2, received {shape}.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q = _orthonormal_columns(rng.standard_normal((max(rows, cols), min(rows, cols))))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only, need not be square)."""

    name = "identity"

    def __init__(self, gain: float = 1.0) -> None:
        (self.gain,) = _finite(type(self).__name__, gain=gain)

    def config(self) -> dict[str, Any]:
        return {"gain": self.gain}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        if len(shape) != 2:
            raise RshopConfigError(f"identity: expected a 2-D shape, received {shape}.")
        return self.gain * np.eye(*shape)


class LogitUniform(Initializer):
    """``log(p / (1 - p))`` with ``p`` uniform in ``[minval, maxval]`` (0 < minval <= maxval < 1):
    ``sigmoid`` of the result is uniform there. RGLRUCell's decay parameter starts this way."""

    name = "logit_uniform"
    random = True

    def __init__(self, minval: float = 0.9, maxval: float = 0.999) -> None:
        self.minval, self.maxval = _finite("LogitUniform", minval=minval, maxval=maxval)
        if not 0.0 < self.minval <= self.maxval < 1.0:
            raise RshopConfigError(
                f"LogitUniform: expected 0 < minval <= maxval < 1, received minval={self.minval!r}, "
                f"maxval={self.maxval!r}."
            )

    def config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        assert rng is not None  # a random initializer is always given a generator
        p = rng.uniform(self.minval, self.maxval, shape)
        return np.log(p) - np.log1p(-p)


class Concatenate(Initializer):
    """Pieces along the last axis, each with its own initializer: ``[(size, init), ...]``.

    An LSTM bias with ``unit_forget_bias`` is ``Concatenate([(u, "zeros"), (u, "ones"), (2 * u, "zeros")])``.
    Each piece draws from the same generator in turn, so the whole is reproducible.
    """

    name = "concatenate"

    def __init__(self, parts: Sequence[tuple[int, InitializerLike] | list[Any]]) -> None:
        if not isinstance(parts, (list, tuple)) or not parts:
            raise RshopConfigError(f"concatenate: expected a list of (size, initializer), received {parts!r}.")
        self.parts: list[tuple[int, Initializer]] = []
        for p in parts:
            if not isinstance(p, (list, tuple)) or len(p) != 2 or not isinstance(p[0], int) or p[0] <= 0:
                raise RshopConfigError(f"concatenate: expected (size, initializer) pairs, received {p!r}.")
            self.parts.append((p[0], get(p[1])))
        self.random = any(i.random for _, i in self.parts)

    def config(self) -> dict[str, Any]:
        return {"parts": [[n, i.to_json()] for n, i in self.parts]}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        total = sum(n for n, _ in self.parts)
        if not shape or shape[-1] != total:
            raise RshopConfigError(f"concatenate: expected a last axis of {total}, received shape {shape}.")
        return np.concatenate([i._value(shape[:-1] + (n,), rng) for n, i in self.parts], axis=-1)


class Learned(Initializer):
    """A trainable initial state: a parameter of one example's shape (``initial_state/<name>``),
    broadcast over the batch, first drawn by ``initializer``. For states only."""

    name = "learned"

    def __init__(self, initializer: InitializerLike = "zeros") -> None:
        self.initializer = get(initializer, "learned initializer")
        if isinstance(self.initializer, Learned):
            raise RshopConfigError("learned: expected a plain initializer inside, received another learned one.")
        self.random = self.initializer.random

    def config(self) -> dict[str, Any]:
        return {"initializer": self.initializer.to_json()}

    def _value(self, shape: Dims, rng: Generator | None) -> np.ndarray:
        return self.initializer._value(shape, rng)


InitializerLike = Initializer | str | dict[str, Any]
"""What an ``initializer=`` argument accepts: an Initializer, a name, or a JSON dict ``{"name": ..., **config}``."""

_REGISTRY: dict[str, type[Initializer]] = {
    c.name: c
    for c in (
        Zeros,
        Ones,
        Constant,
        RandomUniform,
        RandomNormal,
        TruncatedNormal,
        GlorotUniform,
        GlorotNormal,
        HeUniform,
        HeNormal,
        Orthogonal,
        Identity,
        LogitUniform,
        Concatenate,
        Learned,
    )
}


def get(spec: object, where: str = "initializer") -> Initializer:
    """An :class:`Initializer` from an instance, a name, or a JSON dict ``{"name": ..., **config}``."""
    if isinstance(spec, Initializer):
        return spec
    name: str | None = None
    cfg: dict[str, Any] = {}  # a bare name is a dict without arguments (so "concatenate" asks for its parts)
    if isinstance(spec, str):
        name = spec
    elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
        name, cfg = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    if name in _REGISTRY:
        try:
            return _REGISTRY[name](**cfg)
        except TypeError:
            raise RshopConfigError(
                f"{where}: initializer {name!r} expected arguments of {_REGISTRY[name].__name__},"
                f" received {sorted(cfg)}."
            ) from None
    raise RshopConfigError(
        f"{where}: expected an initializer in {sorted(_REGISTRY)} or an Initializer, received {spec!r}."
    )
