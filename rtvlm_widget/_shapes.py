"""Boxes and points in a model's answer, whatever convention the model uses, as fractions 0–1.

Vision-language models write locations in many ways. :func:`parse_shapes` reads them all into
:class:`Box` and :class:`Point`, with coordinates as fractions (0–1) of the width and height of the
image that was sent, ordered (``x1 <= x2``, ``y1 <= y2``) and clamped to the image.

Text forms, recognised in the answer text (``convention="auto"``) or when named:

* ``paligemma``: ``<loc0256><loc0128><loc0768><loc0512> cat ; …``: four tokens y1 x1 y2 x2 over
  1024 bins, then the label; detections separated by ``;``.
* ``molmo``: ``<point x="61.5" y="40.2" alt="cup">cup</point>`` and
  ``<points x1=".." y1=".." x2=".." y2=".." alt="..">label</points>``, in percent of the image.
* Qwen2-VL's grounding tokens ``<|object_ref_start|>cat<|object_ref_end|><|box_start|>(x1,y1),
  (x2,y2)<|box_end|>``, in thousandths (0–1000).

Anything else is read as JSON (:func:`~rtvlm_widget._schema.extract_json`: code fences and prose
around it are fine), or given as parsed data (dicts and lists, a dataclass or Pydantic instance).
Accepted JSON shapes: a list of objects, or an object holding one under ``objects``,
``detections``, ``boxes`` …, or one object. In an object, a box is ``bbox``/``box``/``bounding_box``
``[x1, y1, x2, y2]`` (or an object with ``x1 y1 x2 y2``, ``xmin ymin xmax ymax``, ``left top right
bottom`` or ``x y width height``), ``bbox_2d`` (Qwen2.5-VL) or ``box_2d`` (Gemini: ``[y1, x1, y2,
x2]`` in 0–1000, whatever the convention); a point is ``point``/``point_2d`` ``[x, y]`` or
``{"x": .., "y": ..}``, or ``x``/``y`` on the object itself. The label is ``label``, ``name``,
``class``, ``category`` …; the score ``score``/``confidence``.

The scale of the JSON forms (``convention="auto"``), decided once per answer from all its values:

1. ``box_2d`` → Gemini: 0–1000, y first.
2. the schema the answer was asked with, when given (``schema=``), declares the box or point
   numbers' ``maximum``: 1 → ``norm1``, 1000 → ``norm1000`` (:data:`DETECT_SCHEMA` uses 1000).
3. no value above 1.5 → ``norm1`` (fractions; a little beyond 0–1 is clamped).
4. all values fit in the image sent (``image_size``) → ``pixels`` (``bbox_2d`` of Qwen2.5-VL is in
   pixels of the image it got).
5. some value is beyond the image but none above 1000 → ``norm1000`` (Qwen2-VL, Qwen3-VL); above
   1000 → ``pixels`` anyway (clamped). Without ``image_size`` values up to 1000 read as ``norm1000``.

A box of pixels-sized numbers that also fit 0–1000 is ambiguous; name the convention when you know
the model (``norm1000`` for Qwen2-VL/Qwen3-VL, ``qwen25`` or ``pixels`` for Qwen2.5-VL). Named
conventions: ``norm1`` fractions, ``norm1000`` thousandths, ``pixels``/``qwen25`` pixels of
``image_size``, ``gemini`` thousandths with every box and point written y first, ``molmo`` and
``paligemma`` their text forms only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._schema import Schema, extract_json, to_schema

__all__ = [
    "CONVENTIONS",
    "DETECT_PROMPT",
    "DETECT_SCHEMA",
    "Box",
    "Convention",
    "Point",
    "Shape",
    "Shapes",
    "parse_shapes",
]

Convention = Literal["auto", "norm1", "norm1000", "pixels", "qwen25", "gemini", "molmo", "paligemma"]
CONVENTIONS: tuple[str, ...] = (
    "auto",
    "norm1",
    "norm1000",
    "pixels",
    "qwen25",
    "gemini",
    "molmo",
    "paligemma",
)

#: Asks for labelled boxes as :data:`DETECT_SCHEMA` describes them.
DETECT_PROMPT = (
    "Detect the objects in the image. Answer with JSON: "
    '{"objects": [{"label": "short name", "box": [x1, y1, x2, y2]}]}. '
    "Box corners are integers from 0 to 1000: x1 and x2 in thousandths of the image width from "
    "the left edge, y1 and y2 in thousandths of the height from the top edge. "
    "List at most 10 objects, the most prominent first; an empty list if there are none."
)

# Labels in printable ASCII without quote or backslash: what OpenCV can draw, and a character
# class every grammar engine reads. llama.cpp turns a pattern into grammar and then ignores
# maxLength, so the length is in the pattern too. (Without it, a constrained model can write byte
# sequences that are not UTF-8, which llama-server then refuses to parse.)
_LABEL_PATTERN = "^[A-Za-z0-9 ,.:;!?'()/&+#%*_-]{1,40}$"

#: The schema for :data:`DETECT_PROMPT`. Box corners are integers 0–1000 rather than fractions:
#: llama.cpp's grammar enforces integer bounds but not number bounds, so only integers keep a
#: constrained model inside the image (and they are fewer tokens). Every part is bounded
#: (label length, 10 objects) so a complete answer fits in a few hundred tokens.
DETECT_SCHEMA: dict[str, Any] = {
    "title": "detections",
    "type": "object",
    "properties": {
        "objects": {
            "type": "array",
            "maxItems": 10,
            "items": {
                "type": "object",
                "properties": {
                    "label": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 40,
                        "pattern": _LABEL_PATTERN,
                    },
                    "box": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0, "maximum": 1000},
                        "minItems": 4,
                        "maxItems": 4,
                    },
                },
                "required": ["label", "box"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["objects"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Box:
    """A box in fractions (0–1) of the image sent: ``x1 <= x2``, ``y1 <= y2``."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for the browser overlay: ``{"kind": "box", "x1": …, "label": …}``."""
        return {"kind": "box", **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Point:
    """A point in fractions (0–1) of the image sent."""

    x: float
    y: float
    label: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for the browser overlay: ``{"kind": "point", "x": …, "label": …}``."""
        return {"kind": "point", **dataclasses.asdict(self)}


Shape = Box | Point


class Shapes(list[Shape]):
    """The shapes found, plus how they were read."""

    #: The convention used ("" when nothing looked like a shape).
    convention: str = ""
    #: Entries that looked like shapes but were unusable: degenerate (no area once clamped),
    #: not numbers, the wrong count of coordinates.
    dropped: int = 0


# -- entry point -----------------------------------------------------------------------------------

_LOC = re.compile(r"<loc(\d{4})>")
_POINT_TAG = re.compile(r"<points?\b")
_QWEN2_BOX = "<|box_start|>"


def parse_shapes(
    answer: object,
    *,
    image_size: tuple[int, int] | None = None,
    convention: Convention | str = "auto",
    schema: Schema | Mapping[str, Any] | type | None = None,
) -> Shapes:
    """The boxes and points in ``answer`` (its text or its parsed data), see the module doc.

    ``image_size`` is ``(width, height)`` of the image sent; it is needed for pixel coordinates.
    Never raises for a strange answer (it yields fewer shapes, counted in ``dropped``); raises
    ``ValueError`` for an unknown ``convention`` or pixels without ``image_size``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}")
    if convention in ("pixels", "qwen25") and image_size is None:
        raise ValueError(f"convention {convention!r} needs image_size=(width, height) of the image sent")
    if isinstance(answer, str):
        if convention == "paligemma" or (convention == "auto" and _LOC.search(answer)):
            return _paligemma(answer)
        if convention == "molmo" or (convention == "auto" and _POINT_TAG.search(answer)):
            return _molmo(answer)
        if convention in ("auto", "norm1000") and _QWEN2_BOX in answer:
            return _qwen2_tokens(answer)
        try:
            answer = extract_json(answer)
        except ValueError:
            return Shapes()
    elif convention in ("molmo", "paligemma"):
        raise ValueError(f"convention {convention!r} reads answer text, not parsed data")
    hint = _schema_convention(schema) if schema is not None and convention == "auto" else None
    return _from_data(_plain(answer), image_size, hint or convention)


