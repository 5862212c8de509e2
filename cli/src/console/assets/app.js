// The console's page: plain ES module, no build step. Every element is made with
// `h`/`svg` (never innerHTML), so a run's names and values are text, never markup.

// The one vendored library: @dagrejs/dagre 3.1.4 (MIT), the graph's layout (assets/vendor).
import { graphlib, layout as dagreLayout } from "/assets/dagre.js";

const main = document.getElementById("main");
const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN = document.querySelector('meta[name="updraft-token"]').content;
let poll = null;
// What the console reads (local or a stack) and which actions it has: fetched once.
let about = { mode: "local", location: "", canAct: false };
// A failed read is retried, waiting longer each time (2 s up to 30 s), until one succeeds.
let backoff = 2000;

function retryLater() {
  stopPolling();
  poll = setTimeout(() => render(), backoff);
  backoff = Math.min(backoff * 2, 30000);
}

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  return fill(el, attrs, children);
}

function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// The project and domain the page shows (`?project=&domain=`; none: the console's own)
// go with every read and every link, so a run of another project opens in its own.
function scoped(path) {
  const current = new URLSearchParams(location.search);
  const url = new URL(path, location.origin);
  for (const k of ["project", "domain"]) {
    if (current.get(k) && !url.searchParams.has(k)) url.searchParams.set(k, current.get(k));
  }
  return url.pathname + url.search;
}

function scopeOf(params) {
  return params.get("project") && params.get("domain") ? `${params.get("project")}/${params.get("domain")}` : "";
}

async function api(path) {
  const answer = await fetch(scoped(path), { headers: { Accept: "application/json" } });
  const body = await answer.json().catch(() => ({ code: "Unreadable", message: `HTTP ${answer.status}` }));
  if (!answer.ok) throw Object.assign(new Error(body.message || `HTTP ${answer.status}`), { status: answer.status, body });
  return body;
}

// A proto3 JSON duration ("1.5s") in seconds; null when it is absent (still running).
const seconds = (d) => (d ? parseFloat(String(d).replace(/s$/, "")) : null);
const time = (t) => (t ? new Date(t) : null);
const short = (phase) => (phase || "UNDEFINED").replace(/^WORKFLOW_/, "").replace(/^NODE_PHASE_/, "");
const nodeName = (n) => (n.id && n.id.nodeId) || "";

