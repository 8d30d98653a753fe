// The page's EAX (crates/server/src/web/page/eax.js) against the published vectors, in
// node's WebCrypto: the EAX paper's and Wycheproof's, and frames that
// PyCryptodome sealed. Run with `node --test tests/web/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { EaxKey, openFrame, sealFrame, parseHexKey } from "../../crates/server/src/web/page/eax.js";

const here = new URL("../vectors/", import.meta.url);
const json = (name) => JSON.parse(readFileSync(new URL(name, here), "utf8"));
const hex = (text) => Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

test("the EAX paper's vectors", async () => {
  const { vectors } = json("eax_paper_vectors.json");
  assert.ok(vectors.length >= 10);
  for (const v of vectors) {
    const key = await EaxKey.import(hex(v.key));
    const [ct, tag] = await key.encrypt(hex(v.nonce), hex(v.msg), hex(v.header));
    assert.equal(toHex(ct), v.ct);
    assert.equal(toHex(tag), v.tag);
    const opened = await key.decrypt(hex(v.nonce), ct, tag, hex(v.header));
    assert.equal(toHex(opened), v.msg);
  }
});

test("Wycheproof's AES-EAX vectors with 16-byte tags", async () => {
  const { testGroups } = json("wycheproof_aes_eax_test.v1.json");
  let checked = 0;
  for (const group of testGroups.filter((g) => g.tagSize === 128 && g.ivSize === 128)) {
    for (const t of group.tests) {
      if (t.key.length === 48) continue; // AES-192: WebCrypto has no 192-bit AES in Chromium
      const key = await EaxKey.import(hex(t.key));
      const opened = await key.decrypt(hex(t.iv), hex(t.ct), hex(t.tag), hex(t.aad));
      if (t.result === "invalid") {
        assert.equal(opened, null, `test ${t.tcId} must not open`);
      } else {
        assert.equal(toHex(opened), t.msg, `test ${t.tcId}`);
        const [ct, tag] = await key.encrypt(hex(t.iv), hex(t.msg), hex(t.aad));
        assert.equal(toHex(ct) + toHex(tag), t.ct + t.tag, `test ${t.tcId}`);
      }
      checked++;
    }
  }
  assert.ok(checked > 50, `${checked} checked`);
});

test("frames PyCryptodome sealed open, and ours open back", async () => {
  const data = json("pycryptodome_frames.json");
  const frames = data.frames ?? data.vectors ?? data;
  assert.ok(Array.isArray(frames) && frames.length > 0, Object.keys(data).join(","));
  for (const f of frames) {
    const key = await EaxKey.import(hex(f.key));
    const line = f.line ?? f.frame;
    const opened = await openFrame(key, line);
    const want = f.plaintext_hex ?? f.msg ?? (f.plaintext !== undefined ? toHex(new TextEncoder().encode(f.plaintext)) : undefined);
    assert.equal(toHex(opened), want);
  }
  const key = await EaxKey.import(parseHexKey("000102030405060708090a0b0c0d0e0f"));
  const text = new TextEncoder().encode("hello from the page 🎉");
  const line = await sealFrame(key, text);
  assert.deepEqual(await openFrame(key, line), text);
  const tampered = line.slice(0, 40) + (line[40] === "A" ? "B" : "A") + line.slice(41);
  assert.equal(await openFrame(key, tampered), null);
  assert.equal(await openFrame(key, "not base64!"), null);
});
