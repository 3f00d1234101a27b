// The plan panel of a patient's page: the plan in force in words (its
// regimen, each rule, and what each rule says now), its versions, and the
// editor that saves a new version, as a form (bounds, severities, windows,
// the regimen) or as JSON (anything, such as a new rule). The form speaks
// clinicians' units (sleep in hours, shares in percent, windows in hours,
// days or weeks) and sends the plan's own (minutes, 0–1, "7d"). Saving
// first shows a preview: what the draft would have done over the last
// days, and what it says now; a second press saves that very draft. The
// server checks the whole plan and names every problem; they are shown as
// it wrote them. Metric names, labels, units and dose routes and units
// come from the catalog (catalog.js); how a unit is shown is the page's.
import { api } from "./api.js";
import { metricInfo, metricChoices, displayUnit, doseRoutes, doseUnits } from "./catalog.js";
import { el, $, clear } from "./dom.js";
import { when, shortDay, toInput, fromInput, zoneName, capital, number, splitDuration, joinDuration, durationUnits } from "./format.js";

const severities = ["info", "warning", "critical"];
const scoreBands = ["", "mild", "moderate", "severe"];

// fieldsOf lists the rule fields the form edits, by kind: [key, label,
// type, optional].
const fieldsOf = {
  threshold: [["over", "Window", "duration"], ["below", "Alert below", "number"], ["above", "Alert above", "number"], ["forecast", "Forecast a crossing within", "duration", "optional"]],
  score: [["below", "Alert below", "number"], ["above", "Alert above", "number"], ["band", "Or from band", "band"], ["over", "Mean over", "duration", "optional"]],
  adherence: [["over", "Window", "duration"], ["below", "Alert below (doses logged)", "number"]],
  trend: [["over", "Window", "duration"], ["slope_above", "Alert rising faster than", "number"], ["slope_below", "Alert falling faster than (negative)", "number"]],
  baseline: [["baseline", "Baseline window", "duration"], ["recent", "Recent window", "duration"], ["z_below", "Alert at z below", "number"], ["z_above", "Alert at z above", "number"]],
  silence: [["for", "Alert after no data for", "duration"]],
  timing: [["not_within", "Not within", "duration", "optional"], ["at_least", "Only from this long after", "duration", "optional"]],
};

// shownFields are the fields of fieldsOf the form shows for rule r: the
// optional ones (marked so) only when the rule has them; JSON adds them.
function shownFields(r) {
  return (fieldsOf[r.kind] || []).filter(([key, , , optional]) => !optional || (r[key] !== undefined && r[key] !== null));
}

// editable is the plan as PUT takes it: no version, no words.
function editable(plan) {
  const p = structuredClone(plan);
  for (const k of ["version", "regimen_words", "rule_words", "patient"]) delete p[k];
  p.regimen = p.regimen || [];
  p.rules = p.rules || [];
  return p;
}

// metricUnit is how a metric is shown: its unit (the catalog's, as staff
// read it), and the factor from the plan's number to the shown one. The
// page's own choices: sleep's minutes in hours, a ratio (UCUM "1") in
// percent, symptom scores in points.
function metricUnit(metric) {
  const m = (metric || "").split(".")[0];
  const info = metricInfo(metric);
  if (m === "symptoms") return { unit: "points", factor: 1 };
  if (!info) return { unit: "", factor: 1 };
  if (m === "sleep" && info.unit === "min") return { unit: "h", factor: 1 / 60 };
  if (info.unit === "1") return { unit: "%", factor: 100 };
  return { unit: displayUnit(info.unit), factor: 1 };
}

// metricWords names a rule's metric as the catalog labels it:
// "Estradiol (labs.estradiol)".
function metricWords(metric) {
  const info = metricInfo(metric);
  return info ? `${info.label} (${metric})` : metric;
}

// newRule is a rule of kind on metric with the fields the form then asks
// for left empty; a lab is judged on its latest result over a season.
function newRule(kind, metric, taken) {
  const lab = metric.startsWith("labs.");
  const base = metric.split(".").pop().replaceAll("_", "-");
  let id = `${base}-${kind}`;
  for (let n = 2; taken.has(id); n++) id = `${base}-${kind}-${n}`;
  const r = { id, kind, severity: "warning", metric };
  if (kind === "threshold") Object.assign(r, { over: lab ? "90d" : "7d", aggregate: lab ? "latest" : "mean" });
  if (kind === "trend") r.over = lab ? "90d" : "14d";
  if (kind === "silence") r.for = lab ? "90d" : "24h";
  return r;
}

