// The signed-in page: who you are, sign-out, and the patients you may
// see. Every request carries the session cookie; state-changing ones also
// the session's CSRF token, as the server requires.
"use strict";

let csrf = "";

async function api(method, path) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(path, { method, headers, credentials: "same-origin" });
  if (resp.status === 401) {
    window.location.assign("/signin");
    throw new Error("signed out");
  }
  return resp;
}

async function main() {
  const me = await (await api("GET", "/v1/session")).json();
  csrf = me.csrf_token || "";
  document.getElementById("who").textContent = `Signed in as ${me.username} (${me.role})`;
  const signout = document.getElementById("signout");
  signout.hidden = false;
  signout.addEventListener("click", async () => {
    await api("DELETE", "/v1/session");
    window.location.assign("/signin");
  });

  const status = document.getElementById("status");
  const resp = await api("GET", "/v1/patients");
  if (!resp.ok) {
    status.textContent = "Your patients could not be loaded.";
    return;
  }
  const { patients } = await resp.json();
  if (patients.length === 0) {
    status.textContent = "No patients are assigned to you.";
    return;
  }
  const tbody = document.querySelector("#patients tbody");
  for (const p of patients) {
    const tr = document.createElement("tr");
    for (const text of [p.name || "(no name)", p.id, new Date(p.created_at).toLocaleDateString()]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  status.textContent = `${patients.length} patient${patients.length === 1 ? "" : "s"}`;
  document.getElementById("patients").hidden = false;
}

main().catch((err) => {
  if (err.message !== "signed out") {
    document.getElementById("status").textContent = "Something went wrong. Reload the page.";
  }
});
