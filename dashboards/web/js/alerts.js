// Alerts as the pages show them and act on them: the set of active alerts
// kept current from the websocket, the acknowledge / resolve / snooze
// calls, and one alert as an item of a patient's alert panel.
import { api, must } from "./api.js";
import { el, clear } from "./dom.js";
import { when, ago, capital } from "./format.js";

export const severityRank = { critical: 0, warning: 1, info: 2 };

const changeWords = {
  opened: "opened", updated: "updated", severity_raised: "severity raised", acknowledged: "acknowledged",
  resolved: "resolved", snoozed: "snoozed", escalated: "escalated", suppressed: "held back (too many alerts)",
  unsuppressed: "let through", assigned: "assigned", ack: "acknowledged", resolve: "resolved", snooze: "snoozed",
  assign: "assigned", unassign: "assigned",
};

export function isActive(a) {
  return a.state === "firing" || a.state === "acknowledged";
}

// isUnreviewed: nobody has done anything about the alert yet: it is
// firing, nobody took it on and no staff member left a note.
export function isUnreviewed(a) {
  return a.state === "firing" && !a.assignee && !(a.notes || []).some((n) => n.actor);
}

// assigneeText says who took the alert on, for the signed-in me.
export function assigneeText(a, me) {
  if (!a.assignee) return "";
  return a.assignee === me ? "Assigned to you" : `Assigned to ${a.assignee}`;
}

