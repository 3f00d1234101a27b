// The /v1/ API as the pages use it: the session cookie goes with every
// request, the session's CSRF token with every state-changing one, a
// 401 anywhere sends the browser to the sign-in form, and a server that
// answers 503 or not at all shows the outage banner.
import { outage, recovered, livePage } from "./outage.js";

let csrf = "";
// back is where the sign-in form returns the browser to, when the page
// asked for that with returnAfterSignIn.
let back = "";

// SignedOut is thrown after a 401 has sent the browser to /signin; pages
// let it pass silently.
export class SignedOut extends Error {
  constructor() {
    super("signed out");
    this.name = "SignedOut";
  }
}

export function goSignIn() {
  window.location.assign(back ? `/signin?next=${encodeURIComponent(back)}` : "/signin");
}

// returnAfterSignIn makes a 401 send the browser to the sign-in form with
// this page as its next: a page link from a mail leads back to its alert.
export function returnAfterSignIn() {
  back = window.location.pathname + window.location.search;
}

// api sends one request and answers {status, ok, doc}: doc is the decoded
// JSON body, or null when there is none.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    outage("patientpulse cannot be reached");
    throw err;
  }
  if (resp.status === 503) outage("patientpulse cannot answer for now (503)");
  else if (!livePage()) recovered(); // a page with a live connection recovers when it is live again
  if (resp.status === 401) {
    goSignIn();
    throw new SignedOut();
  }
  const text = await resp.text();
  let doc = null;
  if (text) {
    try {
      doc = JSON.parse(text);
    } catch {
      doc = { error: text.trim() };
    }
  }
  return { status: resp.status, ok: resp.ok, doc };
}

// must is api for reads that the page cannot do without: anything but a
// 2xx throws, with the server's one-sentence reason.
export async function must(method, path, body) {
  const r = await api(method, path, body);
  if (!r.ok) {
    throw new Error((r.doc && r.doc.error) || `${method} ${path}: ${r.status}`);
  }
  return r.doc;
}

// loadSession asks who is signed in and keeps the CSRF token.
export async function loadSession() {
  const me = await must("GET", "/v1/session");
  csrf = me.csrf_token || "";
  return me;
}

export async function signOut() {
  back = ""; // whoever signs in next starts afresh
  await api("DELETE", "/v1/session");
  goSignIn();
}
