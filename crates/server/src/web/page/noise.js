// noise.js — the page's side of eaxchat sessions (the protocol is crates/proto/src/session/,
// whose Rust code, over snow, is the reference), on WebCrypto only.
// Owns: the Noise Protocol Framework rev. 34 state machines (CipherState, SymmetricState,
// HandshakeState) for Noise_IK_25519_AESGCM_SHA256 and Noise_IKpsk2_25519_AESGCM_SHA256;
// X25519 key helpers (non-extractable CryptoKeys, raw pkcs8 import for tests); the
// handshake line framing (encodeLine/decodeLine); session key derivation (HKDF-SHA256);
// the 16-byte counter nonces, the receiver's counter tracker and the session's frames
// (AES-256-EAX through ./eax.js); fingerprints; and a transport-agnostic client handshake
// (clientHandshake). Never a socket: the caller sends and receives lines. Chromium and node 20.
import { EaxKey } from './eax.js';

const subtle = globalThis.crypto.subtle;
const te = new TextEncoder();

export const IK = 'Noise_IK_25519_AESGCM_SHA256';
export const IKPSK2 = 'Noise_IKpsk2_25519_AESGCM_SHA256';
/** Invite joins (docs/protocol.md "Invites"): the invite's secret is the PSK, in message 1. */
export const IKPSK1 = 'Noise_IKpsk1_25519_AESGCM_SHA256';
export const JOIN_PROLOGUE = te.encode('eaxchat/invite/1');
export const PROLOGUE = te.encode('eaxchat/session/1');
export const KIND = Object.freeze({ HELLO: 0x01, WELCOME: 0x02, INVITE: 0x03, REFUSE: 0x7f });
export const MAX_LINE = 1024; // bytes of base64 before the '\n'
export const MAX_REFUSAL = 512; // bytes of UTF-8 text in a 0x7f body
export const MAX_HELLO_PAYLOAD = 128;
/** What precedes the relay's own fingerprint in a refusal (and only there is it read). */
export const RELAY_KEY_MARK = "this relay's key is ";
const MAX_MESSAGE = 65535; // Noise message size limit
const NONCE_MAX = 2n ** 64n - 1n; // reserved by the Noise spec; never used as a nonce

export class NoiseError extends Error { name = 'NoiseError'; }
export class FramingError extends Error { name = 'FramingError'; }
export class NonceError extends Error { name = 'NonceError'; }
export class FrameError extends Error { name = 'FrameError'; }

// ---------------------------------------------------------------- bytes, hex, base64
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}
export const toHex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
export function fromHex(hex) {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new TypeError('invalid hex string');
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}
export function b64encode(u8) {
  let s = '';
  for (const b of u8) s += String.fromCharCode(b);
  return btoa(s);
}
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Strict standard base64 with padding; refuses whitespace and non-canonical trailing bits. */
export function b64decode(str) {
  if (typeof str !== 'string' || !B64_RE.test(str)) throw new FramingError('not standard padded base64');
  const out = Uint8Array.from(atob(str), (c) => c.charCodeAt(0));
  if (b64encode(out) !== str) throw new FramingError('non-canonical base64');
  return out;
}
const b64urlDecode = (s) => b64decode(s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '='));
const bytes = (x, what) => {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  throw new TypeError(`${what} must be a Uint8Array`);
};

// ---------------------------------------------------------------- SHA-256, HMAC, HKDF
const sha256 = async (data) => new Uint8Array(await subtle.digest('SHA-256', data));
async function hmac(key, data) {
  const k = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle.sign('HMAC', k, data));
}
/** Noise's HKDF(chaining_key, input_key_material, num_outputs), num_outputs 2 or 3. */
async function noiseHkdf(ck, ikm, n) {
  const temp = await hmac(ck, ikm);
  const o1 = await hmac(temp, Uint8Array.of(1));
  const o2 = await hmac(temp, concat(o1, Uint8Array.of(2)));
  if (n === 2) return [o1, o2];
  return [o1, o2, await hmac(temp, concat(o2, Uint8Array.of(3)))];
}
/** RFC 5869 HKDF-SHA256 with L = 32 (a single T(1) block). */
async function hkdf32(salt, ikm, info) {
  const prk = await hmac(salt, ikm);
  return hmac(prk, concat(te.encode(info), Uint8Array.of(1)));
}

