// ts-mls figures in node 20: a member's time to process a Commit in an N-member group.
// Usage: node bench.mjs [N] [ROUNDS]
import {
  acceptAll, createCommit, createGroup, decodeMlsMessage, defaultCapabilities, emptyPskIndex,
  encodeMlsMessage, generateKeyPackage, getCiphersuiteFromName, getCiphersuiteImpl, joinGroup, processMessage,
} from "ts-mls";

const n = Number(process.argv[2] ?? 100);
const rounds = Number(process.argv[3] ?? 10);
const impl = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
const now = BigInt(Math.floor(Date.now() / 1000));
const lifetime = { notBefore: now - 3600n, notAfter: now + 86400n };
const kpOf = (i) => generateKeyPackage({ credentialType: "basic", identity: new TextEncoder().encode(`member-${i}`) },
  defaultCapabilities(), lifetime, [], impl);
const ms = (t) => `${(performance.now() - t).toFixed(2)} ms`;
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const c0 = await kpOf(0);
let creator = await createGroup(new TextEncoder().encode("bench"), c0.publicPackage, c0.privatePackage, [], impl);
let t = performance.now();
const kps = [];
for (let i = 1; i < n; i++) kps.push(await kpOf(i));
console.log(`KeyPackage: ${encodeMlsMessage({ keyPackage: kps[0].publicPackage, wireformat: "mls_key_package", version: "mls10" }).length} B; ${((performance.now() - t) / (n - 1)).toFixed(2)} ms each`);
t = performance.now();
const add = await createCommit({ state: creator, cipherSuite: impl }, {
  extraProposals: kps.map((k) => ({ proposalType: "add", add: { keyPackage: k.publicPackage } })),
  wireAsPublicMessage: true, ratchetTreeExtension: true,
});
console.log(`add ${n - 1} members: ${ms(t)}`);
creator = add.newState;
t = performance.now();
let receiver = await joinGroup(add.welcome, kps[0].publicPackage, kps[0].privatePackage, emptyPskIndex, impl);
console.log(`join from Welcome: ${ms(t)}`);
const create = [], proc = [];
let size = 0;
for (let r = 0; r < rounds; r++) {
  t = performance.now();
  const c = await createCommit({ state: creator, cipherSuite: impl }, { wireAsPublicMessage: true });
  create.push(performance.now() - t);
  creator = c.newState;
  const bytes = encodeMlsMessage(c.commit);
  size = bytes.length;
  t = performance.now();
  const m = decodeMlsMessage(bytes, 0)[0];
  const res = await processMessage(m, receiver, emptyPskIndex, acceptAll, impl);
  proc.push(performance.now() - t);
  receiver = res.newState;
}
console.log(`update commit in a ${n}-member group: ${size} B; create median ${median(create).toFixed(2)} ms, process median ${median(proc).toFixed(2)} ms (min ${Math.min(...proc).toFixed(2)}, max ${Math.max(...proc).toFixed(2)}) over ${rounds}`);
