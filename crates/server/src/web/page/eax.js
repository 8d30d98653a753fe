// AES-EAX (Bellare, Rogaway, Wagner) on the browser's own WebCrypto: AES-CTR
// for the keystream, and CMAC (OMAC1) built from AES-CBC with a zero IV, as
// openpgp.js and noVNC do. No third-party crypto code.
//
// The wire format is the relay's: base64(nonce(16) || tag(16) || ciphertext),
// exactly what PyCryptodome's AES.MODE_EAX produces. Works in browsers and in
// node (globalThis.crypto.subtle).
"use strict";

const BLOCK = 16;
const ZERO_IV = new Uint8Array(BLOCK);

function xorInto(target, source) {
  for (let i = 0; i < target.length; i++) target[i] ^= source[i];
}

// The CMAC subkey doubling in GF(2^128).
function dbl(block) {
  const out = new Uint8Array(BLOCK);
  let carry = 0;
  for (let i = BLOCK - 1; i >= 0; i--) {
    out[i] = ((block[i] << 1) | carry) & 0xff;
    carry = block[i] >> 7;
  }
  if (carry) out[BLOCK - 1] ^= 0x87;
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// One EAX key: the CBC and CTR forms of one AES key, and the CMAC subkeys,
// computed once.
export class EaxKey {
  static async import(rawKey) {
    const subtle = globalThis.crypto.subtle;
    if (![16, 24, 32].includes(rawKey.length)) {
      throw new Error("an AES key is 16, 24 or 32 bytes");
    }
    const cbc = await subtle.importKey("raw", rawKey, { name: "AES-CBC" }, false, ["encrypt"]);
    const ctr = await subtle.importKey("raw", rawKey, { name: "AES-CTR" }, false, ["encrypt"]);
    const key = new EaxKey(cbc, ctr);
    const l = await key.encryptBlock(new Uint8Array(BLOCK));
    key.k1 = dbl(l);
    key.k2 = dbl(key.k1);
    return key;
  }

  constructor(cbc, ctr) {
    this.cbc = cbc;
    this.ctr = ctr;
  }

  // AES of one block: CBC with a zero IV, first block (WebCrypto appends a
  // padding block we drop).
  async encryptBlock(block) {
    const out = await globalThis.crypto.subtle.encrypt({ name: "AES-CBC", iv: ZERO_IV }, this.cbc, block);
    return new Uint8Array(out, 0, BLOCK).slice();
  }

  // CBC-MAC of whole blocks from a zero IV: the last ciphertext block.
  async cbcMac(blocks) {
    const out = await globalThis.crypto.subtle.encrypt({ name: "AES-CBC", iv: ZERO_IV }, this.cbc, blocks);
    return new Uint8Array(out, blocks.length - BLOCK, BLOCK).slice();
  }

  // OMAC^t(data) = CMAC([t]_16 || data).
  async omac(t, data) {
    const prefix = new Uint8Array(BLOCK);
    prefix[BLOCK - 1] = t;
    const message = concat(prefix, data);
    // The last block, padded 10* and masked with K2, or whole and masked
    // with K1 (the message is never empty: the prefix is a block).
    const full = message.length % BLOCK === 0;
    const lastStart = full ? message.length - BLOCK : message.length - (message.length % BLOCK);
    const last = new Uint8Array(BLOCK);
    last.set(message.subarray(lastStart));
    if (full) {
      xorInto(last, this.k1);
    } else {
      last[message.length - lastStart] = 0x80;
      xorInto(last, this.k2);
    }
    const body = message.subarray(0, lastStart);
    if (body.length > 0) {
      xorInto(last, await this.cbcMac(body));
    }
    return this.encryptBlock(last);
  }

  async ctrXor(counter, data) {
    const out = await globalThis.crypto.subtle.encrypt(
      { name: "AES-CTR", counter, length: 128 },
      this.ctr,
      data,
    );
    return new Uint8Array(out);
  }

  // Seals: returns [ciphertext, tag].
  async encrypt(nonce, plaintext, header = new Uint8Array(0)) {
    const n = await this.omac(0, nonce);
    const h = await this.omac(1, header);
    const ciphertext = await this.ctrXor(n, plaintext);
    const c = await this.omac(2, ciphertext);
    const tag = n.slice();
    xorInto(tag, h);
    xorInto(tag, c);
    return [ciphertext, tag];
  }

  // Opens: the plaintext, or null when the tag does not verify.
  async decrypt(nonce, ciphertext, tag, header = new Uint8Array(0)) {
    const n = await this.omac(0, nonce);
    const h = await this.omac(1, header);
    const c = await this.omac(2, ciphertext);
    const want = n.slice();
    xorInto(want, h);
    xorInto(want, c);
    let diff = tag.length === BLOCK ? 0 : 1;
    for (let i = 0; i < BLOCK; i++) diff |= want[i] ^ (tag[i] ?? 0);
    if (diff !== 0) return null;
    return this.ctrXor(n, ciphertext);
  }
}

export function toBase64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

export function fromBase64(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export function parseHexKey(text) {
  const hex = text.trim().replace(/^#?k=/, "");
  if (!/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

// One frame of the relay's wire format, without its newline.
export async function sealFrame(key, plaintext) {
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(BLOCK));
  const [ciphertext, tag] = await key.encrypt(nonce, plaintext);
  return toBase64(concat(nonce, tag, ciphertext));
}

// The plaintext of one frame, or null if it does not open.
export async function openFrame(key, line) {
  const frame = fromBase64(line.trim());
  if (frame === null || frame.length < 2 * BLOCK) return null;
  return key.decrypt(frame.subarray(0, BLOCK), frame.subarray(2 * BLOCK), frame.subarray(BLOCK, 2 * BLOCK));
}