def _plain(data: object) -> object:
    """A dataclass or Pydantic instance as dicts and lists."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return dataclasses.asdict(data)
    dump = getattr(data, "model_dump", None)
    if callable(dump) and not isinstance(data, type):
        return dump()
    return data


# -- text forms ------------------------------------------------------------------------------------

# The label runs to the next ";" or the next detection's tokens.
_LOC_ENTRY = re.compile(r"((?:<loc\d{4}>\s*){4})((?:(?!<loc\d{4}>)[^;])*)")
_SEG = re.compile(r"<seg\d{3}>")


def _paligemma(text: str) -> Shapes:
    shapes = Shapes()
    shapes.convention = "paligemma"
    for match in _LOC_ENTRY.finditer(text):
        y1, x1, y2, x2 = (int(v) / 1024 for v in _LOC.findall(match.group(1)))
        label = _SEG.sub("", _LOC.sub("", match.group(2)))
        _add_box(shapes, (x1, y1, x2, y2), label, None)
    return shapes


_TAG = re.compile(r"<(points?)\b([^>]*)>(.*?)</\1\s*>", re.DOTALL)
_ATTR = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*\"([^\"]*)\"")


def _molmo(text: str) -> Shapes:
    shapes = Shapes()
    shapes.convention = "molmo"
    for match in _TAG.finditer(text):
        attrs = dict(_ATTR.findall(match.group(2)))
        label = match.group(3).strip() or attrs.get("alt", "")
        if match.group(1) == "point":
            pairs = [(attrs.get("x"), attrs.get("y"))]
        else:
            pairs = [(attrs.get(f"x{i}"), attrs.get(f"y{i}")) for i in range(1, 1 + len(attrs))]
            pairs = [p for p in pairs if p != (None, None)]
        for x, y in pairs:
            xy = _numbers([x, y])
            if xy is None:
                shapes.dropped += 1
            else:
                _add_point(shapes, xy[0] / 100, xy[1] / 100, label)
    return shapes


_QWEN2 = re.compile(
    r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>"
    r"|<\|box_start\|>\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*,\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*<\|box_end\|>",
    re.DOTALL,
)


def _qwen2_tokens(text: str) -> Shapes:
    shapes = Shapes()
    shapes.convention = "norm1000"
    label = ""
    for match in _QWEN2.finditer(text):
        if match.group(1) is not None:
            label = match.group(1)
            continue
        x1, y1, x2, y2 = (int(match.group(i)) / 1000 for i in range(2, 6))
        _add_box(shapes, (x1, y1, x2, y2), label, None)
    return shapes


# -- JSON forms ------------------------------------------------------------------------------------

_LIST_KEYS = (
    "objects",
    "detections",
    "boxes",
    "bboxes",
    "points",
    "results",
    "items",
    "annotations",
    "predictions",
    "instances",
)
_BOX_KEYS = ("bbox", "box", "bounding_box", "boundingBox", "bbox_2d", "box_2d", "rect")
_POINT_KEYS = ("point", "point_2d", "coordinates", "position")
_LABEL_KEYS = ("label", "name", "class", "class_name", "category", "object", "text", "description", "alt")
_SCORE_KEYS = ("score", "confidence", "conf", "probability", "prob")
_CORNER_KEYS = (
    ("x1", "y1", "x2", "y2"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("x_min", "y_min", "x_max", "y_max"),
    ("left", "top", "right", "bottom"),
)
_SIZE_KEYS = (("width", "height"), ("w", "h"))


@dataclass
class _Raw:
    """One shape as written: coordinates in the answer's own scale, x first."""

    kind: Literal["box", "point"]
    coords: list[float]
    label: str
    score: float | None
    #: Gemini's box_2d: 0–1000 whatever the answer's other numbers say.
    gemini: bool = False


