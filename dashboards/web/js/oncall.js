// The on-call console (/oncall): every active alert the signed-in staff
// member may see, grouped by severity, with its escalation tier and age,
// acknowledged from the list. A new critical alert shows a banner, flashes
// and beeps (Web Audio: the browser allows sound once the page has been
// touched or clicked). Alerts escalated to the signed-in staff member say
// so; snoozed alerts are listed apart, with their wake time, until their
// snooze ends. Anyone may take an alert on ("assign to me"); the list
// can be narrowed to the worklist of alerts nobody has reviewed, or to
// one's own. Beside the list: who is on call now, and for admins the
// deliveries that failed.
import { must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, clock, span, dayKey } from "./format.js";
import { startShell, fail } from "./shell.js";
import { Live } from "./live.js";
import { AlertSet, act, ackLine, assignButton, assigneeText, isSnoozed, isUnreviewed, severityBadge } from "./alerts.js";
import { Rota, showPaged, watchFailures } from "./paging.js";

const groups = [["critical", "Critical"], ["warning", "Warning"], ["info", "Information"]];
const cueChanges = new Set(["opened", "severity_raised", "escalated", "unsuppressed"]);
const TITLE = document.title;

const alerts = new AlertSet();
const names = new Map();
const fresh = new Set(); // critical alerts cued and not yet acknowledged or dismissed
const errors = new Map(); // the last failed acknowledgement of each alert
let cued = null; // the alert the banner tells of
let rota = null; // the on-call rota, once the session is known
let me = ""; // the signed-in username
// views narrow the list (?show=…, kept in the address).
const views = {
  all: () => true,
  unreviewed: isUnreviewed,
  mine: (a) => a.assignee === me,
};
let wakeTimer = 0;

// sound plays the cue; off when the user said so (kept in this browser).
const sound = { on: localStorage.getItem("pp-sound") !== "off", ctx: null };

function audio() {
  if (!sound.ctx) {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    sound.ctx = new AC();
    sound.ctx.addEventListener("statechange", showSound);
  }
  return sound.ctx;
}

function unlock() {
  const c = audio();
  if (c && c.state === "suspended") c.resume().catch(() => {});
}

function showSound() {
  const b = $("#sound");
  b.textContent = sound.on ? "Sound on" : "Sound off";
  b.setAttribute("aria-pressed", String(sound.on));
  const running = sound.ctx && sound.ctx.state === "running";
  $("#sound-state").textContent = !sound.on ? "New critical alerts will not beep."
    : running ? "New critical alerts beep." : "Tap or click the page once so that the browser lets it beep.";
}

function beep() {
  const cue = $("#cue");
  cue.dataset.beeps = String(Number(cue.dataset.beeps || 0) + 1);
  if (!sound.on) return;
  const c = audio();
  if (!c) return;
  if (c.state !== "running") c.resume().catch(() => {});
  let t = c.currentTime + 0.05;
  for (let i = 0; i < 3; i++) {
    const osc = c.createOscillator();
    const gain = c.createGain();
    osc.type = "sine";
    osc.frequency.value = i === 1 ? 1175 : 880;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.35, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.28);
    osc.connect(gain).connect(c.destination);
    osc.start(t);
    osc.stop(t + 0.3);
    t += 0.4;
  }
}

function nameOf(id) {
  return names.get(id) || id;
}

// cue announces a new critical alert: the banner, a flash, the beep and
// the tab's title.
function cue(a) {
  fresh.add(a.id);
  const box = $("#cue");
  box.dataset.count = String(Number(box.dataset.count) + 1);
  box.dataset.alertId = String(a.id);
  cued = a;
  showCue();
  box.hidden = false;
  box.classList.remove("flash");
  void box.offsetWidth; // restarts the animation
  box.classList.add("flash");
  document.title = `(!) ${TITLE}`;
  beep();
}

// showCue names the patient as soon as the name is known: on-call staff
// may see a patient only once an alert of theirs is active.
function showCue() {
  if (cued) $("#cue-text").textContent = `${nameOf(cued.patient)}: ${cued.sentence}`;
}

function uncue(id) {
  if (id !== undefined) fresh.delete(id);
  else fresh.clear();
  if (fresh.size === 0) {
    $("#cue").hidden = true;
    document.title = TITLE;
  }
}

function ageText(a) {
  return span(Date.now() - Date.parse(a.opened_at));
}

// wakeText says when a snoozed alert wakes: the time alone today, else
// the date too.
function wakeText(a) {
  const t = a.snoozed_until;
  return `snoozed until ${dayKey(t) === dayKey(Date.now()) ? clock(t) : when(t)}`;
}