// shownAs is how the form shows field key of rule r.
function shownAs(r, key) {
  if (key.startsWith("z_")) return { unit: "SD", factor: 1 };
  if (r.kind === "adherence") return { unit: "%", factor: 100 };
  if (r.kind === "score") return { unit: "points", factor: 1 };
  const m = metricUnit(r.metric);
  return key.startsWith("slope_") ? { unit: `${m.unit || "units"} a day`, factor: m.factor } : m;
}

// tidy drops the float noise of a unit conversion (6.5 / (1/60)).
const tidy = (v) => Number(v.toPrecision(12));

// FormProblems are what the form itself cannot turn into a plan.
class FormProblems extends Error {
  constructor(list) {
    super(list.join(" "));
    this.list = list;
  }
}

export class PlanView {
  // root is the panel; changed(plan, history) is called after a save.
  constructor(root, patientId, changed) {
    this.root = root;
    this.id = patientId;
    this.changed = changed;
    this.plan = null;
    this.history = [];
    this.verdicts = [];
    this.mode = "form";
    this.previewed = null; // the draft the preview shown is of, as JSON
    $("#plan-edit", root).addEventListener("click", () => this.open());
    $("#plan-cancel", root).addEventListener("click", () => this.close());
    $("#add-dose", root).addEventListener("click", () => {
      if (!this.reread()) return;
      this.draft.regimen.push({ medication: "", route: doseRoutes()[0] || "", amount: 0, unit: doseUnits()[0] || "", schedule: "daily" });
      this.fill();
      const rows = $("#regimen-rows", root).children;
      rows[rows.length - 1].querySelector("input").focus();
    });
    for (const r of root.querySelectorAll("input[name=plan-mode]")) {
      r.addEventListener("change", () => this.switchMode(r.value));
    }
    const form = $("#plan-form", root);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    // Any edit makes the preview shown stale.
    for (const type of ["input", "change"]) form.addEventListener(type, () => this.unpreview());
  }

  // load reads the plan in force, its versions and the verdicts.
  async load() {
    const base = `/v1/patients/${encodeURIComponent(this.id)}`;
    const [plan, hist, verdicts] = await Promise.all([
      api("GET", `${base}/plan`), api("GET", `${base}/plan/history`), api("GET", `${base}/verdicts`),
    ]);
    if (!plan.ok && plan.status !== 404) throw new Error((plan.doc && plan.doc.error) || `plan: ${plan.status}`);
    this.plan = plan.ok ? plan.doc : null;
    this.history = hist.ok ? hist.doc.versions || [] : [];
    this.verdicts = verdicts.ok ? verdicts.doc.verdicts || [] : [];
    this.render();
    return { plan: this.plan, history: this.history };
  }

  async reloadVerdicts() {
    const r = await api("GET", `/v1/patients/${encodeURIComponent(this.id)}/verdicts`);
    if (r.ok) {
      this.verdicts = r.doc.verdicts || [];
      this.renderRules();
    }
  }

  render() {
    const p = this.plan;
    const meta = $("#plan-meta", this.root);
    this.root.dataset.version = p ? String(p.version) : "0";
    if (!p) {
      meta.textContent = "No plan yet: the charts have no targets and nothing is judged. Add the first version below.";
    } else {
      const future = Date.parse(p.effective) > Date.now();
      meta.textContent = `Version ${p.version}, ${future ? "takes effect" : "in force since"} ${when(p.effective)}` +
        (this.history.length > 1 ? ` (${this.history.length} versions)` : "") + ".";
    }
    const regimen = clear($("#regimen", this.root));
    for (const w of (p && p.regimen_words) || []) regimen.append(el("li", { text: capital(w) }));
    if (!regimen.children.length) regimen.append(el("li", { class: "muted", text: "No medication in the plan." }));
    this.renderRules();
    const versions = clear($("#plan-versions ol", this.root));
    for (const v of [...this.history].reverse()) {
      versions.append(el("li", {
        text: `v${v.version}: from ${when(v.effective)}; ${(v.regimen || []).map((d) => `${d.medication} ${number(d.amount, 3)} ${d.unit}`).join(", ") || "no medication"}; ${(v.rules || []).length} rules`,
      }));
    }
  }

