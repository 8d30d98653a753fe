// The page's end-to-end rooms (docs/protocol.md, "End-to-end rooms"): one
// MLS group per E2E room on this browser's device, driven by the relay's
// events as every client drives it: the member who made the room creates
// the group (its GroupInfo at epoch 0), `mls-add` fetches the newcomer's
// KeyPackages and commits Adds, `mls-ok` merges this device's commit (then
// the Welcome and the new GroupInfo go up), `mls-refused` drops it and
// retries what is still needed, `mls-remove` is committed before the next
// message, a Welcome joins. A device in an end-to-end room without its
// group that no member adds within EXTERNAL_JOIN_AFTER (nobody online)
// asks `/groupinfo` and joins by External Commit, as the Python client
// does; `mls-ok` makes that group its own (its GroupInfo goes up),
// `mls-refused` waits again. A commit whose answer was lost with the
// connection is settled from the history (e2e-resume.js). Text typed in an E2E room goes out encrypted as
// `/mls ROOM B64`; `mls` events are decrypted and shown. Peers' device keys
// are pinned per name (a new one is a loud warning); `/verify NAME` shows
// the safety number.
//
// No DOM, no socket: the MLS operations (`mls`, the bundle /mls.js or a
// stand-in), `send(text)`, a `store` (IndexedDB, or memory) and `show`
// (lines for a room) are handed in; node tests it against a fake relay
// (tests/web/e2e.test.mjs).
"use strict";

import { resume } from "./e2e-resume.js";
import { safetyNumber } from "./safety.js";

/// KeyPackages uploaded after each hello.
export const KEY_PACKAGES = 3;
/// KeyPackages kept with their private keys (the relay keeps 16 per device).
export const KEPT_PACKAGES = 16;
/// Milliseconds a device in an end-to-end room without its group waits
/// for a member online to add it (a Welcome) before it joins by External
/// Commit from the GroupInfo the relay keeps.
export const EXTERNAL_JOIN_AFTER = 3000;
/// Milliseconds after a reconnect's `myrooms` (the history follows it)
/// within which a commit sent on the dropped connection must show in the
/// history, or be taken as lost and made again.
export const SETTLE_AFTER = 1000;
/// Messages kept decrypted per room, to show again after a reconnect (MLS
/// opens a message once).
export const KEPT_TEXTS = 500;

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export function b64encode(bytes) {
  let s = "";
  for (const c of bytes) s += String.fromCharCode(c);
  return btoa(s);
}

