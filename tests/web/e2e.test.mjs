// The page's end-to-end rooms in node: the safety number against the Rust
// crate's vector (crates/e2e/src/safety.rs) and one computed with Python's
// hashlib, and e2e.js's group-driving state machine with real ts-mls (the
// page's web-mls package) against a fake relay that plays the Delivery
// Service as crates/core does: the first GroupInfo makes the group, the
// first commit per epoch wins (mls-ok / mls-refused), mls-add and
// mls-remove, removals held until committed, Welcomes routed to the device
// added, the GroupInfo kept for `/groupinfo`, nothing delivered to a member
// who is away (the room's history instead, when they come back). The
// External Commit against openmls is tests/web/mls-external.test.mjs. Chromium against the real relay is tests/python/test_web_e2e.py.
//
// The ts-mls tests need crates/server/web-mls/node_modules (`npm ci` there;
// scripts/test does it): without it they are skipped, except under
// CI=true, where they fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { safetyHalf, safetyNumber } from '../../crates/server/src/web/page/safety.js';
import { E2e, b64decode } from '../../crates/server/src/web/page/e2e.js';

const WEB_MLS = fileURLToPath(new URL('../../crates/server/web-mls/', import.meta.url));
const HAVE_MLS = existsSync(`${WEB_MLS}node_modules/ts-mls`);
const skipMls = HAVE_MLS || process.env.CI === 'true' ? false : 'crates/server/web-mls has no node_modules: run npm ci there';
const fill = (n, byte) => new Uint8Array(n).fill(byte);

test('a safety half is the Rust crate\'s vector', async () => {
  // crates/e2e/src/safety.rs, half_matches_an_independent_computation.
  assert.equal(await safetyHalf('alice', [fill(32, 0xbb), fill(32, 0x11)]), '582451837415430246422794553824');
  assert.equal(await safetyHalf('alice', [fill(32, 0x11), fill(32, 0xbb), fill(32, 0x11)]), '582451837415430246422794553824');
});

test('a safety number is both halves in name order, grouped, the same from both sides', async () => {
  const a = ['alice', [fill(32, 1)]];
  const b = ['bob', [fill(32, 2), fill(32, 3)]];
  // Python: hashlib.sha512 as safety.rs defines it.
  const expected = '73922 18546 63983 48504 00644 83191 62077 08197 45026 15629 54708 17512';
  assert.equal(await safetyNumber(a, b), expected);
  assert.equal(await safetyNumber(b, a), expected);
  assert.notEqual(await safetyNumber(a, ['bob', [fill(32, 2), fill(32, 4)]]), expected);
});

/** The Delivery Service as crates/core plays it, over e2e.js devices. */
class FakeRelay {
  constructor(mls) {
    this.mls = mls;
    this.rooms = new Map();
    this.clients = new Map();
    this.packages = new Map(); // name -> [b64]
    this.tasks = [];
    this.ids = 0;
    this.applications = []; // every application message relayed
    this.refusals = 0;
    this.away = new Set(); // names not connected: nothing reaches them
  }

  connect(name) {
    const lines = [];
    const e2e = new E2e({
      mls: this.mls,
      send: async (text) => { this.tasks.push(() => this.command(name, text)); return true; },
      store: new MemoryStore(),
      show: (room, cls, text, extra) => lines.push({ room, cls, text: text ?? extra?.instead, from: extra?.event?.from }),
    });
    const client = { name, e2e, lines, rooms: new Set() };
    this.clients.set(name, client);
    return client;
  }

  to(name, event) {
    if (this.away.has(name)) return;
    this.tasks.push(() => this.clients.get(name).e2e.onEvent(event));
  }

  async pump() {
    for (let n = 0; this.tasks.length > 0; n += 1) {
      assert.ok(n < 10000, 'the relay and its devices never went quiet');
      await this.tasks.shift()();
    }
  }

  room(name) {
    if (!this.rooms.has(name)) {
      this.rooms.set(name, {
        members: new Set(), created: false, epoch: 0, removals: new Set(), adding: new Set(), info: null, history: [],
      });
    }
    return this.rooms.get(name);
  }

