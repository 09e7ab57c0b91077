"""Server-sent events: turn the lines of a ``text/event-stream`` body into (event, data) pairs."""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["iter_sse"]


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(event, data)`` for each event; ``event`` is ``"message"`` unless the server named it.

    Follows the SSE format: ``data:`` lines of one event are joined with newlines, a blank line ends
    the event, lines starting with ``:`` are comments (keep-alives). A last event without its blank
    line is still delivered.
    """
    event, data = "message", list[str]()
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value or "message"
    if data:
        yield event, "\n".join(data)
