// The page's member sessions (crates/server/src/web/page/session.js) in node: the key request
// lines, the pin store, the line queue, frames sent in counter order, and openSession's
// pinning rules, against an in-memory relay made of noise.js's responder and, for the
// handshake with a pinned key, against the Rust responder
// (crates/proto/examples/session_responder.rs, over snow). IndexedDB is the browser's:
// tests/python/test_web.py runs the identity store in Chromium. Run with
// `node --test tests/web/`.
//
//   INTEROP_BIN    path to the built session_responder example
//
// Unset, the test that needs it is skipped, except under CI=true, where it fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import {
  HandshakeState, KIND, b64decode, b64encode, decodeLine, deriveSessionKeys, encodeLine, fingerprint,
  formatPublicKey, fromHex, generateKeyPair, importPrivateKey, nonce, toHex, FramingError, Session,
} from '../../crates/server/src/web/page/noise.js';
import {
  FrameSender, LineQueue, PinStore, RefusedError, RelayKeyChangedError, decodeRelayKeyLine,
  describeKey, keyRequestLine, openSession, parseInviteFragment, KEY_REQUEST, RELAY_KEY,
} from '../../crates/server/src/web/page/session.js';
import { IKPSK1, JOIN_PROLOGUE } from '../../crates/server/src/web/page/noise.js';

const te = new TextEncoder();
const td = new TextDecoder();