  async join(name, roomName, e2eFlag) {
    const client = this.clients.get(name);
    const room = this.room(roomName);
    room.members.add(name);
    client.rooms.add(roomName);
    if (e2eFlag) client.e2e.typed(`/join ${roomName} --e2e`);
    if (room.created) {
      room.adding.add(name);
      for (const other of room.members) if (other !== name) this.to(other, { kind: 'mls-add', room: roomName, name });
    }
    this.tasks.push(() => client.e2e.rooms([...client.rooms], [...client.rooms]));
    await this.pump();
  }

  async part(name, roomName) {
    const room = this.room(roomName);
    room.members.delete(name);
    const client = this.clients.get(name);
    client.rooms.delete(roomName);
    this.tasks.push(() => client.e2e.rooms([...client.rooms], [...client.rooms]));
    room.removals.add(name);
    for (const other of room.members) this.to(other, { kind: 'mls-remove', room: roomName, name });
    await this.pump();
  }

  /// `name` connects again: as the relay answers `/hello`, `myrooms`,
  /// then each of its rooms' history.
  async back(name) {
    this.away.delete(name);
    const client = this.clients.get(name);
    await client.e2e.hello();
    this.tasks.push(() => client.e2e.rooms([...client.rooms], [...client.rooms]));
    for (const roomName of client.rooms) {
      for (const event of this.room(roomName).history) this.to(name, { ...event, history: true });
    }
    await this.pump();
  }

