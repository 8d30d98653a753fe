// System notifications for mentions and private messages, while the tab
// is hidden. Permission is asked only when the person presses the
// Notifications button; the message text is shown only if they also tick
// "show message text" (else a notification says who, not what). The two
// choices are kept in localStorage; nothing else is.
"use strict";

const ON = "eaxchat.notify";
const WITH_TEXT = "eaxchat.notifyText";

export class Notifier {
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
  }

  get supported() {
    return "Notification" in globalThis;
  }

  // On when the person turned it on and the browser still allows it.
  get enabled() {
    return this.supported && Notification.permission === "granted" && this.storage.getItem(ON) === "1";
  }

  get withText() {
    return this.storage.getItem(WITH_TEXT) === "1";
  }

  set withText(on) {
    this.storage.setItem(WITH_TEXT, on ? "1" : "0");
  }

  // The button: asks for permission the first time (a user gesture), then
  // turns notifications on or off. Returns whether they are on.
  async toggle() {
    if (!this.supported) return false;
    if (this.enabled) {
      this.storage.setItem(ON, "0");
      return false;
    }
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    this.storage.setItem(ON, permission === "granted" ? "1" : "0");
    return this.enabled;
  }

  // A mention or a private message: a notification if the page is hidden.
  async notify(kind, from, room, text) {
    if (!this.enabled || document.visibilityState !== "hidden") return false;
    const who = from ?? "someone";
    const title = kind === "private" ? `Private message from ${who}` : `${who} mentioned you in #${room}`;
    const options = {
      body: this.withText ? text : "Open eaxchat to read it.",
      tag: `eaxchat-${kind}`,
      renotify: true,
      icon: "/icon-192.png",
    };
    try {
      const registration = await navigator.serviceWorker?.getRegistration?.();
      if (registration) {
        await registration.showNotification(title, options);
      } else {
        new Notification(title, options);
      }
      return true;
    } catch (error) {
      // The message is in the chat already; only the notification is lost.
      console.warn("eaxchat: a notification could not be shown:", error);
      return false;
    }
  }
}
