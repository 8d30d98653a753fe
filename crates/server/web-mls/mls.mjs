// The page's MLS (RFC 9420) operations over ts-mls, bundled by
// crates/server/build.rs (esbuild) into the relay's /mls.js. Suite 1 only
// (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, as openmls on the other
// devices). Every function takes and returns plain values (a group's state
// is ts-mls's ClientState, kept in IndexedDB as `storable` makes it); what to do when is the page's e2e.js.
//
// Two ts-mls 1.6.4 bugs shape it (spikes/e2e-mls; still in 2.0.0-rc.10):
// `external_senders` is read as one sender, and `external_pub` is taken as
// the bare key, not RFC 9420's opaque<V> (with its length prefix). So this
// module uses no external senders; the GroupInfo it uploads carries
// `external_pub` as RFC 9420 says (written here), which openmls reads; and
// an External Commit (`joinExternal`) hands ts-mls the GroupInfo as it was
// signed, so ts-mls verifies its signature, credential and tree, and
// decodes the length-prefixed key only where ts-mls imports it.
import {
  acceptAll, createApplicationMessage, createCommit, createGroup, decodeMlsMessage, defaultCapabilities,
  emptyPskIndex, encodeMlsMessage, generateKeyPackageWithKey, getCiphersuiteFromName, getCiphersuiteImpl,
  joinGroup, joinGroupExternal, processMessage,
} from "ts-mls";
import { defaultClientConfig } from "ts-mls/clientConfig.js";
import { decodeVarLenData } from "ts-mls/codec/variableLength.js";
import { createGroupInfo } from "ts-mls/createCommit.js";
import { ratchetTreeFromExtension } from "ts-mls/groupInfo.js";
import { decryptSenderData } from "ts-mls/privateMessage.js";
import { encodeRatchetTree } from "ts-mls/ratchetTree.js";

/** This relay's page has MLS. */
export const available = true;

const SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
let suite = null;
const impl = () => (suite ??= getCiphersuiteImpl(getCiphersuiteFromName(SUITE)));
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const KEY_PACKAGE_DAYS = 90n;
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** The eaxchat group id of `room`: `eaxchat:` + the room name. */
export function groupId(room) {
  return encoder.encode(`eaxchat:${room}`);
}

/** A new device signature key pair (Ed25519): `{ publicKey, signKey }`, raw bytes. */
export async function newSignatureKey() {
  return (await impl()).signature.keygen();
}

function credential(name) {
  return { credentialType: "basic", identity: encoder.encode(name) };
}

function decode(bytes) {
  const decoded = decodeMlsMessage(bytes, 0);
  if (!decoded) throw new Error("not an MLS message");
  return decoded[0];
}

const wrap = (field, value, wireformat) => encodeMlsMessage({ [field]: value, wireformat, version: "mls10" });

/// A KeyPackage of device `name` with `key`: `{ bytes, record }`: the
/// MLSMessage to upload, and the record (with its private keys) to keep
/// until a Welcome uses it.
export async function keyPackage(name, key) {
  const now = BigInt(Math.floor(Date.now() / 1000));
  const lifetime = { notBefore: now - 3600n, notAfter: now + KEY_PACKAGE_DAYS * 86400n };
  const made = await generateKeyPackageWithKey(credential(name), defaultCapabilities(), lifetime, [], key, await impl());
  return { bytes: wrap("keyPackage", made.publicPackage, "mls_key_package"), record: made };
}

/// What a KeyPackage (MLSMessage bytes) says: `{ name, signatureKey }`.
export function keyPackageOwner(bytes) {
  const message = decode(bytes);
  if (message.wireformat !== "mls_key_package") throw new Error("not a KeyPackage");
  const leaf = message.keyPackage.leafNode;
  return { name: decoder.decode(leaf.credential.identity), signatureKey: leaf.signaturePublicKey };
}

/// What the relay's `mls` bytes are: `"welcome"`, `"commit"`, `"proposal"`,
/// `"application"`, `"groupinfo"` or `"keypackage"`, and the epoch where
/// the message says one.
export function inspect(bytes) {
  const message = decode(bytes);
  switch (message.wireformat) {
    case "mls_welcome": return { kind: "welcome" };
    case "mls_private_message": return { kind: "application", epoch: Number(message.privateMessage.epoch) };
    case "mls_group_info": return { kind: "groupinfo", epoch: Number(message.groupInfo.groupContext.epoch) };
    case "mls_key_package": return { kind: "keypackage" };
    case "mls_public_message": {
      const content = message.publicMessage.content;
      return { kind: content.contentType === "commit" ? "commit" : "proposal", epoch: Number(content.epoch) };
    }
    default: throw new Error(`unknown wire format ${message.wireformat}`);
  }
}

