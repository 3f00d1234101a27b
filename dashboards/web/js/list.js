// The patient list (/): the signed-in clinician's patients with their
// status, active alerts, each stream's last data and adherence; filtered
// and sorted in the page (the choice is kept in the address, so Back
// returns to it), and kept current over the websocket, with a banner for
// the alerts escalated to the signed-in clinician. On-call staff land on
// /oncall instead.
import { must } from "./api.js";
import { el, $ } from "./dom.js";
import { when, ago, clock, percent, day } from "./format.js";
import { startShell, fail } from "./shell.js";
import { Live } from "./live.js";
import { AlertSet, assigneeText, isSnoozed, isUnreviewed } from "./alerts.js";
import { Rota, showPaged } from "./paging.js";

const statusRank = { critical: 0, attention: 1, fine: 2 };
const statusWords = { critical: "Critical", attention: "Needs attention", fine: "Fine" };
// STREAMS are what the freshness column tells apart: what a patient's
// watch records, what they log in their phone app, and their lab results.
// Each is stale after its own silence; a patient with no data at all is
// flagged too. (A stream a patient never used is not flagged.)
const STREAMS = [
  { key: "watch", name: "Watch", types: ["sleep", "activity", "heart_rate"], staleMs: 24 * 3600e3, after: "a day" },
  { key: "phone", name: "Phone", types: ["symptoms", "dose", "vitals"], staleMs: 7 * 24 * 3600e3, after: "a week" },
  { key: "labs", name: "Labs", types: ["labs"], staleMs: 183 * 24 * 3600e3, after: "six months" },
];
// Samples of more patients than this are not followed live: the list
// would hear of every heartbeat of a whole clinic.
const MAX_LIVE = 200;

const state = { patients: [], alerts: new AlertSet(), haveSnapshot: false, sort: "status", dir: 1, rota: null, me: "" };
// alertFilters narrow the list by the patients' active alerts.
const alertFilters = {
  unreviewed: (p) => state.alerts.list().some((a) => a.patient === p.id && !isSnoozed(a) && isUnreviewed(a)),
  mine: (p) => state.alerts.list().some((a) => a.patient === p.id && a.assignee === state.me),
};
const rowCache = new Map(); // patient id → {sig, tr}: the rows drawn

const sorters = {
  name: (a, b) => (a.name || a.id).localeCompare(b.name || b.id),
  status: (a, b) => statusRank[a.status] - statusRank[b.status] || b.active_alerts - a.active_alerts || sorters.name(a, b),
  alerts: (a, b) => b.active_alerts - a.active_alerts || sorters.name(a, b),
  last: (a, b) => (Date.parse(a.last_data_at) || 0) - (Date.parse(b.last_data_at) || 0) || sorters.name(a, b),
  adherence: (a, b) => (a.adherence ?? 2) - (b.adherence ?? 2) || sorters.name(a, b),
};

// followUpFilters narrow the list by the follow-ups of the patients' plans.
const followUpFilters = {
  due: (p) => (p.follow_ups || []).length > 0,
  overdue: (p) => (p.follow_ups || []).some((f) => f.state === "overdue"),
};

function readAddress() {
  const q = new URLSearchParams(window.location.search);
  $("#q").value = q.get("q") || "";
  $("#status-filter").value = statusRank[q.get("status")] !== undefined ? q.get("status") : "";
  $("#data-filter").value = q.get("data") === "stale" ? "stale" : "";
  $("#alert-filter").value = alertFilters[q.get("alerts")] ? q.get("alerts") : "";
  $("#followup-filter").value = followUpFilters[q.get("followups")] ? q.get("followups") : "";
  state.sort = sorters[q.get("sort")] ? q.get("sort") : "status";
  state.dir = q.get("dir") === "desc" ? -1 : 1;
  $("#sort").value = state.sort;
}

function writeAddress() {
  const q = new URLSearchParams();
  if ($("#q").value) q.set("q", $("#q").value);
  if ($("#status-filter").value) q.set("status", $("#status-filter").value);
  if ($("#data-filter").value) q.set("data", $("#data-filter").value);
  if ($("#alert-filter").value) q.set("alerts", $("#alert-filter").value);
  if ($("#followup-filter").value) q.set("followups", $("#followup-filter").value);
  if (state.sort !== "status") q.set("sort", state.sort);
  if (state.dir < 0) q.set("dir", "desc");
  const s = q.toString();
  window.history.replaceState(null, "", s ? `/?${s}` : "/");
}

// topAlert is the patient's most urgent active alert, or undefined.
function topAlert(p) {
  return state.alerts.list().find((a) => a.patient === p.id);
}

// alertState says where the alert stands: new, acknowledged by whom, or
// snoozed until when.
function alertState(a) {
  if (isSnoozed(a)) return { key: "snoozed", text: `Snoozed until ${Date.parse(a.snoozed_until) - Date.now() < 20 * 3600e3 ? clock(a.snoozed_until) : when(a.snoozed_until)}` };
  const who = a.assignee ? ` · ${assigneeText(a, state.me).toLowerCase()}` : "";
  if (a.state === "acknowledged") return { key: "acknowledged", text: `Acknowledged by ${a.acked_by || "someone"}${who}` };
  return { key: "new", text: `New: nobody has acknowledged it${who}` };
}

