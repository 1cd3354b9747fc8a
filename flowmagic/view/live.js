// The live view's front end (an anywidget module, shipped inside the Python package: nothing is
// fetched from the network). The kernel sends the DAG's SVG once per flow shape ("dag"), then
// only state: each node's state and caption ("nodes"), the critical path ("critical"), the
// timeline's bars as numbers ("timeline"), the status line ("status") and the details of the steps
// that changed since the last update ("details", merged here). A click on a node or a bar shows
// that step's detail from what is here: it needs no answer from the kernel, which reads no message
// from the page while the cell that started the run is executing.
// Colours come from the page's theme through the classes and THEME_CSS the kernel sends.

const SVG = "http://www.w3.org/2000/svg";
const ROW = 22, BAR = 16, HEADER = 30, AXIS = 24, PLOT = 560, CHAR = 7, MIN_LEFT = 120;
const GLYPH = { pending: "\u00b7", queued: "\u00b7", running: "\u25b8", succeeded: "\u2713", cached: "\u21ba",
  failed: "\u2717", skipped: "\u2013", cancelled: "\u25a0" };

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function seconds(value) {
  if (!value) return "0";
  return `${Number(value.toPrecision(3))}s`;
}

function tick(span) {
  const raw = span / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 5, 10]) if (raw <= factor * magnitude) return factor * magnitude;
  return 10 * magnitude;
}

