// The eaxchat page: joins the relay that served it over /ws with a key
// typed in (or from the #k=… fragment), seals and opens every frame in the
// browser with eax.js, asks for structured events (/hello eaxchat/1) and
// shows them. Peers' text only ever goes into text nodes.
//
// Or, by the person's choice ("Join as a member (session)"), it joins a
// session relay as a member: this browser's own identity (session.js keeps
// it, non-extractable, in IndexedDB), a handshake on every connection, one
// handshake line per WebSocket text message as frames go, then the frames
// under that session's keys. Which relay is which is not guessed: a
// shared-key relay would take a handshake line for a bad frame.
//
// In session mode the page is also an MLS device for end-to-end rooms:
// /mls.js (ts-mls, bundled by the relay's build) does the MLS, e2e.js
// drives the groups, and the device (its signature key, KeyPackages,
// groups, pins) is kept in IndexedDB ("eaxchat-mls"), which Forget removes.
//
// This module owns the connection and the keys; what the relay's events
// and the person's typing mean, room by room, is chat.js's.
"use strict";

import { EaxKey, openFrame, parseHexKey, sealFrame } from "./eax.js";
import {
  describeKey, FrameSender, IdentityStore, LineQueue, openSession, parseInviteFragment, PinStore,
  RefusedError,
} from "./session.js";
import { cryptoAvailable, explainInsecure, registerShell } from "./install.js";
import { Notifier } from "./notify.js";
import { Chat } from "./chat.js";
import { E2e } from "./e2e.js";

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const notifier = new Notifier();

let key = null; // the EaxKey, in memory only
let mode = null; // "key" (a shared or member key) or "session"
let identity = null; // session mode: this browser's key pair (its secret non-extractable)
let sender = null; // session mode: sends this connection's frames in counter order
let stopped = false; // session mode: refused, so no reconnecting
let sessionOpened = false; // session mode: whether a handshake has succeeded since joining
const pins = new PinStore();
const identities = new IdentityStore();
const HANDSHAKE_WAIT = 10000;
let socket = null;
let retry = null;
let backoff = 1000;
const chat = new Chat(send, notifier);
const notice = (text, cls) => chat.notice(text, cls);
const MLS_DB = "eaxchat-mls";

// The MLS device's record per member name, in IndexedDB.
class MlsStore {
  #run(mode, act) {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(MLS_DB, 1);
      request.onupgradeneeded = () => request.result.createObjectStore("device");
      request.onerror = () => reject(request.error);
      request.onsuccess = () => {
        const db = request.result;
        const tx = db.transaction("device", mode);
        const done = act(tx.objectStore("device"));
        tx.oncomplete = () => { db.close(); resolve(done.result); };
        tx.onerror = () => { db.close(); reject(tx.error); };
      };
    });
  }
  load(name) { return this.#run("readonly", (store) => store.get(name)); }
  save(name, data) { return this.#run("readwrite", (store) => store.put(data, name)); }
}

// The MLS bundle, or what says why there is none.
const mlsModule = import("/mls.js").catch((error) => ({ available: false, reason: `the page's MLS did not load (${error.message})` }));
mlsModule.then((mls) => {
  chat.e2e = new E2e({ mls, send, store: new MlsStore(), show: (room, cls, text, extra) => chat.showE2e(room, cls, text, extra) });
});

function setState(state, text) {
  const el = $("state");
  el.className = `state-${state}`;
  el.textContent = text;
  document.body.dataset.state = state;
}

async function send(text) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  if (mode === "session") {
    if (!sender) return false;
    await sender.send(text);
    return true;
  }
  if (!key) return false;
  socket.send(await sealFrame(key, encoder.encode(text)));
  return true;
}

// open(data) gives the plaintext, or null when the frame does not open.
async function onFrame(data, open = (line) => openFrame(key, line)) {
  if (typeof data !== "string") return;
  const plaintext = await open(data);
  if (plaintext === null) {
    if (mode === "session") {
      notice("a frame from the relay did not open (a replay, a gap, or not this session's). Disconnected.", "error");
      disconnect("closed", "bad frame");
      return;
    }
    notice("a frame from the relay did not open: is the key right? Disconnected.", "error");
    disconnect("closed", "wrong key?");
    return;
  }
  const text = decoder.decode(plaintext);
  let event = null;
  try {
    event = JSON.parse(text);
  } catch {
    event = null;
  }
  if (event && typeof event.kind === "string") {
    try {
      await chat.onEvent(event);
    } catch (error) {
      notice(`* ${event.kind}: ${error.message}`, "error");
    }
  }
  else chat.views.line("message", null, [[text]]);
}