  /// Pumps until `done()` holds, while timers (a device's wait for a
  /// Welcome) bring in more work; fails after 5 s.
  async until(done, what) {
    for (let i = 0; i < 250; i += 1) {
      await this.pump();
      if (done()) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.fail(`not within 5 s: ${what}`);
  }

  refuse(name, roomName, text) {
    this.refusals += 1;
    this.to(name, { kind: 'mls-refused', room: roomName, epoch: this.room(roomName).epoch, text });
  }

  command(name, text) {
    const [word, first, second] = text.split(' ');
    if (word === '/keypackage') {
      if (!this.packages.has(name)) this.packages.set(name, []);
      this.packages.get(name).push(first);
    } else if (word === '/keypackages') {
      const kept = this.packages.get(first) ?? [];
      const given = kept.length > 1 ? kept.shift() : kept[0];
      this.to(name, { kind: 'keypackages', name: first, packages: given ? [given] : [] });
    } else if (word === '/groupinfo') {
      const room = this.room(first);
      const info = this.infoFor?.(first) ?? room.info;
      this.to(name, info ? { kind: 'groupinfo', room: first, epoch: room.epoch, data: info } : { kind: 'error', room: first, text: `error: ${first} has no GroupInfo now; ask again later` });
    } else if (word === '/mls') {
      this.group(name, first, second);
    } else {
      throw new Error(`unexpected command ${text}`);
    }
  }

  group(name, roomName, data) {
    const room = this.room(roomName);
    const what = this.mls.inspect(b64decode(data));
    if (this.lose?.(name, what)) return; // lost on the way, with the connection
    const others = [...room.members].filter((n) => n !== name);
    const relay = () => {
      this.ids += 1;
      const event = { kind: 'mls', room: roomName, from: this.forge ?? name, data, id: this.ids, history: false };
      if (what.kind === 'application') this.applications.push(event);
      room.history.push(event);
      for (const other of others) this.to(other, event);
    };
    if (what.kind === 'groupinfo') {
      if (!room.created && what.epoch === 0) {
        room.created = true;
        room.info = data;
        this.to(name, { kind: 'mls-ok', room: roomName, epoch: 0 });
      } else if (what.epoch === room.epoch) {
        room.info = data; // kept for External Commits
      } else if (what.epoch === 0) {
        this.refuse(name, roomName, "error: the room's group exists: join it (/groupinfo ROOM)");
      }
    } else if (what.kind === 'commit') {
      if (what.epoch !== room.epoch || this.refuseCommit?.(name)) return this.refuse(name, roomName, 'error: a commit for another epoch');
      room.epoch += 1;
      room.removals.clear();
      relay();
      this.to(name, { kind: 'mls-ok', room: roomName, epoch: room.epoch });
    } else if (what.kind === 'application') {
      if (room.removals.size > 0) return this.refuse(name, roomName, `error: ${[...room.removals][0]} is to be removed: commit that before sending`);
      if (what.epoch !== room.epoch && what.epoch !== room.epoch - 1) return this.refuse(name, roomName, 'error: old epoch');
      relay();
    } else if (what.kind === 'welcome') {
      for (const added of room.adding) this.to(added, { kind: 'mls', room: roomName, from: name, data, id: null, history: false });
      room.adding.clear();
    }
  }
}

class MemoryStore {
  constructor() { this.kept = new Map(); }
  async load(name) { return this.kept.has(name) ? structuredClone(this.kept.get(name)) : null; }
  async save(name, data) { this.kept.set(name, structuredClone(data)); }
}

const said = (client, room) => client.lines.filter((l) => l.room === room && l.cls === 'message').map((l) => l.text);

async function say(relay, client, room, text) {
  const result = await client.e2e.say(room, text);
  await relay.pump();
  return result;
}

async function world(names) {
  const mls = await import(`${WEB_MLS}mls.mjs`);
  const relay = new FakeRelay(mls);
  const clients = {};
  for (const name of names) {
    clients[name] = relay.connect(name);
    await clients[name].e2e.open(name);
    await clients[name].e2e.hello();
  }
  await relay.pump();
  return { relay, mls, ...clients };
}

test('the maker creates the group, a newcomer is added by Welcome, messages open both ways', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  await relay.join('alice', 'dev', true);
  assert.ok(relay.room('dev').created, 'alice made the group');
  assert.ok(alice.lines.some((l) => l.text.includes('this device made its group')));
  await relay.join('bob', 'dev', false);
  assert.equal(relay.room('dev').epoch, 1, 'one commit added bob');
  assert.ok(bob.lines.some((l) => l.text.includes("joined #dev's group")), JSON.stringify(bob.lines));
  assert.deepEqual((await say(relay, alice, 'dev', 'hello bob')).sent, true);
  assert.deepEqual(said(bob, 'dev'), ['hello bob']);
  await say(relay, bob, 'dev', 'hi alice');
  assert.deepEqual(said(alice, 'dev'), ['hi alice']);
  // Both sides compute one safety number over the pinned keys.
  const fromAlice = await alice.e2e.verify('bob');
  const fromBob = await bob.e2e.verify('alice');
  assert.match(fromAlice.number, /^(\d{5} ){11}\d{5}$/);
  assert.equal(fromAlice.number, fromBob.number);
  assert.ok((await alice.e2e.verify('nobody')).error);
  // A relay that names the wrong sender is contradicted by the group.
  relay.forge = 'mallory';
  await say(relay, alice, 'dev', 'who sent this?');
  assert.ok(bob.lines.some((l) => l.text === '! the relay said mallory sent the next message; the group says alice'), JSON.stringify(bob.lines));
  assert.deepEqual(bob.lines.at(-1), { room: 'dev', cls: 'message', text: 'who sent this?', from: 'alice' });
});

test('two members race to add a third: one commit wins, the other is refused and adds nobody twice', { skip: skipMls }, async () => {
  const { relay, alice, bob, carol } = await world(['alice', 'bob', 'carol']);
  await relay.join('alice', 'dev', true);
  await relay.join('bob', 'dev', false);
  const before = relay.refusals;
  await relay.join('carol', 'dev', false);
  assert.equal(relay.refusals - before, 1, 'both committed the add: one was refused');
  assert.equal(relay.room('dev').epoch, 2, 'exactly one more commit: carol added once');
  const names = (c) => relay.mls.members(c.e2e.groups.get('dev').state).map((m) => m.name).sort();
  for (const c of [alice, bob, carol]) assert.deepEqual(names(c), ['alice', 'bob', 'carol']);
  await say(relay, carol, 'dev', 'hi all');
  assert.deepEqual(said(alice, 'dev'), ['hi all']);
  assert.deepEqual(said(bob, 'dev'), ['hi all']);
});

