"""Generated test media whose frames say which frame they are, and a local MJPEG-over-HTTP stream.

Each frame is one flat colour that encodes its index in two channels, 25 levels apart (blue: the
units, green: the tens), so the index survives MJPG and JPEG compression (errors of a few levels).
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

#: Frames up to 99 can be told apart.
MAX_FRAMES = 100


def frame_color(index: int) -> tuple[int, int, int]:
    """The BGR colour of frame ``index``."""
    if not 0 <= index < MAX_FRAMES:
        raise ValueError(f"frame index {index} out of 0..{MAX_FRAMES - 1}")
    return ((index % 10) * 25, (index // 10) * 25, 128)


def frame_image(index: int, width: int = 160, height: int = 120) -> Image:
    return np.full((height, width, 3), frame_color(index), np.uint8)


def index_of(picture: Image | bytes) -> int:
    """The frame index a picture (BGR array or JPEG bytes) shows, read at its centre."""
    if isinstance(picture, bytes):
        decoded = cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None, "not a decodable image"
        picture = np.asarray(decoded, np.uint8)
    height, width = picture.shape[:2]
    blue, green, red = (int(c) for c in picture[height // 2, width // 2])
    assert abs(red - 128) <= 8, f"not one of our frames: BGR {(blue, green, red)}"
    return round(blue / 25) + 10 * round(green / 25)


def write_video(path: Path, frames: int, fps: float, width: int = 160, height: int = 120) -> Path:
    """An MJPG .avi of ``frames`` frames (opencv-python writes it without external codecs)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for index in range(frames):
            writer.write(frame_image(index, width, height))
    finally:
        writer.release()
    return path


class MjpegServer:
    """A local MJPEG-over-HTTP stream (``multipart/x-mixed-replace``) numbering its frames.

    ``sent`` is the index of the newest frame written; ``paused`` stops the flow (the connection
    stays open, silent).
    """

    def __init__(self, fps: float = 20.0) -> None:
        self.fps = fps
        self.sent = -1
        self.paused = threading.Event()
        self._stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index = 0
                try:
                    while not server._stop.is_set():
                        if server.paused.is_set():
                            time.sleep(0.02)
                            continue
                        jpeg = bytes(cv2.imencode(".jpg", frame_image(index % MAX_FRAMES))[1])
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                        server.sent = index
                        index += 1
                        time.sleep(1 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/stream.mjpg"

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
