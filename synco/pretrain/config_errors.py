"""omegaconf's multi-line reports as one sentence: which setting, what it must be, what it got.

Why a module of its own: :mod:`synco.pretrain.config` holds the schema and its meaning; this is only wording,
shared by presets, ``key=value`` overrides and configs read back from checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args, get_origin

from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from synco.common.errors import UserError


def expected(tp: Any, value: Any) -> str:
    """What a value of type ``tp`` must look like, in words (``value`` is what was given)."""
    if tp is bool:
        return "true or false"
    if tp is int and isinstance(value, float):
        return "a whole number"
    if tp in (int, float):
        return "a number"
    if tp is str:
        return "text"
    if get_origin(tp) is tuple:
        return f"a list of {len(get_args(tp))} numbers"
    if get_origin(tp) is dict:
        return "a mapping of names to values (e.g. synthesis.n_hard=512)"
    return getattr(tp, "__name__", str(tp))


def user_error(exc: OmegaConfBaseException, types: Mapping[str, Any], prefix: str = "",
                where: str = "") -> UserError:
    """One sentence from omegaconf's multi-line report: which setting, what it must be, what it got.

    ``types`` maps the schema's field names to their types; ``prefix`` is the
    node's path (``synthesis.``); ``where`` names the source (a preset file).
    """
    key = str(exc.full_key or exc.key or "")
    name = key.split("[")[0]
    if isinstance(exc, ConfigKeyError) and name not in types:
        return UserError(f"{where}unknown setting {prefix + name!r}; known: {', '.join(sorted(types))}.")
    if isinstance(exc, ValidationError) and name in types:
        tp = get_args(types[name])[0] if "[" in key else types[name]  # an element of a range
        return UserError(f"{where}setting {prefix + key} must be {expected(tp, exc.value)}, got {exc.value!r}.")
    reason = str(exc.msg or exc).splitlines()[0].rstrip(".")  # e.g. a broken ${...} interpolation
    return UserError(f"{where}bad setting {prefix + key or '(none)'}: {reason}.")
