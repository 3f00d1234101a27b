// The on-call rota and the audit log on the administration page.
import { must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, span, fromWall } from "./format.js";

const dayWords = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };

// showRota draws the on-call tiers: when each is paged, who is on call in
// it now, and its shifts.
export async function showRota(section) {
  const rota = await must("GET", "/v1/oncall");
  const source = $("#rota-source", section);
  const tiers = clear($("#rota-tiers", section));
  if (!rota.tiers.length) {
    source.textContent = "No on-call rota is set: critical alerts are not escalated. Give serve one with --oncall-schedule (see the README, \"On call\").";
    return;
  }
  source.textContent = `Shifts in ${rota.timezone} time. The rota is the file serve was started with (--oncall-schedule): change it there and restart serve.`;
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

// durationMs reads a Go duration such as "1h30m0s".
function durationMs(s) {
  let ms = 0;
  for (const [, n, u] of String(s).matchAll(/([\d.]+)(h|m|s)/g)) ms += Number(n) * { h: 3600e3, m: 60e3, s: 1e3 }[u];
  return ms;
}

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
