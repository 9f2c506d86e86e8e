// Reply template editor (methodologist): pick a moment and an appeal type, edit the kk / ru / en texts,
// save one (PUT /api/v1/reply-templates; an unknown placeholder comes back as a 422 shown under the text)
// or go back to the built-in text (DELETE). A type without its own text shows the "any type" text it inherits.

import { ApiError, api, setApiLanguage } from "/static/js/api.js";
import { formatDateTime } from "/static/js/format.js";
import { LANGUAGES, LANGUAGE_NAMES, initialLanguage, onLanguageChange, setLanguage, t } from "/static/js/i18n.js";
import { initTopbar } from "/static/js/topbar.js";

const $ = (sel) => document.querySelector(sel);
const state = { data: null, moment: "registered", type: "*" };

function key(moment, type, lang) {
  return `${moment}|${type}|${lang}`;
}

function byKey() {
  return new Map(state.data.templates.map((x) => [key(x.moment, x.appeal_type, x.language), x]));
}

function fillSelect(select, items, value) {
  select.replaceChildren(...items.map(([v, label]) => {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = label;
    o.selected = v === value;
    return o;
  }));
}

function renderPickers() {
  fillSelect($("[data-js=moment]"), state.data.moments.map((m) => [m, t(`templates.moment.${m}`)]), state.moment);
  fillSelect($("[data-js=type]"),
    state.data.appeal_types.map((x) => [x, x === "*" ? t("templates.any_type") : t(`type.${x}`)]), state.type);
  $("[data-js=placeholders]").replaceChildren(...state.data.placeholders.map((p) => {
    const li = document.createElement("li");
    const code = document.createElement("code");
    code.textContent = `{${p}}`;
    li.append(code, ` ${t(`templates.placeholder.${p}`)}`);
    return li;
  }));
}

function stateLine(entry, inherited) {
  if (inherited) return t("templates.inherited");
  if (entry?.custom) return t("templates.custom", { who: entry.updated_by || "—", when: formatDateTime(entry.updated_at) });
  return t("templates.builtin");
}

function editor(lang, templates) {
  const own = templates.get(key(state.moment, state.type, lang));
  const fallback = templates.get(key(state.moment, "*", lang));
  const entry = own || fallback;
  const inherited = !own && state.type !== "*";
  const card = document.createElement("form");
  card.className = "card tpl-editor";
  card.noValidate = true;
  card.lang = lang;
  const id = `tpl-${lang}`;
  // Built node by node: markup never comes from strings on these pages.
  const el = (tag, props = {}, hook = null) => {
    const node = Object.assign(document.createElement(tag), props);
    if (hook) node.dataset.js = hook;
    return node;
  };
  const textarea = el("textarea", { id, maxLength: 1000 });
  textarea.setAttribute("aria-describedby", `${id}-error`);
  const status = el("span", { className: "tpl-done" }, "done");
  status.setAttribute("role", "status");
  const actions = el("div", { className: "actions" });
  actions.append(el("button", { type: "submit", className: "btn" }, "save"),
    el("button", { type: "button", className: "btn btn-secondary" }, "reset"), status);
  card.append(el("label", { htmlFor: id }), el("p", { className: "tpl-state" }, "state"), textarea,
    el("p", { className: "field-error", id: `${id}-error` }, "error"), actions);
  card.querySelector("label").textContent = LANGUAGE_NAMES[lang];
  card.querySelector("[data-js=state]").textContent = stateLine(entry, inherited);
  const area = card.querySelector("textarea");
  area.value = entry?.body || "";
  card.querySelector("[data-js=save]").textContent = t("templates.save");
  const reset = card.querySelector("[data-js=reset]");
  reset.textContent = t("templates.reset");
  reset.hidden = !own?.custom;
  const error = card.querySelector("[data-js=error]");
  const done = card.querySelector("[data-js=done]");

  card.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    done.textContent = "";
    area.removeAttribute("aria-invalid");
    try {
      const saved = await api("/api/v1/reply-templates", {
        method: "PUT", body: { moment: state.moment, appeal_type: state.type, language: lang, body: area.value },
      });
      replace(saved);
      render();
      document.querySelector(`form[lang=${lang}] [data-js=done]`).textContent = t("templates.saved");
    } catch (err) {
      area.setAttribute("aria-invalid", "true");
      error.textContent = err instanceof ApiError ? (err.fields[0]?.message || err.message) : t("common.network_error");
      area.focus();
    }
  });
  reset.addEventListener("click", async () => {
    try {
      const q = new URLSearchParams({ moment: state.moment, appeal_type: state.type, language: lang });
      await api(`/api/v1/reply-templates?${q}`, { method: "DELETE" });
      await load();
      document.querySelector(`form[lang=${lang}] [data-js=done]`).textContent = t("templates.reset_done");
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : t("common.network_error");
    }
  });
  return card;
}

function replace(saved) {
  const k = key(saved.moment, saved.appeal_type, saved.language);
  state.data.templates = state.data.templates.filter((x) => key(x.moment, x.appeal_type, x.language) !== k);
  state.data.templates.push(saved);
}

function render() {
  const templates = byKey();
  $("[data-js=editors]").replaceChildren(...LANGUAGES.map((lang) => editor(lang, templates)));
}

async function load() {
  state.data = await api("/api/v1/reply-templates");
  renderPickers();
  render();
}

async function main() {
  const me = await api("/api/v1/auth/me");
  await setLanguage(initialLanguage(me.language));
  setApiLanguage(initialLanguage(me.language));
  initTopbar(me);
  $("[data-js=moment]").addEventListener("change", (ev) => {
    state.moment = ev.target.value;
    render();
  });
  $("[data-js=type]").addEventListener("change", (ev) => {
    state.type = ev.target.value;
    render();
  });
  onLanguageChange((code) => {
    setApiLanguage(code);
    if (state.data) {
      renderPickers();
      render();
    }
  });
  await load();
}

main().catch(() => {
  const box = $("[data-js=page-error]");
  box.textContent = t("templates.load_error");
  box.hidden = false;
});
