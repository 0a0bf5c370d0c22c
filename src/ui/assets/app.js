// haul's web UI: one page, rendered from the project snapshot the server pushes over
// Server-Sent Events (see src/ui/live.rs). No framework and no build step: the file is
// embedded in the haul binary as written.
"use strict";

const state = {
  project: null, // the project whose events are open
  source: null, // its EventSource
  snap: null, // the latest snapshot
  perms: null, // what the user may do (SelfSubjectAccessReviews)
  problem: null,
  dialog: null, // the open promote dialog: { stage, loading }
  byName: { freight: new Map(), stage: new Map(), promotion: new Map(), warehouse: new Map() },
};
// Where the time of a page load goes (read by the benchmark in tests/ui.rs).
window.__haulTimes = { script: performance.now() };
// Tests check that the page updated without reloading: a reload resets this.
window.__haulPageId = window.__haulPageId || Math.random().toString(36).slice(2);

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) =>
  String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const enc = encodeURIComponent;
const name = (o) => o?.metadata?.name ?? "";
const short = (s, n = 7) => (s && s.length > n ? s.slice(0, n) : s ?? "");

function ago(t) {
  if (!t) return "";
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
function duration(a, b) {
  if (!a) return "";
  const s = Math.round(((b ? new Date(b) : new Date()) - new Date(a)) / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

// ---- routing -------------------------------------------------------------------------------

function route() {
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const q = new URLSearchParams(location.search);
  if (parts[0] !== "p" || !parts[1]) return { view: "projects" };
  const project = parts[1];
  if (parts[2] === "freight") return { view: "freight", project, q };
  if (parts[2] === "stages" && parts[3]) return { view: "stage", project, stage: parts[3] };
  if (parts[2] === "promotions" && parts[3]) return { view: "promotion", project, promotion: parts[3] };
  return { view: "graph", project };
}

function go(url, replace) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  show();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-nav]");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
window.addEventListener("popstate", show);

function show() {
  const r = route();
  if (r.project && r.project !== state.project) connect(r.project);
  if (!r.project && state.source) {
    state.source.close();
    state.source = null;
    state.project = null;
  }
  render();
}

// ---- live data -----------------------------------------------------------------------------

function connect(project) {
  if (state.source) state.source.close();
  state.project = project;
  state.snap = null;
  state.perms = null;
  state.problem = null;
  const src = new EventSource(`/api/projects/${enc(project)}/events`);
  state.source = src;
  src.addEventListener("snapshot", (e) => {
    window.__haulTimes.snapshot ??= performance.now();
    state.snap = JSON.parse(e.data);
    state.problem = null;
    index();
    later(true);
  });
  src.addEventListener("permissions", (e) => {
    state.perms = JSON.parse(e.data);
    later(true);
  });
  src.addEventListener("problem", (e) => {
    state.problem = e.data;
    later(false);
  });
  src.onopen = () => {
    window.__haulTimes.open ??= performance.now();
    $("#live").classList.add("on");
  };
  src.onerror = () => $("#live").classList.remove("on");
}

// Events arriving together (a warm project sends its snapshot and permissions at once) are
// rendered once, in the next frame: one layout per frame however many events came.
let frame = null;
let dialogToo = false;
function later(dialog) {
  dialogToo ||= dialog;
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = null;
    render();
    if (dialogToo) refreshDialog();
    dialogToo = false;
    if (state.snap && !window.__haulFirstPaint) {
      window.__haulTimes.rendered ??= performance.now();
      // The next task runs once the browser has painted this frame.
      setTimeout(() => (window.__haulFirstPaint ??= performance.now()));
    }
  });
}

function index() {
  for (const kind of ["freight", "stage", "promotion", "warehouse"]) state.byName[kind].clear();
  const s = state.snap;
  s.freight.forEach((f) => state.byName.freight.set(name(f), f));
  s.stages.forEach((x) => state.byName.stage.set(name(x), x));
  s.promotions.forEach((x) => state.byName.promotion.set(name(x), x));
  s.warehouses.forEach((x) => state.byName.warehouse.set(name(x), x));
}

// ---- shared pieces -------------------------------------------------------------------------