function duration(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "";
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function phaseText(phase, gone) {
  if (gone) return h("span", { class: "gone", "data-phase": "RUNNER_GONE" }, "RUNNING, runner gone");
  return h("span", { class: `phase phase-${phase || "UNDEFINED"}`, "data-phase": short(phase) }, short(phase));
}

function stopPolling() {
  if (poll) clearTimeout(poll);
  poll = null;
}

// ---- runs list ------------------------------------------------------------

async function runsPage(params) {
  stopPolling();
  document.title = "Runs · Updraft console";
  const phase = params.get("phase") || "";
  const workflow = params.get("workflow") || "";
  const plan = params.get("plan") || "";
  // A day (YYYY-MM-DD, UTC): the runs created on it or after.
  const since = /^\d{4}-\d{2}-\d{2}$/.test(params.get("since") || "") ? params.get("since") : "";
  const token = params.get("token") || "";
  const query = new URLSearchParams({ limit: "50" });
  if (phase) query.set("phase", phase);
  if (workflow) query.set("workflow", workflow);
  if (plan) query.set("plan", plan);
  if (since) query.set("since", String(Date.parse(`${since}T00:00:00Z`) / 1000));
  if (token) query.set("token", token);
  let page;
  try {
    page = await api(`/api/runs?${query}`);
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Runs"), h("div", { class: "error", role: "alert", "data-status": e.status },
      `${e.message} (retrying in ${Math.round(backoff / 1000)} s)`));
    retryLater();
    return;
  }
  backoff = 2000;
  const go = (changes) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) v ? next.set(k, v) : next.delete(k);
    navigate(`/?${next}`);
  };
  const phases = ["", "WORKFLOW_RUNNING", "WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED", "WORKFLOW_ABORTED", "WORKFLOW_TIMED_OUT"];
  const select = h("select", { id: "phase-filter", onchange: (e) => go({ phase: e.target.value, token: "" }) },
    phases.map((p) => h("option", { value: p, selected: p === phase }, p ? short(p) : "any phase")));
  const wf = h("input", { id: "workflow-filter", value: workflow, placeholder: "workflow", size: 16 });
  const lp = h("input", { id: "plan-filter", value: plan, placeholder: "launch plan", size: 14 });
  const day = h("input", { id: "since-filter", type: "date", value: since });
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    go({ workflow: wf.value.trim(), plan: lp.value.trim(), since: day.value, token: "" });
  } },
    h("label", { for: "phase-filter" }, "Phase"), select,
    h("label", { for: "workflow-filter" }, "Workflow"), wf,
    h("label", { for: "plan-filter" }, "Plan"), lp,
    h("label", { for: "since-filter" }, "Since"), day, h("button", { type: "submit" }, "Filter"));
  const gone = new Set(page.runnerGone || []);
  const rows = page.executions.map((e) => {
    const name = e.id.name;
    const started = time(e.startedAt || e.createdAt);
    const wfId = e.workflowId || {};
    return h("tr", { "data-run": name, "data-phase": gone.has(name) ? "RUNNER_GONE" : short(e.phase) },
      h("td", {}, h("a", { href: scoped(`/runs/${encodeURIComponent(name)}`) }, name)),
      h("td", {}, wfId.name ? h("a", { href: scoped(`/workflows/${encodeURIComponent(wfId.name)}`) }, `${wfId.name}${wfId.version ? "@" + wfId.version : ""}`) : ""),
      h("td", {}, e.launchPlanId ? e.launchPlanId.name : ""),
      h("td", {}, (e.mode || "MANUAL").toLowerCase()),
      h("td", {}, phaseText(e.phase, gone.has(name))),
      h("td", {}, started ? started.toLocaleString() : ""),
      h("td", {}, duration(seconds(e.duration))),
      h("td", {}, e.cost && e.cost.totalUsd ? `$${Number(e.cost.totalUsd).toFixed(4)}` : ""));
  });
  const scope = scopeOf(params);
  const body = [h("h1", {}, scope ? `Runs of ${scope}` : "Runs"), form];
  for (const s of page.skipped || []) body.push(h("div", { class: "banner", role: "status" }, s));
  if (!rows.length) {
    body.push(h("p", { class: "empty" }, phase || workflow || token
      ? "No run matches these filters."
      : h("span", {}, "No runs yet. Start one with ", h("code", {}, "updraft run FILE"), ".")));
  } else {
    body.push(h("table", { id: "runs" },
      h("thead", {}, h("tr", {}, ["Run", "Workflow", "Launch plan", "Mode", "Phase", "Started", "Duration", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)));
  }
  const nav = h("p", {});
  if (token) nav.append(h("a", { href: scoped("/?" + new URLSearchParams({ phase, workflow })), "data-link": "" }, "Newest runs"), " ");
  if (page.nextToken) nav.append(h("a", { href: scoped("/?" + new URLSearchParams({ phase, workflow, token: page.nextToken })), "data-link": "" }, "Older runs"));
  body.push(nav);
  main.replaceChildren(...body);
  if (page.executions.some((e) => e.phase === "WORKFLOW_RUNNING" && !gone.has(e.id.name))) {
    poll = setTimeout(() => render(), 2000);
  }
}

// ---- one run --------------------------------------------------------------

let selectedNode = null;
let selectedTab = "graph";

async function runPage(name) {
  stopPolling();
  document.title = `${name} · Updraft console`;
  let run;
  try {
    run = await api(`/api/runs/${encodeURIComponent(name)}`);
  } catch (e) {
    main.replaceChildren(h("h1", {}, name), h("div", { class: "error", role: "alert", "data-status": e.status }, e.message),
      h("p", {}, h("a", { href: scoped("/") }, "All runs")));
    if (e.status !== 404) retryLater();
    return;
  }
  backoff = 2000;
  const e = run.execution;
  const wfId = e.workflowId || {};
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "Phase"), h("dd", { id: "run-phase" }, phaseText(e.phase, run.runnerGone)),
    h("dt", {}, "Workflow"), h("dd", {}, wfId.name ? h("a", { href: scoped(`/workflows/${encodeURIComponent(wfId.name)}`) }, `${wfId.name}${wfId.version ? "@" + wfId.version : ""}`) : ""),
    h("dt", {}, "Started"), h("dd", {}, e.startedAt ? time(e.startedAt).toLocaleString() : ""),
    h("dt", {}, "Duration"), h("dd", {}, duration(seconds(e.duration))),
    h("dt", {}, "Mode"), h("dd", {}, (e.mode || "MANUAL").toLowerCase(), e.recoveredFrom ? [" of ", h("a", { href: scoped(`/runs/${encodeURIComponent(e.recoveredFrom)}`) }, e.recoveredFrom)] : []),
    e.principal ? [h("dt", {}, "By"), h("dd", {}, e.principal)] : []);
  const parts = [h("p", {}, h("a", { href: scoped("/") }, "← Runs")), h("h1", {}, name), facts];
  if (about.canAct) parts.push(actions(name, e.phase));
  if (run.runnerGone) {
    parts.push(h("div", { class: "banner", role: "status" },
      "The `updraft run` process of this run is gone (killed): it will not finish. The next `updraft` command that opens the store marks it ABORTED."));
  }
  if (e.error) parts.push(h("div", { class: "error", role: "alert", id: "run-error" }, `${e.error.code || "Error"}${e.error.failedNodeId ? " in " + e.error.failedNodeId : ""}: ${e.error.message || ""}`));
  parts.push(h("h2", {}, "Inputs"), values(e.inputs), h("h2", {}, "Outputs"), values(e.outputs));
  const tabs = [["graph", "Graph"], ["timeline", "Timeline"], ["nodes", "Nodes"]];
  const view = h("div", { id: "view", role: "tabpanel" });
  const bar = h("div", { class: "tabs", role: "tablist" }, tabs.map(([id, label]) =>
    h("button", { role: "tab", id: `tab-${id}`, "aria-selected": String(id === selectedTab),
      onclick: () => { selectedTab = id; showTab(run, view, bar); } }, label)));
  const panel = h("div", { id: "node-panel" });
  parts.push(bar, view, panel);
  main.replaceChildren(...parts);
  showTab(run, view, bar);
  if (selectedNode) showNode(run, selectedNode, panel);
  if (e.phase === "WORKFLOW_RUNNING" && !run.runnerGone) poll = setTimeout(() => render(), 2000);
}

