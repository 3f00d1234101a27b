// Live is the console's websocket (/v1/ws): it hands each message to the
// handlers of its type, keeps the subscriptions across reconnections, and
// reconnects with a growing, jittered delay after any close (the server
// evicts a console that falls behind with 1008 and says goodbye with 1001
// when it stops); each reconnection brings a fresh snapshot.
import { api, SignedOut } from "./api.js";
import { setLive } from "./shell.js";
import { outage, recovered, usesLive } from "./outage.js";

export class Live {
  constructor() {
    this.handlers = new Map();
    this.patients = null; // the subscription, sent again on each connection
    this.delay = 1000;
    this.ws = null;
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  start() {
    usesLive();
    this.connect();
    return this;
  }

  // subscribe replaces the patients whose samples are sent.
  subscribe(patients) {
    this.patients = [...patients];
    this.sendSubscription();
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  sendSubscription() {
    if (this.patients !== null) this.send({ type: "subscribe", patients: this.patients, batch: true });
  }

  connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${window.location.host}/v1/ws`);
    this.ws = ws;
    setLive(this.delay > 1000 ? "reconnecting" : "connecting");
    ws.addEventListener("open", () => this.sendSubscription());
    ws.addEventListener("message", (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "subscribed") document.body.dataset.subscribed = (msg.patients || []).join(",");
      if (msg.type === "hello") {
        this.delay = 1000;
        setLive("live");
        recovered();
      }
      for (const fn of this.handlers.get(msg.type) || []) {
        try {
          fn(msg);
        } catch (err) {
          console.error(err);
        }
      }
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      setLive("reconnecting");
      outage("The live connection to patientpulse is lost");
      const wait = this.delay * (0.5 + Math.random() / 2);
      this.delay = Math.min(this.delay * 2, 30000);
      setTimeout(() => this.reconnect(), wait);
    });
  }

  // reconnect checks the session first: when it has ended, the API's 401
  // sends the browser to the sign-in form instead.
  async reconnect() {
    try {
      await api("GET", "/v1/session");
    } catch (err) {
      if (err instanceof SignedOut) return; // the page is on its way to /signin
      // offline: the connection fails too, and is tried again later
    }
    this.connect();
  }
}
