// External Commits between the page's MLS (crates/server/web-mls/mls.mjs,
// ts-mls) and openmls (the MLS of `chat`, the Python client and the relay),
// through the eaxchat_mls binding driven by tests/web/mls_peer.py: the page
// joins an openmls group from its GroupInfo (ts-mls 1.6.4 alone cannot:
// shown), openmls members take the commit, and messages open both ways; a
// GroupInfo changed in transit is refused; a device that lost its state
// joins again; and an openmls device joins the page's group the same way.
// The relay's check of the page's commit (openmls's PublicGroup) is
// tests/python/test_web_e2e.py's, against the real relay.
//
// Needs crates/server/web-mls/node_modules and the eaxchat_mls binding
// (scripts/test builds both before it runs node); without them the tests
// are skipped, except under CI=true, where they fail.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const WEB_MLS = fileURLToPath(new URL('../../crates/server/web-mls/', import.meta.url));
const PEER = fileURLToPath(new URL('./mls_peer.py', import.meta.url));
const HAVE_MLS = existsSync(`${WEB_MLS}node_modules/ts-mls`);
const HAVE_BINDING = spawnSync('python3', ['-c', 'import eaxchat_mls'], { timeout: 30000 }).status === 0;
const why = !HAVE_MLS ? 'crates/server/web-mls has no node_modules: run npm ci there'
  : !HAVE_BINDING ? 'the eaxchat_mls binding is not installed (scripts/test builds it from crates/e2e-py)' : null;
const skip = why === null || process.env.CI === 'true' ? false : why;

const b64 = (bytes) => `b64:${Buffer.from(bytes).toString('base64')}`;
const bytes = (wired) => new Uint8Array(Buffer.from(wired.slice(4), 'base64'));