def _from_data(data: object, image_size: tuple[int, int] | None, convention: str) -> Shapes:
    shapes = Shapes()
    raws: list[_Raw] = []
    for item in _items(data, 0):
        raw = _raw_shape(item, convention == "gemini")
        if raw is None:
            shapes.dropped += 1
        elif raw is not _NOT_A_SHAPE:
            raws.append(raw)
    if not raws:
        shapes.convention = "" if convention == "auto" else convention
        return shapes
    scale_free = [r for r in raws if not r.gemini]
    if convention == "auto":
        convention = _guess(scale_free, image_size) if scale_free else "gemini"
    shapes.convention = convention
    for raw in raws:
        sx, sy = _scale(convention if not raw.gemini else "gemini", image_size)
        if sx is None or sy is None:
            shapes.dropped += 1
        elif raw.kind == "box":
            x1, y1, x2, y2 = raw.coords
            _add_box(shapes, (x1 / sx, y1 / sy, x2 / sx, y2 / sy), raw.label, raw.score)
        else:
            _add_point(shapes, raw.coords[0] / sx, raw.coords[1] / sy, raw.label)
    return shapes


def _items(data: object, depth: int) -> Iterable[object]:
    """The candidate shape entries in ``data``: list elements, or an object's list."""
    if depth > 4:
        return
    if isinstance(data, list):
        if _numbers(data) is not None and len(data) in (2, 4):
            yield data  # a bare [x1, y1, x2, y2] or [x, y]
            return
        for element in data:
            if isinstance(element, list) and _numbers(element) is None:
                yield from _items(element, depth + 1)
            else:
                yield element
        return
    if isinstance(data, dict):
        if _looks_like_shape(data):
            yield data
            return
        for key in _LIST_KEYS:
            if key in data:
                yield from _items(data[key], depth + 1)
                return
        # An object wrapping the list under a name of its own ({"cars": [...]}).
        for value in data.values():
            if isinstance(value, (list, dict)):
                yield from _items(value, depth + 1)


