// The outage banner: once the live connection drops, or the server answers
// 503 or not at all, the page says plainly since when what it shows may be
// out of date, and greys out its freshness (body[data-stale], app.css);
// the banner goes once the server answers again.
import { el, $ } from "./dom.js";
import { clock } from "./format.js";

let since = null; // when the outage began (ms), or null
let live = false; // the page keeps a live connection (live.js)

// usesLive says that the page keeps a live connection: the banner then
// goes only when that connection is live again.
export function usesLive() {
  live = true;
}

export function livePage() {
  return live;
}

// outage shows the banner with what happened; the time it gives is when
// the first of the outage's failures happened.
export function outage(what) {
  if (since === null) since = Date.now();
  let banner = $("#outage");
  if (!banner) {
    banner = el("p", { id: "outage", class: "outage", role: "alert" });
    const bar = $(".bar");
    if (bar) bar.after(banner);
    else document.body.prepend(banner);
  }
  banner.textContent = `${what}. The data on this page may be out of date since ${clock(since)}; trying again…`;
  document.body.dataset.stale = clock(since);
}

// recovered takes the banner away: the server answers again.
export function recovered() {
  if (since === null) return;
  since = null;
  $("#outage")?.remove();
  delete document.body.dataset.stale;
}
