// Who is paged, as the consoles show it: the on-call rota as it stands
// now (GET /v1/oncall, read again every minute), the alerts escalated to
// the signed-in staff member, and, for admins, the deliveries that failed
// for good (GET /v1/notify/deliveries?state=failed).
import { must, SignedOut } from "./api.js";
import { el, clear } from "./dom.js";
import { when, clock, span } from "./format.js";

const MINUTE = 60000;
const goUnits = { h: 3600e3, m: 60e3, s: 1e3, ms: 1, us: 1e-3, "µs": 1e-3, ns: 1e-6 };

// goDuration reads a duration as Go writes it ("15m0s", "1h30m0s", "0s")
// in milliseconds; NaN when it is none.
export function goDuration(s) {
  const parts = String(s || "").match(/\d+(?:\.\d+)?(?:h|ms|us|µs|ns|m|s)/g);
  if (!parts || parts.join("") !== s) return NaN;
  return parts.reduce((sum, p) => {
    const [, n, unit] = /^([\d.]+)(\D+)$/.exec(p);
    return sum + Number(n) * goUnits[unit];
  }, 0);
}

// delayText says when a tier is paged: "at once", "after 15 min".
function delayText(after) {
  const d = goDuration(after);
  if (Number.isNaN(d)) return after;
  return d === 0 ? "as soon as an alert opens" : `after ${span(d)}`;
}

// every runs read now and once a minute after; a failure other than a
// sign-out is handed to failed.
function every(read, failed) {
  const run = () => read().catch((err) => {
    if (!(err instanceof SignedOut)) failed(err);
  });
  run();
  setInterval(run, MINUTE);
}

// Rota is the on-call rota as it stands now, and the escalations the
// live connection told of that named the signed-in staff member.
export class Rota {
  constructor(username) {
    this.username = username;
    this.tiers = null; // null until read
    this.readAt = 0;
    this.error = "";
    this.heard = new Map(); // alert id → the tier it was escalated to us through
  }

  // start reads the rota now and every minute, calling changed after each
  // read.
  start(changed) {
    every(async () => {
      const doc = await must("GET", "/v1/oncall");
      this.tiers = doc.tiers || [];
      this.readAt = Date.now();
      this.error = "";
      changed();
    }, (err) => {
      this.error = err.message || String(err);
      changed();
    });
    return this;
  }

  // mine is the tiers the staff member is on call in now.
  mine() {
    return new Set((this.tiers || []).filter((t) => (t.on_call || []).includes(this.username)).map((t) => t.name));
  }

  // hear takes an alert message: an escalation that names the staff
  // member among those on call was paged to them, whatever the rota says
  // a minute later.
  hear(msg) {
    if (msg.change !== "escalated" || !msg.alert) return;
    if ((msg.on_call || []).includes(this.username)) this.heard.set(msg.alert.id, msg.tier);
    else this.heard.delete(msg.alert.id);
  }

  // pagedTier is the tier through which the alert was last escalated to
  // the staff member, or "" when its last escalation was not to them.
  pagedTier(a) {
    if (!a.tier) return "";
    return this.heard.get(a.id) === a.tier || this.mine().has(a.tier) ? a.tier : "";
  }

  // show fills the "who is on call now" panel.
  show(panel) {
    const list = clear(panel.querySelector("ul"));
    const note = panel.querySelector(".rota-note");
    panel.dataset.tiers = String((this.tiers || []).length);
    if (this.error) {
      note.textContent = `Could not read the rota: ${this.error}`;
      note.classList.add("error");
      return;
    }
    note.classList.remove("error");
    if (this.tiers === null) {
      note.textContent = "Loading…";
      return;
    }
    if (!this.tiers.length) {
      note.textContent = "No on-call rota is set: critical alerts reach only the consoles and channels of the patients' care teams.";
      return;
    }
    note.textContent = `As of ${clock(this.readAt)}; critical alerts nobody acknowledges go to each tier in turn.`;
    for (const t of this.tiers) {
      const who = t.on_call || [];
      list.append(el("li", { dataset: { tier: t.name }, class: who.includes(this.username) ? "mine" : null },
        el("strong", { text: t.name }), " ", el("span", { class: "muted", text: delayText(t.after) }),
        el("span", { class: who.length ? "who" : "who nobody", text: who.length ? who.map((u) => (u === this.username ? `${u} (you)` : u)).join(", ") : "Nobody on call" })));
    }
  }
}

// showPaged fills the banner of the alerts escalated to the staff member
// that nobody has acknowledged yet: paged is [{alert, tier}], nameOf
// names a patient. The banner is redrawn only when it changes, so that a
// screen reader announces it once.
export function showPaged(box, paged, nameOf) {
  const sig = JSON.stringify(paged.map(({ alert, tier }) => [alert.id, tier, nameOf(alert.patient), alert.sentence]));
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.dataset.count = String(paged.length);
  const list = clear(box.querySelector("ul"));
  for (const { alert: a, tier } of paged) {
    list.append(el("li", { dataset: { alertId: a.id, tier } },
      el("strong", { text: `Escalated to you (tier ${tier})` }), ": ",
      el("a", { href: `/patient?id=${encodeURIComponent(a.patient)}`, text: nameOf(a.patient) }),
      ` — ${a.rule}: ${a.sentence}`));
  }
  box.hidden = paged.length === 0;
}

// watchFailures fills the admins' panel of failed deliveries now and every
// minute: it is always shown to them, empty or not, so that they know the
// check is there.
export function watchFailures(panel) {
  panel.hidden = false;
  const note = panel.querySelector(".failed-note");
  every(async () => {
    const doc = await must("GET", "/v1/notify/deliveries?state=failed");
    const list = doc.deliveries || [];
    const counts = doc.counts || {};
    const failed = counts.failed ?? list.length;
    panel.dataset.count = String(failed);
    panel.querySelector(".count").textContent = `(${failed})`;
    note.classList.remove("error");
    note.textContent = failed ? `Given up for good (refused, or still failing when their time ran out): nobody received these. ${counts.pending ?? 0} pending, ${counts.delivered ?? 0} delivered.`
      : `None: every page was delivered or is still being tried (${counts.pending ?? 0} pending, ${counts.delivered ?? 0} delivered).`;
    clear(panel.querySelector("ul")).append(...list.map((d) => el("li", { dataset: { deliveryId: d.id, alertId: d.alert_id } },
      el("strong", { text: d.channel }), d.recipient ? ` to ${d.recipient}` : " (clinic-wide)",
      el("span", { class: "sub", text: `Alert ${d.alert_id}; ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}, given up ${when(d.done_at || d.next_at)}` }),
      d.last_error ? el("span", { class: "sub error-text", text: `Last error: ${d.last_error}` }) : null)));
  }, (err) => {
    note.textContent = `Could not read the deliveries: ${err.message || err}`;
    note.classList.add("error");
  });
}
