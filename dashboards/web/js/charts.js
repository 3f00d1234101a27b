// The charts of a patient's page, drawn with uPlot (bundled by `make web`
// into /vendor/): which series each chart shows, how samples become points
// (nightly, daily totals, hourly means of a dense series), each plan
// version's target band of each series over that version's own span, a
// marker at every plan change, one lane per medication with its own scale,
// and zoom and pan shared by every chart of the page.
//
// Each chart's <section> tells its state in data attributes, for people
// using assistive technology (the summary line says it in words) and for
// the browser tests: data-points (the chart's x values), data-targets (the
// current plan's bands, JSON), data-bands (every version's band with its
// span, JSON), data-plan-markers (plan changes in view), data-latest,
// data-view (the x range shown, ms, JSON).
import { el, clear } from "./dom.js";
import { zoneName, dayStart, dayKey, day, shortDay, clock, when, number, words, capital } from "./format.js";
import { field, displayUnit, fixedInstruments, instrument, items, subscales, scoreNames } from "./catalog.js";

const COLORS = ["#0b5cad", "#c2410c", "#6d28d9", "#047857", "#b91c1c", "#4b5563",
  "#a16207", "#0e7490", "#be185d", "#4d7c0f", "#1d4ed8", "#7c2d12", "#15803d", "#9d174d"];
// A dense series (heart rate) is shown as hourly means beyond this many
// samples, so that 90 days of minute-by-minute readings stay quick.
const DENSE_MAX = 5000;
const HOUR = 3600e3;

const minToH = (v) => v / 60;

// series is field f of measurement m as a chart draws it: its label and
// unit from the catalog, what the chart chooses in more (a scale, hours
// for minutes, bars). A field the catalog lacks is named by its key.
function series(m, f, more = {}) {
  const fl = field(m, f) || { label: capital(words(f)), unit: "" };
  const unit = displayUnit(fl.unit);
  return { label: fl.label, m, field: f, scale: unit || f, unit, ...more };
}

// inHours shows a field of minutes in hours.
const inHours = { scale: "h", unit: "h", conv: minToH };

function unitOf(m, f) {
  const fl = field(m, f);
  return fl ? displayUnit(fl.unit) : "";
}

// The lowest score of each published band (analysis/bands.go): a score
// rule with band B holds from there up.
const bandFloors = {
  mrs: { total: [5, 9, 17], somatic: [3, 5, 9], psychological: [2, 4, 7], urogenital: [1, 2, 4] },
  ams: { total: [27, 37, 50] },
};
const bandIndex = { mild: 0, moderate: 1, severe: 2 };

// instrumentsIn lists the instruments with check-ins in the data or rules
// in the plan.
function instrumentsIn(ctx) {
  const seen = new Set();
  for (const p of ctx.raw.symptoms || []) if (p.tags && p.tags.instrument) seen.add(p.tags.instrument);
  for (const r of (ctx.plan && ctx.plan.rules) || []) {
    if (r.instrument) seen.add(r.instrument);
  }
  return seen;
}

// itemsSeries draws the items of an instrument's check-ins, in the
// catalog's order (a custom check-in's, by name), and the items the plan
// judges.
function itemsSeries(inst) {
  return (ctx) => {
    const known = items(inst);
    const notItems = scoreNames().add("seq");
    const have = new Set();
    for (const p of ctx.raw.symptoms || []) {
      if (!p.tags || p.tags.instrument !== inst) continue;
      for (const k of Object.keys(p.fields)) if (!notItems.has(k)) have.add(k);
    }
    for (const r of (ctx.plan && ctx.plan.rules) || []) {
      const f = (r.metric || "").startsWith("symptoms.") ? r.metric.slice(9) : "";
      if (f && !notItems.has(f) && (r.instrument === inst || (!r.instrument && known.includes(f)))) have.add(f);
    }
    const order = (k) => (known.includes(k) ? known.indexOf(k) : 100);
    return [...have].sort((a, b) => order(a) - order(b) || a.localeCompare(b)).map((k) => ({
      label: words(k), m: "symptoms", tags: { instrument: inst }, field: k, scale: "score", unit: "",
    }));
  };
}

