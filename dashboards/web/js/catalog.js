// The vocabulary of the data, as the server keeps it (GET /v1/catalog,
// ingest.Catalog in Go): the sample types and their fields with labels,
// UCUM units and ranges, the symptom instruments with their items, the
// laboratory analytes, and the dose routes and units. It is read once per
// page load (loadCatalog) and then asked synchronously; the web app keeps
// no copy of it. What stays here is how things are shown: UCUM codes in
// the words staff read ("/min" is "bpm").
import { must } from "./api.js";

let loading = null;
let cat = { sample_types: [], instruments: [], analytes: [], dose_routes: [], dose_units: [] };
const fields = new Map(); // "measurement.field" → CatalogField
const instruments = new Map();
const analytes = new Map();

// loadCatalog fetches the catalog, once: every caller waits on the same
// request.
export function loadCatalog() {
  if (!loading) {
    loading = must("GET", "/v1/catalog").then((doc) => {
      cat = doc;
      for (const t of doc.sample_types || []) {
        for (const f of t.fields || []) fields.set(`${t.measurement}.${f.name}`, f);
      }
      for (const i of doc.instruments || []) instruments.set(i.name, i);
      for (const a of doc.analytes || []) analytes.set(a.name, a);
      return cat;
    });
  }
  return loading;
}

// UCUM codes as staff read them; a code not listed loses its brackets
// and braces ("{beats}" → "beats") and "u" for micro becomes "µ".
const unitWords = {
  "/min": "bpm", "mm[Hg]": "mmHg", "{steps}": "steps", "[IU]/L": "IU/L", "m[IU]/L": "mIU/L", "m[IU]/mL": "mIU/mL",
  "u[IU]/mL": "µIU/mL", Cel: "°C", "1": "", ug: "µg", "ug/L": "µg/L", "ukat/L": "µkat/L", "[lb_av]": "lb", "[in_i]": "in",
};

// displayUnit writes a UCUM code as staff read it.
export function displayUnit(ucum) {
  if (ucum === undefined || ucum === null) return "";
  if (Object.hasOwn(unitWords, ucum)) return unitWords[ucum];
  return ucum.replace(/\{([^}]*)\}/g, "$1").replace(/\[([^\]]*)\]/g, "$1").replace(/(^|\/)u(?=[a-zA-Z])/g, "$1µ");
}

// field is a sample field: {name, label, unit (UCUM), min, max, ...};
// undefined for one the catalog does not have.
export function field(measurement, name) {
  return fields.get(`${measurement}.${name}`);
}

// instrument is a symptom instrument: {name, label, min, max,
// subscales: [{name, items}]}.
export function instrument(name) {
  return instruments.get(name);
}

// fixedInstruments are the instruments with items of their own (not
// the clinic's custom check-in), in the catalog's order.
export function fixedInstruments() {
  return (cat.instruments || []).filter((i) => (i.subscales || []).length);
}

// items lists an instrument's items, subscale by subscale.
export function items(name) {
  const i = instruments.get(name);
  return i ? (i.subscales || []).flatMap((s) => s.items || []) : [];
}

// subscales lists an instrument's subscale names.
export function subscales(name) {
  const i = instruments.get(name);
  return i ? (i.subscales || []).map((s) => s.name) : [];
}

// scoreNames are the symptoms fields that are not items: the total and
// every instrument's subscales.
export function scoreNames() {
  return new Set(["total", ...(cat.instruments || []).flatMap((i) => (i.subscales || []).map((s) => s.name))]);
}

export function analyte(name) {
  return analytes.get(name);
}

export function allAnalytes() {
  return cat.analytes || [];
}

export function sampleTypes() {
  return cat.sample_types || [];
}

export function doseRoutes() {
  return cat.dose_routes || [];
}

export function doseUnits() {
  return cat.dose_units || [];
}

// metricInfo describes a plan metric ("sleep.total_min", "labs.estradiol",
// "symptoms.hot_flushes"): {label, unit} with the unit in UCUM; null
// when the catalog does not know it.
export function metricInfo(metric) {
  const dot = (metric || "").indexOf(".");
  if (dot < 0) return null;
  const m = metric.slice(0, dot);
  const f = metric.slice(dot + 1);
  if (m === "labs") {
    const a = analytes.get(f);
    return a ? { label: a.label, unit: a.unit } : null;
  }
  const fl = fields.get(metric);
  if (fl) return { label: fl.label, unit: fl.unit || "" };
  if (m === "symptoms") return { label: f.replaceAll("_", " "), unit: "" };
  return null;
}

// metricChoices lists what a rule may judge, grouped by sample type:
// [{group, metrics: [{metric, label}]}], labs by analyte.
export function metricChoices() {
  const out = [];
  for (const t of cat.sample_types || []) {
    if (t.measurement === "labs") {
      out.push({ group: t.label, metrics: (cat.analytes || []).map((a) => ({ metric: `labs.${a.name}`, label: a.label })) });
    } else if (t.measurement !== "dose" && (t.fields || []).length) {
      out.push({ group: t.label, metrics: t.fields.map((f) => ({ metric: `${t.measurement}.${f.name}`, label: f.label })) });
    }
  }
  return out;
}
