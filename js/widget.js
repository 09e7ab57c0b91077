// rtvlm-widget front end: the camera preview and frame capture, as an anywidget ES module.
//
// The kernel asks for a frame ({kind: "capture", seq}); this view grabs the current video frame,
// encodes it as JPEG and answers with the bytes as a binary comm buffer ({kind: "frame", seq, …}),
// or with {kind: "error", seq, message}. Frames never go through synced traits or base64.
// Protocol twin: rtvlm_widget/_protocol.py.

/** @typedef {{ kind: "capture", seq: number, max_edge?: number }} CaptureRequest */
/** @typedef {{ kind: "answer", seq: number, text: string }} ShowAnswer */
/** @typedef {CaptureRequest | ShowAnswer} KernelMessage */

/**
 * The parts of anywidget's model this view uses.
 * @typedef {{
 *   get(name: string): any,
 *   set(name: string, value: any): void,
 *   save_changes(): void,
 *   send(content: object, callbacks?: object, buffers?: ArrayBuffer[]): void,
 *   on(event: string, handler: (...args: any[]) => void): void,
 *   off(event: string, handler: (...args: any[]) => void): void,
 * }} Model
 */

const CSS = `
.rtvlm-view { position: relative; width: 100%; max-width: 720px; background: #000;
  border-radius: 4px; overflow: hidden; aspect-ratio: 4 / 3; }
.rtvlm-view video { width: 100%; height: 100%; object-fit: contain; display: block; }
.rtvlm-badge { position: absolute; top: 6px; left: 6px; padding: 1px 8px; border-radius: 10px;
  font: 12px var(--jp-ui-font-family, sans-serif); color: #fff; background: rgba(0,0,0,0.6); }
.rtvlm-badge[data-state="live"] { background: rgba(20,140,60,0.85); }
.rtvlm-badge[data-state="denied"], .rtvlm-badge[data-state="no-camera"],
.rtvlm-badge[data-state="error"], .rtvlm-badge[data-state="ended"] { background: rgba(180,40,40,0.9); }
.rtvlm-overlay { position: absolute; left: 0; right: 0; bottom: 0; padding: 6px 10px;
  font: 14px var(--jp-ui-font-family, sans-serif); color: #fff; background: rgba(0,0,0,0.55);
  white-space: pre-wrap; max-height: 40%; overflow: hidden; }
.rtvlm-overlay:empty { display: none; }
`;

/**
 * Name the camera state for a getUserMedia failure.
 * @param {unknown} error
 * @returns {[string, string]} state and message
 */
function describeCameraError(error) {
  const name = error instanceof DOMException ? error.name : "";
  const text = error instanceof Error ? error.message : String(error);
  if (name === "NotAllowedError" || name === "SecurityError") {
    return ["denied", "camera permission denied; allow the camera for this page (needs https or localhost)"];
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return ["no-camera", "no camera found"];
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    return ["error", "this page cannot use the camera (it needs https or localhost)"];
  }
  return ["error", `${name || "Error"}: ${text}`];
}

/**
 * Grab the current video frame, downscaled so its longest edge is at most maxEdge (0: as is).
 * @param {HTMLVideoElement} video
 * @param {HTMLCanvasElement} canvas
 * @param {number} maxEdge
 * @param {number} quality JPEG quality 0..1
 * @returns {Promise<{ bytes: ArrayBuffer, width: number, height: number, capturedAt: number }>}
 */
async function grabJpeg(video, canvas, maxEdge, quality) {
  const vw = video.videoWidth;
  const vh = video.videoHeight;
  if (!vw || !vh) throw new Error("the camera has not delivered a frame yet");
  const scale = maxEdge > 0 ? Math.min(1, maxEdge / Math.max(vw, vh)) : 1;
  const width = Math.max(1, Math.round(vw * scale));
  const height = Math.max(1, Math.round(vh * scale));
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  const capturedAt = performance.timeOrigin + performance.now();
  ctx.drawImage(video, 0, 0, width, height);
  const blob = await new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("JPEG encoding failed"))), "image/jpeg", quality),
  );
  return { bytes: await /** @type {Blob} */ (blob).arrayBuffer(), width, height, capturedAt };
}

/**
 * @param {{ model: Model, el: HTMLElement }} ctx
 * @returns {() => void} cleanup
 */
function render({ model, el }) {
  const style = document.createElement("style");
  style.textContent = CSS;
  const root = document.createElement("div");
  root.className = "rtvlm-view";
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.autoplay = true;
  const badge = document.createElement("span");
  badge.className = "rtvlm-badge";
  const overlay = document.createElement("div");
  overlay.className = "rtvlm-overlay";
  root.append(video, badge, overlay);
  el.append(style, root);
  const canvas = document.createElement("canvas");

  /** @type {MediaStream | null} */
  let stream = null;
  let disposed = false;

  /** @param {string} state @param {string} message */
  function setState(state, message = "") {
    badge.dataset.state = state;
    badge.textContent = state === "live" && video.videoWidth ? `live ${video.videoWidth}×${video.videoHeight}` : state;
    model.set("camera_state", state);
    model.set("camera_message", message);
    if (state === "live") {
      model.set("video_width", video.videoWidth);
      model.set("video_height", video.videoHeight);
    }
    model.save_changes();
  }

  async function startCamera() {
    setState("starting");
    try {
      const media = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } },
        audio: false,
      });
      if (disposed) {
        media.getTracks().forEach((t) => t.stop());
        return;
      }
      stream = media;
      for (const track of media.getVideoTracks()) {
        track.addEventListener("ended", () => setState("ended", "the camera stopped delivering video"));
      }
      video.srcObject = media;
      await video.play();
      // "playing" can come before the first decoded frame; a canvas drawn then is blank.
      await new Promise((resolve) => video.requestVideoFrameCallback(() => resolve(undefined)));
      setState("live");
    } catch (error) {
      if (!disposed) setState(...describeCameraError(error));
      throw error;
    }
  }

  const ready = startCamera();
  ready.catch(() => {}); // the state badge already says what went wrong

  /** @param {CaptureRequest} msg */
  async function answerCapture(msg) {
    try {
      await ready;
      const frame = await grabJpeg(video, canvas, msg.max_edge ?? 0, model.get("jpeg_quality"));
      model.send(
        {
          kind: "frame",
          seq: msg.seq,
          width: frame.width,
          height: frame.height,
          mime: "image/jpeg",
          captured_at_ms: frame.capturedAt,
        },
        undefined,
        [frame.bytes],
      );
    } catch (error) {
      const message = model.get("camera_message") || (error instanceof Error ? error.message : String(error));
      model.send({ kind: "error", seq: msg.seq, message });
    }
  }

  /** @param {KernelMessage} msg */
  function onMessage(msg) {
    if (disposed || !msg || typeof msg !== "object") return;
    if (msg.kind === "capture") {
      void answerCapture(msg);
    } else if (msg.kind === "answer") {
      overlay.textContent = String(msg.text ?? ""); // model output is text, never HTML
    }
  }
  model.on("msg:custom", onMessage);

  return () => {
    disposed = true;
    model.off("msg:custom", onMessage);
    stream?.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
  };
}

export default { render };