  renderRules() {
    const p = this.plan;
    const list = clear($("#rules", this.root));
    const verdict = new Map(this.verdicts.map((v) => [v.rule, v]));
    for (const r of (p && p.rules) || []) {
      const v = verdict.get(r.id);
      let now = "Not judged yet.";
      let cls = "verdict";
      if (v && v.judged && v.forecast && !v.holds) {
        // Predicted to hold (a trend's crossing, a planned procedure's
        // timing): a warning, not yet a verdict.
        now = `Warning: ${v.sentence}`;
        cls += " holds";
      } else if (v && v.judged) {
        now = `Now: ${v.sentence}`;
        if (v.holds) cls += " holds";
      } else if (v) {
        now = v.sentence ? `Not judged: ${v.sentence}` : "Not judged: too little data.";
      }
      list.append(el("li", { dataset: { rule: r.id, holds: v && v.judged && v.holds ? "true" : "false" } },
        el("div", {}, el("span", { class: `badge ${r.severity}`, text: capital(r.severity) }), " ", el("strong", { text: r.id })),
        el("div", { class: "words", text: capital((p.rule_words && p.rule_words[r.id]) || r.kind) }),
        el("p", { class: cls, text: now })));
    }
    if (!list.children.length) list.append(el("li", { class: "muted", text: "No rules in the plan." }));
  }

  open() {
    this.draft = editable(this.plan || { effective: new Date().toISOString(), regimen: [], rules: [] });
    $("#plan-effective", this.root).value = toInput(Date.now());
    $("label[for=plan-effective]", this.root).textContent = `Takes effect (${zoneName()} time)`;
    this.problems([]);
    this.unpreview();
    $("#plan-form", this.root).hidden = false;
    $("#plan-edit", this.root).hidden = true;
    $("#plan-saved", this.root).hidden = true;
    this.switchMode("form");
    $("#plan-effective", this.root).focus();
  }

  close() {
    this.unpreview();
    $("#plan-form", this.root).hidden = true;
    $("#plan-edit", this.root).hidden = false;
    $("#plan-edit", this.root).focus();
  }

  // reread takes the draft back from the page; false (with the problems
  // shown) when it cannot be read.
  reread() {
    try {
      this.draft = this.read();
      return true;
    } catch (err) {
      this.problems(err.list || [`The JSON cannot be read: ${err.message}`]);
      return false;
    }
  }

  switchMode(mode) {
    if (mode === "json" && this.mode === "form") {
      if (!this.reread()) {
        $("#plan-mode-form", this.root).checked = true;
        return;
      }
      $("#plan-json", this.root).value = JSON.stringify(this.draft, null, 2);
    } else if (mode === "form" && this.mode === "json") {
      if (!this.reread()) {
        $("#plan-mode-json", this.root).checked = true;
        return;
      }
    }
    this.mode = mode;
    $(`#plan-mode-${mode}`, this.root).checked = true;
    $("#plan-fields", this.root).hidden = mode !== "form";
    $("#plan-json-wrap", this.root).hidden = mode !== "json";
    if (mode === "form") this.fill();
    else if (!$("#plan-json", this.root).value) $("#plan-json", this.root).value = JSON.stringify(this.draft, null, 2);
  }