// tierCell says how far the alert was escalated, and whether to us.
function tierCell(a) {
  const paged = rota ? rota.pagedTier(a) : "";
  if (paged) return el("strong", { class: "paged-tag", text: `Escalated to you (tier ${paged})` });
  return a.tier ? `Tier ${a.tier}` : a.severity === "critical" && a.state === "firing" ? "Not yet" : "–";
}

// row is one alert of a list; a snoozed one says when it wakes where the
// others say their escalation.
function row(a, snoozed = false) {
  const note = el("input", { id: `note-${a.id}`, name: "note", autocomplete: "off", maxlength: 500 });
  const form = el("form", { "aria-label": `Acknowledge the alert of ${nameOf(a.patient)}` },
    el("label", { for: `note-${a.id}` }, "Note", note),
    el("button", { type: "submit", id: `ack-${a.id}`, text: "Acknowledge" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const b = form.querySelector("button");
    b.disabled = true;
    try {
      const r = await act(a.id, "ack", { note: note.value.trim() });
      if (!r.ok) {
        errors.set(a.id, `Not acknowledged: ${r.error}`);
      } else {
        errors.delete(a.id);
        alerts.apply({ change: "acknowledged", alert: r.alert, actor: r.alert.acked_by, note: note.value.trim() });
        uncue(a.id);
      }
      render();
    } finally {
      b.disabled = false;
    }
  });
  const assign = assignButton(a, me, (changed) => {
    errors.delete(a.id);
    alerts.apply({ change: "assigned", alert: changed, actor: me });
    render();
    document.querySelector(`#row-${a.id} .assign`)?.focus();
  }, (text) => {
    errors.set(a.id, text);
    render();
  });
  const err = errors.get(a.id);
  const paged = rota ? rota.pagedTier(a) : "";
  return el("tr", { id: `row-${a.id}`, class: fresh.has(a.id) ? "new" : null, dataset: { alertId: a.id, state: a.state, severity: a.severity, patient: a.patient, paged } },
    el("td", { "data-label": "Patient" }, el("a", { href: `/patient?id=${encodeURIComponent(a.patient)}`, text: nameOf(a.patient) }),
      el("span", { class: "sub", text: a.patient })),
    el("td", { "data-label": "Alert" }, severityBadge(a.severity), " ", el("strong", { text: a.rule }), el("span", { class: "sub sentence", text: a.sentence })),
    el("td", { "data-label": "State", class: "state" }, a.state === "firing" ? (isUnreviewed(a) ? "Firing: nobody has reviewed it" : "Firing") : ackLine(a),
      a.assignee ? el("span", { class: "sub assignee", text: assigneeText(a, me) }) : null),
    snoozed ? el("td", { "data-label": "Wakes", class: "wake" }, wakeText(a))
      : el("td", { "data-label": "Escalation", class: "tier" }, tierCell(a)),
    el("td", { "data-label": "Age", class: "age-cell" }, el("span", { class: "age", text: ageText(a) }),
      el("span", { class: "sub", text: `since ${when(a.opened_at)}` })),
    el("td", { "data-label": "Act", class: "actions" }, a.state === "firing" ? form : "Acknowledged", assign,
      err ? el("p", { class: "error", role: "alert", text: err }) : null));
}

// table is the list of alerts in one section of the console.
function table(caption, list, snoozed) {
  const heads = ["Patient", "Alert", "State", snoozed ? "Wakes" : "Escalation", "Age", "Act"];
  return el("div", { class: "table-wrap" }, el("table", { class: "alerts-table cards" },
    el("caption", { class: "visually-hidden", text: caption }),
    el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, list.map((a) => row(a, snoozed)))));
}

