"""Structured answers: a JSON Schema to send with the request, and the answer checked against it.

A schema may be given as a JSON Schema dict, a Pydantic v2 model class or a dataclass;
:func:`to_schema` turns any of them into a :class:`Schema`, the frozen form that
:class:`~rtvlm_widget.ChatParams` carries. :func:`parse_structured` finds the JSON in an answer
(code fences and leading prose are fine), validates it and, for a model class or dataclass, builds
the instance.

Validation is jsonschema's (the schema's ``$schema`` dialect, else Draft 2020-12, local ``$ref``
to ``$defs``/``definitions`` as Pydantic writes them, ``format`` as far as the installed jsonschema can
check it); this module words its errors with a path into the answer. Pydantic is imported by
nobody here: a model class is recognised by its ``model_json_schema``/``model_validate`` methods.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for
from referencing.exceptions import Unresolvable

__all__ = [
    "Schema",
    "dataclass_schema",
    "extract_json",
    "is_strict_compatible",
    "parse_structured",
    "schema_instruction",
    "to_schema",
    "validate",
]

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# Depth past which a schema or answer is treated as hostile (a $ref loop, absurd nesting).
_MAX_DEPTH = 64
# Raw-decode attempts when looking for JSON inside prose: enough for any real answer, and it
# keeps a long answer full of braces from costing quadratic time.
_MAX_JSON_STARTS = 64


@dataclass(frozen=True)
class Schema:
    """A JSON Schema ready to send, plus what to build from a valid answer.

    Frozen and comparable (``ChatParams`` is compared to notice changed settings): the schema is
    kept as canonical JSON text.
    """

    #: ``response_format.json_schema.name``: letters, digits, ``_`` and ``-``, at most 64.
    name: str
    #: The schema as canonical JSON (sorted keys, no spaces).
    text: str
    #: A Pydantic model class or dataclass to build from a valid answer; None keeps plain data.
    target: type | None = None

    @property
    def json_schema(self) -> dict[str, Any]:
        """The schema as a fresh dict (callers may change it)."""
        loaded: dict[str, Any] = json.loads(self.text)
        return loaded

    @property
    def strict(self) -> bool:
        """Whether OpenAI's ``strict`` mode accepts it (see :func:`is_strict_compatible`)."""
        return is_strict_compatible(self.json_schema)


def to_schema(spec: object, *, name: str | None = None) -> Schema:
    """Normalize ``spec`` (a :class:`Schema`, JSON Schema mapping, Pydantic v2 model class or
    dataclass) into a :class:`Schema`. Raises ``TypeError`` with the reason otherwise."""
    if isinstance(spec, Schema):
        return spec if name is None else dataclasses.replace(spec, name=_clean_name(name))
    target: type | None = None
    if isinstance(spec, Mapping):
        try:
            schema = json.loads(json.dumps(spec))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the schema dict is not plain JSON ({exc})") from exc
        default_name = str(schema.get("title") or "answer")
    elif isinstance(spec, type) and _is_pydantic_model(spec):
        schema = spec.model_json_schema()  # type: ignore[attr-defined]
        target, default_name = spec, spec.__name__
    elif isinstance(spec, type) and dataclasses.is_dataclass(spec):
        schema = dataclass_schema(spec)
        target, default_name = spec, spec.__name__
    else:
        raise TypeError(
            f"schema must be a JSON Schema dict, a Pydantic model class or a dataclass, "
            f"not {type(spec).__name__}"
        )
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Schema(name=_clean_name(name or default_name), text=text, target=target)


def _clean_name(name: str) -> str:
    return _NAME_CHARS.sub("_", name).strip("_")[:64] or "answer"


def _is_pydantic_model(cls: type) -> bool:
    return callable(getattr(cls, "model_json_schema", None)) and callable(
        getattr(cls, "model_validate", None)
    )


def is_strict_compatible(schema: Mapping[str, Any]) -> bool:
    """True when every object in ``schema`` lists all its properties as required and forbids
    others: what OpenAI's ``strict: true`` demands (it refuses other schemas outright, so the
    client sends ``strict`` only when this holds)."""

    def walk(node: object, depth: int) -> bool:
        if depth > _MAX_DEPTH:
            return False
        if isinstance(node, list):
            return all(walk(n, depth + 1) for n in node)
        if not isinstance(node, dict):
            return True
        props = node.get("properties")
        if node.get("type") == "object" or isinstance(props, dict):
            if node.get("additionalProperties") is not False:
                return False
            if isinstance(props, dict) and set(node.get("required") or ()) != set(props):
                return False
        return all(walk(v, depth + 1) for v in node.values())

    return walk(dict(schema), 0)