// The run's actions the stack has: abort while it runs; relaunch once it ended; recover
// when it did not succeed. Each is a POST with the page's token.
function actions(name, phase) {
  const status = h("span", { role: "status", id: "action-status" });
  const ended = phase !== "WORKFLOW_RUNNING";
  const act = (action, question) => {
    // One key per button: the same click sent again names the same new run (idempotent).
    const key = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
    return async (event) => {
      if (!confirm(question)) return;
      event.target.disabled = true;
      const answer = await fetch(scoped(`/api/runs/${encodeURIComponent(name)}/${action}?key=${key}`), { method: "POST", headers: { "X-Updraft-Token": TOKEN } });
      const body = await answer.json().catch(() => ({}));
      if (!answer.ok) {
        status.textContent = ` ${body.message || answer.status}`;
        event.target.disabled = false;
      } else if (body.name) {
        navigate(`/runs/${encodeURIComponent(body.name)}`);
      } else {
        render();
      }
    };
  };
  const buttons = [];
  if (!ended) buttons.push(h("button", { id: "abort", onclick: act("abort", `Abort ${name}? Its running tasks are stopped.`) }, "Abort"));
  if (ended) buttons.push(h("button", { id: "relaunch", onclick: act("relaunch", `Run ${name} again on the same inputs?`) }, "Relaunch"));
  if (["WORKFLOW_FAILED", "WORKFLOW_ABORTED", "WORKFLOW_TIMED_OUT"].includes(phase)) {
    buttons.push(h("button", { id: "recover", onclick: act("recover", `Recover ${name}? What succeeded is kept; the rest runs.`) }, "Recover"));
  }
  return h("p", { class: "actions" }, buttons.flatMap((b) => [b, " "]), status);
}

function values(map) {
  const vs = (map && map.values) || {};
  if (!Object.keys(vs).length) return h("p", { class: "muted" }, "none");
  return h("table", { class: "values" }, h("tbody", {}, Object.entries(vs).map(([k, v]) =>
    h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, h("code", {}, literal(v)))))));
}

function literal(v) {
  if (!v || typeof v !== "object") return String(v);
  if ("integer" in v) return v.integer;
  if ("float" in v) return String(v.float);
  if ("string" in v) return JSON.stringify(v.string.length > 300 ? v.string.slice(0, 300) + "…" : v.string);
  if ("boolean" in v) return String(v.boolean);
  if ("list" in v) {
    const items = (v.list.values || []).slice(0, 20).map(literal);
    const more = (v.list.values || []).length - items.length + Number(v.list.omitted || 0);
    return `[${items.join(", ")}${more > 0 ? `, … and ${more} more` : ""}]`;
  }
  for (const kind of ["file", "directory", "dataframe", "blob"]) {
    if (kind in v) {
      const b = v[kind] || {};
      return `${kind} ${b.uri || ""}${b.format ? ` (${b.format})` : ""}${b.digest ? ` ${b.digest.slice(0, 19)}…` : ""}`;
    }
  }
  return JSON.stringify(v);
}

function showTab(run, view, bar) {
  for (const b of bar.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.id === `tab-${selectedTab}`));
  view.setAttribute("aria-labelledby", `tab-${selectedTab}`);
  const select = (id) => { selectedNode = id; showNode(run, id, document.getElementById("node-panel")); };
  if (selectedTab === "graph") view.replaceChildren(graph(run, select));
  else if (selectedTab === "timeline") view.replaceChildren(timeline(run, select));
  else view.replaceChildren(nodesTable(run, select));
}

const byId = (run) => Object.fromEntries(run.nodes.map((n) => [nodeName(n), n]));

// Graphs up to this many nodes are laid out by dagre (ranks, then the order within each rank
// that crosses fewest edges); larger ones by the compiler's levels, in linear time (dagre
// takes seconds on 1,000 nodes and 2,000 edges).
const DAGRE_MAX_NODES = 400;

