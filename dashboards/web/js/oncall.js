// The on-call console (/oncall): every active alert the signed-in staff
// member may see, grouped by severity, with its escalation tier and age,
// acknowledged from the list. A new critical alert shows a banner, flashes
// and beeps (Web Audio: the browser allows sound once the page has been
// touched or clicked). Snoozed alerts stay out of the list until their
// snooze ends.
import { must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, span } from "./format.js";
import { startShell, fail } from "./shell.js";
import { Live } from "./live.js";
import { AlertSet, act, ackLine, isSnoozed, severityBadge } from "./alerts.js";

const groups = [["critical", "Critical"], ["warning", "Warning"], ["info", "Information"]];
const cueChanges = new Set(["opened", "severity_raised", "escalated", "unsuppressed"]);
const TITLE = document.title;

const alerts = new AlertSet();
const names = new Map();
const fresh = new Set(); // critical alerts cued and not yet acknowledged or dismissed
const errors = new Map(); // the last failed acknowledgement of each alert
let cued = null; // the alert the banner tells of

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

function row(a) {
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
  const tier = a.tier ? `Tier ${a.tier}` : a.severity === "critical" && a.state === "firing" ? "Not yet" : "–";
  const err = errors.get(a.id);
  return el("tr", { id: `row-${a.id}`, class: fresh.has(a.id) ? "new" : null, dataset: { alertId: a.id, state: a.state, severity: a.severity, patient: a.patient } },
    el("td", { "data-label": "Patient" }, el("a", { href: `/patient?id=${encodeURIComponent(a.patient)}`, text: nameOf(a.patient) }),
      el("span", { class: "sub", text: a.patient })),
    el("td", { "data-label": "Alert" }, severityBadge(a.severity), " ", el("strong", { text: a.rule }), el("span", { class: "sub sentence", text: a.sentence })),
    el("td", { "data-label": "State", class: "state" }, a.state === "firing" ? "Firing" : ackLine(a, alerts.notes.get(a.id))),
    el("td", { "data-label": "Escalation", class: "tier" }, tier),
    el("td", { "data-label": "Age", class: "age-cell" }, el("span", { class: "age", text: ageText(a) }),
      el("span", { class: "sub", text: `since ${when(a.opened_at)}` })),
    el("td", { "data-label": "Acknowledge", class: "actions" }, a.state === "firing" ? form : "Done",
      err ? el("p", { class: "error", role: "alert", text: err }) : null));
}

function render() {
  // What someone is typing survives the redraw.
  const typing = new Map([...document.querySelectorAll("#groups input[name=note]")].map((i) => [i.id, i.value]));
  const focused = document.activeElement && document.activeElement.closest("#groups") ? document.activeElement.id : "";
  const shown = alerts.list().filter((a) => !isSnoozed(a));
  const holder = clear($("#groups"));
  for (const [sev, title] of groups) {
    const mine = shown.filter((a) => a.severity === sev);
    if (!mine.length) continue;
    holder.append(el("section", { class: "severity-group", id: `group-${sev}`, "aria-labelledby": `group-${sev}-title`, dataset: { count: mine.length } },
      el("h2", { id: `group-${sev}-title`, text: `${title} (${mine.length})` }),
      el("div", { class: "table-wrap" }, el("table", { class: "alerts-table cards" },
        el("caption", { class: "visually-hidden", text: `${title} alerts, the most urgent first` }),
        el("thead", {}, el("tr", {}, ["Patient", "Alert", "State", "Escalation", "Age", "Acknowledge"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, mine.map(row))))));
  }
  for (const [id, v] of typing) {
    const input = document.getElementById(id);
    if (input) input.value = v;
  }
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  const firing = shown.filter((a) => a.state === "firing").length;
  $("#status").textContent = shown.length ? "" : "No active alerts.";
  $("#status").hidden = shown.length > 0;
  $("#counts").textContent = `${shown.length} active, ${firing} not acknowledged`;
  $("#groups").dataset.count = String(shown.length);
}

let namesTimer = 0;
async function loadNames() {
  const doc = await must("GET", "/v1/patients");
  for (const p of doc.patients || []) names.set(p.id, p.name || p.id);
  showCue();
  render();
}

function namesSoon() {
  clearTimeout(namesTimer);
  namesTimer = setTimeout(() => loadNames().catch(fail), 500);
}

async function main() {
  await startShell();
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
