// Entry for the page bundle: a ts-mls client driven through window.mlsCommand(line),
// so the interop driver can put the browser in the group (see browser-client.mjs).
import { makeClient } from "./ops.mjs";

const name = new URLSearchParams(location.search).get("name") ?? "page";
const ready = makeClient(name);
window.mlsCommand = async (line) => (await ready).handle(line);
ready.then(
  () => { document.getElementById("status").textContent = "ready"; },
  (e) => { document.getElementById("status").textContent = `error: ${e}`; },
);
