// A patient's page (/patient?id=ID&days=30): charts of each kind of data
// against the plan's targets over 7, 30 or 90 days, the lab results of
// the last two years (labs are sparse) with their reference ranges, a
// timeline of plan changes and lab results, the patient's alerts with
// their actions, the staff's notes on the patient, and the plan. New
// samples and alert changes come over the websocket and are drawn
// without a reload.
import { api, must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, ago, day } from "./format.js";
import { startShell, fail } from "./shell.js";
import { Live } from "./live.js";
import { AlertSet, alertItem, notesList, severityBadge } from "./alerts.js";
import { PlanView } from "./plan.js";
import { chartSpecs, Chart, targetsOf } from "./charts.js";
import { setupReport } from "./report.js";
import { ChangePanel } from "./change.js";
import { Procedures } from "./procedures.js";
import { loadCatalog } from "./catalog.js";
import { LabPanel } from "./labs.js";
import { renderTimeline } from "./timeline.js";
import { PatientNotes } from "./notes.js";

// TYPES are the measurements the charts read over the page's span; labs
// are read over LAB_DAYS, in spans the series endpoint takes (400 days at
// most).
const TYPES = ["sleep", "activity", "heart_rate", "symptoms", "dose", "vitals"];
const LAB_DAYS = 730;
const LAB_CHUNK_DAYS = 365;
const RANGES = [7, 30, 90];
const statusWords = { critical: "Critical", attention: "Needs attention", fine: "Fine" };

const params = new URLSearchParams(window.location.search);
const patientId = params.get("id") || "";
const state = {
  days: RANGES.includes(Number(params.get("days"))) ? Number(params.get("days")) : 30,
  from: 0, to: 0,
  raw: {}, keys: {}, labsFrom: 0,
  plan: null, targets: [], spans: [], markers: [], treatments: [], view: null,
  loaded: false, pending: [],
  status: null, details: null,
};
const alerts = new AlertSet((a) => a.patient === patientId);
const charts = [];
let labPanel;
let live;
let planView;
let changePanel; // "Is the change working?"
let me = "";

const base = `/v1/patients/${encodeURIComponent(patientId)}`;

function keyOf(p) {
  const t = p.tags || {};
  return `${p.ms}|${t.device || ""}|${t.instrument || ""}|${t.medication || ""}|${t.analyte || ""}`;
}

// fetchSeries reads one type over [from, to), halving the span while the
// server says it holds too many points for one answer.
async function fetchSeries(type, from, to, depth = 0) {
  const q = new URLSearchParams({ type, from: new Date(from).toISOString(), to: new Date(to).toISOString() });
  const r = await api("GET", `${base}/series?${q}`);
  if (r.status === 422 && depth < 5) {
    const mid = from + Math.floor((to - from) / 2);
    const [a, b] = await Promise.all([fetchSeries(type, from, mid, depth + 1), fetchSeries(type, mid, to, depth + 1)]);
    return a.concat(b);
  }
  if (!r.ok) throw new Error((r.doc && r.doc.error) || `${type}: ${r.status}`);
  return r.doc.points || [];
}

async function loadSeries() {
  state.loaded = false;
  $("#charts").dataset.ready = "false";
  $("#charts").setAttribute("aria-busy", "true");
  state.to = Date.now() + 10 * 60e3; // devices' clocks may run a little ahead
  state.from = Date.now() - state.days * 24 * 3600e3;
  state.labsFrom = Date.now() - LAB_DAYS * 24 * 3600e3;
  const [all, labs] = await Promise.all([Promise.all(TYPES.map((t) => fetchSeries(t, state.from, state.to))), fetchLabs()]);
  TYPES.forEach((t, i) => fill(t, all[i]));
  fill("labs", labs);
  state.loaded = true;
  for (const s of state.pending.splice(0)) addSample(s);
}

// fetchLabs reads the lab results of the last LAB_DAYS, a year at a time.
async function fetchLabs() {
  const spans = [];
  for (let from = state.labsFrom; from < state.to; from += LAB_CHUNK_DAYS * 24 * 3600e3) {
    spans.push([from, Math.min(state.to, from + LAB_CHUNK_DAYS * 24 * 3600e3)]);
  }
  return (await Promise.all(spans.map(([from, to]) => fetchSeries("labs", from, to)))).flat();
}

function fill(type, points) {
  state.raw[type] = [];
  state.keys[type] = new Map();
  for (const p of points) addPoint(type, { time: p.time, tags: p.tags, fields: p.fields });
}