test('a member who left is removed by the next sender before its message; history before joining is marked', { skip: skipMls }, async () => {
  const { relay, alice, bob, carol } = await world(['alice', 'bob', 'carol']);
  await relay.join('alice', 'dev', true);
  await relay.join('bob', 'dev', false);
  await say(relay, alice, 'dev', 'before carol');
  await relay.join('carol', 'dev', false);
  await relay.part('bob', 'dev');
  assert.ok(alice.lines.some((l) => l.text.includes('bob is to be removed')));
  const result = await say(relay, alice, 'dev', 'bob is gone');
  assert.equal(result.queued, true, 'held until the removal is committed');
  assert.deepEqual(said(carol, 'dev'), ['bob is gone']);
  assert.deepEqual(relay.mls.members(alice.e2e.groups.get('dev').state).map((m) => m.name), ['alice', 'carol']);
  assert.ok(!bob.e2e.groups.has('dev'), 'bob dropped the group of the room he left');
  // The message from before carol joined, shown to her as history.
  await carol.e2e.onEvent({ ...relay.applications[0], history: true });
  assert.ok(carol.lines.some((l) => l.cls === 'message undecryptable' && l.text.includes('sent before you joined')));
  // alice's own message, given back to her as history, is known by its ciphertext.
  await alice.e2e.onEvent({ ...relay.applications[0], history: true });
  assert.deepEqual(alice.lines.at(-1), { room: 'dev', cls: 'message', text: 'before carol', from: 'alice' });
});

test('a device kept in the store opens again with its groups; a new device of a pinned name is a warning', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  await relay.join('alice', 'dev', true);
  await relay.join('bob', 'dev', false);
  // bob's browser reloads: the same device, its group from the store.
  const again = new E2e({ mls: relay.mls, send: bob.e2e.send, store: bob.e2e.store, show: (room, cls, text) => bob.lines.push({ room, cls, text }) });
  await again.open('bob');
  bob.e2e = again;
  await say(relay, alice, 'dev', 'after the reload');
  assert.deepEqual(said(bob, 'dev'), ['after the reload']);
  // bob on a second browser: a new device of a name alice pinned.
  const second = relay.connect('bob2');
  const device = new E2e({ mls: relay.mls, send: second.e2e.send, store: new MemoryStore(), show: () => {} });
  await device.open('bob');
  const made = await relay.mls.keyPackage('bob', device.key);
  const g = alice.e2e.groups.get('dev');
  const commit = await relay.mls.commit(g.state, [made.bytes], []);
  g.pending = { state: commit.state, welcome: null, creating: false };
  await alice.e2e.onEvent({ kind: 'mls-ok', room: 'dev', epoch: 2 });
  assert.ok(alice.lines.some((l) => l.cls.includes('warning') && l.text.startsWith('! bob has a new device')), JSON.stringify(alice.lines));
});

test('with nobody online a newcomer joins by External Commit; the maker, back, takes it from history', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  bob.e2e.externalAfter = 20;
  await relay.join('alice', 'dev', true);
  await say(relay, alice, 'dev', 'before bob');
  relay.away.add('alice');
  await relay.join('bob', 'dev', false);
  assert.ok(!bob.e2e.groups.has('dev'), 'no member online added bob');
  // His first External Commit loses the epoch (another commit came first): he waits and tries again.
  let refused = 0;
  relay.refuseCommit = (name) => name === 'bob' && refused++ === 0;
  await relay.until(() => bob.e2e.groups.has('dev'), "bob's External Commit taken");
  assert.equal(refused, 2, 'two External Commits: the first refused, the second taken');
  assert.equal(relay.room('dev').epoch, 1);
  assert.ok(bob.lines.some((l) => l.text.startsWith("* this device joined #dev's group by itself")), JSON.stringify(bob.lines));
  assert.equal(relay.mls.inspect(b64decode(relay.room('dev').info)).epoch, 1, "bob's GroupInfo of epoch 1 is up");
  await say(relay, bob, 'dev', 'alone in here');
  await relay.back('alice');
  assert.deepEqual(said(alice, 'dev'), ['before bob', 'alone in here'], 'her own from her store, his opened');
  assert.deepEqual(relay.mls.members(alice.e2e.groups.get('dev').state).map((m) => m.name), ['alice', 'bob']);
  await say(relay, alice, 'dev', 'welcome, bob');
  assert.deepEqual(said(bob, 'dev'), ['welcome, bob']);
});

