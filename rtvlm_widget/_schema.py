"""Structured answers: a JSON Schema to send with the request, and the answer checked against it.

A schema may be given as a JSON Schema dict, a Pydantic v2 model class or a dataclass;
:func:`to_schema` turns any of them into a :class:`Schema`, the frozen form that
:class:`~rtvlm_widget.ChatParams` carries. :func:`parse_structured` finds the JSON in an answer
(code fences and leading prose are fine), validates it and, for a model class or dataclass, builds
the instance.

Validation uses the small JSON Schema subset below, built in so it reads the same on every
machine (the ``jsonschema`` package is not used even where installed): ``type`` (one or a list),
``properties``, ``required``, ``additionalProperties`` (false or a schema), ``items``,
``prefixItems``, ``minItems``/``maxItems``, ``enum``, ``const``, ``minimum``/``maximum``,
``exclusiveMinimum``/``exclusiveMaximum``, ``minLength``/``maxLength``, ``pattern``, ``anyOf``,
``oneOf``, ``allOf`` and local ``$ref`` (``#/$defs/…``, ``#/definitions/…``, as Pydantic writes
them). Other keywords are accepted and not checked. Pydantic is imported by nobody here: a model
class is recognised by its ``model_json_schema``/``model_validate`` methods.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import operator
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

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

_JSON_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: object, name: str) -> bool:
    kind = _json_type(value)
    if name == "number":
        return kind in ("integer", "number")
    if name == "integer":
        # JSON Schema counts 3.0 as an integer.
        return kind == "integer" or (kind == "number" and float(value).is_integer())  # type: ignore[arg-type]
    return kind == name


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if _json_type(value) in _JSON_TYPES else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(instance: object, schema: Schema | Mapping[str, Any]) -> str | None:
    """None when ``instance`` (parsed JSON) matches ``schema``, else a readable reason: where in
    the answer (``$.objects[0].box``) and what is wrong. Up to three problems are listed."""
    root = schema.json_schema if isinstance(schema, Schema) else dict(schema)
    problems = []
    for problem in _errors(instance, root, "$", root, 0):
        problems.append(problem)
        if len(problems) == 3:
            break
    return "; ".join(problems) if problems else None


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not ref.startswith("#"):
        return None
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def _errors(value: object, schema: object, path: str, root: Mapping[str, Any], depth: int) -> Iterator[str]:
    if schema is True or schema is None:
        return
    if schema is False:
        yield f"{path}: no value is allowed here"
        return
    if not isinstance(schema, Mapping):
        return
    if depth > _MAX_DEPTH:
        yield f"{path}: the schema nests too deeply (a $ref loop?)"
        return
    if "$ref" in schema:
        target = _resolve(str(schema["$ref"]), root)
        if target is None:
            yield f"{path}: the schema's $ref {schema['$ref']!r} cannot be resolved"
            return
        yield from _errors(value, target, path, root, depth + 1)
    types_ = schema.get("type")
    if types_ is not None:
        wanted = [types_] if isinstance(types_, str) else list(types_)
        if not any(_is_type(value, str(t)) for t in wanted):
            yield f"{path}: expected {' or '.join(map(str, wanted))}, got {_json_type(value)}"
            return
    if "const" in schema and value != schema["const"]:
        yield f"{path}: {_show(value)} is not {_show(schema['const'])}"
    if "enum" in schema:
        options = list(schema["enum"])
        if not any(_same(value, option) for option in options):
            shown = ", ".join(_show(o) for o in options[:8]) + (", ..." if len(options) > 8 else "")
            yield f"{path}: {_show(value)} is not one of {shown}"
    yield from _number_errors(value, schema, path)
    if isinstance(value, str):
        yield from _string_errors(value, schema, path)
    if isinstance(value, list):
        yield from _array_errors(value, schema, path, root, depth)
    if isinstance(value, dict):
        yield from _object_errors(value, schema, path, root, depth)
    for sub in schema.get("allOf") or ():
        yield from _errors(value, sub, path, root, depth + 1)
    for keyword, want_one in (("anyOf", False), ("oneOf", True)):
        forms = schema.get(keyword)
        if not forms:
            continue
        reasons = [next(_errors(value, sub, path, root, depth + 1), None) for sub in forms]
        matched = sum(r is None for r in reasons)
        if matched == 0:
            # The telling reason is from a form of the right type, not "expected null, got object".
            telling = [r for r in reasons if r is not None and ": expected " not in r] or reasons
            detail = str(telling[0]).removeprefix(f"{path}: ")
            yield f"{path}: matches none of the {len(forms)} allowed forms ({detail})"
        elif want_one and matched > 1:
            yield f"{path}: matches {matched} of the forms where exactly one must match"


def _same(a: object, b: object) -> bool:
    # True == 1 in Python but not in JSON.
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _number_errors(value: object, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        yield f"{path}: {value} is not a finite number"
        return
    checks = (
        ("minimum", operator.ge, "below the minimum"),
        ("maximum", operator.le, "above the maximum"),
        ("exclusiveMinimum", operator.gt, "not above the exclusive minimum"),
        ("exclusiveMaximum", operator.lt, "not below the exclusive maximum"),
    )
    for keyword, ok, words in checks:
        bound = schema.get(keyword)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool) and not ok(value, bound):
            yield f"{path}: {_show(value)} is {words} {_show(bound)}"


def _string_errors(value: str, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        yield f"{path}: {_show(value)} is shorter than {low} characters"
    if isinstance(high, int) and len(value) > high:
        yield f"{path}: a string of {len(value)} characters is longer than {high}"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            found = re.search(pattern, value) is not None
        except re.error:
            return  # a pattern Python cannot read is not the answer's fault
        if not found:
            yield f"{path}: {_show(value)} does not match the pattern {pattern!r}"


def _array_errors(
    value: list[Any], schema: Mapping[str, Any], path: str, root: Mapping[str, Any], depth: int
) -> Iterator[str]:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        yield f"{path}: expected at least {low} items, got {len(value)}"
    if isinstance(high, int) and len(value) > high:
        yield f"{path}: expected at most {high} items, got {len(value)}"
    prefix = schema.get("prefixItems")
    items = schema.get("items")
    if isinstance(items, list):  # the older tuple form of "items"
        prefix, items = items, schema.get("additionalItems", True)
    prefix = prefix if isinstance(prefix, list) else []
    for index, item in enumerate(value):
        sub = prefix[index] if index < len(prefix) else items
        if sub is False and index >= len(prefix):
            yield f"{path}: expected at most {len(prefix)} items, got {len(value)}"
            return
        yield from _errors(item, sub, _child(path, index), root, depth + 1)


def _object_errors(
    value: dict[str, Any], schema: Mapping[str, Any], path: str, root: Mapping[str, Any], depth: int
) -> Iterator[str]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    for key in schema.get("required") or ():
        if key not in value:
            yield f"{path}: missing required property {json.dumps(key)}"
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            yield from _errors(item, properties[key], _child(path, key), root, depth + 1)
        elif extra is False:
            yield f"{path}: unexpected property {json.dumps(key)}"
        else:
            yield from _errors(item, extra, _child(path, key), root, depth + 1)


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
    problem = validate(data, spec)
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