// addPoint files one point, oldest first; a point of the same device and
// time replaces the one stored (as InfluxDB does).
function addPoint(type, p) {
  p.ms = Date.parse(p.time);
  if (!(p.ms >= (type === "labs" ? state.labsFrom : state.from))) return false;
  const list = state.raw[type];
  const key = keyOf(p);
  const old = state.keys[type].get(key);
  if (old) {
    Object.assign(old, p);
    return true;
  }
  state.keys[type].set(key, p);
  let i = list.length;
  while (i > 0 && list[i - 1].ms > p.ms) i--;
  list.splice(i, 0, p);
  return true;
}

let redrawTimer = 0;
const dirty = new Set();

// addSamples takes a samples message: the points of one stored device
// message.
function addSamples(m) {
  if (m.patient !== patientId) return;
  for (const s of m.samples || []) addSample(s);
}

function addSample(s) {
  if (!TYPES.includes(s.measurement) && s.measurement !== "labs") return;
  if (!state.loaded) {
    state.pending.push(s);
    return;
  }
  if (!addPoint(s.measurement, { time: s.time, tags: s.tags || {}, fields: s.fields || {} })) return;
  dirty.add(s.measurement);
  // A burst of samples (a watch catching up) is drawn once.
  if (!redrawTimer) {
    redrawTimer = setTimeout(() => {
      redrawTimer = 0;
      const types = [...dirty];
      dirty.clear();
      draw((c) => types.some((t) => c.reads(t)), types.includes("labs"));
      showFacts();
    }, 100);
  }
}

function chartState() {
  return { raw: state.raw, plan: state.plan, targets: state.targets, spans: state.spans, markers: state.markers, treatments: state.treatments,
    from: state.from, to: state.to, view: state.view, zoom: setView };
}

// The charts' shared zoom: null shows the whole period; else {from, to}
// (ms), at least an hour, within the period.
const MIN_VIEW = 3600e3;
function setView(from, to) {
  const lo = state.from, hi = Math.max(state.to, Date.now());
  if (from === null || (from <= lo && to >= hi)) {
    state.view = null;
  } else {
    let span = Math.min(Math.max(to - from, MIN_VIEW), hi - lo);
    from = Math.min(Math.max(from, lo), hi - span);
    state.view = { from, to: from + span };
  }
  draw(() => true, false);
  showView();
}

// showView says what the charts show, and offers what can be done.
function showView() {
  const lo = state.from, hi = Math.max(state.to, Date.now());
  const v = state.view;
  $("#zoom-state").textContent = v ? `Showing ${when(v.from)} to ${when(v.to)}` : "Showing the whole period";
  $("#zoom-out").disabled = $("#zoom-reset").disabled = !v;
  $("#pan-earlier").disabled = !v || v.from <= lo;
  $("#pan-later").disabled = !v || v.to >= hi;
}

function setupZoom() {
  const view = () => state.view || { from: state.from, to: Math.max(state.to, Date.now()) };
  $("#zoom-in").addEventListener("click", () => {
    const v = view(), mid = (v.from + v.to) / 2, half = (v.to - v.from) / 4;
    setView(mid - half, mid + half);
  });
  $("#zoom-out").addEventListener("click", () => {
    const v = view(), mid = (v.from + v.to) / 2, span = v.to - v.from;
    setView(mid - span, mid + span);
  });
  $("#pan-earlier").addEventListener("click", () => {
    const v = view(), step = (v.to - v.from) / 2;
    setView(v.from - step, v.to - step);
  });
  $("#pan-later").addEventListener("click", () => {
    const v = view(), step = (v.to - v.from) / 2;
    setView(v.from + step, v.to + step);
  });
  $("#zoom-reset").addEventListener("click", () => setView(null, null));
  showView();
}

function draw(which = () => true, labs = true) {
  const s = chartState();
  for (const c of charts) if (which(c)) c.update(s);
  if (labs && labPanel) {
    labPanel.update({ ...s, from: state.labsFrom });
    renderTimeline($("#timeline-list"), { raw: state.raw, history: state.history, targets: state.targets });
  }
  $("#charts").dataset.ready = "true";
  $("#charts").setAttribute("aria-busy", "false");
}

function planChanged(plan, history) {
  state.plan = plan;
  state.targets = targetsOf(plan);
  state.history = history;
  // Each version's targets, over the span it was in force (history is
  // oldest first).
  state.spans = history.map((v, i) => ({
    version: v.version, from: Date.parse(v.effective), targets: targetsOf(v),
    to: i + 1 < history.length ? Date.parse(history[i + 1].effective) : Infinity,
  }));
  state.markers = history.map((v) => ({ version: v.version, ms: Date.parse(v.effective) }));
  if (changePanel) {
    changePanel.versions(history);
    changePanel.load().catch(fail);
  }
}