// Where each node's box goes and how each edge runs, by dagre.
function dagrePlaces(template, box) {
  const g = new graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: box.GY, ranksep: box.GX, marginx: box.PAD, marginy: box.PAD });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of template.nodes || []) g.setNode(node.id, { width: box.W, height: box.H });
  for (const node of template.nodes || []) {
    for (const up of node.upstreamNodeIds || []) if (g.hasNode(up)) g.setEdge(up, node.id);
  }
  dagreLayout(g);
  const at = {};
  for (const id of g.nodes()) {
    const n = g.node(id);
    at[id] = { x: n.x - box.W / 2, y: n.y - box.H / 2 };
  }
  // A smooth line through dagre's points: a quadratic bend at each inner point.
  const route = (up, id) => {
    const points = (g.edge(up, id) || {}).points || [];
    const xy = (q) => `${q.x.toFixed(1)},${q.y.toFixed(1)}`;
    if (points.length < 3) return points.length ? `M${xy(points[0])} L${xy(points[points.length - 1])}` : "";
    let d = `M${xy(points[0])}`;
    for (let i = 1; i < points.length - 1; i++) {
      const next = points[i + 1];
      const end = i === points.length - 2 ? next : { x: (points[i].x + next.x) / 2, y: (points[i].y + next.y) / 2 };
      d += ` Q${xy(points[i])} ${xy(end)}`;
    }
    return d;
  };
  return { at, route, width: Math.ceil(g.graph().width), height: Math.ceil(g.graph().height) };
}

