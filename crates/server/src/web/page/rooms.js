// The page's rooms, as data only: which rooms this connection is in and
// in what order, which one the person is looking at, each room's unread
// and mention counts, its topic, which message ids it shows (sorted, so a
// page of older history lands in order and a message shown twice is
// dropped), and whether older history can still be asked for. No DOM, no
// socket, no clock (times are passed in): app.js feeds it the relay's
// events and draws what it says; node tests it (tests/web/rooms.test.mjs).
"use strict";

/// The conversation of private messages: no room name holds an `@`, so it
/// never meets a room.
export const PRIVATE = "@private";
/// How many older messages one scroll to the top asks for.
export const HISTORY_PAGE = 50;
/// A page asked for and not answered this long (ms) may be asked again.
export const PAGE_TIMEOUT = 10000;

// Commands that are not about one room: sent as typed, never inside `/in`.
const UNSCOPED = new Set(["join", "part", "in", "rooms", "msg", "nick", "help", "quit", "hello"]);

/// A room name as the relay writes it: no leading `#`, case folded.
export function roomName(text) {
  return String(text).trim().replace(/^#/, "").toLowerCase();
}

/// Whether `text` mentions `me` as a word of its own (not inside another
/// name: `bob` is not mentioned by `bobby` or `bob.smith`).
export function mentions(text, me) {
  if (!me) return false;
  const escaped = me.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  return new RegExp(`(^|[^\\w.-])${escaped}($|[^\\w.-])`, "i").test(String(text));
}

/// The document title for `unread` messages not yet seen.
export function titleFor(unread, base = "eaxchat") {
  return unread > 0 ? `(${unread}) ${base}` : base;
}

/// What to send for a line typed while looking at `current`: every text
/// and room command goes as `/in ROOM …`, so the wire carries the room;
/// `/join`, `/part ROOM`, `/msg` and the other commands that are not about
/// one room go as typed. `/part` alone names the room looked at. Returns
/// `{ wire }`, or `{ error }` when there is nowhere to send it.
export function wireText(typed, current) {
  const command = typed.startsWith("/") && !typed.startsWith("//");
  const word = command ? typed.slice(1).split(/\s/, 1)[0].toLowerCase() : "";
  if (word === "part" && typed.trim() === "/part" && current && current !== PRIVATE) {
    return { wire: `/part ${current}` };
  }
  if (command && UNSCOPED.has(word)) return { wire: typed };
  if (current === PRIVATE) {
    if (command) return { wire: typed };
    return { error: "this is the private messages' conversation: write /msg NAME TEXT, or pick a room" };
  }
  if (!current) return { wire: typed }; // in no room: the relay says so
  return { wire: `/in ${current} ${typed}` };
}

function room(name) {
  return {
    name,
    joined: true,
    unread: 0,
    mentions: 0,
    topic: "",
    ids: [], // the message ids shown, ascending
    first: false, // nothing older to ask for
    loadingSince: null, // when a page was asked for, while it is awaited
  };
}

// Where `id` goes in the ascending `ids`: the index of the first larger.
function slot(ids, id) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/// The rooms of one page.
export class Rooms {
  constructor() {
    this.rooms = new Map();
    this.order = []; // the rooms joined, in join order
    this.current = null; // the room (or PRIVATE) looked at
    this.others = []; // rooms from the last `rooms` event this page is not in
    this.expecting = null; // { room, left, page }: history messages still to come
    this.quiet = new Set(); // rooms rejoined on our own: joining them does not switch the view
  }

  /// The state of `name`, or undefined.
  get(name) {
    return this.rooms.get(name);
  }

  ensure(name) {
    let found = this.rooms.get(name);
    if (!found) {
      found = room(name);
      this.rooms.set(name, found); // listed once a myrooms names it
    }
    return found;
  }

  /// The list to draw: the rooms in join order, then the private messages'
  /// conversation once there is one.
  list() {
    const names = [...this.order];
    if (this.rooms.has(PRIVATE)) names.push(PRIVATE);
    return names.map((name) => {
      const r = this.rooms.get(name);
      return { name, unread: r.unread, mentions: r.mentions, topic: r.topic, current: name === this.current };
    });
  }

  /// Every unread message, in every room.
  totalUnread() {
    let total = 0;
    for (const r of this.rooms.values()) total += r.unread;
    return total;
  }

  /// Looks at `name`: its unread and mention counts are cleared.
  select(name) {
    const r = this.rooms.get(name);
    if (!r) return false;
    this.current = name;
    r.unread = 0;
    r.mentions = 0;
    return true;
  }

  /// The page is seen again: what the current room counted while hidden
  /// is read.
  seen() {
    if (this.current) this.select(this.current);
  }

  /// A `welcome`: the rooms this connection is in. With `rejoin` (a
  /// shared-key relay, which remembers nothing across a reconnect), the
  /// rooms the page was in and this connection is not are kept, to be
  /// joined again quietly (joining them does not take the view away from
  /// the room looked at). Returns `{ added, removed, missing }`: `added`
  /// is every room of the welcome (a new connection knows nothing yet).
  welcome(rooms, current, rejoin = false) {
    const missing = rejoin ? this.order.filter((name) => !rooms.includes(name)) : [];
    for (const name of missing) this.quiet.add(name);
    const { removed } = this.mine(rooms, current);
    return { added: [...rooms], removed, missing };
  }

  /// A `myrooms` (or `welcome`): `rooms` are all of ours, `current` the
  /// relay's current room. Rooms left are forgotten; a room just joined is
  /// looked at (unless it was rejoined quietly); if the room looked at is
  /// gone, the relay's current one is. Returns `{ added, removed }`.
  mine(rooms, current) {
    const before = new Set(this.order);
    const now = new Set(rooms);
    const removed = [...this.rooms.keys()].filter((name) => name !== PRIVATE && !now.has(name) && !this.quiet.has(name));
    for (const name of removed) this.rooms.delete(name);
    const added = rooms.filter((name) => !before.has(name));
    const quiet = [...this.quiet].filter((name) => !now.has(name));
    this.order = [...rooms, ...quiet];
    for (const name of rooms) this.ensure(name);
    this.others = this.others.filter((entry) => !now.has(entry.room));
    const wanted = current && added.includes(current) && !this.quiet.has(current);
    for (const name of rooms) this.quiet.delete(name);
    if (wanted || !this.current || !this.rooms.has(this.current)) {
      const look = current && this.rooms.has(current) ? current : (this.order[0] ?? null);
      if (look) this.select(look);
      else this.current = null;
    }
    return { added, removed };
  }

  /// A `rooms` answer: topics of ours, and the rooms we could join.
  listed(entries) {
    const others = [];
    for (const entry of entries) {
      const r = this.rooms.get(entry.room);
      if (r) r.topic = entry.topic ?? r.topic;
      else if (!entry.joined) others.push({ room: entry.room, count: entry.count, topic: entry.topic ?? "" });
    }
    this.others = others;
  }

  /// A `topic` event.
  topic(name, text) {
    this.ensure(name).topic = text ?? "";
  }

  /// The connection is new: the ids it will send start over (a restarted
  /// relay numbers again), so no room shows any message by id any more.
  restart() {
    for (const r of this.rooms.values()) {
      r.ids = [];
      r.first = false;
      r.loadingSince = null;
    }
    this.expecting = null;
  }

  /// A `history` event: `count` history messages of `room` follow. Returns
  /// true when it is a page that is already complete (an empty one).
  historyStart(event) {
    const r = this.ensure(event.room);
    const page = Boolean(event.page);
    if (event.first) r.first = true;
    else if (page && event.count > 0) r.first = false;
    this.expecting = event.count > 0 ? { room: event.room, left: event.count, page } : null;
    if (page && event.count === 0) {
      r.loadingSince = null;
      return true;
    }
    return false;
  }

  /// The older page to ask for in `name` at `now` (ms): `{ before, limit }`,
  /// or null when one is awaited, nothing older is left, or nothing is
  /// shown to page back from. Asking marks it awaited.
  olderPage(name, now) {
    const r = this.rooms.get(name);
    if (!r || name === PRIVATE || r.first || r.ids.length === 0) return null;
    if (r.loadingSince !== null && now - r.loadingSince < PAGE_TIMEOUT) return null;
    r.loadingSince = now;
    return { before: r.ids[0], limit: HISTORY_PAGE };
  }

  /// Whether a page of `name` is awaited.
  loading(name) {
    return this.rooms.get(name)?.loadingSince != null;
  }

  /// An `error` about `name` while a page was awaited (flood control, say):
  /// the page will not come.
  refused(name) {
    const r = this.rooms.get(name);
    if (r) r.loadingSince = null;
  }

  /// A `msg` or `action` event. Returns `{ show, before, page, pageDone,
  /// mention }`: `show` false for a message already shown; `before` the id
  /// of the shown message it goes before (null: at the end; `top` true when
  /// that is the oldest shown, so it goes above everything); `page` when it
  /// belongs to a page of older history, `pageDone` when it is that page's
  /// last. `hidden` says the page is not being looked at.
  message(event, me, hidden = false) {
    const name = event.room;
    const r = this.ensure(name);
    let page = false;
    let pageDone = false;
    if (event.history && this.expecting && this.expecting.room === name) {
      page = this.expecting.page;
      this.expecting.left -= 1;
      if (this.expecting.left <= 0) {
        this.expecting = null;
        if (page) {
          pageDone = true;
          r.loadingSince = null;
        }
      }
    }
    const mention = (event.from ?? null) !== me && mentions(event.text, me);
    let before = null;
    let top = false;
    if (Number.isSafeInteger(event.id) && event.id >= 0) {
      const at = slot(r.ids, event.id);
      if (r.ids[at] === event.id) return { show: false, before: null, top: false, page, pageDone, mention };
      if (at < r.ids.length) {
        before = r.ids[at];
        top = at === 0;
      }
      r.ids.splice(at, 0, event.id);
    }
    if (!event.history && (name !== this.current || hidden)) {
      r.unread += 1;
      if (mention) r.mentions += 1;
    }
    return { show: true, before, top, page, pageDone, mention };
  }

  /// A `private` event (not our own echo): kept in the private messages'
  /// conversation, and shown where the person looks too, so it counts (as
  /// a mention) only while the page is hidden.
  private(hidden = false) {
    const r = this.ensure(PRIVATE);
    if (hidden) {
      r.unread += 1;
      r.mentions += 1;
    }
  }

  /// The view dropped the oldest shown message `id` of `name` (to stay
  /// short): older history can be asked for again.
  dropped(name, id) {
    const r = this.rooms.get(name);
    if (!r) return;
    const at = slot(r.ids, id);
    if (r.ids[at] === id) r.ids.splice(at, 1);
    r.first = false;
  }

  /// Forgets everything (the person left the relay).
  clear() {
    this.rooms.clear();
    this.order = [];
    this.current = null;
    this.others = [];
    this.expecting = null;
    this.quiet.clear();
  }
}