/** localStorage's interface over a Map. */
class MemoryStorage {
  #map = new Map();
  getItem(key) { return this.#map.has(key) ? this.#map.get(key) : null; }
  setItem(key, value) { this.#map.set(key, String(value)); }
  removeItem(key) { this.#map.delete(key); }
}

const line = (...bytes) => b64encode(Uint8Array.from(bytes));

// ---------------------------------------------------------------- key request lines
test('the key request is kind 0x04 with no body', () => {
  assert.equal(KEY_REQUEST, 0x04);
  assert.equal(keyRequestLine(), 'BA==\n');
});

test('a relay key line gives 32 bytes; refusals and anything else are refused', () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  for (const form of ['', '\n', '\r\n']) assert.deepEqual(decodeRelayKeyLine(line(RELAY_KEY, ...key) + form), key);
  const refusal = b64encode(Uint8Array.of(0x7f, ...te.encode('not now')));
  assert.throws(() => decodeRelayKeyLine(refusal), (e) => e instanceof RefusedError && e.refusal === 'not now');
  const cases = [
    [line(RELAY_KEY, ...key.subarray(1)), /32 bytes, not 31/],
    [line(RELAY_KEY, ...key, 0), /32 bytes, not 33/],
    [line(RELAY_KEY), /32 bytes, not 0/],
    [line(KIND.WELCOME, ...key), /expected the relay's key/],
    [line(KEY_REQUEST), /expected the relay's key/],
    [b64encode(new Uint8Array(769)), /over the 1024-byte limit/],
    ['', /expected the relay's key/],
    ['!!!!', /base64/],
    ['BQ', /base64/],
  ];
  for (const [bad, why] of cases) assert.throws(() => decodeRelayKeyLine(bad), why, JSON.stringify(bad));
  assert.throws(() => decodeRelayKeyLine(line(RELAY_KEY, ...key.subarray(1))), FramingError);
  assert.throws(() => decodeRelayKeyLine(new Uint8Array(4)), /must be a string/);
});

// ---------------------------------------------------------------- the pin store
test('the pin store keeps one relay key as x25519 text; a damaged pin is an error, not "none"', () => {
  const storage = new MemoryStorage();
  const pins = new PinStore(storage);
  assert.equal(pins.get(), null);
  const key = crypto.getRandomValues(new Uint8Array(32));
  pins.set(key);
  assert.equal(storage.getItem('eaxchat.relay-key'), formatPublicKey(key));
  assert.deepEqual(pins.get(), key);
  storage.setItem('eaxchat.relay-key', 'x25519:AAAA');
  assert.throws(() => pins.get(), /damaged.*Forget/);
  pins.remove();
  assert.equal(pins.get(), null);
});

// ---------------------------------------------------------------- the line queue
test('the line queue hands lines over in order, with bounded waits', async () => {
  const q = new LineQueue();
  q.push('a');
  const waiting = q.next(1000);
  assert.equal(await waiting, 'a');
  const later = q.next(1000);
  q.push('b');
  assert.equal(await later, 'b');
  await assert.rejects(q.next(20), /no answer from the relay within 0.02 s/);
  q.push('c');
  q.push('d');
  assert.deepEqual(q.drain(), ['c', 'd']);
  const pending = q.next(1000);
  q.close('gone');
  await assert.rejects(pending, /gone/);
  await assert.rejects(q.next(1000), /gone/);
});

// ---------------------------------------------------------------- frames in counter order
async function sessionPair() {
  const [k1, k2, h] = [1, 2, 3].map(() => crypto.getRandomValues(new Uint8Array(32)));
  const keys = await deriveSessionKeys(k1, k2, h);
  return { client: await Session.client(keys), relay: await Session.relay(keys) };
}

test('frames sent at once go out in counter order, each with its own nonce', async () => {
  const { client, relay } = await sessionPair();
  const wire = [];
  const sender = new FrameSender(client, (l) => wire.push(l));
  await Promise.all(Array.from({ length: 20 }, (_, i) => sender.send(`m${i}`)));
  assert.equal(wire.length, 20);
  for (let i = 0; i < 20; i++) assert.equal(td.decode(await relay.open(wire[i])), `m${i}`);
  // The sealer alone, called twice at once, never gives one nonce twice.
  const sealed = await Promise.all([client.seal('x'), client.seal('y')]);
  const nonces = sealed.map((l) => toHex(b64decode(l).subarray(0, 16)));
  assert.deepEqual(nonces, [toHex(nonce(20)), toHex(nonce(21))]);
  // A failing send does not stop the ones after it.
  let fail = true;
  const flaky = new FrameSender(client, (l) => { if (fail) { fail = false; throw new Error('socket gone'); } wire.push(l); });
  await assert.rejects(flaky.send('lost'), /socket gone/);
  await flaky.send('kept');
  assert.equal(wire.length, 21);
});

// ---------------------------------------------------------------- openSession, in memory
/**
 * A relay made of noise.js's responder over two line queues: answers a key request with
 * `claimKey` (its own key unless told to lie), refuses a hello it cannot decrypt naming its
 * fingerprint, refuses keys `knows` says no to, else welcomes the client as "alice" and
 * sends one frame.
 */
async function memoryRelay({ relay, knows = () => true, claimKey = relay.publicKey }) {
  const toRelay = new LineQueue();
  const toClient = new LineQueue();
  const seen = [];
  const done = (async () => {
    let first = await toRelay.next(5000);
    seen.push(first);
    if (first.replace(/\n$/, '') === 'BA==') {
      toClient.push(line(RELAY_KEY, ...claimKey) + '\n');
      first = await toRelay.next(5000);
      seen.push(first);
    }
    const { kind, body } = decodeLine(first);
    assert.equal(kind, KIND.HELLO);
    const hs = await HandshakeState.create({ initiator: false, s: relay });
    try {
      await hs.readMessage(body);
    } catch {
      toClient.push(encodeLine(KIND.REFUSE, te.encode(`handshake message 1 did not decrypt; this relay's key is ${await fingerprint(relay.publicKey)}`)));
      return null;
    }
    if (!knows(hs.remoteStatic)) {
      toClient.push(encodeLine(KIND.REFUSE, te.encode(`unknown key ${await fingerprint(hs.remoteStatic)}`)));
      return null;
    }
    toClient.push(encodeLine(KIND.WELCOME, await hs.writeMessage(te.encode('alice'))));
    const { k1, k2, h } = await hs.rawSplit();
    const session = await Session.relay(await deriveSessionKeys(k1, k2, h));
    toClient.push(await session.seal('welcome, alice'));
    return session;
  })();
  const transport = { send: async (l) => toRelay.push(l), recv: () => toClient.next(5000) };
  return { transport, done, seen };
}

test('first use: the key request, the relay key pinned once the handshake proves it', async () => {
  const relay = await generateKeyPair();
  const staticKey = await generateKeyPair();
  const pins = new PinStore(new MemoryStorage());
  const { transport, done, seen } = await memoryRelay({ relay });
  const made = await openSession({ ...transport, staticKey, pins });
  assert.equal(made.name, 'alice');
  assert.equal(made.pinnedNow, true);
  assert.deepEqual(made.relayPublicKey, relay.publicKey);
  assert.equal(made.relayFingerprint, await fingerprint(relay.publicKey));
  assert.deepEqual(pins.get(), relay.publicKey);
  assert.equal(seen[0], 'BA==\n');
  assert.equal(td.decode(await made.session.open(await transport.recv())), 'welcome, alice');
  const atRelay = await done;
  assert.equal(td.decode(await atRelay.open(await made.session.seal('hi'))), 'hi');

  // The next connection uses the pin: no key request.
  const again = await memoryRelay({ relay });
  const second = await openSession({ ...again.transport, staticKey, pins });
  assert.equal(second.pinnedNow, false);
  assert.equal(decodeLine(again.seen[0]).kind, KIND.HELLO);
  await again.done;
});

test('a relay whose key changed is refused naming both fingerprints, and the pin stays', async () => {
  const relay = await generateKeyPair();
  const old = await generateKeyPair();
  const pins = new PinStore(new MemoryStorage());
  pins.set(old.publicKey);
  const { transport, done } = await memoryRelay({ relay });
  const error = await openSession({ ...transport, staticKey: await generateKeyPair(), pins }).then(() => null, (e) => e);
  assert.ok(error instanceof RelayKeyChangedError, String(error));
  const [pinned, now] = [await fingerprint(old.publicKey), await fingerprint(relay.publicKey)];
  assert.ok(error.message.includes(pinned) && error.message.includes(now), error.message);
  assert.equal(error.pinnedFingerprint, pinned);
  assert.equal(error.relayFingerprint, now);
  assert.deepEqual(pins.get(), old.publicKey);
  assert.equal(await done, null);
});

test('an unknown member key is refused, and nothing is pinned by a refused first use', async () => {
  const relay = await generateKeyPair();
  const pins = new PinStore(new MemoryStorage());
  const { transport, done } = await memoryRelay({ relay, knows: () => false });
  const error = await openSession({ ...transport, staticKey: await generateKeyPair(), pins }).then(() => null, (e) => e);
  assert.ok(error instanceof RefusedError && !(error instanceof RelayKeyChangedError), String(error));
  assert.match(error.message, /the relay refused: unknown key SHA256:/);
  assert.equal(pins.get(), null);
  assert.equal(await done, null);
});

test('a key request answered with another key than the relay holds pins nothing', async () => {
  const relay = await generateKeyPair();
  const liar = await generateKeyPair();
  const pins = new PinStore(new MemoryStorage());
  const { transport, done } = await memoryRelay({ relay, claimKey: liar.publicKey });
  const error = await openSession({ ...transport, staticKey: await generateKeyPair(), pins }).then(() => null, (e) => e);
  assert.ok(error instanceof RelayKeyChangedError, String(error));
  assert.match(error.message, /from its answer to the key request/);
  assert.equal(pins.get(), null);
  await done;
});

test('describeKey shows a key as the operator adds it', async () => {
  const kp = await importPrivateKey(fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
  const shown = await describeKey(kp.publicKey);
  assert.equal(shown.publicKey, 'x25519:hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=');
  assert.equal(shown.fingerprint, await fingerprint(kp.publicKey));
});

// ---------------------------------------------------------------- openSession against snow
const BIN = process.env.INTEROP_BIN;
const RELAY_SECRET = 'c8' + 'cc'.repeat(30) + '6c'; // fixed test-only relay key
const skipBin = BIN ? false : process.env.CI === 'true' ? false : 'INTEROP_BIN is not set (path to the built session_responder example)';

test('openSession with a pinned key against the Rust responder: no key request, frames both ways', { skip: skipBin, timeout: 30000 }, async (t) => {
  assert.ok(BIN, 'INTEROP_BIN is not set; CI=true needs it');
  const child = spawn(BIN, [RELAY_SECRET], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const fields = {};
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('responder did not print its port within 10 s')), 10000);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      for (let i; (i = out.indexOf('\n')) >= 0; out = out.slice(i + 1)) {
        const [key, ...rest] = out.slice(0, i).split('=');
        (fields[key] ??= []).push(rest.join('='));
        if (key === 'port') { clearTimeout(timer); resolve(); }
      }
    });
  });
  const relayPub = (await importPrivateKey(fromHex(RELAY_SECRET))).publicKey;
  const pins = new PinStore(new MemoryStorage());
  pins.set(relayPub);
  const socket = await new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: Number(fields.port[0]) }, () => resolve(s));
    s.on('error', reject);
  });
  try {
    const lines = new LineQueue();
    let buf = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => {
      buf += d;
      for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) lines.push(buf.slice(0, i));
    });
    socket.on('end', () => lines.close('closed'));
    const send = (l) => new Promise((res, rej) => socket.write(l, (e) => (e ? rej(e) : res())));
    const staticKey = await generateKeyPair();
    const made = await openSession({ send, recv: () => lines.next(10000), staticKey, pins });
    assert.equal(made.name, 'alice');
    assert.equal(made.pinnedNow, false);
    assert.equal(made.relayFingerprint, fields.relay_fingerprint[0]);
    assert.equal(td.decode(await made.session.open(await lines.next(10000))), 'hello from rust');
    const sender = new FrameSender(made.session, (l) => send(l + '\n'));
    await Promise.all([sender.send('one'), sender.send('two')]);
    socket.end();
    const code = await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error('responder still running after 10 s')), 10000).unref())]);
    assert.equal(code, 0);
    assert.deepEqual(fields.opened, [toHex(te.encode('one')), toHex(te.encode('two'))]);
    assert.equal(fields.client_public[0], formatPublicKey(staticKey.publicKey));
  } finally {
    socket.destroy();
  }
});