// alice's add of bob is taken, but her connection drops before its mls-ok
// reaches her: back, the room's history shows her commit, so it is
// finished (bob's Welcome goes, the GroupInfo of epoch 1 goes up).
// Before, her room waited for an answer that never came.
test('an add taken while the connection was down is found in the history', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  await relay.join('alice', 'dev', true);
  relay.refuseCommit = (name) => {
    if (name === 'alice') relay.away.add('alice'); // the mls-ok is lost
    return false;
  };
  await relay.join('bob', 'dev', false);
  relay.refuseCommit = null;
  assert.equal(relay.room('dev').epoch, 1, "alice's add was taken");
  assert.ok(!bob.e2e.groups.has('dev'), 'no Welcome yet');
  await relay.back('alice');
  assert.ok(bob.e2e.groups.has('dev'), JSON.stringify(alice.lines));
  assert.equal(relay.mls.inspect(b64decode(relay.room('dev').info)).epoch, 1, 'the GroupInfo of epoch 1 is up');
  assert.equal(relay.room('dev').epoch, 1, 'no second commit');
  await say(relay, alice, 'dev', 'after the drop');
  assert.deepEqual(said(bob, 'dev'), ['after the drop']);
});

// bob, alone, joins by External Commit; it is taken, but his connection
// drops before its mls-ok reaches him: back, the history shows his commit
// and the group is his (before, he dropped it and tried again against a
// GroupInfo of the epoch before, refused for ever).
test('an External Commit taken while the connection was down is found in the history', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  bob.e2e.externalAfter = 20;
  await relay.join('alice', 'dev', true);
  relay.away.add('alice');
  relay.refuseCommit = (name) => {
    if (name === 'bob') relay.away.add('bob');
    return false;
  };
  await relay.join('bob', 'dev', false);
  await relay.until(() => relay.room('dev').epoch === 1, "bob's External Commit taken");
  relay.refuseCommit = null;
  assert.ok(!bob.e2e.groups.has('dev'), 'the mls-ok was lost');
  await relay.back('bob');
  await relay.until(() => bob.e2e.groups.has('dev'), 'the group is his');
  assert.ok(bob.lines.some((l) => l.text.startsWith("* this device joined #dev's group by itself")), JSON.stringify(bob.lines));
  assert.equal(relay.mls.inspect(b64decode(relay.room('dev').info)).epoch, 1, "bob's GroupInfo of epoch 1 is up");
  assert.equal(relay.room('dev').epoch, 1, 'no second commit');
  await relay.back('alice');
  await say(relay, bob, 'dev', 'one leaf only');
  assert.deepEqual(said(alice, 'dev'), ['one leaf only']);
  assert.deepEqual(relay.mls.members(alice.e2e.groups.get('dev').state).map((m) => m.name), ['alice', 'bob']);
});

// As above, but alice's page is reloaded before the answer could come: the
// commit in flight was kept in the store with its Welcome, so the next
// connection finishes it from the history, and bob gets his Welcome.
test('an add taken before the page was reloaded is finished from the history', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  await relay.join('alice', 'dev', true);
  relay.refuseCommit = (name) => {
    if (name === 'alice') relay.away.add('alice');
    return false;
  };
  await relay.join('bob', 'dev', false);
  relay.refuseCommit = null;
  const again = new E2e({ mls: relay.mls, send: alice.e2e.send, store: alice.e2e.store, show: (room, cls, text) => alice.lines.push({ room, cls, text }) });
  await again.open('alice');
  alice.e2e = again;
  await relay.back('alice');
  assert.ok(bob.e2e.groups.has('dev'), JSON.stringify(alice.lines));
  assert.equal(relay.room('dev').epoch, 1, 'no second commit');
  await say(relay, alice, 'dev', 'after the reload');
  assert.deepEqual(said(bob, 'dev'), ['after the reload']);
});

