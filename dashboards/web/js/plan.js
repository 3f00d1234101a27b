// The plan panel of a patient's page: the plan in force in words (its
// regimen, each rule, and what each rule says now), its versions, and the
// editor that saves a new version, as a form (bounds, severities, windows,
// the regimen) or as JSON (anything, such as a new rule). The server
// checks the whole plan and names every problem; they are shown as it
// wrote them.
import { api } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, toInput, fromInput, zoneName, capital, number } from "./format.js";

const routes = ["oral", "transdermal", "intramuscular", "subcutaneous", "vaginal", "sublingual", "buccal", "nasal", "topical", "implant"];
const schedules = ["daily", "twice_weekly", "weekly", "every_2_days", "every_2_weeks", "every_3_months"];
const severities = ["info", "warning", "critical"];
const scoreBands = ["", "mild", "moderate", "severe"];

// fieldsOf lists the rule fields the form edits, by kind: [key, label,
// type, help].
const fieldsOf = {
  threshold: [["over", "Window", "duration"], ["below", "Alert below", "number"], ["above", "Alert above", "number"]],
  score: [["below", "Alert below", "number"], ["above", "Alert above", "number"], ["band", "Or from band", "band"]],
  adherence: [["over", "Window", "duration"], ["below", "Alert below (share of doses, 0–1)", "number"]],
  trend: [["over", "Window", "duration"], ["slope_above", "Alert rising faster than (per day)", "number"], ["slope_below", "Alert falling faster than (per day, negative)", "number"]],
  baseline: [["baseline", "Baseline window", "duration"], ["recent", "Recent window", "duration"], ["z_below", "Alert at z below", "number"], ["z_above", "Alert at z above", "number"]],
  silence: [["for", "Alert after no data for", "duration"]],
};

// editable is the plan as PUT takes it: no version, no words.
function editable(plan) {
  const p = structuredClone(plan);
  for (const k of ["version", "regimen_words", "rule_words", "patient"]) delete p[k];
  p.regimen = p.regimen || [];
  p.rules = p.rules || [];
  return p;
}

