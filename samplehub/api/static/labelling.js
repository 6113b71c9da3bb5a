// SampleHub labelling page: a 2-D map of chips or segments linked to an image panel
// (unsupervised labelling paper, section 2.8 front end). No build step, no dependencies.
// Sample ids are 63-bit: JavaScript numbers cannot hold them, so ids stay strings.
"use strict";
// $, status and call come from api.js, loaded first.

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#86bcf6", "#d37295", "#8cd17d"];
const UNLABELLED = "#8a979f";
const SELECTED = "#ffd60a";
const MAX_TILES = 120;

const canvas = $("scatter");
const ctx = canvas.getContext("2d");

// Everything the page knows; the view transform maps data (x, y) to canvas pixels.
const state = {
  view: null,
  mode: "chip",
  tool: "brush",
  points: [],          // {key, id, segment?, x, y}
  selected: new Set(), // keys of selected points
  chipLabels: {},      // chip id -> label
  segmentLabels: {},   // "id:segment" -> label
  colours: new Map(),  // label -> colour, in order of first appearance
  transform: { scale: 1, tx: 0, ty: 0 },
  drag: null,
  progress: null,
};

const base = () => `/labelling/views/${encodeURIComponent(state.view)}`;
const segmentKey = (id, segment) => `${id}:${segment}`;

function labelOf(point) {
  return point.segment === undefined
    ? state.chipLabels[point.id]
    : state.segmentLabels[segmentKey(point.id, point.segment)];
}

function colourOf(label) {
  if (!label) return UNLABELLED;
  if (!state.colours.has(label)) {
    state.colours.set(label, PALETTE[state.colours.size % PALETTE.length]);
  }
  return state.colours.get(label);
}

// --- the map -----------------------------------------------------------------------------

function toScreen(x, y) {
  const t = state.transform;
  return [x * t.scale + t.tx, -y * t.scale + t.ty];
}

function toData(sx, sy) {
  const t = state.transform;
  return [(sx - t.tx) / t.scale, -(sy - t.ty) / t.scale];
}

function fit() {
  if (!state.points.length) return;
  const xs = state.points.map((p) => p.x);
  const ys = state.points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = 30;
  const scale = Math.min((canvas.width - 2 * pad) / Math.max(x1 - x0, 1e-9),
    (canvas.height - 2 * pad) / Math.max(y1 - y0, 1e-9));
  state.transform = {
    scale,
    tx: (canvas.width - (x1 - x0) * scale) / 2 - x0 * scale,
    ty: (canvas.height + (y1 - y0) * scale) / 2 + y0 * scale,
  };
}

function draw() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const radius = state.mode === "chip" ? 4.5 : 3;
  const selected = [];
  for (const p of state.points) {
    if (state.selected.has(p.key)) { selected.push(p); continue; }
    const [sx, sy] = toScreen(p.x, p.y);
    ctx.beginPath();
    ctx.arc(sx, sy, radius, 0, 2 * Math.PI);
    ctx.fillStyle = colourOf(labelOf(p));
    ctx.fill();
  }
  for (const p of selected) {  // on top, ringed in the selection yellow
    const [sx, sy] = toScreen(p.x, p.y);
    ctx.beginPath();
    ctx.arc(sx, sy, radius + 1, 0, 2 * Math.PI);
    ctx.fillStyle = colourOf(labelOf(p));
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = SELECTED;
    ctx.stroke();
  }
  const drag = state.drag;
  if (drag && drag.kind === "brush") {
    ctx.strokeStyle = SELECTED;
    ctx.lineWidth = 1;
    ctx.setLineDash([4, 3]);
    ctx.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0);
    ctx.setLineDash([]);
  } else if (drag && drag.kind === "lasso" && drag.path.length > 1) {
    ctx.strokeStyle = SELECTED;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(...drag.path[0]);
    for (const q of drag.path.slice(1)) ctx.lineTo(...q);
    ctx.closePath();
    ctx.stroke();
  }
  drawLegend();
}

function drawLegend() {
  const counts = new Map();
  for (const p of state.points) {
    const label = labelOf(p) || "";
    counts.set(label, (counts.get(label) || 0) + 1);
  }
  const legend = $("legend");
  legend.replaceChildren();
  for (const [label, n] of [...counts].sort()) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(label);
    item.append(swatch, `${label || "unlabelled"} (${n})`);
    legend.append(item);
  }
}