// assignButton takes the alert on as me, or gives it up when me has it;
// done(alert, info) is called with the changed alert, fail(text) with
// why it could not be done.
export function assignButton(a, me, done, fail) {
  const mine = a.assignee === me;
  const b = el("button", { type: "button", class: "secondary assign", text: mine ? "Give it up" : "Assign to me",
    "aria-label": `${mine ? "Give up" : "Assign to me"} the alert ${a.rule}` });
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const r = await act(a.id, mine ? "unassign" : "assign", {});
      if (r.ok) done(r.alert, { action: "assigned" });
      else fail(`Could not ${mine ? "give it up" : "assign it to you"}: ${r.error}`);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

export function isSnoozed(a, now = Date.now()) {
  return Boolean(a.snoozed_until) && Date.parse(a.snoozed_until) > now;
}

// byUrgency orders alerts as staff should look at them: critical first,
// firing before acknowledged, then the oldest first.
export function byUrgency(a, b) {
  return (severityRank[a.severity] ?? 9) - (severityRank[b.severity] ?? 9) ||
    (a.state === "firing" ? 0 : 1) - (b.state === "firing" ? 0 : 1) ||
    Date.parse(a.opened_at) - Date.parse(b.opened_at);
}

// AlertSet is the active alerts one console may see, from the snapshot
// and every alert message after it. Each alert's notes (what staff said
// on acting on it) come with the snapshot, and grow with the messages.
export class AlertSet {
  constructor(filter = () => true) {
    this.filter = filter;
    this.alerts = new Map();
  }

  replace(list) {
    this.alerts.clear();
    for (const a of list || []) if (this.filter(a) && isActive(a)) this.alerts.set(a.id, a);
  }

  // apply takes an alert message and reports whether it concerned this set.
  apply(msg) {
    const a = msg.alert;
    if (!a || !this.filter(a)) return false;
    a.notes = withNote((this.alerts.get(a.id) || a).notes, msg);
    if (isActive(a)) this.alerts.set(a.id, a);
    else this.alerts.delete(a.id);
    return true;
  }

  list() {
    return [...this.alerts.values()].sort(byUrgency);
  }
}

// act posts one action (ack, resolve or snooze) and answers {ok, alert}
// or {ok: false, error}.
export async function act(id, action, body) {
  const r = await api("POST", `/v1/alerts/${encodeURIComponent(id)}/${action}`, body);
  if (r.ok) return { ok: true, alert: r.doc };
  return { ok: false, error: (r.doc && r.doc.error) || `the server answered ${r.status}` };
}

export function severityBadge(severity) {
  return el("span", { class: `badge ${severity}`, text: capital(severity) });
}

export function stateText(a) {
  if (a.state === "acknowledged") return `Acknowledged by ${a.acked_by || "someone"}`;
  return capital(a.state);
}

// withNote returns notes with the note of an alert message added, unless
// it has none or is among them already (a console joining may hear a
// change its snapshot holds).
function withNote(notes, msg) {
  const list = [...(notes || [])];
  if (!msg.note) return list;
  const at = Date.parse(msg.at);
  if (!list.some((n) => n.change === msg.change && n.note === msg.note && Date.parse(n.at) === at)) {
    list.push({ change: msg.change, actor: msg.actor || "", note: msg.note, at: msg.at });
  }
  return list;
}

// noteLine says one note: "Acknowledged by ana, 5 Dec 2026, 14:02: “…”".
export function noteLine(n) {
  return `${capital(changeWords[n.change] || n.change)} by ${n.actor || "someone"}, ${when(n.at)}: “${n.note}”`;
}

// notesList lists an alert's notes, oldest first; null when it has none.
export function notesList(a) {
  const notes = a.notes || [];
  if (!notes.length) return null;
  return el("ul", { class: "notes", "aria-label": "Notes" }, notes.map((n) => el("li", { text: noteLine(n) })));
}

// ackLine says who acknowledged and when, and the note they gave.
export function ackLine(a) {
  if (a.state !== "acknowledged") return null;
  let s = `Acknowledged by ${a.acked_by || "someone"}`;
  if (a.acked_at) s += `, ${when(a.acked_at)}`;
  const note = (a.notes || []).findLast((n) => n.change === "acknowledged");
  if (note) s += `: “${note.note}”`;
  return s;
}

const snoozeChoices = [["1", "1 hour"], ["4", "4 hours"], ["24", "1 day"], ["72", "3 days"], ["168", "1 week"]];

// alertItem is one alert of a patient's alert panel, with its notes, the
// note field and the buttons to acknowledge, resolve or snooze it, and to
// take it on as me (or give it up). done(alert, info) is called with the
// changed alert after an action succeeds.
export function alertItem(a, me, done) {
  const id = a.id;
  const note = el("input", { id: `note-${id}`, name: "note", autocomplete: "off", maxlength: 500 });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const ackBtn = el("button", { type: "submit", value: "ack", class: "ack", text: "Acknowledge" });
  const resolveBtn = el("button", { type: "submit", value: "resolve", class: "secondary resolve", text: "Resolve" });
  const snoozeSel = el("select", { id: `snooze-${id}`, name: "hours" },
    snoozeChoices.map(([v, t]) => el("option", { value: v, text: t })));
  const snoozeBtn = el("button", { type: "submit", value: "snooze", class: "secondary snooze-btn", text: "Snooze" });
  ackBtn.hidden = a.state !== "firing";
  const form = el("form", { class: "alert-actions", "aria-label": `Act on alert ${a.rule}` },
    el("label", { for: `note-${id}`, text: "Note (optional)" }), note,
    el("div", { class: "buttons" }, ackBtn, resolveBtn,
      el("div", { class: "snooze" }, el("div", {}, el("label", { for: `snooze-${id}`, text: "Snooze for" }), snoozeSel), snoozeBtn)),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const action = (ev.submitter && ev.submitter.value) || (a.state === "firing" ? "ack" : "");
    if (!action || (action === "ack" && a.state !== "firing")) return; // Enter in the note of an acknowledged alert
    const body = { note: note.value.trim() };
    if (action === "snooze") body.until = new Date(Date.now() + Number(snoozeSel.value) * 3600e3).toISOString();
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    error.hidden = true;
    try {
      const r = await act(id, action, body);
      if (!r.ok) {
        error.textContent = `Could not ${action === "ack" ? "acknowledge" : action}: ${r.error}`;
        error.hidden = false;
        return;
      }
      done(r.alert, { action });
    } finally {
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  });

  const history = el("details", { class: "history" }, el("summary", { text: "History" }), el("ol"));
  history.addEventListener("toggle", () => {
    if (history.open) loadHistory(id, history.querySelector("ol"));
  });

  const meta = [`${stateText(a)}`, `opened ${when(a.opened_at)} (${ago(a.opened_at)})`];
  if (a.tier) meta.push(`on-call tier ${a.tier}`);
  if (isSnoozed(a)) meta.push(`snoozed until ${when(a.snoozed_until)}`);
  if (a.forecast) meta.push("forecast");
  if (a.not_judged) meta.push("no longer judged: too little data");
  return el("li", {
    class: `alert-item ${a.severity}`, id: `alert-${id}`,
    dataset: { alertId: id, state: a.state, severity: a.severity, rule: a.rule },
  },
  el("div", {}, severityBadge(a.severity), " ", el("strong", { text: a.rule })),
  el("p", { class: "meta", text: meta.join(" · ") }),
  el("p", { class: "sentence", text: a.sentence }),
  el("p", { class: "assignee" }, assigneeText(a, me) || "Nobody has taken it on. ", assignButton(a, me, done, (text) => {
    error.textContent = text;
    error.hidden = false;
  })),
  // Who acknowledged: in the notes when they gave one.
  a.state === "acknowledged" && !(a.notes || []).some((n) => n.change === "acknowledged") ? el("p", { class: "acked", text: `Acknowledged by ${a.acked_by || "someone"}${a.acked_at ? `, ${when(a.acked_at)}` : ""}` }) : null,
  notesList(a),
  form, history);
}

// loadHistory fills list with every step of the alert's life.
export async function loadHistory(id, list) {
  clear(list).append(el("li", { text: "Loading…" }));
  try {
    const doc = await must("GET", `/v1/alerts/${encodeURIComponent(id)}`);
    clear(list);
    for (const e of doc.events || []) {
      let s = `${when(e.at)}: ${changeWords[e.kind] || e.kind}`;
      if (e.actor) s += ` by ${e.actor}`;
      if (e.note) s += ` — “${e.note}”`;
      list.append(el("li", { text: s }));
    }
    if (!list.children.length) list.append(el("li", { text: "No steps recorded." }));
  } catch (err) {
    clear(list).append(el("li", { class: "error", text: `Could not load the history: ${err.message}` }));
  }
}
