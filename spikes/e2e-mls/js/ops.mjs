// A ts-mls client speaking the interop line protocol of rust-client (`ok ...` / `err ...`,
// base64 byte strings). No node APIs: the same module runs in node and, bundled, in the page.
import {
  acceptAll, createApplicationMessage, createGroupInfoWithExternalPubAndRatchetTree, joinGroupExternal, createCommit, createGroup, decodeMlsMessage,
  defaultCapabilities, emptyPskIndex, encodeMlsMessage, generateKeyPackage,
  getCiphersuiteFromName, getCiphersuiteImpl, joinGroup, processMessage,
} from "ts-mls";
import { createGroupInfo } from "ts-mls/createCommit.js";
import { encodeRatchetTree } from "ts-mls/ratchetTree.js";

// ts-mls 1.6.4 writes and reads the external_pub GroupInfo extension as the bare
// 32-byte key; RFC 9420 (12.4.3.2) and openmls encode `HPKEPublicKey external_pub`
// as opaque<V>, i.e. with a length prefix (one byte 0x20 for 32). RFC_EXTERNAL_PUB=0
// turns these two shims off to show the mismatch.

const withPrefix = (key) => new Uint8Array([key.length, ...key]);
const withoutPrefix = (ext) => (ext[0] === ext.length - 1 ? ext.slice(1) : ext);

const SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
const SUITE_IMPL = getCiphersuiteImpl(getCiphersuiteFromName(SUITE));

