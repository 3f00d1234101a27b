// The on-call rota on the administration page: each tier, when it is
// paged, its shifts and who is on call in it now; and changing the rota,
// as YAML, which the server checks (every problem at once) and keeps as a
// new version.
import { api, must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, span } from "./format.js";
import { result } from "./admin-forms.js";

const dayWords = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };

// durationMs reads a Go duration such as "1h30m0s".
function durationMs(s) {
  let ms = 0;
  for (const [, n, u] of String(s).matchAll(/([\d.]+)(h|m|s)/g)) ms += Number(n) * { h: 3600e3, m: 60e3, s: 1e3 }[u];
  return ms;
}

export class RotaAdmin {
  constructor(section) {
    this.section = section;
    const form = $("#rota-form");
    $("#rota-edit").addEventListener("click", () => this.edit().catch((err) => result(form, `Something went wrong: ${err.message}.`, true)));
    $("#rota-cancel").addEventListener("click", () => this.close());
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.save().catch((err) => result(form, `Something went wrong: ${err.message}.`, true));
    });
  }

  async load() {
    const [rota, text] = await Promise.all([must("GET", "/v1/oncall"), must("GET", "/v1/oncall/schedule")]);
    const source = $("#rota-source");
    const tiers = clear($("#rota-tiers"));
    if (!rota.tiers.length) {
      source.textContent = "No on-call rota is set: critical alerts are not escalated. Set one with \"Change the rota\".";
      return;
    }
    const from = text.version
      ? `Version ${text.version}, saved by ${text.saved_by} on ${when(text.saved_at)}.`
      : "From the file serve was started with (--oncall-schedule).";
    source.textContent = `Shifts in ${rota.timezone} time. ${from}`;
    for (const t of rota.tiers) {
      const after = t.after === "0s" ? "as soon as a critical alert opens" : `when a critical alert is unacknowledged for ${span(durationMs(t.after))}`;
      tiers.append(el("section", { class: "panel tier", dataset: { tier: t.name }, "aria-label": `Tier ${t.name}` },
        el("h3", { text: `Tier ${t.name}` }),
        el("p", { class: "muted", text: `Paged ${after}.` }),
        el("p", { class: "on-now" }, el("strong", { text: "On call now: " }), t.on_call.length ? t.on_call.join(", ") : "nobody"),
        el("table", { class: "shifts" },
          el("caption", { class: "visually-hidden", text: `Shifts of tier ${t.name}` }),
          el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Staff" }), el("th", { scope: "col", text: "Days" }), el("th", { scope: "col", text: "Hours" }))),
          el("tbody", {}, (t.shifts || []).map((s) => el("tr", {},
            el("td", { text: s.staff.join(", ") }),
            el("td", { text: s.days.map((d) => dayWords[d] || d).join(", ") }),
            el("td", { text: `${s.from}–${s.to}${s.to < s.from ? " (next day)" : ""}` })))))));
    }
  }

  async edit() {
    const text = await must("GET", "/v1/oncall/schedule");
    $("#rota-yaml").value = text.yaml || "timezone: UTC\ntiers:\n  - name: primary\n    after: 0m\n    shifts:\n      - {staff: [], days: [all], from: \"00:00\", to: \"24:00\"}\n";
    $("#rota-problems").hidden = true;
    result($("#rota-form"), "");
    $("#rota-form").hidden = false;
    $("#rota-edit").hidden = true;
    $("#rota-yaml").focus();
  }

  close() {
    $("#rota-form").hidden = true;
    $("#rota-edit").hidden = false;
    $("#rota-edit").focus();
  }

  async save() {
    const form = $("#rota-form");
    const r = await api("PUT", "/v1/oncall/schedule", { yaml: $("#rota-yaml").value });
    const box = $("#rota-problems");
    if (!r.ok) {
      const list = clear($("ul", box));
      for (const p of r.doc?.problems || [r.doc?.error || String(r.status)]) list.append(el("li", { text: p }));
      box.hidden = false;
      box.focus();
      return;
    }
    box.hidden = true;
    await this.load();
    this.close();
    result(form, "");
    $("#rota-source").append(` Saved: it is in force now.`);
  }
}