function timelineSvg(data, bars, selected, hatch) {
  // the lanes' rows, from every bar (name -> [lane, row, start, end, state, cached, critical, queued, thin])
  const byLane = new Map((data.lanes || []).map((lane) => [lane, []]));
  for (const [name, [lane, row, t0, t1, state, cached, critical, queued, thin]] of bars) {
    const rows = byLane.get(lane);
    if (!rows) continue;
    while (rows.length <= row) rows.push([]);
    rows[row].push([name, t0, t1 === null ? data.elapsed : t1, state, cached, critical, queued, thin]);
  }
  for (const rows of byLane.values()) for (const row of rows) row.sort((a, b) => a[1] - b[1]);
  const lanes = Array.from(byLane.entries()).filter(([, rows]) => rows.length);
  const rows = lanes.reduce((n, lane) => n + lane[1].length, 0);
  const left = Math.max(MIN_LEFT, Math.max(0, ...lanes.map((l) => l[0].length)) * CHAR + 20);
  const span = Math.max(data.span || 0.001, 0.001);
  const scale = PLOT / span;
  const height = HEADER + Math.max(rows, 1) * ROW + AXIS + 20;
  const width = left + PLOT + 70;
  const out = [`<svg xmlns="${SVG}" class="fm-timeline" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" style="max-width:none">`,
    hatch || "",
    `<text class="fm-ink" x="8" y="19" font-size="13" font-weight="600" fill="#111827">${esc(data.header || "")}</text>`];
  let y = HEADER;
  for (const [lane, laneRows] of lanes) {
    const top = y;
    for (const row of laneRows) {
      row.forEach((bar, i) => {
        const [name, t0, t1, state, cached, critical, queued, thin] = bar;
        const x = left + t0 * scale;
        const w = Math.max((t1 - t0) * scale, 2);
        const by = y + (thin ? 3 : 0);
        const next = row[i + 1];
        const room = next ? left + next[1] * scale - (x + w) : Infinity;
        const needed = name.length * CHAR + 8;
        const chosen = name === selected ? ' data-selected="true"' : "";
        const crit = critical ? ' data-critical="true" stroke-width="2"' : ' stroke-width="1"';
        let title = `${name}: ${state}, ${(t1 - t0).toFixed(3)}s`;
        let wait = "";
        if (queued * scale >= 2) {
          title += `, ${queued.toFixed(3)}s of it queued at the server`;
          wait = `<rect class="fm-wait" x="${x.toFixed(1)}" y="${by.toFixed(1)}" width="${Math.min(queued * scale, w).toFixed(1)}" height="${BAR}" rx="3" fill="url(#fm-hatch)"/>`;
        }
        let text = "";
        if (needed < w || needed + 4 < room) {
          const tx = needed < w ? x + 4 : x + w + 4;
          text = `<text class="fm-bar-label" x="${tx.toFixed(1)}" y="${(by + BAR - 4).toFixed(1)}" font-size="12">${esc(name)}</text>`;
        }
        out.push(`<g class="fm-bar-g" data-step="${esc(name)}" style="cursor:pointer"><title>${esc(title)}</title>` +
          `<rect class="fm-bar" data-step="${esc(name)}" data-state="${state}"${cached ? ' data-cached="true"' : ""}${chosen} ` +
          `x="${x.toFixed(1)}" y="${by.toFixed(1)}" width="${w.toFixed(1)}" height="${BAR}" rx="3"${crit}/>${wait}${text}</g>`);
      });
      y += ROW;
    }
    out.push(`<text class="fm-soft" x="${left - 8}" y="${(top + BAR - 3).toFixed(1)}" text-anchor="end" font-size="12">${esc(lane)}</text>`);
    out.push(`<line class="fm-grid" x1="8" x2="${width - 8}" y1="${(y - 2).toFixed(1)}" y2="${(y - 2).toFixed(1)}"/>`);
  }
  const step = tick(span);
  out.push(`<line class="fm-edge" x1="${left}" x2="${left + PLOT}" y1="${y + 2}" y2="${y + 2}"/>`);
  for (let i = 0; i <= Math.floor(span / step + 1e-9); i++) {
    const x = left + i * step * scale;
    out.push(`<line class="fm-edge" x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${y + 2}" y2="${y + 6}"/>` +
      `<text class="fm-soft" x="${x.toFixed(1)}" y="${y + 19}" text-anchor="middle" font-size="12">${seconds(i * step)}</text>`);
  }
  if (data.critical_note) {
    out.push(`<text class="fm-ink" x="${width - 8}" y="${y + AXIS + 14}" text-anchor="end" font-size="12">outlined: critical path</text>`);
  }
  out.push("</svg>");
  return out.join("");
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "flowmagic-view flowmagic-live";
  root.innerHTML = `${model.get("theme")}<div class="fm-status"></div>` +
    '<div class="fm-scroll fm-dag-box" style="overflow-x:auto"></div>' +
    '<div class="fm-scroll fm-timeline-box" style="overflow-x:auto"></div>' +
    '<div class="fm-pick" style="font-size:13px;margin:4px 0"></div>' +
    '<div class="fm-detail-box" style="height:220px;overflow:auto"></div>';
  el.appendChild(root);
  const status = root.querySelector(".fm-status");
  const dagBox = root.querySelector(".fm-dag-box");
  const timelineBox = root.querySelector(".fm-timeline-box");
  const pick = root.querySelector(".fm-pick");
  const detailBox = root.querySelector(".fm-detail-box");
  dagBox.style.minHeight = `${model.get("dag_height")}px`;
  timelineBox.style.minHeight = `${model.get("timeline_height")}px`;
  let byName = new Map();
  const details = new Map();
  const bars = new Map();
  const nodes = new Map();  // every node's state: "nodes" brings those that changed
  const parsed = (key) => JSON.parse(model.get(key) || "{}");  // "nodes", "bars", "details": JSON text
  const mergeNodes = () => { for (const [name, node] of Object.entries(parsed("nodes"))) nodes.set(name, node); };
  let selected = model.get("selected");

  function drawLayout() {
    dagBox.innerHTML = model.get("dag");
    byName = new Map();
    for (const node of dagBox.querySelectorAll(".fm-node")) {
      node.style.cursor = "pointer";
      byName.set(node.dataset.step, node);
    }
    drawNodes();
    drawCritical();
  }

  function drawNodes() {
    for (const [name, node] of byName) {
      const [state, cached, caption, done, total, failed] = nodes.get(name) || ["pending", 0, null, 0, null, 0];
      if (node.dataset.state !== state) node.dataset.state = state;
      if (cached) node.dataset.cached = "true"; else delete node.dataset.cached;
      if (name === selected) node.dataset.selected = "true"; else delete node.dataset.selected;
      const text = node.querySelector(".fm-caption");
      if (caption !== null && text && text.textContent !== caption) text.textContent = caption;
      const title = node.querySelector("title");
      if (caption !== null && title) title.textContent = `${name}: ${caption}`;
      const track = node.querySelector(".fm-track");
      if (track && total) {
        const width = Number(track.getAttribute("width"));
        const [good, bad] = track.parentNode.querySelectorAll(".fm-progress-done, .fm-progress-failed");
        if (good) good.setAttribute("width", (width * Math.min(1, done / total)).toFixed(1));
        if (bad) {
          bad.setAttribute("x", (Number(track.getAttribute("x")) + width * Math.min(1, done / total)).toFixed(1));
          bad.setAttribute("width", (width * Math.min(1, failed / total)).toFixed(1));
        }
      }
    }
  }

  function drawCritical() {
    const critical = new Set((model.get("critical") || []).map(([a, b]) => `${a}\u2192${b}`));
    for (const path of dagBox.querySelectorAll("path[data-edge]")) {
      const on = critical.has(path.dataset.edge);
      path.setAttribute("class", on ? "fm-edge-critical" : "fm-edge");
      path.setAttribute("stroke-width", on ? "2.2" : "1.2");
      path.setAttribute("marker-end", on ? "url(#fm-arrow-critical)" : "url(#fm-arrow)");
    }
  }

  function drawTimeline() {
    const data = model.get("timeline") || {};
    timelineBox.innerHTML = data.lanes ? timelineSvg(data, bars, selected, model.get("hatch")) : "";
  }

  function drawStatus() {
    const [state, text] = model.get("status") || ["running", ""];
    status.dataset.status = state;
    status.setAttribute("style", "font-weight:600;font-size:14px;margin:4px 0");
    status.className = "fm-status fm-ink-text";
    status.textContent = `${GLYPH[state] || "\u25b8"} ${text}`;
  }

  function drawDetail() {
    pick.textContent = selected ? `step: ${selected} (click a node or a bar for another)` : "click a node or a bar for its detail";
    detailBox.innerHTML = details.get(selected) ||
      `<i>no detail of ${esc(selected)} here yet (a run of more than 200 steps shows its failed steps' details; ` +
      `every step is in NAME.last.steps and, once the run is over, in the picture below the cell)</i>`;
  }

  function mergeDetails() {
    const changed = parsed("details");
    for (const [name, html] of Object.entries(changed)) details.set(name, html);
    if (selected in changed) drawDetail();
  }

  function choose(event) {
    const target = event.target.closest("[data-step]");
    if (!target || !root.contains(target)) return;
    selected = target.dataset.step;
    drawNodes();
    drawTimeline();
    drawDetail();
  }

  root.addEventListener("click", choose);
  model.on("change:dag", drawLayout);
  model.on("change:nodes", () => { mergeNodes(); drawNodes(); });
  model.on("change:critical", drawCritical);
  model.on("change:timeline", drawTimeline);
  model.on("change:bars", () => {
    for (const [name, bar] of Object.entries(parsed("bars"))) bars.set(name, bar);
    drawTimeline();
  });
  model.on("change:status", drawStatus);
  model.on("change:details", mergeDetails);
  mergeDetails();
  mergeNodes();
  for (const [name, bar] of Object.entries(parsed("bars"))) bars.set(name, bar);
  drawLayout();
  drawTimeline();
  drawStatus();
  drawDetail();
  return () => root.removeEventListener("click", choose);
}

export default { render };
