// rtvlm-widget latency plot: recent answers as bars (time to first token inside total), with p50/p95,
// and the model's own time (server prefill + decode, where the server reports it) as a stripe at the
// foot of each bar, so ours, the network and the model can be told apart.
// Data comes in a synced trait of a few dozen numbers; drawing follows the JupyterLab theme.

/**
 * One answer: total ms, time to first token (ms, if streamed), the model's own time (ms, if reported).
 * @typedef {[number, number | null, (number | null)?]} Sample
 * @typedef {{ samples: Sample[], p50_ms: number, p95_ms: number }} PlotTraits LatencyPlot's, in rtvlm_widget/_plot.py
 */

const CSS = `
.rtvlm-plot { display: flex; align-items: center; gap: 8px; font: 12px var(--jp-ui-font-family, sans-serif);
  color: var(--jp-ui-font-color1); }
.rtvlm-plot canvas { border: 1px solid var(--jp-border-color2, #ccc); border-radius: 3px; }
`;

/** @param {string} name @param {string} fallback */
function themeColor(name, fallback) {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** @param {{ model: import("./widget.js").Model<PlotTraits>, el: HTMLElement }} ctx */
function render({ model, el }) {
  const style = document.createElement("style");
  style.textContent = CSS;
  const root = document.createElement("div");
  root.className = "rtvlm-plot";
  const canvas = document.createElement("canvas");
  canvas.width = 240;
  canvas.height = 36;
  const label = document.createElement("span");
  label.className = "rtvlm-plot-label";
  root.append(canvas, label);
  el.append(style, root);

  function draw() {
    const samples = model.get("samples") || [];
    const p50 = model.get("p50_ms");
    const p95 = model.get("p95_ms");
    const models = samples.map((s) => s[2]).filter((v) => typeof v === "number").sort((a, b) => a - b);
    const modelP50 = models.length ? models[Math.ceil(models.length / 2) - 1] : null;
    label.textContent = samples.length
      ? `end to end p50 ${Math.round(p50)} ms · p95 ${Math.round(p95)} ms` +
        (modelP50 != null ? ` · model p50 ${Math.round(modelP50)} ms` : "") +
        ` · n=${samples.length}`
      : "no answers yet";
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!samples.length) return;
    const top = Math.max(...samples.map(([total]) => total), p95, 1);
    const w = canvas.width / Math.max(samples.length, 30);
    const scale = (/** @type {number} */ ms) => (ms / top) * (canvas.height - 2);
    const total = themeColor("--jp-brand-color2", "#64b5f6");
    const first = themeColor("--jp-brand-color0", "#0d47a1");
    const own = themeColor("--jp-success-color1", "#388e3c");
    samples.forEach(([ms, ttft, modelMs], i) => {
      const x = i * w;
      ctx.fillStyle = total;
      ctx.fillRect(x, canvas.height - scale(ms), Math.max(1, w - 1), scale(ms));
      if (ttft != null) {
        ctx.fillStyle = first;
        ctx.fillRect(x, canvas.height - scale(ttft), Math.max(1, w - 1), scale(ttft));
      }
      if (modelMs != null) {
        // A narrow stripe, so the time-to-first-token bar stays visible beside it.
        ctx.fillStyle = own;
        ctx.fillRect(x, canvas.height - scale(modelMs), Math.max(1, (w - 1) / 2), scale(modelMs));
      }
    });
    ctx.strokeStyle = themeColor("--jp-warn-color0", "#ef6c00");
    ctx.beginPath();
    ctx.moveTo(0, canvas.height - scale(p95));
    ctx.lineTo(canvas.width, canvas.height - scale(p95));
    ctx.stroke();
  }

  draw();
  model.on("change:samples", draw);
  return () => model.off("change:samples", draw);
}

export default { render };