// ---------------------------------------------------------------- X25519 keys
const X25519 = { name: 'X25519' };
const PKCS8_X25519_PREFIX = fromHex('302e020100300506032b656e04220420');

/** Import a raw 32-byte X25519 private key -> { privateKey: CryptoKey, publicKey: Uint8Array(32) }. */
export async function importPrivateKey(raw, { extractable = false } = {}) {
  raw = bytes(raw, 'private key');
  if (raw.length !== 32) throw new TypeError('X25519 private key must be 32 bytes');
  const pkcs8 = concat(PKCS8_X25519_PREFIX, raw);
  // The public half comes from a short-lived extractable copy's JWK "x".
  const tmp = await subtle.importKey('pkcs8', pkcs8, X25519, true, ['deriveBits']);
  const publicKey = b64urlDecode((await subtle.exportKey('jwk', tmp)).x);
  const privateKey = extractable ? tmp : await subtle.importKey('pkcs8', pkcs8, X25519, false, ['deriveBits']);
  return { privateKey, publicKey };
}
/** Fresh key pair whose private key is NOT extractable (storable in IndexedDB as is). */
export async function generateKeyPair() {
  const kp = await subtle.generateKey(X25519, false, ['deriveBits']);
  return { privateKey: kp.privateKey, publicKey: new Uint8Array(await subtle.exportKey('raw', kp.publicKey)) };
}
/** Accepts raw 32 bytes, a WebCrypto CryptoKeyPair, or { privateKey: CryptoKey, publicKey: Uint8Array }. */
export async function toKeyPair(k) {
  if (k instanceof Uint8Array || k instanceof ArrayBuffer) return importPrivateKey(k);
  if (!k || !(k.privateKey instanceof CryptoKey)) throw new TypeError('expected an X25519 key pair');
  const pub = k.publicKey instanceof CryptoKey ? new Uint8Array(await subtle.exportKey('raw', k.publicKey)) : bytes(k.publicKey, 'public key');
  if (pub.length !== 32) throw new TypeError('X25519 public key must be 32 bytes');
  return { privateKey: k.privateKey, publicKey: pub };
}
async function dh(kp, pub) {
  try {
    const p = await subtle.importKey('raw', pub, X25519, false, []);
    return new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: p }, kp.privateKey, 256));
  } catch (e) {
    throw new NoiseError(`X25519 failed (invalid or low-order public key?): ${e.message}`);
  }
}