// ---------------------------------------------------------------- invites
function inviteToken(relayPublicKey, id, secret) {
  return b64encode(new Uint8Array([...relayPublicKey, ...id, ...secret]))
    .replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/** A relay holding one invite (`id`, `secret`): reads an IKpsk1 join, welcomes it as `name`. */
async function inviteRelay({ relay, id, secret, name = 'dana' }) {
  const toRelay = new LineQueue();
  const toClient = new LineQueue();
  const done = (async () => {
    const { kind, body } = decodeLine(await toRelay.next(5000));
    assert.equal(kind, KIND.INVITE);
    assert.deepEqual(body.slice(0, 8), id, 'the line opens with the invite id');
    const hs = await HandshakeState.create({ protocol: IKPSK1, prologue: JOIN_PROLOGUE, initiator: false, s: relay, psk: secret });
    try {
      await hs.readMessage(body.slice(8));
    } catch {
      toClient.push(encodeLine(KIND.REFUSE, te.encode(`invite refused: the join did not decrypt; this relay's key is ${await fingerprint(relay.publicKey)}`)));
      return null;
    }
    toClient.push(encodeLine(KIND.WELCOME, await hs.writeMessage(te.encode(name))));
    return hs.remoteStatic;
  })();
  return { transport: { send: async (l) => toRelay.push(l), recv: () => toClient.next(5000) }, done };
}

test('an invite fragment parses; a damaged one is refused', async () => {
  const relay = await generateKeyPair();
  const id = Uint8Array.from({ length: 8 }, (_, i) => i + 1);
  const secret = Uint8Array.from({ length: 32 }, (_, i) => 200 - i);
  const token = inviteToken(relay.publicKey, id, secret);
  assert.equal(token.length, 96);
  const invite = parseInviteFragment(`#invite=${token}`);
  assert.deepEqual([invite.relayPublicKey, invite.id, invite.secret], [relay.publicKey, id, secret]);
  assert.equal(parseInviteFragment('#k=00'), null);
  assert.throws(() => parseInviteFragment(`#invite=${token.slice(1)}`), /damaged/);
});

test('a join by invite: kind 0x03 with the id, IKpsk1, the invite key pinned on the welcome', async () => {
  const relay = await generateKeyPair();
  const staticKey = await generateKeyPair();
  const id = crypto.getRandomValues(new Uint8Array(8));
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const pins = new PinStore(new MemoryStorage());
  const { transport, done } = await inviteRelay({ relay, id, secret });
  const made = await openSession({ ...transport, staticKey, pins, invite: { relayPublicKey: relay.publicKey, id, secret } });
  assert.equal(made.name, 'dana');
  assert.deepEqual(await done, staticKey.publicKey);
  assert.deepEqual(pins.get(), relay.publicKey);
});

test('a join with a wrong secret is refused and pins nothing; another pin refuses before sending', async () => {
  const relay = await generateKeyPair();
  const staticKey = await generateKeyPair();
  const id = crypto.getRandomValues(new Uint8Array(8));
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const pins = new PinStore(new MemoryStorage());
  const { transport } = await inviteRelay({ relay, id, secret });
  const wrong = { relayPublicKey: relay.publicKey, id, secret: crypto.getRandomValues(new Uint8Array(32)) };
  await assert.rejects(openSession({ ...transport, staticKey, pins, invite: wrong }), RefusedError);
  assert.equal(pins.get(), null);
  const other = await generateKeyPair();
  pins.set(other.publicKey);
  let sent = 0;
  await assert.rejects(
    openSession({ send: async () => { sent += 1; }, recv: async () => '', staticKey, pins, invite: { relayPublicKey: relay.publicKey, id, secret } }),
    RelayKeyChangedError,
  );
  assert.equal(sent, 0);
});
