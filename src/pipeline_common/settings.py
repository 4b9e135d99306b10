"""Each setting declared once: its variable, type, bounds, default and help give the environment
reading, the command-line flag, the validation message and the docs/CONFIGURATION.md row.

Standard library only: the Lambda zip ships this module too. Declare a component's settings as
fields of one frozen dataclass that derives from ``Settings``::

    @dataclass(frozen=True)
    class PollerConfig(Settings):
        ENV_PREFIX: ClassVar[str] = "POLLER_"   # flags drop it: POLLER_INTERVAL_S -> --interval-s
        USED_BY: ClassVar[str] = "poller"       # the settings table's "used by" column

        interval_s: float = setting("POLLER_INTERVAL_S", 5.0, minimum=0.1, unit="s",
                                    help="seconds between two polls")
        mode: str = setting("POLLER_MODE", "fast", choices=("fast", "slow"), help="how hard to poll")
        api_key: str | None = setting("POLLER_API_KEY", None, secret=True, help="never on the command line")

        def check(self) -> None:            # optional: rules that involve more than one setting
            if self.mode == "slow" and self.interval_s < 1:
                raise ConfigError("POLLER_INTERVAL_S must be >= 1 with POLLER_MODE=slow")

    PollerConfig.from_env()                      # reads POLLER_*; keyword arguments that are not None win
    PollerConfig.add_flags(parser)               # --interval-s S, --mode {fast,slow}; help names the variable
    PollerConfig.from_args(parser.parse_args())  # a flag wins over the variable
    PollerConfig(interval_s=0)                   # ConfigError: POLLER_INTERVAL_S=0 is below the minimum 0.1

The field's type (``int``, ``float``, ``str``, ``bool``, optionally ``| None``) says how a variable
is read; any other type needs ``parse=``, a function from the text to the value that raises
ValueError with the reason. A field whose default is another ``Settings`` class (``kafka:
KafkaSettings = field(default_factory=KafkaSettings)``) is read with it, and its flags are added
too. A setting shared by several components is declared once as a module constant
(``KAFKA_TOPIC = Setting(...)``) and used as ``topic: str = KAFKA_TOPIC.field()``. The settings table's
environment table is generated from these declarations (``python -m infra.reports.settings_table``).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_METADATA_KEY = "setting"
AUTO = "auto"  # flag=AUTO: the variable's name without the class's ENV_PREFIX


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("is not a boolean (use true/false)")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("is not an integer") from None


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("is not a number") from None
    if math.isnan(value):
        raise ValueError("is not a number")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {"int": _parse_int, "float": _parse_float, "str": str,
                                              "bool": parse_bool}


@dataclass(frozen=True)
class Setting:
    """One setting. ``env`` is its variable; ``fallback_env`` are read, in order, when it is unset."""
    env: str
    default: Any = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    greater_than: float | None = None     # an exclusive minimum (e.g. "must be > 0")
    choices: Sequence[str] | None = None
    parse: Callable[[str], Any] | None = None  # text -> value; raises ValueError("reason")
    unit: str = ""                        # "s", "MB", ...: shown in messages and docs/CONFIGURATION.md
    required: bool = False
    secret: bool = False                  # never a flag (it would show in `ps`), never in repr
    flag: str | Sequence[str] | None = AUTO
    metavar: str | None = None
    doc_default: str | None = None        # docs/help text when the default is computed
    fallback_env: Sequence[str] = ()
    flag_action: str | None = None        # e.g. "extend": a repeatable flag whose values add up

    def field(self, **kwargs) -> Any:
        """A dataclass field carrying this declaration (its default is the setting's default)."""
        if self.secret:
            kwargs.setdefault("repr", False)
        return dataclasses.field(default=self.default, metadata={_METADATA_KEY: self}, **kwargs)

    @property
    def variables(self) -> tuple[str, ...]:
        return (self.env, *self.fallback_env)

    def convert(self, raw: str, kind: Callable[[str], Any], source: str) -> Any:
        """Text from ``source`` (a variable or a flag) -> value, or ConfigError naming ``source``."""
        try:
            return kind(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"{source}={raw.strip()!r} {exc}".rstrip()) from None

    def read(self, env: Mapping[str, str] | None = None) -> Any:
        """This one variable on its own (for a setting that has no config object): parsed with
        ``parse`` or as the type of the default, checked, the default when unset."""
        env = os.environ if env is None else env
        kind = self.parse or _PARSERS[type(self.default).__name__ if self.default is not None else "str"]
        value = self.default
        for variable in self.variables:
            raw = env.get(variable)
            if raw is not None and raw.strip():
                value = self.convert(raw, kind, variable)
                break
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """Bounds and choices of a value however it arrived (environment, flag or code)."""
        if value is None:
            if self.required:
                raise ConfigError(f"{self.env} is required but not set")
            return
        unit = f" {self.unit}" if self.unit and self.unit != "s" else (" seconds" if self.unit == "s" else "")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{self.env}={value!r} is not one of {', '.join(self.choices)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{self.env}={value} is not a number")
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and not low <= value <= high:
            raise ConfigError(f"{self.env}={value} is outside {_num(low)}..{_num(high)}{unit}")
        if low is not None and value < low:
            raise ConfigError(f"{self.env}={value} is below the minimum {_num(low)}{unit}")
        if high is not None and value > high:
            raise ConfigError(f"{self.env}={value} is above the maximum {_num(high)}{unit}")
        if self.greater_than is not None and not value > self.greater_than:
            raise ConfigError(f"{self.env}={value} must be > {_num(self.greater_than)}")

    def default_text(self) -> str:
        """The default as a reader wants it: 'localhost:9092', '120 s', 'true', '—'."""
        if self.doc_default is not None:
            return self.doc_default
        value = self.default
        if value is None or value == "" or value == ():
            return "—"
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (tuple, list)):
            text = ",".join(str(v) for v in value)
        else:
            text = _num(value) if isinstance(value, (int, float)) else str(value)
        return f"`{text}`" + (f" {self.unit}" if self.unit else "")


def setting(env: str, default: Any = None, **options) -> Any:
    """Declare a dataclass field as a setting: ``x: int = setting("X_VAR", 5, minimum=1, help=...)``."""
    return Setting(env, default, **options).field()


def _num(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _kind_of(annotation: Any) -> str | None:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [part.strip() for part in text.split("|") if part.strip() != "None"]
    return parts[0] if len(parts) == 1 and parts[0] in _PARSERS else None


@dataclass(frozen=True)
class _Declared:
    name: str                    # the field's name
    setting: Setting
    parse: Callable[[str], Any]


class Settings:
    """Base of every component's frozen config dataclass; see the module docstring."""
    ENV_PREFIX: ClassVar[str] = ""
    USED_BY: ClassVar[str] = ""
    FLAGS: ClassVar[bool] = True  # False: the component has no command line (the Lambda function)

    def __post_init__(self) -> None:
        for declared in _declared(type(self)):
            declared.setting.check(getattr(self, declared.name))
        self.check()

    def check(self) -> None:
        """Rules that involve more than one setting; raise ConfigError naming the variables."""

    @classmethod
    def settings(cls) -> Iterator[tuple[str, Setting]]:
        """(field name, declaration) of every setting of this class, nested ones excluded."""
        for declared in _declared(cls):
            yield declared.name, declared.setting

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides):
        """Every setting from its variable; keyword arguments that are not None win (a nested
        Settings field takes an instance or a dict of its own overrides)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for declared in _declared(cls):
            for variable in declared.setting.variables:
                raw = env.get(variable)
                if raw is not None and raw.strip():
                    values[declared.name] = declared.setting.convert(raw, declared.parse, variable)
                    break
        for name, nested in _nested(cls).items():
            given = overrides.pop(name, None)
            values[name] = given if isinstance(given, nested) else nested.from_env(env, **(given or {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def add_flags(cls, parser, *, _dest: str = "") -> None:
        """One flag per setting (secrets excepted); its help names the variable and the default."""
        for declared in _declared(cls):
            s = declared.setting
            names = _flag_names(cls, s)
            if not names:
                continue
            variables = " or ".join(s.variables)
            kwargs: dict[str, Any] = dict(dest=_dest + declared.name, default=None,
                                          help=f"{s.help} [{variables}, default {s.default_text().replace('`', '')}]"
                                          .replace("%", "%%"))
            if s.choices is not None:
                kwargs["choices"] = s.choices
            kwargs["type"] = _flag_type(declared.parse)
            if s.flag_action:
                kwargs["action"] = s.flag_action
            if s.metavar:
                kwargs["metavar"] = s.metavar
            elif declared.parse is parse_bool:
                kwargs["metavar"] = "BOOL"
            elif s.choices is None:
                kwargs["metavar"] = s.env
            parser.add_argument(*names, **kwargs)
        for name, nested in _nested(cls).items():
            nested.add_flags(parser, _dest=f"{_dest}{name}__")

    @classmethod
    def from_args(cls, args, env: Mapping[str, str] | None = None, **overrides):
        """from_env with the flags of ``add_flags`` winning over the variables."""
        return cls.from_env(env, **{**_overrides_from_args(cls, args, ""), **overrides})


def _overrides_from_args(cls: type[Settings], args, dest: str) -> dict:
    values: dict[str, Any] = {}
    for declared in _declared(cls):
        value = getattr(args, dest + declared.name, None)
        if value is not None:
            values[declared.name] = value
    for name, nested in _nested(cls).items():
        values[name] = _overrides_from_args(nested, args, f"{dest}{name}__")
    return values


def _flag_names(cls: type, s: Setting) -> tuple[str, ...]:
    if s.secret or s.flag is None or not cls.FLAGS:
        return ()
    if s.flag == AUTO:
        return ("--" + s.env.removeprefix(cls.ENV_PREFIX).lower().replace("_", "-"),)
    return (s.flag,) if isinstance(s.flag, str) else tuple(s.flag)


def _flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    import argparse  # not at the top: the Lambda function imports this module and has no command line

    def convert(text: str) -> Any:
        try:
            return parse(text.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} {exc}") from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


_DECLARED_CACHE: dict[type, tuple[_Declared, ...]] = {}


def _declared(cls: type) -> tuple[_Declared, ...]:
    if cls not in _DECLARED_CACHE:
        out = []
        for f in dataclasses.fields(cls):
            s = f.metadata.get(_METADATA_KEY)
            if s is None:
                continue
            parse = s.parse or _PARSERS.get(_kind_of(f.type) or "")
            if parse is None:
                raise TypeError(f"{cls.__name__}.{f.name}: a {f.type} setting needs parse=")
            out.append(_Declared(f.name, s, parse))
        _DECLARED_CACHE[cls] = tuple(out)
    return _DECLARED_CACHE[cls]


def _nested(cls: type) -> dict[str, type[Settings]]:
    return {f.name: f.default_factory for f in dataclasses.fields(cls)
            if isinstance(f.default_factory, type) and issubclass(f.default_factory, Settings)}


# ------------------------------------------------------------------ the settings table (docs/CONFIGURATION.md)

def table_rows(components: Sequence[type[Settings]],
               extra: Sequence[tuple[Setting, str]] = ()) -> list[tuple[str, str, str, str, str]]:
    """(variable, default, flag, used by, help) per variable, in declaration order. A variable
    declared by several components (KAFKA_TOPIC) is one row listing them all."""
    rows: dict[str, list] = {}

    def add(s: Setting, flags: tuple[str, ...], used_by: str) -> None:
        variable = " or ".join(f"`{v}`" for v in s.variables)
        row = rows.setdefault(variable, [variable, s.default_text(), [], [], s.help])
        for flag in flags:
            if flag not in row[2]:
                row[2].append(flag)
        if used_by and used_by not in row[3]:
            row[3].append(used_by)

    def walk(cls: type[Settings], used_by: str) -> None:
        for declared in _declared(cls):
            add(declared.setting, _flag_names(cls, declared.setting)[:1], used_by)
        for nested in _nested(cls).values():
            walk(nested, nested.USED_BY or used_by)  # KafkaSettings: "all Kafka clients", not each user

    for cls in components:
        walk(cls, cls.USED_BY)
    for s, used_by in extra:
        add(s, (), used_by)
    return [(r[0], r[1], ", ".join(f"`{f}`" for f in r[2]) or "—", ", ".join(r[3]), r[4]) for r in rows.values()]


def markdown_table(rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| variable | default | flag | used by | what it sets |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ single reads (no config object)

def _raw(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, *, env: Mapping[str, str] | None = None,
            choices: Sequence[str] | None = None, required: bool = False) -> str | None:
    """One variable read on its own, for code that has no config object (prefer a Settings class)."""
    s = Setting(name, default, choices=choices, required=required and default is None)
    raw = _raw(name, env)
    value = default if raw is None else raw
    s.check(value)
    return value


def env_int(name: str, default: int | None, *, env: Mapping[str, str] | None = None,
            minimum: int | None = None, maximum: int | None = None) -> int | None:
    return _env_number(name, default, env, _parse_int, minimum, maximum)


def env_float(name: str, default: float | None, *, env: Mapping[str, str] | None = None,
              minimum: float | None = None, maximum: float | None = None) -> float | None:
    return _env_number(name, default, env, _parse_float, minimum, maximum)


def env_bool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    raw = _raw(name, env)
    return default if raw is None else Setting(name).convert(raw, parse_bool, name)


def _env_number(name, default, env, parse, minimum, maximum):
    raw = _raw(name, env)
    if raw is None:
        return default
    s = Setting(name, default)
    value = s.convert(raw, parse, name)
    # Separate messages per bound, as the single reads always gave them.
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}")
    return value
