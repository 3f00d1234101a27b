// A page's one-tap acknowledgement (/a/{token}): the link a mail or a push
// notification carries. Signed out, it sends the browser to the sign-in
// form and back here; then it opens the alert the token names and
// acknowledges it with one tap, as the staff member signed in (the API
// decides whether they may, and audits it). An expired or invalid link,
// an alert already acknowledged or resolved, and one whose patient is
// not in the staff member's care each say so, with the way to the console.
import { api, returnAfterSignIn, SignedOut } from "./api.js";
import { el, $, append, clear } from "./dom.js";
import { when, ago, clock, capital } from "./format.js";
import { startShell, fail } from "./shell.js";
import { act, severityBadge } from "./alerts.js";

const NOTE = "acknowledged from a page link";

let me = null;

// stop ends the page with a message and the way to the console.
function stop(message) {
  const status = $("#status");
  status.textContent = message;
  status.className = "error";
  status.dataset.outcome = "error";
  $("#alert").hidden = true;
  showLinks(null);
}

function showLinks(a) {
  const links = clear($("#links"));
  if (a) append(links, el("a", { id: "to-patient", href: `/patient?id=${encodeURIComponent(a.patient)}`, text: "Open the patient's page" }));
  append(links, el("a", { id: "to-console", href: "/oncall", text: "Open the alerts console" }));
  links.hidden = false;
}

// settled says what became of an alert that can no longer be
// acknowledged; "" when it still can.
function settled(a) {
  if (a.state === "acknowledged") {
    const by = a.acked_by === me.username ? "you" : a.acked_by || "someone";
    return `Already acknowledged by ${by}${a.acked_at ? ` at ${when(a.acked_at)}` : ""}: nothing more to do here.`;
  }
  if (a.state === "resolved") {
    const by = !a.resolved_by || a.resolved_by === "patientpulse" ? "patientpulse (the condition cleared)"
      : a.resolved_by === me.username ? "you" : a.resolved_by;
    return `Resolved by ${by}${a.resolved_at ? ` at ${when(a.resolved_at)}` : ""}: nothing more to do here.`;
  }
  if (a.state !== "firing") return `This alert is ${a.state}: it cannot be acknowledged.`;
  return "";
}

function show(a, patientName) {
  const card = $("#alert");
  card.dataset.alertId = String(a.id);
  card.dataset.state = a.state;
  card.className = `ack-card ${a.severity}`;
  clear($("#alert-severity")).append(severityBadge(a.severity));
  $("#alert-rule").textContent = a.rule;
  $("#alert-sentence").textContent = a.sentence;
  clear($("#alert-patient")).append(patientName ? `${patientName} ` : "", el("span", { class: "muted", text: patientName ? `(${a.patient})` : a.patient }));
  $("#alert-state").textContent = a.state === "acknowledged" ? `Acknowledged by ${a.acked_by || "someone"}` : capital(a.state);
  $("#alert-tier").textContent = a.tier ? `Tier ${a.tier}` : "No tier paged yet";
  $("#alert-opened").textContent = `${when(a.opened_at)} (${ago(a.opened_at)})`;
  card.hidden = false;
  const done = settled(a);
  $("#ack").hidden = done !== "";
  $("#status").textContent = done || "Tap Acknowledge to tell the team you are on it: escalation stops.";
  $("#status").dataset.outcome = done ? "settled" : "open";
  showLinks(a);
}

// load answers the alert and its patient's name ("" when the API does
// not give it), or null after saying why not.
async function load(id) {
  const r = await api("GET", `/v1/alerts/${encodeURIComponent(id)}`);
  if (r.status === 403) {
    stop(me.role === "oncall"
      ? "You cannot open this alert: it is no longer active, so its patient is no longer shown to on-call staff."
      : "You cannot open this alert: its patient is not in your care.");
    return null;
  }
  if (r.status === 404) {
    stop("This alert no longer exists.");
    return null;
  }
  if (!r.ok) throw new Error((r.doc && r.doc.error) || `the server answered ${r.status}`);
  const p = await api("GET", `/v1/patients/${encodeURIComponent(r.doc.alert.patient)}`);
  return { alert: r.doc.alert, name: p.ok && p.doc ? p.doc.name || "" : "" };
}

async function acknowledge(id, name) {
  const button = $("#ack");
  const error = $("#ack-error");
  button.disabled = true;
  error.hidden = true;
  try {
    const r = await act(id, "ack", { note: NOTE });
    if (r.ok) {
      show(r.alert, name);
      const done = $("#ack-done");
      done.textContent = `Acknowledged by you at ${clock(r.alert.acked_at || Date.now())} — escalation stopped.`;
      done.hidden = false;
      $("#status").textContent = "";
      $("#status").dataset.outcome = "acknowledged";
      done.focus();
      return;
    }
    // Someone else was quicker, or it resolved meanwhile: show it as it is.
    const now = await load(id);
    if (now) show(now.alert, now.name);
    error.textContent = `Not acknowledged: ${r.error}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

async function main() {
  returnAfterSignIn();
  me = await startShell();
  const token = window.location.pathname.split("/").filter(Boolean).pop() || "";
  const link = await api("GET", `/v1/ack-links/${encodeURIComponent(token)}`);
  if (!link.ok) {
    const why = link.status === 404 || link.status === 410 ? (link.doc && link.doc.error) || "not a valid page link"
      : `cannot open this page link now (the server answered ${link.status}); try again shortly`;
    stop(`${capital(why)}.`);
    return;
  }
  const id = link.doc.alert_id;
  const got = await load(id);
  if (!got) return;
  show(got.alert, got.name);
  $("#ack").addEventListener("click", () => acknowledge(id, got.name).catch((err) => fail(err, "#ack-error")));
}

main().catch((err) => {
  fail(err);
  if (!(err instanceof SignedOut)) showLinks(null);
});