  // fill lays the draft out as form rows.
  fill() {
    const regimen = clear($("#regimen-rows", this.root));
    this.draft.regimen.forEach((d, i) => {
      const id = (k) => `dose-${i}-${k}`;
      const remove = el("button", { type: "button", class: "secondary", text: "Remove", "aria-label": `Remove ${d.medication || "this medication"}` });
      remove.addEventListener("click", () => {
        if (!this.reread()) return;
        this.draft.regimen.splice(i, 1);
        this.fill();
      });
      regimen.append(el("div", { class: "row", dataset: { dose: String(i) } },
        field(id("medication"), "Medication", el("input", { id: id("medication"), name: "medication", value: d.medication, required: true, autocomplete: "off" })),
        field(id("route"), "Route", el("select", { id: id("route"), name: "route" }, [...new Set([d.route, ...doseRoutes()])].filter(Boolean).map((r) => el("option", { value: r, text: r, selected: r === d.route })))),
        field(id("amount"), "Amount", el("input", { id: id("amount"), name: "amount", type: "number", step: "any", min: "0", value: d.amount, required: true })),
        field(id("unit"), "Unit", el("input", { id: id("unit"), name: "unit", value: d.unit, required: true, list: "units" })),
        field(id("schedule"), "Schedule", el("input", { id: id("schedule"), name: "schedule", value: d.schedule, required: true, list: "schedules" })),
        el("div", {}, remove)));
    });
    const units = clear($("#units", this.root));
    for (const u of doseUnits()) units.append(el("option", { value: u }));
    const rules = clear($("#rule-rows", this.root));
    this.draft.rules.forEach((r, i) => rules.append(this.ruleRow(r, i)));
    if (!this.draft.rules.length) rules.append(el("p", { class: "muted", text: "No rules yet." }));
    rules.append(this.addRuleRow());
  }

  // addRuleRow offers a new threshold, trend or silence rule on any
  // metric of the catalog, lab analytes among them; other kinds are
  // added as JSON.
  addRuleRow() {
    const metric = el("select", { id: "new-rule-metric", name: "new-rule-metric" },
      metricChoices().map((g) => el("optgroup", { label: g.group }, g.metrics.map((m) => el("option", { value: m.metric, text: m.label })))));
    const kind = el("select", { id: "new-rule-kind", name: "new-rule-kind" },
      [["threshold", "Threshold"], ["trend", "Trend"], ["silence", "No data for a while"]].map(([v, t]) => el("option", { value: v, text: t })));
    const add = el("button", { type: "button", class: "secondary", id: "add-rule", text: "Add this rule" });
    add.addEventListener("click", () => {
      const k = kind.value, m = metric.value;
      if (!m || !this.reread()) return;
      const r = newRule(k, m, new Set(this.draft.rules.map((x) => x.id)));
      this.draft.rules.push(r);
      this.fill();
      const row = $(`#rule-rows [data-rule="${r.id}"]`, this.root);
      if (row) row.querySelector("input, select").focus();
    });
    return el("div", { class: "row add-rule" }, field("new-rule-metric", "New rule on", metric), field("new-rule-kind", "Kind", kind), el("div", {}, add));
  }

  // ruleRow is one rule's row of the form: its numbers in the units
  // clinicians use, each with its unit beside it.
  ruleRow(r, i) {
    const id = (k) => `rule-${i}-${k}`;
    const inputs = [field(id("severity"), "Severity", el("select", { id: id("severity"), name: "severity" },
      severities.map((s) => el("option", { value: s, text: capital(s), selected: s === r.severity }))))];
    for (const [key, label, type] of shownFields(r)) {
      const fid = id(key);
      if (type === "band") {
        inputs.push(field(fid, label, el("select", { id: fid, name: key },
          scoreBands.map((b) => el("option", { value: b, text: b ? capital(b) : "none", selected: (r[key] || "") === b })))));
      } else if (type === "number") {
        const { unit, factor } = shownAs(r, key);
        const v = r[key] === undefined || r[key] === null ? "" : String(factor === 1 ? r[key] : Number((r[key] * factor).toFixed(3)));
        const input = el("input", { id: fid, name: key, type: "number", step: "any", value: v, "aria-describedby": unit ? `${fid}-unit` : null });
        input.dataset.shown = v;
        inputs.push(field(fid, label, input, unit ? el("span", { class: "unit", id: `${fid}-unit`, text: unit }) : null));
      } else {
        const d = splitDuration(r[key]) || { amount: "", unit: key === "for" ? "h" : "d" };
        const amount = el("input", { id: fid, name: key, type: "number", step: "any", min: "0", value: d.amount, autocomplete: "off" });
        const unit = el("select", { name: `${key}-unit`, "aria-label": `${label}: unit` },
          Object.entries(durationUnits).map(([u, words]) => el("option", { value: u, text: words, selected: u === d.unit })));
        amount.dataset.shown = String(d.amount);
        unit.dataset.shown = d.unit;
        inputs.push(field(fid, label, amount, unit, "duration"));
      }
    }
    const extra = [];
    if (r.kind !== "silence") {
      const since = el("input", { type: "checkbox", id: id("since"), name: "since", checked: r.since === "change" });
      extra.push(el("label", { class: "check", for: id("since") }, since, "Judge only days since this version"));
    }
    const drop = el("input", { type: "checkbox", id: id("remove"), name: "remove" });
    extra.push(el("label", { class: "check", for: id("remove") }, drop, "Remove this rule"));
    return el("div", { class: "row", dataset: { rule: r.id } },
      el("p", { class: "words" }, el("strong", { text: r.id }), ` (${r.kind}${r.metric ? `, ${metricWords(r.metric)}` : ""}${r.medication ? `, ${r.medication}` : ""}${r.instrument ? `, ${r.instrument}` : ""}): `,
        (this.plan && this.plan.rule_words && this.plan.rule_words[r.id]) || ""),
      ...inputs, el("div", { class: "checks" }, extra));
  }