// The same by the compiler's levels: one column per level. An edge that skips levels is
// drawn over the top of the graph, in one of a few lanes, instead of through the nodes of
// the levels it skips.
function levelPlaces(template, levels, box) {
  const { W, H, GX, GY, PAD } = box, LANE = 8, LANES = 6;
  const column = {};
  levels.forEach((ids, col) => ids.forEach((id) => { column[id] = col; }));
  const skipping = (template.nodes || []).some((n) => (n.upstreamNodeIds || []).some((u) => column[n.id] - column[u] > 1));
  const TOP = PAD + (skipping ? LANE * (LANES + 1) : 0);
  const at = {};
  levels.forEach((ids, col) => ids.forEach((id, row) => { at[id] = { x: PAD + col * (W + GX), y: TOP + row * (H + GY) }; }));
  let lane = 0;
  const route = (up, id) => {
    const from = at[up], to = at[id];
    const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2, mx = (x1 + x2) / 2;
    if (column[id] - column[up] <= 1) return `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
    const top = PAD + LANE * (lane++ % LANES);
    const half = GX / 2;
    return `M${x1},${y1} C${x1 + half},${y1} ${x1},${top} ${x1 + half},${top} L${x2 - half},${top} C${x2},${top} ${x2 - half},${y2} ${x2},${y2}`;
  };
  const width = PAD * 2 + Math.max(1, levels.length) * (W + GX) - GX;
  const height = TOP + PAD + Math.max(1, ...levels.map((l) => l.length)) * (H + GY) - GY;
  return { at, route, width, height };
}

// The DAG coloured by each node's phase. Without a run (`still`), the workflow's shape
// alone: no phases, nothing to open.
export function graph(run, select, still = false) {
  if (!run.workflow) return h("div", { class: "banner", role: "status" }, run.workflowMissing || "no workflow recorded");
  const template = run.workflow.template || {};
  const levels = ((run.workflow.dag || {}).levels || []).map((l) => l.nodeIds || []);
  const records = byId(run);
  const box = { W: 200, H: 46, GX: 70, GY: 18, PAD: 12 };
  const { W, H } = box;
  const { at, route, width, height } = (template.nodes || []).length <= DAGRE_MAX_NODES
    ? dagrePlaces(template, box)
    : levelPlaces(template, levels, box);
  const critical = (run.workflow.dag || {}).criticalPath || [];
  const onCritical = new Set(critical.slice(1).map((id, i) => `${critical[i]}>${id}`));
  const edges = [], boxes = [];
  for (const node of template.nodes || []) {
    const to = at[node.id];
    if (!to) continue;
    for (const up of node.upstreamNodeIds || []) {
      if (!at[up]) continue;
      edges.push(svg("path", { class: `edge${onCritical.has(`${up}>${node.id}`) ? " critical" : ""}`,
        d: route(up, node.id), "data-from": up, "data-to": node.id }));
    }
    const record = records[node.id] || {};
    const phase = still ? "STATIC" : short(record.phase);
    let detail = still ? "" : phase;
    if (node.map || record.itemsTotal) {
      detail = `${phase} ${record.itemsDone || 0}/${record.itemsTotal || 0}${record.itemsFailed ? `, ${record.itemsFailed} failed` : ""}`;
    }
    const kind = node.map ? "map" : node.branch ? "branch" : node.workflow ? "subworkflow" : "task";
    if (record.branchTaken) detail = `${phase} → ${record.branchTaken.replace(`${node.id}-`, "")}`;
    if (still && (node.map || node.branch || node.workflow)) detail = "";
    const actions = still ? { role: "img" } : { tabindex: 0, role: "button",
      onclick: () => select(node.id), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(node.id); } } };
    boxes.push(svg("g", { class: `node p-${phase}`, ...actions, "data-node": node.id, "data-phase": phase, "data-kind": kind, "data-branch-taken": record.branchTaken,
      transform: `translate(${to.x},${to.y})`, "aria-label": `${node.id}: ${kind}${detail ? " " + detail : ""}` },
      svg("rect", { width: W, height: H, rx: 6 }),
      svg("text", { x: 10, y: 18 }, node.id.length > 22 ? node.id.slice(0, 21) + "…" : node.id),
      svg("text", { x: 10, y: 36, class: "muted" }, detail ? `${kind} · ${detail}` : kind)));
  }
  return h("div", { class: "scroll" }, svg("svg", { id: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "the run's graph" }, edges, boxes));
}

// One row per attempt (per node where no attempts are recorded): how long it waited for
// resources (light) and ran (its phase's colour), relative to the run's start; the
// critical path outlined; a now line while the run runs.
function timeline(run, select) {
  const start = time(run.execution.startedAt || run.execution.createdAt);
  const running = run.execution.phase === "WORKFLOW_RUNNING" && !run.runnerGone;
  const now = Date.now();
  const at = (t) => (time(t) - start) / 1000;
  const rows = [];
  for (const n of run.nodes.filter((n) => n.startedAt)) {
    const id = nodeName(n), phase = short(n.phase);
    const attempts = n.attemptRecords || [];
    if (!attempts.length) {
      const s = Math.max(0, at(n.startedAt));
      const d = seconds(n.duration) || (phase === "RUNNING" && running ? (now - time(n.startedAt)) / 1000 : 0);
      rows.push({ id, label: id, phase, q: s, s, e: s + d });
      continue;
    }
    for (const a of attempts) {
      const s = Math.max(0, at(a.startedAt));
      const ended = a.endedAt ? at(a.endedAt) : running ? (now - start) / 1000 : s;
      const last = a.attempt === attempts[attempts.length - 1].attempt;
      rows.push({ id, attempt: a.attempt, label: attempts.length > 1 ? `${id} #${a.attempt}` : id,
        phase: a.failureCode ? (last ? phase : "FAILED") : (a.endedAt ? (last ? phase : "SUCCEEDED") : "RUNNING"),
        q: Math.max(0, at(a.queuedAt || a.startedAt)), s, e: Math.max(s, ended), code: a.failureCode });
    }
  }
  rows.sort((a, b) => a.s - b.s || a.id.localeCompare(b.id) || (a.attempt || 0) - (b.attempt || 0));
  if (!rows.length) return h("p", { class: "muted" }, "No node has started.");
  const end = Math.max(...rows.map((r) => r.e), running ? (now - start) / 1000 : 0, 0.001);
  const critical = new Set(((run.workflow || {}).dag || {}).criticalPath || []);
  const LABEL = 190, WIDTH = 900, ROW = 24;
  const x = (t) => LABEL + (t / end) * (WIDTH - LABEL - 10);
  const parts = rows.map((r, i) => svg("g", { "data-node": r.id, "data-attempt": r.attempt, "data-phase": r.phase,
    "data-queued": r.q.toFixed(3), "data-start": r.s.toFixed(3), "data-end": r.e.toFixed(3),
    tabindex: 0, role: "button", "aria-label": `${r.label}: ${r.phase}, waited ${(r.s - r.q).toFixed(2)} s, ran from ${r.s.toFixed(2)} s for ${(r.e - r.s).toFixed(2)} s`,
    onclick: () => select(r.id), onkeydown: (e) => { if (e.key === "Enter") select(r.id); } },
    svg("text", { x: 4, y: 16 + i * ROW }, r.label.length > 26 ? r.label.slice(0, 25) + "…" : r.label),
    r.s - r.q > 0 ? svg("rect", { class: "bar queued", x: x(r.q), y: 8 + i * ROW, width: Math.max(1, x(r.s) - x(r.q)), height: ROW - 16 },
      svg("title", {}, `${r.label} waited ${duration(r.s - r.q)} for resources`)) : null,
    svg("rect", { class: `bar p-${r.phase}${critical.has(r.id) ? " critical" : ""}`, x: x(r.s), y: 4 + i * ROW,
      width: Math.max(2, x(r.e) - x(r.s)), height: ROW - 8 }, svg("title", {}, `${r.label} ${r.phase}${r.code ? ` (${r.code})` : ""} ${duration(r.e - r.s)}`))));
  const height = rows.length * ROW + 24;
  const axis = svg("text", { x: WIDTH - 10, y: height - 6, "text-anchor": "end", class: "muted" }, `${duration(end)} after the start`);
  const nowLine = running ? svg("line", { class: "now", x1: x((now - start) / 1000), x2: x((now - start) / 1000), y1: 0, y2: height }) : null;
  return h("div", { class: "scroll" }, svg("svg", { id: "timeline", width: WIDTH, height, role: "group", "aria-label": "when each node waited and ran" }, parts, axis, nowLine));
}

