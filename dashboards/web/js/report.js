// The visit report panel of a patient's page: the PDF over the days
// chosen (the clinic's days, the last 30 by default), and printing the
// page itself (app.css has its print stylesheet).
import { $ } from "./dom.js";
import { dayKey, fromWall } from "./format.js";

// midnight is the clinic's midnight that starts the day of an
// <input type="date"> value, plus days (ms); NaN for none.
function midnight(value, days = 0) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || "");
  return m ? fromWall(Date.UTC(+m[1], +m[2] - 1, +m[3] + days)) : NaN;
}

export function setupReport(patientId) {
  const from = $("#report-from"), to = $("#report-to"), link = $("#report-pdf"), problem = $("#report .error");
  to.value = dayKey(Date.now());
  from.value = dayKey(midnight(to.value, -29));
  const update = () => {
    const a = midnight(from.value), b = midnight(to.value, 1);
    const bad = Number.isNaN(a) || Number.isNaN(b) ? "Choose both days." : a >= b ? "The first day must not be after the last." : "";
    problem.textContent = bad;
    problem.hidden = !bad;
    link.toggleAttribute("aria-disabled", !!bad);
    const q = new URLSearchParams({ from: new Date(a || 0).toISOString(), to: new Date(b || 0).toISOString() });
    link.href = bad ? "#" : `/v1/patients/${encodeURIComponent(patientId)}/report?${q}`;
  };
  from.addEventListener("input", update);
  to.addEventListener("input", update);
  link.addEventListener("click", (ev) => {
    if (link.hasAttribute("aria-disabled")) ev.preventDefault();
  });
  $("#report-print").addEventListener("click", () => window.print());
  update();
}
