// The page's rooms model (crates/server/src/web/page/rooms.js) in node: the
// room list from welcome / myrooms / rooms events, unread and mention
// counts and the title, what a typed line becomes on the wire, and older
// history pages placed by id with no gap and no duplicate. Run with
// `node --test tests/web/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  HISTORY_PAGE, PAGE_TIMEOUT, PRIVATE, Rooms, mentions, roomName, titleFor, wireText,
} from "../../crates/server/src/web/page/rooms.js";

const msg = (room, id, text = `m${id}`, extra = {}) => ({ kind: "msg", room, from: "alice", text, ts: 1, history: false, id, ...extra });

test("the list follows welcome and myrooms, and a room joined is looked at", () => {
  const rooms = new Rooms();
  rooms.welcome(["lobby"], "lobby");
  assert.equal(rooms.current, "lobby");
  let changed = rooms.mine(["lobby", "dev"], "dev");
  assert.deepEqual(changed, { added: ["dev"], removed: [] });
  assert.equal(rooms.current, "dev");
  assert.deepEqual(rooms.list().map((r) => [r.name, r.current]), [["lobby", false], ["dev", true]]);
  // Looking at lobby; another connection of ours changes nothing we look at.
  rooms.select("lobby");
  rooms.mine(["lobby", "dev"], "dev");
  assert.equal(rooms.current, "lobby");
  // Parting the room looked at falls back to the relay's current one.
  changed = rooms.mine(["dev"], "dev");
  assert.deepEqual(changed, { added: [], removed: ["lobby"] });
  assert.equal(rooms.current, "dev");
  assert.equal(rooms.get("lobby"), undefined);
  rooms.mine([], null);
  assert.equal(rooms.current, null);
  assert.deepEqual(rooms.list(), []);
});

test("a room's join burst comes before its myrooms: the room is still new, and looked at", () => {
  const rooms = new Rooms();
  rooms.welcome(["lobby"], "lobby");
  rooms.historyStart({ kind: "history", room: "dev", count: 1, page: false, first: true });
  rooms.message(msg("dev", 0, "", { history: true }), "bob");
  rooms.topic("dev", "release friday");
  assert.deepEqual(rooms.list().map((r) => r.name), ["lobby"]);
  assert.deepEqual(rooms.mine(["lobby", "dev"], "dev"), { added: ["dev"], removed: [] });
  assert.equal(rooms.current, "dev");
  assert.equal(rooms.get("dev").topic, "release friday");
  assert.deepEqual(rooms.get("dev").ids, [0]);
});

test("unread and mention badges, the title, and looking clears them", () => {
  const rooms = new Rooms();
  rooms.welcome(["a", "b"], "a");
  rooms.select("a");
  for (let id = 0; id < 3; id++) assert.equal(rooms.message(msg("b", id), "bob").show, true);
  rooms.message(msg("b", 3, "hey bob, look"), "bob");
  rooms.message(msg("b", 4, "bobby is not you"), "bob");
  rooms.message(msg("a", 0), "bob"); // looked at: read
  rooms.message(msg("b", 5, "old", { history: true }), "bob"); // history is not news
  const b = rooms.list().find((r) => r.name === "b");
  assert.deepEqual([b.unread, b.mentions], [5, 1]);
  assert.equal(rooms.totalUnread(), 5);
  assert.equal(titleFor(rooms.totalUnread()), "(5) eaxchat");
  rooms.select("b");
  assert.equal(rooms.totalUnread(), 0);
  assert.equal(titleFor(0), "eaxchat");
  // While the tab is hidden the room looked at counts too, until seen.
  rooms.message(msg("b", 6), "bob", true);
  assert.equal(rooms.totalUnread(), 1);
  rooms.seen();
  assert.equal(rooms.totalUnread(), 0);
  // One's own words never count as a mention.
  assert.equal(rooms.message({ ...msg("a", 1, "bob says bob"), from: "bob" }, "bob").mention, false);
});