function render() {
  // What someone is typing survives the redraw.
  const typing = new Map([...document.querySelectorAll("#groups input[name=note], #snoozed input[name=note]")].map((i) => [i.id, i.value]));
  const focused = document.activeElement && document.activeElement.closest("#groups, #snoozed") ? document.activeElement.id : "";
  const all = alerts.list();
  const view = views[$("#show").value] || views.all;
  const active = all.filter(view);
  const shown = active.filter((a) => !isSnoozed(a));
  const snoozed = active.filter((a) => isSnoozed(a)).sort((a, b) => Date.parse(a.snoozed_until) - Date.parse(b.snoozed_until));
  const holder = clear($("#groups"));
  for (const [sev, title] of groups) {
    const mine = shown.filter((a) => a.severity === sev);
    if (!mine.length) continue;
    holder.append(el("section", { class: "severity-group", id: `group-${sev}`, "aria-labelledby": `group-${sev}-title`, dataset: { count: mine.length } },
      el("h2", { id: `group-${sev}-title`, text: `${title} (${mine.length})` }),
      table(`${title} alerts, the most urgent first`, mine, false)));
  }
  const box = $("#snoozed");
  box.querySelector(".table-wrap").replaceWith(table("Snoozed alerts, the first to wake first", snoozed, true));
  $("#snoozed-title").textContent = `Snoozed (${snoozed.length})`;
  box.dataset.count = String(snoozed.length);
  box.hidden = snoozed.length === 0;
  for (const [id, v] of typing) {
    const input = document.getElementById(id);
    if (input) input.value = v;
  }
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  const firing = shown.filter((a) => a.state === "firing").length;
  const none = { all: "No active alerts.", unreviewed: "Nobody's review is waiting: every firing alert is taken on or has a note.", mine: "No active alert is assigned to you." };
  $("#status").textContent = shown.length ? "" : `${none[$("#show").value] || none.all}${snoozed.length ? ` ${snoozed.length} snoozed, listed below.` : ""}`;
  $("#status").hidden = shown.length > 0;
  const unreviewed = all.filter((a) => !isSnoozed(a) && isUnreviewed(a)).length;
  $("#counts").textContent = `${shown.length} ${view === views.all ? "active" : "shown"}, ${firing} not acknowledged${snoozed.length ? `, ${snoozed.length} snoozed` : ""}; ${unreviewed} nobody has reviewed`;
  $("#groups").dataset.count = String(shown.length);
  showPaged($("#paged"), shown.filter((a) => a.state === "firing" && rota && rota.pagedTier(a))
    .map((a) => ({ alert: a, tier: rota.pagedTier(a) })), nameOf);
  wakeAt(snoozed[0]);
}

// wakeAt draws the console again when the first snoozed alert wakes.
function wakeAt(first) {
  clearTimeout(wakeTimer);
  if (!first) return;
  const wait = Date.parse(first.snoozed_until) - Date.now() + 100;
  wakeTimer = setTimeout(render, Math.min(Math.max(wait, 0), 2 ** 31 - 1));
}

let namesTimer = 0;
async function loadNames() {
  const doc = await must("GET", "/v1/patients");
  for (const p of doc.patients || []) names.set(p.id, p.name || p.id);
  showCue();
  render();
}

// showRota fills the on-call panel and draws the list again: who is on
// call may have changed whose alerts were escalated to us.
function showRota() {
  rota.show($("#rota"));
  render();
}

function namesSoon() {
  clearTimeout(namesTimer);
  namesTimer = setTimeout(() => loadNames().catch(fail), 500);
}

async function main() {
  const session = await startShell();
  me = session.username;
  const show = new URLSearchParams(window.location.search).get("show");
  $("#show").value = views[show] ? show : "all";
  $("#show").addEventListener("change", () => {
    const q = new URLSearchParams(window.location.search);
    if ($("#show").value === "all") q.delete("show");
    else q.set("show", $("#show").value);
    window.history.replaceState(null, "", q.size ? `/oncall?${q}` : "/oncall");
    render();
  });
  rota = new Rota(me).start(showRota);
  if (session.role === "admin") watchFailures($("#failed"));
  $("#sound").addEventListener("click", () => {
    sound.on = !sound.on;
    localStorage.setItem("pp-sound", sound.on ? "on" : "off");
    if (sound.on) unlock();
    showSound();
  });
  for (const ev of ["pointerdown", "keydown"]) document.addEventListener(ev, unlock, { passive: true });
  $("#cue-dismiss").addEventListener("click", () => uncue());
  showSound();

  const live = new Live();
  live.on("snapshot", (m) => {
    alerts.replace(m.alerts);
    if ((m.alerts || []).some((a) => !names.has(a.patient))) namesSoon();
    render();
  });
  live.on("alert", (m) => {
    const a = m.alert;
    if (!a) return;
    alerts.apply(m);
    rota.hear(m);
    if (!names.has(a.patient)) namesSoon();
    if (a.state !== "firing") uncue(a.id);
    if (cueChanges.has(m.change) && a.severity === "critical" && a.state === "firing" && !isSnoozed(a)) cue(a);
    render();
  });
  live.start();
  const [doc] = await Promise.all([must("GET", "/v1/alerts?state=firing,acknowledged&limit=1000"), loadNames()]);
  if (!alerts.alerts.size) alerts.replace(doc.alerts);
  render();
  setInterval(() => {
    for (const a of alerts.list()) {
      const cell = document.querySelector(`#row-${a.id} .age`);
      if (cell) cell.textContent = ageText(a);
    }
  }, 15000);
}

main().catch((err) => fail(err));
