// "Is the change working?": for a plan version, each metric its rules
// watch over the days before it took effect and the days after, as the
// server compares them (GET /v1/patients/{id}/comparison): the sentence
// has the means, the difference with its 95% confidence interval and the
// plan's target, in the metric's units.
import { api } from "./api.js";
import { el, $, clear } from "./dom.js";
import { day, capital } from "./format.js";

export class ChangePanel {
  constructor(section, patientId) {
    this.section = section;
    this.path = `/v1/patients/${encodeURIComponent(patientId)}/comparison`;
    $("#change-form", section).addEventListener("change", () => this.load().catch((err) => this.problem(err.message)));
  }

  // versions offers the versions in force so far, newest first.
  versions(history) {
    const pick = $("#change-version", this.section);
    const chosen = pick.value;
    clear(pick);
    for (const v of [...history].reverse().filter((v) => Date.parse(v.effective) <= Date.now())) {
      pick.append(el("option", { value: String(v.version), text: `v${v.version}, from ${day(v.effective)}` }));
    }
    if (chosen && [...pick.options].some((o) => o.value === chosen)) pick.value = chosen;
    this.section.hidden = pick.options.length === 0;
  }

  problem(text) {
    const p = $(".error", this.section);
    p.textContent = text;
    p.hidden = !text;
  }

  async load() {
    const version = $("#change-version", this.section).value;
    if (!version) return;
    const q = new URLSearchParams({ version, days: $("#change-days", this.section).value });
    const r = await api("GET", `${this.path}?${q}`);
    if (!r.ok) return this.problem(`Not compared: ${(r.doc && r.doc.error) || r.status}.`);
    this.problem("");
    const c = r.doc;
    $(".change-what", this.section).textContent = `Plan v${c.version} took effect on ${day(c.effective)}: ${
      c.changes.length ? c.changes.join("; ") : "the regimen did not change"}. ${c.days} days before it, and up to ${c.days} after.`;
    const body = clear($(".change-table tbody", this.section));
    for (const m of c.comparisons) {
      body.append(el("tr", { dataset: { metric: m.metric, outcome: m.outcome } },
        el("th", { scope: "row", text: capital(m.label) }),
        el("td", { class: "outcome", text: capital(m.outcome) }),
        el("td", { text: m.sentence.slice(m.sentence.indexOf(": ") + 2) })));
    }
    if (!c.comparisons.length) body.append(el("tr", {}, el("td", { colspan: "3", class: "muted", text: "The version's rules watch no metric to compare." })));
    this.section.dataset.ready = "true";
  }
}