test("mentions are whole names, any case", () => {
  const cases = [
    ["bob: hi", "bob", true], ["hi Bob!", "bob", true], ["bobby", "bob", false], ["bob.smith", "bob", false],
    ["x-bob", "bob", false], ["a.b? yes", "a.b", true], ["axb", "a.b", false], ["anything", null, false],
  ];
  for (const [text, me, want] of cases) assert.equal(mentions(text, me), want, `${text} / ${me}`);
});

test("what a typed line becomes on the wire", () => {
  const cases = [
    ["hello", "dev", "/in dev hello"],
    ["//etc/hosts", "dev", "/in dev //etc/hosts"],
    ["/me waves", "dev", "/in dev /me waves"],
    ["/topic release friday", "dev", "/in dev /topic release friday"],
    ["/who", "dev", "/in dev /who"],
    ["/join ops", "dev", "/join ops"],
    ["/part", "dev", "/part dev"],
    ["/part ops", "dev", "/part ops"],
    ["/msg carol hi", "dev", "/msg carol hi"],
    ["/rooms", "dev", "/rooms"],
    ["/NICK web", "dev", "/NICK web"],
    ["hello", null, "hello"],
    ["/msg carol hi", PRIVATE, "/msg carol hi"],
  ];
  for (const [typed, current, wire] of cases) assert.deepEqual(wireText(typed, current), { wire }, typed);
  assert.ok(wireText("hello", PRIVATE).error);
  assert.equal(roomName(" #Dev "), "dev");
});

test("older pages land in id order, with no gap and no duplicate at the boundary", () => {
  const rooms = new Rooms();
  rooms.welcome(["dev"], "dev");
  // The burst on joining: ids 100..149, more before them.
  rooms.historyStart({ kind: "history", room: "dev", count: 50, page: false, first: false });
  for (let id = 100; id < 150; id++) rooms.message(msg("dev", id, "", { history: true }), "bob");
  const now = 1000;
  assert.deepEqual(rooms.olderPage("dev", now), { before: 100, limit: HISTORY_PAGE });
  // Once at a time.
  assert.equal(rooms.olderPage("dev", now + 1), null);
  assert.equal(rooms.loading("dev"), true);
  // The page: ids 50..99 and, overlapping the boundary, 100 again.
  rooms.historyStart({ kind: "history", room: "dev", count: 51, page: true, first: false });
  const placed = [];
  for (let id = 50; id <= 100; id++) placed.push(rooms.message(msg("dev", id, "", { history: true }), "bob"));
  assert.ok(placed.slice(0, 50).every((p) => p.show && p.page && p.before === 100));
  assert.equal(placed[0].top, true); // older than all shown: the view puts the page above everything
  assert.equal(placed[49].pageDone, false);
  assert.equal(placed[50].show, false); // 100 is shown already
  assert.equal(placed[50].pageDone, true);
  assert.equal(rooms.loading("dev"), false);
  const ids = rooms.get("dev").ids;
  assert.deepEqual(ids, Array.from({ length: 100 }, (_, i) => 50 + i));
  // The last page: first, so nothing more is asked.
  assert.deepEqual(rooms.olderPage("dev", now + 2), { before: 50, limit: HISTORY_PAGE });
  rooms.historyStart({ kind: "history", room: "dev", count: 2, page: true, first: true });
  rooms.message(msg("dev", 0, "", { history: true }), "bob");
  rooms.message(msg("dev", 1, "", { history: true }), "bob");
  assert.equal(rooms.olderPage("dev", now + 3), null);
  // A live message goes at the end; one out of order goes in its place.
  assert.deepEqual(rooms.message(msg("dev", 150), "bob").before, null);
  const late = rooms.message(msg("dev", 20), "bob");
  assert.equal(late.before, 50);
  assert.equal(late.top, false);
});

