// Operator console, entry module: the 109 call form (what, where, who) with the sector looked up live and
// similar open appeals shown before saving; saves with one Idempotency-Key per form fill (reused on a
// retry), answers and closes a consultation or gratitude on the spot when asked, then shows the
// registration number large enough to read back. Keys: Enter saves, Ctrl+Enter in a text area, Alt+N new.

import { ApiError, api, setApiLanguage, uuid4 } from "/static/js/api.js";
import { ANSWER_NOW_TYPES, TYPES, URGENCIES } from "/static/js/catalog.js";
import { formatDateTime } from "/static/js/format.js";
import { clearErrors, showErrors } from "/static/js/form-errors.js";
import { LANGUAGES, LANGUAGE_NAMES, initialLanguage, language, onLanguageChange, setLanguage, t } from "/static/js/i18n.js";
import { initTopbar } from "/static/js/topbar.js";
import { LocationPicker } from "./location.js";
import { SimilarBox } from "./similar.js";

const $ = (sel) => document.querySelector(sel);
const form = $("[data-js=appeal-form]");
const fields = {
  type: $("#f-type"),
  topic: $("#f-topic"),
  urgency: $("#f-urgency"),
  description: $("#f-description"),
  address: $("#f-address"),
  name: $("#f-name"),
  phone: $("#f-phone"),
  language: $("#f-language"),
  answerNow: $("[data-js=answer-now]"),
  answer: $("#f-answer"),
};
const state = { idemKey: uuid4(), saving: false, topics: [], sectorNames: new Map(), created: null, note: "", picker: null, similar: null };

function options(select, items, { placeholder = true } = {}) {
  const keep = select.value;
  select.replaceChildren();
  if (placeholder) {
    const o = document.createElement("option");
    o.value = "";
    o.textContent = t("form.choose");
    select.append(o);
  }
  for (const [value, label] of items) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    select.append(o);
  }
  if (items.some(([v]) => v === keep)) select.value = keep;
}

function renderOptions() {
  options(fields.type, TYPES.map((c) => [c, t(`type.${c}`)]));
  options(fields.topic, state.topics.map((x) => [x.code, x.name]));
  options(fields.urgency, URGENCIES.map((c) => [c, t(`urgency.${c}`)]), { placeholder: false });
  [...fields.urgency.options].forEach((o) => {
    o.defaultSelected = o.value === "normal";
  });
  const lang = fields.language.value;
  options(fields.language, LANGUAGES.map((c) => [c, LANGUAGE_NAMES[c]]), { placeholder: false });
  [...fields.language.options].forEach((o) => {
    o.defaultSelected = o.value === language();
  });
  fields.language.value = lang || language();
}

function syncTypeDependent() {
  const type = fields.type.value;
  $("[data-js=urgency-field]").hidden = type !== "incident";
  const answerable = ANSWER_NOW_TYPES.includes(type);
  $("[data-js=answer-box]").hidden = !answerable;
  if (!answerable) fields.answerNow.checked = false;
  $("[data-js=answer-field]").hidden = !fields.answerNow.checked;
  $("[data-js=submit]").textContent = t(fields.answerNow.checked ? "form.submit_answer" : "form.submit");
}

function validate() {
  const errs = [];
  const need = (field, ok) => {
    if (!ok) errs.push({ field, message: t("form.required") });
  };
  need("type", fields.type.value);
  need("topic", fields.topic.value);
  need("description", fields.description.value.trim());
  if (!state.picker.point && !fields.address.value.trim()) errs.push({ field: "lat", message: t("form.location_required") });
  if (fields.answerNow.checked) need("answer", fields.answer.value.trim());
  return errs;
}

function alias(field, code) {
  if (field === "citizen") return code === "bad_phone" ? "citizen.phone" : "citizen.name";
  if (field === "lon" || field === "accuracy_m" || (field === "" && code === "location_required")) return "lat";
  return field;
}

function showFormError(message) {
  const box = $("[data-js=form-error]");
  box.textContent = message;
  box.hidden = !message;
}

function body() {
  const b = {
    type: fields.type.value,
    topic: fields.topic.value,
    description: fields.description.value.trim(),
    channel: "phone",
    citizen: { language: fields.language.value },
  };
  if (b.type === "incident" && fields.urgency.value) b.urgency = fields.urgency.value;
  const p = state.picker.point;
  if (p) Object.assign(b, { lat: p.lat, lon: p.lon });
  const address = fields.address.value.trim();
  if (address) b.address = address;
  const name = fields.name.value.trim();
  const phone = fields.phone.value.trim();
  if (name) b.citizen.name = name;
  if (phone) b.citizen.phone = phone;
  return b;
}

async function answerOnTheSpot(appeal, answer) {
  let current = appeal;
  if (!["answered", "closed"].includes(current.status)) {
    current = await api(`/api/v1/appeals/${current.id}/transitions`, { method: "POST",
      body: { action: "answer_first_contact", answer } });
  }
  if (current.status !== "closed") {
    current = await api(`/api/v1/appeals/${current.id}/transitions`, { method: "POST", body: { action: "close" } });
  }
  return current;
}