// why is the status cell's reason: the most urgent alert's sentence, its
// age and where it stands.
function why(p) {
  const a = topAlert(p);
  if (!a) return null;
  const st = alertState(a);
  return el("div", { class: "why", dataset: { alertState: st.key } },
    el("span", { class: "sentence", text: a.sentence }),
    el("span", { class: `sub alert-state ${st.key}`, text: `${st.text} · opened ${ago(a.opened_at)}` }));
}

// followUps lists what the patient's plan says is due or overdue: labs
// after a dose change, a check-in, a review visit.
function followUps(p) {
  if (!(p.follow_ups || []).length) return null;
  return el("ul", { class: "follow-ups" }, p.follow_ups.map((f) => el("li",
    { dataset: { followUp: f.state, rule: f.rule }, class: f.state === "overdue" ? "stale-text" : null, title: f.sentence },
    `${f.state === "overdue" ? "Overdue" : "Due"}: ${f.awaits}, ${f.state === "overdue" ? "due" : "by"} ${day(f.due)}`)));
}

// streamsOf answers each stream's newest sample (ms, or 0 for none) and
// whether it is stale.
function streamsOf(p, now = Date.now()) {
  return STREAMS.map((s) => {
    const last = Math.max(0, ...s.types.map((t) => Date.parse((p.last_data || {})[t]) || 0));
    return { ...s, last, stale: last > 0 && now - last > s.staleMs };
  });
}

// isStale: a stream has gone silent, or nothing came in 90 days.
function isStale(p) {
  return !p.last_data_at || streamsOf(p).some((s) => s.stale);
}

// freshness is the last-data cell: each stream's newest sample, stale ones
// flagged in words.
function freshness(p) {
  if (!p.last_data_at) return el("span", { class: "stale-text", text: "No data in 90 days" });
  return el("ul", { class: "streams" }, streamsOf(p).map((s) => el("li",
    { dataset: { stream: s.key, fresh: !s.last ? "none" : s.stale ? "stale" : "fresh" }, class: s.stale ? "stale-text" : s.last ? null : "muted" },
    `${s.name}: `,
    s.last ? el("time", { datetime: new Date(s.last).toISOString(), title: when(s.last), text: ago(s.last) }) : "none",
    s.stale ? ` · silent for over ${s.after}` : null)));
}

function row(p) {
  const stale = isStale(p);
  const adherence = p.adherence === null || p.adherence === undefined ? null : p.adherence;
  return el("tr", { dataset: { patient: p.id, status: p.status }, class: stale ? "stale" : null },
    el("td", { "data-label": "Patient" },
      el("a", { href: `/patient?id=${encodeURIComponent(p.id)}`, text: p.name || "(no name)" }),
      el("span", { class: "sub", text: p.id })),
    el("td", { "data-label": "Status", class: "status" }, el("span", { class: `badge ${p.status}`, text: statusWords[p.status] || p.status }), why(p), followUps(p)),
    el("td", { "data-label": "Active alerts", class: "num alerts", text: String(p.active_alerts) }),
    el("td", { "data-label": "Last data", class: "last" }, freshness(p)),
    el("td", { "data-label": "Adherence", class: "num" },
      adherence === null ? noAdherence()
        : el("span", { class: adherence < 0.8 ? "adherence-low" : null, text: percent(adherence) })));
}

// noAdherence is the cell of a patient with no adherence figure. The list
// says only that none was judged: the plan may have no adherence rule, or
// its rule has not been judged yet (too few scheduled doses in its window,
// or the plan is new); which, it does not tell.
function noAdherence() {
  const why = "No adherence judged: the plan has no adherence rule, or it has not been judged yet";
  return el("span", { class: "muted", title: why }, "–", el("span", { class: "visually-hidden", text: ` (${why})` }));
}

