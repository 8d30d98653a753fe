// What the page needs from the browser before it can do anything: a
// secure context (https, or localhost) for WebCrypto. Without one it says
// so in plain words and keeps no key; with one, it registers the service
// worker that makes the page installable and lets it open offline.
"use strict";

// Whether this browser gives the page WebCrypto here.
export function cryptoAvailable() {
  return Boolean(globalThis.isSecureContext && globalThis.crypto && globalThis.crypto.subtle);
}

// Shows why the page cannot work here and what fixes it; drops a #k= key
// from the address bar and from history, and empties the key field.
export function explainInsecure() {
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  const input = document.getElementById("key");
  if (input) input.value = "";
  for (const id of ["key-form", "session-box", "send-form", "notify", "notify-text-label"]) {
    const el = document.getElementById(id);
    if (el) el.hidden = true;
  }
  const box = document.getElementById("insecure");
  const host = location.host;
  document.getElementById("insecure-https").textContent = `https://${host}${location.pathname}`;
  box.hidden = false;
  const state = document.getElementById("state");
  state.className = "state-refused";
  state.textContent = "not secure: no cryptography";
  document.body.dataset.state = "insecure";
}

// Registers the service worker (the app shell for offline use and
// installing); a failure only means no offline copy.
export async function registerShell() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    return await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  } catch (error) {
    console.warn("service worker not registered:", error);
    return null;
  }
}