  // read takes the draft back from the form (or the JSON), in the plan's
  // units; it throws FormProblems for what cannot be a plan at all.
  read() {
    if (this.mode === "json") return editable(JSON.parse($("#plan-json", this.root).value));
    const out = structuredClone(this.draft);
    out.regimen = [...$("#regimen-rows", this.root).children].map((row) => {
      const v = (n) => row.querySelector(`[name=${n}]`).value.trim();
      return { medication: v("medication"), route: v("route"), amount: Number(v("amount")), unit: v("unit"), schedule: v("schedule") };
    });
    const rows = new Map([...$("#rule-rows", this.root).querySelectorAll(".row[data-rule]")].map((row) => [row.dataset.rule, row]));
    const problems = [];
    out.rules = out.rules.filter((r) => {
      const row = rows.get(r.id);
      if (!row) return true;
      if (row.querySelector("[name=remove]").checked) return false;
      r.severity = row.querySelector("[name=severity]").value;
      const since = row.querySelector("[name=since]");
      if (since && since.checked) r.since = "change";
      else delete r.since;
      for (const [key, label, type] of shownFields(r)) {
        const input = row.querySelector(`[name=${key}]`);
        const s = input.value.trim();
        const unit = row.querySelector(`[name=${key}-unit]`);
        if (s === "") {
          delete r[key];
        } else if (type === "band") {
          r[key] = s;
        } else if (s === input.dataset.shown && (!unit || unit.value === unit.dataset.shown)) {
          // unchanged: keep the plan's own number, unrounded
        } else if (type === "number") {
          r[key] = tidy(Number(s) / shownAs(r, key).factor);
        } else {
          r[key] = joinDuration(Number(s), unit.value);
          if (!r[key]) problems.push(`${r.id}, ${label}: ${s} ${durationUnits[unit.value]} is not a length of time the plan can keep: give a positive number.`);
        }
      }
      return true;
    });
    if (problems.length) throw new FormProblems(problems);
    return out;
  }

  problems(list) {
    const box = $("#plan-problems", this.root);
    clear(box);
    box.hidden = list.length === 0;
    if (!list.length) return;
    box.append(el("p", { text: list.length === 1 ? "The plan was not saved:" : `The plan was not saved: ${list.length} problems.` }),
      el("ul", {}, list.map((p) => el("li", { text: p }))));
    box.focus();
  }

  // draftToSend is the plan the form holds, with its effective time, or
  // null (with the problems shown).
  draftToSend() {
    let plan;
    try {
      plan = this.read();
    } catch (err) {
      this.problems(err.list || [`The JSON cannot be read: ${err.message}`]);
      return null;
    }
    const effective = fromInput($("#plan-effective", this.root).value);
    if (Number.isNaN(effective)) {
      this.problems(["Say when the new version takes effect."]);
      return null;
    }
    plan.effective = new Date(effective).toISOString();
    return plan;
  }

  // submit previews the draft, or saves it when the preview shown is of
  // this very draft.
  async submit() {
    const plan = this.draftToSend();
    if (!plan) return;
    const days = Number($("#plan-preview-days", this.root).value) || 30;
    const key = JSON.stringify([plan, days]);
    const button = $("#plan-save", this.root);
    button.disabled = true;
    try {
      if (this.previewed === key) await this.save(plan);
      else await this.preview(plan, days, key);
    } finally {
      button.disabled = false;
    }
  }