function unitHint(metric) {
  const f = (metric || "").split(".")[1] || "";
  if (f.endsWith("_min")) return "min";
  if (f === "bpm" || f === "resting_hr") return "bpm";
  if (f.endsWith("_ms")) return "ms";
  if (f.endsWith("_kg")) return "kg";
  if (f.endsWith("_pct")) return "%";
  if (f === "systolic" || f === "diastolic") return "mmHg";
  return "";
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
    $("#plan-edit", root).addEventListener("click", () => this.open());
    $("#plan-cancel", root).addEventListener("click", () => this.close());
    $("#add-dose", root).addEventListener("click", () => {
      this.draft = this.read();
      this.draft.regimen.push({ medication: "", route: "oral", amount: 0, unit: "mg", schedule: "daily" });
      this.fill();
      const rows = $("#regimen-rows", root).children;
      rows[rows.length - 1].querySelector("input").focus();
    });
    for (const r of root.querySelectorAll("input[name=plan-mode]")) {
      r.addEventListener("change", () => this.switchMode(r.value));
    }
    $("#plan-form", root).addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.save();
    });
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
    const verdict = new Map(this.verdicts.filter((v) => !v.forecast).map((v) => [v.rule, v]));
    const forecast = new Map(this.verdicts.filter((v) => v.forecast).map((v) => [v.rule, v]));
    for (const r of (p && p.rules) || []) {
      const v = verdict.get(r.id);
      const f = forecast.get(r.id);
      let now = "Not judged yet.";
      let cls = "verdict";
      if (v && v.judged) {
        now = `Now: ${v.sentence}`;
        if (v.holds) cls += " holds";
      } else if (v) {
        now = v.sentence ? `Not judged: ${v.sentence}` : "Not judged: too little data.";
      }
      list.append(el("li", { dataset: { rule: r.id, holds: v && v.judged && v.holds ? "true" : "false" } },
        el("div", {}, el("span", { class: `badge ${r.severity}`, text: capital(r.severity) }), " ", el("strong", { text: r.id })),
        el("div", { class: "words", text: capital((p.rule_words && p.rule_words[r.id]) || r.kind) }),
        el("p", { class: cls, text: now }),
        f && f.judged && f.holds ? el("p", { class: "verdict holds", text: `Forecast: ${f.sentence}` }) : null));
    }
    if (!list.children.length) list.append(el("li", { class: "muted", text: "No rules in the plan." }));
  }

  open() {
    this.draft = editable(this.plan || { effective: new Date().toISOString(), regimen: [], rules: [] });
    $("#plan-effective", this.root).value = toInput(Date.now());
    $("label[for=plan-effective]", this.root).textContent = `Takes effect (${zoneName()} time)`;
    this.problems([]);
    $("#plan-form", this.root).hidden = false;
    $("#plan-edit", this.root).hidden = true;
    $("#plan-saved", this.root).hidden = true;
    this.switchMode("form");
    $("#plan-effective", this.root).focus();
  }

  close() {
    $("#plan-form", this.root).hidden = true;
    $("#plan-edit", this.root).hidden = false;
    $("#plan-edit", this.root).focus();
  }

  switchMode(mode) {
    if (mode === "json" && this.mode === "form") {
      this.draft = this.read();
      $("#plan-json", this.root).value = JSON.stringify(this.draft, null, 2);
    } else if (mode === "form" && this.mode === "json") {
      try {
        this.draft = editable(JSON.parse($("#plan-json", this.root).value));
      } catch (err) {
        this.problems([`The JSON cannot be read: ${err.message}`]);
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
        this.draft = this.read();
        this.draft.regimen.splice(i, 1);
        this.fill();
      });
      regimen.append(el("div", { class: "row", dataset: { dose: String(i) } },
        field(id("medication"), "Medication", el("input", { id: id("medication"), name: "medication", value: d.medication, required: true, autocomplete: "off" })),
        field(id("route"), "Route", el("select", { id: id("route"), name: "route" }, [...new Set([d.route, ...routes])].filter(Boolean).map((r) => el("option", { value: r, text: r, selected: r === d.route })))),
        field(id("amount"), "Amount", el("input", { id: id("amount"), name: "amount", type: "number", step: "any", min: "0", value: d.amount, required: true })),
        field(id("unit"), "Unit", el("input", { id: id("unit"), name: "unit", value: d.unit, required: true, list: "units" })),
        field(id("schedule"), "Schedule", el("input", { id: id("schedule"), name: "schedule", value: d.schedule, required: true, list: "schedules" })),
        el("div", {}, remove)));
    });
    const rules = clear($("#rule-rows", this.root));
    this.draft.rules.forEach((r, i) => {
      const id = (k) => `rule-${i}-${k}`;
      const inputs = [field(id("severity"), "Severity", el("select", { id: id("severity"), name: "severity" },
        severities.map((s) => el("option", { value: s, text: capital(s), selected: s === r.severity }))))];
      const hint = unitHint(r.metric);
      for (const [key, label, type] of fieldsOf[r.kind] || []) {
        const fid = id(key);
        let input;
        if (type === "band") {
          input = el("select", { id: fid, name: key }, scoreBands.map((b) => el("option", { value: b, text: b ? capital(b) : "none", selected: (r[key] || "") === b })));
        } else if (type === "number") {
          input = el("input", { id: fid, name: key, type: "number", step: "any", value: r[key] ?? "" });
        } else {
          input = el("input", { id: fid, name: key, value: r[key] ?? "", pattern: "[1-9][0-9]{0,4}[mhdw]", title: "A whole number and m, h, d or w, such as 7d", autocomplete: "off" });
        }
        inputs.push(field(fid, type === "number" && hint && !key.startsWith("z_") ? `${label} (${hint})` : label, input));
      }
      const drop = el("input", { type: "checkbox", id: id("remove"), name: "remove" });
      rules.append(el("div", { class: "row", dataset: { rule: r.id } },
        el("p", { class: "words" }, el("strong", { text: r.id }), ` (${r.kind}${r.metric ? `, ${r.metric}` : ""}${r.medication ? `, ${r.medication}` : ""}${r.instrument ? `, ${r.instrument}` : ""}): `,
          (this.plan && this.plan.rule_words && this.plan.rule_words[r.id]) || ""),
        ...inputs,
        el("label", { class: "check", for: id("remove") }, drop, "Remove this rule")));
    });
    if (!this.draft.rules.length) rules.append(el("p", { class: "muted", text: "No rules. Add them as JSON." }));
  }

  // read takes the draft back from the form (or the JSON).
  read() {
    if (this.mode === "json") return editable(JSON.parse($("#plan-json", this.root).value));
    const out = structuredClone(this.draft);
    out.regimen = [...$("#regimen-rows", this.root).children].map((row) => {
      const v = (n) => row.querySelector(`[name=${n}]`).value.trim();
      return { medication: v("medication"), route: v("route"), amount: Number(v("amount")), unit: v("unit"), schedule: v("schedule") };
    });
    const rows = new Map([...$("#rule-rows", this.root).querySelectorAll(".row")].map((row) => [row.dataset.rule, row]));
    out.rules = out.rules.filter((r) => {
      const row = rows.get(r.id);
      if (!row) return true;
      if (row.querySelector("[name=remove]").checked) return false;
      r.severity = row.querySelector("[name=severity]").value;
      for (const [key, , type] of fieldsOf[r.kind] || []) {
        const s = row.querySelector(`[name=${key}]`).value.trim();
        if (s === "") delete r[key];
        else r[key] = type === "number" ? Number(s) : s;
      }
      return true;
    });
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

  async save() {
    let plan;
    try {
      plan = this.read();
    } catch (err) {
      this.problems([`The JSON cannot be read: ${err.message}`]);
      return;
    }
    const effective = fromInput($("#plan-effective", this.root).value);
    if (Number.isNaN(effective)) {
      this.problems(["Say when the new version takes effect."]);
      return;
    }
    plan.effective = new Date(effective).toISOString();
    const button = $("#plan-save", this.root);
    button.disabled = true;
    try {
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
      const doc = r.doc || {};
      this.problems(doc.problems && doc.problems.length ? doc.problems : [doc.error || `The server answered ${r.status}.`]);
    } finally {
      button.disabled = false;
    }
  }
}

function field(id, label, input) {
  return el("div", {}, el("label", { for: id, text: label }), input);
}

