// Staff accounts and care teams on the administration page.
import { api, must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when } from "./format.js";
import { result, failed, submitting } from "./admin-forms.js";

const roleWords = { admin: "Administrator", clinician: "Clinician", oncall: "On call" };

export class StaffAdmin {
  // patients gives the patients the care team may be given.
  constructor(section, patients) {
    this.section = section;
    this.patients = patients;
    this.current = null;
    $("#add-staff").addEventListener("submit", (ev) => submitting(ev, () => this.add()));
    $("#reset-password").addEventListener("submit", (ev) => submitting(ev, () => this.resetPassword()));
    $("#care-team-add").addEventListener("submit", (ev) => submitting(ev, () => this.careTeam("PUT", $("#care-team-patient").value)));
    $("#disable-staff").addEventListener("click", () => {
      $("#disable-question").textContent = `Disable ${this.current.username}? They are signed out everywhere and cannot sign in again.`;
      $("#disable-confirm").hidden = false;
      $("#disable-yes").focus();
    });
    $("#disable-no").addEventListener("click", () => {
      $("#disable-confirm").hidden = true;
      $("#disable-staff").focus();
    });
    $("#disable-yes").addEventListener("click", () => this.disable().catch((err) => failed($("#reset-password"), err)));
  }

  async load() {
    const staff = (await must("GET", "/v1/staff")).staff || [];
    const body = clear($("#admin-staff tbody"));
    for (const s of staff) {
      const manage = el("button", { type: "button", class: "secondary", "aria-label": `Manage ${s.username}` }, "Manage");
      manage.addEventListener("click", () => this.manage(s.username).catch((err) => failed($("#reset-password"), err)));
      body.append(el("tr", { dataset: { staff: s.username } },
        el("td", {}, el("strong", { text: s.username })),
        el("td", { text: roleWords[s.role] || s.role }),
        el("td", { text: s.disabled_at ? `Disabled ${when(s.disabled_at)}` : `Active since ${when(s.created_at)}` }),
        el("td", {}, manage)));
    }
  }

  async add() {
    const form = $("#add-staff");
    const user = $("#new-staff-username");
    const body = { username: user.value.trim(), role: $("#new-staff-role").value, password: $("#new-staff-password").value };
    if (!body.username) return result(form, "Give the staff member a username.", true, user);
    const r = await api("POST", "/v1/staff", body);
    if (!r.ok) return result(form, `Not added: ${r.doc?.error || r.status}.`, true, r.status === 409 ? user : $("#new-staff-password"));
    form.reset();
    result(form, `Added ${r.doc.username} (${roleWords[r.doc.role]}).`);
    await this.load();
    await this.manage(r.doc.username);
  }

  async manage(username) {
    const s = await must("GET", `/v1/staff/${encodeURIComponent(username)}`);
    this.current = s;
    $("#manage-staff-title").textContent = `${s.username} (${roleWords[s.role] || s.role}${s.disabled_at ? ", disabled" : ""})`;
    for (const f of ["#reset-password", "#care-team-add"]) result($(f), "");
    $("#staff-result").textContent = "";
    $("#reset-password").hidden = !!s.disabled_at;
    $("#disable-staff").hidden = !!s.disabled_at;
    $("#disable-confirm").hidden = true;
    // Admins see every patient and on-call staff the patients with active
    // alerts: a care team is a clinician's.
    $("#care-team-area").hidden = s.role !== "clinician" || !!s.disabled_at;
    this.drawCareTeam(s.patients || []);
    const panel = $("#manage-staff");
    panel.hidden = false;
    panel.focus();
  }

  drawCareTeam(ids) {
    const names = new Map(this.patients().map((p) => [p.id, p.name || p.id]));
    const list = clear($("#care-team"));
    for (const id of ids) {
      const remove = el("button", { type: "button", class: "secondary", "aria-label": `Remove ${names.get(id) || id} from the care team` }, "Remove");
      remove.addEventListener("click", () => this.careTeam("DELETE", id).catch((err) => failed($("#care-team-add"), err)));
      list.append(el("li", { dataset: { patient: id } }, `${names.get(id) || id} `, el("span", { class: "muted", text: `(${id})` }), " ", remove));
    }
    $("#care-team-empty").hidden = ids.length > 0;
    const pick = clear($("#care-team-patient"));
    for (const p of this.patients()) {
      if (!ids.includes(p.id) && !p.deactivated_at) pick.append(el("option", { value: p.id, text: `${p.name || p.id} (${p.id})` }));
    }
    $("#care-team-add button").disabled = pick.options.length === 0;
  }

  async careTeam(method, patient) {
    const form = $("#care-team-add");
    if (!patient) return result(form, "Choose a patient.", true);
    const u = encodeURIComponent(this.current.username);
    const r = await api(method, `/v1/staff/${u}/patients/${encodeURIComponent(patient)}`);
    if (!r.ok) return result(form, `Not changed: ${r.doc?.error || r.status}.`, true);
    const s = await must("GET", `/v1/staff/${u}`);
    this.current = s;
    this.drawCareTeam(s.patients || []);
    result(form, method === "PUT" ? `Added ${patient} to the care team.` : `Removed ${patient} from the care team.`);
    $("#care-team-patient").focus();
  }

  async resetPassword() {
    const form = $("#reset-password");
    const input = $("#reset-password-input");
    const r = await api("PUT", `/v1/staff/${encodeURIComponent(this.current.username)}/password`, { password: input.value });
    if (!r.ok) return result(form, `Not set: ${r.doc?.error || r.status}.`, true, input);
    form.reset();
    result(form, `The password of ${this.current.username} is set: give it to them privately.`);
  }

  async disable() {
    const u = this.current.username;
    const r = await api("POST", `/v1/staff/${encodeURIComponent(u)}/disable`);
    const out = $("#staff-result");
    if (!r.ok) {
      out.textContent = `Not disabled: ${r.doc?.error || r.status}.`;
      out.classList.add("error");
      return;
    }
    await this.load();
    await this.manage(u);
    out.classList.remove("error");
    out.textContent = `${u} is disabled.`;
    $("#manage-staff").focus();
  }
}