/// `room`'s group at epoch 0, made by device `name` alone: its state.
export async function create(room, name, key) {
  const made = await keyPackage(name, key);
  return createGroup(groupId(room), made.record.publicPackage, made.record.privatePackage, [], await impl());
}

/// The GroupInfo of `state` (MLSMessage bytes) with the ratchet tree and
/// `external_pub` as RFC 9420 encodes it (with its length prefix).
export async function groupInfo(state) {
  const cs = await impl();
  const pair = await cs.hpke.deriveKeyPair(state.keySchedule.externalSecret);
  const externalPub = await cs.hpke.exportPublicKey(pair.publicKey);
  const info = await createGroupInfo(state.groupContext, state.confirmationTag, state, [
    { extensionType: "external_pub", extensionData: new Uint8Array([externalPub.length, ...externalPub]) },
    { extensionType: "ratchet_tree", extensionData: encodeRatchetTree(state.ratchetTree) },
  ], cs);
  return wrap("groupInfo", info, "mls_group_info");
}

/// The group's members' devices, in leaf order: `[{ name, signatureKey, leaf }]`.
export function members(state) {
  const found = [];
  state.ratchetTree.forEach((node, i) => {
    if (i % 2 === 0 && node && node.nodeType === "leaf") {
      found.push({ name: decoder.decode(node.leaf.credential.identity), signatureKey: node.leaf.signaturePublicKey, leaf: i / 2 });
    }
  });
  return found;
}

/// `state` as IndexedDB can keep it (structured clone): without its
/// client config, which holds functions.
export function storable(state) {
  const { clientConfig: _config, ...plain } = state;
  return plain;
}

/// A state kept by [`storable`], usable again.
export function restore(plain) {
  return { ...plain, clientConfig: defaultClientConfig };
}

/// The group's epoch.
export function epoch(state) {
  return Number(state.groupContext.epoch);
}

/// A commit (a PublicMessage, as the relay requires) adding the devices of
/// `adds` (KeyPackage MLSMessage bytes) and removing every leaf of the
/// names in `removes`: `{ state, commit, welcome }`, `state` the group once
/// the relay takes it, `welcome` null when nobody is added.
export async function commit(state, adds = [], removes = []) {
  const proposals = [];
  for (const bytes of adds) {
    const message = decode(bytes);
    if (message.wireformat !== "mls_key_package") throw new Error("not a KeyPackage");
    proposals.push({ proposalType: "add", add: { keyPackage: message.keyPackage } });
  }
  for (const member of members(state)) {
    if (removes.includes(member.name)) proposals.push({ proposalType: "remove", remove: { removed: member.leaf } });
  }
  const made = await createCommit({ state, cipherSuite: await impl() },
    { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true });
  return {
    state: made.newState,
    commit: encodeMlsMessage(made.commit),
    welcome: made.welcome ? wrap("welcome", made.welcome, "mls_welcome") : null,
  };
}

