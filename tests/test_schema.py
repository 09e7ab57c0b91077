"""Structured answers: schemas from dicts, dataclasses and Pydantic models, the validator's reasons,
the client's response_format (and its step back on servers that refuse it), and the real check:
llama-server's grammar makes the random-weight test model answer schema-valid JSON."""

from __future__ import annotations

import copy
import enum
import json
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import cv2
import httpx
import numpy as np
import pytest

from rtvlm_widget import ChatParams, Completion, ServerHTTPError, VLMClient
from rtvlm_widget._chat import SCHEMA_FORMATS, build_chat_body
from rtvlm_widget._schema import (
    Schema,
    dataclass_schema,
    extract_json,
    is_strict_compatible,
    parse_structured,
    to_schema,
    validate,
)
from rtvlm_widget._shapes import DETECT_SCHEMA, Box, parse_shapes
from tests.aio import with_client
from tests.servers.format_refusing import OLD_LLAMA_CPP_REFUSAL, FormatRefusingServer
from tests.servers.llama import LlamaServer

T = TypeVar("T")


run = with_client


def jpeg(size: tuple[int, int] = (640, 480)) -> bytes:
    """A frame with a few shapes on it (the test model cannot see them, but it reads the pixels)."""
    image = np.full((size[1], size[0], 3), (40, 90, 30), np.uint8)
    cv2.rectangle(image, (80, 60), (300, 400), (20, 20, 220), -1)
    cv2.circle(image, (470, 200), 90, (230, 200, 40), -1)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(data)


# -- schemas from dicts ------------------------------------------------------------------------------


def test_dict_schema_is_canonical_comparable_and_named_from_its_title() -> None:
    a = to_schema({"title": "Scene report!", "type": "object", "properties": {"n": {"type": "integer"}}})
    b = to_schema({"properties": {"n": {"type": "integer"}}, "type": "object", "title": "Scene report!"})
    assert a == b and hash(a) == hash(b)
    assert a.name == "Scene_report"
    assert a.json_schema["properties"] == {"n": {"type": "integer"}}
    assert to_schema({"type": "object"}).name == "answer"
    assert to_schema(a, name="other").name == "other"
    # ChatParams is compared to notice changed settings; a schema inside must not break that.
    assert ChatParams(prompt="p", schema=a) == ChatParams(prompt="p", schema=b)
    assert ChatParams(prompt="p", schema=a) != ChatParams(prompt="p")
    assert len({ChatParams(prompt="p", schema=a), ChatParams(prompt="p", schema=b)}) == 1


def test_what_is_not_a_schema_is_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match="not plain JSON"):
        to_schema({"enum": {1, 2}})
    with pytest.raises(TypeError, match="Pydantic model class or a dataclass, not int"):
        to_schema(3)


def test_strict_only_when_every_object_is_closed_and_fully_required() -> None:
    assert is_strict_compatible(DETECT_SCHEMA)
    assert to_schema(DETECT_SCHEMA).strict
    open_object = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert not is_strict_compatible(open_object)
    optional = {**open_object, "additionalProperties": False, "required": []}
    assert not is_strict_compatible(optional)


# -- schemas from dataclasses ------------------------------------------------------------------------


class Mood(enum.Enum):
    CALM = "calm"
    BUSY = "busy"


@dataclass
class Spot:
    x: float
    y: float


@dataclass
class Report:
    scene: Literal["indoor", "outdoor"]
    people: int = field(metadata={"json_schema": {"minimum": 0, "maximum": 50}})
    box: tuple[float, float, float, float]
    spots: list[Spot]
    mood: Mood
    lit: bool
    size: tuple[int, str]
    tags: tuple[str, ...] = ()
    caption: str | None = None
    extra: dict[str, int] = field(default_factory=dict)


