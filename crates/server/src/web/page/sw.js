// The eaxchat page's service worker: keeps the app shell (the page's own
// files, listed below) so the page opens offline and installs as an app.
// It caches nothing else: never /ws (messages travel only over the
// WebSocket, which a service worker does not see), never /metrics or
// /healthz, never a URL's #k= fragment (fragments are never sent, and the
// cache key is the path alone). Keys live in the page's memory or, for a
// session identity, non-extractable in IndexedDB: never here.
"use strict";

const CACHE = "eaxchat-shell-v4";
const SHELL = [
  "/", "/app.js", "/chat.js", "/rooms.js", "/views.js", "/eax.js", "/noise.js", "/session.js", "/notify.js", "/install.js",
  "/e2e.js", "/e2e-resume.js", "/safety.js", "/mls.js", "/style.css", "/favicon.svg", "/manifest.webmanifest", "/icon-192.png", "/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

// The shell from the network when it answers (so a new relay's page is
// used at once), else from the cache; anything else straight to the
// network, uncached.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const path = url.pathname === "/index.html" ? "/" : url.pathname;
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(path)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const fresh = await fetch(event.request);
      if (fresh.ok) await cache.put(path, fresh.clone());
      return fresh;
    } catch {
      const kept = await cache.match(path);
      if (kept) return kept;
      throw new Error(`offline, and ${path} is not cached`);
    }
  })());
});

// A click on a notification brings the page back.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    if (windows.length > 0) return windows[0].focus();
    return self.clients.openWindow("/");
  })());
});
