// session.js — the page's member sessions (the protocol is docs/protocol.md's "Sessions";
// the Noise and the frames are ./noise.js's). Owns: this browser's identity, a
// non-extractable X25519 CryptoKey kept in IndexedDB (IdentityStore); the relay key it
// pinned, in localStorage (PinStore); the trust-on-first-use key request and relay key
// lines (0x04 / 0x05); one connection's handshake with its pinning rules (openSession);
// the queue of lines a WebSocket delivers (LineQueue); and sending a session's frames in
// counter order (FrameSender). Never a socket and never the DOM: app.js owns both, so
// node runs everything here but IndexedDB.
import {
  b64decode, b64encode, clientHandshake, fingerprint, formatPublicKey, generateKeyPair,
  parsePublicKey, FramingError, MAX_LINE, MAX_REFUSAL,
} from './noise.js';

// ---------------------------------------------------------------- invites
/**
 * The invite in a page link's fragment, `#invite=TOKEN` (docs/protocol.md "Invites"):
 * TOKEN is unpadded base64url of relay key(32) ‖ id(8) ‖ secret(32). Returns
 * { relayPublicKey, id, secret }, null when the fragment holds no invite; a damaged token throws.
 */
export function parseInviteFragment(hash) {
  const at = hash.indexOf('invite=');
  if (at < 0) return null;
  const token = hash.slice(at + 'invite='.length).replace(/[&/].*$/, '');
  if (!/^[A-Za-z0-9_-]{96}$/.test(token)) {
    throw new FramingError('the invite link is damaged: its token is not 96 characters of base64url (copy the whole link)');
  }
  const raw = b64decode(token.replaceAll('-', '+').replaceAll('_', '/'));
  return { relayPublicKey: raw.slice(0, 32), id: raw.slice(32, 40), secret: raw.slice(40, 72) };
}

export const KEY_REQUEST = 0x04; // client -> relay: empty, "send me your key"
export const RELAY_KEY = 0x05; // relay -> client: its 32-byte static public key, unauthenticated
const REFUSE = 0x7f;

export class RefusedError extends Error { name = 'RefusedError'; }
/** The relay says its key is another than the pinned one: always refused, both fingerprints named. */
export class RelayKeyChangedError extends RefusedError { name = 'RelayKeyChangedError'; }

// ---------------------------------------------------------------- the key request lines
/** The key request line (kind 0x04, empty), '\n' included. */
export function keyRequestLine() {
  return b64encode(Uint8Array.of(KEY_REQUEST)) + '\n';
}

/** The relay's answer to a key request -> its 32-byte public key; a refusal is a RefusedError. */
export function decodeRelayKeyLine(line) {
  if (typeof line !== 'string') throw new FramingError('line must be a string');
  line = line.replace(/\r?\n$/, '');
  if (line.length > MAX_LINE) throw new FramingError(`line of ${line.length} bytes is over the ${MAX_LINE}-byte limit`);
  let raw;
  try { raw = b64decode(line); } catch (e) { throw new FramingError(`line is not valid base64: ${e.message}`); }
  if (raw[0] === REFUSE && raw.length - 1 <= MAX_REFUSAL) {
    const text = new TextDecoder().decode(raw.subarray(1)); // unauthenticated: shown as text only
    throw Object.assign(new RefusedError(`the relay refused the key request: ${JSON.stringify(text)}`), { refusal: text });
  }
  if (raw[0] !== RELAY_KEY) throw new FramingError(`expected the relay's key (kind 0x05), got kind 0x${(raw[0] ?? 0).toString(16).padStart(2, '0')}`);
  if (raw.length !== 33) throw new FramingError(`a relay key line carries 32 bytes, not ${raw.length - 1}`);
  return raw.slice(1);
}

// ---------------------------------------------------------------- the pin
/**
 * The relay key this page pinned, as "x25519:…" text under one localStorage key. The
 * storage is the page's origin's, which is the relay's: one pin per relay. A damaged
 * entry throws; it never reads as "no pin", which would trust a new key silently.
 */
export class PinStore {
  constructor(storage = globalThis.localStorage, key = 'eaxchat.relay-key') {
    this.storage = storage;
    this.key = key;
  }
  get() {
    const text = this.storage.getItem(this.key);
    if (text === null) return null;
    try { return parsePublicKey(text); } catch {
      throw new Error(`the pinned relay key in this browser's storage is damaged (${JSON.stringify(text.slice(0, 60))}): press Forget to start over`);
    }
  }
  set(publicKey) { this.storage.setItem(this.key, formatPublicKey(publicKey)); }
  remove() { this.storage.removeItem(this.key); }
}

// ---------------------------------------------------------------- the identity
/**
 * This browser's identity in IndexedDB: { privateKey: a non-extractable X25519 CryptoKey,
 * publicKey: Uint8Array(32) }. The secret cannot be read out, not even by this page;
 * it survives reloads, and remove() deletes it.
 */
