// Safety numbers for `/verify NAME` (docs/security.md, the e2e crate's
// safety.rs): 60 digits two members compare out of band to learn that
// each sees the other's devices, not a relay's stand-ins. Each member's
// half: with `keys` its device signature keys sorted bytewise (no
// duplicates) and concatenated, h = SHA-512("eaxchat-safety-1" ‖ name ‖
// keys), then 5199 more rounds of h = SHA-512(h ‖ keys); its first 30
// bytes in six 5-byte big-endian chunks, each mod 100000 as 5 digits. The
// two halves in name order (bytewise), in 12 groups of 5. Only WebCrypto's
// digest; node tests it against the Rust crate's vector
// (tests/web/e2e.test.mjs).
"use strict";

/// SHA-512 rounds per half, as Signal's numeric fingerprints.
export const SAFETY_ITERATIONS = 5200;
const PREFIX = new TextEncoder().encode("eaxchat-safety-1");

function compare(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/// The 30 digits of member `name`'s half, over its device keys (Uint8Arrays).
export async function safetyHalf(name, keys, subtle = globalThis.crypto.subtle) {
  const sorted = [...keys].map((k) => new Uint8Array(k)).sort(compare)
    .filter((k, i, all) => i === 0 || compare(all[i - 1], k) !== 0);
  const joined = concat(sorted);
  let hash = new Uint8Array(await subtle.digest("SHA-512", concat([PREFIX, new TextEncoder().encode(name), joined])));
  for (let i = 1; i < SAFETY_ITERATIONS; i += 1) {
    hash = new Uint8Array(await subtle.digest("SHA-512", concat([hash, joined])));
  }
  let digits = "";
  for (let chunk = 0; chunk < 30; chunk += 5) {
    let value = 0n;
    for (const byte of hash.subarray(chunk, chunk + 5)) value = (value << 8n) | BigInt(byte);
    digits += String(value % 100000n).padStart(5, "0");
  }
  return digits;
}

/// The safety number of members `a` and `b` (each `[name, keys]`): 12
/// groups of 5 digits, the same whichever side computes it.
export async function safetyNumber(a, b, subtle = globalThis.crypto.subtle) {
  const encoder = new TextEncoder();
  const [first, second] = compare(encoder.encode(a[0]), encoder.encode(b[0])) <= 0 ? [a, b] : [b, a];
  const digits = (await safetyHalf(first[0], first[1], subtle)) + (await safetyHalf(second[0], second[1], subtle));
  return digits.match(/.{5}/g).join(" ");
}