// alice's add of bob never reaches the relay: back, the history does not
// show it, so it is made again at myrooms and bob is added.
test('an add lost with the connection is made again', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  await relay.join('alice', 'dev', true);
  relay.lose = (name, what) => {
    if (name !== 'alice' || what.kind !== 'commit') return false;
    relay.away.add('alice');
    relay.lose = null;
    return true;
  };
  await relay.join('bob', 'dev', false);
  assert.equal(relay.room('dev').epoch, 0, 'the commit was lost');
  alice.e2e.settleAfter = 20;
  await relay.back('alice');
  assert.ok(!alice.lines.some((l) => l.text.includes('lost with the connection')), 'not before the history had its time');
  await relay.until(() => alice.lines.some((l) => l.text.includes('lost with the connection; making it again')), 'the lost add settled');
  await relay.until(() => bob.e2e.groups.has('dev'), 'bob added');
  assert.equal(relay.room('dev').epoch, 1);
  assert.ok(bob.e2e.groups.has('dev'), JSON.stringify(bob.lines));
  await say(relay, alice, 'dev', 'made again');
  assert.deepEqual(said(bob, 'dev'), ['made again']);
});

// The relay has no GroupInfo now (its last committer has not sent one):
// bob waits and asks again, and joins once one is there. Before, he never
// asked again.
test('a relay with no GroupInfo yet is asked again after the wait', { skip: skipMls }, async () => {
  const { relay, alice, bob } = await world(['alice', 'bob']);
  await relay.join('alice', 'dev', true);
  relay.away.add('alice');
  const kept = relay.room('dev').info;
  relay.room('dev').info = null;
  let asked = 0;
  relay.infoFor = () => {
    asked += 1;
    return asked >= 3 ? kept : null;
  };
  bob.e2e.externalAfter = 20;
  await relay.join('bob', 'dev', false);
  await relay.until(() => bob.e2e.groups.has('dev'), 'bob joined once the GroupInfo was there');
  assert.equal(asked, 3, 'asked three times: twice there was none');
  assert.ok(!alice.lines.some((l) => l.cls === 'error'));
});

test('a GroupInfo that is not the room\'s, or does not verify, joins nothing', { skip: skipMls }, async () => {
  const { relay, bob } = await world(['alice', 'bob']);
  await relay.join('alice', 'other', true);
  await relay.join('alice', 'dev', true);
  relay.away.add('alice');
  const tampered = b64decode(relay.room('dev').info);
  tampered[tampered.length - 1] ^= 1; // the signature's last byte
  const given = [relay.room('other').info, btoa(String.fromCharCode(...tampered))];
  relay.infoFor = () => given.shift();
  bob.e2e.externalAfter = 20;
  await relay.join('bob', 'dev', false);
  await relay.until(() => bob.lines.length >= 1, 'the first GroupInfo refused');
  assert.match(bob.lines[0].text, /^! #dev's GroupInfo from the relay did not check: not joined \(not #dev's GroupInfo\)$/);
  await bob.e2e.rooms(['dev'], ['dev']); // the next myrooms: he waits again
  await relay.until(() => bob.lines.length >= 2, 'the second GroupInfo refused');
  assert.match(bob.lines[1].text, /did not check: not joined \(Could not verify groupInfo Signature\)$/);
  assert.equal(relay.room('dev').epoch, 0, 'no commit went up');
  assert.ok(!bob.e2e.groups.has('dev'));
});

test('without MLS the machine stays out of the way', async () => {
  const e2e = new E2e({ mls: { available: false }, send: async () => true, store: new MemoryStore(), show: () => {} });
  await e2e.open('alice');
  assert.equal(await e2e.onEvent({ kind: 'mls-add', room: 'dev', name: 'bob' }), false);
});
