// The patient's own page: their weekly summary (GET /v1/device/summary),
// opened with their device's token. Their app opens /me#token=ppd_…: the
// token stays in the address's fragment, which browsers never send to a
// server, and is moved at once into this tab's session storage. Without
// one, the page asks for the device code.
"use strict";

const key = "patientpulse-device-token";
const $ = (id) => document.getElementById(id);

function show(id, on) { $(id).hidden = !on; }

function fail(message) {
  $("error").textContent = message;
  show("error", true);
  show("status", false);
}

function ask(message) {
  sessionStorage.removeItem(key);
  show("summary", false);
  show("pair", true);
  if (message) {
    fail(message);
  } else {
    show("status", false);
  }
}

// The week's days are the clinic's calendar days, whatever the phone's
// time zone: its dates are read off the times as written.
const day = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
const dateOf = (rfc3339, plusDays) => new Date(Date.parse(rfc3339.slice(0, 10) + "T00:00:00Z") + plusDays * 86400000);

function render(sum) {
  $("week").textContent = `${day.format(dateOf(sum.from, 0))} to ${day.format(dateOf(sum.to, -1))}`;
  const list = $("lines");
  list.replaceChildren();
  for (const line of sum.lines) {
    const li = document.createElement("li");
    li.textContent = line.text;
    if (line.on_target === true) li.className = "met";
    if (line.on_target === false) li.className = "missed";
    list.append(li);
  }
  if (sum.lines.length === 0) {
    const li = document.createElement("li");
    li.textContent = "Nothing to report for this week.";
    list.append(li);
  }
  show("pair", false);
  show("error", false);
  show("status", false);
  show("summary", true);
}

async function load() {
  const token = sessionStorage.getItem(key);
  if (!token) {
    ask("");
    return;
  }
  show("status", true);
  let resp;
  try {
    resp = await fetch("/v1/device/summary", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch {
    fail("Your summary cannot be reached right now. Check your connection and try again.");
    return;
  }
  let body = {};
  try { body = await resp.json(); } catch { /* answered below */ }
  if (resp.status === 401 || resp.status === 403) {
    ask(resp.status === 401 ? "That device code is not known. Check it and try again." : (body.error || "This device can no longer show a summary."));
    return;
  }
  if (!resp.ok) {
    fail(body.error || "Your summary cannot be shown right now. Try again later.");
    return;
  }
  render(body);
}

const m = window.location.hash.match(/token=([^&]+)/);
if (m) {
  sessionStorage.setItem(key, decodeURIComponent(m[1]));
  history.replaceState(null, "", window.location.pathname);
}
$("pair").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(key, $("code").value.trim());
  $("code").value = "";
  load();
});
$("forget").addEventListener("click", () => ask(""));
load();