function connect() {
  clearTimeout(retry);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  setState("connecting", "connecting…");
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  socket = ws;
  sender = null;
  // Frames are opened one after another, in order.
  let chain = Promise.resolve();
  // Session mode: the handshake's lines, until the session is made.
  const lines = mode === "session" ? new LineQueue() : null;
  let open = undefined;
  let handshaking = false;
  ws.onopen = async () => {
    if (mode === "session") {
      handshaking = true;
      open = await handshake(ws, lines);
      handshaking = false;
      if (!open) return;
      chat.restart();
      // The MLS device is loaded before any event is looked at.
      const opened = openE2e();
      chain = chain.then(() => opened);
      // Frames that came right behind the handshake, first.
      for (const line of lines.drain()) chain = chain.then(() => onFrame(line, open));
      backoff = 1000;
      setState("connected", "connected");
      await send("/hello eaxchat/1");
      if (await opened) await uploadKeyPackages();
      return;
    }
    backoff = 1000;
    setState("connected", "connected");
    chat.restart();
    ws.send(await sealFrame(key, encoder.encode("/hello eaxchat/1")));
  };
  ws.onmessage = (message) => {
    if (lines && !open) {
      if (typeof message.data === "string") lines.push(message.data);
      return;
    }
    chain = chain.then(() => onFrame(message.data, open));
  };
  ws.onclose = () => {
    if (handshaking) {
      // The handshake's failure decides what happens next.
      lines.close("the relay closed the connection during the handshake");
      return;
    }
    reconnectLater(ws);
  };
}

// After `ws` closed: reconnects with a growing delay, unless it was closed
// on purpose or the session was refused.
function reconnectLater(ws) {
  if (socket !== ws) return;
  socket = null;
  sender = null;
  if (stopped || (!key && mode !== "session")) return;
  const seconds = Math.round(backoff / 1000);
  setState("reconnecting", `reconnecting in ${seconds}s`);
  notice(`* the relay went away; reconnecting in ${seconds}s`, "error");
  retry = setTimeout(connect, backoff);
  backoff = Math.min(backoff * 2, 10000);
}

// Runs the session handshake on a new connection: the frame opener of the
// session, or null when it failed (a refusal stops reconnecting).
async function handshake(ws, lines) {
  setState("connecting", "handshake…");
  let made;
  try {
    made = await openSession({
      send: (line) => ws.send(line.replace(/\n$/, "")),
      recv: () => lines.next(HANDSHAKE_WAIT),
      staticKey: identity,
      pins,
      invite,
    });
  } catch (error) {
    if (socket !== ws) return null;
    notice(`* ${error.message}`, "error");
    if (!(error instanceof RefusedError) && !sessionOpened) {
      // The first handshake failed without a refusal: most likely not a
      // session relay (a shared-key relay closes on a handshake line).
      stopped = true;
      notice("* no session with this relay: is it a session relay? A shared-key relay needs its key above.", "error");
      disconnect("closed", "no session");
      $("key-form").hidden = false;
      await showSessionBox();
    } else if (error instanceof RefusedError) {
      stopped = true;
      const mine = await describeKey(identity.publicKey);
      if (!error.relayFingerprint || error.relayFingerprint === error.pinnedFingerprint) {
        notice(`* if the relay does not know this browser yet, give its operator this public key: ${mine.publicKey} (${mine.fingerprint})`, "error");
      }
      disconnect("refused", "refused");
      await showSessionBox();
    } else {
      ws.close();
      reconnectLater(ws);
    }
    return null;
  }
  if (socket !== ws) return null;
  sessionOpened = true;
  if (invite) {
    // Joined: the invite is spent, and its secret leaves the address bar.
    invite = null;
    history.replaceState(null, "", location.pathname + location.search);
    notice(`* joined by invite as ${made.name}`);
  }
  sender = new FrameSender(made.session, (line) => ws.send(line));
  chat.setName(made.name);
  showPin(made.relayFingerprint);
  notice(made.pinnedNow
    ? `* first visit: pinned this relay's key ${made.relayFingerprint}; a different key will be refused`
    : `* this relay's key ${made.relayFingerprint} matches the pin`);
  notice(`* session open as ${made.name}`);
  const session = made.session;
  return async (line) => {
    try {
      return await session.open(line);
    } catch {
      return null;
    }
  };
}

// Session mode: this device's end-to-end rooms, loaded (or made); true
// when there is a device.
async function openE2e() {
  await mlsModule;
  const e2e = chat.e2e;
  if (!e2e || !chat.me) return false;
  if (!e2e.available) {
    notice(`* ${e2e.mls.reason}`);
    return false;
  }
  try {
    const first = e2e.name !== chat.me;
    await e2e.open(chat.me);
    if (first) notice(`* end-to-end rooms: this browser's device key ${e2e.deviceKey.slice(0, 16)}… (/join ROOM --e2e makes one; /verify NAME compares keys)`);
    return true;
  } catch (error) {
    notice(`* end-to-end rooms are unavailable here: ${error.message}`, "error");
    return false;
  }
}

// After /hello: fresh KeyPackages of this device up.
async function uploadKeyPackages() {
  try {
    await chat.e2e.hello();
  } catch (error) {
    notice(`* KeyPackages not uploaded: ${error.message}`, "error");
  }
}

function showPin(fingerprint) {
  $("relay-fingerprint").textContent = fingerprint ?? "";
  $("relay-pin").hidden = !fingerprint;
}

