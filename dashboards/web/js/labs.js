// The laboratory panel of a patient's page: for each analyte the patient
// has results for, a small chart of its values in the analyte's canonical
// unit (from the catalog) with the laboratory's reference range shaded and
// the plan's bound dashed, each result outside either marked (a red
// diamond with H or L beside it, and the words in the table), and a table
// of the results: date, value, reported value, reference range, flag.
//
// The panel (#labs) says in data attributes what it shows, for the
// browser tests: data-analytes (in order) and data-flagged (results out
// of range or beyond the plan); each table row has data-flag.
import { el, clear } from "./dom.js";
import { day, number } from "./format.js";
import { analyte, allAnalytes, displayUnit } from "./catalog.js";
import { Chart, tint } from "./charts.js";

const REF = "#15803d";
const FLAG = "#b91c1c";
const DAY = 24 * 3600e3;
const MIN_DAYS = 90;

// labInfo is how the page names and writes an analyte: its label and its
// canonical unit as staff read it.
export function labInfo(name) {
  const a = analyte(name);
  return a ? { label: a.label, unit: displayUnit(a.unit) } : { label: name, unit: "" };
}

// results lists an analyte's results, oldest first:
// {ms, value, reported, low, high}.
export function results(raw, name) {
  return (raw.labs || []).filter((p) => p.tags && p.tags.analyte === name && typeof p.fields.value === "number").map((p) => ({
    ms: p.ms, value: p.fields.value, reported: p.fields.reported_value ?? null,
    low: p.fields.ref_low ?? null, high: p.fields.ref_high ?? null,
  }));
}

// flagsOf judges one result against its reference range and the plan's
// band (target: {low, high} or null): [{code, words}], empty when fine.
export function flagsOf(r, target, unit) {
  const u = unit ? ` ${unit}` : "";
  const out = [];
  if (r.high !== null && r.value > r.high) out.push({ code: "H", words: `High: above the reference range (${number(r.high, 3)}${u})` });
  if (r.low !== null && r.value < r.low) out.push({ code: "L", words: `Low: below the reference range (${number(r.low, 3)}${u})` });
  if (target && target.high !== null && r.value > target.high) out.push({ code: "H", words: `Above the plan's ${number(target.high, 3)}${u}` });
  if (target && target.low !== null && r.value < target.low) out.push({ code: "L", words: `Below the plan's ${number(target.low, 3)}${u}` });
  return out;
}

// rangeWords writes a reference range: "98–571", "< 4", "> 20", or "".
export function rangeWords(r) {
  if (r.low !== null && r.high !== null) return `${number(r.low, 3)}–${number(r.high, 3)}`;
  if (r.high !== null) return `< ${number(r.high, 3)}`;
  if (r.low !== null) return `> ${number(r.low, 3)}`;
  return "";
}

// LabChart is one analyte's chart: a Chart whose band of the plan is
// drawn over the reference range, with flagged results marked.
class LabChart extends Chart {
  constructor(name, parent) {
    const { label, unit } = labInfo(name);
    super({
      id: `lab-${name}`, title: label, about: `in ${unit || "the laboratory's unit"}; shaded: the laboratory's reference range; dashed: the plan's bound`,
      series: () => [{ label, m: "labs", tags: { analyte: name }, field: "value", metric: `labs.${name}`, scale: unit || "value", unit, digits: 3, dots: true, width: 2 }],
    }, parent);
    this.name = name;
    this.section.classList.add("lab");
    this.table = el("table", { class: "lab-results" });
    this.section.append(el("div", { class: "table-wrap" }, this.table));
  }

  height() {
    return 170;
  }

  update(state) {
    this.results = results(state.raw, this.name);
    super.update(state);
    const s = this.series[0];
    for (const r of this.results) r.flags = flagsOf(r, s.target, s.unit);
    this.fillTable(s);
    this.u.redraw(false);
  }

  // yRange also spans the reference ranges.
  yRange(scale, min, max) {
    let lo = min, hi = max;
    for (const r of this.results || []) {
      for (const b of [r.low, r.high]) {
        if (b === null) continue;
        lo = Number.isFinite(lo) ? Math.min(lo, b) : b;
        hi = Number.isFinite(hi) ? Math.max(hi, b) : b;
      }
    }
    // Room above for the plan changes' labels, clear of the newest result.
    const [a, b] = super.yRange(scale, lo, hi);
    return [a, b + (b - a) * 0.15];
  }

  // drawTargets shades each result's reference range from the result to
  // the next one (the first also back to the left edge), then the plan's
  // band.
  drawTargets(u) {
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const scale = this.series[0].scale;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.fillStyle = tint(REF, 0.12);
    const rs = this.results || [];
    rs.forEach((r, i) => {
      if (r.low === null && r.high === null) return;
      const x0 = i === 0 ? left : u.valToPos(r.ms / 1000, "x", true);
      const x1 = i === rs.length - 1 ? left + width : u.valToPos(rs[i + 1].ms / 1000, "x", true);
      const y0 = r.high === null ? top : u.valToPos(r.high, scale, true);
      const y1 = r.low === null ? top + height : u.valToPos(r.low, scale, true);
      ctx.fillRect(x0, Math.min(y0, y1), x1 - x0, Math.abs(y1 - y0));
    });
    ctx.restore();
    super.drawTargets(u);
  }