def test_dataclass_schema_from_fields_and_hints() -> None:
    schema = dataclass_schema(Report)
    props = schema["properties"]
    assert schema["title"] == "Report" and schema["additionalProperties"] is False
    assert schema["required"] == ["scene", "people", "box", "spots", "mood", "lit", "size"]
    assert props["scene"] == {"enum": ["indoor", "outdoor"]}
    assert props["people"] == {"type": "integer", "minimum": 0, "maximum": 50}
    assert props["box"] == {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
    assert props["spots"]["items"]["required"] == ["x", "y"]
    assert props["mood"] == {"enum": ["calm", "busy"]}
    assert props["lit"] == {"type": "boolean"}
    assert props["size"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["caption"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["extra"] == {"type": "object", "additionalProperties": {"type": "integer"}}


def test_dataclass_answer_becomes_an_instance() -> None:
    answer = """Here is the report you asked for:
```json
{"scene": "indoor", "people": 2, "box": [0.1, 0.2, 0.5, 1], "spots": [{"x": 0.5, "y": 0.25}],
 "mood": "busy", "lit": true, "size": [3, "m"], "tags": ["desk", "lamp"]}
```"""
    data, error = parse_structured(answer, Report)
    assert error is None
    assert data == Report(
        scene="indoor",
        people=2,
        box=(0.1, 0.2, 0.5, 1.0),
        spots=[Spot(0.5, 0.25)],
        mood=Mood.BUSY,
        lit=True,
        size=(3, "m"),
        tags=("desk", "lamp"),
    )
    assert isinstance(data.box[3], float)


def test_dataclass_answer_that_breaks_the_schema_says_where() -> None:
    answer = json.dumps(
        {
            "scene": "beach",
            "people": 80,
            "box": [0, 0, 1],
            "spots": [{"x": "left", "y": 0}],
            "mood": "calm",
            "lit": 1,
            "size": [1, "s"],
        }
    )
    data, error = parse_structured(answer, Report)
    assert data is None and error is not None
    assert error.startswith("the answer does not match the schema: ")
    assert '$.scene: "beach" is not one of "indoor", "outdoor"' in error
    assert "$.people: 80 is above the maximum 50" in error
    assert "$.box: expected at least 4 items, got 3" in error


@dataclass
class Loop:
    child: Loop | None


@dataclass
class Odd:
    when: complex


def test_dataclasses_that_json_schema_cannot_express_are_refused() -> None:
    with pytest.raises(TypeError, match="refers to itself"):
        dataclass_schema(Loop)
    with pytest.raises(TypeError, match=r"Odd\.when: cannot express the type"):
        dataclass_schema(Odd)
    with pytest.raises(TypeError, match="not a dataclass"):
        dataclass_schema(int)

    @dataclass
    class Local:
        spot: Spot

    @dataclass
    class Outer:
        inner: Local  # a string annotation: resolved in the module, where Local is unknown

    with pytest.raises(TypeError, match="define the dataclasses it uses at module level"):
        dataclass_schema(Outer)


# -- schemas from Pydantic models (optional dependency, installed for the tests) ---------------------


def test_pydantic_model_schema_and_instance() -> None:
    # Not importorskip: the dev extra installs pydantic, and a missing one must fail, not skip.
    import pydantic

    class Thing(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        label: str
        box: list[int] = pydantic.Field(min_length=4, max_length=4)

        @pydantic.field_validator("label")
        @classmethod
        def not_shouting(cls, value: str) -> str:
            if value.isupper():
                raise ValueError("labels are lower case")
            return value

    class Things(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        objects: list[Thing]

    schema = to_schema(Things)
    assert schema.name == "Things" and schema.target is Things
    # Pydantic puts nested models in $defs and refers to them: the validator follows $ref.
    assert "$defs" in schema.json_schema
    data, error = parse_structured('{"objects": [{"label": "cup", "box": [1, 2, 3, 4]}]}', Things)
    assert error is None and isinstance(data, Things)
    assert data.objects[0].label == "cup"
    data, error = parse_structured('{"objects": [{"label": "cup", "box": [1, 2, 3]}]}', Things)
    assert data is None and error == (
        "the answer does not match the schema: $.objects[0].box: expected at least 4 items, got 3"
    )
    # What JSON Schema cannot say, the model's own validators decide.
    data, error = parse_structured('{"objects": [{"label": "CUP", "box": [1, 2, 3, 4]}]}', Things)
    assert data is None and error is not None
    assert error.startswith("Things refused the answer:") and "labels are lower case" in error


def test_pydantic_is_not_imported_by_the_package() -> None:
    import subprocess
    import sys

    code = "import rtvlm_widget._schema, rtvlm_widget._shapes, sys; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the validator's reasons -------------------------------------------------------------------------

_DEFS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"item": {"$ref": "#/$defs/Item"}},
    "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
}
# A recursive $ref, in the older "definitions" spelling: the path goes as deep as the answer does.
_TREE_SCHEMA: dict[str, Any] = {
    "$ref": "#/definitions/Node",
    "definitions": {
        "Node": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "kids": {"items": {"$ref": "#/definitions/Node"}}},
        }
    },
}


@pytest.mark.parametrize(
    ("schema", "value", "reason"),
    [
        ({"type": "object"}, [], "$: expected object, got array"),
        ({"type": "integer"}, True, "$: expected integer, got boolean"),
        ({"type": "integer"}, 2.5, "$: expected integer, got number"),
        ({"type": ["string", "null"]}, 3, "$: expected string or null, got integer"),
        ({"type": "object", "required": ["a"]}, {}, '$: missing required property "a"'),
        (
            {"type": "object", "properties": {}, "additionalProperties": False},
            {"b c": 1},
            '$: unexpected property "b c"',
        ),
        (
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"b c": 1},
            '$["b c"]: expected string, got integer',
        ),
        ({"enum": [1, 2]}, True, "$: true is not one of 1, 2"),
        ({"const": "x"}, "y", '$: "y" is not "x"'),
        ({"minimum": 0}, -1, "$: -1 is below the minimum 0"),
        ({"exclusiveMaximum": 1}, 1, "$: 1 is not below the exclusive maximum 1"),
        ({"maxLength": 3}, "abcd", "$: a string of 4 characters is longer than 3"),
        ({"minLength": 1}, "", '$: "" is shorter than 1 characters'),
        ({"pattern": "^[a-z]+$"}, "A1", "$: \"A1\" does not match the pattern '^[a-z]+$'"),
        ({"type": "array", "maxItems": 1}, [1, 2], "$: expected at most 1 items, got 2"),
        ({"items": {"type": "string"}}, ["a", 2], "$[1]: expected string, got integer"),
        ({"prefixItems": [{"type": "integer"}], "items": False}, [1, 2], "$: expected at most 1 items"),
        (
            {"anyOf": [{"type": "null"}, {"type": "integer", "maximum": 3}]},
            9,
            "$: matches none of the 2 allowed forms (9 is above the maximum 3)",
        ),
        (
            {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            1,
            "$: matches more than one of the 2 forms where exactly one must match",
        ),
        ({"allOf": [{"minimum": 2}]}, 1, "$: 1 is below the minimum 2"),
        (_DEFS_SCHEMA, {"item": {"n": "1"}}, "$.item.n: expected integer, got string"),
        (_TREE_SCHEMA, {"name": "a", "kids": [{"name": 1}]}, "$.kids[0].name: expected string, got integer"),
        (
            {"type": "object", "required": ["a", "b"], "additionalProperties": False},
            {"c": 1, "d": 2},
            '$: missing required properties "a", "b"; $: unexpected properties "c", "d"',
        ),
        ({"type": "number"}, float("inf"), "$: inf is not a finite number"),
        ({"format": "date"}, "2024-13-45", '$: "2024-13-45" is not a valid date'),
        ({"format": "ipv4"}, "1.2.3", '$: "1.2.3" is not a valid ipv4'),
    ],
)
def test_validator_says_where_and_what(schema: dict[str, Any], value: object, reason: str) -> None:
    problem = validate(value, schema)
    assert problem is not None and problem.startswith(reason), problem


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "integer"}, 3.0),  # JSON Schema counts 3.0 as an integer
        ({"type": "number"}, 3),
        ({"enum": [1, True]}, True),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, {"a": "x", "b": 1}),
        (_DEFS_SCHEMA, {"item": {"n": 1}}),
        ({"minimum": 0, "format": "whatever", "x-unknown": 1}, 1),  # unknown keywords are not checked
        (DETECT_SCHEMA, {"objects": [{"label": "cup", "box": [0, 10, 1000, 20]}]}),
        (_TREE_SCHEMA, {"name": "a", "kids": [{"name": "b", "kids": []}]}),
        ({"format": "date", "pattern": "^2"}, "2024-02-29"),
    ],
)
def test_validator_accepts(schema: dict[str, Any], value: object) -> None:
    assert validate(value, schema) is None