def _looks_like_shape(obj: Mapping[str, Any]) -> bool:
    keys = set(obj)
    if keys & {*_BOX_KEYS, *_POINT_KEYS}:
        return True
    if any(set(corners) <= keys for corners in _CORNER_KEYS):
        return True
    return {"x", "y"} <= keys


# Returned for entries that are not shapes at all (a caption beside the boxes): not "dropped".
_NOT_A_SHAPE = _Raw("point", [], "", None)


def _raw_shape(item: object, gemini_order: bool) -> _Raw | None:
    """``item`` as a raw shape; None when it tries to be one and fails."""
    if isinstance(item, list):
        coords = _numbers(item)
        if coords is None or len(coords) not in (2, 4):
            return None
        return _raw_from_list(coords, "", None, gemini_order, gemini_order)
    if not isinstance(item, dict):
        return _NOT_A_SHAPE
    label = _label(item)
    score = next((float(item[k]) for k in _SCORE_KEYS if _is_number(item.get(k))), None)
    for key in _BOX_KEYS:
        if key in item:
            value = item[key]
            if isinstance(value, dict):
                return _raw_from_object(value, label, score)
            coords = _numbers(value)
            if coords is None or len(coords) != 4:
                return None
            gemini = key == "box_2d"
            return _raw_from_list(coords, label, score, gemini or gemini_order, gemini)
    for key in _POINT_KEYS:
        if key in item:
            value = item[key]
            if isinstance(value, dict):
                return _raw_from_object(value, label, None)
            coords = _numbers(value)
            if coords is None or len(coords) != 2:
                return None
            return _raw_from_list(coords, label, None, gemini_order, False)
    if _looks_like_shape(item):
        return _raw_from_object(item, label, score)
    return _NOT_A_SHAPE


def _raw_from_list(coords: list[float], label: str, score: float | None, y_first: bool, gemini: bool) -> _Raw:
    if len(coords) == 2:
        y, x = coords if y_first else coords[::-1]
        return _Raw("point", [x, y], label, score, gemini)
    if y_first:
        coords = [coords[1], coords[0], coords[3], coords[2]]
    return _Raw("box", coords, label, score, gemini)