def schema_instruction(schema: Schema) -> str:
    """The text appended to the prompt when a server cannot take the schema as
    ``response_format``: the model is told the shape instead."""
    return (
        "Answer with only a JSON value (no prose, no code fence) that matches this JSON Schema:\n"
        + schema.text
    )


# -- dataclass → JSON Schema ------------------------------------------------------------------


def dataclass_schema(cls: type) -> dict[str, Any]:
    """A JSON Schema for a dataclass from its fields and type hints.

    Understood: ``str``, ``int``, ``float``, ``bool``, ``None``, ``list[X]``, ``tuple[X, ...]``,
    fixed tuples (``tuple[float, float, float, float]`` becomes an array of exactly 4 numbers),
    ``dict[str, X]``, ``X | None``/``Optional``/``Union``, ``Literal[...]``, ``enum.Enum``
    subclasses, nested dataclasses and ``Any``. Fields with a default are optional. A field's
    ``metadata={"json_schema": {...}}`` is merged into its schema (bounds, lengths, a
    description). Raises ``TypeError`` for anything else.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    schema = _dataclass_object(cls, ())
    schema["title"] = cls.__name__
    return schema


def _dataclass_object(cls: type, stack: tuple[type, ...]) -> dict[str, Any]:
    if cls in stack:
        raise TypeError(f"dataclass {cls.__name__} refers to itself; recursive schemas are not supported")
    hints = _hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        prop = _type_schema(hints[f.name], (*stack, cls), f"{cls.__name__}.{f.name}")
        extra = f.metadata.get("json_schema")
        if isinstance(extra, Mapping):
            prop = {**prop, **extra}
        properties[f.name] = prop
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        # String annotations (``from __future__ import annotations``) resolve in the module's
        # namespace only, so a dataclass defined inside a function cannot name its neighbours.
        raise TypeError(
            f"cannot read the type hints of {cls.__name__} ({exc}); define the dataclasses it "
            "uses at module level"
        ) from exc


_SCALARS: dict[object, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_schema(tp: Any, stack: tuple[type, ...], where: str) -> dict[str, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if tp is type(None) or tp is None:
        return {"type": "null"}
    if tp is Any:
        return {}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_object(tp, stack)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is Union or origin is types.UnionType:
        return {"anyOf": [_type_schema(a, stack, where) for a in args]}
    if origin in (list, Sequence) or tp in (list, Sequence):
        item = _type_schema(args[0], stack, where) if args else {}
        return {"type": "array", "items": item}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], stack, where)}
        items = [_type_schema(a, stack, where) for a in args]
        bounds = {"minItems": len(items), "maxItems": len(items)}
        if all(i == items[0] for i in items):
            return {"type": "array", "items": items[0], **bounds}
        return {"type": "array", "prefixItems": items, "items": False, **bounds}
    if origin is dict and args and args[0] is str:
        return {"type": "object", "additionalProperties": _type_schema(args[1], stack, where)}
    raise TypeError(f"{where}: cannot express the type {tp!r} as JSON Schema")


def _build(tp: Any, value: Any) -> Any:
    """``value`` (valid JSON data) turned into ``tp``: dataclasses, tuples and enums built."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = _hints(tp)
        kwargs = {
            f.name: _build(hints[f.name], value[f.name])
            for f in dataclasses.fields(tp)
            if f.init and f.name in value
        }
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is Union or origin is types.UnionType:
        if value is None:
            return None
        others = [a for a in args if a is not type(None)]
        return _build(others[0], value) if len(others) == 1 else value
    if (origin in (list, Sequence) or tp in (list, Sequence)) and isinstance(value, list):
        return [_build(args[0], v) for v in value] if args else list(value)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in value)
        return tuple(_build(a, v) for a, v in zip(args, value, strict=False))
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: _build(args[1], v) for k, v in value.items()}
    return value


# -- validation ---------------------------------------------------------------------------------
# jsonschema checks; what is kept here words its errors the way the answer reads (JSON values,
# a path from ``$``) and lists them in the answer's order.


class _SchemaProblem(Exception):
    """The schema, not the answer, is at fault (not valid JSON Schema, a $ref to nowhere)."""


def validate(instance: object, schema: Schema | Mapping[str, Any]) -> str | None:
    """None when ``instance`` (parsed JSON) matches ``schema``, else a readable reason: where in
    the answer (``$.objects[0].box``) and what is wrong, up to three problems joined by ``;``. A
    schema that is itself broken gives a reason starting ``the schema is invalid``."""
    try:
        return _check(instance, schema)
    except _SchemaProblem as exc:
        return str(exc)