export class IdentityStore {
  constructor(indexedDB = globalThis.indexedDB, database = 'eaxchat', store = 'identity') {
    this.indexedDB = indexedDB;
    this.database = database;
    this.store = store;
  }
  #open() {
    return new Promise((resolve, reject) => {
      const request = this.indexedDB.open(this.database, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(this.store);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  async #run(mode, act) {
    const db = await this.#open();
    try {
      return await new Promise((resolve, reject) => {
        const tx = db.transaction(this.store, mode);
        const request = act(tx.objectStore(this.store));
        tx.oncomplete = () => resolve(request.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
    } finally {
      db.close();
    }
  }
  /** The identity, or null if this browser has none. */
  async load() {
    const found = await this.#run('readonly', (store) => store.get('self'));
    return found && found.privateKey && found.publicKey instanceof Uint8Array ? found : null;
  }
  /** The identity, made (and stored) first if there is none. */
  async loadOrCreate() {
    const found = await this.load();
    if (found) return found;
    const made = await generateKeyPair();
    if (made.privateKey.extractable) throw new Error('the identity key must not be extractable');
    await this.#run('readwrite', (store) => store.add(made, 'self'));
    return (await this.load()) ?? made;
  }
  /** Deletes the identity. */
  async remove() { await this.#run('readwrite', (store) => store.delete('self')); }
}

/** { publicKey: "x25519:…", fingerprint: "SHA256:…" } of a public key, to show. */
export async function describeKey(publicKey) {
  return { publicKey: formatPublicKey(publicKey), fingerprint: await fingerprint(publicKey) };
}

// ---------------------------------------------------------------- the lines of one connection
/** The lines a WebSocket delivers, read one at a time with a bounded wait. */
export class LineQueue {
  #lines = [];
  #waiter = null;
  #closed = null;
  push(line) {
    if (this.#waiter) { const w = this.#waiter; this.#waiter = null; w.resolve(line); } else this.#lines.push(line);
  }
  /** Ends the queue: a pending or later next() rejects with `reason`. */
  close(reason) {
    this.#closed = reason;
    if (this.#waiter) { const w = this.#waiter; this.#waiter = null; w.reject(new Error(reason)); }
  }
  /** The next line, waiting at most `ms`. */
  next(ms = 10000) {
    if (this.#lines.length > 0) return Promise.resolve(this.#lines.shift());
    if (this.#closed !== null) return Promise.reject(new Error(this.#closed));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.#waiter = null; reject(new Error(`no answer from the relay within ${ms / 1000} s`)); }, ms);
      this.#waiter = {
        resolve: (line) => { clearTimeout(timer); resolve(line); },
        reject: (error) => { clearTimeout(timer); reject(error); },
      };
    });
  }
  /** Every line held, taken out (the frames that came right behind the handshake). */
  drain() { return this.#lines.splice(0); }
}

/**
 * Sends a session's frames one after another: a frame's counter is its place on the wire,
 * so sealing and sending are chained, never interleaved. send(text) resolves once sent.
 */
export class FrameSender {
  #chain = Promise.resolve();
  constructor(session, sendLine) {
    this.session = session;
    this.sendLine = sendLine;
  }
  send(plaintext) {
    const sent = this.#chain.then(async () => this.sendLine(await this.session.seal(plaintext)));
    this.#chain = sent.catch(() => {});
    return sent;
  }
}

// ---------------------------------------------------------------- one connection's handshake
/**
 * Runs the handshake as a member: send(line) sends one line, recv() resolves to the next.
 * With no pin in `pins`, asks the relay for its key first (trust on first use) and pins
 * it once the relay's reply proves it holds it. Resolves to { name, session,
 * relayPublicKey, relayFingerprint, pinnedNow }. A relay naming another key than the
 * pinned one is a RelayKeyChangedError; any other refusal a RefusedError.
 */
export async function openSession({ send, recv, staticKey, pins, payload, invite = null }) {
  let relayPublicKey = pins.get();
  const pinnedNow = relayPublicKey === null;
  if (invite) {
    // The invite names the relay's key: it is the pin, and another pin is a changed key.
    if (!pinnedNow && formatPublicKey(relayPublicKey) !== formatPublicKey(invite.relayPublicKey)) {
      throw new RelayKeyChangedError(`this page pinned the relay's key ${await fingerprint(relayPublicKey)}, but the invite names ${await fingerprint(invite.relayPublicKey)}: refused; press Forget first if the invite is right`);
    }
    relayPublicKey = invite.relayPublicKey;
  } else if (pinnedNow) {
    await send(keyRequestLine());
    relayPublicKey = decodeRelayKeyLine(await recv());
  }
  const pinned = await fingerprint(relayPublicKey);
  let result;
  try {
    result = await clientHandshake({ send, recv, relayPublicKey, staticKey, payload, invite });
  } catch (e) {
    if (e.refusal === undefined) throw e;
    const changed = e.relayFingerprint && e.relayFingerprint !== pinned;
    const error = changed
      ? new RelayKeyChangedError(`this page pinned the relay's key ${pinned}${pinnedNow ? ' (from its answer to the key request)' : ''}, but the relay says its key is ${e.relayFingerprint}: its key changed, or another relay answers here. Refused; if the operator confirms the new key, press Forget and join again.`)
      : new RefusedError(`the relay refused: ${e.refusal}`);
    throw Object.assign(error, { refusal: e.refusal, pinnedFingerprint: pinned, relayFingerprint: e.relayFingerprint });
  }
  if (pinnedNow) pins.set(relayPublicKey);
  return { name: result.name, session: result.session, relayPublicKey, relayFingerprint: pinned, pinnedNow };
}