test("an empty page, a refused page and an unanswered one free the next ask", () => {
  const rooms = new Rooms();
  rooms.welcome(["dev"], "dev");
  rooms.historyStart({ kind: "history", room: "dev", count: 1, page: false, first: false });
  rooms.message(msg("dev", 7, "", { history: true }), "bob");
  assert.ok(rooms.olderPage("dev", 0));
  assert.equal(rooms.historyStart({ kind: "history", room: "dev", count: 0, page: true, first: true }), true);
  assert.equal(rooms.olderPage("dev", 1), null); // first: nothing older
  rooms.dropped("dev", 7); // the view trimmed it: older can be asked again, from what is left
  rooms.message(msg("dev", 8), "bob");
  assert.ok(rooms.olderPage("dev", 2));
  rooms.refused("dev");
  assert.ok(rooms.olderPage("dev", 3));
  assert.equal(rooms.olderPage("dev", 4), null);
  assert.ok(rooms.olderPage("dev", 3 + PAGE_TIMEOUT));
  // A room whose burst was empty and first has nothing to ask.
  rooms.mine(["dev", "new"], "new");
  rooms.historyStart({ kind: "history", room: "new", count: 0, page: false, first: true });
  assert.equal(rooms.olderPage("new", 0), null);
});

test("a reconnect: ids start over, and a shared-key relay's rooms are joined again quietly", () => {
  const rooms = new Rooms();
  rooms.welcome(["lobby"], "lobby");
  rooms.mine(["lobby", "dev", "ops"], "ops");
  rooms.select("dev");
  rooms.message(msg("dev", 5), "bob");
  rooms.restart();
  assert.deepEqual(rooms.get("dev").ids, []);
  assert.equal(rooms.message(msg("dev", 5), "bob").show, true); // shown again after the restart
  const { missing } = rooms.welcome(["lobby"], "lobby", true);
  assert.deepEqual(missing, ["dev", "ops"]);
  assert.equal(rooms.current, "dev"); // still looking at dev
  assert.deepEqual(rooms.list().map((r) => r.name), ["lobby", "dev", "ops"]);
  rooms.mine(["lobby", "dev"], "dev");
  rooms.mine(["lobby", "dev", "ops"], "ops");
  assert.equal(rooms.current, "dev"); // rejoined quietly: the view stays
  // Joining one by hand afterwards does switch.
  rooms.mine(["lobby", "dev", "ops", "qa"], "qa");
  assert.equal(rooms.current, "qa");
  // A members relay remembers: nothing to rejoin, and a room gone is gone.
  assert.deepEqual(rooms.welcome(["lobby"], "lobby", false), { added: ["lobby"], removed: ["dev", "ops", "qa"], missing: [] });
  assert.deepEqual(rooms.list().map((r) => r.name), ["lobby"]);
});

test("topics, other rooms and private messages", () => {
  const rooms = new Rooms();
  rooms.welcome(["lobby", "dev"], "lobby");
  rooms.listed([
    { room: "lobby", count: 3, topic: "", mode: "relay", joined: true },
    { room: "dev", count: 1, topic: "release friday", mode: "relay", joined: true },
    { room: "ops", count: 2, topic: "pager", mode: "relay", joined: false },
  ]);
  assert.equal(rooms.get("dev").topic, "release friday");
  assert.deepEqual(rooms.others, [{ room: "ops", count: 2, topic: "pager" }]);
  rooms.topic("dev", "ship it");
  assert.equal(rooms.get("dev").topic, "ship it");
  rooms.mine(["lobby", "dev", "ops"], "ops");
  assert.deepEqual(rooms.others, []);
  rooms.private(); // shown where the person looks: read
  assert.equal(rooms.totalUnread(), 0);
  rooms.private(true); // while the page is hidden: news
  const last = rooms.list().at(-1);
  assert.deepEqual([last.name, last.unread, last.mentions], [PRIVATE, 1, 1]);
  rooms.select(PRIVATE);
  assert.equal(rooms.totalUnread(), 0);
  rooms.mine(["lobby"], "lobby"); // parting rooms keeps the private conversation
  assert.ok(rooms.get(PRIVATE));
  assert.equal(rooms.current, PRIVATE);
});