function crumbs(r) {
  const bits = [];
  if (r.project) {
    const p = `/p/${enc(r.project)}`;
    bits.push(`<a href="${p}" data-nav>${esc(r.project)}</a>`);
    bits.push(`<a href="${p}" data-nav class="${r.view === "graph" ? "here" : ""}">Pipeline</a>`);
    bits.push(`<a href="${p}/freight" data-nav class="${r.view === "freight" ? "here" : ""}">Freight</a>`);
    if (r.stage) bits.push(`<span>Stage ${esc(r.stage)}</span>`);
    if (r.promotion) bits.push(`<span>Promotion ${esc(r.promotion)}</span>`);
  } else bits.push(`<span>Projects</span>`);
  $("#crumbs").innerHTML = bits.join(" ");
}

function banner() {
  const b = $("#banner");
  b.hidden = !state.problem;
  b.textContent = state.problem ?? "";
}

function toast(text, bad) {
  const t = $("#toast");
  t.textContent = text;
  t.className = bad ? "bad" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), bad ? 12000 : 5000);
}

function condition(o, type) {
  return (o?.status?.conditions ?? []).find((c) => c.type === type);
}

function healthOf(stage) {
  return stage?.status?.health?.status ?? "Unknown";
}

function badge(text, cls) {
  return `<span class="badge ${esc(cls ?? String(text).toLowerCase())}">${esc(text)}</span>`;
}

/// The Freight a Stage has now (one per origin).
function currentFreight(stage) {
  const items = stage?.status?.freightHistory?.[0]?.items ?? {};
  return Object.values(items).map((ref) => state.byName.freight.get(ref.name) ?? { metadata: { name: ref.name }, ...ref });
}

function lastVerification(stage) {
  return stage?.status?.freightHistory?.[0]?.verificationHistory?.[0];
}

function artifactsShort(f) {
  const bits = [];
  for (const i of f.images ?? []) bits.push(`<span class="art" title="${esc(i.repoURL)}@${esc(i.digest)}">${esc(i.repoURL?.split("/").pop())}:${esc(i.tag)}</span>`);
  for (const c of f.commits ?? []) bits.push(`<span class="art" title="${esc(c.repoURL)} ${esc(c.message)}">${esc(c.tag || short(c.id))}</span>`);
  for (const c of f.charts ?? []) bits.push(`<span class="art" title="${esc(c.repoURL)}">${esc(c.name)}:${esc(c.version)}</span>`);
  return bits.join(" ");
}

function freightLabel(f) {
  const alias = f.alias ?? f.metadata?.labels?.["kargo.akuity.io/alias"];
  return `<span class="freight-alias">${esc(alias ?? short(name(f)))}</span>`;
}

function allowed(which) {
  const a = which;
  if (!state.perms) return { ok: false, why: "checking your permissions…" };
  if (!a) return { ok: false, why: "not checked" };
  return { ok: a.allowed, why: a.reason ?? "" };
}
function promoteAllowed(stage) {
  return allowed(state.perms?.promote?.[stage]);
}

function button(label, cls, attrs, perm) {
  const dis = perm && !perm.ok;
  const title = dis ? ` title="${esc(perm.why)}" data-reason="${esc(perm.why)}"` : "";
  return `<button class="${cls}" ${attrs}${dis ? " disabled" : ""}${title}>${esc(label)}</button>`;
}

