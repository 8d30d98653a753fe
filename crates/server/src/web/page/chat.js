// What the page does with the relay's events and the person's typing, room
// by room: each event goes to its room's lines (rooms.js says where, and
// counts what is unread; views.js draws), every text and room command goes
// out as `/in ROOM …`, scrolling to the top of a room asks for its older
// history, and the room list, topic, members panel and title follow.
// Sealing, sockets and keys are app.js's: it hands this module a `send`.
// End-to-end rooms' groups are e2e.js's: this module hands it their events
// and the text typed in them, and shows what it gives back.
"use strict";

import { PRIVATE, Rooms, roomName, titleFor, wireText } from "./rooms.js";
import { RoomViews, colour, drawRoomList, label, safe } from "./views.js";

const $ = (id) => document.getElementById(id);

/// One page's chat, over whatever connection `send(text)` (async, true
/// when sent) reaches.
export class Chat {
  constructor(send, notifier, e2e = null) {
    this.send = send;
    this.e2e = e2e; // an E2e (e2e.js) once app.js made one
    this.notifier = notifier;
    this.rooms = new Rooms();
    this.views = new RoomViews($("messages"), (room, id) => this.rooms.dropped(room, id));
    this.me = null;
    this.membersMode = false;
    this.members = new Map(); // room -> { names: Set, unnamed }
    this.quietAsks = new Map(); // "who ROOM" / "rooms" -> answers to keep off screen
    $("messages").addEventListener("scroll", () => this.older());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.rooms.seen();
        this.drawList();
      }
    });
    $("rooms-toggle").addEventListener("click", () => this.menu(!document.body.classList.contains("rooms-open")));
    $("join-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const name = roomName($("join-room").value);
      if (!name) return;
      $("join-room").value = "";
      this.command(`/join ${name}`);
    });
  }

  /// Opens or closes the room list's menu (shown as one on a narrow
  /// screen only).
  menu(open) {
    document.body.classList.toggle("rooms-open", open);
    $("rooms-toggle").setAttribute("aria-expanded", String(open));
  }

  /// A notice of the page's own, in the room looked at.
  notice(text, cls = "notice") {
    this.views.line(cls, null, [[text]]);
  }

  async command(text) {
    if (!(await this.send(text))) this.notice("not connected: nothing was sent", "error");
  }

  // Sends a command whose answer the page uses itself, keeping the answer
  // off screen.
  ask(what, text) {
    this.quietAsks.set(what, (this.quietAsks.get(what) ?? 0) + 1);
    this.send(text);
  }

  answered(what) {
    const left = this.quietAsks.get(what) ?? 0;
    if (left === 0) return false;
    this.quietAsks.set(what, left - 1);
    return true;
  }

  /// A line the person typed: sent for the room looked at. Returns whether
  /// it was sent.
  async submit(text) {
    const current = this.rooms.current;
    const verify = /^\/verify\s+(\S+)\s*$/i.exec(text);
    if (verify && this.e2e) {
      const found = await this.e2e.verify(verify[1]);
      if (found.error) this.notice(found.error, "error");
      else this.notice(`* safety number with ${verify[1]} (${found.devices} device${found.devices === 1 ? "" : "s"}): ${found.number} — compare it with theirs, out of band`);
      return true;
    }
    const command = text.startsWith("/") && !text.startsWith("//");
    if (this.e2e && current && this.e2e.isE2e(current) && (!command || /^\/me\s/i.test(text))) {
      if (!this.e2e.available) {
        this.notice(`#${current} is end-to-end, and ${this.e2e.mls?.reason ?? "this page has no MLS"}`, "error");
        return false;
      }
      const said = command ? `* ${text.slice(4)}` : text.startsWith("//") ? text.slice(1) : text;
      const done = await this.e2e.say(current, said);
      if (done.error) {
        this.notice(done.error, "error");
        return false;
      }
      this.views.line("message own", null, [[this.me ?? "you", "from"], [" (you): " + said]], { own: true });
      if (done.queued) this.notice("* held until the group's commit is taken, then sent");
      return true;
    }
    const { wire, error } = wireText(text, current);
    if (error) {
      this.notice(error, "error");
      return false;
    }
    this.e2e?.typed(wire);
    if (!(await this.send(wire))) {
      this.notice("not connected: the message was not sent", "error");
      return false;
    }
    if (!command) {
      const said = text.startsWith("//") ? text.slice(1) : text;
      this.views.line("message own", null, [[this.me ?? "you", "from"], [" (you): " + said]], { own: true });
    }
    return true;
  }

  /// Looks at `name` (from the room list, or a room just joined).
  look(name) {
    this.menu(false);
    if (!this.rooms.select(name)) return;
    this.draw();
    if (name !== PRIVATE && !this.members.has(name)) this.askWho(name);
    this.older();
  }

  askWho(room) {
    this.ask(`who ${room}`, `/in ${room} /who`);
  }

  /// Scrolled to the top of a room (or its lines do not fill the box): asks
  /// for the page before the oldest message shown, once at a time.
  older() {
    const room = this.rooms.current;
    if (!room || !(this.views.nearTop() || this.views.short())) return;
    const page = this.rooms.olderPage(room, Date.now());
    if (page) this.send(`/in ${room} /history ${page.before} ${page.limit}`);
    this.drawLoading();
  }

  // "loading older messages…" over the top of a room while its page is awaited.
  drawLoading() {
    const current = this.rooms.current;
    $("messages").classList.toggle("loading", Boolean(current) && this.rooms.loading(current));
  }

  /// Everything that follows the rooms: the list, the header, the topic,
  /// the members panel, the lines shown, the title.
  draw() {
    this.views.show(this.rooms.current);
    this.drawList();
    const current = this.rooms.current;
    const e2e = Boolean(current && this.e2e?.isE2e(current));
    $("room").textContent = current ? `${label(current)}${e2e ? " · end-to-end" : ""}` : "no room";
    $("room").dataset.mode = e2e ? "e2e" : "relay";
    const topic = current ? this.rooms.get(current)?.topic : "";
    $("topic").textContent = topic ? safe(topic) : "";
    $("topic").hidden = !topic;
    this.drawMembers();
    this.drawLoading();
  }

  drawList() {
    const entries = this.rooms.list().map((entry) => ({ ...entry, e2e: Boolean(this.e2e?.isE2e(entry.name)) }));
    drawRoomList($("room-list"), entries, this.rooms.others, {
      pick: (name) => this.look(name),
      part: (name) => this.command(`/part ${name}`),
      join: (name) => this.command(`/join ${name}`),
    });
    document.title = titleFor(this.rooms.totalUnread());
  }

  drawMembers() {
    const list = $("member-list");
    list.replaceChildren();
    const here = this.members.get(this.rooms.current) ?? { names: new Set(), unnamed: 0 };
    for (const name of [...here.names].sort()) {
      const item = document.createElement("li");
      item.textContent = safe(name);
      item.style.color = colour(name);
      list.append(item);
    }
    $("members-title").textContent = here.unnamed > 0 ? `here (+${here.unnamed} no name)` : "here";
  }

  membersOf(room) {
    if (!this.members.has(room)) this.members.set(room, { names: new Set(), unnamed: 0 });
    return this.members.get(room);
  }

  /// A new connection: messages come again, with its ids.
  restart() {
    this.rooms.restart();
    this.views.dropMessages();
    this.quietAsks.clear();
  }

  /// Forgets everything (the person left).
  clear() {
    this.rooms.clear();
    this.views.clear();
    this.members.clear();
    this.quietAsks.clear();
    this.me = null;
    this.menu(false);
    this.draw();
    $("room").textContent = "not connected";
  }

  setName(name) {
    this.me = name;
    $("name").textContent = name ?? "(no name: /nick NAME)";
  }

  // Our rooms changed (welcome, myrooms).
  roomsChanged({ added, removed }) {
    for (const name of removed) {
      this.views.remove(name);
      this.members.delete(name);
    }
    this.views.show(this.rooms.current);
    for (const name of removed) this.notice(`* you left #${name}`);
    for (const name of added) this.askWho(name);
    this.ask("rooms", "/rooms");
    this.draw();
    this.older();
  }

  /// A line e2e.js shows in `room`: a group message (`extra.event`,
  /// decrypted into `text` or shown as `extra.instead`), or a notice.
  showE2e(room, cls, text, extra = {}) {
    if (extra.event) {
      const event = { ...extra.event, kind: "msg", text: text ?? extra.instead, undecryptable: text === null };
      this.message(event, event.from ?? null);
      return;
    }
    this.views.line(cls, null, [[text]], room && this.rooms.get(room) ? { room } : {});
  }

  /// One `eaxchat/1` event from the relay (a promise for the end-to-end
  /// rooms' events, which are handled in order).
  onEvent(event) {
    // The answer to e2e.js's own /groupinfo when the relay has none yet.
    if (this.e2e?.available && this.e2e.noGroupInfo(event)) return Promise.resolve();
    if (this.e2e && typeof event.kind === "string" && (event.kind.startsWith("mls") || event.kind === "keypackages" || event.kind === "groupinfo")) {
      return this.e2e.onEvent(event).then((taken) => {
        // No MLS here: a group's messages show as what they are.
        if (!taken && event.kind === "mls" && event.room && Number.isSafeInteger(event.id)) {
          const text = "(encrypted: this page cannot open end-to-end messages)";
          this.message({ ...event, kind: "msg", text, undecryptable: true }, event.from ?? null);
        }
      });
    }
    return this.onRelayEvent(event);
  }

  async onRelayEvent(event) {
    const from = event.from ?? null;
    const room = typeof event.room === "string" ? event.room : null;
    // Events of a room go to its lines (a room being joined sends its own
    // before the myrooms that lists it); a notice or an error about a room
    // we are not in goes where the person looks.
    const at = room && (this.rooms.get(room) || !["notice", "error"].includes(event.kind)) ? { room } : {};
    switch (event.kind) {
      case "welcome": {
        this.setName(event.name ?? null);
        this.membersMode = Boolean(event.members);
        const mine = Array.isArray(event.rooms) ? event.rooms : event.room ? [event.room] : [];
        // A shared-key relay forgets our rooms when the connection goes:
        // the page joins them again. A members relay remembers them.
        const { added, removed, missing } = this.rooms.welcome(mine, event.room, !this.membersMode);
        for (const name of missing) this.send(`/join ${name}`);
        this.members.clear();
        this.roomsChanged({ added, removed });
        break;
      }
      case "myrooms":
        await this.e2e?.rooms(event.e2e, event.rooms);
        this.roomsChanged(this.rooms.mine(event.rooms, event.room));
        break;
      case "msg":
      case "action":
        this.message(event, from);
        break;
      case "private":
        if (event.echo) {
          const line = [[`[private to ${event.to}] ${event.text}`]];
          this.views.line("private own", event.ts, line, { room: PRIVATE });
          if (this.rooms.current !== PRIVATE) this.views.line("private own", event.ts, line);
        } else {
          this.rooms.private(document.visibilityState === "hidden");
          const line = [["[private] "], [from ?? "someone", "from", from ?? ""], [": " + event.text]];
          this.views.line("private", event.ts, line, { room: PRIVATE });
          if (this.rooms.current !== PRIVATE) this.views.line("private", event.ts, line);
          this.notifier.notify("private", from, null, event.text);
        }
        this.drawList();
        break;
      case "join":
      case "leave": {
        const here = this.membersOf(event.room);
        if (event.kind === "join") here.names.add(event.name);
        else here.names.delete(event.name);
        if (event.room === this.rooms.current) this.drawMembers();
        this.views.line("notice", event.ts, [[`* ${event.name} ${event.kind === "join" ? "joined" : "left"} #${event.room} (${event.count} here)`]], at);
        break;
      }
      case "nick": {
        const here = this.membersOf(event.room);
        if (from) here.names.delete(from);
        here.names.add(event.to);
        if (event.room === this.rooms.current) this.drawMembers();
        this.views.line("notice", event.ts, [[`* ${from ?? "someone"} is now ${event.to}`]], at);
        break;
      }
      case "history": {
        const empty = this.rooms.historyStart(event);
        if (event.page && event.first) this.views.line("notice", null, [[`* the start of #${event.room}`]], { room: event.room, page: true });
        if (empty) {
          this.views.pageDone(event.room);
          this.drawLoading();
        }
        if (!event.page) this.views.line("notice", null, [[`* the last ${event.count} message${event.count === 1 ? "" : "s"} in #${event.room}:`]], at);
        break;
      }
      case "who": {
        const here = this.membersOf(event.room);
        here.names = new Set(event.names);
        here.unnamed = event.unnamed;
        if (event.room === this.rooms.current) this.drawMembers();
        if (!this.answered(`who ${event.room}`)) {
          this.views.line("notice", null, [[`* here in #${event.room}: ${event.names.join(", ")}${event.unnamed ? ` (+${event.unnamed} with no name)` : ""}`]], at);
        }
        break;
      }
      case "rooms":
        this.rooms.listed(event.rooms);
        this.e2e?.listed(event.rooms);
        this.draw();
        if (!this.answered("rooms")) this.notice(`* rooms: ${event.rooms.map((r) => `#${r.room} (${r.count})`).join(", ")}`);
        break;
      case "topic": {
        this.rooms.topic(event.room, event.text);
        const text = !event.text ? `* #${event.room} has no topic`
          : from ? `* ${from} set the topic of #${event.room}: ${event.text}` : `* the topic of #${event.room}: ${event.text}`;
        this.views.line("notice", event.ts, [[text]], at);
        this.draw();
        break;
      }
      case "notice":
        // The answer to each of e2e.js's KeyPackage uploads: not news.
        if (this.e2e && event.text.startsWith("* KeyPackage kept")) break;
        if (event.text.startsWith("* you are now ")) {
          this.setName(event.text.slice("* you are now ".length));
          if (this.rooms.current) this.askWho(this.rooms.current);
        }
        this.views.line("notice", null, [[event.text]], at);
        break;
      case "error":
        this.rooms.refused(room ?? this.rooms.current);
        this.drawLoading();
        this.views.line("error", null, [[event.text]], at);
        break;
      default:
        this.views.line("notice", null, [[event.text ?? `(${event.kind})`]], at);
    }
  }

  message(event, from) {
    const placed = this.rooms.message(event, this.me, document.visibilityState === "hidden");
    if (placed.show) {
      const parts = [];
      if (event.kind === "action") parts.push(["* "], [from ?? "someone", "from", from ?? ""], [" " + event.text]);
      else if (from && (this.membersMode || !event.text.startsWith(`${from}: `))) parts.push([from, "from", from], [": " + event.text]);
      else parts.push([event.text]);
      const classes = `message${event.history ? " history" : ""}${placed.mention ? " mention" : ""}${event.undecryptable ? " undecryptable" : ""}`;
      this.views.line(classes, event.ts, parts, { room: event.room, id: event.id, before: placed.before, top: placed.top, page: placed.page });
      if (placed.mention && !event.history) this.notifier.notify("mention", from, event.room, event.text);
    }
    if (placed.pageDone) {
      this.views.pageDone(event.room);
      this.older(); // still short of the box: one more
      this.drawLoading();
    }
    if (!event.history) this.drawList();
  }
}