function lastData() {
  let last = 0;
  for (const t of TYPES) {
    const l = state.raw[t] || [];
    if (l.length && l[l.length - 1].ms > last) last = l[l.length - 1].ms;
  }
  return last;
}

function showFacts() {
  const d = state.details;
  if (!d) return;
  const last = lastData();
  const facts = clear($("#facts"));
  const fact = (label, value, attrs = {}) => facts.append(el("li", attrs, `${label}: `, el("strong", {}, value)));
  fact("Id", d.id);
  fact("Last data", last ? `${when(last)} (${ago(last)})` : `none in the last ${state.days} days`, { id: "last-data" });
  const devices = (d.devices || []).filter((x) => !x.revoked_at).map((x) => x.id);
  fact("Devices", devices.length ? devices.join(", ") : "none enrolled");
  fact("Care team", (d.care_team || []).join(", ") || "nobody");
  fact("Added", day(d.created_at));
}

function showStatus() {
  const list = alerts.list();
  const status = state.status || (list.some((a) => a.severity === "critical") ? "critical" : list.length ? "attention" : "fine");
  const holder = clear($("#patient-status"));
  holder.dataset.status = status;
  holder.append(el("span", { class: `badge ${status}`, text: statusWords[status] || status }));
}

// renderAlerts lays out the active alerts, keeping the items that did not
// change, and in those that did, what someone is typing into a note and
// where the focus was.
function renderAlerts() {
  const list = $("#alert-list");
  const current = alerts.list();
  const keep = new Map([...list.children].map((li) => [li.dataset.alertId, li]));
  const items = current.map((a) => {
    const stamp = `${a.state}|${a.updated_at}|${a.tier || ""}|${a.snoozed_until || ""}|${a.severity}|${(a.notes || []).length}|${a.assignee || ""}`;
    const old = keep.get(String(a.id));
    if (old && old.dataset.stamp === stamp) return old;
    const li = alertItem(a, me, (changed, info) => acted(changed, info));
    li.dataset.stamp = stamp;
    if (old) {
      const note = old.querySelector("input[name=note]");
      const fresh = li.querySelector("input[name=note]");
      if (note && fresh) fresh.value = note.value;
      const focus = old.contains(document.activeElement) ? document.activeElement : null;
      const twin = focus && (focus.id ? li.querySelector(`[id="${focus.id}"]`)
        : focus.classList.length ? li.querySelector(`.${[...focus.classList].join(".")}`) : null);
      old.replaceWith(li);
      if (twin) twin.focus();
    }
    return li;
  });
  for (const li of [...list.children]) if (!items.includes(li)) li.remove();
  items.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  $("#alerts").dataset.count = String(current.length);
  $("#alerts-empty").hidden = current.length > 0;
  showStatus();
}

function acted(alert, info) {
  const assigned = info.action === "assigned"; // sent without the note field's text
  const note = document.getElementById(`note-${alert.id}`);
  if (note && !assigned) note.value = ""; // said and recorded
  alerts.apply({ change: info.action, alert }); // its note comes with the change, over the live connection
  renderAlerts();
  if (alert.state === "resolved") loadResolved().catch(fail);
  const h = $(`#alert-${alert.id} ${assigned ? ".assign" : ".alert-actions button:not([hidden])"}`);
  if (h) h.focus();
}

async function loadResolved() {
  const doc = await must("GET", `/v1/alerts?state=resolved&patient=${encodeURIComponent(patientId)}&limit=5`);
  const list = clear($("#resolved ol"));
  for (const a of doc.alerts || []) {
    list.append(el("li", {}, severityBadge(a.severity), " ", a.sentence,
      el("span", { class: "muted", text: ` (resolved ${when(a.resolved_at)}${a.resolved_by ? ` by ${a.resolved_by}` : ""})` }),
      notesList(a)));
  }
  if (!list.children.length) list.append(el("li", { class: "muted", text: "None." }));
}

let verdictTimer = 0;
function verdictsSoon() {
  clearTimeout(verdictTimer);
  verdictTimer = setTimeout(() => planView.reloadVerdicts().catch(fail), 500);
}