async function post(action, body) {
  const res = await fetch(`/api/projects/${enc(state.project)}/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-haul-ui": "1" },
    body: JSON.stringify(body),
  });
  let data = {};
  try {
    data = await res.json();
  } catch (_) {
    /* not JSON */
  }
  if (!res.ok) throw new Error(data.error ?? `${res.status} ${res.statusText}`);
  return data;
}

async function act(action, body) {
  try {
    const done = await post(action, body);
    toast(done.message);
    return done;
  } catch (e) {
    toast(e.message, true);
    return null;
  }
}

// ---- views ---------------------------------------------------------------------------------

function render() {
  const r = route();
  crumbs(r);
  banner();
  const app = $("#app");
  if (r.view === "projects") return renderProjects(app);
  if (!state.snap) {
    app.innerHTML = `<p class="muted">Loading project ${esc(r.project)}…</p>`;
    return;
  }
  if (r.view === "graph") renderGraph(app);
  else if (r.view === "freight") renderFreight(app, r.q);
  else if (r.view === "stage") renderStage(app, r.stage);
  else if (r.view === "promotion") renderPromotion(app, r.promotion);
}

async function renderProjects(app) {
  app.innerHTML = `<p class="muted">Loading projects…</p>`;
  const res = await fetch("/api/projects");
  const data = await res.json().catch(() => ({ error: `${res.status}` }));
  if (route().view !== "projects") return;
  if (!res.ok) {
    app.innerHTML = `<p class="error">${esc(data.error)}</p>`;
    return;
  }
  if (!data.length) {
    app.innerHTML = `<p class="muted">No projects you can see.</p>`;
    return;
  }
  app.innerHTML = `<h1>Projects</h1><div class="projects">${data
    .map(
      (p) => `<a class="card project" href="/p/${enc(p.name)}" data-nav data-project="${esc(p.name)}">
        <h2>${esc(p.name)}</h2>
        ${p.error ? `<p class="error">${esc(p.error)}</p>` : `
        <p>${p.stages} Stage${p.stages === 1 ? "" : "s"}</p>
        <p>${badge(`${p.healthy} healthy`, p.healthy ? "healthy" : "unknown")}
           ${p.unhealthy ? badge(`${p.unhealthy} unhealthy`, "unhealthy") : ""}
           ${p.progressing ? badge(`${p.progressing} progressing`, "progressing") : ""}
           ${p.promoting ? badge(`${p.promoting} promoting`, "running") : ""}</p>`}
      </a>`,
    )
    .join("")}</div>`;
}

function stageCard(stage) {
  const n = name(stage);
  const p = `/p/${enc(state.project)}`;
  const cur = currentFreight(stage);
  const v = lastVerification(stage);
  const running = stage.status?.currentPromotion;
  const runningPhase = running ? state.byName.promotion.get(running.name)?.status?.phase ?? "Pending" : null;
  const holds = Object.keys(stage.status?.effectiveAutoPromotionHolds ?? {});
  const auto = stage.status?.autoPromotionEnabled;
  const ready = condition(stage, "Ready");
  return `<div class="card stage" id="node-stage/${esc(n)}" data-stage="${esc(n)}">
    <div class="row"><a href="${p}/stages/${enc(n)}" data-nav class="title">${esc(n)}</a>${badge(healthOf(stage))}</div>
    <div class="freight">${cur.length ? cur.map((f) => `<span data-current="${esc(name(f))}">${freightLabel(f)} ${artifactsShort(f)}</span>`).join("<br>") : `<span class="muted">no Freight yet</span>`}</div>
    <div class="row small">
      ${v ? `<span class="verification">verification ${badge(v.phase ?? "Pending")}</span>` : ""}
      ${ready && ready.status !== "True" ? `<span class="muted" title="${esc(ready.message)}">${esc(ready.reason)}</span>` : ""}
    </div>
    ${running ? `<div class="small running">promoting <a href="${p}/promotions/${enc(running.name)}" data-nav>${esc(short(running.name.split(".").pop()))}</a> ${badge(runningPhase, "running")}</div>` : ""}
    <div class="row small">
      ${auto ? badge("auto-promotion", "auto") : ""}
      ${holds.length ? `<span class="badge hold" title="held: ${esc(holds.join(", "))}">hold</span>` : ""}
      <span class="grow"></span>
      ${button("Promote", "promote", `data-action="open-promote" data-stage="${esc(n)}"`, promoteAllowed(n))}
    </div>
  </div>`;
}

function warehouseCard(w) {
  const n = name(w);
  const ready = condition(w, "Ready");
  const subs = (w.spec?.subscriptions ?? []).map((s) => s.image?.repoURL ?? s.git?.repoURL ?? s.chart?.repoURL ?? s.chart?.name).filter(Boolean);
  const last = state.byName.freight.get(w.status?.lastFreightID ?? "");
  return `<div class="card warehouse" id="node-warehouse/${esc(n)}" data-warehouse="${esc(n)}">
    <div class="row"><span class="title">${esc(n)}</span>${ready ? badge(ready.status === "True" ? "Ready" : ready.reason || "NotReady", ready.status === "True" ? "healthy" : "unhealthy") : ""}</div>
    <div class="small muted">${subs.map(esc).join("<br>")}</div>
    <div class="small">latest: ${last ? `<span data-latest="${esc(name(last))}">${freightLabel(last)}</span>` : `<span class="muted">none</span>`}</div>
    <div class="row small"><span class="grow"></span>${button("Refresh", "refresh", `data-action="refresh" data-warehouse="${esc(n)}"`, allowed(state.perms?.refreshWarehouses))}</div>
  </div>`;
}

function renderGraph(app) {
  const s = state.snap;
  const columns = [];
  for (const node of s.graph.nodes) (columns[node.column] ??= []).push(node);
  const html = columns
    .map(
      (col, i) => `<div class="col">${(col ?? [])
        .map((node) => (node.kind === "warehouse" ? warehouseCard(state.byName.warehouse.get(node.name)) : stageCard(state.byName.stage.get(node.name))))
        .join("")}${i === 0 && !col?.length ? "" : ""}</div>`,
    )
    .join("");
  app.innerHTML = `<div class="graph" id="graph"><svg class="edges" id="edges"></svg>${html}</div>`;
  drawEdges();
}

function drawEdges() {
  const g = $("#graph");
  const svg = $("#edges");
  if (!g || !svg) return;
  // Reads first (one layout), writes last: positions relative to the graph from offset*, which
  // the cards' common offsetParent (the graph) gives without a layout per element.
  const pos = new Map();
  for (const el of g.querySelectorAll(".card[id^='node-']")) {
    pos.set(el.id.slice(5), { x: el.offsetLeft, y: el.offsetTop, w: el.offsetWidth, h: el.offsetHeight });
  }
  const width = g.scrollWidth;
  const height = g.scrollHeight;
  const paths = [];
  for (const e of state.snap.graph.edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2;
    const x2 = b.x;
    const y2 = b.y + b.h / 2;
    const dx = Math.max(20, (x2 - x1) / 2);
    paths.push(`<path d="M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}"/>`);
  }
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.innerHTML = paths.join("");
}
window.addEventListener("resize", () => route().view === "graph" && drawEdges());

function renderFreight(app, q) {
  const s = state.snap;
  const wanted = { warehouse: q.get("warehouse") ?? "", stage: q.get("stage") ?? "", text: (q.get("q") ?? "").toLowerCase() };
  const lanes = new Map();
  for (const w of s.warehouses) lanes.set(name(w), []);
  for (const f of s.freight) {
    const origin = f.origin?.name ?? "";
    if (wanted.warehouse && origin !== wanted.warehouse) continue;
    const st = f.status ?? {};
    if (wanted.stage && !(wanted.stage in (st.currentlyIn ?? {})) && !(wanted.stage in (st.verifiedIn ?? {}))) continue;
    if (wanted.text && !JSON.stringify([f.alias, name(f), f.images, f.commits, f.charts]).toLowerCase().includes(wanted.text)) continue;
    if (!lanes.has(origin)) lanes.set(origin, []);
    lanes.get(origin).push(f);
  }
  const opts = (list, cur) => [`<option value="">all</option>`, ...list.map((v) => `<option ${v === cur ? "selected" : ""}>${esc(v)}</option>`)].join("");
  const filters = `<form class="filters" id="filters">
    <label>Warehouse <select name="warehouse">${opts(s.warehouses.map(name), wanted.warehouse)}</select></label>
    <label>In or verified in Stage <select name="stage">${opts(s.stages.map(name), wanted.stage)}</select></label>
    <label>Search <input name="q" value="${esc(q.get("q") ?? "")}" placeholder="alias, tag, commit"></label>
  </form>`;
  const shown = [...lanes.entries()].filter(([w, list]) => !wanted.warehouse || w === wanted.warehouse || list.length);
  app.innerHTML = `<h1>Freight</h1>${filters}<div class="lanes">${shown
    .map(([w, list]) => `<section class="lane" data-lane="${esc(w)}"><h2>${esc(w)}</h2>${list.length ? list.map(freightRow).join("") : `<p class="muted">no Freight</p>`}</section>`)
    .join("")}</div>`;
  const form = $("#filters");
  const apply = () => {
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
    const url = `${location.pathname}${p.toString() ? `?${p}` : ""}`;
    history.replaceState(null, "", url);
    const focus = document.activeElement?.name;
    render();
    if (focus) $(`#filters [name="${focus}"]`)?.focus();
  };
  form.addEventListener("change", apply);
  form.addEventListener("submit", (e) => (e.preventDefault(), apply()));
}

