// The page's sessions (crates/server/src/web/page/noise.js) in node's WebCrypto: the published
// cacophony vectors, framing, counter nonces, session keys and frames, and live interop with the
// Rust responder (crates/proto/examples/session_responder.rs, over snow). Run with
// `node --test tests/web/`.
//
//   NOISE_VECTORS  path to snow's tests/vectors/cacophony.txt (the snow crate's source)
//   INTEROP_BIN    path to the built session_responder example
//
// Unset, the tests that need them are skipped, except under CI=true, where they fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hkdfSync, createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import net from 'node:net';
import {
  HandshakeState, IK, IKPSK1, IKPSK2, KIND, MAX_LINE, RELAY_KEY_MARK, encodeLine, decodeLine,
  deriveSessionKeys, nonce, NonceTracker, NonceError, FramingError, FrameError, fingerprint,
  formatPublicKey, parsePublicKey, importPrivateKey, generateKeyPair, clientHandshake, Session,
  FrameSealer, FrameOpener, fromHex, toHex, b64encode, b64decode,
} from '../../crates/server/src/web/page/noise.js';
import { EaxKey } from '../../crates/server/src/web/page/eax.js';

/** An env var a test needs: its value, or why the test skips (or, under CI=true, fails). */
function required(name, what) {
  const value = process.env[name];
  if (value) return { value, skip: false };
  const why = `${name} is not set (${what})`;
  if (process.env.CI === 'true') return { value: null, skip: false, fail: `${why}; CI=true needs it` };
  return { value: null, skip: why };
}
const VECTORS = required('NOISE_VECTORS', "path to snow's tests/vectors/cacophony.txt");
const BIN = required('INTEROP_BIN', 'path to the built session_responder example');

// ---------------------------------------------------------------- cacophony vectors
const WANTED = new Set([IK, IKPSK1, IKPSK2]);

test('cacophony vectors (IK, IKpsk1, IKpsk2 / 25519 / AESGCM / SHA256)', { skip: VECTORS.skip }, async (t) => {
  if (VECTORS.fail) assert.fail(VECTORS.fail);
  const vectors = JSON.parse(readFileSync(VECTORS.value, 'utf8')).vectors.filter((v) => WANTED.has(v.protocol_name));
  assert.deepEqual(new Set(vectors.map((v) => v.protocol_name)), WANTED, 'expected IK, IKpsk1 and IKpsk2 vectors');
  for (const [i, v] of vectors.entries()) {
    await t.test(`#${i} ${v.protocol_name}`, async () => {
      const psk = (list) => (list?.length ? fromHex(list[0]) : undefined);
      const init = await HandshakeState.create({
        protocol: v.protocol_name, initiator: true, prologue: fromHex(v.init_prologue),
        s: fromHex(v.init_static), e: fromHex(v.init_ephemeral), rs: fromHex(v.init_remote_static), psk: psk(v.init_psks),
      });
      const resp = await HandshakeState.create({
        protocol: v.protocol_name, initiator: false, prologue: fromHex(v.resp_prologue),
        s: fromHex(v.resp_static), e: fromHex(v.resp_ephemeral), psk: psk(v.resp_psks),
      });
      const [hs1, hs2] = v.messages.slice(0, 2);
      // handshake: message 0 initiator -> responder, message 1 responder -> initiator
      for (const [m, from, to] of [[hs1, init, resp], [hs2, resp, init]]) {
        const ct = await from.writeMessage(fromHex(m.payload));
        assert.equal(toHex(ct), m.ciphertext);
        assert.equal(toHex(await to.readMessage(ct)), m.payload);
      }
      assert.ok(init.isFinished && resp.isFinished);
      assert.equal(toHex(init.handshakeHash), v.handshake_hash);
      assert.equal(toHex(resp.handshakeHash), v.handshake_hash);
      // transport: messages keep alternating, initiator first; c1 = i->r, c2 = r->i
      const [ic1, ic2] = await init.split();
      const [rc1, rc2] = await resp.split();
      assert.ok(v.messages.length > 2, 'vector has transport messages');
      for (const [j, m] of v.messages.slice(2).entries()) {
        const [send, recv] = j % 2 === 0 ? [ic1, rc1] : [rc2, ic2];
        const ct = await send.encryptWithAd(new Uint8Array(0), fromHex(m.payload));
        assert.equal(toHex(ct), m.ciphertext, `transport message ${j + 2}`);
        assert.equal(toHex(await recv.decryptWithAd(new Uint8Array(0), ct)), m.payload);
      }
    });
  }
});