def _raw_from_object(obj: Mapping[str, Any], label: str, score: float | None) -> _Raw | None:
    for corners in _CORNER_KEYS:
        if set(corners) <= set(obj):
            coords = _numbers([obj[k] for k in corners])
            return None if coords is None else _Raw("box", coords, label, score)
    xy = _numbers([obj.get("x"), obj.get("y")])
    if xy is None:
        return None
    for width, height in _SIZE_KEYS:
        if width in obj and height in obj:
            size = _numbers([obj[width], obj[height]])
            if size is None:
                return None
            return _Raw("box", [xy[0], xy[1], xy[0] + size[0], xy[1] + size[1]], label, score)
    return _Raw("point", xy, label, score)


def _label(obj: Mapping[str, Any]) -> str:
    for key in _LABEL_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if _is_number(value):
            return str(value)  # a class id
    return ""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(values: object) -> list[float] | None:
    """``values`` as finite floats (numeric strings too), or None."""
    if not isinstance(values, (list, tuple)) or not values:
        return None
    out: list[float] = []
    for value in values:
        if isinstance(value, str):
            try:
                value = float(value.strip().rstrip("%"))
            except ValueError:
                return None
        if not _is_number(value) or not math.isfinite(value):
            return None
        out.append(float(value))
    return out


def _guess(raws: list[_Raw], image_size: tuple[int, int] | None) -> str:
    values = [v for r in raws for v in r.coords]
    top = max(values)
    # Fractions a little past the edge happen; no pixel or thousandths box is that small.
    if top <= 1.5:
        return "norm1"
    if image_size is None:
        return "norm1000" if top <= 1000 else "pixels"
    width, height = image_size
    # A couple of pixels of slack: models round, and some count the far edge inclusively.
    fits = all(
        r.coords[i] <= (width if i % 2 == 0 else height) * 1.01 + 2
        for r in raws
        for i in range(len(r.coords))
    )
    if fits or top > 1000:
        return "pixels"
    return "norm1000"


def _scale(convention: str, image_size: tuple[int, int] | None) -> tuple[float | None, float | None]:
    """What the answer's x and y numbers are divided by to become fractions."""
    if convention == "norm1":
        return 1.0, 1.0
    if convention in ("norm1000", "gemini"):
        return 1000.0, 1000.0
    if image_size is None:
        return None, None
    return float(image_size[0]), float(image_size[1])


def _clean_label(label: str) -> str:
    return " ".join(label.split())[:100]


def _add_box(shapes: Shapes, box: tuple[float, float, float, float], label: str, score: float | None) -> None:
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in box)
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        shapes.dropped += 1
        return
    shapes.append(Box(x1, y1, x2, y2, _clean_label(label), score))


def _add_point(shapes: Shapes, x: float, y: float, label: str) -> None:
    shapes.append(Point(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0), _clean_label(label)))


# -- the schema as a hint --------------------------------------------------------------------------


def _schema_convention(schema: Schema | Mapping[str, Any] | type) -> str | None:
    """``norm1``/``norm1000`` when the schema bounds its box or point numbers by 1 or 1000."""
    root = to_schema(schema).json_schema

    def walk(node: object, depth: int) -> str | None:
        if depth > 32:
            return None
        if isinstance(node, list):
            return next((c for c in (walk(n, depth + 1) for n in node) if c), None)
        if not isinstance(node, dict):
            return None
        props = node.get("properties")
        if isinstance(props, dict):
            for key in (*_BOX_KEYS, *_POINT_KEYS):
                if key in props and key not in ("box_2d",):
                    found = _bound(props[key], root)
                    if found:
                        return found
        return next((c for c in (walk(v, depth + 1) for v in node.values()) if c), None)

    return walk(root, 0)


def _bound(prop: object, root: Mapping[str, Any]) -> str | None:
    if not isinstance(prop, dict):
        return None
    items = prop.get("items")
    if isinstance(items, dict) and "$ref" in items:
        ref = str(items["$ref"]).rsplit("/", 1)[-1]
        items = (root.get("$defs") or root.get("definitions") or {}).get(ref)
    if not isinstance(items, dict):
        return None
    top = items.get("maximum")
    if top == 1:
        return "norm1"
    if top == 1000:
        return "norm1000"
    return None
