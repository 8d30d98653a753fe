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
"use strict";

import { EaxKey, openFrame, parseHexKey, sealFrame } from "./eax.js";
import {
  describeKey, FrameSender, IdentityStore, LineQueue, openSession, parseInviteFragment, PinStore,
  RefusedError,
} from "./session.js";
import { cryptoAvailable, explainInsecure, registerShell } from "./install.js";
import { Notifier } from "./notify.js";

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_LINES = 2000;
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
let me = null;
let membersMode = false;
const members = new Set();
let unnamed = 0;

function setState(state, text) {
  const el = $("state");
  el.className = `state-${state}`;
  el.textContent = text;
  document.body.dataset.state = state;
}

// Text a peer sent, made safe to show as chat shows it: C0 controls as
// their Control Pictures (␛, ␊), DEL as ␡, C1 and bidirectional controls
// (which could reorder a line) as U+FFFD. It only ever goes into text nodes.
function safe(text) {
  return String(text)
    .replace(/[\u0000-\u0008\u000a-\u001f]/g, (c) => String.fromCharCode(0x2400 + c.charCodeAt(0)))
    .replace(/\u007f/g, "\u2421")
    .replace(/[\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "\ufffd");
}

// A stable colour per name.
function colour(name) {
  let hash = 2166136261;
  for (const c of name) hash = Math.imul(hash ^ c.codePointAt(0), 16777619);
  return `hsl(${(hash >>> 0) % 360} 70% 65%)`;
}

function clock(ts) {
  const at = ts ? new Date(ts) : new Date();
  return at.toTimeString().slice(0, 5);
}

// Adds one line: parts are [text, class, name-for-colour] and become text
// nodes only.
function show(classes, ts, parts) {
  const box = $("messages");
  const follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  const line = document.createElement("div");
  line.className = `line ${classes}`;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = clock(ts);
  line.append(time);
  for (const [text, cls, name] of parts) {
    const span = document.createElement("span");
    if (cls) span.className = cls;
    if (name) span.style.color = colour(name);
    span.textContent = safe(text);
    line.append(span);
  }
  box.append(line);
  while (box.childElementCount > MAX_LINES) box.firstElementChild.remove();
  if (follow) box.scrollTop = box.scrollHeight;
}

function notice(text, cls = "notice") {
  show(cls, null, [[text]]);
}

function renderMembers() {
  const list = $("member-list");
  list.replaceChildren();
  for (const name of [...members].sort()) {
    const item = document.createElement("li");
    item.textContent = safe(name);
    item.style.color = colour(name);
    list.append(item);
  }
  $("members-title").textContent = unnamed > 0 ? `here (+${unnamed} no name)` : "here";
}

function mentionsMe(text) {
  if (!me) return false;
  const escaped = me.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  return new RegExp(`(^|[^\\w.-])${escaped}($|[^\\w.-])`, "i").test(text);
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

let whoAsked = 0;
function askWho() {
  whoAsked++;
  send("/who");
}

function onEvent(event) {
  const from = event.from ?? null;
  switch (event.kind) {
    case "welcome":
      me = event.name ?? null;
      membersMode = Boolean(event.members);
      $("name").textContent = me ?? "(no name: /nick NAME)";
      $("room").textContent = `#${event.room}`;
      askWho();
      break;
    case "msg":
    case "action": {
      const history = event.history ? " history" : "";
      const mention = from !== me && mentionsMe(event.text) ? " mention" : "";
      const parts = [];
      if (event.kind === "action") parts.push(["* "], [from ?? "someone", "from", from ?? ""], [" " + event.text]);
      else if (from && (membersMode || !event.text.startsWith(`${from}: `))) parts.push([from, "from", from], [": " + event.text]);
      else parts.push([event.text]);
      show(`message${history}${mention}`, event.ts, parts);
      if (mention && !event.history) notifier.notify("mention", from, event.room ?? $("room").textContent.replace(/^#/, ""), event.text);
      break;
    }
    case "private":
      if (event.echo) show("private own", event.ts, [[`[private to ${event.to}] ${event.text}`]]);
      else {
        show("private", event.ts, [["[private] "], [from ?? "someone", "from", from ?? ""], [": " + event.text]]);
        notifier.notify("private", from, null, event.text);
      }
      break;
    case "join":
    case "leave":
      if (event.name === me && event.kind === "join") {
        $("room").textContent = `#${event.room}`;
        members.clear();
        askWho();
      } else if (event.kind === "join") members.add(event.name);
      else members.delete(event.name);
      renderMembers();
      show("notice", event.ts, [[`* ${event.name} ${event.kind === "join" ? "joined" : "left"} #${event.room} (${event.count} here)`]]);
      break;
    case "nick":
      if (from) members.delete(from);
      members.add(event.to);
      renderMembers();
      show("notice", event.ts, [[`* ${from ?? "someone"} is now ${event.to}`]]);
      break;
    case "history":
      notice(`* the last ${event.count} message${event.count === 1 ? "" : "s"} in #${event.room}:`);
      break;
    case "who":
      members.clear();
      for (const name of event.names) members.add(name);
      unnamed = event.unnamed;
      renderMembers();
      if (whoAsked > 0) whoAsked--;
      else notice(`* here in #${event.room}: ${event.names.join(", ")}${event.unnamed ? ` (+${event.unnamed} with no name)` : ""}`);
      break;
    case "rooms":
      notice(`* rooms: ${event.rooms.map((r) => `#${r.room} (${r.count})`).join(", ")}`);
      break;
    case "notice":
      if (event.text.startsWith("* you are now ")) {
        me = event.text.slice("* you are now ".length);
        $("name").textContent = me;
        askWho();
      } else if (event.text.startsWith("* you joined #")) {
        $("room").textContent = event.text.slice("* you joined ".length).split(" ")[0];
        members.clear();
        askWho();
      }
      notice(event.text);
      break;
    case "error":
      notice(event.text, "error");
      break;
    default:
      notice(event.text ?? `(${event.kind})`);
  }
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
  if (event && typeof event.kind === "string") onEvent(event);
  else show("message", null, [[text]]);
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
      // Frames that came right behind the handshake, first.
      for (const line of lines.drain()) chain = chain.then(() => onFrame(line, open));
      backoff = 1000;
      setState("connected", "connected");
      send("/hello eaxchat/1");
      return;
    }
    backoff = 1000;
    setState("connected", "connected");
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
  me = made.name;
  $("name").textContent = me;
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
  me = null;
  members.clear();
  renderMembers();
  disconnect("closed", "no key");
  if (location.hash) history.replaceState(null, "", location.pathname);
  $("key-form").hidden = false;
  $("session-box").hidden = false;
  $("send-form").hidden = true;
  $("forget").hidden = true;
  $("forget").textContent = "Forget key";
  $("forget").removeAttribute("title");
  $("messages").replaceChildren();
  $("room").textContent = "not connected";
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
  if (!(await send(text))) {
    notice("not connected: the message was not sent", "error");
    return;
  }
  input.value = "";
  const command = text.startsWith("/") && !text.startsWith("//");
  if (!command) show("message own", null, [[me ?? "you", "from"], [" (you): " + (text.startsWith("//") ? text.slice(1) : text)]]);
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
