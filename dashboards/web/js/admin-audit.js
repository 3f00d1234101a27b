// The audit log on the administration page.
import { must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, fromWall } from "./format.js";

// dateStart is the clinic's midnight of an <input type="date"> value, plus
// days, as an RFC 3339 time; "" for none.
function dateStart(value, days = 0) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || "");
  return m ? new Date(fromWall(Date.UTC(+m[1], +m[2] - 1, +m[3] + days))).toISOString() : "";
}

export class AuditLog {
  constructor(section) {
    this.section = section;
    this.before = 0;
    $("#audit-filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.load().catch((err) => this.say(`Something went wrong: ${err.message}.`, true));
    });
    $("#audit-more").addEventListener("click", () => this.load(true).catch((err) => this.say(`Something went wrong: ${err.message}.`, true)));
  }

  say(text, isError = false) {
    const s = $("#audit-status");
    s.textContent = text;
    s.classList.toggle("error", isError);
  }

  async load(more = false) {
    const q = new URLSearchParams({ limit: "50" });
    for (const name of ["actor", "patient", "action"]) {
      const v = $(`#audit-${name}`).value.trim();
      if (v) q.set(name, v);
    }
    const since = dateStart($("#audit-since").value);
    const until = dateStart($("#audit-until").value, 1);
    if (since) q.set("since", since);
    if (until) q.set("until", until);
    if (more && this.before) q.set("before", String(this.before));
    const doc = await must("GET", `/v1/audit?${q}`);
    const body = $("#audit-entries tbody");
    if (!more) clear(body);
    for (const e of doc.entries || []) {
      body.append(el("tr", { dataset: { action: e.action } },
        el("td", {}, el("time", { datetime: e.at, text: when(e.at) })),
        el("td", {}, e.actor || "—", e.address ? el("span", { class: "sub", text: e.address }) : null),
        el("td", {}, el("code", { text: e.action })),
        el("td", { text: e.patient || "" }),
        el("td", { text: e.target || "" }),
        el("td", { text: e.outcome || "" })));
    }
    this.before = doc.next_before || 0;
    $("#audit-more").hidden = !this.before;
    const n = body.rows.length;
    this.say(n ? `${n} entr${n === 1 ? "y" : "ies"}${this.before ? "; older ones below" : ""}.` : "No entries match.");
  }
}