// itemCharts are a chart of items for each instrument of the catalog.
function itemCharts() {
  const fixed = fixedInstruments().map((i) => ({
    id: `items-${i.name}`, title: `${i.name.toUpperCase()} items`,
    about: `each item of the ${i.label}, scored ${number(i.min, 2)} to ${number(i.max, 2)}`, series: itemsSeries(i.name), min0: true,
  }));
  const custom = instrument("custom");
  if (custom) {
    fixed.push({ id: "items-custom", title: custom.label, about: `its items, scored ${number(custom.min, 2)} to ${number(custom.max, 2)}`,
      series: itemsSeries("custom"), min0: true });
  }
  return fixed;
}

// chartSpecs are the charts, in the page's order, once the catalog is
// loaded. series(ctx) returns the series to draw from ctx = {raw, plan};
// a chart with none is left out. Which chart a field belongs to, its
// colour and how it is rolled up are the page's choices; its label and
// unit are the catalog's.
export function chartSpecs() {
  return [
    {
      id: "sleep", title: "Sleep", about: "each night's total and stages, in hours",
      series: () => [
        series("sleep", "total_min", { ...inHours, width: 3 }),
        series("sleep", "deep_min", inHours),
        series("sleep", "rem_min", inHours),
        series("sleep", "light_min", inHours),
        series("sleep", "awake_min", inHours),
      ],
      min0: true,
    },
    {
      id: "activity", title: "Activity", about: "daily steps (bars) and active minutes",
      series: () => [
        series("activity", "steps", { daily: "sum", bars: true }),
        series("activity", "active_min", { daily: "sum", width: 2 }),
      ],
      min0: true,
    },
    {
      id: "heart", title: "Heart rate and HRV", about: "heart rate through the day (hourly means over long spans), and each night's resting heart rate and HRV",
      series: () => [
        series("heart_rate", "bpm", { dense: true, width: 1.25 }),
        series("sleep", "resting_hr", { width: 2 }),
        series("sleep", "hrv_rmssd_ms", { width: 2 }),
      ],
    },
    {
      id: "scores", title: "Symptom scores", about: "totals and subscales of each complete check-in",
      series: (ctx) => {
        const have = instrumentsIn(ctx);
        const out = [];
        for (const inst of fixedInstruments().map((i) => i.name)) {
          if (have.size && !have.has(inst)) continue;
          const name = inst.toUpperCase();
          out.push({ label: `${name} total`, m: "symptoms", tags: { instrument: inst }, field: "total", scale: "score", unit: "", width: 3 });
          for (const sub of subscales(inst)) {
            out.push({ label: `${name} ${sub}`, m: "symptoms", tags: { instrument: inst }, field: sub, scale: "score", unit: "", show: false });
          }
        }
        return out;
      },
      min0: true,
    },
    ...itemCharts(),
    {
      id: "doses", title: "Doses", about: "each logged dose as a marker; the line is the regimen's amount",
      series: (ctx) => {
        const meds = new Map();
        for (const d of (ctx.plan && ctx.plan.regimen) || []) meds.set(d.medication, d.unit);
        for (const p of ctx.raw.dose || []) {
          if (p.tags && p.tags.medication && !meds.has(p.tags.medication)) meds.set(p.tags.medication, p.tags.unit || "");
        }
        if (meds.size === 0) meds.set("", "");
        // One lane, and one scale, per medication: 100 mg of progesterone
        // and 0.05 mg of estradiol are not drawn on one axis.
        return [...meds].map(([med, unit]) => ({
          label: med ? `${med}${unit ? ` (${unit})` : ""}` : "Doses", m: "dose", tags: med ? { medication: med } : null,
          field: "amount", scale: `dose:${med}`, unit, markers: true,
        }));
      },
      min0: true,
      lanes: true,
    },
    {
      id: "bp", title: "Blood pressure", about: `systolic and diastolic, ${unitOf("vitals", "systolic")}`,
      series: () => [series("vitals", "systolic", { width: 2 }), series("vitals", "diastolic", { width: 2 })],
    },
    {
      id: "weight", title: "Weight", about: `in ${unitOf("vitals", "weight_kg")}`,
      series: () => [series("vitals", "weight_kg", { width: 2, dots: true })],
    },
    {
      id: "hematocrit", title: "Hematocrit", about: `measured at the clinic or at home, in ${unitOf("vitals", "hematocrit_pct")} (laboratory results are in their own panel)`,
      series: () => [series("vitals", "hematocrit_pct", { width: 2, dots: true })],
    },
  ];
}

