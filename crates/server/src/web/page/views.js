// What the page draws for its rooms: one list of lines per room, kept
// while another room is looked at together with where it was scrolled;
// pages of older history put above a room's lines with the view held
// still; the room list with its badges, the topic, and the phone menu.
// Peers' text only ever goes into text nodes, made safe first. What is
// in which room, and in what order, is rooms.js's to say: this module
// only draws it.
"use strict";

import { PRIVATE } from "./rooms.js";

/// Most lines a room keeps; the oldest go (and can be fetched again).
const MAX_LINES = 5000;
/// How near the top (px) a scroll asks for older history.
const NEAR_TOP = 48;

/// Text a peer sent, made safe to show as chat shows it: C0 controls as
/// their Control Pictures (␛, ␊), DEL as ␡, C1 and bidirectional controls
/// (which could reorder a line) as U+FFFD. It only ever goes into text
/// nodes.
export function safe(text) {
  return String(text)
    .replace(/[\u0000-\u0008\u000a-\u001f]/g, (c) => String.fromCharCode(0x2400 + c.charCodeAt(0)))
    .replace(/\u007f/g, "\u2421")
    .replace(/[\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "\ufffd");
}

/// A stable colour per name.
export function colour(name) {
  let hash = 2166136261;
  for (const c of name) hash = Math.imul(hash ^ c.codePointAt(0), 16777619);
  return `hsl(${(hash >>> 0) % 360} 70% 65%)`;
}

function clock(ts) {
  const at = ts ? new Date(ts) : new Date();
  return at.toTimeString().slice(0, 5);
}

/// How a room (or the private messages' conversation) is named on screen.
export function label(name) {
  return name === PRIVATE ? "private messages" : `#${name}`;
}

function linesElement() {
  const lines = document.createElement("div");
  lines.className = "lines";
  return lines;
}

/// The rooms' lines in the scrolling box `#messages`.
export class RoomViews {
  /// `onDrop(room, id)` is told of a message line dropped to stay short.
  constructor(box, onDrop) {
    this.box = box;
    this.onDrop = onDrop;
    this.views = new Map(); // name -> { lines, scroll }
    this.console = linesElement(); // lines while in no room
    this.shown = null; // the room shown, or null: the console
    this.pages = new Map(); // room -> the page of older lines being gathered
    box.replaceChildren(this.console);
  }

  // The view of `name`, made when first needed. The first room takes the
  // lines said before it (the session's handshake, say).
  view(name) {
    let found = this.views.get(name);
    if (!found) {
      found = { lines: linesElement(), scroll: { atBottom: true, anchor: null, offset: 0 } };
      if (this.views.size === 0) found.lines.append(...this.console.childNodes);
      this.views.set(name, found);
    }
    return found;
  }

  // The element lines go to when they name no room: the room shown.
  current() {
    return this.shown === null ? this.console : this.view(this.shown).lines;
  }

  /// Forgets a room left.
  remove(name) {
    this.views.delete(name);
    this.pages.delete(name);
    if (this.shown === name) this.show(null);
  }

  /// Shows `name` (null: the console), where it was left.
  show(name) {
    if (name === this.shown && this.box.firstChild === this.current()) return;
    if (this.shown !== null && this.views.has(this.shown)) this.view(this.shown).scroll = this.where();
    this.shown = name;
    const lines = this.current();
    this.box.replaceChildren(lines);
    const scroll = name === null ? { atBottom: true } : this.view(name).scroll;
    if (scroll.atBottom) this.box.scrollTop = this.box.scrollHeight;
    else if (scroll.anchor && scroll.anchor.parentNode === lines) this.box.scrollTop = scroll.anchor.offsetTop - scroll.offset;
    else this.box.scrollTop = 0;
  }

  // Where the shown room is scrolled: at the bottom, or which line is at
  // the top of the box and how far above its top edge.
  where() {
    const box = this.box;
    if (box.scrollTop + box.clientHeight >= box.scrollHeight - 4) return { atBottom: true, anchor: null, offset: 0 };
    for (const line of this.current().children) {
      if (line.offsetTop + line.offsetHeight > box.scrollTop) {
        return { atBottom: false, anchor: line, offset: line.offsetTop - box.scrollTop };
      }
    }
    return { atBottom: false, anchor: null, offset: 0 };
  }

  /// Whether the shown room is scrolled to (near) its top.
  nearTop() {
    return this.shown !== null && this.box.scrollTop <= NEAR_TOP;
  }

  /// Whether the shown room's lines do not fill the box (so no scroll
  /// could ever reach for older ones).
  short() {
    return this.shown !== null && this.box.scrollHeight <= this.box.clientHeight + NEAR_TOP;
  }

  /// Adds one line: `parts` are [text, class, name-for-colour] and become
  /// text nodes only. `at` places it: `room` (default: the room shown),
  /// `id` (a message's), `before` / `top` (from rooms.js), `page` (gathered
  /// until `pageDone`), `own` (a line this page wrote for its own message).
  line(classes, ts, parts, at = {}) {
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
    if (at.id != null) line.dataset.id = String(at.id);
    if (at.own) line.dataset.own = "1";
    const room = at.room ?? this.shown;
    if (at.page && room !== null) {
      if (!this.pages.has(room)) this.pages.set(room, document.createDocumentFragment());
      this.pages.get(room).append(line);
      return line;
    }
    const lines = room === null ? this.console : this.view(room).lines;
    const shown = lines === this.box.firstChild;
    const follow = shown && this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - 4;
    const next = at.before != null ? lines.querySelector(`:scope > [data-id="${at.before}"]`) : null;
    if (next && at.top) lines.prepend(line);
    else if (next) next.before(line);
    else lines.append(line);
    // A room scrolled back keeps its lines until it is followed again.
    if (follow || room === null || (!shown && this.view(room).scroll.atBottom)) this.trim(room, lines);
    if (follow) this.box.scrollTop = this.box.scrollHeight;
    return line;
  }

  trim(room, lines) {
    while (lines.childElementCount > MAX_LINES) {
      const oldest = lines.firstElementChild;
      oldest.remove();
      if (room !== null && oldest.dataset.id !== undefined) this.onDrop(room, Number(oldest.dataset.id));
    }
  }

  /// Puts the gathered page of older lines above `room`'s lines, the
  /// lines in view held where they were.
  pageDone(room) {
    const page = this.pages.get(room);
    this.pages.delete(room);
    if (!page || !this.views.has(room)) return;
    const lines = this.view(room).lines;
    if (lines !== this.box.firstChild) {
      lines.prepend(page); // the saved anchor is a line, so it still holds
      return;
    }
    const fromBottom = this.box.scrollHeight - this.box.scrollTop;
    lines.prepend(page);
    this.box.scrollTop = this.box.scrollHeight - fromBottom;
  }

  /// A new connection: its messages will come again with new ids, so every
  /// message line goes (notices stay).
  dropMessages() {
    this.pages.clear();
    for (const { lines } of this.views.values()) {
      for (const line of lines.querySelectorAll(":scope > [data-id], :scope > [data-own]")) line.remove();
    }
  }

  /// Forgets every room and line.
  clear() {
    this.views.clear();
    this.pages.clear();
    this.console.replaceChildren();
    this.shown = null;
    this.box.replaceChildren(this.console);
  }
}

/// Draws the room list: each room with its unread badge (and a mention
/// badge), the room looked at highlighted, a button to leave it; then the
/// rooms to join. `pick(name)`, `part(name)` and `join(name)` are the
/// person's choices.
export function drawRoomList(list, entries, others, { pick, part, join }) {
  list.replaceChildren();
  for (const entry of entries) {
    const item = document.createElement("li");
    item.dataset.room = entry.name;
    if (entry.current) item.className = "current";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "pick";
    open.textContent = label(entry.name);
    if (entry.topic) open.title = safe(entry.topic);
    open.addEventListener("click", () => pick(entry.name));
    item.append(open);
    if (entry.e2e) {
      const lock = document.createElement("span");
      lock.className = "e2e-badge";
      lock.textContent = "e2e";
      lock.title = "end-to-end: only the members' devices can read it";
      item.append(lock);
    }
    if (entry.mentions > 0 && !entry.current) {
      const badge = document.createElement("span");
      badge.className = "mention-badge";
      badge.textContent = "@";
      badge.title = `${entry.mentions} mention${entry.mentions === 1 ? "" : "s"}`;
      item.append(badge);
    }
    if (entry.unread > 0 && !entry.current) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(entry.unread);
      item.append(badge);
    }
    if (entry.name !== PRIVATE) {
      const leave = document.createElement("button");
      leave.type = "button";
      leave.className = "part";
      leave.textContent = "×";
      leave.title = `leave #${entry.name}`;
      leave.addEventListener("click", () => part(entry.name));
      item.append(leave);
    }
    list.append(item);
  }
  for (const other of others) {
    const item = document.createElement("li");
    item.className = "other";
    item.dataset.room = other.room;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "pick";
    button.textContent = `#${other.room} (${other.count})`;
    button.title = other.topic ? `join: ${safe(other.topic)}` : "join";
    button.addEventListener("click", () => join(other.room));
    item.append(button);
    list.append(item);
  }
}