/// Joins by a Welcome (MLSMessage bytes) with one of `records` (the
/// KeyPackages kept): `{ state, used }` (`used` the record's index), or
/// throws when none of them is the one it names.
export async function join(bytes, records) {
  const message = decode(bytes);
  if (message.wireformat !== "mls_welcome") throw new Error("not a Welcome");
  let last = new Error("no KeyPackage of this device");
  for (let i = 0; i < records.length; i += 1) {
    try {
      const state = await joinGroup(message.welcome, records[i].publicPackage, records[i].privatePackage, emptyPskIndex, await impl());
      return { state, used: i };
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

// The HPKE public key in a GroupInfo's `external_pub` extension data, which
// RFC 9420 (12.4.3.2) and openmls encode as `opaque external_pub<V>`: the
// whole of it, one length-prefixed key, or it throws.
function externalPubKey(data) {
  const [key, used] = decodeVarLenData(data, 0);
  if (used !== data.length) throw new Error("the GroupInfo's external_pub is not one length-prefixed key");
  return key;
}

/// Joins `room`'s group by External Commit from its GroupInfo (MLSMessage
/// bytes, as `/groupinfo` gives it) as device `name` with `key`: `{ state,
/// commit }`, `state` the group once the relay takes `commit` (a
/// PublicMessage). Throws when the GroupInfo is another room's, does not
/// verify, or its tree does not. A leaf of this device already in the tree
/// (its state lost) is removed by the same commit.
///
/// ts-mls 1.6.4's `joinGroupExternal` hands the `external_pub` extension's
/// bytes straight to the HPKE key import, as if they were the bare key
/// (createCommit.js, `exportSecret(externalPub.extensionData, cs)`): RFC
/// 9420's length prefix makes that key 33 bytes, which X25519 refuses.
/// Stripping the prefix in the GroupInfo would break its signature, which
/// `joinGroupExternal` verifies over the GroupInfo it is given. So the
/// GroupInfo goes in as it came (the signature, the credential and the
/// tree are verified by ts-mls over the signed bytes) and the suite it gets
/// differs in one thing only: importing that very extension's bytes (the
/// same array, by identity) imports the key they encode.
export async function joinExternal(room, bytes, name, key) {
  const message = decode(bytes);
  if (message.wireformat !== "mls_group_info") throw new Error("not a GroupInfo");
  const info = message.groupInfo;
  if (decoder.decode(info.groupContext.groupId) !== `eaxchat:${room}`) throw new Error(`not #${room}'s GroupInfo`);
  const extension = info.extensions.find((e) => e.extensionType === "external_pub");
  if (!extension) throw new Error("the GroupInfo has no external_pub: no External Commit");
  const externalPub = externalPubKey(extension.extensionData);
  const cs = await impl();
  const hpke = { ...cs.hpke, importPublicKey: (k) => cs.hpke.importPublicKey(k === extension.extensionData ? externalPub : k) };
  const made = await keyPackage(name, key);
  const tree = ratchetTreeFromExtension(info);
  if (!tree) throw new Error("the GroupInfo has no ratchet tree");
  const ours = hex(key.publicKey);
  const resync = tree.some((node) => node?.nodeType === "leaf" && hex(node.leaf.signaturePublicKey) === ours);
  const joined = await joinGroupExternal(info, made.record.publicPackage, made.record.privatePackage, resync, { ...cs, hpke });
  return { state: joined.newState, commit: wrap("publicMessage", joined.publicMessage, "mls_public_message") };
}

/// `text` encrypted for the group: `{ state, bytes }`.
export async function encrypt(state, text) {
  const made = await createApplicationMessage(state, encoder.encode(text), await impl());
  return { state: made.newState, bytes: wrap("privateMessage", made.privateMessage, "mls_private_message") };
}

// The member name of the leaf that sent PrivateMessage `pm`, from its
// sender data (under the epoch's sender-data secret); processMessage then
// checks that leaf's signature, so the name is the group's, not the relay's.
async function senderOf(state, pm) {
  const past = pm.epoch === state.groupContext.epoch ? null : state.historicalReceiverData.get(pm.epoch);
  const secret = past ? past.senderDataSecret : state.keySchedule.senderDataSecret;
  const tree = past ? past.ratchetTree : state.ratchetTree;
  const data = await decryptSenderData(pm, secret, await impl());
  const node = data ? tree[data.leafIndex * 2] : undefined;
  return node?.nodeType === "leaf" ? decoder.decode(node.leaf.credential.identity) : null;
}

/// A group message from the relay (MLSMessage bytes): `{ state, kind,
/// text, sender, removed }`: `kind` "application" (with its `text` and the
/// `sender` member name the group authenticated), "commit" or "proposal";
/// `removed` when a commit removed this device.
export async function process(state, bytes) {
  const message = decode(bytes);
  if (message.wireformat !== "mls_private_message" && message.wireformat !== "mls_public_message") {
    throw new Error("not a group message");
  }
  const before = state.groupContext.epoch;
  const sender = message.wireformat === "mls_private_message" ? await senderOf(state, message.privateMessage) : null;
  const done = await processMessage(message, state, emptyPskIndex, acceptAll, await impl());
  const next = done.newState;
  if (done.kind === "applicationMessage") {
    return { state: next, kind: "application", text: decoder.decode(done.message), sender, removed: false };
  }
  const removed = next.groupActiveState?.kind === "removedFromGroup";
  const kind = removed || next.groupContext.epoch !== before ? "commit" : "proposal";
  return { state: next, kind, text: null, sender: null, removed };
}
