"""FilterCriteria for a Kafka event source mapping: which records reach the function.

AWS's rules (docs: "Control which events Lambda sends to your function", invocation-eventfiltering,
and "Filtering events from Amazon MSK and self-managed Apache Kafka event sources", kafka-filtering):
* Kafka mappings filter on the record `value` only; a pattern naming any other top-level key is
  refused when the mapping is created ("Invalid filter pattern definition").
* Up to 5 filters per mapping by default (a quota raise allows 10, accepted here); a record is sent
  when it matches ANY filter, and dropped otherwise. Dropped records are still committed.
* The syntax is EventBridge's: a field's array is an OR of its matchers; fields of an object are
  ANDed; `$or` ORs whole sub-patterns. Matchers: exact string/number/boolean/null, "" (empty),
  prefix, suffix, equals-ignore-case (also inside prefix/suffix), anything-but (a value, a list, or
  prefix/suffix/equals-ignore-case/wildcard), numeric (=, <, <=, >, >=, ranges), exists, wildcard.
  A matcher against an array in the record matches when any element does.
* Strings match character by character; numbers by their value AND kind, as Lambda's note "300,
  300.0 and 3.0e2 are not considered equal" (an int never equals a float here; numeric ranges
  compare values).
* The value is decoded as UTF-8. `{"value": {...}}` filters a value that is a JSON object;
  `{"value": [...]}` filters a value that is a plain string. AWS's Kafka table says a record whose
  format does not fit the pattern (JSON against a plain-string pattern, plain string against a JSON
  pattern, not UTF-8) is filtered "on the other metadata properties only", and a Kafka mapping has
  no other property to filter on: here such a record matches no value rule, so it is dropped
  (committed without invoking) unless another filter matches it. The same holds for a tombstone.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

# Parsing the value is most of a filter's cost: orjson parses flight-state JSON about 4x faster.
import orjson

# AWS: 5 filters by default, 10 with a quota increase; Filter.Pattern is at most 4096 characters.
MAX_FILTERS = 10
MAX_PATTERN_CHARS = 4096
NUMERIC_OPS = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
# EventBridge: numeric matching works on values between -5.0e9 and +5.0e9 inclusive.
NUMERIC_LIMIT = 5.0e9

Matcher = Callable[[Any], bool]
_MISSING = object()


class FilterError(ValueError):
    """A FilterCriteria that AWS would refuse at CreateEventSourceMapping ("Invalid filter pattern definition")."""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_literal(expected, actual) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return expected is actual
    return type(expected) is type(actual) and expected == actual


def _wildcard(pattern: str, where: str) -> re.Pattern:
    if "**" in pattern:
        raise FilterError(f"{where}: wildcard {pattern!r} has consecutive '*' characters")
    parts = re.split(r"(?<!\\)\*", pattern)
    body = ".*".join(re.escape(part.replace("\\*", "*")) for part in parts)
    return re.compile(body, re.DOTALL)


def _strings(arg, where: str, op: str) -> list[str]:
    items = arg if isinstance(arg, list) else [arg]
    if not items or not all(isinstance(s, str) for s in items):
        raise FilterError(f"{where}: {op} takes a string or a list of strings, not {arg!r}")
    return items


def _string_test(spec, where: str, op: str) -> Callable[[str], bool]:
    """prefix/suffix argument: a string, or {"equals-ignore-case": string}."""
    if isinstance(spec, dict) and list(spec) == ["equals-ignore-case"] and isinstance(spec["equals-ignore-case"], str):
        text = spec["equals-ignore-case"].casefold()
        if op == "prefix":
            return lambda s: s.casefold().startswith(text)
        return lambda s: s.casefold().endswith(text)
    if not isinstance(spec, str):
        raise FilterError(f"{where}: {op} takes a string or {{\"equals-ignore-case\": string}}, not {spec!r}")
    return (lambda s: s.startswith(spec)) if op == "prefix" else (lambda s: s.endswith(spec))


def _anything_but(arg, where: str) -> Matcher:
    if isinstance(arg, dict):
        if len(arg) != 1:
            raise FilterError(f"{where}: anything-but takes one of prefix/suffix/equals-ignore-case/wildcard")
        (op, spec), = arg.items()
        if op in ("prefix", "suffix"):
            test = _string_test(spec, where, op)
            return lambda v: isinstance(v, str) and not test(v)
        if op == "equals-ignore-case":
            folded = {s.casefold() for s in _strings(spec, where, op)}
            return lambda v: isinstance(v, str) and v.casefold() not in folded
        if op == "wildcard":
            compiled = [_wildcard(s, where) for s in _strings(spec, where, op)]
            return lambda v: isinstance(v, str) and not any(c.fullmatch(v) for c in compiled)
        raise FilterError(f"{where}: anything-but does not take {op!r}")
    values = arg if isinstance(arg, list) else [arg]
    if not values or not all(isinstance(v, str) or _is_number(v) for v in values):
        raise FilterError(f"{where}: anything-but takes strings or numbers, not {arg!r}")
    return lambda v: v is not _MISSING and not any(_same_literal(x, v) for x in values)


def _numeric(arg, where: str) -> Matcher:
    if not isinstance(arg, list) or not arg or len(arg) % 2 or len(arg) > 4:
        raise FilterError(f"{where}: numeric takes [op, number] or [op, number, op, number], not {arg!r}")
    checks = []
    for op, bound in zip(arg[::2], arg[1::2]):
        if op not in NUMERIC_OPS or not _is_number(bound):
            raise FilterError(f"{where}: numeric has {op!r} {bound!r}; operators are {', '.join(NUMERIC_OPS)}")
        if abs(bound) > NUMERIC_LIMIT:
            raise FilterError(f"{where}: numeric bound {bound} is outside -5.0e9..5.0e9")
        checks.append((NUMERIC_OPS[op], bound))
    if len(checks) == 2 and "=" in (arg[0], arg[2]):
        raise FilterError(f"{where}: a numeric range cannot use '='")
    return lambda v: _is_number(v) and all(test(v, bound) for test, bound in checks)


def _matcher(rule, where: str) -> Matcher:
    """One element of a field's array."""
    if not isinstance(rule, dict):
        if isinstance(rule, (list,)):
            raise FilterError(f"{where}: a nested array is not a matcher")
        return lambda v: _same_literal(rule, v)
    if len(rule) != 1:
        raise FilterError(f"{where}: a matcher object has exactly one operator, not {sorted(rule)}")
    (op, arg), = rule.items()
    if op in ("prefix", "suffix"):
        test = _string_test(arg, where, op)
        return lambda v: isinstance(v, str) and test(v)
    if op == "equals-ignore-case":
        if not isinstance(arg, str):
            raise FilterError(f"{where}: equals-ignore-case takes a string, not {arg!r}")
        folded = arg.casefold()
        return lambda v: isinstance(v, str) and v.casefold() == folded
    if op == "anything-but":
        return _anything_but(arg, where)
    if op == "numeric":
        return _numeric(arg, where)
    if op == "exists":
        if not isinstance(arg, bool):
            raise FilterError(f"{where}: exists takes true or false, not {arg!r}")
        return (lambda v: v is not _MISSING) if arg else (lambda v: v is _MISSING)
    if op == "wildcard":
        if not isinstance(arg, str):
            raise FilterError(f"{where}: wildcard takes a string, not {arg!r}")
        compiled = _wildcard(arg, where)
        return lambda v: isinstance(v, str) and compiled.fullmatch(v) is not None
    raise FilterError(f"{where}: unknown operator {op!r}")


