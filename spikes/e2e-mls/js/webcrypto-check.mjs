// Which WebCrypto algorithms suite 1 needs does this Chromium have? (headless, about:blank)
import { chromium } from "playwright-core";
import { createServer } from "node:http";
const server = createServer((req, res) => res.end("<p>x</p>"));
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"] });
const page = await browser.newPage();
const check = async () => {
  const out = { secureContext: window.isSecureContext };
  const tries = {
    X25519: () => crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]),
    Ed25519: () => crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]),
    "AES-GCM": () => crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, true, ["encrypt"]),
    "HMAC-SHA256": () => crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"]),
  };
  for (const [k, f] of Object.entries(tries)) {
    try { await f(); out[k] = "ok"; } catch (e) { out[k] = String(e); }
  }
  return out;
};
await page.goto("data:text/html,<p>x</p>"); // an insecure context, as plain http from another host is
console.log(await browser.version(), "data: URL", JSON.stringify(await page.evaluate(check)));
await page.goto(`http://127.0.0.1:${server.address().port}/`); // loopback counts as secure
console.log(await browser.version(), "http://127.0.0.1", JSON.stringify(await page.evaluate(check)));
await browser.close();
server.close();