  // drawMarkers marks each flagged result: a red diamond, and H or L.
  drawMarkers(u) {
    super.drawMarkers(u);
    const { ctx } = u;
    const px = window.uPlot.pxRatio || 1;
    const scale = this.series[0].scale;
    ctx.save();
    ctx.font = `bold ${12 * px}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    for (const r of this.results || []) {
      if (!r.flags || !r.flags.length) continue;
      const x = u.valToPos(r.ms / 1000, "x", true);
      const y = u.valToPos(r.value, scale, true);
      const d = 7 * px;
      ctx.beginPath();
      ctx.moveTo(x, y - d);
      ctx.lineTo(x + d, y);
      ctx.lineTo(x, y + d);
      ctx.lineTo(x - d, y);
      ctx.closePath();
      ctx.fillStyle = FLAG;
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1.5 * px;
      ctx.fill();
      ctx.stroke();
      ctx.fillStyle = FLAG;
      ctx.textAlign = x > u.bbox.left + u.bbox.width - 20 * px ? "right" : "left";
      ctx.fillText(r.flags[0].code, x + (ctx.textAlign === "right" ? -d - 3 * px : d + 3 * px), y);
    }
    ctx.restore();
  }

  // fillTable lists the results, newest first.
  fillTable(s) {
    const unit = s.unit;
    clear(this.table);
    this.table.append(el("caption", { class: "muted small", text: `${s.label}: each result` }),
      el("thead", {}, el("tr", {}, ["Date", "Value", "Reported value", "Reference range", "Flag"].map((h) => el("th", { scope: "col", text: h })))));
    const body = el("tbody");
    for (const r of [...this.results].reverse()) {
      const flagged = r.flags.length > 0;
      const range = rangeWords(r);
      body.append(el("tr", { class: flagged ? "flagged" : null, dataset: { flag: r.flags.map((f) => f.code).join("") } },
        el("td", { "data-label": "Date", text: day(r.ms) }),
        el("td", { "data-label": "Value", class: "num" }, el("strong", { text: `${number(r.value, 3)}${unit ? ` ${unit}` : ""}` })),
        el("td", { "data-label": "Reported value", class: "num", text: r.reported === null ? "–" : number(r.reported, 3) }),
        el("td", { "data-label": "Reference range", text: range ? `${range}${unit ? ` ${unit}` : ""}` : "none given" }),
        el("td", { "data-label": "Flag" }, flagged ? el("span", { class: "flag", text: r.flags.map((f) => f.words).join("; ") }) : "within range")));
    }
    this.table.append(body);
    const flagged = this.results.filter((r) => r.flags.length).length;
    this.section.dataset.flagged = String(flagged);
    if (flagged) this.summary.textContent += ` ${flagged} of ${this.results.length} results flagged.`;
  }

  destroy() {
    this.resize.disconnect();
    if (this.u) this.u.destroy();
    this.section.remove();
  }
}

// LabPanel lays out a LabChart for each analyte with results, in the
// catalog's order.
export class LabPanel {
  constructor(root) {
    this.root = root;
    this.holder = root.querySelector(".lab-charts");
    this.empty = root.querySelector(".empty");
    this.charts = new Map();
  }

  // update takes {raw, targets, markers, from, to}, raw.labs the lab
  // results read since from.
  update(state) {
    const have = new Set((state.raw.labs || []).map((p) => p.tags && p.tags.analyte).filter(Boolean));
    const order = allAnalytes().map((a) => a.name);
    const names = [...have].sort((a, b) => (order.indexOf(a) + 1 || 999) - (order.indexOf(b) + 1 || 999) || a.localeCompare(b));
    if (names.join() !== [...this.charts.keys()].join()) {
      for (const c of this.charts.values()) c.destroy();
      this.charts.clear();
      for (const n of names) this.charts.set(n, new LabChart(n, this.holder));
    }
    // The charts share one span: from a little before the first result
    // (at least MIN_DAYS back) to now, not the whole span read.
    const first = Math.min(...(state.raw.labs || []).map((p) => p.ms), state.to);
    const from = Math.max(state.from, Math.min(first - 0.05 * (state.to - first), state.to - MIN_DAYS * DAY));
    for (const c of this.charts.values()) c.update({ ...state, from });
    this.empty.hidden = names.length > 0;
    this.root.dataset.analytes = names.join(",");
    this.root.dataset.flagged = String([...this.charts.values()].reduce((n, c) => n + Number(c.section.dataset.flagged || 0), 0));
    this.root.dataset.ready = "true";
  }
}