function nodesTable(run, select) {
  return h("table", { id: "nodes" },
    h("thead", {}, h("tr", {}, ["Node", "Phase", "Cache", "Cache key", "Attempts", "Duration", "Items", "Error"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, run.nodes.map((n) => {
      const id = nodeName(n);
      return h("tr", { "data-node": id, "data-phase": short(n.phase), class: id === selectedNode ? "selected" : "" },
        h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); select(id); } }, id)),
        h("td", {}, phaseText(n.phase)),
        h("td", { "data-cache": n.cacheStatus || "CACHE_DISABLED" }, (n.cacheStatus || "").replace(/^CACHE_/, "").toLowerCase()),
        h("td", {}, n.cacheKey ? h("code", { title: n.cacheKey }, n.cacheKey.slice(0, 16)) : ""),
        h("td", {}, n.attempts || ""),
        h("td", {}, duration(seconds(n.duration))),
        h("td", {}, n.itemsTotal ? `${n.itemsDone || 0}/${n.itemsTotal}${n.itemsFailed ? ` (${n.itemsFailed} failed)` : ""}` : ""),
        h("td", {}, n.error ? n.error.code || "" : ""));
    })));
}

async function showNode(run, id, panel) {
  const n = byId(run)[id];
  if (!n) { panel.replaceChildren(); return; }
  const parts = [h("h2", {}, `Node ${id}`), h("p", {}, phaseText(n.phase),
    n.attempts ? ` · ${n.attempts} attempt${n.attempts > 1 ? "s" : ""}` : "", n.cacheKey ? [" · cache key ", h("code", {}, n.cacheKey)] : "")];
  if (n.error) parts.push(h("div", { class: "error", role: "alert", "data-code": n.error.code || "" }, `${n.error.code || "Error"}: ${n.error.message || ""}`));
  // A subworkflow: locally its nodes are this run's (`sub/a`); in the cloud it is a child run named after the node.
  const template = ((run.workflow || {}).template || {}).nodes || [];
  if ((template.find((t) => t.id === id) || {}).workflow) {
    const inner = run.nodes.filter((x) => nodeName(x).startsWith(`${id}/`));
    if (about.mode === "remote") {
      const child = `${run.execution.id.name}-${id}`;
      parts.push(h("p", {}, "Its run: ", h("a", { href: scoped(`/runs/${encodeURIComponent(child)}`), "data-child-run": child }, child)));
    } else if (inner.length) {
      parts.push(h("h2", {}, "Its nodes"), h("ul", { class: "inner" }, inner.map((x) => h("li", { "data-node": nodeName(x) },
        `${nodeName(x)}: `, phaseText(x.phase)))));
    }
  }
  parts.push(h("h2", {}, "Inputs"), values(n.inputs), h("h2", {}, "Outputs"), values(n.outputs));
  const logs = h("div", { id: "logs" });
  parts.push(h("h2", {}, "Logs"), logs);
  panel.replaceChildren(h("section", { class: "panel", "aria-label": `node ${id}` }, parts));
  const node = template.find((t) => t.id === id) || {};
  // Only a task that ran has logs: a cached, skipped, recovered or subworkflow node has none to ask for.
  if (!n.attempts || node.workflow) {
    logs.replaceChildren(h("p", { class: "muted" }, "This node left no logs (it ran no task of its own here)."));
    return;
  }
  if (node.map || n.itemsTotal) {
    // A map's items log apart: one item at a time, the first by default.
    const item = h("input", { id: "log-item", type: "number", min: 0, max: Math.max(0, (n.itemsTotal || 1) - 1), value: 0, size: 6 });
    const shown = h("div", {});
    const load = () => showLogs(run, id, Number(item.value), shown);
    logs.replaceChildren(h("p", {}, h("label", { for: "log-item" }, "Item "), item, " ", h("button", { onclick: load }, "Show its log")), shown);
    return load();
  }
  // A task retried: each attempt's log, the last one first.
  const attempts = (n.attemptRecords || []).map((a) => a.attempt);
  if (attempts.length > 1) {
    const shown = h("div", {});
    const buttons = attempts.map((attempt) => h("button", {
      "data-attempt": attempt,
      onclick: (event) => {
        for (const b of buttons) b.setAttribute("aria-pressed", String(b === event.currentTarget));
        showLogs(run, id, null, shown, attempt);
      },
    }, `Attempt ${attempt}`));
    buttons[buttons.length - 1].setAttribute("aria-pressed", "true");
    for (const b of buttons.slice(0, -1)) b.setAttribute("aria-pressed", "false");
    logs.replaceChildren(h("p", { role: "group", "aria-label": "attempts" }, ...buttons), shown);
    return showLogs(run, id, null, shown, attempts[attempts.length - 1]);
  }
  return showLogs(run, id, null, logs);
}

