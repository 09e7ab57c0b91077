"""Boxes and points read from answers written the way each model family writes them.

The sample answers are written here in each family's style (fences, prose, key names, coordinate
order and scale as their model cards and grounding prompts show), for a 640x480 frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rtvlm_widget._schema import parse_structured, to_schema, validate
from rtvlm_widget._shapes import (
    CONVENTIONS,
    DETECT_PROMPT,
    DETECT_SCHEMA,
    Box,
    Point,
    Shapes,
    parse_shapes,
)

SIZE = (640, 480)


def boxes(shapes: Shapes) -> list[tuple[float, float, float, float, str]]:
    """The boxes rounded to 4 places, to compare with hand-computed fractions."""
    return [
        (round(s.x1, 4), round(s.y1, 4), round(s.x2, 4), round(s.y2, 4), s.label)
        for s in shapes
        if isinstance(s, Box)
    ]


def points(shapes: Shapes) -> list[tuple[float, float, str]]:
    return [(round(s.x, 4), round(s.y, 4), s.label) for s in shapes if isinstance(s, Point)]


# -- generic JSON, fractions 0–1 (SmolVLM / GPT-4o style when asked for normalized boxes) -----------------


def test_fractions_in_a_fenced_block_after_prose() -> None:
    answer = """Sure! Here are the objects I can see:

```json
{
  "objects": [
    {"label": "coffee mug", "box": [0.62, 0.41, 0.78, 0.69]},
    {"label": "laptop", "box": [0.05, 0.3, 0.55, 0.95]}
  ]
}
```"""
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "norm1" and shapes.dropped == 0
    assert boxes(shapes) == [(0.62, 0.41, 0.78, 0.69, "coffee mug"), (0.05, 0.3, 0.55, 0.95, "laptop")]


def test_detections_with_classes_scores_and_corner_objects() -> None:
    answer = {
        "detections": [
            {"class": "car", "confidence": 0.91, "bbox": {"xmin": 64, "ymin": 240, "xmax": 320, "ymax": 432}},
            {"class": "person", "score": 0.55, "bbox": {"x": 400, "y": 96, "width": 96, "height": 288}},
        ],
        "summary": "a car and a person on a street",
    }
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "pixels" and shapes.dropped == 0
    assert boxes(shapes) == [(0.1, 0.5, 0.5, 0.9, "car"), (0.625, 0.2, 0.775, 0.8, "person")]
    assert [s.score for s in shapes if isinstance(s, Box)] == [0.91, 0.55]


# -- Qwen2.5-VL: bbox_2d / point_2d in pixels of the image it got ----------------------------------------


def test_qwen25_bbox_2d_in_pixels() -> None:
    answer = """```json
[
\t{"bbox_2d": [135, 114, 455, 478], "label": "person in a red jacket"},
\t{"bbox_2d": [470, 240, 628, 472], "label": "chair"}
]
```"""
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "pixels"
    assert boxes(shapes) == [
        (0.2109, 0.2375, 0.7109, 0.9958, "person in a red jacket"),
        (0.7344, 0.5, 0.9812, 0.9833, "chair"),
    ]
    # Named explicitly, the same answer reads the same.
    assert boxes(parse_shapes(answer, image_size=SIZE, convention="qwen25")) == boxes(shapes)


def test_qwen25_points() -> None:
    answer = (
        '```json\n[\n  {"point_2d": [321, 198], "label": "cup handle"},\n'
        '  {"point_2d": [64, 452], "label": "pen"}\n]\n```'
    )
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "pixels"
    assert points(shapes) == [(0.5016, 0.4125, "cup handle"), (0.1, 0.9417, "pen")]


# -- Qwen2-VL / Qwen3-VL: 0–1000 ----------------------------------------------------------------------------


def test_qwen3_bbox_2d_in_thousandths_is_told_apart_from_pixels() -> None:
    # 996 is below the frame's height in no pixel reading: these are thousandths.
    answer = (
        '[{"bbox_2d": [211, 238, 711, 996], "label": "person"}, '
        '{"bbox_2d": [734, 500, 981, 983], "label": "chair"}]'
    )
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "norm1000"
    assert boxes(shapes) == [(0.211, 0.238, 0.711, 0.996, "person"), (0.734, 0.5, 0.981, 0.983, "chair")]


def test_qwen2_grounding_tokens() -> None:
    answer = (
        "<|object_ref_start|>the red car<|object_ref_end|><|box_start|>(102,310),(598,870)<|box_end|> "
        "and <|object_ref_start|>the dog<|object_ref_end|><|box_start|>(640,505),(930,990)<|box_end|>"
    )
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "norm1000"
    assert boxes(shapes) == [(0.102, 0.31, 0.598, 0.87, "the red car"), (0.64, 0.505, 0.93, 0.99, "the dog")]


def test_ambiguous_numbers_follow_the_named_convention() -> None:
    # These fit the frame in pixels, so "auto" reads pixels; a Qwen2-VL user says norm1000.
    answer = [{"bbox": [100, 120, 300, 360], "label": "box"}]
    assert boxes(parse_shapes(answer, image_size=SIZE)) == [(0.1562, 0.25, 0.4688, 0.75, "box")]
    assert boxes(parse_shapes(answer, image_size=SIZE, convention="norm1000")) == [
        (0.1, 0.12, 0.3, 0.36, "box")
    ]
    # Without a frame size, numbers up to 1000 can only be thousandths.
    assert parse_shapes(answer).convention == "norm1000"


# -- Gemini: box_2d is [ymin, xmin, ymax, xmax] in 0–1000 -------------------------------------------------


def test_gemini_box_2d_is_y_first_in_thousandths() -> None:
    answer = """```json
[
  {"box_2d": [282, 92, 998, 524], "label": "person"},
  {"box_2d": [508, 560, 990, 985], "label": "dog"}
]
```"""
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "gemini"
    assert boxes(shapes) == [(0.092, 0.282, 0.524, 0.998, "person"), (0.56, 0.508, 0.985, 0.99, "dog")]


def test_gemini_points_are_y_first_when_named() -> None:
    answer = '[{"point": [130, 760], "label": "lamp"}]'
    assert points(parse_shapes(answer, convention="gemini")) == [(0.76, 0.13, "lamp")]
    # Read as the generic [x, y] otherwise (760 is past the frame's height: thousandths).
    assert points(parse_shapes(answer, image_size=SIZE)) == [(0.13, 0.76, "lamp")]


# -- Molmo: <point>/<points> tags in percent ----------------------------------------------------------------


def test_molmo_point_and_points_tags() -> None:
    answer = (
        ' <point x="66.3" y="45.1" alt="coffee mug">coffee mug</point> '
        '<points x1="24.5" y1="30.2" x2="40.1" y2="31.0" alt="eyes of the cat">eyes of the cat</points>'
    )
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "molmo"
    assert points(shapes) == [
        (0.663, 0.451, "coffee mug"),
        (0.245, 0.302, "eyes of the cat"),
        (0.401, 0.31, "eyes of the cat"),
    ]


def test_molmo_label_from_alt_and_bad_numbers_dropped() -> None:
    answer = '<point x="12" y="88" alt="tail"></point><point x="n/a" y="5">ear</point>'
    shapes = parse_shapes(answer, convention="molmo")
    assert points(shapes) == [(0.12, 0.88, "tail")] and shapes.dropped == 1


# -- PaliGemma: <loc####> tokens, y1 x1 y2 x2 over 1024 bins ---------------------------------------------


def test_paligemma_loc_tokens() -> None:
    answer = "<loc0186><loc0254><loc0938><loc0610> cat ; <loc0412><loc0702><loc0990><loc1000> dog"
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "paligemma"
    assert boxes(shapes) == [
        (0.248, 0.1816, 0.5957, 0.916, "cat"),
        (0.6855, 0.4023, 0.9766, 0.9668, "dog"),
    ]


def test_paligemma_segmentation_tokens_and_missing_separator() -> None:
    answer = (
        "<loc0000><loc0000><loc0512><loc0512><seg012><seg101> left top"
        "<loc0512><loc0512><loc1023><loc1023> right"
    )
    assert [b[4] for b in boxes(parse_shapes(answer))] == ["left top", "right"]


# -- the detection preset ----------------------------------------------------------------------------------


def test_detect_schema_hint_reads_thousandths_even_where_pixels_would_fit() -> None:
    data = {"objects": [{"label": "mug", "box": [100, 200, 300, 400]}]}
    assert validate(data, DETECT_SCHEMA) is None
    shapes = parse_shapes(data, image_size=SIZE, schema=DETECT_SCHEMA)
    assert shapes.convention == "norm1000"
    assert boxes(shapes) == [(0.1, 0.2, 0.3, 0.4, "mug")]
    # A schema bounding box numbers by 1 reads fractions.
    fractions = {"type": "object", "properties": {"box": {"items": {"type": "number", "maximum": 1}}}}
    assert parse_shapes({"box": [0.5, 0.5, 1, 1]}, image_size=SIZE, schema=fractions).convention == "norm1"


def test_detect_prompt_describes_the_schema() -> None:
    for words in ('"objects"', '"label"', '"box"', "0 to 1000", "at most 10"):
        assert words in DETECT_PROMPT
    objects = DETECT_SCHEMA["properties"]["objects"]
    assert objects["maxItems"] == 10
    label = objects["items"]["properties"]["label"]
    # The pattern keeps labels drawable and JSON-safe: no quote, no backslash, ASCII only.
    assert validate("coffee mug (2)", label) is None
    for bad in ('say "hi"', "back\\slash", "café", "x" * 41, ""):
        assert validate(bad, label) is not None, bad


# -- shapes of the answer, and what is dropped ----------------------------------------------------------


def test_coordinates_are_ordered_clamped_and_degenerate_boxes_counted() -> None:
    answer = {
        "objects": [
            {"label": "swapped", "box": [0.8, 0.9, 0.2, 0.1]},
            {"label": "spills over", "box": [-0.2, 0.5, 1.3, 0.7]},
            {"label": "flat", "box": [0.3, 0.5, 0.6, 0.5]},
            {"label": "outside", "box": [1.2, 0.1, 1.5, 0.2]},
            {"label": "three numbers", "box": [0.1, 0.2, 0.3]},
            {"label": "words", "box": ["left", "top", "right", "bottom"]},
            {"label": "string numbers", "box": ["0.1", "0.2", "0.3", "0.4"]},
        ]
    }
    shapes = parse_shapes(answer, image_size=SIZE)
    assert boxes(shapes) == [
        (0.2, 0.1, 0.8, 0.9, "swapped"),
        (0.0, 0.5, 1.0, 0.7, "spills over"),
        (0.1, 0.2, 0.3, 0.4, "string numbers"),
    ]
    assert shapes.dropped == 4


def test_one_convention_per_answer() -> None:
    # One box within 0-1 among pixel boxes is a small pixel box, not a fraction.
    answer = [{"box": [0, 0, 1, 1]}, {"box": [320, 240, 640, 480]}]
    shapes = parse_shapes(answer, image_size=SIZE)
    assert shapes.convention == "pixels"
    assert boxes(shapes)[1] == (0.5, 0.5, 1.0, 1.0, "")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ([0.1, 0.2, 0.3, 0.4], [(0.1, 0.2, 0.3, 0.4, "")]),  # a bare box
        ([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9]], [(0.1, 0.2, 0.3, 0.4, ""), (0.5, 0.5, 0.9, 0.9, "")]),
        ({"bbox": [0.1, 0.2, 0.3, 0.4], "name": "solo"}, [(0.1, 0.2, 0.3, 0.4, "solo")]),
        ({"cars": [{"box": [0.1, 0.2, 0.3, 0.4], "category": "car"}]}, [(0.1, 0.2, 0.3, 0.4, "car")]),
        ([{"x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.4, "label": 7}], [(0.1, 0.2, 0.3, 0.4, "7")]),
        ([{"left": 0.1, "top": 0.2, "right": 0.3, "bottom": 0.4}], [(0.1, 0.2, 0.3, 0.4, "")]),
    ],
)
def test_json_shapes_accepted(answer: object, expected: list[tuple[float, float, float, float, str]]) -> None:
    assert boxes(parse_shapes(answer, image_size=SIZE)) == expected


def test_points_as_objects_and_lists() -> None:
    answer = {"points": [{"x": 0.25, "y": 0.5, "label": "a"}, {"point": {"x": 0.75, "y": 0.1}, "name": "b"}]}
    shapes = parse_shapes(answer, image_size=SIZE)
    assert points(shapes) == [(0.25, 0.5, "a"), (0.75, 0.1, "b")]


def test_labels_are_tidied() -> None:
    shapes = parse_shapes([{"box": [0.1, 0.1, 0.2, 0.2], "label": "  big\n\tred   car " + "x" * 200}])
    assert shapes[0].label.startswith("big red car x") and len(shapes[0].label) == 100


def test_text_without_shapes_is_empty_not_an_error() -> None:
    for answer in ("A cat sleeping on a sofa.", '{"caption": "a cat"}', "", "{not json"):
        shapes = parse_shapes(answer, image_size=SIZE)
        assert list(shapes) == [] and shapes.dropped == 0 and shapes.convention == ""


@dataclass
class Item:
    label: str
    box: tuple[int, int, int, int]


@dataclass
class Found:
    objects: list[Item]


def test_instances_from_a_schema_are_read_too() -> None:
    data, error = parse_structured('{"objects": [{"label": "mug", "box": [64, 48, 320, 240]}]}', Found)
    assert error is None
    assert boxes(parse_shapes(data, image_size=SIZE)) == [(0.1, 0.1, 0.5, 0.5, "mug")]


def test_shapes_as_plain_json_for_the_overlay() -> None:
    assert Box(0.1, 0.2, 0.3, 0.4, "mug", 0.9).as_dict() == {
        "kind": "box",
        "x1": 0.1,
        "y1": 0.2,
        "x2": 0.3,
        "y2": 0.4,
        "label": "mug",
        "score": 0.9,
    }
    assert Point(0.5, 0.6, "tip").as_dict() == {"kind": "point", "x": 0.5, "y": 0.6, "label": "tip"}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="convention must be one of"):
        parse_shapes("[]", convention="yolo")
    with pytest.raises(ValueError, match="needs image_size"):
        parse_shapes("[]", convention="pixels")
    with pytest.raises(ValueError, match="reads answer text"):
        parse_shapes({"objects": []}, convention="paligemma")
    assert set(CONVENTIONS) >= {
        "auto",
        "norm1",
        "norm1000",
        "pixels",
        "qwen25",
        "gemini",
        "molmo",
        "paligemma",
    }
    assert to_schema(DETECT_SCHEMA).name == "detections"