// ---------------------------------------------------------------- handshake, keys
test('IK handshake between two noise.js peers with non-extractable keys', async () => {
  const client = await generateKeyPair();
  const relay = await generateKeyPair();
  assert.equal(client.privateKey.extractable, false);
  const init = await HandshakeState.create({ initiator: true, s: client, rs: relay.publicKey });
  const resp = await HandshakeState.create({ initiator: false, s: relay });
  await resp.readMessage(await init.writeMessage());
  assert.deepEqual(resp.remoteStatic, client.publicKey);
  assert.equal(new TextDecoder().decode(await init.readMessage(await resp.writeMessage(new TextEncoder().encode('bob')))), 'bob');
  assert.deepEqual(await init.rawSplit(), await resp.rawSplit());
  await assert.rejects(init.writeMessage(), /already finished/);
});

test('IKpsk2 with a wrong psk fails on the initiator', async () => {
  const relay = await generateKeyPair();
  const psk = crypto.getRandomValues(new Uint8Array(32));
  const init = await HandshakeState.create({ protocol: IKPSK2, initiator: true, s: await generateKeyPair(), rs: relay.publicKey, psk });
  const resp = await HandshakeState.create({ protocol: IKPSK2, initiator: false, s: relay, psk: new Uint8Array(32) });
  await resp.readMessage(await init.writeMessage());
  await assert.rejects(init.readMessage(await resp.writeMessage()), /decryption failed/);
  await assert.rejects(init.rawSplit(), /unusable/);
});

