// rtvlm-widget request log: a bounded table of requests with copy / clear (anywidget ES module).
//
// Rows come from the kernel ({kind: "rows", rows, reset}); on render the view asks for the rows
// so far ({kind: "replay"}), so a reloaded page shows the same log. Everything from the model is
// set as textContent: answers are untrusted text, never HTML.

/**
 * @typedef {{ time: string, model: string, latency_ms: number | null, status: string,
 *             tokens: string, text: string }} Row
 * @typedef {{ kind: "rows", rows: Row[], reset?: boolean }} RowsMessage
 * @typedef {{ max_rows: number, autoscroll: boolean }} LogTraits LogView's, in rtvlm_widget/_logview.py
 */

const CSS = `
.rtvlm-log { font: 12px var(--jp-code-font-family, monospace); color: var(--jp-ui-font-color1);
  border: 1px solid var(--jp-border-color2, #ccc); border-radius: 4px; }
.rtvlm-log-bar { display: flex; gap: 6px; align-items: center; padding: 4px;
  border-bottom: 1px solid var(--jp-border-color2, #ccc); font-family: var(--jp-ui-font-family); }
.rtvlm-log-bar button { font: inherit; font-size: 12px; padding: 1px 8px; cursor: pointer;
  color: var(--jp-ui-font-color1); background: var(--jp-layout-color2); border: 1px solid var(--jp-border-color1);
  border-radius: 3px; }
.rtvlm-log-bar label { margin-left: auto; display: flex; gap: 4px; align-items: center; }
.rtvlm-log-bar .rtvlm-copied { color: var(--jp-success-color1, green); }
.rtvlm-log-body { max-height: 180px; overflow-y: auto; }
.rtvlm-log table { width: 100%; border-collapse: collapse; }
.rtvlm-log th { position: sticky; top: 0; text-align: left; background: var(--jp-layout-color2); }
.rtvlm-log th, .rtvlm-log td { padding: 1px 6px; white-space: nowrap; }
.rtvlm-log td.rtvlm-log-text { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 0; width: 100%; }
.rtvlm-log tr.rtvlm-log-error td { color: var(--jp-error-color1, #c62828); }
`;

const COLUMNS = /** @type {const} */ (["time", "model", "latency", "status", "tokens", "answer"]);

/** @param {Row} row @returns {string[]} */
function cells(row) {
  const latency = row.latency_ms == null ? "" : `${Math.round(row.latency_ms)} ms`;
  const firstLine = String(row.text ?? "").split("\n", 1)[0];
  return [row.time, row.model, latency, row.status, row.tokens, firstLine].map((x) => String(x ?? ""));
}

/**
 * Copy text to the clipboard; falls back to a hidden textarea where the async API is refused.
 * @param {string} text
 */
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

/**
 * @param {{ model: import("./widget.js").Model<LogTraits>, el: HTMLElement }} ctx
 * @returns {() => void}
 */
function render({ model, el }) {
  const style = document.createElement("style");
  style.textContent = CSS;
  const root = document.createElement("div");
  root.className = "rtvlm-log";
  const bar = document.createElement("div");
  bar.className = "rtvlm-log-bar";
  /** @param {string} label @param {string} cls */
  const button = (label, cls) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.className = cls;
    bar.append(b);
    return b;
  };
  const copyAnswer = button("Copy answer", "rtvlm-copy-answer");
  const copyLog = button("Copy log", "rtvlm-copy-log");
  const clear = button("Clear", "rtvlm-clear");
  const flash = document.createElement("span");
  const autoscrollLabel = document.createElement("label");
  const autoscroll = document.createElement("input");
  autoscroll.type = "checkbox";
  autoscroll.className = "rtvlm-autoscroll";
  autoscrollLabel.append(autoscroll, "autoscroll");
  bar.append(flash, autoscrollLabel);

  const body = document.createElement("div");
  body.className = "rtvlm-log-body";
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const name of COLUMNS) {
    const th = document.createElement("th");
    th.textContent = name;
    head.append(th);
  }
  const tbody = table.createTBody();
  body.append(table);
  root.append(bar, body);
  el.append(style, root);

  /** @type {Row[]} */
  let rows = [];

  /** @param {Row} row */
  function appendRow(row) {
    const tr = tbody.insertRow();
    tr.className = row.status === "ok" ? "rtvlm-log-row" : "rtvlm-log-row rtvlm-log-error";
    tr.title = String(row.text ?? "");
    for (const value of cells(row)) {
      const td = tr.insertCell();
      td.textContent = value;
    }
    tr.lastElementChild?.classList.add("rtvlm-log-text");
  }

  /** @param {RowsMessage} msg */
  function onRows(msg) {
    if (msg.reset) {
      rows = [];
      tbody.replaceChildren();
    }
    const limit = Math.max(1, Number(model.get("max_rows")) || 200);
    for (const row of msg.rows) {
      rows.push(row);
      appendRow(row);
    }
    while (rows.length > limit) {
      rows.shift();
      tbody.rows[0]?.remove();
    }
    if (model.get("autoscroll")) body.scrollTop = body.scrollHeight;
  }

  /** @param {any} msg */
  function onMessage(msg) {
    if (msg && msg.kind === "rows" && Array.isArray(msg.rows)) onRows(msg);
  }

  /** @param {string} what */
  function copied(what) {
    flash.textContent = `copied ${what}`;
    flash.className = "rtvlm-copied";
    setTimeout(() => (flash.textContent = ""), 1500);
  }

  copyAnswer.addEventListener("click", async () => {
    const last = [...rows].reverse().find((r) => r.status === "ok");
    await copyText(last ? String(last.text) : "");
    copied("answer");
  });
  copyLog.addEventListener("click", async () => {
    const lines = [COLUMNS.join("\t"), ...rows.map((r) => cells({ ...r, text: String(r.text).replace(/\s+/g, " ") }).join("\t"))];
    await copyText(lines.join("\n"));
    copied("log");
  });
  /** Send unless the kernel is gone (ipywidgets throws on a dead comm). @param {object} content */
  const send = (content) => {
    try {
      model.send(content);
    } catch {
      // nothing to tell a kernel that is gone
    }
  };
  clear.addEventListener("click", () => send({ kind: "clear" }));
  const syncAutoscroll = () => (autoscroll.checked = Boolean(model.get("autoscroll")));
  syncAutoscroll();
  autoscroll.addEventListener("change", () => {
    model.set("autoscroll", autoscroll.checked);
    model.save_changes();
  });

  model.on("msg:custom", onMessage);
  model.on("change:autoscroll", syncAutoscroll);
  send({ kind: "replay" });

  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:autoscroll", syncAutoscroll);
  };
}

// anywidget takes the default export; `cells` is for the unit tests (tests/browser/test_js_units.py).
export default { render };
export { cells };
