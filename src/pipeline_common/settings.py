"""Typed reads of SCREAMING_SNAKE environment variables that fail fast, naming the variable."""
from __future__ import annotations

import os
from typing import Mapping, Sequence


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _raw(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, *, env: Mapping[str, str] | None = None,
            choices: Sequence[str] | None = None, required: bool = False) -> str | None:
    value = _raw(name, env)
    if value is None:
        if required and default is None:
            raise ConfigError(f"{name} is required but not set")
        return default
    if choices is not None and value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def env_int(name: str, default: int, *, env: Mapping[str, str] | None = None,
            minimum: int | None = None, maximum: int | None = None) -> int:
    raw = _raw(name, env)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_float(name: str, default: float, *, env: Mapping[str, str] | None = None,
              minimum: float | None = None, maximum: float | None = None) -> float:
    raw = _raw(name, env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    _check_range(name, value, minimum, maximum)
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    raw = _raw(name, env)
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false)")


def _check_range(name, value, minimum, maximum) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}")