// The last 200 lines of each stream of a node's (or a map item's) attempt (default: its
// last), and earlier lines by byte ranges on demand.
async function showLogs(run, id, item, into, wanted = null) {
  into.replaceChildren(h("p", { class: "muted" }, "Loading logs…"));
  const runName = run.execution.id.name;
  const blocks = [];
  for (const stream of ["stderr", "stdout"]) {
    const base = `/api/runs/${encodeURIComponent(runName)}/nodes/${encodeURIComponent(id)}/logs?stream=${stream}${item === null ? "" : `&item=${item}`}${wanted === null ? "" : `&attempt=${wanted}`}`;
    const answer = await fetch(scoped(`${base}&tail=200`));
    if (!answer.ok) continue;
    const text = await answer.text();
    const offset = Number(answer.headers.get("x-log-offset") || 0);
    const pre = h("pre", { class: "log", "data-stream": stream, tabindex: 0 }, text || "(empty)");
    const label = answer.headers.get("x-log-label") || stream;
    const attempt = Number(answer.headers.get("x-log-attempt") || 0);
    const size = answer.headers.get("x-log-size");
    const block = h("div", {}, h("h3", {}, `${label}${item === null ? "" : ` of item ${item}`} (${attempt ? `attempt ${attempt}, ` : ""}${size} bytes)`));
    if (offset > 0) {
      let from = offset;
      const more = h("button", { onclick: async () => {
        const start = Math.max(0, from - 65536);
        const earlier = await fetch(scoped(`${base}&offset=${start}&length=${from - start}`));
        pre.prepend(await earlier.text());
        from = start;
        if (from === 0) more.remove();
      } }, "Load earlier lines");
      block.append(more);
    }
    block.append(pre);
    blocks.push(block);
  }
  into.replaceChildren(...(blocks.length ? blocks : [h("p", { class: "muted" }, "No log of it (yet).")]));
}

// ---- one workflow ---------------------------------------------------------------

// Its graph and the runs × nodes grid of its last 25 runs (Airflow's grid: a flaky node
// stands out as a row of mixed colours).
async function workflowPage(name) {
  stopPolling();
  document.title = `${name} · Updraft console`;
  let answer;
  try {
    answer = await api(`/api/workflows/${encodeURIComponent(name)}/runs?limit=25`);
  } catch (e) {
    main.replaceChildren(h("h1", {}, name), h("div", { class: "error", role: "alert", "data-status": e.status }, e.message));
    retryLater();
    return;
  }
  backoff = 2000;
  const parts = [h("p", {}, h("a", { href: scoped("/") }, "← Runs")), h("h1", {}, `Workflow ${name}`)];
  if (!answer.runs.length) {
    main.replaceChildren(...parts, h("p", { class: "empty" }, "No run of this workflow yet."));
    return;
  }
  const runs = [...answer.runs].reverse(); // oldest on the left, as time reads
  const versions = [...new Set(runs.map((r) => (r.execution.workflowId || {}).version).filter(Boolean))];
  if (versions.length) parts.push(h("p", {}, `Versions in these runs: ${versions.join(", ")}`));
  if (answer.workflow) {
    parts.push(h("h2", {}, "Graph"), graph({ workflow: answer.workflow, nodes: [], execution: {} }, () => {}, true));
  }
  const order = ((answer.workflow || {}).dag || {}).topologicalOrder
    || [...new Set(runs.flatMap((r) => r.nodes.map(nodeName)))];
  const cell = (run, id) => {
    const n = run.nodes.find((x) => nodeName(x) === id);
    const phase = n ? short(n.phase) : "NONE";
    const runName = run.execution.id.name;
    return h("td", { class: "cell", "data-run": runName, "data-node": id, "data-phase": phase },
      h("a", { href: scoped(`/runs/${encodeURIComponent(runName)}`), class: `square p-${phase}`, "aria-label": `${id} in ${runName}: ${phase}`, title: `${id} in ${runName}: ${phase}` }, ""));
  };
  parts.push(h("h2", {}, `The last ${runs.length} runs`), h("div", { class: "scroll" }, h("table", { id: "grid" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Node"), runs.map((r) => h("th", { scope: "col", class: "run-head" },
      h("a", { href: scoped(`/runs/${encodeURIComponent(r.execution.id.name)}`), title: r.execution.id.name, "aria-label": r.execution.id.name }, phaseText(r.execution.phase, r.runnerGone)))))),
    h("tbody", {}, order.map((id) => h("tr", { "data-node": id }, h("th", { scope: "row" }, id), runs.map((r) => cell(r, id))))))));
  main.replaceChildren(...parts);
}

// ---- launch plans ---------------------------------------------------------------

function scheduleText(schedule) {
  if (!schedule) return "";
  if (schedule.cron) return `cron ${schedule.cron.expression}${schedule.cron.timezone ? ` (${schedule.cron.timezone})` : " (UTC)"}`;
  if (schedule.rate) return `every ${schedule.rate.value} ${String(schedule.rate.unit || "").toLowerCase()}`;
  return "";
}