function chips(label, obj, cls) {
  const keys = Object.keys(obj ?? {});
  if (!keys.length) return "";
  return `<div class="small">${esc(label)} ${keys.map((k) => `<span class="chip ${cls}">${esc(k)}</span>`).join(" ")}</div>`;
}

function freightRow(f) {
  const st = f.status ?? {};
  const images = (f.images ?? []).map((i) => `<li>image <code>${esc(i.repoURL)}:${esc(i.tag)}</code> <code class="muted">${esc(short(i.digest, 19))}</code></li>`);
  const commits = (f.commits ?? []).map((c) => `<li>commit <code>${esc(c.repoURL)}</code> <code>${esc(c.tag || short(c.id, 10))}</code> ${esc(c.message ?? "")}</li>`);
  const charts = (f.charts ?? []).map((c) => `<li>chart <code>${esc(c.repoURL)}/${esc(c.name)}:${esc(c.version)}</code></li>`);
  return `<article class="card freight-item" data-freight="${esc(name(f))}">
    <div class="row">${freightLabel(f)} <code class="muted">${esc(short(name(f), 12))}</code><span class="grow"></span><span class="muted small" title="${esc(f.metadata?.creationTimestamp)}">${esc(ago(f.metadata?.creationTimestamp))}</span></div>
    <div class="small muted">from ${esc(f.origin?.kind)}/${esc(f.origin?.name)}</div>
    <ul class="artifacts">${[...images, ...commits, ...charts].join("")}</ul>
    ${chips("in", st.currentlyIn, "in")}${chips("verified in", st.verifiedIn, "verified")}${chips("approved for", st.approvedFor, "approved")}
  </article>`;
}

