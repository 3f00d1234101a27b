// "Is the change working?" across the clinic (GET /v1/comparisons): each
// regimen the patients are on now, and for each metric its rules watch,
// how many patients improved, worsened or did not clearly change since
// their latest change, and the mean difference with its 95% interval.
// It reads every patient's data, so it runs only when asked.
import { must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { capital } from "./format.js";

export function setupClinicCompare(section) {
  const result = $(".form-result", section);
  $("#compare-form", section).addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.textContent = "Comparing every patient's latest change…";
    try {
      const doc = await must("GET", `/v1/comparisons?days=${encodeURIComponent($("#compare-days", section).value)}`);
      render(section, doc);
      result.textContent = `${doc.regimens.length} regimen${doc.regimens.length === 1 ? "" : "s"} compared, ${doc.days} days before and after each patient's latest change.`;
    } catch (err) {
      result.textContent = `Not compared: ${err.message}`;
    }
  });
}

function render(section, doc) {
  const holder = clear($(".compare-results", section));
  if (!doc.regimens.length) holder.append(el("p", { class: "muted", text: "No patient has a plan change in force for a day yet." }));
  for (const g of doc.regimens) {
    holder.append(el("h3", { text: `${g.regimen || "No medication"} (${g.patients} patient${g.patients === 1 ? "" : "s"})` }),
      el("table", { class: "change-table", dataset: { regimen: g.regimen } },
        el("thead", {}, el("tr", {}, ...["Metric", "Patients compared", "Improved", "Worsened", "No clear change", "Too few days", "Mean difference"]
          .map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...g.metrics.map((m) => el("tr", { dataset: { metric: m.metric } },
          el("th", { scope: "row", text: capital(m.label) + (m.instrument ? ` (${m.instrument.toUpperCase()})` : "") }),
          ...[m.patients, m.improved, m.worsened, m.unclear, m.too_few_days].map((n) => el("td", { class: "num", text: String(n) })),
          el("td", { text: m.summary || "–" }))))));
  }
}