def _field(rules: list, where: str) -> Matcher:
    """A field's array: OR of its matchers; against an array in the record, any element may match."""
    if not rules:
        raise FilterError(f"{where}: an empty array matches nothing")
    matchers = [_matcher(r, where) for r in rules]
    wants_missing = [m for m, r in zip(matchers, rules) if isinstance(r, dict) and r.get("exists") is False]

    def match(value) -> bool:
        if value is _MISSING:
            return any(m(_MISSING) for m in wants_missing)
        if isinstance(value, list):
            return any(m(v) for v in value for m in matchers)
        return any(m(value) for m in matchers)
    return match


def _object(pattern: Mapping, where: str) -> Callable[[Any], bool]:
    """An object of the pattern: every field must match (AND); `$or` is a list of alternative objects."""
    if not pattern:
        raise FilterError(f"{where}: an empty object matches nothing")
    checks: list[tuple[str | None, Callable]] = []
    for key, sub in pattern.items():
        here = f"{where}.{key}"
        if key == "$or":
            if not isinstance(sub, list) or len(sub) < 2 or not all(isinstance(s, dict) for s in sub):
                raise FilterError(f"{here}: $or takes a list of at least two objects")
            alternatives = [_object(s, here) for s in sub]
            checks.append((None, lambda obj, alts=alternatives: any(a(obj) for a in alts)))
        elif isinstance(sub, dict):
            nested = _object(sub, here)
            checks.append((key, lambda v, n=nested: isinstance(v, dict) and n(v)))
        elif isinstance(sub, list):
            checks.append((key, _field(sub, here)))
        else:
            raise FilterError(f"{here}: a field's rule must be an array or an object, not {sub!r}")

    def match(obj) -> bool:
        for key, check in checks:
            if key is None:
                if not check(obj):
                    return False
                continue
            value = obj.get(key, _MISSING) if isinstance(obj, dict) else _MISSING
            if not check(value):
                return False
        return True
    return match


