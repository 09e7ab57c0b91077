"""Drawing an answer's shapes on the frame: pixels checked where the box edges must be."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from rtvlm_widget._annotate import PALETTE, annotate, pixel_box
from rtvlm_widget._shapes import Box, Point, parse_shapes

GRAY = (128, 128, 128)
RED = (0, 0, 255)  # BGR


def frame(width: int = 200, height: int = 100) -> npt.NDArray[np.uint8]:
    return np.full((height, width, 3), GRAY, np.uint8)


def color_at(image: npt.NDArray[np.uint8], x: int, y: int) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in image[y, x])
    return b, g, r


def test_box_edges_land_on_the_computed_pixels() -> None:
    box = Box(0.1, 0.2, 0.6, 0.9, "mug")
    assert pixel_box(box, 200, 100) == (20, 20, 119, 89)
    image = annotate(frame(), [box], color=RED, thickness=2)
    assert image.shape == (100, 200, 3) and image.dtype == np.uint8
    # Left and right edges, two pixels wide, inwards from the box's own edge pixels; below the
    # label tag (no room above this box for it, so it is inside, from the top-left corner).
    for y in (60, 75, 87):
        assert color_at(image, 20, y) == RED and color_at(image, 21, y) == RED
        assert color_at(image, 118, y) == RED and color_at(image, 119, y) == RED
        assert color_at(image, 19, y) == GRAY and color_at(image, 22, y) == GRAY
        assert color_at(image, 117, y) == GRAY and color_at(image, 120, y) == GRAY
    # Bottom and top edges, to the right of the label.
    for x in (100, 110):
        assert color_at(image, x, 89) == RED and color_at(image, x, 88) == RED
        assert color_at(image, x, 90) == GRAY and color_at(image, x, 87) == GRAY
        assert color_at(image, x, 20) == RED and color_at(image, x, 19) == GRAY
    # The inside stays as it was.
    assert color_at(image, 70, 60) == GRAY


def test_label_tag_sits_above_the_box_in_its_color() -> None:
    image = annotate(frame(), [Box(0.1, 0.4, 0.9, 0.9, "mug")], color=RED, thickness=1)
    assert pixel_box(Box(0.1, 0.4, 0.9, 0.9), 200, 100)[1] == 40
    drawn = (image[:40] != GRAY).any(axis=2)
    rows, cols = drawn.nonzero()
    # A tag from the box's left edge, ending on its top edge...
    assert cols.min() == 20 and rows.max() == 39 and 30 < cols.max() < 60 and rows.min() > 10
    tag = image[rows.min() : 40, 20 : cols.max() + 1]
    red = (tag == RED).all(axis=2)
    # ...filled red, with light text (red is a dark ink) in it.
    assert red.mean() > 0.6
    assert (tag[..., 1] > 200).any()


def test_label_goes_inside_a_box_at_the_top_edge() -> None:
    image = annotate(frame(), [Box(0.0, 0.0, 1.0, 1.0, "all")], color=RED, thickness=1)
    assert color_at(image, 0, 50) == RED and color_at(image, 199, 50) == RED
    assert color_at(image, 100, 0) == RED and color_at(image, 100, 99) == RED
    # The tag is drawn inside from the top-left corner.
    assert (image[1:10, 1:10] == RED).all(axis=2).any()


def test_points_are_dots_at_their_place() -> None:
    image = annotate(frame(), [Point(0.25, 0.5, "tip")], color=RED, thickness=2)
    assert color_at(image, 50, 50) == RED
    assert color_at(image, 50, 80) == GRAY and color_at(image, 20, 50) == GRAY


def test_jpeg_in_gives_the_same_drawing() -> None:
    ok, data = cv2.imencode(".jpg", frame(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    image = annotate(bytes(data), [Box(0.1, 0.2, 0.6, 0.9)], color=RED, thickness=2)
    b, g, r = color_at(image, 20, 60)
    assert r == 255 and b == 0 and g == 0
    assert all(abs(c - 128) <= 3 for c in color_at(image, 60, 60))


def test_the_frame_given_is_not_changed_and_gray_frames_work() -> None:
    original = frame()
    annotate(original, [Box(0.1, 0.1, 0.5, 0.5, "x")], color=RED)
    assert (original == GRAY).all()
    gray = np.full((50, 80), 30, np.uint8)
    assert annotate(gray, [Box(0.1, 0.1, 0.5, 0.5)], color=RED).shape == (50, 80, 3)


def test_colors_per_label_are_stable() -> None:
    shapes = [Box(0.1, 0.3, 0.3, 0.9, "cat"), Box(0.6, 0.3, 0.9, 0.9, "cat")]
    image = annotate(frame(), shapes, thickness=1)
    first, second = color_at(image, 20, 60), color_at(image, 120, 60)
    assert first == second and first in PALETTE


def test_labels_opencv_cannot_draw_do_not_break_it() -> None:
    image = annotate(frame(), [Box(0.1, 0.5, 0.9, 0.9, "café ☕ \x00"), Point(0.5, 0.2, "")], color=RED)
    assert image.shape == (100, 200, 3)


def test_bytes_that_are_not_an_image_are_refused() -> None:
    with pytest.raises(ValueError, match="OpenCV can decode"):
        annotate(b"not a jpeg", [])
    with pytest.raises(ValueError, match="uint8"):
        annotate(np.zeros((4, 4, 3), np.float32), [])


def test_an_answer_drawn_end_to_end() -> None:
    answer = '```json\n[{"bbox_2d": [64, 48, 320, 240], "label": "mug"}]\n```'
    ok, data = cv2.imencode(".png", frame(640, 480))
    assert ok
    shapes = parse_shapes(answer, image_size=(640, 480))
    image = annotate(bytes(data), shapes, color=RED, thickness=1)
    assert isinstance(shapes[0], Box)
    assert pixel_box(shapes[0], 640, 480) == (64, 48, 319, 239)
    assert color_at(image, 64, 150) == RED and color_at(image, 319, 150) == RED
    assert color_at(image, 200, 239) == RED and color_at(image, 200, 240) == GRAY