def test_at_most_three_problems_are_listed() -> None:
    problem = validate([1, 2, 3, 4, 5], {"items": {"type": "string"}})
    assert problem is not None and problem.count(";") == 2
    # In the answer's order, not the schema's (whose keys Schema.text sorts).
    problem = validate({"c": "x", "b": "y", "a": "z"}, {"additionalProperties": {"type": "integer"}})
    assert problem == (
        "$.c: expected integer, got string; $.b: expected integer, got string; "
        "$.a: expected integer, got string"
    )


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "strin"}, "the schema is invalid at type: "),
        ({"properties": {"a": {"minimum": "0"}}}, "the schema is invalid at properties.a.minimum: "),
        ({"pattern": "("}, "the schema is invalid at pattern: "),
        ({"$ref": "#/$defs/Nope"}, "the schema is invalid: its $ref '/$defs/Nope' cannot be resolved"),
        ({"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}, "the schema is invalid: it nests"),
    ],
)
def test_an_invalid_schema_is_reported_not_raised(schema: dict[str, Any], reason: str) -> None:
    problem = validate(1, schema)
    assert problem is not None and problem.startswith(reason), problem
    # parse_structured says so too, without blaming the answer.
    assert parse_structured("1", schema) == (None, problem)


def test_compiled_validators_are_reused() -> None:
    from rtvlm_widget._schema import _compile

    schema = to_schema({"type": "object", "properties": {"n": {"minimum": 0}}}, name="reuse")
    before = _compile.cache_info().hits
    for n in range(5):
        assert validate({"n": n}, schema) is None
    assert _compile.cache_info().hits >= before + 4


