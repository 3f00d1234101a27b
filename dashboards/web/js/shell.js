// The frame of every signed-in page: who is signed in, the clinic's time
// zone, sign-out, the live connection's state, and a message for what went
// wrong.
import { loadSession, signOut, SignedOut } from "./api.js";
import { setZone } from "./format.js";
import { $ } from "./dom.js";

export async function startShell() {
  const me = await loadSession();
  setZone(me.timezone || "UTC", me.locale);
  $("#who").textContent = `Signed in as ${me.username} (${me.role})`;
  const zone = $("#zone");
  if (zone) zone.textContent = `Times in ${me.timezone || "UTC"}`;
  const out = $("#signout");
  out.hidden = false;
  out.addEventListener("click", () => signOut().catch(() => {}));
  // Only admins are offered the administration page.
  const nav = document.querySelector(".bar nav");
  if (nav && me.role === "admin" && !nav.querySelector('a[href="/admin"]')) {
    const a = document.createElement("a");
    a.href = "/admin";
    a.textContent = "Admin";
    nav.append(a);
  }
  for (const a of document.querySelectorAll(".bar nav a")) {
    if (new URL(a.href).pathname === window.location.pathname) a.setAttribute("aria-current", "page");
  }
  return me;
}

const liveWords = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", off: "Offline" };

// setLive shows the websocket's state in the bar.
export function setLive(state) {
  const live = $("#live");
  if (!live) return;
  live.dataset.state = state;
  live.textContent = liveWords[state] || state;
}

// fail reports an error in the page's status line; a sign-out (the
// browser is on its way to /signin) is no error.
export function fail(err, where = "#status") {
  if (err instanceof SignedOut) return;
  console.error(err);
  const status = $(where);
  if (status) {
    status.textContent = `Something went wrong: ${err.message || err}. Reload the page to try again.`;
    status.classList.add("error");
    status.hidden = false;
  }
  document.body.dataset.error = String(err.message || err);
}