async function save() {
  if (state.saving) return;
  clearErrors(form);
  showFormError("");
  const local = validate();
  if (local.length) {
    showErrors(form, local, alias);
    return;
  }
  const submit = $("[data-js=submit]");
  state.saving = true;
  submit.disabled = true;
  submit.textContent = t("form.saving");
  form.setAttribute("aria-busy", "true");
  try {
    let created;
    try {
      created = await api("/api/v1/appeals", { method: "POST", body: body(), headers: { "Idempotency-Key": state.idemKey } });
    } catch (err) {
      if (err instanceof ApiError) {
        const unplaced = showErrors(form, err.fields, alias);
        const extra = unplaced.map((f) => f.message).filter((m) => m && m !== err.message);
        showFormError([err.message, ...extra].join(" "));
        if (!err.fields.length || unplaced.length === err.fields.length) $("[data-js=form-error]").focus();
      } else {
        showFormError(t("form.network_retry"));
        $("[data-js=form-error]").focus();
      }
      return;
    }
    let note = "";
    let error = "";
    if (fields.answerNow.checked && ANSWER_NOW_TYPES.includes(created.type)) {
      try {
        created = { ...created, ...(await answerOnTheSpot(created, fields.answer.value.trim())) };
        note = t("result.closed_now");
      } catch (err) {
        error = t("result.answer_failed", { message: err instanceof ApiError ? err.message : t("common.network_error") });
      }
    }
    showResult(created, note, error);
  } finally {
    state.saving = false;
    submit.disabled = false;
    form.removeAttribute("aria-busy");
    syncTypeDependent();
  }
}

function renderResult() {
  const a = state.created;
  if (!a) return;
  $("[data-js=result-reg]").textContent = a.reg_no;
  const dl = $("[data-js=result-facts]");
  dl.replaceChildren();
  const add = (label, value) => {
    if (!value) return;
    const dt = document.createElement("dt");
    dt.textContent = t(label);
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  };
  add("detail.status", t(`status.${a.status}`));
  add("detail.type", `${t(`type.${a.type}`)} · ${state.topics.find((x) => x.code === a.topic)?.name || a.topic_name || a.topic}`);
  add("detail.sector", a.sector ? `${a.sector.code} · ${state.sectorNames.get(a.sector.code) || a.sector.name}`
    : t(a.status === "unrouted" ? "form.sector_none" : "counters.unrouted"));
  add("detail.due", formatDateTime(a.due_at));
  if (a.similar?.length) add("result.similar", a.similar.map((s) => s.reg_no).join(", "));
  $("[data-js=result-note]").textContent = state.note;
}

function showResult(created, note, error) {
  state.created = created;
  state.note = note;
  renderResult();
  const err = $("[data-js=result-error]");
  err.textContent = error;
  err.hidden = !error;
  form.hidden = true;
  const result = $("[data-js=result]");
  result.hidden = false;
  result.focus();
}

function newAppeal() {
  form.reset();
  clearErrors(form);
  showFormError("");
  state.idemKey = uuid4();
  state.created = null;
  state.picker.reset();
  state.similar.show([]);
  $("[data-js=result]").hidden = true;
  form.hidden = false;
  syncTypeDependent();
  state.picker.invalidate();
  fields.type.focus();
}

function wireKeys() {
  form.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.isComposing) return;
    const tag = e.target.tagName;
    if (tag === "TEXTAREA") {
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        form.requestSubmit();
      }
    } else if (tag === "SELECT" || (tag === "INPUT" && e.target.type === "checkbox")) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.altKey && !e.ctrlKey && !e.metaKey && (e.code === "KeyN" || e.key.toLowerCase() === "n")) {
      e.preventDefault();
      newAppeal();
    }
  });
}

async function main() {
  const [me, cfg] = await Promise.all([api("/api/v1/auth/me"), api("/api/v1/ui-config")]);
  onLanguageChange(setApiLanguage);
  await setLanguage(initialLanguage(me.language));
  initTopbar(me);
  const [topics, sectors] = await Promise.all([api("/api/v1/topics", { lang: true }), api("/api/v1/sectors", { lang: true })]);
  state.topics = topics;
  for (const f of sectors.features) state.sectorNames.set(f.properties.code, f.properties.name);
  renderOptions();
  fields.language.value = language();

  state.similar = new SimilarBox($("[data-js=similar]"));
  state.picker = new LocationPicker({
    mapEl: $("[data-js=map]"),
    pointText: $("[data-js=point-text]"),
    clearBtn: $("[data-js=clear-point]"),
    sectorLine: $("[data-js=sector-line]"),
    tileUrl: cfg.tile_url,
    sectors,
    sectorName: (code) => state.sectorNames.get(code),
    onChange: (point) => {
      state.similar.check(point, fields.topic.value);
      if (point) {
        const box = form.querySelector('[data-error-for="lat"]');
        box.textContent = "";
        $("[data-js=map]").removeAttribute("aria-invalid");
      }
    },
  });
  fields.type.addEventListener("change", syncTypeDependent);
  fields.answerNow.addEventListener("change", syncTypeDependent);
  fields.topic.addEventListener("change", () => state.similar.check(state.picker.point, fields.topic.value));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    save();
  });
  $("[data-js=new]").addEventListener("click", newAppeal);
  $("[data-js=result-new]").addEventListener("click", newAppeal);
  wireKeys();
  syncTypeDependent();

  const relabel = () => {
    renderOptions();
    syncTypeDependent();
    state.picker.render();
    state.similar.render();
    renderResult();
  };
  onLanguageChange(async () => {
    relabel(); // at once, then with topic and sector names in the new language
    try {
      const [tp, fc] = await Promise.all([api("/api/v1/topics", { lang: true }), api("/api/v1/sectors", { lang: true })]);
      state.topics = tp;
      for (const f of fc.features) state.sectorNames.set(f.properties.code, f.properties.name);
      relabel();
    } catch {
      /* keep the names we have */
    }
  });
  form.dataset.ready = "true";
  fields.type.focus();
}

main().catch((err) => {
  if (err instanceof ApiError && err.status === 401) return;
  if (!(err instanceof ApiError)) console.error(err);
  showFormError(err instanceof ApiError ? err.message : t("common.network_error"));
});
