// Field errors next to their fields: [data-error-for="<field>"] boxes and aria-invalid on the control
// marked data-field="<field>". Server fields are dotted paths ("citizen.phone"); aliases map the rest.

/** Clear every field error in ``form``. */
export function clearErrors(form) {
  form.querySelectorAll("[data-error-for]").forEach((el) => {
    el.textContent = "";
  });
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
}

function stripField(message, field) {
  // Server messages start "field: ..." for validation errors; next to the field that prefix is noise.
  const prefix = `${field}: `;
  return message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

/**
 * Show ``errors`` [{field, message}] in ``form``; ``alias(field, code)`` may rename a field.
 * Returns the errors that have no place in the form (to show at the top), and focuses the first control.
 */
export function showErrors(form, errors, alias = (f) => f) {
  const unplaced = [];
  let first = null;
  for (const err of errors) {
    const field = alias(err.field || "", err.code);
    const box = field ? form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
    if (!box) {
      unplaced.push(err);
      continue;
    }
    const text = stripField(err.message || "", err.field || "");
    box.textContent = box.textContent ? `${box.textContent} ${text}` : text;
    const control = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (control) {
      control.setAttribute("aria-invalid", "true");
      if (!first || (first.compareDocumentPosition(control) & Node.DOCUMENT_POSITION_PRECEDING)) first = control;
    }
  }
  if (first) first.focus();
  return unplaced;
}