// ---------------------------------------------------------------- Noise CipherState (AESGCM)
/** AESGCM nonce per the Noise spec: 32 bits of zeros || 64-bit big-endian counter. */
function gcmNonce(n) {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, n);
  return iv;
}
export class CipherState {
  #k = null; #key = null; n = 0n;
  constructor(k = null) { if (k) this.#k = bytes(k, 'cipher key'); }
  hasKey() { return this.#k !== null; }
  async #aes() {
    return (this.#key ??= await subtle.importKey('raw', this.#k, 'AES-GCM', false, ['encrypt', 'decrypt']));
  }
  async encryptWithAd(ad, plaintext) {
    if (!this.hasKey()) return plaintext;
    if (this.n >= NONCE_MAX) throw new NoiseError('nonce exhausted');
    const ct = await subtle.encrypt({ name: 'AES-GCM', iv: gcmNonce(this.n), additionalData: ad, tagLength: 128 }, await this.#aes(), plaintext);
    this.n++;
    return new Uint8Array(ct);
  }
  async decryptWithAd(ad, ciphertext) {
    if (!this.hasKey()) return ciphertext;
    if (this.n >= NONCE_MAX) throw new NoiseError('nonce exhausted');
    let pt;
    try {
      pt = await subtle.decrypt({ name: 'AES-GCM', iv: gcmNonce(this.n), additionalData: ad, tagLength: 128 }, await this.#aes(), ciphertext);
    } catch {
      throw new NoiseError('decryption failed (bad key or tampered message)');
    }
    this.n++; // only after a successful open
    return new Uint8Array(pt);
  }
}

// ---------------------------------------------------------------- Noise SymmetricState
class SymmetricState {
  static async init(protocolName) {
    const ss = new SymmetricState();
    const name = te.encode(protocolName);
    ss.h = name.length <= 32 ? concat(name, new Uint8Array(32 - name.length)) : await sha256(name);
    ss.ck = ss.h;
    ss.cs = new CipherState();
    return ss;
  }
  async mixKey(ikm) { const [ck, k] = await noiseHkdf(this.ck, ikm, 2); this.ck = ck; this.cs = new CipherState(k); }
  async mixHash(data) { this.h = await sha256(concat(this.h, data)); }
  async mixKeyAndHash(ikm) {
    const [ck, th, k] = await noiseHkdf(this.ck, ikm, 3);
    this.ck = ck;
    await this.mixHash(th);
    this.cs = new CipherState(k);
  }
  async encryptAndHash(pt) { const ct = await this.cs.encryptWithAd(this.h, pt); await this.mixHash(ct); return ct; }
  async decryptAndHash(ct) { const pt = await this.cs.decryptWithAd(this.h, ct); await this.mixHash(ct); return pt; }
  async split() { const [k1, k2] = await noiseHkdf(this.ck, new Uint8Array(0), 2); return { k1, k2 }; }
}

// ---------------------------------------------------------------- Noise HandshakeState
// IK:      <- s  ...  -> e, es, s, ss   <- e, ee, se
// IKpsk1:  <- s  ...  -> e, es, s, ss, psk   <- e, ee, se
// IKpsk2:  <- s  ...  -> e, es, s, ss   <- e, ee, se, psk
const PATTERNS = {
  IK: [['e', 'es', 's', 'ss'], ['e', 'ee', 'se']],
  IKpsk1: [['e', 'es', 's', 'ss', 'psk'], ['e', 'ee', 'se']],
  IKpsk2: [['e', 'es', 's', 'ss'], ['e', 'ee', 'se', 'psk']],
};

export class HandshakeState {
  /**
   * protocol: IK or IKPSK2. initiator: boolean. s: our static key (raw 32 bytes or key pair with
   * a possibly non-extractable CryptoKey). rs: the responder's static public key (initiator only).
   * e: fixed ephemeral (tests only). psk: 32 bytes for IKpsk2. On any error, discard the state.
   */
  static async create({ protocol = IK, initiator, prologue = PROLOGUE, s, rs, e, psk } = {}) {
    const m = /^Noise_(IK|IKpsk1|IKpsk2)_25519_AESGCM_SHA256$/.exec(protocol);
    if (!m) throw new NoiseError(`unsupported protocol ${protocol}`);
    const hs = new HandshakeState();
    hs.initiator = !!initiator;
    hs.messages = PATTERNS[m[1]];
    hs.isPsk = m[1] !== 'IK';
    if (hs.isPsk && !(psk instanceof Uint8Array && psk.length === 32)) throw new NoiseError(`${m[1]} needs a 32-byte psk`);
    hs.psk = psk;
    if (!s) throw new NoiseError('a static key is required');
    hs.s = await toKeyPair(s);
    hs.e = e ? await toKeyPair(e) : null;
    if (hs.initiator && !(rs instanceof Uint8Array && rs.length === 32)) throw new NoiseError('the initiator must know the responder static public key (32 bytes)');
    hs.rs = hs.initiator ? rs : null;
    hs.re = null;
    hs.ss = await SymmetricState.init(protocol);
    await hs.ss.mixHash(bytes(prologue, 'prologue'));
    await hs.ss.mixHash(hs.initiator ? hs.rs : hs.s.publicKey); // pre-message: <- s
    hs.step = 0;
    hs.failed = false;
    return hs;
  }

  get isFinished() { return this.step === this.messages.length; }
  get handshakeHash() { this.#need(true); return this.ss.h; }
  get remoteStatic() { return this.rs; }

  #need(finished) {
    if (this.failed) throw new NoiseError('handshake state is unusable after an error');
    if (this.isFinished !== finished) throw new NoiseError(finished ? 'handshake not finished' : 'handshake already finished');
  }
  #myTurn(writing) {
    this.#need(false);
    if ((this.step % 2 === 0) !== (this.initiator === writing)) throw new NoiseError(`not our turn to ${writing ? 'write' : 'read'}`);
  }
  async #dhToken(t) {
    const pick = { ee: [this.e, this.re], ss: [this.s, this.rs],
      es: this.initiator ? [this.e, this.rs] : [this.s, this.re],
      se: this.initiator ? [this.s, this.re] : [this.e, this.rs] }[t];
    await this.ss.mixKey(await dh(pick[0], pick[1]));
  }
  async #guard(fn) {
    try { return await fn(); } catch (e) { this.failed = true; throw e; }
  }

  async writeMessage(payload = new Uint8Array(0)) {
    this.#myTurn(true);
    return this.#guard(async () => {
      const out = [];
      for (const t of this.messages[this.step]) {
        if (t === 'e') {
          this.e ??= await generateKeyPair();
          out.push(this.e.publicKey);
          await this.ss.mixHash(this.e.publicKey);
          if (this.isPsk) await this.ss.mixKey(this.e.publicKey);
        } else if (t === 's') out.push(await this.ss.encryptAndHash(this.s.publicKey));
        else if (t === 'psk') await this.ss.mixKeyAndHash(this.psk);
        else await this.#dhToken(t);
      }
      out.push(await this.ss.encryptAndHash(bytes(payload, 'payload')));
      const msg = concat(...out);
      if (msg.length > MAX_MESSAGE) throw new NoiseError('handshake message too long');
      this.step++;
      return msg;
    });
  }

  async readMessage(message) {
    this.#myTurn(false);
    message = bytes(message, 'message');
    return this.#guard(async () => {
      if (message.length > MAX_MESSAGE) throw new NoiseError('handshake message too long');
      let off = 0;
      const take = (n) => {
        if (message.length - off < n) throw new NoiseError('handshake message too short');
        return message.subarray(off, (off += n));
      };
      for (const t of this.messages[this.step]) {
        if (t === 'e') {
          this.re = take(32).slice();
          await this.ss.mixHash(this.re);
          if (this.isPsk) await this.ss.mixKey(this.re);
        } else if (t === 's') this.rs = await this.ss.decryptAndHash(take(this.ss.cs.hasKey() ? 48 : 32));
        else if (t === 'psk') await this.ss.mixKeyAndHash(this.psk);
        else await this.#dhToken(t);
      }
      const payload = await this.ss.decryptAndHash(message.subarray(off));
      this.step++;
      return payload;
    });
  }

  /** After the handshake: snow's dangerously_get_raw_split() + get_handshake_hash(). */
  async rawSplit() {
    this.#need(true);
    return { ...(await this.ss.split()), h: this.ss.h };
  }
  /** After the handshake: Noise transport CipherStates [initiator->responder, responder->initiator]. */
  async split() {
    const { k1, k2 } = await this.rawSplit();
    return [new CipherState(k1), new CipherState(k2)];
  }
}