def _check(instance: Any, schema: Schema | Mapping[str, Any]) -> str | None:
    spec = schema if isinstance(schema, Schema) else to_schema(schema)
    checker = _compile(spec.text)
    if isinstance(checker, str):
        raise _SchemaProblem(checker)
    try:
        errors = list(checker.iter_errors(instance))
    except Unresolvable as exc:
        raise _SchemaProblem(f"the schema is invalid: its $ref {exc.ref!r} cannot be resolved") from None
    except RecursionError:
        raise _SchemaProblem("the schema is invalid: it nests too deeply (a $ref loop?)") from None
    if not errors:
        return None
    # The schema's keys are sorted (Schema.text), so jsonschema reports in alphabetical order; the
    # answer's own order reads better, and at one place a wrong type or a missing key tells most.
    # Same-worded problems (one per missing key) show once.
    errors.sort(key=lambda e: (_answer_order(instance, e.absolute_path), _FIRST.get(str(e.validator), 2)))
    problems = dict.fromkeys(_describe(e) for e in errors)
    return "; ".join(list(problems)[:3])


_FIRST = {"type": 0, "required": 1}


@functools.lru_cache(maxsize=64)
def _compile(text: str) -> Validator | str:
    """The validator for a schema (its ``$schema`` dialect, else Draft 2020-12, formats checked
    where the installed jsonschema can: some need its optional extras), or why the schema is
    invalid. Keyed by the canonical text: compiling costs far more than validating one answer."""
    root = json.loads(text)
    cls = _finite(validator_for(root, default=Draft202012Validator))
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
    error = best_match(meta.iter_errors(root))
    if error is not None:
        where = "".join(_child("", key) for key in error.absolute_path).lstrip(".")
        return f"the schema is invalid{' at ' + where if where else ''}: {error.message}"
    return cls(root, format_checker=cls.FORMAT_CHECKER)


@functools.lru_cache(maxsize=8)
def _finite(cls: type[Validator]) -> type[Validator]:
    # Python's json reads NaN and Infinity, which JSON has not and no box can be drawn from.
    checker = cls.TYPE_CHECKER.redefine("number", _is_finite_number)
    extended: type[Validator] = extend(cls, type_checker=checker)  # type: ignore[no-untyped-call]
    return extended