// targetsOf reads the plan's bounds: each threshold and score rule, and
// each medication's prescribed amount, as {metric, instrument, medication,
// low, high, rule} where the value should stay (null: open).
export function targetsOf(plan) {
  const out = [];
  if (!plan) return out;
  for (const r of plan.rules || []) {
    if (r.kind === "threshold" && r.metric) {
      out.push({ metric: r.metric, instrument: r.instrument || "", low: r.below ?? null, high: r.above ?? null, rule: r.id });
    } else if (r.kind === "score" && r.instrument) {
      let high = r.above ?? null;
      const floors = bandFloors[r.instrument] && bandFloors[r.instrument][r.score || "total"];
      if (r.band && floors && bandIndex[r.band] !== undefined) high = floors[bandIndex[r.band]];
      out.push({ metric: `symptoms.${r.score || "total"}`, instrument: r.instrument, low: r.below ?? null, high, rule: r.id });
    }
  }
  for (const d of plan.regimen || []) {
    out.push({ metric: "dose.amount", medication: d.medication, low: d.amount, high: d.amount, rule: "regimen" });
  }
  return out.filter((t) => t.low !== null || t.high !== null);
}

// targetOf combines the targets that apply to series s into one band,
// in the series' units; null when none applies.
function targetOf(s, targets) {
  const metric = s.metric || `${s.m}.${s.field}`;
  const tags = s.tags || {};
  let low = null, high = null;
  const rules = [];
  for (const t of targets) {
    if (t.metric !== metric) continue;
    if (t.instrument && t.instrument !== tags.instrument) continue;
    if (t.medication !== undefined && t.medication !== tags.medication) continue;
    const conv = s.conv || ((v) => v);
    if (t.low !== null) low = low === null ? conv(t.low) : Math.max(low, conv(t.low));
    if (t.high !== null) high = high === null ? conv(t.high) : Math.min(high, conv(t.high));
    rules.push(t.rule);
  }
  return rules.length ? { low, high, rules } : null;
}

function targetWords(s, t) {
  const u = s.unit ? ` ${s.unit}` : "";
  if (t.low !== null && t.high !== null) {
    return t.low === t.high ? `${number(t.low, 2)}${u}` : `${number(t.low, 2)}–${number(t.high, 2)}${u}`;
  }
  return t.low !== null ? `at least ${number(t.low, 2)}${u}` : `at most ${number(t.high, 2)}${u}`;
}

// pointsOf turns the stored samples into the series' [ms, value] pairs.
function pointsOf(s, raw) {
  let out = [];
  for (const p of raw[s.m] || []) {
    if (s.tags && Object.entries(s.tags).some(([k, v]) => !p.tags || p.tags[k] !== v)) continue;
    const v = p.fields[s.field];
    if (typeof v !== "number") continue;
    out.push([p.ms, s.conv ? s.conv(v) : v]);
  }
  if (s.daily) out = perDay(out, s.daily);
  else if (s.dense && out.length > DENSE_MAX) out = perHour(out);
  return out;
}

// perDay rolls pairs up per clinic day, at the day's noon.
function perDay(pairs, how) {
  const days = new Map();
  for (const [t, v] of pairs) {
    const k = dayKey(t);
    const d = days.get(k) || { x: dayStart(t) + 12 * HOUR, sum: 0, n: 0 };
    d.sum += v;
    d.n++;
    days.set(k, d);
  }
  return [...days.values()].map((d) => [d.x, how === "mean" ? d.sum / d.n : d.sum]).sort((a, b) => a[0] - b[0]);
}

function perHour(pairs) {
  const hours = new Map();
  for (const [t, v] of pairs) {
    const k = Math.floor(t / HOUR);
    const h = hours.get(k) || { sum: 0, n: 0 };
    h.sum += v;
    h.n++;
    hours.set(k, h);
  }
  return [...hours].map(([k, h]) => [k * HOUR + HOUR / 2, h.sum / h.n]).sort((a, b) => a[0] - b[0]);
}