function setupRange() {
  $(`#days-${state.days}`).checked = true;
  $("#range").addEventListener("change", async (ev) => {
    state.days = Number(ev.target.value);
    const q = new URLSearchParams(window.location.search);
    q.set("days", String(state.days));
    window.history.replaceState(null, "", `/patient?${q}`);
    try {
      await loadSeries();
      state.view = null; // a new period is shown whole
      draw();
      showView();
      showFacts();
    } catch (err) {
      fail(err);
    }
  });
}

// notYours says why the page shows nothing of the patient (a 403), in
// place of everything it would show.
function notYours(me) {
  for (const sel of [".layout", "#facts", "#patient-status"]) $(sel).hidden = true;
  const status = clear($("#status"));
  status.hidden = false;
  status.append(me.role === "oncall"
    ? "On-call staff can open a patient's page while the patient has an active alert, and for a day after it is resolved; this patient has none. "
    : "This patient is not in your care: an admin can add you to their care team. ",
  el("a", { href: me.role === "oncall" ? "/oncall" : "/", text: me.role === "oncall" ? "Open the alerts console" : "Back to your patients" }));
  document.body.dataset.forbidden = "true";
}

async function main() {
  const session = await startShell();
  me = session.username;
  if (!patientId) throw new Error("no patient was named: open a patient from the list");
  if (!window.uPlot) throw new Error("the chart bundle did not load");
  setupRange();
  setupZoom();
  setupReport(patientId);

  live = new Live();
  let hellos = 0;
  live.on("hello", (m) => {
    if (!(m.patients || []).includes(patientId) && !document.body.dataset.forbidden) {
      $("#status").textContent = "This patient is no longer one you may follow live.";
      $("#status").hidden = false;
    }
    // Back after a lost connection: what was sent meanwhile is read again.
    if (++hellos > 1 && state.loaded) loadSeries().then(() => { draw(); showFacts(); }).catch(fail);
  });
  live.on("snapshot", (m) => {
    alerts.replace(m.alerts);
    renderAlerts();
  });
  live.on("alert", (m) => {
    if (!alerts.apply(m)) return;
    renderAlerts();
    verdictsSoon();
    if (m.change === "resolved") loadResolved().catch(fail);
  });
  live.on("patient_status", (m) => {
    if (m.patient !== patientId) return;
    state.status = m.status;
    showStatus();
  });
  live.on("samples", addSamples);
  live.on("error", (m) => console.warn("websocket:", m.error));
  live.subscribe([patientId]);
  live.start();

  const catalogReq = loadCatalog();
  const detailsReq = api("GET", base);
  const alertsReq = must("GET", `/v1/alerts?state=firing,acknowledged&patient=${encodeURIComponent(patientId)}`);
  alertsReq.catch(() => {}); // refused with the details when the patient is not one's own: notYours says why
  changePanel = new ChangePanel($("#change"), patientId);
  planView = new PlanView($("#plan"), patientId, (plan, history) => {
    planChanged(plan, history);
    draw();
  });
  if (session.role === "oncall") {
    // Nothing is offered that the role cannot do: on-call staff read the
    // plan, its clinicians and admins change it.
    $("#plan-edit").hidden = true;
    $("#plan-form").hidden = true;
    $("#plan-edit").after(el("p", { id: "plan-who", class: "muted small", text: "The patient's clinicians and admins change the plan." }));
  }
  const details = await detailsReq;
  if (details.status === 403) {
    live.subscribe([]);
    notYours(session);
    return;
  }
  if (!details.ok) throw new Error((details.doc && details.doc.error) || `patient: ${details.status}`);
  state.details = details.doc;
  $("#patient-name").textContent = details.doc.name || details.doc.id;
  document.title = `${details.doc.name || details.doc.id} · patientpulse`;
  const notes = new PatientNotes($("#patient-notes"), base);
  const procedures = new Procedures($("#procedures"), base, session.role !== "oncall", () => {
    state.treatments = procedures.markers();
    if (charts.length) draw(() => true, false);
  });
  const [{ plan, history }, active] = await Promise.all([planView.load(), alertsReq, loadSeries(), loadResolved(), catalogReq, notes.load(),
    procedures.load()]);
  if (!alerts.alerts.size) alerts.replace(active.alerts);
  renderAlerts();
  planChanged(plan, history);
  const holder = $("#charts");
  for (const spec of chartSpecs()) charts.push(new Chart(spec, holder));
  labPanel = new LabPanel($("#labs"));
  draw();
  showFacts();
  $("#status").textContent = "";
  $("#status").hidden = true;
  setInterval(() => {
    showFacts();
    verdictsSoon();
    notes.load().catch(fail); // another member's notes
  }, 60000);
}

main().catch((err) => fail(err));