const CONDITION_WORDS = {
  Ready: ["is ready", "is not ready"],
  Healthy: ["is healthy", "is not healthy"],
  Verified: ["verified its current Freight", "has not verified its current Freight"],
  Promoting: ["is promoting", "is not promoting"],
  Reconciling: ["is reconciling", "is not reconciling"],
};
function conditionWords(c) {
  const [yes, no] = CONDITION_WORDS[c.type] ?? [`${c.type}`, `not ${c.type}`];
  const ok = c.status === "True";
  return `<li class="${ok ? "ok" : "not"}"><strong>${esc(ok ? yes : c.status === "False" ? no : `${c.type}: unknown`)}</strong>${c.reason ? ` — ${esc(c.reason)}` : ""}${c.message ? `: ${esc(c.message)}` : ""} <span class="muted small">${esc(ago(c.lastTransitionTime))}</span></li>`;
}

function renderStage(app, n) {
  const stage = state.byName.stage.get(n);
  if (!stage) {
    app.innerHTML = `<p class="error">Stage ${esc(n)} does not exist in project ${esc(state.project)}.</p>`;
    return;
  }
  const p = `/p/${enc(state.project)}`;
  const v = lastVerification(stage);
  const patch = allowed(state.perms?.patchStages);
  const history = stage.status?.freightHistory ?? [];
  const promos = state.snap.promotions.filter((x) => x.spec?.stage === n);
  app.innerHTML = `<h1>Stage ${esc(n)} ${badge(healthOf(stage))}</h1>
    <div class="actions">
      ${button("Promote", "promote", `data-action="open-promote" data-stage="${esc(n)}"`, promoteAllowed(n))}
      ${button("Reverify", "reverify", `data-action="reverify" data-stage="${esc(n)}"`, v && v.phase !== "Running" ? patch : { ok: false, why: v ? "a verification is running" : "nothing verified yet" })}
      ${button("Abort verification", "abort-verification", `data-action="abort-verification" data-stage="${esc(n)}"`, v?.phase === "Running" ? patch : { ok: false, why: "no verification is running" })}
    </div>
    <h2>Conditions</h2><ul class="conditions">${(stage.status?.conditions ?? []).map(conditionWords).join("") || `<li class="muted">none reported yet</li>`}</ul>
    ${(stage.status?.health?.issues ?? []).length ? `<h2>Health issues</h2><ul>${stage.status.health.issues.map((i) => `<li>${esc(i)}</li>`).join("")}</ul>` : ""}
    <h2>Freight history</h2>
    <table class="history"><thead><tr><th></th><th>Freight</th><th>Verifications</th></tr></thead><tbody>
    ${history
      .map(
        (c, i) => `<tr><td>${i === 0 ? "current" : ""}</td><td>${Object.values(c.items ?? {})
          .map((ref) => {
            const f = state.byName.freight.get(ref.name) ?? { metadata: { name: ref.name } };
            return `${freightLabel(f)} ${artifactsShort(f)}`;
          })
          .join("<br>")}</td><td>${(c.verificationHistory ?? [])
          .map((vi) => `<div>${badge(vi.phase ?? "Pending")} ${esc(vi.message ?? "")} <span class="muted small">${esc(ago(vi.startTime))}${vi.analysisRun ? ` · AnalysisRun ${esc(vi.analysisRun.name)}` : ""}${vi.actor ? ` · by ${esc(vi.actor)}` : ""}</span></div>`)
          .join("")}</td></tr>`,
      )
      .join("") || `<tr><td colspan="3" class="muted">no Freight yet</td></tr>`}
    </tbody></table>
    <h2>Promotions</h2>
    <ul class="promotions">${promos.map((x) => `<li><a href="${p}/promotions/${enc(name(x))}" data-nav>${esc(name(x))}</a> ${badge(x.status?.phase ?? "Pending")} <span class="muted small">${esc(ago(x.metadata?.creationTimestamp))}</span></li>`).join("") || `<li class="muted">none</li>`}</ul>`;
}

