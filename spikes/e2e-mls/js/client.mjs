// The ts-mls client as a node process for the interop driver. Usage: node client.mjs NAME
// RFC_EXTERNAL_PUB=0 turns off the external_pub workaround (see ops.mjs).
import { createInterface } from "node:readline";
import { makeClient } from "./ops.mjs";

const client = await makeClient(process.argv[2] ?? "js", process.env.RFC_EXTERNAL_PUB !== "0");
for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write((await client.handle(line)) + "\n");
}
