// Times as staff read them: always in the clinic's time zone (from
// GET /v1/session), whatever the tablet's own setting; and clinic calendar
// days, to roll samples up per day as the analysis does.

let zone = "UTC";
let locale = "en-GB";
let dateTime, dateOnly, dayMonth, timeOnly, parts;

function build() {
  const h23 = { timeZone: zone, hourCycle: "h23" }; // times on the 24-hour clock, whatever the locale's habit
  dateTime = new Intl.DateTimeFormat(locale, { ...h23, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
  dateOnly = new Intl.DateTimeFormat(locale, { timeZone: zone, day: "numeric", month: "short", year: "numeric" });
  dayMonth = new Intl.DateTimeFormat(locale, { timeZone: zone, day: "numeric", month: "short" });
  timeOnly = new Intl.DateTimeFormat(locale, { ...h23, hour: "2-digit", minute: "2-digit" });
  parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}
build();

// setZone makes tz (an IANA name) the zone of every time shown, and tag (a
// BCP 47 language tag, the clinic's --locale) the language dates and
// numbers are written in; an unknown zone leaves UTC, an unknown tag
// en-GB.
export function setZone(tz, tag) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    zone = tz;
  } catch {
    zone = "UTC";
  }
  try {
    locale = Intl.getCanonicalLocales(tag || "en-GB")[0];
  } catch {
    locale = "en-GB";
  }
  build();
}

export function zoneName() {
  return zone;
}

function ms(t) {
  if (t === null || t === undefined || t === "") return NaN;
  return t instanceof Date ? t.getTime() : typeof t === "number" ? t : Date.parse(t);
}

// when writes a date and time, e.g. "3 Jun 2026, 14:05".
export function when(t) {
  const v = ms(t);
  return Number.isNaN(v) ? "never" : dateTime.format(v);
}

export function day(t) {
  const v = ms(t);
  return Number.isNaN(v) ? "" : dateOnly.format(v);
}

// shortDay writes a day without its year, e.g. "12 Nov".
export function shortDay(t) {
  const v = ms(t);
  return Number.isNaN(v) ? "" : dayMonth.format(v);
}

export function clock(t) {
  const v = ms(t);
  return Number.isNaN(v) ? "" : timeOnly.format(v);
}

// span writes a duration: "45 s", "12 min", "3 h 5 min", "4 days".
export function span(d) {
  const s = Math.max(0, Math.round(d / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} days`;
}

// ago writes how long ago t was: "just now", "12 min ago".
export function ago(t, now = Date.now()) {
  const v = ms(t);
  if (Number.isNaN(v)) return "";
  const d = now - v;
  if (d < 60000) return "just now";
  return `${span(d)} ago`;
}

// wall returns the clinic's wall-clock reading at t: its fields, and the
// same reading as if it were UTC (ms), which differs from t by the zone's
// offset.
function wall(t) {
  const p = {};
  for (const { type, value } of parts.formatToParts(t)) p[type] = Number(value);
  const asUTC = Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second);
  return { p, asUTC };
}

// fromWall turns a clinic wall-clock reading, written as if UTC, into the
// instant (ms); in a daylight-saving gap it lands just after.
export function fromWall(asUTC) {
  let t = asUTC - (wall(asUTC).asUTC - asUTC);
  t = asUTC - (wall(t).asUTC - t);
  return t;
}

// dayStart is the clinic's midnight that begins t's day (ms).
export function dayStart(t) {
  const { p } = wall(ms(t));
  return fromWall(Date.UTC(p.year, p.month - 1, p.day));
}

// dayKey names t's clinic day, "2026-06-03".
export function dayKey(t) {
  const { p } = wall(ms(t));
  return `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
}

// toInput writes t for an <input type="datetime-local">, in the clinic's
// zone.
export function toInput(t) {
  return new Date(wall(ms(t)).asUTC).toISOString().slice(0, 16);
}

// fromInput reads an <input type="datetime-local"> value, in the clinic's
// zone, as an instant (ms), or NaN.
export function fromInput(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(s || "");
  if (!m) return NaN;
  return fromWall(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)));
}

// number writes v with at most digits decimals, trailing zeros dropped.
export function number(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v.toFixed(digits)).toLocaleString(locale, { maximumFractionDigits: digits });
}

export function percent(share) {
  if (share === null || share === undefined) return "–";
  return `${Math.round(share * 100)}%`;
}

// Durations as the plan writes them ("24h", "7d", "2w"; "90m" too) and as
// the editor shows them: an amount of hours, days or weeks.
const minutesIn = { m: 1, h: 60, d: 1440, w: 10080 };
export const durationUnits = { h: "hours", d: "days", w: "weeks" };

// splitDuration reads "24h" as {amount: 24, unit: "h"}; weeks as days
// ("1w": 7 d, as the rules' words say "7-day mean"), minutes as hours
// ("90m": 1.5 h); null when s is not a duration.
export function splitDuration(s) {
  const m = /^([1-9][0-9]*)([mhdw])$/.exec(s || "");
  if (!m) return null;
  if (m[2] === "m") return { amount: Number((m[1] / 60).toFixed(4)), unit: "h" };
  if (m[2] === "w") return { amount: m[1] * 7, unit: "d" };
  return { amount: Number(m[1]), unit: m[2] };
}

// joinDuration writes amount of unit as the plan does: "7d" for 7 days;
// a fraction in the largest unit that divides it ("1.5 days": "36h");
// null unless it comes to a whole number of minutes, at least one.
export function joinDuration(amount, unit) {
  if (Number.isInteger(amount) && amount > 0 && minutesIn[unit]) return `${amount}${unit}`;
  const min = amount * minutesIn[unit];
  if (!(min >= 1) || Math.abs(min - Math.round(min)) > 1e-6) return null;
  const whole = Math.round(min);
  const u = ["w", "d", "h", "m"].find((k) => whole % minutesIn[k] === 0);
  return `${whole / minutesIn[u]}${u}`;
}

// words turns a key such as "hot_flushes" into "hot flushes".
export function words(key) {
  return String(key).replaceAll("_", " ");
}

export function capital(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}