function renderPromotion(app, n) {
  const x = state.byName.promotion.get(n);
  if (!x) {
    app.innerHTML = `<p class="muted">Promotion ${esc(n)} is not among the recent Promotions of project ${esc(state.project)} (it may not exist yet, or was cleaned up).</p>`;
    return;
  }
  const st = x.status ?? {};
  const phase = st.phase ?? "Pending";
  const terminal = ["Succeeded", "Failed", "Errored", "Aborted"].includes(phase);
  const f = state.byName.freight.get(x.spec?.freight) ?? { metadata: { name: x.spec?.freight } };
  const steps = st.steps?.length ? st.steps : x.spec?.steps ?? [];
  const meta = st.stepExecutionMetadata ?? [];
  const out = st.state ?? {};
  const actor = x.metadata?.annotations?.["kargo.akuity.io/create-actor"];
  app.innerHTML = `<h1>Promotion <code>${esc(n)}</code> <span class="phase">${badge(phase)}</span></h1>
    <p>Freight ${freightLabel(f)} ${artifactsShort(f)} to Stage <a href="/p/${enc(state.project)}/stages/${enc(x.spec?.stage)}" data-nav>${esc(x.spec?.stage)}</a>${actor ? ` · by ${esc(actor)}` : ""} · ${esc(ago(x.metadata?.creationTimestamp))}</p>
    ${st.message ? `<p class="message">${esc(st.message)}</p>` : ""}
    <div class="actions">${button("Abort", "abort", `data-action="abort" data-promotion="${esc(n)}"`, terminal ? { ok: false, why: `it has finished (${phase})` } : allowed(state.perms?.abortPromotions))}</div>
    <table class="steps"><thead><tr><th>#</th><th>Step</th><th>Status</th><th>Message</th><th>Time</th><th>Output</th></tr></thead><tbody>
    ${steps
      .map((s, i) => {
        const m = meta[i] ?? {};
        const alias = m.alias ?? s.as ?? `step-${i + 1}`;
        const o = out[alias];
        return `<tr data-step="${esc(alias)}"><td>${i + 1}</td><td>${esc(alias)}<div class="muted small">${esc(s.uses ?? s.task?.name ?? "")}</div></td>
          <td>${badge(m.status ?? (i === st.currentStep && !terminal ? "Running" : "Pending"))}</td>
          <td>${esc(m.message ?? "")}</td>
          <td class="small">${m.startedAt ? `${esc(duration(m.startedAt, m.finishedAt))}` : ""}</td>
          <td>${o ? `<details><summary>output</summary><pre>${esc(JSON.stringify(o, null, 2))}</pre></details>` : ""}</td></tr>`;
      })
      .join("")}
    </tbody></table>`;
}

// ---- actions -------------------------------------------------------------------------------

