"""The API key box's messages stay out of debug logs, whatever shape the logger is handed."""

from __future__ import annotations

import logging

from rtvlm_widget._ui import _KeyMessageFilter


def _filtered(key_filter: _KeyMessageFilter, msg: str, *args: object) -> str:
    record = logging.LogRecord("Comm", logging.DEBUG, __file__, 1, msg, args, None)
    assert key_filter.filter(record)
    return record.getMessage()


def test_key_box_messages_lose_their_arguments_in_every_shape_the_kernel_logs() -> None:
    key_filter = _KeyMessageFilter()
    key_filter._comms.add("key-comm")  # watch() would also install the filter on the kernel's loggers
    secret = {"method": "update", "state": {"value": "sk-secret"}}
    message = {"header": {"msg_type": "comm_msg"}, "content": {"comm_id": "key-comm", "data": secret}}
    shapes: list[tuple[str, tuple[object, ...]]] = [
        ("%s: %s", ("comm_msg", message)),  # ipykernel's dispatch
        ("   Content: %s", (message["content"],)),  # ipykernel's content line
        ("handle_msg[%s](%s)", ("key-comm", message)),  # the comm package
        ("%s", ([message],)),  # anything else is searched as text
    ]
    for msg, args in shapes:
        text = _filtered(key_filter, msg, *args)
        assert "sk-secret" not in text and "not logged" in text, text

    other = {"header": {"msg_type": "comm_msg"}, "content": {"comm_id": "view-comm", "data": {}}}
    assert "view-comm" in _filtered(key_filter, "%s: %s", "comm_msg", other)
    assert _filtered(key_filter, "no arguments") == "no arguments"