# -- finding JSON in an answer ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2]\n", [1, 2]),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure! Here it is:\n\n```\n{"a": 1}\n```\nAnything else?', {"a": 1}),
        ('The objects [1] are: {"a": {"b": [1]}} as asked.', {"a": {"b": [1]}}),
        ('[{"a": 1}, {"a": 2}] and more', [{"a": 1}, {"a": 2}]),
        ('```json\n{"a": 1}', {"a": 1}),  # an unclosed fence (a stream that ended early)
    ],
)
def test_json_is_found_in_fences_and_prose(text: str, value: object) -> None:
    assert extract_json(text) == value


def test_answers_without_json_say_why() -> None:
    assert parse_structured("", {}) == (None, "the answer is empty")
    assert parse_structured("a cat on a mat", {}) == (None, "no JSON object or array in the answer")
    data, error = parse_structured(
        '{"objects": [{"label": "cup", "box": [1, ', DETECT_SCHEMA, finish_reason="length"
    )
    assert data is None and error is not None
    assert error.startswith("the JSON in the answer is not valid")
    assert error.endswith("cut off at max_tokens, so raise max_tokens")
    # Cut off after one complete inner object: that object is found, and fails the schema.
    cut = 'Here you go: {"objects": [{"label": "cup", "box": [1, 2, 3, 4]}, {"label": "pl'
    data, error = parse_structured(cut, DETECT_SCHEMA, finish_reason="length")
    assert data is None and error is not None
    assert error.startswith('the answer does not match the schema: $: missing required property "objects"')
    assert error.endswith("so raise max_tokens")
    # A model stuck on one token: an error, not a RecursionError.
    data, error = parse_structured("[" * 100_000, DETECT_SCHEMA)
    assert data is None and error is not None and "nested too deeply" in error