/** A client named `name`; `shim` turns on the external_pub workaround. Returns {handle(line)}. */
export async function makeClient(name, shim = true) {
const SHIM = shim;
const impl = await SUITE_IMPL;
const enc = new TextEncoder();
const b64 = (u8) => { let s = ""; for (const c of u8) s += String.fromCharCode(c); return btoa(s); };
const unb64 = (s) => Uint8Array.from(atob(s ?? ""), (c) => c.charCodeAt(0));
const credential = { credentialType: "basic", identity: enc.encode(name) };
const now = BigInt(Math.floor(Date.now() / 1000));
const lifetime = { notBefore: now - 3600n, notAfter: now + 90n * 86400n };

let keyPackages = []; // [{publicPackage, privatePackage}] not yet used
let state;
let pending; // our commit's new state, until the relay accepts (confirm) or refuses (discard) it

const decode = (bytes) => {
  const decoded = decodeMlsMessage(bytes, 0);
  if (!decoded) throw new Error("cannot decode MLSMessage");
  return decoded[0];
};
const leafOf = (who) => {
  const tree = state.ratchetTree;
  for (let i = 0; i < tree.length; i += 2) {
    const node = tree[i];
    if (node && node.nodeType === "leaf" && new TextDecoder().decode(node.leaf.credential.identity) === who) return i / 2;
  }
  throw new Error(`no member ${who}`);
};
const members = () => state.ratchetTree
  .filter((n, i) => i % 2 === 0 && n && n.nodeType === "leaf")
  .map((n) => new TextDecoder().decode(n.leaf.credential.identity));
const commitWith = async (proposals) => {
  const r = await createCommit({ state, cipherSuite: impl },
    { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true });
  pending = r.newState;
  return r;
};

const ops = {
  async kp() {
    const kp = await generateKeyPackage(credential, defaultCapabilities(), lifetime, [], impl);
    keyPackages.push(kp);
    return b64(encodeMlsMessage({ keyPackage: kp.publicPackage, wireformat: "mls_key_package", version: "mls10" }));
  },
  async create(gid) {
    const kp = await generateKeyPackage(credential, defaultCapabilities(), lifetime, [], impl);
    state = await createGroup(unb64(gid), kp.publicPackage, kp.privatePackage, [], impl);
    return "";
  },
  async add(...kps) {
    const proposals = kps.map((k) => {
      const m = decode(unb64(k));
      if (m.wireformat !== "mls_key_package") throw new Error("not a key package");
      return { proposalType: "add", add: { keyPackage: m.keyPackage } };
    });
    const r = await commitWith(proposals);
    const welcome = encodeMlsMessage({ welcome: r.welcome, wireformat: "mls_welcome", version: "mls10" });
    return `${b64(encodeMlsMessage(r.commit))} ${b64(welcome)}`;
  },
  async remove(who) {
    const r = await commitWith([{ proposalType: "remove", remove: { removed: leafOf(who) } }]);
    return b64(encodeMlsMessage(r.commit));
  },
  async commit() {
    const r = await commitWith([]);
    return b64(encodeMlsMessage(r.commit));
  },
  async join(w) {
    const m = decode(unb64(w));
    if (m.wireformat !== "mls_welcome") throw new Error("not a welcome");
    let lastErr;
    for (const kp of keyPackages) { // find the KeyPackage this Welcome is for
      try {
        state = await joinGroup(m.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, impl);
        keyPackages = keyPackages.filter((k) => k !== kp);
        return String(state.groupContext.epoch);
      } catch (e) { lastErr = e; }
    }
    throw lastErr ?? new Error("no key package");
  },
  async extjoin(gi) {
    const m = decode(unb64(gi));
    if (m.wireformat !== "mls_group_info") throw new Error("not a group info");
    const kp = await generateKeyPackage(credential, defaultCapabilities(), lifetime, [], impl);
    const groupInfo = !SHIM ? m.groupInfo : {
      ...m.groupInfo,
      extensions: m.groupInfo.extensions.map((e) => e.extensionType === "external_pub"
        ? { ...e, extensionData: withoutPrefix(e.extensionData) } : e),
    };
    const r = await joinGroupExternal(groupInfo, kp.publicPackage, kp.privatePackage, false, impl);
    pending = r.newState;
    state = r.newState; // nothing to fall back to: a refused external commit is retried from a fresh GroupInfo
    return b64(encodeMlsMessage({ publicMessage: r.publicMessage, wireformat: "mls_public_message", version: "mls10" }));
  },
  async groupinfo() {
    let info;
    if (!SHIM) {
      info = await createGroupInfoWithExternalPubAndRatchetTree(state, [], impl);
    } else { // as createGroupInfoWithExternalPubAndRatchetTree, with the RFC encoding
      const pair = await impl.hpke.deriveKeyPair(state.keySchedule.externalSecret);
      const externalPub = await impl.hpke.exportPublicKey(pair.publicKey);
      info = await createGroupInfo(state.groupContext, state.confirmationTag, state, [
        { extensionType: "external_pub", extensionData: withPrefix(externalPub) },
        { extensionType: "ratchet_tree", extensionData: encodeRatchetTree(state.ratchetTree) },
      ], impl);
    }
    return b64(encodeMlsMessage({ groupInfo: info, wireformat: "mls_group_info", version: "mls10" }));
  },
  async send(text) {
    const r = await createApplicationMessage(state, unb64(text), impl);
    state = r.newState;
    return b64(encodeMlsMessage({ privateMessage: r.privateMessage, wireformat: "mls_private_message", version: "mls10" }));
  },
  async recv(msg) {
    const m = decode(unb64(msg));
    const before = state.groupContext.epoch;
    const r = await processMessage(m, state, emptyPskIndex, acceptAll, impl);
    state = r.newState;
    if (r.kind === "applicationMessage") return `app ${b64(r.message)}`;
    if (state.groupActiveState.kind === "removedFromGroup") return `commit ${state.groupContext.epoch} removed`;
    if (state.groupContext.epoch === before) return "proposal";
    return `commit ${state.groupContext.epoch} member`;
  },
  async confirm() {
    if (!pending) throw new Error("no pending commit");
    state = pending;
    pending = undefined;
    return String(state.groupContext.epoch);
  },
  async discard() { pending = undefined; return ""; },
  async members() { return members().join(","); },
  async epoch() { return String(state.groupContext.epoch); },
  async leaf(who) { return String(leafOf(who)); },
};

async function handle(line) {
  const [op, ...args] = line.trim().split(/\s+/);
  try {
    if (!ops[op]) throw new Error(`unknown command ${op}`);
    return `ok ${await ops[op](...args)}`.trimEnd();
  } catch (e) {
    return `err ${String(e?.message ?? e).replace(/\n/g, " ")}`;
  }
}
return { handle };
}
