// Shows why the last sign-in failed: the server redirects back here with
// ?error=<code>. Carries ?next=<path> (where a page's one-tap link was
// going) into the form, for the server to send the browser there after
// signing in; the server goes there only if it is a path of this site.
// No inline script: the Content-Security-Policy forbids it.
"use strict";

const messages = {
  credentials: "Wrong username or password, or the account is disabled.",
  locked: "Too many failed sign-ins. Wait a few minutes, then try again.",
  origin: "This sign-in did not come from patientpulse's own page. Reload and try again.",
  request: "Enter your username and password.",
  unavailable: "patientpulse cannot sign you in right now. Try again shortly.",
};

const params = new URLSearchParams(window.location.search);
const next = params.get("next");
if (next) {
  document.getElementById("next").value = next;
}

const code = params.get("error");
if (code) {
  const el = document.getElementById("error");
  el.textContent = messages[code] || "Sign-in failed.";
  el.hidden = false;
}