# -- the request body -----------------------------------------------------------------------------


def test_body_without_a_schema_has_no_response_format() -> None:
    body = build_chat_body(ChatParams(prompt="hi"), [b"x"])
    assert set(body) == {"messages", "max_tokens", "temperature", "stream", "stream_options"}
    assert body["messages"][0]["content"][-1] == {"type": "text", "text": "hi"}


def test_body_forms_of_a_schema() -> None:
    schema = to_schema(DETECT_SCHEMA)
    params = ChatParams(prompt="Find things.", schema=schema)
    forms = {f: build_chat_body(params, [], schema_format=f) for f in SCHEMA_FORMATS}
    assert forms["json_schema"]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "detections", "schema": DETECT_SCHEMA, "strict": True},
    }
    assert forms["json_schema"]["messages"][0]["content"][-1]["text"] == "Find things."
    assert forms["json_object_schema"]["response_format"] == {"type": "json_object", "schema": DETECT_SCHEMA}
    assert forms["json_object"]["response_format"] == {"type": "json_object"}
    assert "response_format" not in forms["prompt"]
    for name in ("json_object_schema", "json_object", "prompt"):
        text = forms[name]["messages"][0]["content"][-1]["text"]
        # The model is told the schema once the server no longer enforces it (json_object also
        # needs the word JSON in the messages on OpenAI).
        assert text.startswith("Find things.\n\nAnswer with only a JSON value")
        assert json.loads(text.split("\n", 3)[3]) == DETECT_SCHEMA
    with pytest.raises(ValueError, match="schema_format must be one of"):
        build_chat_body(params, [], schema_format="grammar")


# -- servers that refuse json_schema --------------------------------------------------------------------

_ANSWER = '{"objects": [{"label": "cup", "box": [100, 200, 300, 400]}]}'


def test_server_refusing_json_schema_gets_json_object_with_the_schema_from_then_on() -> None:
    schema = to_schema(DETECT_SCHEMA)
    params = ChatParams(prompt="Find things.", schema=schema)
    with FormatRefusingServer({"json_schema": OLD_LLAMA_CPP_REFUSAL}, _ANSWER) as server:
        client = VLMClient(server.base_url)
        assert client.schema_format(schema) == "json_schema" and client.schema_refusal(schema) is None

        async def twice(c: VLMClient) -> list[Completion]:
            return [await c.chat(params), await c.chat(params)]

        first, second = run(twice, client)
        # Refused once, asked again at once, and the step back remembered for the next frame.
        assert server.formats == ["json_schema", "json_object_schema", "json_object_schema"]
        assert client.schema_format(schema) == "json_object_schema"
        assert client.schema_refusal(schema) == OLD_LLAMA_CPP_REFUSAL
        assert first.schema_format == second.schema_format == "json_object_schema"
        assert parse_structured(first.text, DETECT_SCHEMA) == (json.loads(_ANSWER), None)
        assert "Answer with only a JSON value" in server.requests[1]["messages"][0]["content"][-1]["text"]
        # Remembered per schema: another one is offered as json_schema first.
        assert client.schema_format(to_schema({"type": "object"})) == "json_schema"


def test_server_refusing_every_response_format_gets_the_schema_in_the_prompt() -> None:
    refusals = {
        "json_schema": "Unrecognized response_format type json_schema",
        "json_object_schema": "Unrecognized request argument supplied: response_format.schema",
        "json_object": "response_format is not supported by this model",
    }
    schema = to_schema(DETECT_SCHEMA)
    params = ChatParams(prompt="Find things.", schema=schema, stream=False)
    with FormatRefusingServer(refusals, _ANSWER) as server:
        client = VLMClient(server.base_url)
        answer = run(lambda c: c.chat(params), client)
        assert server.formats == ["json_schema", "json_object_schema", "json_object", "none"]
        assert answer.schema_format == "prompt" and client.schema_format(schema) == "prompt"
        assert answer.text == _ANSWER


