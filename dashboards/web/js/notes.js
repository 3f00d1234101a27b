// A patient's free-text notes: handovers and follow-ups, newest first,
// each with who wrote it and when. Anyone who may open the patient reads
// them and may add one; the server keeps them and audits each addition.
import { api, must } from "./api.js";
import { el, $, clear } from "./dom.js";
import { when } from "./format.js";

export class PatientNotes {
  constructor(section, base) {
    this.section = section;
    this.path = `${base}/notes`;
    $("form", section).addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.add().catch((err) => this.problem(err.message));
    });
  }

  async load() {
    const doc = await must("GET", this.path);
    this.render(doc.notes || []);
  }

  render(notes) {
    const list = clear($("ol", this.section));
    for (const n of notes) {
      list.append(el("li", { dataset: { noteId: String(n.id) } },
        el("p", { class: "note-meta" }, el("strong", { text: n.author }), `, ${when(n.at)}`),
        el("p", { class: "note-text", text: n.note })));
    }
    $(".empty", this.section).hidden = notes.length > 0;
  }

  problem(text) {
    const p = $(".error", this.section);
    p.textContent = text;
    p.hidden = !text;
  }

  async add() {
    const text = $("textarea", this.section);
    const button = $("button[type=submit]", this.section);
    button.disabled = true;
    try {
      const r = await api("POST", this.path, { note: text.value });
      if (!r.ok) {
        this.problem(`The note was not kept: ${(r.doc && r.doc.error) || r.status}.`);
        text.focus();
        return;
      }
      this.problem("");
      text.value = "";
      await this.load();
    } finally {
      button.disabled = false;
    }
  }
}