def _is_finite_number(_checker: object, value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _answer_order(instance: object, path: Sequence[str | int]) -> list[int]:
    order: list[int] = []
    node: Any = instance
    for key in path:
        order.append(list(node).index(key) if isinstance(node, dict) else int(key))
        node = node[key]
    return order


def _describe(error: ValidationError) -> str:
    where = _where(error.absolute_path)
    if error.validator in ("anyOf", "oneOf"):
        forms = len(typing.cast(list[Any], error.validator_value))
        if not error.context:
            return f"{where}: matches more than one of the {forms} forms where exactly one must match"
        # best_match descends to the telling reason: from the form of the answer's type, deepest.
        best = best_match([error])
        if best is error:
            return f"{where}: matches none of the {forms} allowed forms"
        inner = _where(best.absolute_path)
        detail = _message(best) if inner == where else f"{inner}: {_message(best)}"
        return f"{where}: matches none of the {forms} allowed forms ({detail})"
    return f"{where}: {_message(error)}"


def _where(path: Sequence[str | int]) -> str:
    where = "$"
    for key in path:
        where = _child(where, key)
    return where


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


_BOUNDS = {
    "minimum": "below the minimum",
    "maximum": "above the maximum",
    "exclusiveMinimum": "not above the exclusive minimum",
    "exclusiveMaximum": "not below the exclusive maximum",
}


def _message(error: ValidationError) -> str:
    """jsonschema's words for the common keywords, in JSON's (``true``, ``"x"``) rather than
    Python's; the rest keep jsonschema's message."""
    # Both are set on every error that iter_errors yields (Unset only on hand-made ones).
    want: Any = error.validator_value
    value: Any = error.instance
    keyword = error.validator
    if keyword == "type":
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a finite number"
        wanted = [want] if isinstance(want, str) else list(want)
        return f"expected {' or '.join(map(str, wanted))}, got {_json_type(value)}"
    if keyword == "required":
        missing = [json.dumps(key) for key in want if key not in value]
        return f"missing required propert{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}"
    if keyword == "additionalProperties" and want is False and isinstance(error.schema, Mapping):
        known, patterns = error.schema.get("properties", {}), error.schema.get("patternProperties", {})
        extra = [
            json.dumps(key)
            for key in value
            if key not in known and not any(re.search(p, key) for p in patterns)
        ]
        return f"unexpected propert{'y' if len(extra) == 1 else 'ies'} {', '.join(extra)}"
    if keyword == "enum":
        shown = ", ".join(_show(o) for o in want[:8]) + (", ..." if len(want) > 8 else "")
        return f"{_show(value)} is not one of {shown}"
    if keyword == "const":
        return f"{_show(value)} is not {_show(want)}"
    if keyword in _BOUNDS:
        return f"{_show(value)} is {_BOUNDS[str(keyword)]} {_show(want)}"
    if keyword == "minLength":
        return f"{_show(value)} is shorter than {want} characters"
    if keyword == "maxLength":
        return f"a string of {len(value)} characters is longer than {want}"
    if keyword == "pattern":
        return f"{_show(value)} does not match the pattern {want!r}"
    if keyword == "format":
        return f"{_show(value)} is not a valid {want}"
    if keyword == "minItems":
        return f"expected at least {want} items, got {len(value)}"
    if keyword == "maxItems":
        return f"expected at most {want} items, got {len(value)}"
    if keyword == "items" and want is False and isinstance(error.schema, Mapping):
        return f"expected at most {len(error.schema.get('prefixItems', ()))} items, got {len(value)}"
    return error.message


def _json_type(value: object) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return name
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _show(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- finding JSON in an answer --------------------------------------------------------------------

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer: the whole text, else a fenced block (```json …```),
    else the first object or array after any leading prose. Raises ``ValueError`` saying why
    nothing was found."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the answer is empty")
    first_error: json.JSONDecodeError | None = None
    candidates = [stripped] + [m.group(1).strip() for m in _FENCE.finditer(stripped)]
    for candidate in candidates:
        try:
            return _decode(candidate, 0, whole=True)[0]
        except json.JSONDecodeError as exc:
            if candidate is not stripped and first_error is None:
                first_error = exc
    # JSON after prose: decode from each "{" or "[" that is not inside a value already found, and
    # prefer an object (a footnote like "[1]" before the answer is an array too).
    found: list[Any] = []
    end = 0
    starts = [i for i, ch in enumerate(stripped) if ch in "{["][:_MAX_JSON_STARTS]
    for start in starts:
        if start < end:
            continue
        try:
            value, end = _decode(stripped, start, whole=False)
        except json.JSONDecodeError as exc:
            first_error = first_error or exc
            continue
        if isinstance(value, dict):
            return value
        found.append(value)
    if found:
        return found[0]
    if first_error is None:
        raise ValueError("no JSON object or array in the answer")
    raise ValueError(f"the JSON in the answer is not valid ({first_error.msg} at char {first_error.pos})")


_DECODER = json.JSONDecoder()


def _decode(text: str, start: int, *, whole: bool) -> tuple[Any, int]:
    """``json.loads`` (``whole``) or ``raw_decode`` from ``start``; absurd nesting (a model stuck
    on "[[[[") is a decode error here rather than a RecursionError."""
    try:
        if whole:
            return json.loads(text), len(text)
        return _DECODER.raw_decode(text, start)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, start) from None


def parse_structured(
    text: str, schema: Schema | Mapping[str, Any] | type, *, finish_reason: str | None = None
) -> tuple[Any, str | None]:
    """``(data, None)`` when ``text`` holds JSON matching ``schema``, else ``(None, reason)``.

    ``data`` is the parsed JSON, or an instance of the Pydantic model / dataclass the schema came
    from. Never raises for a bad answer: the reason says what is wrong (``finish_reason="length"``
    adds that the answer was cut off at max_tokens). ``schema`` may be anything :func:`to_schema`
    takes.
    """
    spec = to_schema(schema)
    # A cut-off answer may still hold a complete inner object (found after the broken outer one),
    # so the hint goes with any failure, not only with broken JSON.
    cut = "; the answer was cut off at max_tokens, so raise max_tokens" if finish_reason == "length" else ""
    try:
        data = extract_json(text)
    except ValueError as exc:
        return None, f"{exc}{cut}"
    try:
        problem = _check(data, spec)
    except _SchemaProblem as exc:
        return None, str(exc)  # not the answer's fault, so not worded as if it were
    if problem is not None:
        return None, f"the answer does not match the schema: {problem}{cut}"
    if spec.target is None:
        return data, None
    return _instantiate(spec.target, data)


def _instantiate(target: type, data: Any) -> tuple[Any, str | None]:
    try:
        if _is_pydantic_model(target):
            return target.model_validate(data), None  # type: ignore[attr-defined]
        return _build(target, data), None
    except Exception as exc:  # noqa: BLE001 - a user's model may raise anything; it is the reason
        message = " ".join(str(exc).split())
        return None, f"{target.__name__} refused the answer: {message[:300]}"
