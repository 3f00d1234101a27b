// Patients and their devices on the administration page.
import { api, must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when, ago, words } from "./format.js";
import { result, failed, submitting } from "./admin-forms.js";

export class PatientsAdmin {
  constructor(section) {
    this.section = section;
    this.list = [];
    this.current = null; // the patient being managed
    $("#add-patient").addEventListener("submit", (ev) => submitting(ev, () => this.add()));
    $("#edit-patient").addEventListener("submit", (ev) => submitting(ev, () => this.edit()));
    $("#enrol-device").addEventListener("submit", (ev) => submitting(ev, () => this.enrol()));
    $("#show-deactivated").addEventListener("change", () => this.load().catch((err) => failed($("#add-patient"), err)));
    $("#enrolment-done").addEventListener("click", () => this.hideEnrolment());
    $("#deactivate").addEventListener("click", () => {
      $("#deactivate-question").textContent = `Deactivate ${this.label(this.current)}? Their devices are revoked at once.`;
      $("#deactivate-confirm").hidden = false;
      $("#deactivate-yes").focus();
    });
    $("#deactivate-no").addEventListener("click", () => {
      $("#deactivate-confirm").hidden = true;
      $("#deactivate").focus();
    });
    $("#deactivate-yes").addEventListener("click", () => this.monitoring("deactivate"));
    $("#reactivate").addEventListener("click", () => this.monitoring("reactivate"));
  }

  label(p) {
    return p.name ? `${p.name} (${p.id})` : p.id;
  }

  async load() {
    const all = $("#show-deactivated").checked ? "?include=deactivated" : "";
    this.list = (await must("GET", `/v1/patients${all}`)).patients || [];
    this.list.sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
    const body = clear($("#admin-patients tbody"));
    for (const p of this.list) {
      const manage = el("button", { type: "button", class: "secondary", "aria-label": `Manage ${this.label(p)}` }, "Manage");
      manage.addEventListener("click", () => this.manage(p.id).catch((err) => failed($("#edit-patient"), err)));
      body.append(el("tr", { dataset: { patient: p.id } },
        el("td", {}, el("strong", { text: p.name || p.id }), el("span", { class: "sub", text: p.id })),
        el("td", { text: p.contact || "—" }),
        el("td", { text: p.deactivated_at ? `Deactivated ${when(p.deactivated_at)}` : "Monitored" }),
        el("td", {}, manage)));
    }
  }

  async add() {
    const form = $("#add-patient");
    const idField = $("#new-patient-id");
    const body = { id: idField.value.trim(), name: $("#new-patient-name").value.trim(), contact: $("#new-patient-contact").value.trim() };
    if (!body.id) return result(form, "Give the patient an id.", true, idField);
    const r = await api("POST", "/v1/patients", body);
    if (!r.ok) return result(form, `The patient was not added: ${r.doc?.error || r.status}.`, true, idField);
    form.reset();
    result(form, `Added ${this.label(r.doc)}. Enrol their device below.`);
    await this.load();
    await this.manage(r.doc.id);
  }

  async manage(id) {
    const p = await must("GET", `/v1/patients/${encodeURIComponent(id)}`);
    this.current = p;
    const panel = $("#manage-patient");
    $("#manage-patient-title").textContent = this.label(p);
    $("#manage-patient-link").href = `/patient?id=${encodeURIComponent(p.id)}`;
    const edit = $("#edit-patient");
    $("#edit-patient-name").value = p.name || "";
    $("#edit-patient-contact").value = p.contact || "";
    result(edit, "");
    result($("#enrol-device"), "");
    $("#monitoring-result").textContent = "";
    this.hideEnrolment(false);
    const active = !p.deactivated_at;
    $("#deactivate-area").hidden = !active;
    $("#deactivate-confirm").hidden = true;
    $("#reactivate-area").hidden = active;
    $("#enrol-device").hidden = !active;
    await this.loadDevices();
    panel.hidden = false;
    panel.focus();
  }

