// The part of e2e.js's E2e that settles a commit of this device sent on a
// connection that dropped (or before a reload): the relay sends `myrooms`
// before the rooms' history, so a commit is taken if the history shows it
// (byte for byte: finished as `mls-ok` would) and dropped, to be made
// again, if it has not within SETTLE_AFTER. A commit in flight is kept in
// the store with its Welcome (keptPending), so a reload settles it too.
// Mixed into E2e's prototype; `this` is the E2e.
"use strict";

export const resume = {
  // A reconnect's myrooms: the history follows; what it has not shown
  // within `settleAfter` is settled as lost.
  settleLater() {
    if (this.unanswered.size === 0 || this.settling) return;
    this.settling = setTimeout(() => {
      this.settling = null;
      this.dropUnanswered().catch((error) => this.show(null, "error", `! ${error.message}`));
    }, this.settleAfter);
    this.settling.unref?.(); // node (the tests): a wait keeps no process alive
  },

  // A commit of ours the history did not show never reached the relay. An
  // External Commit waits again; an add or removal is made again.
  async dropUnanswered() {
    const rooms = [...this.unanswered];
    this.unanswered.clear();
    for (const room of rooms) {
      if (this.joining.delete(room)) {
        this.awaitGroup(room);
        continue;
      }
      const g = this.groups.get(room);
      if (!g?.pending || g.pending.creating) continue;
      const { pending } = g;
      g.pending = null;
      for (const name of pending.adding ?? []) g.adds.add(name);
      this.show(room, "notice", `* #${room}: your last change to the group was lost with the connection; making it again`);
      await this.flush(room);
      await this.drive(room);
    }
  },

  // A group message that is our own commit still waiting for its answer:
  // the relay took it (the history shows it after a reconnect).
  async ownCommitSeen(room, event) {
    const sent = this.joining.get(room)?.commit ?? this.groups.get(room)?.pending?.commit;
    if (!sent || sent !== event.data) return false;
    this.unanswered.delete(room);
    if (event.history) this.showText(event, null, "(the group changed here)");
    await this.accepted(room);
    return true;
  },

  // A commit in flight, as the store keeps it (not the first GroupInfo:
  // a page that goes before its answer makes the group again).
  keptPending(pending) {
    if (!pending || pending.creating) return null;
    const { state, welcome, removes, adding, commit } = pending;
    return { state: this.mls.storable(state), welcome, removes, adding, commit };
  }
};