// ---------------------------------------------------------------- session keys, nonces, fingerprints
/** The session keys (crates/proto/src/session/keys.rs): raw 32-byte AES-256 keys, one per direction. */
export async function deriveSessionKeys(k1, k2, h) {
  for (const [v, n] of [[k1, 'k1'], [k2, 'k2'], [h, 'h']]) {
    if (!(v instanceof Uint8Array) || v.length !== 32) throw new TypeError(`${n} must be 32 bytes`);
  }
  return { c2s: await hkdf32(h, k1, 'eaxchat/1 session c2s'), s2c: await hkdf32(h, k2, 'eaxchat/1 session s2c') };
}

/** The 16-byte EAX nonce of frame n: 8 zero bytes || n as u64 big-endian. */
export function nonce(n) {
  n = BigInt(n);
  if (n < 0n || n > NONCE_MAX) throw new RangeError('nonce counter out of range');
  const out = new Uint8Array(16);
  new DataView(out.buffer).setBigUint64(8, n);
  return out;
}

/** One receive direction: only the next counter is accepted; it advances only after a frame opens. */
export class NonceTracker {
  next = 0n;
  check(nonce16) {
    nonce16 = bytes(nonce16, 'nonce');
    if (nonce16.length !== 16) throw new NonceError(`nonce must be 16 bytes, got ${nonce16.length}`);
    const dv = new DataView(nonce16.buffer, nonce16.byteOffset, 16);
    if (dv.getBigUint64(0) !== 0n) throw new NonceError('nonce has nonzero first 8 bytes');
    const got = dv.getBigUint64(8);
    if (got === NONCE_MAX && this.next === NONCE_MAX) throw new NonceError('this direction has used every frame counter');
    if (got < this.next) throw new NonceError(`nonce counter ${got} already used or out of order (expected ${this.next}): replay or reorder`);
    if (got > this.next) throw new NonceError(`nonce counter ${got} skips ahead (expected ${this.next}): gap or reorder`);
    return got;
  }
  advance() { this.next++; }
  /** check(nonce), then await open(), then advance; a throwing open() leaves the counter alone. */
  async open(nonce16, open) {
    this.check(nonce16);
    const result = await open();
    this.advance();
    return result;
  }
}

