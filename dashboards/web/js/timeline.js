// The timeline of a patient's page: the plan's versions and the lab
// results, newest first, each in one line ("Estradiol 412 pmol/L (ref
// 98–571)"), a result out of its reference range or beyond the plan's
// bound with a flag in words beside it.
import { el, clear } from "./dom.js";
import { day, when, number } from "./format.js";
import { labInfo, results, flagsOf, rangeWords } from "./labs.js";

const MAX = 50;

// renderTimeline fills the list from {raw, history, targets}.
export function renderTimeline(list, state) {
  const events = [];
  for (const v of state.history || []) {
    const ms = Date.parse(v.effective);
    events.push({ ms, kind: "plan", node: () => [el("strong", { text: `Plan version ${v.version}` }), ` takes effect (${when(ms)})`] });
  }
  const names = new Set((state.raw.labs || []).map((p) => p.tags && p.tags.analyte).filter(Boolean));
  for (const name of names) {
    const { label, unit } = labInfo(name);
    const target = labTarget(state.targets, name);
    for (const r of results(state.raw, name)) {
      const flags = flagsOf(r, target, unit);
      const range = rangeWords(r);
      events.push({
        ms: r.ms, kind: "lab", flag: flags.map((f) => f.code).join(""),
        node: () => [el("strong", { text: label }), ` ${number(r.value, 3)}${unit ? ` ${unit}` : ""}${range ? ` (ref ${range})` : ""}`,
          flags.length ? el("span", { class: "flag", text: ` ${flags.map((f) => f.words).join("; ")}` }) : null],
      });
    }
  }
  events.sort((a, b) => b.ms - a.ms);
  clear(list);
  for (const e of events.slice(0, MAX)) {
    list.append(el("li", { class: e.flag ? "flagged" : null, dataset: { kind: e.kind, flag: e.flag || "" } },
      el("time", { datetime: new Date(e.ms).toISOString(), text: day(e.ms) }), " ", ...e.node()));
  }
  if (!events.length) list.append(el("li", { class: "muted", text: "No plan changes or lab results." }));
  list.dataset.count = String(Math.min(events.length, MAX));
}

// labTarget is the plan's band on labs.<name>: {low, high} or null.
function labTarget(targets, name) {
  let low = null, high = null, any = false;
  for (const t of targets || []) {
    if (t.metric !== `labs.${name}`) continue;
    any = true;
    if (t.low !== null) low = low === null ? t.low : Math.max(low, t.low);
    if (t.high !== null) high = high === null ? t.high : Math.min(high, t.high);
  }
  return any ? { low, high } : null;
}