document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b || b.disabled) return;
  const d = b.dataset;
  switch (d.action) {
    case "open-promote":
      return openPromote(d.stage);
    case "refresh":
      return act("refresh", { warehouse: d.warehouse });
    case "reverify":
      return act("reverify", { stage: d.stage });
    case "abort-verification":
      return act("abort-verification", { stage: d.stage });
    case "abort":
      return act("abort", { promotion: d.promotion });
    case "close":
      return $("#dialog").close();
    case "preview":
      return preview(d.stage, d.freight);
    case "approve": {
      const done = await act("approve", { stage: d.stage, freight: d.freight });
      if (done) openPromote(d.stage);
      return;
    }
    case "promote": {
      b.disabled = true;
      const done = await act("promote", { stage: d.stage, freight: d.freight });
      b.disabled = false;
      if (done) $("#dialog").close();
      return;
    }
  }
});

// The open promote dialog follows the project: Freight becomes available (verified upstream,
// approved) while it is open. Not while a preview is shown or a fetch is under way.
function refreshDialog() {
  const d = state.dialog;
  if (!d || !$("#dialog").open || d.loading || $("#preview")?.childElementCount) return;
  openPromote(d.stage, true);
}

async function openPromote(stage, quiet) {
  const dlg = $("#dialog");
  const body = $("#dialog-body");
  state.dialog = { stage, loading: true };
  if (!quiet) body.innerHTML = `<h2>Promote to ${esc(stage)}</h2><p class="muted">Loading Freight…</p>`;
  if (!dlg.open) dlg.showModal();
  const res = await fetch(`/api/projects/${enc(state.project)}/stages/${enc(stage)}/candidates`).catch(() => null);
  const list = res ? await res.json().catch(() => ({ error: `${res.status}` })) : { error: "haul ui does not answer" };
  state.dialog = { stage, loading: false };
  if (!dlg.open) return;
  if (!res?.ok) {
    body.innerHTML = `<h2>Promote to ${esc(stage)}</h2><p class="error">${esc(list.error)}</p>${button("Close", "", `data-action="close"`)}`;
    return;
  }
  const perm = promoteAllowed(stage);
  const approvePerm = perm.ok ? allowed(state.perms?.approve) : perm;
  const current = new Set(currentFreight(state.byName.stage.get(stage)).map(name));
  body.innerHTML = `<h2>Promote to ${esc(stage)}</h2>
    ${perm.ok ? "" : `<p class="error">${esc(perm.why)}</p>`}
    <ul class="candidates">${
      list
        .map((c) => {
          const f = state.byName.freight.get(c.name) ?? { metadata: { name: c.name }, alias: c.alias };
          return `<li class="candidate ${c.available ? "available" : "unavailable"}" data-freight="${esc(c.name)}">
            <div class="row">${freightLabel(f)} ${artifactsShort(f)} ${current.has(c.name) ? badge("current", "auto") : ""}<span class="grow"></span>
            ${button("Preview", "preview", `data-action="preview" data-stage="${esc(stage)}" data-freight="${esc(c.name)}"`)}
            ${c.available ? button("Promote", "confirm-promote", `data-action="promote" data-stage="${esc(stage)}" data-freight="${esc(c.name)}"`, perm) : button("Approve", "approve", `data-action="approve" data-stage="${esc(stage)}" data-freight="${esc(c.name)}"`, approvePerm)}</div>
            ${c.available ? "" : `<div class="small reason">${esc(c.reason)}</div>`}
          </li>`;
        })
        .join("") || `<li class="muted">Stage ${esc(stage)} requests no Freight that exists yet.</li>`
    }</ul>
    <div id="preview"></div>
    <div class="row"><span class="grow"></span>${button("Close", "", `data-action="close"`)}</div>`;
}

async function preview(stage, freight) {
  const box = $("#preview");
  box.innerHTML = `<p class="muted">Running the promotion steps of ${esc(stage)} for ${esc(freight)} without pushing…</p>`;
  try {
    const r = await post("preview", { stage, freight });
    box.innerHTML = `<h3>What promoting ${esc(freight)} to ${esc(stage)} would commit</h3>
      ${r.changes.map((c) => `<div class="small">${esc(c.path)}, committed by step ${esc(c.step)}:</div><pre class="diff" data-path="${esc(c.path)}">${esc(c.diff)}</pre>`).join("") || `<p class="muted">no changes to commit</p>`}
      <p class="small muted outcome">${esc(r.outcome)}</p>`;
  } catch (e) {
    box.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

show();