test('importPrivateKey: raw key -> non-extractable CryptoKey + public key (RFC 7748 6.1)', async () => {
  const kp = await importPrivateKey(fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
  assert.equal(kp.privateKey.extractable, false);
  assert.equal(toHex(kp.publicKey), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
});

test('session keys: HKDF matches node crypto.hkdfSync', async () => {
  const [k1, k2, h] = [1, 2, 3].map(() => crypto.getRandomValues(new Uint8Array(32)));
  const { c2s, s2c } = await deriveSessionKeys(k1, k2, h);
  const ref = (ikm, info) => new Uint8Array(hkdfSync('sha256', ikm, h, info, 32));
  assert.deepEqual(c2s, ref(k1, 'eaxchat/1 session c2s'));
  assert.deepEqual(s2c, ref(k2, 'eaxchat/1 session s2c'));
  assert.notDeepEqual(c2s, s2c);
  await assert.rejects(deriveSessionKeys(k1, k2, new Uint8Array(31)), /h must be 32 bytes/);
});

test('fingerprint and public key text forms', async () => {
  assert.equal(await fingerprint(new Uint8Array(32)), 'SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU');
  const pub = crypto.getRandomValues(new Uint8Array(32));
  const fp = await fingerprint(pub);
  assert.equal(fp, 'SHA256:' + createHash('sha256').update(pub).digest('base64').replace(/=+$/, ''));
  assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.deepEqual(parsePublicKey(formatPublicKey(pub)), pub);
  assert.throws(() => parsePublicKey('x25519:AAAA'), /32 bytes/);
});

// ---------------------------------------------------------------- framing
test('framing: round trip', () => {
  for (const [kind, len] of [[KIND.HELLO, 0], [KIND.WELCOME, 90], [KIND.INVITE, 767], [KIND.REFUSE, 512]]) {
    const body = crypto.getRandomValues(new Uint8Array(len));
    const line = encodeLine(kind, body);
    assert.ok(line.endsWith('\n') && line.length - 1 <= MAX_LINE);
    assert.deepEqual(decodeLine(line), { kind, body });
    assert.deepEqual(decodeLine(line.slice(0, -1)), { kind, body });
    assert.deepEqual(decodeLine(line.slice(0, -1) + '\r\n'), { kind, body });
  }
});

test('framing: oversize refused', () => {
  assert.throws(() => encodeLine(KIND.HELLO, new Uint8Array(768)), /over the 1024-byte limit/);
  assert.throws(() => encodeLine(KIND.REFUSE, new Uint8Array(513)), /refusal text over 512/);
  const big = b64encode(new Uint8Array([KIND.HELLO, ...new Uint8Array(768)]));
  assert.equal(big.length, 1028);
  assert.throws(() => decodeLine(big + '\n'), /over the 1024-byte limit/);
  assert.throws(() => decodeLine(b64encode(new Uint8Array([KIND.REFUSE, ...new Uint8Array(513)]))), /refusal text over 512/);
});

test('framing: garbage refused', () => {
  for (const bad of ['', '\n', 'AQ', 'AQ=', 'A Q==', 'AQ==\n\n', 'AR==', '@@@@', 'AQ==AQ==', 'Ag-_']) {
    assert.throws(() => decodeLine(bad), FramingError, JSON.stringify(bad));
  }
  assert.throws(() => decodeLine(b64encode(Uint8Array.of(0x05, 1, 2))), /unknown line kind 0x05/);
  assert.throws(() => decodeLine(new Uint8Array(4)), /must be a string/);
  assert.throws(() => encodeLine(0x42, new Uint8Array(1)), /unknown line kind/);
});

// ---------------------------------------------------------------- counter nonces, frames
test('nonce(n) layout', () => {
  assert.equal(toHex(nonce(0)), '0'.repeat(32));
  assert.equal(toHex(nonce(258)), '0'.repeat(28) + '0102');
  assert.equal(toHex(nonce(2n ** 64n - 1n)), '0'.repeat(16) + 'f'.repeat(16));
  assert.throws(() => nonce(-1), RangeError);
  assert.throws(() => nonce(2n ** 64n), RangeError);
});

test('counter tracker: in order accepted; replay, gap, reorder, bad prefix refused', async () => {
  const tr = new NonceTracker();
  for (let n = 0; n < 3; n++) await tr.open(nonce(n), async () => 'ok');
  assert.equal(tr.next, 3n);
  assert.throws(() => tr.check(nonce(2)), /replay or reorder/);
  assert.throws(() => tr.check(nonce(4)), /gap/);
  await tr.open(nonce(3), async () => 'ok');
  assert.throws(() => tr.check(nonce(3)), /replay or reorder/);
  const pre = nonce(4); pre[0] = 1;
  assert.throws(() => tr.check(pre), /nonzero first 8 bytes/);
  assert.throws(() => tr.check(new Uint8Array(12)), /16 bytes/);
  // the counter advances only after a frame opens
  await assert.rejects(tr.open(nonce(4), async () => { throw new Error('tag mismatch'); }), /tag mismatch/);
  assert.equal(tr.next, 4n);
  await tr.open(nonce(4), async () => 'ok');
  assert.equal(tr.next, 5n);
});

/** A client and a relay session over one pair of fresh session keys. */
async function sessionPair() {
  const [k1, k2, h] = [1, 2, 3].map(() => crypto.getRandomValues(new Uint8Array(32)));
  const keys = await deriveSessionKeys(k1, k2, h);
  return { keys, client: await Session.client(keys), relay: await Session.relay(keys) };
}

test('session frames: the wire format, counters, both directions', async () => {
  const { keys, client, relay } = await sessionPair();
  for (let n = 0; n < 3; n++) {
    const line = await client.seal(`hi ${n}`);
    const frame = b64decode(line);
    assert.equal(toHex(frame.subarray(0, 16)), toHex(nonce(n)));
    // It is an ordinary AES-256-EAX frame under c2s: eax.js opens it directly.
    const eax = await EaxKey.import(keys.c2s);
    const plain = await eax.decrypt(frame.subarray(0, 16), frame.subarray(32), frame.subarray(16, 32));
    assert.equal(new TextDecoder().decode(plain), `hi ${n}`);
    assert.equal(new TextDecoder().decode(await relay.open(line)), `hi ${n}`);
  }
  assert.equal(new TextDecoder().decode(await client.open(await relay.seal('back') + '\n')), 'back');
});

test('session frames: replay, gap, reorder, reflection and other sessions refused', async () => {
  const { client, relay } = await sessionPair();
  const lines = [];
  for (let n = 0; n < 3; n++) lines.push(await client.seal(`m${n}`));
  await relay.open(lines[0]);
  await assert.rejects(relay.open(lines[0]), NonceError); // replay
  await assert.rejects(relay.open(lines[2]), /gap/); // gap, or 2 before 1
  await relay.open(lines[1]);
  await assert.rejects(relay.open(lines[1]), /replay or reorder/);
  await assert.rejects(client.open(lines[0]), FrameError); // reflected back to its sender
  const other = await sessionPair();
  await assert.rejects(other.relay.open(lines[0]), /tag mismatch/); // another session, counter 0
  await relay.open(lines[2]); // nothing refused moved a counter
  await assert.rejects(relay.open('!!!!'), /not padded standard base64/);
  await assert.rejects(relay.open(b64encode(new Uint8Array(31))), /shorter than nonce and tag/);
  await assert.rejects(FrameSealer.create(new Uint8Array(16)), /32 bytes/);
  await assert.rejects(FrameOpener.create(new Uint8Array(16)), /32 bytes/);
});

// ---------------------------------------------------------------- interop with the Rust responder
const RELAY_SECRET = 'c8' + 'cc'.repeat(30) + '6c'; // fixed test-only relay key

/** Starts the responder; resolves { fields, waitExit } once it printed its port. */
function startResponder(t, args = [RELAY_SECRET]) {
  const child = spawn(BIN.value, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const fields = {};
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('responder did not print its port within 10 s')), 10000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      for (let i; (i = out.indexOf('\n')) >= 0; out = out.slice(i + 1)) {
        const line = out.slice(0, i), eq = line.indexOf('=');
        const [key, value] = eq < 0 ? [line, ''] : [line.slice(0, eq), line.slice(eq + 1)];
        (fields[key] ??= []).push(value);
        if (key === 'port') { clearTimeout(timer); resolve(); }
      }
    });
  });
  const waitExit = (ms = 10000) => Promise.race([exited,
    new Promise((_, rej) => setTimeout(() => rej(new Error(`responder still running after ${ms} ms`)), ms).unref())]);
  const field = (key) => fields[key]?.[0];
  return ready.then(() => ({ fields, field, waitExit }));
}