function render() {
  const q = $("#q").value.trim().toLowerCase();
  const status = $("#status-filter").value;
  const staleOnly = $("#data-filter").value === "stale";
  const byAlerts = alertFilters[$("#alert-filter").value] || (() => true);
  const byFollowUps = followUpFilters[$("#followup-filter").value] || (() => true);
  const shown = state.patients
    .filter((p) => !status || p.status === status)
    .filter((p) => !staleOnly || isStale(p))
    .filter(byAlerts)
    .filter(byFollowUps)
    .filter((p) => !q || (p.name || "").toLowerCase().includes(q) || p.id.toLowerCase().includes(q))
    .sort((a, b) => state.dir * sorters[state.sort](a, b));
  const table = $("#patients");
  // Rows that did not change are kept, so that a focused link stays
  // focused while the list updates itself.
  const body = table.tBodies[0];
  const rows = shown.map((p) => {
    const top = topAlert(p);
    const sig = JSON.stringify([p.name, p.status, p.active_alerts, p.last_data, p.adherence, p.follow_ups, streamsOf(p).map((x) => x.last && ago(x.last)),
      top && [top.id, top.sentence, top.updated_at, alertState(top).text, ago(top.opened_at)]]);
    const kept = rowCache.get(p.id);
    if (kept && kept.sig === sig) return kept.tr;
    const tr = row(p);
    rowCache.set(p.id, { sig, tr });
    return tr;
  });
  for (const tr of [...body.children]) if (!rows.includes(tr)) tr.remove();
  rows.forEach((tr, i) => {
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  table.dataset.rows = String(shown.length);
  for (const th of table.tHead.rows[0].cells) {
    th.setAttribute("aria-sort", th.dataset.sort === state.sort ? (state.dir > 0 ? "ascending" : "descending") : "none");
  }
  const counts = { critical: 0, attention: 0 };
  for (const p of state.patients) if (counts[p.status] !== undefined) counts[p.status]++;
  const n = state.patients.length;
  let text = n === 0 ? "No patients are assigned to you."
    : `${n} patient${n === 1 ? "" : "s"}: ${counts.critical} critical, ${counts.attention} needing attention.`;
  if (n > 0 && shown.length < n) text += ` ${shown.length} shown${shown.length === 0 ? ": none match the filter" : ""}.`;
  $("#status").textContent = text;
  table.hidden = n === 0;
}

// recount takes status and active alerts from the live alert set, once the
// websocket's snapshot has come.
function recount() {
  if (!state.haveSnapshot) return;
  for (const p of state.patients) {
    const mine = state.alerts.list().filter((a) => a.patient === p.id);
    p.active_alerts = mine.length;
    p.status = mine.some((a) => a.severity === "critical") ? "critical" : mine.length ? "attention" : "fine";
  }
}

// paged shows the banner of the alerts escalated to the signed-in
// clinician that nobody has acknowledged yet.
function paged() {
  if (!state.rota) return;
  const nameOf = (id) => (state.patients.find((p) => p.id === id) || {}).name || id;
  const list = state.alerts.list().filter((a) => a.state === "firing" && !isSnoozed(a) && state.rota.pagedTier(a));
  showPaged($("#paged"), list.map((a) => ({ alert: a, tier: state.rota.pagedTier(a) })), nameOf);
}

let reloadTimer = 0;
function reloadSoon(live) {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => load(live).catch(fail), 1000);
}

async function load(live) {
  const doc = await must("GET", "/v1/patients");
  state.patients = doc.patients || [];
  recount();
  render();
  paged();
  if (live) live.subscribe(state.patients.length <= MAX_LIVE ? state.patients.map((p) => p.id) : []);
}

async function main() {
  const me = await startShell();
  state.me = me.username;
  if (me.role === "oncall") {
    window.location.replace("/oncall");
    return;
  }
  readAddress();
  const onChange = () => {
    state.sort = $("#sort").value;
    writeAddress();
    render();
  };
  $("#filters").addEventListener("input", onChange);
  $("#filters").addEventListener("submit", (ev) => ev.preventDefault());
  $("#patients thead").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-sort]");
    if (!b) return;
    state.dir = state.sort === b.dataset.sort ? -state.dir : 1;
    state.sort = b.dataset.sort;
    $("#sort").value = state.sort;
    writeAddress();
    render();
  });

  if (me.role === "admin") $("h1").textContent = "All patients";
  state.rota = new Rota(me.username).start(paged);
  const live = new Live();
  let hellos = 0;
  live.on("hello", () => {
    if (++hellos > 1) load(live).catch(fail); // back after a lost connection
  });
  const known = (id) => state.patients.some((p) => p.id === id);
  live.on("snapshot", (m) => {
    state.alerts.replace(m.alerts);
    state.haveSnapshot = true;
    recount();
    render();
    paged();
  });
  live.on("alert", (m) => {
    state.alerts.apply(m);
    state.rota.hear(m);
    if (m.alert && !known(m.alert.patient)) reloadSoon(live);
    recount();
    render();
    paged();
  });
  live.on("patient_status", (m) => {
    const p = state.patients.find((x) => x.id === m.patient);
    if (!p) {
      reloadSoon(live);
      return;
    }
    p.status = m.status;
    render();
  });
  live.on("samples", (m) => {
    const p = state.patients.find((x) => x.id === m.patient);
    if (!p) return;
    let changed = false;
    p.last_data = p.last_data || {};
    for (const s of m.samples || []) {
      if (!p.last_data_at || Date.parse(s.time) > Date.parse(p.last_data_at)) {
        p.last_data_at = s.time;
        changed = true;
      }
      const last = p.last_data[s.measurement];
      if (!last || Date.parse(s.time) > Date.parse(last)) {
        p.last_data[s.measurement] = s.time;
        changed = true;
      }
    }
    if (changed) render();
  });
  await load(live);
  live.start();
  setInterval(render, 60000); // "12 min ago" moves on
}

main().catch((err) => fail(err));
