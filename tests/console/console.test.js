// The console in a real browser: Debian's Chromium driven by playwright-core (pinned in
// package-lock.json, no browser download), over a fresh home with real runs of the
// examples. Screenshots of every view go to $UPDRAFT_CONSOLE_ARTIFACTS (default: a
// temporary directory, printed); axe reports no serious or critical violation.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";

const root = path.resolve(import.meta.dirname, "../..");
const updraft = process.env.UPDRAFT_BIN || path.join(root, "target/debug/updraft");
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-console-"));
const home = path.join(scratch, "home");
const artifacts = process.env.UPDRAFT_CONSOLE_ARTIFACTS || path.join(scratch, "screenshots");
const env = { ...process.env, UPDRAFT_HOME: home };

const FAILING = `
tasks:
  add:
    image: x
    command: [sh, -c, 'echo $(($1 + 1)) > "$2"', add, "{{inputs.a}}", "{{outputs.sum}}"]
    inputs: {a: int}
    outputs: {sum: int}
  broken:
    image: x
    command: [sh, -c, 'echo "console-marker: the input was $1" >&2; exit 3', broken, "{{inputs.a}}"]
    inputs: {a: int}
    outputs: {b: int}
    retries: 1
  slow:
    image: x
    command: [sleep, "613"]
workflows:
  failing:
    nodes:
      first: {task: add, inputs: {a: 1}}
      breaks: {task: broken, inputs: {a: $first.sum}}
      after: {task: add, inputs: {a: $breaks.b}}
  sleepy:
    nodes:
      nap: {task: slow}
  inner:
    inputs: {a: int}
    nodes:
      first: {task: add, inputs: {a: $inputs.a}}
    outputs: {sum: $first.sum}
  nested:
    nodes:
      sub: {workflow: inner, inputs: {a: 4}}
      last: {task: add, inputs: {a: $sub.sum}}
`;

let console_, url, browser, runs = {}, storeDigest;

function run(args) {
  const out = spawnSync(updraft, ["run", ...args, "--output", "json", "-q"], { env, cwd: scratch, encoding: "utf8" });
  const doc = JSON.parse(out.stdout || "null");
  assert.ok(doc, `updraft run ${args.join(" ")}: ${out.stderr}`);
  return doc.execution.id.name;
}

const digest = (file) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

async function waitFor(check, what, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A run left RUNNING by a machine that lost its processes: its runner and watchdog SIGKILLed. */
async function killedRun() {
  const runner = spawn(updraft, ["run", path.join(scratch, "failing.yaml"), "sleepy", "-q", "--name", "killed-run"], { env, cwd: scratch, stdio: "ignore" });
  const watchdogs = () => fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("__watch-runner\0killed-run"); } catch { return false; }
  });
  const [watchdog] = await waitFor(() => { const w = watchdogs(); return w.length ? w : null; }, "the run's watchdog");
  await waitFor(() => fs.existsSync(path.join(home, "runs", "killed-run", "nap")), "the task to start");
  process.kill(Number(watchdog), "SIGKILL");
  runner.kill("SIGKILL");
  await new Promise((r) => runner.once("exit", r));
  spawnSync("pkill", ["-KILL", "-f", "^sleep 613$"]);
  return "killed-run";
}

