// The administration page (/admin), for admins only: patients (add, edit,
// deactivate) and their devices (enrol with a QR code, revoke, when each
// last sent data), staff (add, reset a password, care teams, disable),
// the catalogue of treatments, the on-call rota with who is on call now
// (and changing it), whether the clinic's latest changes work, and the
// audit log. Everything goes through the /v1/
// API, whose one authorization check decides.
import { $ } from "./dom.js";
import { startShell, fail } from "./shell.js";
import { PatientsAdmin } from "./admin-patients.js";
import { StaffAdmin } from "./admin-staff.js";
import { AuditLog } from "./admin-audit.js";
import { RotaAdmin } from "./admin-rota.js";
import { CatalogueAdmin } from "./admin-catalogue.js";
import { setupClinicCompare } from "./admin-compare.js";

async function main() {
  const me = await startShell();
  const status = $("#status");
  if (me.role !== "admin") {
    status.textContent = "Only administrators can use this page: ask one to add patients, devices or staff.";
    return;
  }
  const patients = new PatientsAdmin($("#patients-admin"));
  const staff = new StaffAdmin($("#staff-admin"), () => patients.list);
  const rota = new RotaAdmin($("#rota-admin"));
  const catalogue = new CatalogueAdmin();
  const audit = new AuditLog($("#audit-admin"));
  setupClinicCompare($("#compare-admin"));
  await patients.load();
  await Promise.all([staff.load(), catalogue.load(), rota.load(), audit.load()]);
  status.hidden = true;
  $("#admin-nav").hidden = false;
  for (const s of document.querySelectorAll(".admin-section")) s.hidden = false;
  // A link into the page moves the keyboard focus to its section.
  $("#admin-nav").addEventListener("click", (ev) => {
    const a = ev.target.closest("a");
    if (!a) return;
    const target = $(a.getAttribute("href"));
    if (target) setTimeout(() => target.focus(), 0);
  });
  document.body.dataset.ready = "true";
}

main().catch((err) => fail(err));
