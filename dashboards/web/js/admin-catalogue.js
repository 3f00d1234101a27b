// The clinic's catalogue of procedures on the administration page.
import { api, must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { result, submitting } from "./admin-forms.js";

export class CatalogueAdmin {
  constructor() {
    $("#add-procedure-type").addEventListener("submit", (ev) => submitting(ev, () => this.add()));
    // The id follows the name until it is typed in itself.
    $("#new-type-name").addEventListener("input", () => {
      const id = $("#new-type-id");
      if (!id.dataset.typed) id.value = $("#new-type-name").value.trim().toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
    });
    $("#new-type-id").addEventListener("input", () => { $("#new-type-id").dataset.typed = "true"; });
  }

  async load() {
    const types = (await must("GET", "/v1/procedure-types")).types || [];
    const body = clear($("#procedure-types tbody"));
    for (const t of types) {
      body.append(el("tr", { dataset: { type: t.id } }, el("td", { text: t.name }), el("td", { text: t.category }),
        el("td", { class: "num", text: `${t.recovery_days} days` }), el("td", {}, el("code", { text: t.id }))));
    }
    $("#procedure-types").hidden = types.length === 0;
    $("#no-procedure-types").hidden = types.length > 0;
  }

  async add() {
    const form = $("#add-procedure-type");
    const body = { id: $("#new-type-id").value.trim(), name: $("#new-type-name").value.trim(), category: $("#new-type-category").value.trim(),
      recovery_days: Number($("#new-type-recovery").value || 0) };
    const r = await api("POST", "/v1/procedure-types", body);
    if (!r.ok) return result(form, `Not added: ${r.doc?.error || r.status}.`, true, $("#new-type-name"));
    form.reset();
    delete $("#new-type-id").dataset.typed;
    result(form, `Added ${body.name}.`);
    await this.load();
  }
}
