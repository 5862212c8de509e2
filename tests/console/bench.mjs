// console_graph_1000_nodes_ms: a 1,000-node run's graph laid out and painted in Debian's
// Chromium, from the click on its tab to the next frame (median of 7). Usage: node bench.mjs UPDRAFT
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const updraft = path.resolve(process.argv[2] || "target/release/updraft");
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "updraft-console-bench-"));
const env = { ...process.env, UPDRAFT_HOME: path.join(scratch, "home") };

// 50 layers of 20 nodes, each waiting for two of the layer before: 1,000 nodes, 1,960 edges.
let spec = "tasks:\n  nothing: {image: x, command: [\"true\"]}\nworkflows:\n  wide:\n    nodes:\n";
for (let layer = 0; layer < 50; layer++) {
  for (let i = 0; i < 20; i++) {
    const after = layer ? `, after: [n${layer - 1}_${i}, n${layer - 1}_${(i + 1) % 20}]` : "";
    spec += `      n${layer}_${i}: {task: nothing${after}}\n`;
  }
}
fs.writeFileSync(path.join(scratch, "wide.yaml"), spec);
const ran = spawnSync(updraft, ["run", path.join(scratch, "wide.yaml"), "--output", "json", "-q"], { env, encoding: "utf8", maxBuffer: 1 << 28 });
if (ran.status !== 0) throw new Error(`the 1,000-node run failed: ${ran.stderr}`);
const name = JSON.parse(ran.stdout).execution.id.name;

const server = spawn(updraft, ["console", "--port", "0"], { env, stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve) => server.stdout.once("data", (d) => resolve(String(d).match(/http:\/\/127\.0\.0\.1:\d+\//)[0])));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  await page.goto(`${url}runs/${name}`);
  await page.locator("#graph").waitFor();
  if ((await page.locator("#graph [data-node]").count()) !== 1000) throw new Error("the graph does not show 1,000 nodes");
  const times = [];
  for (let i = 0; i < 8; i++) {
    await page.click("#tab-nodes");
    await page.locator("#nodes").waitFor();
    times.push(await page.evaluate(() => new Promise((resolve) => {
      const start = performance.now();
      document.getElementById("tab-graph").click();
      // The frame after the one that painted the graph: layout and paint are both done.
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
    })));
  }
  const measured = times.slice(1).sort((a, b) => a - b);
  console.log(`console_graph_1000_nodes_ms: ${measured[Math.floor(measured.length / 2)].toFixed(2)} ms`);
} finally {
  await browser.close();
  server.kill("SIGINT");
  fs.rmSync(scratch, { recursive: true, force: true });
}