  async preview(plan, days, key) {
    this.unpreview();
    const r = await api("POST", `/v1/patients/${encodeURIComponent(this.id)}/plan/preview?days=${days}`, plan);
    const doc = r.doc || {};
    // A draft the server refuses is not saved; a preview that cannot be
    // made (a server without it, the evaluator busy) does not stop the
    // clinician from saving.
    const refused = r.status >= 400 && r.status < 500 && r.status !== 404 && r.status !== 405;
    if (refused) {
      this.problems(doc.problems && doc.problems.length ? doc.problems : [doc.error || `The server answered ${r.status}.`]);
      return;
    }
    this.problems([]);
    this.showPreview(r.ok ? doc : null, r.ok ? "" : doc.error || `the server answered ${r.status}`, days);
    this.previewed = key;
    $("#plan-save", this.root).textContent = "Save this version";
  }

  async save(plan) {
    const r = await api("PUT", `/v1/patients/${encodeURIComponent(this.id)}/plan`, plan);
    if (r.status === 201) {
      this.problems([]);
      this.close();
      await this.load();
      const saved = $("#plan-saved", this.root);
      saved.textContent = `Saved as version ${r.doc.version}, in force from ${when(r.doc.effective)}.`;
      saved.hidden = false;
      this.changed(this.plan, this.history);
      return;
    }
    this.unpreview();
    const doc = r.doc || {};
    this.problems(doc.problems && doc.problems.length ? doc.problems : [doc.error || `The server answered ${r.status}.`]);
  }

  // unpreview takes the preview away: the next press previews again.
  unpreview() {
    if (this.previewed === null) return;
    this.previewed = null;
    $("#plan-preview", this.root).hidden = true;
    $("#plan-save", this.root).textContent = "Preview, then save";
  }

  // showPreview lays out what the draft would have done: the server's
  // summary, and per rule its verdict now, its alerts and the days it
  // could not judge.
  showPreview(doc, failed, days) {
    const box = $("#plan-preview", this.root);
    $(".summary", box).textContent = doc ? doc.summary : `No preview: ${failed}. This version can be saved all the same.`;
    const list = clear($(".preview-rules", box));
    for (const r of (doc && doc.rules) || []) list.append(previewRule(r));
    $(".period", box).textContent = doc && doc.from ? `Judged over ${shortDay(doc.from)} – ${shortDay(doc.to)} (${doc.days || days} days).` : "";
    box.hidden = false;
  }
}

// previewRule is one rule's line of the preview.
function previewRule(r) {
  const now = r.now || {};
  const lines = [el("p", { class: "verdict" + (now.judged && now.holds ? " holds" : "") },
    el("strong", { text: "Now: " }), now.sentence || "not judged.",
    r.judged_from ? ` Judged from ${shortDay(r.judged_from)}.` : "")];
  const ts = (r.transitions || []).filter((t) => changeWords[t.change]);
  lines.push(el("p", { class: "would" }, el("strong", { text: "Would have: " }),
    ts.length ? ts.map((t) => `${changeWords[t.change]} ${shortDay(t.at)}`).join(", ") + "." : "raised no alert."));
  for (const u of r.unjudged || []) {
    const span = u.days > 1 ? `${shortDay(u.from)} – ${shortDay(u.to)} (${u.days} days)` : shortDay(u.from);
    lines.push(el("p", { class: "unjudged" }, el("strong", { text: "Not judged: " }), `${span}: ${u.reason}.`));
  }
  const why = ts.length ? el("details", {}, el("summary", { text: "What it would have said" }),
    el("ul", {}, ts.map((t) => el("li", { text: `${shortDay(t.at)}: ${t.sentence}` })))) : null;
  return el("li", { dataset: { rule: r.rule } },
    el("div", {}, el("span", { class: `badge ${r.severity}`, text: capital(r.severity || "") }), " ", el("strong", { text: r.rule })),
    ...lines, why);
}

const changeWords = { fired: "alerted", cleared: "cleared", forecast: "forecast a crossing", forecast_cleared: "forecast withdrawn" };

// field is a labelled control; with a unit (text or a select) beside it.
function field(id, label, input, unit, cls) {
  return el("div", { class: cls }, el("label", { for: id, text: label }), unit ? el("div", { class: "with-unit" }, input, unit) : input);
}