@dataclass(frozen=True)
class _Filter:
    pattern: str
    json_value: Callable[[Any], bool] | None   # {"value": {...}}: tests a decoded JSON object
    string_value: Callable[[Any], bool] | None  # {"value": [...]}: tests the decoded plain string


class RecordFilter:
    """Compiled FilterCriteria; `matches(value_bytes)` is True when the record must reach the function."""

    def __init__(self, filters: Sequence[_Filter]) -> None:
        self._filters = tuple(filters)
        self._json = tuple(f.json_value for f in self._filters if f.json_value is not None)
        self._plain = tuple(f.string_value for f in self._filters if f.string_value is not None)

    @classmethod
    def from_criteria(cls, criteria) -> "RecordFilter | None":
        """From a FilterCriteria ({"Filters": [{"Pattern": "<json>"}]}, or its JSON text); None when empty."""
        if criteria is None:
            return None
        if isinstance(criteria, str):
            try:
                criteria = json.loads(criteria) if criteria.strip() else {}
            except ValueError as exc:
                raise FilterError(f"FilterCriteria is not JSON: {exc}") from None
        if not isinstance(criteria, dict):
            raise FilterError(f"FilterCriteria must be an object with Filters, not {criteria!r}")
        filters = criteria.get("Filters") or []
        if not isinstance(filters, list):
            raise FilterError("FilterCriteria.Filters must be a list")
        if len(filters) > MAX_FILTERS:
            raise FilterError(f"FilterCriteria has {len(filters)} filters; AWS allows 5 (10 with a quota increase)")
        compiled = [_compile(f, i) for i, f in enumerate(filters)]
        return cls(compiled) if compiled else None

    def matches(self, value: bytes | None) -> bool:
        if value is None:  # a tombstone has no value: only a plain-string `exists: false` can match it
            return any(m(_MISSING) for m in self._plain)
        parsed = _json_document(value)
        if parsed is not None:  # a JSON value matches JSON patterns only
            return any(m(parsed) for m in self._json)
        if not self._plain:
            return False
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return any(m(text) for m in self._plain)

    def __len__(self) -> int:
        return len(self._filters)


def _json_document(value: bytes):
    """The value as a JSON object or array, or None when it is a plain string, a JSON scalar or not UTF-8."""
    head = value[:1]
    if head not in (b"{", b"["):
        if not head.isspace():
            return None
        head = value.lstrip()[:1]
        if head not in (b"{", b"["):
            return None
    try:
        doc = orjson.loads(value)  # also rejects bytes that are not UTF-8
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and the standard parser takes (integers beyond 64 bits)
            doc = json.loads(value.decode("utf-8"))
        except ValueError:
            return None
    return doc if isinstance(doc, (dict, list)) else None


def _compile(entry, index: int) -> _Filter:
    where = f"Filters[{index}].Pattern"
    raw = entry.get("Pattern") if isinstance(entry, dict) else None
    if not isinstance(raw, str):
        raise FilterError(f"{where} must be a string holding a JSON pattern")
    if len(raw) > MAX_PATTERN_CHARS:
        raise FilterError(f"{where} has {len(raw)} characters; AWS allows {MAX_PATTERN_CHARS}")
    try:
        pattern = json.loads(raw)
    except ValueError as exc:
        raise FilterError(f"{where} is not JSON: {exc}") from None
    if not isinstance(pattern, dict) or not pattern:
        raise FilterError(f"{where} must be a non-empty JSON object")
    extra = set(pattern) - {"value"}
    if extra:
        raise FilterError(f"{where}: Kafka event source mappings filter on `value` only, not {sorted(extra)}")
    rule = pattern["value"]
    if isinstance(rule, dict):
        matcher = _object(rule, "value")
        return _Filter(raw, lambda doc: isinstance(doc, dict) and matcher(doc), None)
    if isinstance(rule, list):
        return _Filter(raw, None, _field(rule, "value"))
    raise FilterError(f"{where}: `value` must be an object (JSON values) or an array (plain strings)")