def test_requests_without_a_schema_are_untouched_by_a_refusing_server() -> None:
    with FormatRefusingServer({"none": "model is overloaded"}, "free text") as server:
        with pytest.raises(ServerHTTPError, match="model is overloaded"):
            run(lambda c: c.chat(ChatParams(prompt="hi")), VLMClient(server.base_url))
        # One request, no retry: the refusal was not about a response_format.
        assert server.formats == ["none"]
        assert "Answer with only" not in server.requests[0]["messages"][0]["content"][-1]["text"]


def test_refusal_that_is_not_about_the_format_is_not_retried() -> None:
    params = ChatParams(prompt="hi", schema=to_schema({"type": "object"}))
    with FormatRefusingServer({"json_schema": "context length exceeded"}) as server:
        with pytest.raises(ServerHTTPError, match="context length exceeded"):
            run(lambda c: c.chat(params), VLMClient(server.base_url))
        assert server.formats == ["json_schema"]


# -- the real check: llama-server's grammar holds a random-weight model to the schema ------------------

#: DETECT_SCHEMA with at least one object, so the grammar has to produce labels and boxes.
DETECT_AT_LEAST_ONE = copy.deepcopy(DETECT_SCHEMA)
DETECT_AT_LEAST_ONE["properties"]["objects"]["minItems"] = 1

SCENE_SCHEMA: dict[str, Any] = {
    "title": "scene",
    "type": "object",
    "properties": {
        "place": {"enum": ["indoor", "outdoor", "unknown"]},
        "people": {"type": "integer", "minimum": 0, "maximum": 12},
        "brightness": {"type": "integer", "minimum": -5, "maximum": 5},
        "moving": {"type": "boolean"},
    },
    "required": ["place", "people", "brightness", "moving"],
    "additionalProperties": False,
}

SCENE_PROMPT = (
    "Describe the scene as JSON: place (indoor, outdoor or unknown), people (how many, 0-12), "
    "brightness (-5 dark to 5 bright) and moving (true if anything moves)."
)


@dataclass
class SceneNote:
    kind: Literal["photo", "drawing"]
    count: int = field(metadata={"json_schema": {"minimum": 1, "maximum": 9}})
    corner: tuple[int, int] = field(metadata={"json_schema": {"items": {"type": "integer", "maximum": 99}}})


#: The test model spells most English byte by byte (DETECT_PROMPT alone takes ~500 of the 1024
#: tokens a slot of the test server has), so these requests ask briefly: the schema is under test,
#: not the words.
DETECT_BRIEFLY = "List the objects with boxes."


def _ask(server: LlamaServer, prompt: str, schema: Schema | None, n: int) -> list[Completion]:
    frame = jpeg()
    # The random model fills a bounded string to its maxLength and may take an array to its
    # maxItems: DETECT_SCHEMA's objects take ~65 tokens each (whitespace included), so 10 fit in
    # 900, which the slot still has after this short prompt and the image's 16 tokens.
    params = ChatParams(prompt=prompt, max_tokens=900, temperature=1.0, schema=schema)

    async def answers(client: VLMClient) -> list[Completion]:
        return [await client.chat(params, [frame]) for _ in range(n)]

    return run(answers, VLMClient(server.base_url))