/** A bounded line reader over a node:net socket: send(line), recv() -> next line. */
function lineTransport(socket, limit = 64 * 1024) {
  let buf = '', waiter = null, closed = null;
  const pump = () => {
    if (!waiter) return;
    const i = buf.indexOf('\n');
    if (i >= 0) { const w = waiter; waiter = null; const l = buf.slice(0, i + 1); buf = buf.slice(i + 1); w.resolve(l); }
    else if (buf.length > limit) { const w = waiter; waiter = null; w.reject(new FramingError(`no newline within ${limit} bytes`)); }
    else if (closed) { const w = waiter; waiter = null; w.reject(new Error(`connection ${closed} before a full line`)); }
  };
  socket.setEncoding('latin1');
  socket.on('data', (d) => { buf += d; pump(); });
  socket.on('end', () => { closed = 'closed'; pump(); });
  socket.on('error', (e) => { closed = `failed (${e.message})`; pump(); });
  return {
    send: (line) => new Promise((res, rej) => socket.write(line, (e) => (e ? rej(e) : res()))),
    recv: () => new Promise((resolve, reject) => {
      const timer = setTimeout(() => { waiter = null; reject(new Error('no line within 10 s')); }, 10000);
      waiter = { resolve: (l) => { clearTimeout(timer); resolve(l); }, reject: (e) => { clearTimeout(timer); reject(e); } };
      pump();
    }),
  };
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: Number(port) }, () => resolve(s));
    s.on('error', reject);
  });
}