function inPolygon([x, y], polygon) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function finishSelection(drag) {
  const hits = state.points.filter((p) => {
    const q = toScreen(p.x, p.y);
    if (drag.kind === "brush") {
      return q[0] >= Math.min(drag.x0, drag.x1) && q[0] <= Math.max(drag.x0, drag.x1)
        && q[1] >= Math.min(drag.y0, drag.y1) && q[1] <= Math.max(drag.y0, drag.y1);
    }
    return drag.path.length > 2 && inPolygon(q, drag.path);
  });
  if (!drag.add) state.selected.clear();
  for (const p of hits) state.selected.add(p.key);
  selectionChanged();
}

function canvasXY(event) {
  const rect = canvas.getBoundingClientRect();
  return [(event.clientX - rect.left) * (canvas.width / rect.width),
    (event.clientY - rect.top) * (canvas.height / rect.height)];
}

canvas.addEventListener("contextmenu", (event) => event.preventDefault());
canvas.addEventListener("pointerdown", (event) => {
  const [x, y] = canvasXY(event);
  canvas.setPointerCapture(event.pointerId);
  const pan = state.tool === "pan" || event.button === 1 || event.button === 2;
  const add = event.shiftKey || event.ctrlKey || event.metaKey;
  if (pan) state.drag = { kind: "pan", x, y };
  else if (state.tool === "lasso") state.drag = { kind: "lasso", path: [[x, y]], add };
  else state.drag = { kind: "brush", x0: x, y0: y, x1: x, y1: y, add };
});
canvas.addEventListener("pointermove", (event) => {
  const drag = state.drag;
  if (!drag) return;
  const [x, y] = canvasXY(event);
  if (drag.kind === "pan") {
    state.transform.tx += x - drag.x;
    state.transform.ty += y - drag.y;
    drag.x = x;
    drag.y = y;
  } else if (drag.kind === "lasso") {
    drag.path.push([x, y]);
  } else {
    drag.x1 = x;
    drag.y1 = y;
  }
  draw();
});
canvas.addEventListener("pointerup", () => {
  const drag = state.drag;
  state.drag = null;
  if (drag && drag.kind !== "pan") finishSelection(drag);
  draw();
});
canvas.addEventListener("wheel", (event) => {
  event.preventDefault();
  const [x, y] = canvasXY(event);
  const factor = Math.exp(-event.deltaY * 0.0015);
  const t = state.transform;
  t.tx = x - (x - t.tx) * factor;
  t.ty = y - (y - t.ty) * factor;
  t.scale *= factor;
  draw();
}, { passive: false });

// --- the image panel ---------------------------------------------------------------------

function tile(src, caption, label) {
  const div = document.createElement("div");
  div.className = "tile";
  div.style.borderColor = colourOf(label);
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  img.loading = "lazy";
  const text = document.createElement("div");
  text.className = "caption";
  text.textContent = label ? `${caption} · ${label}` : caption;
  div.append(img, text);
  return div;
}

function renderImages() {
  const grid = $("images");
  grid.replaceChildren();
  const chosen = state.points.filter((p) => state.selected.has(p.key));
  if (!chosen.length) {
    grid.innerHTML = '<p class="empty">Brush points in the map to see their images.</p>';
    $("panel-title").textContent = "Selection";
    return;
  }
  if (state.mode === "chip") {
    $("panel-title").textContent = `${chosen.length} chips`;
    for (const p of chosen.slice(0, MAX_TILES)) {
      const div = tile(`${base()}/chips/${p.id}/composite.png`, p.id.slice(-6), labelOf(p));
      div.dataset.id = p.id;
      grid.append(div);
    }
  } else {
    const byChip = new Map();
    for (const p of chosen) {
      if (!byChip.has(p.id)) byChip.set(p.id, []);
      byChip.get(p.id).push(p.segment);
    }
    $("panel-title").textContent = `${chosen.length} segments in ${byChip.size} chips`;
    for (const [id, segments] of [...byChip].slice(0, MAX_TILES)) {
      const src = `${base()}/chips/${id}/segments.png?segments=${segments.join(",")}`;
      const div = tile(src, `${id.slice(-6)} · ${segments.length} seg.`, state.chipLabels[id]);
      div.dataset.id = id;
      grid.append(div);
    }
  }
  if (chosen.length > MAX_TILES) {
    const more = document.createElement("p");
    more.className = "empty";
    more.textContent = `showing ${MAX_TILES} of ${chosen.length}`;
    grid.append(more);
  }
}

function selectionChanged() {
  const n = state.selected.size;
  $("selection-count").textContent = n ? `${n} ${state.mode}s selected` : "";
  $("apply").disabled = n === 0;
  renderImages();
  draw();
}

// --- labels ------------------------------------------------------------------------------

