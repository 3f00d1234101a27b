// A patient's treatments beside the hormone regimen: the procedures from
// the clinic's catalogue, planned or done, by whom, with notes. Their
// clinicians (and admins) record them and mark a planned one done or
// cancelled; everyone who may open the patient reads them, and the charts
// mark each one (markers()).
import { api, must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, toInput, fromInput } from "./format.js";

const statusWords = { planned: "planned", done: "done", cancelled: "cancelled" };

export class Procedures {
  // changed is called with the procedures after each load.
  constructor(section, base, canChange, changed) {
    this.section = section;
    this.path = `${base}/procedures`;
    this.canChange = canChange;
    this.changed = changed;
    this.types = new Map();
    this.list = [];
    $("#procedure-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.add().catch((err) => this.problem(err.message));
    });
  }

  name(type) {
    return (this.types.get(type) || {}).name || type;
  }

  async load() {
    const [types, doc] = await Promise.all([must("GET", "/v1/procedure-types"), must("GET", this.path)]);
    this.types = new Map((types.types || []).map((t) => [t.id, t]));
    this.list = doc.procedures || [];
    const pick = $("#procedure-type");
    const chosen = pick.value;
    clear(pick);
    for (const t of this.types.values()) {
      pick.append(el("option", { value: t.id, text: `${t.name} (${t.category}, ${t.recovery_days} days' recovery)` }));
    }
    if (chosen) pick.value = chosen;
    $("#procedure-form").hidden = !this.canChange || this.types.size === 0;
    $(".no-catalogue", this.section).hidden = !this.canChange || this.types.size > 0;
    if (!$("#procedure-at").value) $("#procedure-at").value = toInput(Date.now());
    this.render();
    this.changed(this.list);
  }

  render() {
    const list = clear($(".procedure-list", this.section));
    for (const p of [...this.list].reverse()) {
      const li = el("li", { class: p.status, tabindex: "-1", dataset: { procedure: String(p.id), status: p.status } },
        el("p", {}, el("strong", { text: this.name(p.type) }), ` ${statusWords[p.status] || p.status}${p.status === "planned" ? " for" : ","} ${when(p.at)}`),
        el("p", { class: "meta", text: `${p.performed_by ? `By ${p.performed_by}. ` : ""}Recorded by ${p.recorded_by}.` }),
        p.notes ? el("p", { class: "note-text", text: p.notes }) : null);
      if (this.canChange && p.status === "planned") {
        const done = el("button", { type: "button", class: "secondary", "aria-label": `Mark ${this.name(p.type)} of ${when(p.at)} done` }, "Mark done");
        const cancel = el("button", { type: "button", class: "secondary", "aria-label": `Cancel ${this.name(p.type)} of ${when(p.at)}` }, "Cancel it");
        done.addEventListener("click", () => this.change(p.id, "done").catch((err) => this.problem(err.message)));
        cancel.addEventListener("click", () => this.change(p.id, "cancelled").catch((err) => this.problem(err.message)));
        li.append(el("div", { class: "buttons" }, done, cancel));
      }
      list.append(li);
    }
    $(".empty", this.section).hidden = this.list.length > 0;
  }

  // warn shows what the plan's timing rules say of the procedure just
  // recorded or changed (none: the box goes).
  warn(warnings) {
    const box = $(".timing-warnings", this.section);
    const list = clear($("ul", box));
    for (const w of warnings || []) list.append(el("li", { text: w }));
    box.hidden = !list.children.length;
  }

  problem(text) {
    const p = $("#procedure-form .error");
    p.textContent = text;
    p.hidden = !text;
  }

  async add() {
    const at = fromInput($("#procedure-at").value);
    if (Number.isNaN(at)) return this.problem("Give when it is planned or was done.");
    const body = { type: $("#procedure-type").value, status: $("#procedure-status").value, at: new Date(at).toISOString(),
      performed_by: $("#procedure-by").value.trim(), notes: $("#procedure-notes").value };
    const r = await api("POST", this.path, body);
    if (!r.ok) return this.problem(`Not recorded: ${(r.doc && r.doc.error) || r.status}.`);
    this.problem("");
    $("#procedure-notes").value = "";
    await this.load();
    this.warn(r.doc.warnings);
  }

  async change(id, status) {
    const r = await api("PATCH", `${this.path}/${id}`, { status });
    if (!r.ok) return this.problem(`Not changed: ${(r.doc && r.doc.error) || r.status}.`);
    await this.load();
    this.warn(r.doc.warnings);
    // The buttons pressed are gone with the change: the keyboard focus
    // stays on the procedure.
    const li = $(`.procedure-list li[data-procedure="${id}"]`, this.section);
    if (li) li.focus();
  }

  // markers are what the charts mark: each procedure not cancelled.
  markers() {
    return this.list.filter((p) => p.status !== "cancelled")
      .map((p) => ({ ms: Date.parse(p.at), label: `${this.name(p.type)}${p.status === "planned" ? " (planned)" : ""}` }));
  }
}
