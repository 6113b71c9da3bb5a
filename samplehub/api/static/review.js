// SampleHub review page: build a dataset, accept/reject samples, export. No build step.
// Sample ids are 63-bit: JavaScript numbers cannot hold them, so the page uses `id`
// (the id as a string) everywhere and never `sample_id`.
"use strict";
// $, status and call come from api.js, loaded first.

const state = { build: null };

function list(text) {
  return text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

function spec() {
  const constraints = {};
  const datasets = list($("datasets").value);
  if (datasets.length) constraints.datasets = datasets;
  const bbox = list($("bbox").value).map(Number);
  if (bbox.length) constraints.bbox = bbox;
  return {
    name: $("name").value.trim(),
    labels: list($("labels").value),
    constraints,
    include_supplementary: $("include-supplementary").checked,
    supplementary_per_label: Number($("k").value) || 20,
  };
}

function card(member) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.sampleId = member.id;
  div.dataset.kind = member.kind;
  const img = document.createElement("img");
  img.src = member.thumbnail;
  img.alt = member.relpath;
  img.loading = "lazy";
  const title = document.createElement("div");
  title.innerHTML = '<span class="label"></span><span class="score"></span>';
  title.querySelector(".label").textContent = member.label;
  title.querySelector(".score").textContent = member.score.toFixed(2);
  const reason = document.createElement("div");
  reason.className = "reason";
  reason.textContent = member.reason;
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `${member.dataset} · ${member.split} · ${member.id}`;
  meta.title = member.relpath;
  const keep = document.createElement("label");
  keep.className = "keep";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "keep-box";
  box.checked = member.kind === "exact";
  box.addEventListener("change", () => decide(member, box, div));
  keep.append(box, document.createTextNode(member.kind === "exact" ? "keep" : "accept"));
  div.append(img, title, reason, meta, landcoverBar(member.landcover), keep);
  return div;
}

// One colour per land-cover class, by the class's position in the ESFormer's class list
// (the same for every card, so a colour means the same class across the page).
const PALETTE = ["#8c564b", "#7f7f7f", "#e377c2", "#bcbd22", "#17becf", "#d62728", "#2ca02c",
  "#9467bd", "#ff7f0e", "#1f77b4", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#98df8a",
  "#aec7e8", "#ffbb78", "#c5b0d5"];

// A small stacked bar of the sample's land-cover shares (HIR stage 2 statistics); classes
// under 2 % are left out of the bar but kept in the tooltip.
function landcoverBar(shares) {
  const bar = document.createElement("div");
  bar.className = "landcover";
  const names = Object.keys(shares || {});
  if (!names.length) {
    bar.hidden = true;
    return bar;
  }
  const sorted = [...names].sort((a, b) => shares[b] - shares[a]);
  bar.title = sorted.map((n) => `${n} ${(100 * shares[n]).toFixed(0)}%`).join(", ");
  names.forEach((name, i) => {
    if (shares[name] < 0.02) return;
    const part = document.createElement("span");
    part.dataset.class = name;
    part.style.width = `${(100 * shares[name]).toFixed(1)}%`;
    part.style.background = PALETTE[i % PALETTE.length];
    bar.append(part);
  });
  return bar;
}

async function decide(member, box, div) {
  const decision = box.checked ? "accept" : "reject";
  box.disabled = true;
  try {
    await call("POST", "/feedback", {
      spec_id: state.build.spec_id,
      who: $("who").value.trim() || "anonymous",
      decisions: [{ sample_id: member.id, decision, label: member.label, kind: member.kind }],
    });
    div.classList.remove("accept", "reject");
    div.classList.add(decision);
    div.dataset.recorded = decision;
    status(`${decision}ed sample ${member.id}`);
  } catch (error) {
    box.checked = !box.checked;
    status(error.message, true);
  } finally {
    box.disabled = false;
  }
}

function render(build) {
  state.build = build;
  $("result").hidden = false;
  $("summary").textContent = `${build.name} · build ${build.build_id} · ${build.message}`;
  $("export-result").textContent = "";
  for (const kind of ["exact", "supplementary"]) {
    const grid = $(kind);
    grid.replaceChildren();
    const members = build.members.filter((m) => m.kind === kind);
    $(`${kind}-count`).textContent = `(${members.length})`;
    if (!members.length) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "none";
      grid.append(empty);
    }
    for (const member of members) grid.append(card(member));
  }
}

$("query-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("build").disabled = true;
  status("building…");
  try {
    const build = await call("POST", "/build", spec());
    render(build);
    status(build.message);
  } catch (error) {
    status(error.message, true);
  } finally {
    $("build").disabled = false;
  }
});

$("export").addEventListener("click", async () => {
  $("export").disabled = true;
  status("exporting…");
  try {
    const report = await call("POST", "/export", {
      build_id: state.build.build_id,
      supplementary: "accepted",
      overwrite: true,
    });
    $("export-result").textContent =
      `exported ${report.samples} samples to ${report.path} (${report.dropped} left out)`;
    $("export-result").dataset.path = report.path;
    status("export done");
  } catch (error) {
    status(error.message, true);
  } finally {
    $("export").disabled = false;
  }
});
