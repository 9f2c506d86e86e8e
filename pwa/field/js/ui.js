// Small DOM helpers of the field app: build elements (text only, never HTML from data), the reason
// dialog, and ages such as "3 h 5 min" in the current language.

import { t } from "/static/js/i18n.js";

/** Create ``tag`` with attributes (``dataset``, ``on<event>`` handlers, ``hidden``...) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "className") node.className = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the content of ``box`` with ``children`` (null, undefined and false are left out). */
export function fill(box, ...children) {
  box.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

/** "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function formatAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return t("age.s", { n: s });
  const min = Math.floor(s / 60);
  if (min < 60) return t("age.min", { n: min });
  const h = Math.floor(min / 60);
  if (h < 24) return t("age.h_min", { h, min: min % 60 });
  return t("age.d_h", { d: Math.floor(h / 24), h: h % 24 });
}

/**
 * Ask for a reason in the dialog: ``title``, ``message``, ``options`` ([{value, label}], optional; the
 * value "other" requires text), ``required`` (text needed when there are no options). Resolves to the
 * reason text, or null when cancelled.
 */
export function askReason({ title, message = "", options = null, required = true }) {
  const dialog = document.querySelector("[data-js=reason-dialog]");
  const form = dialog.querySelector("form");
  const select = dialog.querySelector("[data-js=reason-choice]");
  const text = dialog.querySelector("[data-js=reason-text]");
  const error = dialog.querySelector("[data-js=reason-error]");
  dialog.querySelector("[data-js=reason-title]").textContent = title;
  dialog.querySelector("[data-js=reason-message]").textContent = message;
  dialog.querySelector("[data-js=reason-message]").hidden = !message;
  select.replaceChildren(...(options || []).map((o) => el("option", { value: o.value }, o.label)));
  select.closest("label").hidden = !options;
  text.value = "";
  error.textContent = "";
  return new Promise((resolve) => {
    const done = (value) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      if (ev.submitter?.value === "cancel") return done(null);
      const typed = text.value.trim();
      if (options) {
        const picked = options.find((o) => o.value === select.value);
        if (picked.value === "other" && !typed) {
          error.textContent = t("field.reason_required");
          text.focus();
          return undefined;
        }
        return done(picked.value === "other" ? typed : [picked.label, typed].filter(Boolean).join(" — "));
      }
      if (required && !typed) {
        error.textContent = t("field.reason_required");
        text.focus();
        return undefined;
      }
      return done(typed);
    };
    const onClose = () => done(null);
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    (options ? select : text).focus();
  });
}

/** Ask yes/no with the reason dialog's sibling confirm dialog; resolves to true or false. */
export function confirmAction(message) {
  const dialog = document.querySelector("[data-js=confirm-dialog]");
  dialog.querySelector("[data-js=confirm-message]").textContent = message;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}
