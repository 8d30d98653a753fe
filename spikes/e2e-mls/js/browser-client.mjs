// The ts-mls client inside headless Chromium, as a process for the interop driver:
// serves static/ (index.html + the esbuild bundle) on 127.0.0.1, loads it, and passes each
// stdin line to window.mlsCommand in the page. Usage: node browser-client.mjs NAME
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";

const name = process.argv[2] ?? "page";
const root = new URL("./static/", import.meta.url);
const types = { ".html": "text/html", ".js": "text/javascript" };
const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname.replace(/^\/+/, "") || "index.html";
  try {
    if (path.includes("..")) throw new Error("no");
    const body = await readFile(new URL(path, root));
    res.writeHead(200, { "content-type": types[path.slice(path.lastIndexOf("."))] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage();
page.on("console", (m) => process.stderr.write(`[page] ${m.text()}\n`));
await page.goto(`http://127.0.0.1:${server.address().port}/index.html?name=${encodeURIComponent(name)}`);
await page.waitForFunction(() => document.getElementById("status").textContent !== "loading", null, { timeout: 15000 });
const status = await page.textContent("#status");
if (status !== "ready") throw new Error(`page: ${status}`);
process.stderr.write(`[browser-client] ${await browser.version()} ready\n`);
for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write((await page.evaluate((l) => window.mlsCommand(l), line)) + "\n");
}
await browser.close();
server.close();