async function launchPlansPage() {
  stopPolling();
  document.title = "Launch plans · Updraft console";
  let answer;
  try {
    answer = await api("/api/launch-plans");
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Launch plans"), h("div", { class: "error", role: "alert", "data-status": e.status }, e.message));
    retryLater();
    return;
  }
  backoff = 2000;
  const parts = [h("h1", {}, "Launch plans")];
  if (about.mode === "local") {
    parts.push(h("p", { class: "muted" }, "Local schedules run with ", h("code", {}, "updraft schedule FILE"),
      "; their plans live in the spec file, so this shows the ticks it handled."));
  }
  if (!answer.launchPlans.length) parts.push(h("p", { class: "empty" }, "No launch plan has a schedule or a tick yet."));
  for (const plan of answer.launchPlans) {
    const facts = h("dl", { class: "facts" });
    if (plan.activeVersion) facts.append(h("dt", {}, "Active version"), h("dd", {}, plan.activeVersion));
    if (plan.schedule) facts.append(h("dt", {}, "Schedule"), h("dd", {}, scheduleText(plan.schedule)));
    if (plan.state) facts.append(h("dt", {}, "Stack's schedule"), h("dd", {}, plan.state));
    if (plan.nextFires.length) facts.append(h("dt", {}, "Next fires"), h("dd", {}, plan.nextFires.map((t) => new Date(t).toLocaleString()).join(", ")));
    const ticks = plan.ticks.length
      ? h("table", { class: "ticks" },
        h("thead", {}, h("tr", {}, ["Scheduled for", "Version", "Outcome", "Run", "Message"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, plan.ticks.map((t) => h("tr", { "data-outcome": t.outcome },
          h("td", {}, new Date(t.scheduledTime).toLocaleString()), h("td", {}, t.version || ""), h("td", {}, t.outcome),
          h("td", {}, t.execution ? h("a", { href: scoped(`/runs/${encodeURIComponent(t.execution)}`) }, t.execution) : ""),
          h("td", {}, t.message || "")))))
      : h("p", { class: "muted" }, "No tick yet.");
    parts.push(h("section", { "data-plan": plan.name, "aria-label": `launch plan ${plan.name}` }, h("h2", {}, plan.name), facts, ticks));
  }
  main.replaceChildren(...parts);
}

// ---- the list across projects -------------------------------------------------

async function projectsPage() {
  stopPolling();
  document.title = "Projects · Updraft console";
  let answer;
  try {
    answer = await api("/api/projects");
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Projects"), h("div", { class: "error", role: "alert", "data-status": e.status }, e.message));
    retryLater();
    return;
  }
  backoff = 2000;
  const parts = [h("h1", {}, "Projects")];
  if (!answer.projects.length) parts.push(h("p", { class: "empty" }, "No project holds a run yet."));
  else {
    parts.push(h("table", { id: "projects" },
      h("thead", {}, h("tr", {}, ["Project", "Domain", "Newest run", "Phase", "Started"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, answer.projects.map((p) => {
        const where = new URLSearchParams({ project: p.project, domain: p.domain });
        const e = p.newest;
        const started = e ? time(e.startedAt || e.createdAt) : null;
        return h("tr", { "data-project": p.project, "data-domain": p.domain },
          h("td", {}, h("a", { href: `/?${where}` }, p.project)),
          h("td", {}, p.domain),
          h("td", {}, e ? h("a", { href: `/runs/${encodeURIComponent(e.id.name)}?${where}` }, e.id.name) : "none yet"),
          h("td", {}, e ? phaseText(e.phase, false) : ""),
          h("td", {}, started ? started.toLocaleString() : ""));
      }))));
  }
  main.replaceChildren(...parts);
}

// ---- routing ----------------------------------------------------------------

function render() {
  const path = location.pathname;
  const match = path.match(/^\/runs\/([^/]+)$/);
  if (match) return runPage(decodeURIComponent(match[1]));
  if (path === "/launch-plans") return launchPlansPage();
  if (path === "/projects") return projectsPage();
  const workflow = path.match(/^\/workflows\/([^/]+)$/);
  if (workflow) return workflowPage(decodeURIComponent(workflow[1]));
  return runsPage(new URLSearchParams(location.search));
}

function navigate(url) {
  history.pushState(null, "", url);
  selectedNode = null;
  scopeLinks();
  render();
}

// The header's links keep the project and domain the page shows.
function scopeLinks() {
  for (const a of document.querySelectorAll("header nav a[data-scoped]")) a.setAttribute("href", scoped(a.dataset.scoped));
}

document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href^='/']");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", () => { scopeLinks(); render(); });
scopeLinks();
fetch("/api/about").then((a) => a.json()).then((a) => {
  about = a;
  document.querySelector(".where").textContent = a.mode === "remote" ? `cloud runs of ${a.location}` : "runs on this machine";
}).catch(() => {}).finally(() => render());
