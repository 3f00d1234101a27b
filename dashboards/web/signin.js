// Shows why the last sign-in failed: the server redirects back here with
// ?error=<code>. No inline script: the Content-Security-Policy forbids it.
"use strict";

const messages = {
  credentials: "Wrong username or password, or the account is disabled.",
  locked: "Too many failed sign-ins. Wait a few minutes, then try again.",
  origin: "This sign-in did not come from patientpulse's own page. Reload and try again.",
  request: "Enter your username and password.",
  unavailable: "patientpulse cannot sign you in right now. Try again shortly.",
};

const code = new URLSearchParams(window.location.search).get("error");
if (code) {
  const el = document.getElementById("error");
  el.textContent = messages[code] || "Sign-in failed.";
  el.hidden = false;
}
