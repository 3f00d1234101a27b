// What the administration page's forms share: a line saying how a
// request went, and a submit handler that keeps the button from being
// pressed twice.
import { $ } from "./dom.js";

// result says text in the form's result line, as an error or not, and
// moves the focus to focus (a field to correct) when given.
export function result(form, text, isError = false, focus = null) {
  const line = $(".form-result", form);
  line.textContent = text;
  line.classList.toggle("error", isError && !!text);
  line.classList.toggle("ok", !isError && !!text);
  if (focus) focus.focus();
}

// failed reports an error thrown while handling the form.
export function failed(form, err) {
  result(form, `Something went wrong: ${err.message || err}.`, true);
}

// submitting runs work for a form's submit event, with its submit button
// disabled meanwhile.
export function submitting(ev, work) {
  ev.preventDefault();
  const form = ev.target;
  const button = $("button[type=submit]", form);
  button.disabled = true;
  work().catch((err) => failed(form, err)).finally(() => { button.disabled = false; });
}