  async loadDevices() {
    const id = encodeURIComponent(this.current.id);
    const devices = (await must("GET", `/v1/patients/${id}/devices`)).devices || [];
    const body = clear($("#patient-devices tbody"));
    for (const d of devices) {
      const streams = Object.entries(d.last_data || {}).sort((a, b) => Date.parse(b[1]) - Date.parse(a[1]));
      let action = d.revoked_at ? el("span", { class: "muted", text: `Revoked ${when(d.revoked_at)}` }) : null;
      if (!d.revoked_at) {
        action = el("button", { type: "button", class: "secondary", "aria-label": `Revoke ${d.id}` }, "Revoke");
        action.addEventListener("click", () => this.revoke(d.id).catch((err) => failed($("#enrol-device"), err)));
      }
      body.append(el("tr", { dataset: { device: d.id } },
        el("td", {}, el("code", { text: d.id })),
        el("td", { text: when(d.enrolled_at) }),
        el("td", { class: "last-seen" }, d.last_seen ? el("time", { datetime: d.last_seen, title: when(d.last_seen), text: ago(d.last_seen) }) : "Never"),
        el("td", {}, streams.length
          ? el("ul", { class: "streams" }, streams.map(([m, t]) => el("li", {}, `${words(m)}: `, el("time", { datetime: t, title: when(t), text: ago(t) }))))
          : el("span", { class: "muted", text: "No data yet" })),
        el("td", {}, action)));
    }
    $("#patient-devices").hidden = devices.length === 0;
    $("#no-devices").hidden = devices.length > 0;
  }

  async edit() {
    const form = $("#edit-patient");
    const id = this.current.id;
    const r = await api("PATCH", `/v1/patients/${encodeURIComponent(id)}`, {
      name: $("#edit-patient-name").value.trim(), contact: $("#edit-patient-contact").value.trim() });
    if (!r.ok) return result(form, `Not saved: ${r.doc?.error || r.status}.`, true, $("#edit-patient-name"));
    this.current = { ...this.current, ...r.doc };
    $("#manage-patient-title").textContent = this.label(r.doc);
    result(form, "Saved.");
    await this.load();
  }

  async enrol() {
    const form = $("#enrol-device");
    const field = $("#new-device-id");
    const device = field.value.trim();
    if (!device) return result(form, "Give the device an id.", true, field);
    const r = await api("POST", `/v1/patients/${encodeURIComponent(this.current.id)}/devices`, { device });
    if (!r.ok) return result(form, `The device was not enrolled: ${r.doc?.error || r.status}.`, true, field);
    form.reset();
    result(form, "");
    const e = r.doc;
    $("#enrolment-device").textContent = e.device;
    $("#enrolment-token").textContent = e.token;
    $("#enrolment-mqtt").textContent = e.mqtt_url;
    $("#enrolment-username").textContent = e.mqtt_username;
    $("#enrolment-topic").textContent = e.mqtt_topic;
    $("#enrolment-https").textContent = e.https_url;
    const qr = $("#enrolment-qr");
    qr.hidden = !e.qr_png;
    if (e.qr_png) qr.src = e.qr_png;
    const box = $("#enrolment");
    box.hidden = false;
    box.focus();
    await this.loadDevices();
  }

  // hideEnrolment forgets the token shown: it is not kept anywhere.
  hideEnrolment(focus = true) {
    const box = $("#enrolment");
    const shown = !box.hidden;
    box.hidden = true;
    for (const id of ["#enrolment-device", "#enrolment-token", "#enrolment-mqtt", "#enrolment-username", "#enrolment-topic", "#enrolment-https"]) {
      $(id).textContent = "";
    }
    $("#enrolment-qr").removeAttribute("src");
    if (focus && shown) $("#new-device-id").focus();
  }

  async revoke(device) {
    const r = await api("POST", `/v1/devices/${encodeURIComponent(device)}/revoke`);
    const form = $("#enrol-device");
    if (!r.ok) return result(form, `Device ${device} was not revoked: ${r.doc?.error || r.status}.`, true);
    result(form, `Revoked ${device}: its data is refused from now on.`);
    await this.loadDevices();
    $("#new-device-id").focus();
  }

  async monitoring(verb) {
    const id = this.current.id;
    const out = $("#monitoring-result");
    const r = await api("POST", `/v1/patients/${encodeURIComponent(id)}/${verb}`);
    if (!r.ok) {
      out.textContent = `Not done: ${r.doc?.error || r.status}.`;
      out.classList.add("error");
      return;
    }
    await this.load();
    await this.manage(id);
    out.classList.remove("error");
    out.textContent = verb === "deactivate" ? `${this.label(r.doc)} is deactivated and their devices revoked.` : `${this.label(r.doc)} is monitored again.`;
    (verb === "deactivate" ? $("#reactivate") : $("#deactivate")).focus();
  }
}