/** "SHA256:" + unpadded standard base64 of SHA-256(public key), as ssh prints. */
export async function fingerprint(pub) {
  return 'SHA256:' + b64encode(await sha256(bytes(pub, 'public key'))).replace(/=+$/, '');
}
export const formatPublicKey = (pub) => 'x25519:' + b64encode(bytes(pub, 'public key'));
export function parsePublicKey(str) {
  const raw = typeof str === 'string' && str.startsWith('x25519:') ? b64decode(str.slice(7)) : null;
  if (!raw || raw.length !== 32) throw new TypeError('expected "x25519:" + base64 of 32 bytes');
  return raw;
}

// ---------------------------------------------------------------- session frames
// Today's wire lines, base64(nonce(16) || tag(16) || ct), sealed with AES-256-EAX under the
// direction's session key, nonce = nonce(n) for the n-th frame of that direction.

/** Seals one direction's frames, numbered from 0. */
export class FrameSealer {
  #key; next = 0n;
  constructor(key) { this.#key = key; }
  static async create(rawKey) {
    rawKey = bytes(rawKey, 'session key');
    if (rawKey.length !== 32) throw new TypeError('a session key is 32 bytes');
    return new FrameSealer(await EaxKey.import(rawKey));
  }
  /** plaintext (Uint8Array or string) -> the frame's line, without its '\n'. */
  async seal(plaintext) {
    if (typeof plaintext === 'string') plaintext = te.encode(plaintext);
    if (this.next >= NONCE_MAX) throw new NonceError('this direction has used every frame counter');
    plaintext = bytes(plaintext, 'plaintext');
    // The counter is taken before the first await: two seals at once never share a nonce.
    const iv = nonce(this.next++);
    const [ct, tag] = await this.#key.encrypt(iv, plaintext);
    return b64encode(concat(iv, tag, ct));
  }
}

/** Opens one direction's frames, each only once and only in order. */
export class FrameOpener {
  #key; #tracker = new NonceTracker();
  constructor(key) { this.#key = key; }
  static async create(rawKey) {
    rawKey = bytes(rawKey, 'session key');
    if (rawKey.length !== 32) throw new TypeError('a session key is 32 bytes');
    return new FrameOpener(await EaxKey.import(rawKey));
  }
  get next() { return this.#tracker.next; }
  /** One line (a trailing '\n' or '\r\n' is dropped) -> plaintext; throws FrameError or NonceError. */
  async open(line) {
    if (typeof line !== 'string') throw new FrameError('a frame line is a string');
    line = line.replace(/\r?\n$/, '');
    let frame;
    try { frame = b64decode(line); } catch { throw new FrameError('frame is not padded standard base64'); }
    if (frame.length < 32) throw new FrameError('frame is shorter than nonce and tag (32 bytes)');
    const iv = frame.subarray(0, 16);
    return this.#tracker.open(iv, async () => {
      const pt = await this.#key.decrypt(iv, frame.subarray(32), frame.subarray(16, 32));
      if (pt === null) throw new FrameError('frame tag mismatch: not sealed by this session\'s peer for this direction');
      return pt;
    });
  }
}

/** One side of a session: seal what this side sends, open what it receives. */
export class Session {
  constructor(sealer, opener) { this.sealer = sealer; this.opener = opener; }
  /** The client's side: seals c2s, opens s2c. */
  static async client({ c2s, s2c }) { return new Session(await FrameSealer.create(c2s), await FrameOpener.create(s2c)); }
  /** The relay's side: seals s2c, opens c2s. */
  static async relay({ c2s, s2c }) { return new Session(await FrameSealer.create(s2c), await FrameOpener.create(c2s)); }
  seal(plaintext) { return this.sealer.seal(plaintext); }
  open(line) { return this.opener.open(line); }
}

// ---------------------------------------------------------------- line framing
const KNOWN_KINDS = new Set(Object.values(KIND));
const kindHex = (k) => '0x' + k.toString(16).padStart(2, '0');

/** kind byte + body -> "base64(kind || body)\n"; throws FramingError if over MAX_LINE. */
export function encodeLine(kind, body = new Uint8Array(0)) {
  if (!KNOWN_KINDS.has(kind)) throw new FramingError(`unknown line kind ${kind}`);
  body = bytes(body, 'body');
  if (kind === KIND.REFUSE && body.length > MAX_REFUSAL) throw new FramingError(`refusal text over ${MAX_REFUSAL} bytes`);
  const line = b64encode(concat(Uint8Array.of(kind), body));
  if (line.length > MAX_LINE) throw new FramingError(`line would be ${line.length} bytes, over the ${MAX_LINE}-byte limit (body ${body.length} bytes)`);
  return line + '\n';
}

/** One line (a trailing '\n' or '\r\n' is dropped) -> { kind, body }; throws FramingError otherwise. */
export function decodeLine(line) {
  if (typeof line !== 'string') throw new FramingError('line must be a string');
  line = line.replace(/\r?\n$/, '');
  if (line.length > MAX_LINE) throw new FramingError(`line of ${line.length} bytes is over the ${MAX_LINE}-byte limit`);
  if (line.length === 0) throw new FramingError('empty line');
  let raw;
  try { raw = b64decode(line); } catch (e) { throw new FramingError(`line is not valid base64: ${e.message}`); }
  const kind = raw[0], body = raw.subarray(1);
  if (!KNOWN_KINDS.has(kind)) throw new FramingError(`unknown line kind ${kindHex(kind)}`);
  if (kind === KIND.REFUSE && body.length > MAX_REFUSAL) throw new FramingError(`refusal text over ${MAX_REFUSAL} bytes`);
  return { kind, body };
}

// ---------------------------------------------------------------- the client (initiator) flow
/**
 * Runs the IK handshake as the client. send(line) writes one line; recv() resolves to the next
 * line. Returns { name, session, k1, k2, h, c2s, s2c, handshake }: session seals and opens the
 * frames that follow. A 0x7f refusal becomes a NoiseError naming the pinned fingerprint and,
 * when the refusal gives one after RELAY_KEY_MARK, the relay's own.
 */
export async function clientHandshake({ send, recv, relayPublicKey, staticKey, payload = new Uint8Array(0), invite = null }) {
  if (payload.length > MAX_HELLO_PAYLOAD) throw new NoiseError(`hello payload over ${MAX_HELLO_PAYLOAD} bytes`);
  // With `invite` ({ id: 8 bytes, secret: 32 bytes }): an invite join, IKpsk1, kind 0x03.
  const hs = await HandshakeState.create(invite
    ? { protocol: IKPSK1, prologue: JOIN_PROLOGUE, initiator: true, s: staticKey, rs: relayPublicKey, psk: invite.secret }
    : { protocol: IK, initiator: true, s: staticKey, rs: relayPublicKey });
  const message = await hs.writeMessage(payload);
  await send(invite ? encodeLine(KIND.INVITE, concat(invite.id, message)) : encodeLine(KIND.HELLO, message));
  const { kind, body } = decodeLine(await recv());
  if (kind === KIND.REFUSE) throw await refusalError(body, relayPublicKey);
  if (kind !== KIND.WELCOME) throw new NoiseError(`expected a kind 0x02 line, got ${kindHex(kind)}`);
  let name;
  try {
    name = new TextDecoder('utf-8', { fatal: true }).decode(await hs.readMessage(body));
  } catch (e) {
    throw new NoiseError(`relay's handshake reply did not verify: ${e.message}`);
  }
  const { k1, k2, h } = await hs.rawSplit();
  const keys = await deriveSessionKeys(k1, k2, h);
  return { name, session: await Session.client(keys), k1, k2, h, ...keys, handshake: hs };
}

async function refusalError(body, pinnedPub) {
  const text = new TextDecoder().decode(body); // plaintext and unauthenticated: display only
  const pinned = await fingerprint(pinnedPub);
  const at = text.indexOf(RELAY_KEY_MARK);
  const relay = at < 0 ? null : /^SHA256:[A-Za-z0-9+/]{43}/.exec(text.slice(at + RELAY_KEY_MARK.length))?.[0] ?? null;
  const err = new NoiseError(relay && relay !== pinned
    ? `relay refused the handshake: you pinned relay key ${pinned} but the relay says its key is ${relay} (relay said: ${JSON.stringify(text)})`
    : `relay refused the handshake (pinned relay key ${pinned}): ${JSON.stringify(text)}`);
  Object.assign(err, { refusal: text, pinnedFingerprint: pinned, relayFingerprint: relay });
  return err;
}