// join lays the series' pairs on one x axis (seconds), with nulls where a
// series has no value.
function join(all) {
  const xs = [...new Set(all.flatMap((pairs) => pairs.map((p) => p[0])))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = all.map((pairs) => {
    const y = new Array(xs.length).fill(null);
    for (const [x, v] of pairs) y[at.get(x)] = v;
    return y;
  });
  return [xs.map((x) => x / 1000), ...ys];
}

export function tint(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function digits(s) {
  return s.unit === "h" ? 1 : s.digits ?? 2;
}

// valueWords writes a value of the series with its unit: "7.8 h", "3000 steps".
export function valueWords(s, v) {
  return `${number(v, digits(s))}${s.unit ? ` ${s.unit}` : ""}`;
}

// lowerFirst makes "Heart rate" "heart rate", and leaves "MRS total".
function lowerFirst(label) {
  return /^[A-Z][a-z]/.test(label) ? label[0].toLowerCase() + label.slice(1) : label;
}

function unitLabel(s) {
  return s.unit === "h" ? "hours" : s.unit || (s.scale === "score" ? "score" : "");
}

// Chart is one chart section of the page. update() takes the page's state
// ({raw, plan, targets, markers, from, to}) and redraws.
export class Chart {
  constructor(spec, parent) {
    this.spec = spec;
    this.series = [];
    this.u = null;
    this.signature = "";
    const titleId = `chart-${spec.id}-title`;
    this.summary = el("p", { class: "summary", id: `chart-${spec.id}-summary` });
    this.empty = el("p", { class: "empty", text: "No data in this period.", hidden: true });
    this.plot = el("div", { class: "plot", role: "img", "aria-labelledby": titleId, "aria-describedby": `chart-${spec.id}-summary` });
    this.legend = el("ul", { class: "legend", "aria-label": `${spec.title}: series shown` });
    this.section = el("section", { class: "chart", id: `chart-${spec.id}`, "aria-labelledby": titleId, dataset: { points: "0", planMarkers: "0", targets: "[]" } },
      el("h3", { id: titleId, text: spec.title }), el("p", { class: "summary muted small", text: spec.about }),
      this.summary, this.empty, this.plot, this.legend);
    parent.append(this.section);
    this.resize = new ResizeObserver(() => {
      if (this.u && this.plot.clientWidth > 0 && Math.abs(this.u.width - this.plot.clientWidth) > 2) {
        this.u.setSize({ width: this.plot.clientWidth, height: this.height() });
      }
    });
    this.resize.observe(this.plot);
  }

  height() {
    return window.innerWidth < 700 ? 200 : 240;
  }

  // measurements the chart reads: a sample of another type leaves it be.
  reads(measurement) {
    return this.series.some((s) => s.m === measurement) || this.series.length === 0;
  }

  update(state) {
    this.state = state;
    const series = this.spec.series(state);
    this.section.hidden = series.length === 0;
    if (series.length === 0) return;
    const pairs = series.map((s) => pointsOf(s, state.raw));
    series.forEach((s, i) => {
      s.color = COLORS[i % COLORS.length];
      s.target = targetOf(s, state.targets);
      // Each plan version's band, over the span that version was in force.
      s.bands = (state.spans || []).map((sp) => ({ ...sp, t: targetOf(s, sp.targets) })).filter((b) => b.t);
      if (s.target && s.show === false) s.show = true; // a series the plan judges is shown
      s.count = pairs[i].length;
      s.latest = pairs[i].length ? pairs[i][pairs[i].length - 1] : null;
    });
    const data = join(pairs);
    this.lastX = data[0].length ? data[0][data[0].length - 1] : 0;
    this.markers = state.markers.filter((m) => m.ms >= state.from && m.ms <= Math.max(state.to, Date.now()));
    this.treatments = (state.treatments || []).filter((m) => m.ms >= state.from && m.ms <= Math.max(state.to, Date.now()) + 30 * 24 * HOUR);
    const sig = series.map((s) => `${s.label}|${s.bands.map((b) => `${b.from}:${b.t.low}:${b.t.high}`).join(";")}`).join(",");
    const keepShown = new Map(this.series.map((s, i) => [s.label, this.u ? this.u.series[i + 1].show : true]));
    this.series = series;
    for (const s of series) if (keepShown.has(s.label)) s.show = keepShown.get(s.label);
    if (!this.u || sig !== this.signature) {
      this.signature = sig;
      this.build(data);
    } else {
      this.u.setData(data);
    }
    this.describe(data);
  }

  build(data) {
    if (this.u) this.u.destroy();
    clear(this.plot);
    const scales = [...new Set(this.series.map((s) => s.scale))];
    const grid = { stroke: "#e5e9ee", width: 1 };
    const axis = { stroke: "#4a5561", grid, ticks: { stroke: "#d0d7de", width: 1 }, font: "12px system-ui, sans-serif", labelFont: "bold 12px system-ui, sans-serif" };
    // Time ticks in the clinic's locale and on the 24-hour clock (uPlot's
    // own are US English: "11/3", "12am"): a day, or a time of day.
    const tick = (t, incr) => (incr >= 86400 || dayStart(t * 1000) === t * 1000 ? shortDay(t * 1000) : clock(t * 1000));
    const axes = [{ ...axis, values: (u, splits, ax, space, incr) => splits.map((t) => tick(t, incr)) }];
    if (this.spec.lanes) {
      // Lanes are labelled in the plot (drawLanes): no shared y axis.
      axes.push({ scale: scales[0], side: 3, size: 12, values: () => [], ticks: { show: false }, grid: { show: false } });
    } else {
      scales.slice(0, 2).forEach((sc, i) => {
        const s = this.series.find((x) => x.scale === sc);
        axes.push({ ...axis, scale: sc, side: i === 0 ? 3 : 1, label: unitLabel(s), size: 60, labelSize: 20, grid: i === 0 ? grid : { show: false } });
      });
    }
    const scaleOpts = {
      // The page's zoom, or the window asked for, stretched to the newest
      // point. (uPlot's own max is a span of 1000 days after a single
      // point: not used.)
      x: { time: true, range: () => this.xRange().map((ms) => ms / 1000) },
    };
    for (const sc of scales) scaleOpts[sc] = { range: (u, min, max) => this.laneRange(scales, sc, this.yRange(sc, min, max)) };
    const opts = {
      width: Math.max(280, this.plot.clientWidth || 600),
      height: this.height(),
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), zoneName()),
      // Dragging across a chart zooms every chart of the page to it.
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 8 } },
      legend: { show: false },
      scales: scaleOpts,
      axes,
      series: [{}, ...this.series.map((s) => this.seriesOpts(s))],
      hooks: {
        drawAxes: [(u) => this.drawTargets(u)],
        draw: [(u) => this.drawMarkers(u), (u) => this.drawLanes(u)],
        setCursor: [(u) => this.showValues(u.cursor.idx)],
        setSelect: [(u) => this.selected(u)],
      },
    };
    this.u = new window.uPlot(opts, data, this.plot);
    this.buildLegend();
  }

  seriesOpts(s) {
    const o = { label: s.label, scale: s.scale, stroke: s.color, width: s.width || 1.5, spanGaps: true, show: s.show !== false };
    if (s.bars) {
      o.paths = window.uPlot.paths.bars({ size: [0.6, 40] });
      o.fill = tint(s.color, 0.55);
      o.points = { show: false };
    } else if (s.markers) {
      o.paths = () => null;
      o.points = { show: true, size: 11, width: 2, stroke: s.color, fill: tint(s.color, 0.35) };
    } else if (s.dots) {
      o.points = { show: true, size: 9, width: 2, stroke: s.color, fill: "#ffffff" };
    }
    return o;
  }

  // yRange spans the data and the bands' bounds of the scale's series.
  yRange(scale, min, max) {
    let lo = Number.isFinite(min) ? min : null;
    let hi = Number.isFinite(max) ? max : null;
    const [from, to] = this.xRange();
    for (const s of this.series) {
      if (s.scale !== scale) continue;
      for (const band of s.bands) {
        if (band.from > to || band.to < from) continue; // not in view
        for (const b of [band.t.low, band.t.high]) {
          if (b === null) continue;
          lo = lo === null ? b : Math.min(lo, b);
          hi = hi === null ? b : Math.max(hi, b);
        }
      }
    }
    if (lo === null) return [0, 1];
    if (this.spec.min0 && lo > 0) lo = 0;
    if (hi === lo) return [lo - (Math.abs(lo) * 0.1 || 1), hi + (Math.abs(hi) * 0.1 || 1)];
    const pad = (hi - lo) * 0.08;
    return [this.spec.min0 && lo >= 0 ? lo : lo - pad, hi + pad];
  }

  // drawTargets shades each shown series' band and dashes its bounds,
  // under the series.
  drawTargets(u) {
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const px = window.uPlot.pxRatio || 1;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    this.series.forEach((s, i) => {
      if (!u.series[i + 1].show) return;
      const [laneTop, laneBottom] = this.laneBox(u, s.scale);
      for (const band of s.bands) {
        const x0 = Math.max(left, u.valToPos(band.from / 1000, "x", true));
        const x1 = Math.min(left + width, Number.isFinite(band.to) ? u.valToPos(band.to / 1000, "x", true) : left + width);
        if (x1 <= x0) continue;
        const { low, high } = band.t;
        const yLow = low === null ? laneBottom : u.valToPos(low, s.scale, true);
        const yHigh = high === null ? laneTop : u.valToPos(high, s.scale, true);
        if (low !== high) {
          ctx.fillStyle = tint(s.color, 0.1);
          ctx.fillRect(x0, Math.min(yLow, yHigh), x1 - x0, Math.abs(yLow - yHigh));
        }
        ctx.strokeStyle = s.color;
        ctx.lineWidth = 1.5 * px;
        ctx.setLineDash([6 * px, 4 * px]);
        for (const [b, y] of [[low, yLow], [high, yHigh]]) {
          if (b === null) continue;
          ctx.beginPath();
          ctx.moveTo(x0, y);
          ctx.lineTo(x1, y);
          ctx.stroke();
        }
      }
    });
    ctx.restore();
  }

  // xRange is the x range shown (ms): the page's zoom, else the window
  // asked for, stretched to the newest point.
  xRange() {
    const v = this.state.view;
    if (v) return [v.from, v.to];
    return [this.state.from, Math.max(this.state.to, Date.now(), this.lastX * 1000)];
  }

  // selected zooms the page to a range dragged across the chart.
  selected(u) {
    const { left, width } = u.select;
    if (width > 4 && this.state.zoom) {
      this.state.zoom(u.posToVal(left, "x") * 1000, u.posToVal(left + width, "x") * 1000);
    }
    if (width > 0) u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  }

  // lanes are the chart's scales, top lane first, when it draws one lane
  // per scale (doses: one per medication).
  lanes() {
    return this.spec.lanes ? [...new Set(this.series.map((s) => s.scale))] : [];
  }

  // laneRange places a scale's range in its lane: lane k of n (from the
  // bottom) takes the k-th n-th of the height, with a gap above.
  laneRange(scales, scale, [lo, hi]) {
    if (!this.spec.lanes || scales.length < 2) return [lo, hi];
    const n = scales.length;
    const k = n - 1 - scales.indexOf(scale);
    const span = (hi - lo) * 1.25;
    return [lo - k * span, lo + (n - k) * span];
  }

  // laneBox is the top and bottom (canvas pixels) of the scale's lane, or
  // of the plot.
  laneBox(u, scale) {
    const { top, height } = u.bbox;
    const lanes = this.lanes();
    if (lanes.length < 2) return [top, top + height];
    const i = lanes.indexOf(scale);
    return [top + (height * i) / lanes.length, top + (height * (i + 1)) / lanes.length];
  }

  // drawLanes labels each lane with its medication and scale, and rules
  // the lanes apart.
  drawLanes(u) {
    const lanes = this.lanes();
    if (!lanes.length) return;
    const { ctx } = u;
    const { left, width } = u.bbox;
    const px = window.uPlot.pxRatio || 1;
    ctx.save();
    ctx.font = `${12 * px}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    lanes.forEach((sc, i) => {
      const s = this.series.find((x) => x.scale === sc);
      const [laneTop] = this.laneBox(u, sc);
      if (i > 0) {
        ctx.strokeStyle = "#d0d7de";
        ctx.lineWidth = px;
        ctx.setLineDash([]);
        ctx.beginPath();
        ctx.moveTo(left, laneTop);
        ctx.lineTo(left + width, laneTop);
        ctx.stroke();
      }
      const top = u.posToVal((laneTop - u.bbox.top) / px, sc);
      const label = `${s.label}: 0 to ${number(top, 2)}${s.unit ? ` ${s.unit}` : ""}`;
      ctx.fillStyle = "#1b1f24";
      ctx.fillText(label, left + 4 * px, laneTop + 3 * px);
    });
    ctx.restore();
  }

  // drawMarkers draws a line at each plan change, labelled with its
  // version, and a dotted one at each treatment, labelled at the foot,
  // over the series.
  drawMarkers(u) {
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const px = window.uPlot.pxRatio || 1;
    ctx.save();
    ctx.font = `bold ${11 * px}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    for (const m of this.markers) {
      const x = Math.round(u.valToPos(m.ms / 1000, "x", true));
      if (x < left - 1 || x > left + width + 1) continue;
      ctx.strokeStyle = "#1b1f24";
      ctx.lineWidth = 1.5 * px;
      ctx.setLineDash([3 * px, 3 * px]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      const label = `plan v${m.version}`;
      const w = ctx.measureText(label).width + 6 * px;
      const lx = Math.min(x + 2 * px, left + width - w);
      ctx.fillStyle = "#1b1f24";
      ctx.fillRect(lx, top, w, 15 * px);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(label, lx + 3 * px, top + 2 * px);
    }
    ctx.textBaseline = "bottom";
    for (const m of this.treatments) {
      const x = Math.round(u.valToPos(m.ms / 1000, "x", true));
      if (x < left - 1 || x > left + width + 1) continue;
      ctx.strokeStyle = "#6d28d9";
      ctx.lineWidth = 1.5 * px;
      ctx.setLineDash([1.5 * px, 3 * px]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      const w = ctx.measureText(m.label).width + 6 * px;
      const lx = Math.min(x + 2 * px, left + width - w);
      ctx.fillStyle = "#6d28d9";
      ctx.fillRect(lx, top + height - 15 * px, w, 15 * px);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(m.label, lx + 3 * px, top + height - 2 * px);
    }
    ctx.restore();
  }

  buildLegend() {
    clear(this.legend);
    this.outputs = this.series.map((s, i) => {
      const box = el("input", { type: "checkbox", id: `show-${this.spec.id}-${i}` });
      box.checked = s.show !== false;
      box.addEventListener("change", () => this.u.setSeries(i + 1, { show: box.checked }));
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = s.color; // CSSOM, which the CSP allows
      const out = el("output", { for: box.id });
      this.legend.append(el("li", {}, el("label", { for: box.id }, box, swatch, s.label), " ", out,
        s.target ? el("span", { class: "target", text: ` · target ${targetWords(s, s.target)}` }) : null));
      return out;
    });
    this.showValues(null);
  }

  // showValues writes each series' value under the cursor, or its latest.
  showValues(idx) {
    if (!this.outputs || !this.u) return;
    const data = this.u.data;
    this.series.forEach((s, i) => {
      let v = null, t = null;
      if (idx !== null && idx !== undefined) {
        v = data[i + 1][idx];
        t = data[0][idx] * 1000;
      } else if (s.latest) {
        [t, v] = s.latest;
      }
      this.outputs[i].textContent = v === null || v === undefined ? "–" : `${valueWords(s, v)} (${s.daily ? day(t) : when(t)})`;
    });
  }

  // describe says in words, and in data attributes, what the chart shows.
  describe(data) {
    const n = data[0].length;
    const sec = this.section;
    sec.dataset.points = String(n);
    sec.dataset.planMarkers = String(this.markers.length);
    sec.dataset.treatments = JSON.stringify(this.treatments.map((m) => m.label));
    sec.dataset.targets = JSON.stringify(this.series.filter((s) => s.target)
      .map((s) => ({ series: s.label, low: s.target.low, high: s.target.high, rules: s.target.rules })));
    sec.dataset.bands = JSON.stringify(this.series.flatMap((s) => s.bands.map((b) => ({
      series: s.label, version: b.version, from: b.from, to: Number.isFinite(b.to) ? b.to : null, low: b.t.low, high: b.t.high,
    }))));
    sec.dataset.view = JSON.stringify(this.xRange());
    sec.dataset.lanes = JSON.stringify(this.lanes().map((sc) => this.series.find((x) => x.scale === sc).label));
    const main = this.series.find((s) => s.latest && s.show !== false) || this.series.find((s) => s.latest);
    sec.dataset.latest = main ? new Date(main.latest[0]).toISOString() : "";
    this.empty.hidden = n > 0;
    const parts = [];
    if (main) {
      parts.push(`Latest ${lowerFirst(main.label)}: ${valueWords(main, main.latest[1])}, ${main.daily ? day(main.latest[0]) : when(main.latest[0])}.`);
    }
    const targets = this.series.filter((s) => s.target).map((s) => `${s.label} ${targetWords(s, s.target)}`);
    parts.push(targets.length ? `Plan target: ${targets.join("; ")}.` : "No target in the plan.");
    if (this.markers.length) parts.push(`Plan changes: ${this.markers.map((m) => `v${m.version} ${day(m.ms)}`).join(", ")}.`);
    if (this.treatments.length) parts.push(`Treatments: ${this.treatments.map((m) => `${m.label} ${day(m.ms)}`).join(", ")}.`);
    this.summary.textContent = parts.join(" ");
  }
}