function showLabels(data) {
  state.chipLabels = data.chips;
  state.segmentLabels = {};
  for (const s of data.segments) state.segmentLabels[segmentKey(s.id, s.segment)] = s.label;
  const p = data.progress;
  state.progress = p;
  $("progress").textContent = `chips ${p.chips_labelled} / ${p.chips_total} labelled · `
    + `segments ${p.segments_labelled} / ${p.segments_total} labelled`;
  $("progress").dataset.chipsLabelled = p.chips_labelled;
  $("progress").dataset.segmentsLabelled = p.segments_labelled;
  $("undo").disabled = !p.can_undo;
  $("redo").disabled = !p.can_redo;
  renderImages();
  draw();
}

async function applyLabel(event) {
  event.preventDefault();
  const label = $("label").value.trim();
  const chosen = state.points.filter((p) => state.selected.has(p.key));
  if (!label || !chosen.length) {
    status(label ? "brush some points first" : "type a label name first", true);
    return;
  }
  const body = state.mode === "chip"
    ? { mode: "chip", label, chips: chosen.map((p) => p.id) }
    : { mode: "segment", label, segments: chosen.map((p) => ({ id: p.id, segment: p.segment })) };
  try {
    showLabels(await call("POST", `${base()}/labels`, body));
    status(`labelled ${chosen.length} ${state.mode}s "${label}"`);
  } catch (error) {
    status(error.message, true);
  }
}

async function history(action) {
  try {
    showLabels(await call("POST", `${base()}/${action}`));
    status(action === "undo" ? "undone" : "redone");
  } catch (error) {
    status(error.message, true);
  }
}

async function publish() {
  $("publish").disabled = true;
  status("publishing…");
  try {
    const result = await call("POST", `${base()}/publish`, {});
    const out = $("publish-result");
    out.textContent = result.message;
    out.dataset.dataset = result.dataset;
    out.dataset.added = result.added;
    status(result.unchanged ? "nothing new to publish" : `published ${result.dataset}`);
  } catch (error) {
    status(error.message, true);
  } finally {
    $("publish").disabled = false;
  }
}

// --- loading -----------------------------------------------------------------------------

async function loadPoints() {
  const chipsSelected = state.mode === "segment"
    ? state.points.filter((p) => state.selected.has(p.key) && p.segment === undefined)
    : [];
  if (state.mode === "chip") {
    const chips = await call("GET", `${base()}/chips`);
    state.points = chips.map((c) => ({ key: c.id, id: c.id, x: c.x, y: c.y }));
  } else {
    // Segment mode shows the segments of the chips brushed in chip mode, or all of them.
    const query = chipsSelected.length
      ? `?chips=${chipsSelected.map((p) => p.id).join(",")}` : "";
    const segments = await call("GET", `${base()}/segments${query}`);
    state.points = segments.map((s) => ({
      key: segmentKey(s.id, s.segment), id: s.id, segment: s.segment, x: s.x, y: s.y,
    }));
  }
  state.selected.clear();
  fit();
  showLabels(await call("GET", `${base()}/labels`));
  selectionChanged();
  document.body.dataset.loaded = `${state.view}:${state.mode}:${state.points.length}`;
}

async function loadView(name) {
  state.view = name;
  state.colours.clear();
  await loadPoints();
}

async function start() {
  try {
    const views = await call("GET", "/labelling/views");
    if (!views.length) {
      status("no labelling view yet: the labelling pipeline writes one per dataset", true);
      return;
    }
    for (const v of views) {
      const option = document.createElement("option");
      option.value = v.dataset;
      option.textContent = `${v.dataset} (${v.chips} chips, ${v.segments} segments)`;
      $("view").append(option);
    }
    const wanted = new URLSearchParams(window.location.search).get("view");
    const first = views.some((v) => v.dataset === wanted) ? wanted : views[0].dataset;
    $("view").value = first;
    await loadView(first);
  } catch (error) {
    status(error.message, true);
  }
}

$("view").addEventListener("change", () => loadView($("view").value).catch(
  (error) => status(error.message, true)));
for (const input of document.querySelectorAll("input[name=mode]")) {
  input.addEventListener("change", () => {
    state.mode = input.value;
    loadPoints().catch((error) => status(error.message, true));
  });
}
for (const input of document.querySelectorAll("input[name=tool]")) {
  input.addEventListener("change", () => {
    state.tool = input.value;
    canvas.classList.toggle("panning", state.tool === "pan");
  });
}
$("label-form").addEventListener("submit", applyLabel);
$("undo").addEventListener("click", () => history("undo"));
$("redo").addEventListener("click", () => history("redo"));
$("publish").addEventListener("click", publish);
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement && event.target.type === "text") return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    history(event.shiftKey ? "redo" : "undo");
  } else if (event.key === "Escape") {
    state.selected.clear();
    selectionChanged();
  }
});

// For scripted sessions (the browser test): data -> canvas pixel coordinates.
window.labelling = { state, toScreen };
start();