@pytest.mark.parametrize(
    ("prompt", "spec"),
    [
        (DETECT_BRIEFLY, DETECT_SCHEMA),
        (DETECT_BRIEFLY, DETECT_AT_LEAST_ONE),
        (SCENE_PROMPT, SCENE_SCHEMA),
        ("Note the kind, count and a corner.", SceneNote),
    ],
    ids=["detect", "detect-at-least-one", "enum-and-bounds", "dataclass"],
)
def test_llama_server_grammar_makes_random_weights_answer_valid_json(
    llama_server: LlamaServer, prompt: str, spec: object
) -> None:
    schema = to_schema(spec)
    completions = _ask(llama_server, prompt, schema, 4)
    for completion in completions:
        # "stop": the grammar completed the JSON; "length" would mean max_tokens cut it.
        assert completion.finish_reason == "stop", (completion.finish_reason, completion.text)
        assert completion.schema_format == "json_schema"
        data, error = parse_structured(completion.text, schema, finish_reason=completion.finish_reason)
        assert error is None, (error, completion.text)
        if isinstance(spec, type):
            assert isinstance(data, spec)
    # Sampled at temperature 1, so the four answers are not one answer repeated.
    assert len({c.text for c in completions}) > 1


def test_llama_server_boxes_from_the_constrained_answer_become_shapes(llama_server: LlamaServer) -> None:
    schema = to_schema(DETECT_AT_LEAST_ONE)
    completions = _ask(llama_server, DETECT_BRIEFLY, schema, 3)
    for completion in completions:
        data, error = parse_structured(completion.text, schema)
        assert error is None and data["objects"], completion.text
        shapes = parse_shapes(data, image_size=(640, 480), schema=schema)
        assert shapes.convention == "norm1000"
        # Every object is a box, or dropped as degenerate (the random model likes zero widths).
        assert len(shapes) + shapes.dropped == len(data["objects"])
        for shape, obj in zip(shapes, [o for o in data["objects"] if _has_area(o["box"])], strict=True):
            assert isinstance(shape, Box)
            x1, y1, x2, y2 = obj["box"]
            assert shape.x1 == min(x1, x2) / 1000 and shape.y2 == max(y1, y2) / 1000
            assert shape.label == " ".join(obj["label"].split())


def _has_area(box: list[int]) -> bool:
    return box[0] != box[2] and box[1] != box[3]


def test_without_the_schema_the_same_model_does_not_answer_json(llama_server: LlamaServer) -> None:
    # The proof that the JSON above came from the server's grammar, not from the model.
    for completion in _ask(llama_server, DETECT_BRIEFLY, None, 3):
        data, error = parse_structured(completion.text, DETECT_SCHEMA)
        assert data is None and error is not None, completion.text
        assert completion.schema_format is None


def test_llama_server_json_object_with_a_schema_is_still_a_grammar(llama_server: LlamaServer) -> None:
    # The first step back (json_object with the schema beside it) keeps the grammar on llama.cpp
    # servers that predate json_schema.
    schema = to_schema(SCENE_SCHEMA)
    params = ChatParams(prompt=SCENE_PROMPT, max_tokens=200, temperature=1.0, stream=False, schema=schema)
    body = build_chat_body(params, [jpeg()], schema_format="json_object_schema")
    with httpx.Client(base_url=llama_server.base_url, timeout=60) as http:
        for _ in range(3):
            reply = http.post("/v1/chat/completions", json=body).json()
            text = reply["choices"][0]["message"]["content"]
            assert parse_structured(text, schema)[1] is None, text


def test_llama_server_refusing_a_schema_it_cannot_convert_steps_back_and_says_why(
    llama_server: LlamaServer,
) -> None:
    # An unbalanced pattern: llama.cpp's grammar converter refuses the schema (400), in every form
    # that carries it, so the request ends as a plain json_object and the reason is kept.
    schema = to_schema({"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a$"}}})
    params = ChatParams(prompt="hi", max_tokens=40, temperature=0, schema=schema)
    client = VLMClient(llama_server.base_url)

    async def ask(c: VLMClient) -> Completion:
        return await c.chat(params)

    answer = run(ask, client)
    assert answer.schema_format == "json_object" == client.schema_format(schema)
    assert answer.finish_reason == "stop" and isinstance(extract_json(answer.text), dict)
    refusal = client.schema_refusal(schema)
    assert refusal is not None and "Invalid pattern" in refusal
