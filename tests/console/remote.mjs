// The console over a deployed stack, in Debian's Chromium: a running cloud run's page,
// its graph, and the Abort button, which must end the run ABORTED. Run by the emulator's
// test_cloud_runs.py. Usage: node remote.mjs CONSOLE_URL RUN SCREENSHOT_DIR
import assert from "node:assert/strict";
import path from "node:path";
import fs from "node:fs";
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";

const [url, run, artifacts] = process.argv.slice(2);
fs.mkdirSync(artifacts, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.locator(`tr[data-run="${run}"]`).waitFor();
  assert.equal(await page.locator(`tr[data-run="${run}"]`).getAttribute("data-phase"), "RUNNING");
  assert.match(await page.locator(".where").innerText(), /cloud runs of/);
  await page.screenshot({ path: path.join(artifacts, "remote-runs.png"), fullPage: true });
  await page.click(`a[href="/runs/${run}"]`);
  await page.locator("#graph").waitFor();
  const nodes = await page.locator("#graph [data-node]").evaluateAll((els) => els.map((e) => e.dataset.node).sort());
  assert.deepEqual(nodes, ["after", "left", "right"]);
  await page.screenshot({ path: path.join(artifacts, "remote-run-running.png"), fullPage: true });
  const { violations } = await new AxeBuilder({ page }).analyze();
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id);
  assert.deepEqual(bad, [], "accessibility");
  page.on("dialog", (dialog) => dialog.accept());
  await page.click("#abort");
  await page.locator('#run-phase [data-phase="ABORTED"]').waitFor({ timeout: 60000 });
  await page.screenshot({ path: path.join(artifacts, "remote-run-aborted.png"), fullPage: true });
  assert.deepEqual(errors, []);
  console.log(JSON.stringify({ aborted: run }));
} finally {
  await browser.close();
}