// The start screen's session box: this browser's identity and pin, if any.
async function showSessionBox() {
  $("session-box").hidden = false;
  let found = null;
  try {
    found = identity ?? (await identities.load());
    if (found) {
      const shown = await describeKey(found.publicKey);
      $("identity-key").textContent = shown.publicKey;
      $("identity-fingerprint").textContent = shown.fingerprint;
    }
    const pin = pins.get();
    showPin(pin ? (await describeKey(pin)).fingerprint : null);
    $("session-forget").hidden = !(found || pin);
  } catch (error) {
    notice(`* ${error.message}`, "error");
    $("session-forget").hidden = false;
  }
  $("identity").hidden = !found;
}

let joining = false;
async function joinSession() {
  if (joining) return; // one identity, even for a double click
  joining = true;
  try {
    identity = await identities.loadOrCreate();
  } catch (error) {
    notice(`* this browser cannot keep an identity (IndexedDB or X25519 is missing): ${error.message}`, "error");
    return;
  } finally {
    joining = false;
  }
  await showSessionBox();
  mode = "session";
  stopped = false;
  sessionOpened = false;
  document.body.dataset.mode = "session";
  $("key-form").hidden = true;
  $("session-box").hidden = true;
  document.querySelector("main").hidden = false;
  $("send-form").hidden = false;
  $("forget").textContent = "Forget";
  $("forget").title = "Removes this browser's identity and the relay key it pinned";
  $("forget").hidden = false;
  const mine = await describeKey(identity.publicKey);
  notice(`* this browser's public key: ${mine.publicKey} (${mine.fingerprint})`);
  connect();
  $("text").focus();
}

// Removes the identity and the pin, and goes back to the start screen.
async function forgetSession() {
  identity = null;
  stopped = true;
  sender = null;
  disconnect("closed", "no key");
  try {
    await identities.remove();
  } catch (error) {
    notice(`* could not remove the identity: ${error.message}`, "error");
  }
  pins.remove();
  indexedDB.deleteDatabase(MLS_DB);
  if (chat.e2e) chat.e2e.name = null;
  forget();
  await showSessionBox();
}

function disconnect(state, text) {
  clearTimeout(retry);
  const ws = socket;
  socket = null;
  if (ws) ws.close();
  setState(state, text);
}

async function join(hex) {
  // The key leaves the field and the address bar (and history) at once,
  // whatever happens next.
  $("key").value = "";
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (!cryptoAvailable()) {
    explainInsecure();
    return;
  }
  const raw = parseHexKey(hex);
  if (!raw) {
    notice("a key is 32, 48 or 64 hex digits", "error");
    return;
  }
  key = await EaxKey.import(raw);
  raw.fill(0);
  mode = "key";
  stopped = false;
  document.body.dataset.mode = "key";
  $("session-box").hidden = true;
  $("forget").textContent = "Forget key";
  $("forget").removeAttribute("title");
  $("key").value = "";
  $("key-form").hidden = true;
  document.querySelector("main").hidden = false;
  $("send-form").hidden = false;
  $("forget").hidden = false;
  connect();
  $("text").focus();
}

function forget() {
  key = null;
  mode = null;
  delete document.body.dataset.mode;
  chat.clear();
  disconnect("closed", "no key");
  if (location.hash) history.replaceState(null, "", location.pathname);
  $("key-form").hidden = false;
  $("session-box").hidden = false;
  $("send-form").hidden = true;
  $("forget").hidden = true;
  $("forget").textContent = "Forget key";
  $("forget").removeAttribute("title");
  $("name").textContent = "";
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  join($("key").value);
});
$("forget").addEventListener("click", () => (mode === "session" ? forgetSession() : forget()));
$("session-join").addEventListener("click", joinSession);
$("session-forget").addEventListener("click", forgetSession);
$("send-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("text");
  const text = input.value;
  if (!text) return;
  if (await chat.submit(text)) input.value = "";
});

function showNotifyButton() {
  const on = notifier.enabled;
  $("notify").textContent = `Notifications: ${on ? "on" : "off"}`;
  $("notify").classList.toggle("on", on);
  $("notify").hidden = !notifier.supported;
  $("notify-text-label").hidden = !on;
  $("notify-text").checked = notifier.withText;
}
$("notify").addEventListener("click", async () => {
  await notifier.toggle();
  showNotifyButton();
});
$("notify-text").addEventListener("change", () => {
  notifier.withText = $("notify-text").checked;
});
showNotifyButton();

const fragment = new URLSearchParams(location.hash.slice(1)).get("k");
// An invite link (`#invite=…`) joins as a session member at once.
let invite = null;
try {
  invite = parseInviteFragment(location.hash);
} catch (error) {
  notice(`* ${error.message}`, "error");
}
if (!cryptoAvailable()) explainInsecure();
else {
  registerShell();
  if (invite) joinSession();
  else if (fragment) join(fragment);
  else showSessionBox();
}
