"""Frozen configuration dataclasses read back from JSON: every key known, every value of its field's type.

``Recipe`` (recipe.json, a checkpoint's recipe) and ``InferenceConfig`` (inference.json) are read through
``from_values``; their own ``__post_init__`` then checks the values' ranges.
"""

from __future__ import annotations

import dataclasses
import typing

from steelkit.errors import UserError

NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def from_values(cls, values, where: str, prefix: str = ""):
    """``cls(**values)`` after checking that ``values`` is a dict of ``cls``'s fields with values of their
    types (a JSON list for a tuple, an object for a nested dataclass); a mistake raises ValueError naming
    ``where`` and the key."""
    if not isinstance(values, dict):
        raise UserError(f"{where}: {prefix.rstrip('.') or 'the file'} must be an object of {cls.__name__} fields")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown keys {[prefix + k for k in unknown]}; expected {', '.join(known)}")
    try:
        return cls(**{key: _value(hints[key], value, where, prefix + key) for key, value in values.items()})
    except (TypeError, ValueError) as error:
        message = str(error)
        raise UserError(message if message.startswith(where) else f"{where}: {message}") from None


def _value(hint, value, where: str, key: str):
    if dataclasses.is_dataclass(hint):
        return from_values(hint, value, where, f"{key}.")
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: {key} {value!r}: expected a list")
        item = typing.get_args(hint)[0]
        return tuple(_value(item, v, where, f"{key}[{n}]") for n, v in enumerate(value))
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise UserError(f"{where}: {key} {value!r}: expected {NAMES.get(hint, hint)}")
    return value