before(async () => {
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(artifacts, { recursive: true });
  fs.writeFileSync(path.join(scratch, "failing.yaml"), FAILING);
  runs.diabetes = run([path.join(root, "examples/diabetes/diabetes.yaml")]);
  runs.fanout = run([path.join(root, "examples/fanout/fanout.yaml")]);
  runs.failing = run([path.join(scratch, "failing.yaml"), "failing"]);
  runs.nested = run([path.join(scratch, "failing.yaml"), "nested"]);
  runs.cached = run([path.join(root, "examples/diabetes/diabetes.yaml")]);
  runs.killed = await killedRun();
  storeDigest = digest(path.join(home, "updraft.db"));
  console_ = spawn(updraft, ["console", "--port", "0"], { env, stdio: ["ignore", "pipe", "inherit"] });
  url = await new Promise((resolve, reject) => {
    console_.stdout.once("data", (d) => resolve(String(d).match(/http:\/\/127\.0\.0\.1:\d+\//)[0]));
    console_.once("exit", (code) => reject(new Error(`the console exited ${code}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  console.log(`screenshots: ${artifacts}`);
});

after(async () => {
  await browser?.close();
  console_?.kill("SIGINT");
  if (console_) await new Promise((r) => console_.once("exit", r));
  fs.rmSync(home, { recursive: true, force: true });
});

/** A page at 1366x768; `done(expected)` screenshots it, runs axe and checks that no script
 * error happened but the ones expected (an API's 404 that the page shows). */
async function page(pathname, name) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const p = await context.newPage();
  const problems = [];
  p.on("pageerror", (e) => problems.push(String(e)));
  p.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  await p.goto(new URL(pathname, url).href);
  p.done = async (expected = []) => {
    await p.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
    const { violations } = await new AxeBuilder({ page: p }).analyze();
    const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(", ")})`), [], `${name}: accessibility`);
    assert.deepEqual(problems.filter((m) => !expected.some((e) => m.includes(e))), [], `${name}: no script error`);
    await context.close();
  };
  return p;
}

test("the runs list shows every run with its phase and filters by phase", async () => {
  const p = await page("/", "runs-failed-filter");
  const row = (name) => p.locator(`tr[data-run="${name}"]`);
  await row(runs.diabetes).waitFor();
  assert.equal(await row(runs.diabetes).getAttribute("data-phase"), "SUCCEEDED");
  assert.equal(await row(runs.failing).getAttribute("data-phase"), "FAILED");
  assert.equal(await row(runs.killed).getAttribute("data-phase"), "RUNNER_GONE", "shown as such, not closed");
  await p.screenshot({ path: path.join(artifacts, "runs-all.png"), fullPage: true });
  await p.selectOption("#phase-filter", "WORKFLOW_FAILED");
  await row(runs.diabetes).waitFor({ state: "detached" });
  assert.equal(await row(runs.failing).getAttribute("data-phase"), "FAILED", "a FAILED filter hides the diabetes run only");
  assert.match(p.url(), /phase=WORKFLOW_FAILED/);
  await p.done();
});

test("the diabetes run's graph, timeline and nodes", async () => {
  const p = await page(`/runs/${runs.diabetes}`, "run-graph");
  await p.locator("#graph").waitFor();
  const nodes = await p.locator("#graph [data-node]").evaluateAll((els) => els.map((e) => [e.dataset.node, e.dataset.phase]));
  assert.deepEqual(nodes.sort(), [["fit", "SUCCEEDED"], ["predict", "SUCCEEDED"], ["score", "SUCCEEDED"], ["split", "SUCCEEDED"]]);
  const edges = await p.locator("#graph .edge").evaluateAll((els) => els.map((e) => `${e.dataset.from}>${e.dataset.to}`));
  for (const edge of ["split>fit", "fit>predict", "predict>score"]) assert.ok(edges.includes(edge), `${edge} in ${edges}`);
  await p.done();

  const t = await page(`/runs/${runs.diabetes}`, "run-timeline");
  await t.click("#tab-timeline");
  await t.locator("#timeline").waitFor();
  const bars = await t.locator("#timeline [data-node]").evaluateAll((els) => els.map((e) => ({ id: e.dataset.node, start: +e.dataset.start, end: +e.dataset.end })));
  assert.deepEqual(bars.map((b) => b.id), ["split", "fit", "predict", "score"], "in the order they ran");
  for (let i = 1; i < bars.length; i++) assert.ok(bars[i].start >= bars[i - 1].end, `${bars[i].id} starts after ${bars[i - 1].id} ends`);
  await t.done();

  const n = await page(`/runs/${runs.cached}`, "run-nodes-cached");
  await n.click("#tab-nodes");
  await n.locator("#nodes").waitFor();
  const rows = await n.locator("#nodes tbody tr").evaluateAll((els) => els.map((e) => [e.dataset.node, e.dataset.phase, e.querySelector("code")?.title || ""]));
  assert.equal(rows.length, 4);
  for (const [id, phase, key] of rows) {
    assert.equal(phase, "CACHED", id);
    assert.match(key, /^[0-9a-f]{64}$/, `${id} shows its cache key`);
  }
  await n.done();
});

test("a failed node shows its failure, its stderr in the log panel, and what it skipped", async () => {
  const p = await page(`/runs/${runs.failing}`, "run-failed");
  await p.locator("#graph").waitFor();
  assert.equal(await p.locator('#graph [data-node="after"]').getAttribute("data-phase"), "SKIPPED");
  await p.locator('#graph [data-node="breaks"]').focus();
  await p.keyboard.press("Enter");
  const panel = p.locator("#node-panel");
  await panel.locator('[data-stream="stderr"]').waitFor();
  assert.match(await panel.locator(".error").innerText(), /^\w+: .*3/);
  assert.match(await panel.locator('[data-stream="stderr"]').innerText(), /console-marker: the input was 2/);
  // It was retried: the last attempt's log first, the first's a click away.
  assert.equal(await panel.locator('[data-attempt="2"]').getAttribute("aria-pressed"), "true");
  assert.match(await panel.locator("#logs h3").first().innerText(), /attempt 2,/);
  await panel.locator('[data-attempt="1"]').click();
  await panel.locator("#logs h3", { hasText: "attempt 1," }).first().waitFor();
  assert.match(await panel.locator('[data-stream="stderr"]').innerText(), /console-marker: the input was 2/);
  assert.equal(await panel.locator('[data-attempt="1"]').getAttribute("aria-pressed"), "true");
  await p.done();
  // Its two attempts, one row each, the retry after the first ended.
  const t = await page(`/runs/${runs.failing}`, "run-failed-timeline");
  await t.click("#tab-timeline");
  await t.locator("#timeline").waitFor();
  const tries = await t.locator('#timeline [data-node="breaks"]').evaluateAll((els) => els.map((e) => ({
    attempt: +e.dataset.attempt, phase: e.dataset.phase, queued: +e.dataset.queued, start: +e.dataset.start, end: +e.dataset.end })));
  assert.deepEqual(tries.map((a) => [a.attempt, a.phase]), [[1, "FAILED"], [2, "FAILED"]]);
  assert.ok(tries[1].queued >= tries[0].end && tries[1].start >= tries[1].queued, JSON.stringify(tries));
  await t.done();
});

test("a map node shows its items done, and a run whose runner is gone says so", async () => {
  const p = await page(`/runs/${runs.fanout}`, "run-map");
  const map = p.locator('#graph [data-node="squares"]');
  await map.waitFor();
  assert.match(await map.textContent(), /100\/100/);
  const branch = p.locator('#graph [data-node="verdict"]');
  assert.equal(await branch.getAttribute("data-kind"), "branch");
  assert.equal(await branch.getAttribute("data-branch-taken"), "verdict-case-0", "the case taken (the sum is large)");
  assert.match(await branch.textContent(), /→ case-0/);
  // A map's items log apart: item 0's by default, another on request.
  await map.click();
  await p.locator('#node-panel h3:has-text("of item 0")').first().waitFor();
  await p.fill("#log-item", "42");
  await p.click('#node-panel button:has-text("Show its log")');
  await p.locator('#node-panel h3:has-text("of item 42")').first().waitFor();
  await p.done();
  const k = await page(`/runs/${runs.killed}`, "run-runner-gone");
  await k.locator("#run-phase [data-phase]").waitFor();
  assert.equal(await k.locator("#run-phase [data-phase]").getAttribute("data-phase"), "RUNNER_GONE");
  await k.done();
});

test("a subworkflow node shows the nodes it ran", async () => {
  const p = await page(`/runs/${runs.nested}`, "run-subworkflow");
  const sub = p.locator('#graph [data-node="sub"]');
  await sub.waitFor();
  assert.equal(await sub.getAttribute("data-kind"), "subworkflow");
  await sub.click();
  const inner = p.locator('#node-panel li[data-node="sub/first"]');
  await inner.waitFor();
  assert.match(await inner.innerText(), /sub\/first: SUCCEEDED/);
  await p.done();
});

test("a workflow's page shows its graph and a runs x nodes grid of its last runs", async () => {
  const p = await page("/workflows/diabetes", "workflow-grid");
  await p.locator("#grid").waitFor();
  const nodes = await p.locator("#graph [data-node]").evaluateAll((els) => els.map((e) => e.dataset.node).sort());
  assert.deepEqual(nodes, ["fit", "predict", "score", "split"]);
  const cells = await p.locator("#grid td.cell").evaluateAll((els) => els.map((e) => `${e.dataset.run}:${e.dataset.node}:${e.dataset.phase}`));
  const expected = [];
  for (const node of ["split", "fit", "predict", "score"]) {
    expected.push(`${runs.diabetes}:${node}:SUCCEEDED`, `${runs.cached}:${node}:CACHED`); // oldest run first
  }
  assert.deepEqual(cells, expected);
  await p.done();
});

test("the projects page lists each project with its newest run and opens one project's runs", async () => {
  const p = await page("/projects", "projects");
  const examples = p.locator('tr[data-project="examples"][data-domain="development"]');
  await examples.waitFor();
  assert.equal(await examples.locator("td").nth(2).innerText(), runs.cached, "the diabetes runs' newest");
  await p.locator('tr[data-project="default"]').waitFor();
  await examples.locator("a").first().click();
  await p.locator("main h1").filter({ hasText: "Runs of examples/development" }).waitFor();
  await p.locator(`tr[data-run="${runs.diabetes}"]`).waitFor();
  assert.equal(await p.locator(`tr[data-run="${runs.failing}"]`).count(), 0, "another project's run is not listed");
  // A run opened from there keeps the scope in its links.
  await p.locator(`tr[data-run="${runs.diabetes}"] a`).first().click();
  await p.locator("#tab-graph, [role=tab]").first().waitFor();
  assert.match(p.url(), /project=examples&domain=development/);
  await p.done();
});

test("an unknown run is a page that says so, and an empty list says how to start", async () => {
  const p = await page("/runs/no-such-run", "run-unknown");
  await p.locator('[data-status="404"]').waitFor();
  assert.match(await p.locator('[role="alert"]').innerText(), /no run named no-such-run/);
  await p.done(["status of 404"]);
});

test("the launch plans page says where local schedules live", async () => {
  const p = await page("/launch-plans", "launch-plans-local");
  await p.locator("main h1").filter({ hasText: "Launch plans" }).waitFor();
  await p.locator("text=updraft schedule FILE").waitFor();
  await p.done();
});

test("the console never wrote the store", () => {
  assert.equal(digest(path.join(home, "updraft.db")), storeDigest);
});
