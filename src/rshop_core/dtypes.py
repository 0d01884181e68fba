"""The dtypes an rshop value may have. Promotion is strict: mixing dtypes is an error."""

from __future__ import annotations

from .errors import RshopDTypeError

FLOAT_DTYPES = ("float32", "float64")
DTYPES = FLOAT_DTYPES + ("bool", "int32")
DEFAULT_FLOAT = "float32"


def check_dtype(dtype: object, where: str) -> str:
    """Return ``dtype`` as a canonical name, or raise naming ``where``."""
    name = getattr(dtype, "name", dtype)  # numpy dtypes carry .name
    if not isinstance(name, str) or name not in DTYPES:
        raise RshopDTypeError(f"{where}: expected a dtype in {list(DTYPES)}, received {dtype!r}.")
    return name


def check_float_dtype(dtype: object, where: str) -> str:
    """Return ``dtype`` as ``"float32"`` or ``"float64"``, or raise naming ``where``. Half
    precisions (float16, bfloat16) are refused: no engine's results are checked in them."""
    name = getattr(dtype, "name", dtype)
    if not isinstance(name, str) or name not in FLOAT_DTYPES:
        raise RshopDTypeError(
            f"{where}: expected a floating dtype in {list(FLOAT_DTYPES)}, received {name!r}. rshop computes "
            "in float32 or float64 only."
        )
    return name