test('interop: page initiator <-> Rust responder: same keys, frames both ways, replay refused', { skip: BIN.skip, timeout: 30000 }, async (t) => {
  if (BIN.fail) assert.fail(BIN.fail);
  const { field, fields, waitExit } = await startResponder(t);
  const relayPub = (await importPrivateKey(fromHex(RELAY_SECRET))).publicKey;
  assert.equal(field('relay_public'), formatPublicKey(relayPub));
  assert.equal(field('relay_fingerprint'), await fingerprint(relayPub));
  const staticKey = await generateKeyPair(); // non-extractable, as the page keeps it
  const socket = await connect(field('port'));
  try {
    const transport = lineTransport(socket);
    const payload = new TextEncoder().encode('{"v":1}');
    const r = await clientHandshake({ ...transport, relayPublicKey: relayPub, staticKey, payload });
    assert.equal(r.name, 'alice');
    // The responder's frame came right behind line 2.
    assert.equal(new TextDecoder().decode(await r.session.open(await transport.recv())), 'hello from rust');
    const line = await r.session.seal('hello from js');
    await transport.send(line + '\n');
    await transport.send(line + '\n'); // a replay: the responder must refuse it
    socket.end();
    assert.equal(await waitExit(), 0);
    assert.equal(field('client_fingerprint'), await fingerprint(staticKey.publicKey));
    assert.equal(field('client_public'), formatPublicKey(staticKey.publicKey));
    assert.equal(field('payload'), toHex(payload));
    for (const k of ['k1', 'k2', 'h', 'c2s', 's2c']) assert.equal(field(k), toHex(r[k]), k);
    assert.equal(field('sent'), toHex(new TextEncoder().encode('hello from rust')));
    assert.deepEqual(fields.opened, [toHex(new TextEncoder().encode('hello from js'))]);
    assert.match(field('frame_error'), /already used.*replay/);
    assert.ok('done' in fields);
  } finally {
    socket.destroy();
  }
});

test('interop: pinning the wrong relay key is refused, naming both fingerprints', { skip: BIN.skip, timeout: 30000 }, async (t) => {
  if (BIN.fail) assert.fail(BIN.fail);
  const { field, waitExit } = await startResponder(t);
  const wrongPub = (await generateKeyPair()).publicKey;
  const pinned = await fingerprint(wrongPub);
  const socket = await connect(field('port'));
  try {
    const err = await clientHandshake({ ...lineTransport(socket), relayPublicKey: wrongPub, staticKey: await generateKeyPair() })
      .then(() => null, (e) => e);
    assert.ok(err, 'handshake with the wrong pinned key must fail');
    assert.ok(err.message.includes(pinned), err.message);
    assert.ok(err.message.includes(field('relay_fingerprint')), err.message);
    assert.equal(err.relayFingerprint, field('relay_fingerprint'));
    assert.equal(await waitExit(), 3);
    assert.match(field('refused'), /did not decrypt/);
    assert.ok(field('refused').includes(RELAY_KEY_MARK + field('relay_fingerprint')));
  } finally {
    socket.destroy();
  }
});