export function b64decode(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function group(state) {
  return { state, pending: null, removals: new Set(), adds: new Set(), queue: [] };
}

// Where a message this device sent is kept: the end of its ciphertext
// (the AEAD tag and what precedes it), unique per message.
function ownKey(data) {
  return `own:${data.slice(-44)}`;
}

/// One device's end-to-end rooms.
export class E2e {
  /// `mls`: the MLS operations; `send(text)`: async, true when sent;
  /// `store`: `{ load(name), save(name, data) }`; `show(room, cls, text,
  /// extra)`: a line in `room` (null: where the person looks).
  constructor({ mls, send, store, show }) {
    this.mls = mls;
    this.send = send;
    this.store = store;
    this.show = show;
    this.name = null;
    this.key = null;
    this.packages = []; // KeyPackage records, oldest first
    this.groups = new Map(); // room -> { state, pending, removals, adds, queue }
    this.texts = new Map(); // room -> Map(id -> { from, text })
    this.pins = new Map(); // name -> [hex keys]
    this.e2eRooms = new Set(); // our rooms that are end-to-end
    this.creating = new Set(); // rooms this page asked to make end-to-end
    this.asked = new Set(); // names whose KeyPackages were asked for
    this.externalAfter = EXTERNAL_JOIN_AFTER;
    this.waiting = new Map(); // room -> timer: a Welcome awaited, then /groupinfo
    this.infoAsked = new Set(); // rooms whose /groupinfo is on its way
    this.joining = new Map(); // room -> { state, commit }: our External Commit, unanswered
    this.unanswered = new Set(); // rooms whose commit went on a connection that dropped
    this.settleAfter = SETTLE_AFTER;
    this.settling = null; // timer: the unanswered commits are settled
    this.held = new Map(); // room -> texts typed while joining, sent once in
  }

  /// Whether MLS is here at all.
  get available() {
    return Boolean(this.mls?.available);
  }

  /// Session opened as `name`: loads (or makes) this device and its groups.
  async open(name) {
    if (!this.available || this.name === name) return;
    this.name = name;
    for (const timer of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    this.infoAsked.clear();
    this.joining.clear();
    this.unanswered.clear();
    clearTimeout(this.settling);
    this.settling = null;
    this.held.clear();
    const kept = await this.store.load(name);
    if (kept?.key) {
      this.key = kept.key;
      this.packages = kept.packages ?? [];
      this.pins = new Map(kept.pins ?? []);
      this.groups = new Map((kept.groups ?? []).map(([room, plain, pending]) => {
        const g = group(this.mls.restore(plain));
        // A commit in flight when the page went: the next connection
        // settles it (hello, then the history).
        if (pending) g.pending = { ...pending, state: this.mls.restore(pending.state), creating: false };
        return [room, g];
      }));
      this.joining = new Map((kept.joining ?? []).map(([room, j]) => [room, { ...j, state: this.mls.restore(j.state) }]));
      this.texts = new Map((kept.texts ?? []).map(([room, list]) => [room, new Map(list)]));
    } else {
      this.key = await this.mls.newSignatureKey();
      this.packages = [];
      this.groups = new Map();
      this.texts = new Map();
      await this.save();
    }
  }

  async save() {
    await this.store.save(this.name, {
      key: this.key,
      packages: this.packages,
      pins: [...this.pins],
      groups: [...this.groups].map(([room, g]) => [room, this.mls.storable(g.state), this.keptPending(g.pending)]),
      joining: [...this.joining].map(([room, j]) => [room, { commit: j.commit, state: this.mls.storable(j.state) }]),
      texts: [...this.texts].map(([room, list]) => [room, [...list]]),
    });
  }

  /// This device's signature key (hex), to show.
  get deviceKey() {
    return this.key ? hex(this.key.publicKey) : "";
  }

  /// After `/hello`: fresh KeyPackages up for this device.
  async hello() {
    if (!this.key) return;
    this.asked.clear();
    // Nothing asked on an earlier connection is answered on this one. A
    // commit sent on it is settled by the room's history (ours in it: the
    // relay took it) or dropped at the next myrooms.
    this.infoAsked.clear();
    clearTimeout(this.settling);
    this.settling = null;
    this.unanswered = new Set(this.joining.keys());
    for (const [room, g] of this.groups) if (g.pending && !g.pending.creating) this.unanswered.add(room);
    for (let i = 0; i < KEY_PACKAGES; i += 1) {
      const made = await this.mls.keyPackage(this.name, this.key);
      this.packages.push(made.record);
      await this.send(`/keypackage ${b64encode(made.bytes)}`);
    }
    this.packages = this.packages.slice(-KEPT_PACKAGES);
    await this.save();
  }

  /// Whether `room` is end-to-end.
  isE2e(room) {
    return this.e2eRooms.has(room);
  }

  /// A line typed: `/join ROOM --e2e` marks ROOM as ours to create.
  typed(wire) {
    const made = /^\/join\s+#?(\S+)\s+--e2e\s*$/i.exec(wire);
    if (made) this.creating.add(made[1].toLowerCase());
  }

  /// `myrooms`: `e2e` the names of our rooms that are end-to-end, `mine`
  /// all our rooms (a group of a room we left is dropped); the rooms this
  /// page asked to make end-to-end get their group.
  async rooms(e2e, mine) {
    this.e2eRooms = new Set(Array.isArray(e2e) ? e2e : []);
    if (!this.available) return;
    this.settleLater();
    if (Array.isArray(mine)) {
      const dropped = [...this.groups.keys()].filter((room) => !mine.includes(room));
      for (const room of dropped) this.groups.delete(room);
      if (dropped.length > 0) await this.save();
    }
    for (const room of this.groups.keys()) this.e2eRooms.add(room);
    for (const room of this.e2eRooms) {
      if (!this.creating.has(room)) continue;
      this.creating.delete(room);
      if (this.groups.has(room)) continue;
      const g = group(await this.mls.create(room, this.name, this.key));
      g.pending = { state: g.state, creating: true, welcome: null };
      this.groups.set(room, g);
      await this.send(`/mls ${room} ${b64encode(await this.mls.groupInfo(g.state))}`);
    }
    for (const room of this.e2eRooms) this.awaitGroup(room);
  }

  /// A `rooms` answer: those of ours listed with mode "e2e" are end-to-end.
  listed(entries) {
    for (const entry of entries) {
      if (entry.mode === "e2e" && entry.joined) {
        this.e2eRooms.add(entry.room);
        this.awaitGroup(entry.room);
      }
    }
  }

  // `room` is end-to-end and this device has no group there: unless a
  // Welcome comes within `externalAfter`, it asks for the GroupInfo.
  awaitGroup(room) {
    if (!this.available || !this.key || this.groups.has(room) || this.joining.has(room)
      || this.waiting.has(room) || this.creating.has(room)) return;
    const timer = setTimeout(() => {
      this.waiting.delete(room);
      this.askGroupInfo(room).catch((error) => this.show(room, "error", `! #${room}: ${error.message}`));
    }, this.externalAfter);
    timer.unref?.(); // node (the tests): a wait keeps no process alive
    this.waiting.set(room, timer);
  }

  async askGroupInfo(room) {
    if (!this.e2eRooms.has(room) || this.groups.has(room) || this.joining.has(room)) return;
    this.infoAsked.add(room);
    if (!(await this.send(`/groupinfo ${room}`))) this.infoAsked.delete(room);
  }

  /// The relay's answer to our `/groupinfo` when it has none now (its last
  /// committer has not sent one yet): the wait starts again. True if the
  /// event was that.
  noGroupInfo(event) {
    const { room } = event;
    if (event.kind !== "error" || !this.infoAsked.has(room) || !String(event.text).includes("has no GroupInfo")) return false;
    this.infoAsked.delete(room);
    this.awaitGroup(room);
    return true;
  }

  // The GroupInfo asked for: this device joins by External Commit (ts-mls
  // checks its signature and tree; mls.joinExternal its room).
  async groupInfo(room, data) {
    if (!this.infoAsked.delete(room) || typeof data !== "string") return;
    if (this.groups.has(room) || this.joining.has(room)) return;
    let made;
    try {
      made = await this.mls.joinExternal(room, b64decode(data), this.name, this.key);
    } catch (error) {
      this.show(room, "error", `! #${room}'s GroupInfo from the relay did not check: not joined (${error.message})`);
      return;
    }
    const commit = b64encode(made.commit);
    this.joining.set(room, { state: made.state, commit });
    await this.save();
    await this.send(`/mls ${room} ${commit}`);
  }

  /// One relay event of the E2E kinds; false for any other kind.
  async onEvent(event) {
    if (!this.available) return false;
    const room = event.room;
    switch (event.kind) {
      case "mls": await this.incoming(event); return true;
      case "mls-ok": await this.accepted(room); return true;
      case "mls-refused": await this.refused(room, event.text); return true;
      case "mls-add": {
        const g = this.groups.get(room);
        if (g) {
          g.adds.add(event.name);
          await this.drive(room);
        }
        return true;
      }
      case "mls-remove": {
        const g = this.groups.get(room);
        if (g) g.removals.add(event.name);
        this.show(room, "notice", `* ${event.name} is to be removed from #${room}'s group: your next message commits that first`);
        return true;
      }
      case "keypackages": await this.keyPackages(event.name, event.packages ?? []); return true;
      case "groupinfo": await this.groupInfo(room, event.data); return true;
      case "error": return this.noGroupInfo(event);
      default: return false;
    }
  }

  // Does what `room`'s group still needs, unless a commit is in flight:
  // asks for the KeyPackages of names to add.
  async drive(room) {
    const g = this.groups.get(room);
    if (!g || g.pending) return;
    for (const name of g.adds) {
      if (!this.asked.has(name)) {
        this.asked.add(name);
        await this.send(`/keypackages ${name}`);
      }
    }
  }

  async keyPackages(name, packages) {
    this.asked.delete(name);
    for (const [room, g] of this.groups) {
      if (!g.adds.has(name) || g.pending) continue;
      const inGroup = new Set(this.mls.members(g.state).map((m) => hex(m.signatureKey)));
      const fresh = [];
      for (const text of packages) {
        try {
          const bytes = b64decode(text);
          const owner = this.mls.keyPackageOwner(bytes);
          if (owner.name === name && !inGroup.has(hex(owner.signatureKey))) fresh.push(bytes);
        } catch {
          this.show(room, "error", `! a KeyPackage of ${name} did not parse: not added`);
        }
      }
      g.adds.delete(name);
      if (fresh.length === 0) continue;
      await this.commit(room, g, fresh, [], [name]);
      return; // the KeyPackages are used: another room asks again
    }
  }

  // `adding`: the names whose KeyPackages `adds` are (asked again if the
  // commit is lost with the connection).
  async commit(room, g, adds, removes, adding = []) {
    const made = await this.mls.commit(g.state, adds, removes);
    const commit = b64encode(made.commit);
    g.pending = { state: made.state, welcome: made.welcome, creating: false, removes, adding, commit };
    await this.save(); // a page closed before the answer settles it when it opens again
    await this.send(`/mls ${room} ${commit}`);
  }

  async accepted(room) {
    if (this.joining.has(room)) {
      await this.joinedExternally(room);
      return;
    }
    const g = this.groups.get(room);
    if (!g?.pending) return;
    const { pending } = g;
    g.pending = null;
    g.state = pending.state;
    g.removals.clear(); // any commit taken ends the relay's pending removal
    if (pending.creating) {
      this.show(room, "notice", `* #${room} is end-to-end: this device made its group`);
    } else {
      if (pending.welcome) await this.send(`/mls ${room} ${b64encode(pending.welcome)}`);
      await this.send(`/mls ${room} ${b64encode(await this.mls.groupInfo(g.state))}`);
    }
    await this.membersChanged(room);
    await this.save();
    await this.flush(room);
    await this.drive(room);
  }

  // Our External Commit was taken: its group is this device's.
  async joinedExternally(room) {
    const { state } = this.joining.get(room);
    this.joining.delete(room);
    if (this.groups.has(room)) return; // a Welcome came first (that commit won)
    const g = group(state);
    g.queue = this.held.get(room) ?? [];
    this.held.delete(room);
    this.groups.set(room, g);
    this.show(room, "notice", `* this device joined #${room}'s group by itself (no member was online to add it): you read from now on, not what was said before`);
    await this.send(`/mls ${room} ${b64encode(await this.mls.groupInfo(g.state))}`);
    await this.membersChanged(room);
    await this.save();
    await this.flush(room);
    await this.drive(room);
  }

  async refused(room, text) {
    if (this.joining.has(room)) {
      // Another commit took the epoch first: a Welcome, or a fresh GroupInfo.
      this.joining.delete(room);
      this.awaitGroup(room);
      return;
    }
    const g = this.groups.get(room);
    if (!g?.pending) {
      this.show(room, "error", text ?? "refused");
      return;
    }
    const { pending } = g;
    g.pending = null;
    if (pending?.creating) {
      // Someone else's group is there: a Welcome brings us in.
      this.groups.delete(room);
      this.show(room, "notice", `* #${room} already has its group: waiting for a member online to add this device (with none, it joins by itself)`);
      await this.save();
      this.awaitGroup(room);
      return;
    }
    // The commit that won came before this answer; what is still needed
    // is done again.
    await this.flush(room);
    await this.drive(room);
  }

  /// Sends the texts typed while a commit was in flight.
  async flush(room) {
    const g = this.groups.get(room);
    if (!g) return;
    while (g.queue.length > 0 && !g.pending) {
      const done = await this.say(room, g.queue.shift());
      if (done.error) this.show(room, "error", done.error);
    }
  }

  /// Text typed in E2E room `room`: encrypted and sent (a pending removal
  /// is committed first, the text held until it is taken). Returns
  /// `{ sent }`, `{ queued }` or `{ error }`; the caller shows the text.
  async say(room, text) {
    const g = this.groups.get(room);
    if (!g && this.joining.has(room)) {
      if (!this.held.has(room)) this.held.set(room, []);
      this.held.get(room).push(text);
      return { queued: true };
    }
    if (!g) return { error: `not in #${room}'s group yet: a member online adds this device, or it joins by itself if none is` };
    if (g.pending) {
      g.queue.push(text);
      return { queued: true };
    }
    if (g.removals.size > 0) {
      g.queue.push(text);
      await this.commit(room, g, [], [...g.removals]);
      return { queued: true };
    }
    const made = await this.mls.encrypt(g.state, text);
    g.state = made.state;
    const data = b64encode(made.bytes);
    // The relay echoes nothing back, but gives it again as history: known
    // then by its ciphertext (MLS does not open a device's own message).
    this.keep(room, ownKey(data), this.name, text);
    await this.save();
    if (!(await this.send(`/mls ${room} ${data}`))) return { error: "not connected: the message was not sent" };
    return { sent: true };
  }

  async incoming(event) {
    const { room } = event;
    let bytes;
    let what;
    try {
      bytes = b64decode(event.data ?? "");
      what = this.mls.inspect(bytes);
    } catch {
      this.show(room, "error", `! a message in #${room} is not MLS: not shown`);
      return;
    }
    if (what.kind === "welcome") {
      await this.welcome(room, bytes);
      return;
    }
    if (what.kind === "commit" && (await this.ownCommitSeen(room, event))) return;
    const g = this.groups.get(room);
    const texts = this.texts.get(room);
    const kept = (Number.isSafeInteger(event.id) ? texts?.get(event.id) : undefined)
      ?? (event.from === this.name ? texts?.get(ownKey(event.data ?? "")) : undefined);
    if (what.kind === "application") {
      if (kept) {
        this.showText({ ...event, from: kept.from }, kept.text);
        return;
      }
      let text = null;
      let sender = null;
      if (g) {
        try {
          const done = await this.mls.process(g.state, bytes);
          g.state = done.state;
          text = done.text;
          sender = done.sender;
        } catch {
          text = null;
        }
      }
      if (text === null) {
        const who = event.from === this.name ? "sent before this device joined" : "sent before you joined";
        this.showText(event, null, `(encrypted: ${who})`);
        return;
      }
      if (sender !== event.from) {
        // The group's word on who sent it wins over the relay's.
        this.show(room, "error warning", `! the relay said ${event.from ?? "nobody"} sent the next message; the group says ${sender ?? "no member"}`);
        event = { ...event, from: sender };
      }
      this.keep(room, event.id, event.from, text);
      this.showText(event, text);
      await this.save();
      return;
    }
    if (event.history) {
      // Shown (dimmed) so that a page of history counts it. What it
      // changed is in the group already, or was before this device, or
      // came while this device was away: then it is for the group's
      // epoch, and taken below.
      this.showText(event, null, "(the group changed here)");
      if (!g || what.epoch !== this.mls.epoch(g.state)) return;
    }
    if (!g) return;
    try {
      const done = await this.mls.process(g.state, bytes);
      if (done.removed) {
        this.groups.delete(room);
        this.show(room, "notice", `* this device left #${room}'s group`);
        await this.save();
        return;
      }
      g.state = done.state;
    } catch {
      return; // a commit for an epoch this device is past (its own, or one it joined after)
    }
    await this.membersChanged(room);
    // Devices a commit of another brought in are no longer to add.
    const names = new Set(this.mls.members(g.state).map((m) => m.name));
    for (const name of g.removals) if (!names.has(name)) g.removals.delete(name);
    await this.save();
  }

  keep(room, id, from, text) {
    if (!Number.isSafeInteger(id) && typeof id !== "string") return;
    if (!this.texts.has(room)) this.texts.set(room, new Map());
    const list = this.texts.get(room);
    list.set(id, { from, text });
    while (list.size > KEPT_TEXTS) list.delete(list.keys().next().value);
  }

  showText(event, text, instead = null) {
    this.show(event.room, instead ? "message undecryptable" : "message", text, { event, instead });
  }

  async welcome(room, bytes) {
    let joined;
    try {
      joined = await this.mls.join(bytes, this.packages);
    } catch {
      this.show(room, "error", `! a Welcome to #${room} did not open with this device's KeyPackages`);
      return;
    }
    // The record stays (among the last KEPT_PACKAGES): the relay hands a
    // device's last KeyPackage out again rather than none.
    const g = group(joined.state);
    const old = this.groups.get(room);
    if (old) g.queue = old.queue;
    g.queue.push(...(this.held.get(room) ?? []));
    this.held.delete(room);
    this.groups.set(room, g);
    this.show(room, "notice", `* this device joined #${room}'s group: you read from now on, not what was said before`);
    await this.membersChanged(room);
    await this.save();
    await this.flush(room);
  }

  // Pins each member's device keys (trust on first use per name); a key
  // new for a name already pinned is a loud warning.
  async membersChanged(room) {
    const g = this.groups.get(room);
    if (!g) return;
    const byName = new Map();
    for (const m of this.mls.members(g.state)) {
      if (!byName.has(m.name)) byName.set(m.name, []);
      byName.get(m.name).push(hex(m.signatureKey));
    }
    for (const [name, keys] of byName) {
      const pinned = this.pins.get(name);
      const ours = name === this.name ? [this.deviceKey] : [];
      if (!pinned) {
        this.pins.set(name, [...new Set([...keys, ...ours])].sort());
        continue;
      }
      const fresh = keys.filter((k) => !pinned.includes(k));
      for (const key of fresh) {
        this.show(room, "error warning", `! ${name} has a new device (key ${key.slice(0, 8)}…) — /verify ${name}`);
      }
      if (fresh.length > 0) this.pins.set(name, [...pinned, ...fresh].sort());
    }
  }

  /// `/verify NAME`: the safety number of this member and NAME over the
  /// device keys pinned for each, or `{ error }`.
  async verify(name) {
    const theirs = this.pins.get(name);
    if (!theirs || theirs.length === 0) return { error: `no device of ${name} seen yet in an end-to-end room` };
    const mine = [...new Set([...(this.pins.get(this.name) ?? []), this.deviceKey])];
    const bytes = (list) => list.map((k) => Uint8Array.from(k.match(/../g), (h) => parseInt(h, 16)));
    const number = await safetyNumber([this.name, bytes(mine)], [name, bytes(theirs)]);
    return { number, devices: theirs.length };
  }
}

// Settling a commit sent on a dropped connection (e2e-resume.js).
Object.assign(E2e.prototype, resume);