/** openmls devices in a python3 process: `call(device, method, ...args)`. */
class Peer {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'mls-peer-'));
    this.child = spawn('python3', [PEER, this.dir], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async call(device, call, ...args) {
    this.child.stdin.write(`${JSON.stringify({ device, call, args })}\n`);
    let timer;
    const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${call}: no answer in 30 s`)), 30000); });
    try {
      const { value, done } = await Promise.race([this.lines.next(), late]);
      assert.ok(!done, `the openmls peer exited (${call})`);
      const answer = JSON.parse(value);
      if ('error' in answer) throw new Error(answer.error);
      return answer.ok;
    } finally {
      clearTimeout(timer);
    }
  }

  stop() {
    this.child.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const peers = [];
after(() => { for (const peer of peers) peer.stop(); });

async function setup() {
  assert.equal(why, null, `${why}; CI=true needs it`);
  const mls = await import(`${WEB_MLS}mls.mjs`);
  const peer = new Peer();
  peers.push(peer);
  // alice (openmls) makes #dev and adds carol (openmls): epoch 1.
  await peer.call('alice', 'create', 'dev');
  const [carolPackage] = await peer.call('carol', 'key_packages', 1);
  const [commit, welcome] = await peer.call('alice', 'add', 'dev', [carolPackage]);
  assert.ok(commit);
  await peer.call('alice', 'accepted', 'dev');
  assert.deepEqual(await peer.call('carol', 'join_welcome', welcome), ['dev', 1]);
  return { mls, peer };
}

// The offset of the key in a GroupInfo's external_pub extension
// (type 0x0004, extension data 0x21 long: 0x20 and the 32-byte key).
function externalPubAt(info) {
  for (let i = 0; i + 4 < info.length; i += 1) {
    if (info[i] === 0 && info[i + 1] === 4 && info[i + 2] === 0x21 && info[i + 3] === 0x20) return i + 4;
  }
  return assert.fail('no external_pub extension in the GroupInfo');
}

test('the page joins an openmls group by External Commit; openmls members take it and messages open both ways', { skip }, async () => {
  const { mls, peer } = await setup();
  const info = bytes(await peer.call('alice', 'group_info', 'dev'));
  assert.equal(info[externalPubAt(info) - 1], 0x20, "openmls writes external_pub with RFC 9420's length prefix");

  // ts-mls 1.6.4 alone takes those bytes for the bare key, and fails.
  const tsmls = await import(`${WEB_MLS}node_modules/ts-mls/dist/src/index.js`);
  const suite = await tsmls.getCiphersuiteImpl(tsmls.getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'));
  const key = await mls.newSignatureKey();
  const record = (await mls.keyPackage('bob', key)).record;
  const [decoded] = tsmls.decodeMlsMessage(info, 0);
  await assert.rejects(tsmls.joinGroupExternal(decoded.groupInfo, record.publicPackage, record.privatePackage, false, suite));

  const joined = await mls.joinExternal('dev', info, 'bob', key);
  assert.deepEqual(mls.inspect(joined.commit), { kind: 'commit', epoch: 1 });
  assert.equal(mls.epoch(joined.state), 2);
  for (const member of ['alice', 'carol']) {
    const taken = await peer.call(member, 'process', 'dev', b64(joined.commit));
    assert.equal(taken.kind, 'commit');
    assert.equal(taken.by, 'bob');
    assert.equal(taken.epoch, 2);
    assert.deepEqual(taken.added, [['bob', b64(key.publicKey)]]);
    assert.deepEqual(taken.removed, []);
  }
  assert.deepEqual(mls.members(joined.state).map((m) => m.name), ['alice', 'carol', 'bob']);

  const said = await mls.encrypt(joined.state, 'bob, from ts-mls');
  for (const member of ['alice', 'carol']) {
    const got = await peer.call(member, 'process', 'dev', b64(said.bytes));
    assert.deepEqual([got.kind, got.from, got.text], ['application', 'bob', 'bob, from ts-mls']);
  }
  const answer = bytes(await peer.call('carol', 'encrypt', 'dev', 'carol, from openmls'));
  const read = await mls.process(said.state, answer);
  assert.deepEqual([read.kind, read.sender, read.text], ['application', 'carol', 'carol, from openmls']);

  // bob lost his state: he joins again from the next GroupInfo, and his
  // old leaf (his key) goes in the same commit.
  await peer.call('alice', 'process', 'dev', b64(answer));
  const again = await mls.joinExternal('dev', bytes(await peer.call('alice', 'group_info', 'dev')), 'bob', key);
  const resync = await peer.call('alice', 'process', 'dev', b64(again.commit));
  assert.deepEqual([resync.added, resync.removed], [[['bob', b64(key.publicKey)]], [['bob', b64(key.publicKey)]]]);
  assert.deepEqual((await peer.call('alice', 'members', 'dev')).map(([name]) => name).sort(), ['alice', 'bob', 'carol']);
  const back = await mls.encrypt(again.state, 'bob again');
  assert.equal((await peer.call('alice', 'process', 'dev', b64(back.bytes))).text, 'bob again');
});

test('a GroupInfo changed in transit, or of another room, is refused: its signature is still checked', { skip }, async () => {
  const { mls, peer } = await setup();
  const info = bytes(await peer.call('alice', 'group_info', 'dev'));
  const key = await mls.newSignatureKey();
  const at = externalPubAt(info);
  const signature = /^Could not verify groupInfo Signature$/;
  const cases = [[at + 7, signature, 'the external key'], [at - 1, /^Data length exceeds buffer$/, "the key's length prefix"],
    [info.length - 1, signature, 'the signature']];
  for (const [where, refusal, what] of cases) {
    const changed = info.slice();
    changed[where] ^= 0x01;
    await assert.rejects(mls.joinExternal('dev', changed, 'bob', key), { message: refusal }, what);
  }
  await assert.rejects(mls.joinExternal('other', info, 'bob', key), /not #other's GroupInfo/);
  await assert.rejects(mls.joinExternal('dev', bytes(await peer.call('carol', 'key_packages', 1).then((p) => p[0])), 'bob', key), /not a GroupInfo/);
});

test('an openmls device joins the page\'s group by External Commit; the page takes it', { skip }, async () => {
  const { mls, peer } = await setup();
  const key = await mls.newSignatureKey();
  let state = await mls.create('web', 'erin', key);
  const [room, commit] = await peer.call('dave', 'join_external', b64(await mls.groupInfo(state)));
  assert.equal(room, 'web');
  await peer.call('dave', 'accepted', 'web');
  const taken = await mls.process(state, bytes(commit));
  assert.equal(taken.kind, 'commit');
  state = taken.state;
  assert.deepEqual(mls.members(state).map((m) => m.name), ['erin', 'dave']);
  const said = bytes(await peer.call('dave', 'encrypt', 'web', 'dave, from openmls'));
  const read = await mls.process(state, said);
  assert.deepEqual([read.sender, read.text], ['dave', 'dave, from openmls']);
  const reply = await mls.encrypt(read.state, 'erin, from ts-mls');
  assert.equal((await peer.call('dave', 'process', 'web', b64(reply.bytes))).text, 'erin, from ts-mls');
});
