// The eaxchat page: joins the relay that served it over /ws with a key
// typed in (or from the #k=… fragment), seals and opens every frame in the
// browser with eax.js, asks for structured events (/hello eaxchat/1) and
// shows them. Peers' text only ever goes into text nodes.
"use strict";

import { EaxKey, openFrame, parseHexKey, sealFrame } from "./eax.js";

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_LINES = 2000;

let key = null; // the EaxKey, in memory only
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
  if (!socket || socket.readyState !== WebSocket.OPEN || !key) return false;
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
      break;
    }
    case "private":
      if (event.echo) show("private own", event.ts, [[`[private to ${event.to}] ${event.text}`]]);
      else show("private", event.ts, [["[private] "], [from ?? "someone", "from", from ?? ""], [": " + event.text]]);
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

async function onFrame(data) {
  if (typeof data !== "string") return;
  const plaintext = await openFrame(key, data);
  if (plaintext === null) {
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
  // Frames are opened one after another, in order.
  let chain = Promise.resolve();
  ws.onopen = async () => {
    backoff = 1000;
    setState("connected", "connected");
    ws.send(await sealFrame(key, encoder.encode("/hello eaxchat/1")));
  };
  ws.onmessage = (message) => {
    chain = chain.then(() => onFrame(message.data));
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    if (!key) return;
    const seconds = Math.round(backoff / 1000);
    setState("reconnecting", `reconnecting in ${seconds}s`);
    notice(`* the relay went away; reconnecting in ${seconds}s`, "error");
    retry = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  };
}

function disconnect(state, text) {
  clearTimeout(retry);
  const ws = socket;
  socket = null;
  if (ws) ws.close();
  setState(state, text);
}

async function join(hex) {
  const raw = parseHexKey(hex);
  if (!raw) {
    notice("a key is 32, 48 or 64 hex digits", "error");
    return;
  }
  key = await EaxKey.import(raw);
  raw.fill(0);
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
  me = null;
  members.clear();
  renderMembers();
  disconnect("closed", "no key");
  if (location.hash) history.replaceState(null, "", location.pathname);
  $("key-form").hidden = false;
  $("send-form").hidden = true;
  $("forget").hidden = true;
  $("messages").replaceChildren();
  $("room").textContent = "not connected";
  $("name").textContent = "";
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  join($("key").value);
});
$("forget").addEventListener("click", forget);
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

const fragment = new URLSearchParams(location.hash.slice(1)).get("k");
if (fragment) join(fragment);
