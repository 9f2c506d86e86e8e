// The citizen web report (/report), entry module: the form (type, topic, description, place, photos,
// optional contact, answer language, consent), sent once as multipart with the page's UUID as
// Idempotency-Key (a retry after a lost answer gets the same number), then the number and tracking link.

import { TYPES } from "/static/js/catalog.js";
import { formatDistance, formatPoint } from "/static/js/format.js";
import { clearErrors, showErrors } from "/static/js/form-errors.js";
import { LANGUAGES, LANGUAGE_NAMES, language, onLanguageChange, t } from "/static/js/i18n.js";
import { initLanguage } from "./lang.js";
import { CitizenError, request, setCsrf, uuid4 } from "./net.js";
import { photosSupported, preparePhoto } from "./photos.js";
import { PinMap } from "./pinmap.js";

const $ = (sel) => document.querySelector(sel);
// Form controls by name (``form.name`` would be the form's own name attribute in some browsers).
const control = (form, name) => form.elements.namedItem(name);
const state = {
  cfg: null,
  topics: [],
  place: null, // {lat, lon, accuracy (metres) | null, byHand}
  fixNote: null, // i18n key of the last location message
  photos: [], // {blob, sha256, url}
  key: uuid4(),
  busy: false,
};
let pin = null;

async function loadForm() {
  const { data } = await request("/api/v1/public/report/form");
  setCsrf(data.csrf_token);
  state.cfg = data;
}

async function loadTopics() {
  const { data } = await request("/api/v1/topics");
  state.topics = data;
  renderTopics();
}

function renderTypes() {
  const box = $("[data-js=types]");
  const chosen = box.querySelector("input:checked")?.value;
  box.replaceChildren(...TYPES.map((type) => {
    const label = document.createElement("label");
    label.className = "c-chip";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "type";
    input.value = type;
    input.checked = type === chosen;
    const span = document.createElement("span");
    span.textContent = t(`citizen.type.${type}`);
    label.append(input, span);
    return label;
  }));
}

function renderTopics() {
  const select = $("[data-js=topic]");
  const chosen = select.value;
  const first = new Option(t("citizen.report.topic_choose"), "");
  select.replaceChildren(first, ...state.topics.map((tp) => new Option(tp.name, tp.code)));
  select.value = chosen;
}

function renderAnswerLanguages() {
  const select = $("[data-js=answer-lang]");
  const chosen = select.value || language();
  select.replaceChildren(...LANGUAGES.map((code) => new Option(LANGUAGE_NAMES[code], code)));
  select.value = chosen;
}

function renderConsent() {
  $("[data-js=consent-text]").textContent = t(`citizen.consent.${state.cfg.consent_version}`);
}

function renderPlace() {
  const el = $("[data-js=fix]");
  const parts = [];
  if (state.fixNote) parts.push(t(state.fixNote));
  if (state.place) {
    parts.push(formatPoint(state.place.lat, state.place.lon));
    if (state.place.accuracy) parts.push(t("citizen.report.accuracy", { d: formatDistance(state.place.accuracy) }));
    else if (state.place.byHand) parts.push(t("citizen.report.pin_by_hand"));
  }
  el.textContent = parts.join(" · ");
  el.dataset.state = state.place ? (state.place.byHand ? "manual" : "gps") : "none";
}

function ensurePin() {
  if (!pin) {
    pin = new PinMap($("[data-js=map]"), {
      label: () => t("citizen.report.pin"),
      onMove: ({ lat, lon }, byHand) => {
        const accuracy = byHand ? null : state.place?.accuracy ?? null;
        state.place = { lat, lon, accuracy, byHand };
        if (byHand) state.fixNote = null;
        renderPlace();
      },
    });
  }
  return pin;
}

async function openMap() {
  try {
    await ensurePin().open();
    $("[data-js=map-hint]").hidden = false;
    return true;
  } catch {
    state.fixNote = "citizen.report.map_failed";
    renderPlace();
    return false;
  }
}

function locate() {
  if (!navigator.geolocation) {
    state.fixNote = "citizen.report.no_geolocation";
    renderPlace();
    return;
  }
  state.fixNote = "citizen.report.locating";
  renderPlace();
  navigator.geolocation.getCurrentPosition(async (pos) => {
    const { latitude: lat, longitude: lon, accuracy } = pos.coords;
    state.place = { lat, lon, accuracy: Math.round(accuracy), byHand: false };
    state.fixNote = "citizen.report.located";
    renderPlace();
    if (await openMap()) pin.place(lat, lon, Math.round(accuracy));
  }, (err) => {
    state.fixNote = err.code === 1 ? "citizen.report.geo_denied" : "citizen.report.geo_failed";
    renderPlace();
  }, { enableHighAccuracy: true, timeout: 20000, maximumAge: 30000 });
}

async function pickOnMap() {
  if (!(await openMap())) return;
  if (!state.place) {
    const c = pin.center();
    pin.place(c.lat, c.lon, null, true);
  }
  $("[data-js=map]").focus();
}

function renderPhotos() {
  const box = $("[data-js=photos]");
  box.replaceChildren(...state.photos.map((p, i) => {
    const fig = document.createElement("figure");
    fig.className = "c-photo";
    const img = document.createElement("img");
    img.src = p.url;
    img.alt = t("citizen.report.photo_n", { n: i + 1 });
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "icon-btn";
    btn.textContent = "×";
    btn.setAttribute("aria-label", t("citizen.report.photo_remove", { n: i + 1 }));
    btn.addEventListener("click", () => {
      URL.revokeObjectURL(p.url);
      state.photos.splice(i, 1);
      renderPhotos();
    });
    fig.append(img, btn);
    return fig;
  }));
  $("[data-js=photo-add]").hidden = state.photos.length >= state.cfg.max_photos;
}

async function addPhotos(files) {
  const box = $("[data-error-for=photo]");
  box.textContent = "";
  for (const file of files) {
    if (state.photos.length >= state.cfg.max_photos) {
      box.textContent = t("citizen.report.photo_limit", { n: state.cfg.max_photos });
      break;
    }
    try {
      const photo = await preparePhoto(file);
      if (!state.photos.some((p) => p.sha256 === photo.sha256)) state.photos.push(photo);
    } catch {
      box.textContent = t("citizen.report.photo_unreadable");
    }
  }
  renderPhotos();
}

function localErrors(form) {
  const errors = [];
  if (!form.querySelector("input[name=type]:checked")) errors.push({ field: "type", message: t("citizen.error.type") });
  if (!control(form, "topic").value) errors.push({ field: "topic", message: t("citizen.error.topic") });
  if (!control(form, "description").value.trim()) errors.push({ field: "description", message: t("citizen.error.description") });
  if (!state.place && !control(form, "address").value.trim()) errors.push({ field: "location", message: t("citizen.error.location") });
  if (!control(form, "consent").checked) errors.push({ field: "consent", message: t("citizen.error.consent") });
  return errors;
}

function formData(form) {
  const fd = new FormData();
  fd.append("type", form.querySelector("input[name=type]:checked").value);
  fd.append("topic", control(form, "topic").value);
  fd.append("description", control(form, "description").value.trim());
  if (state.place) {
    fd.append("lat", state.place.lat.toFixed(6));
    fd.append("lon", state.place.lon.toFixed(6));
    if (state.place.accuracy && !state.place.byHand) fd.append("accuracy_m", String(state.place.accuracy));
  }
  for (const name of ["address", "name", "phone"]) {
    if (control(form, name).value.trim()) fd.append(name, control(form, name).value.trim());
  }
  fd.append("language", control(form, "language").value);
  fd.append("consent", control(form, "consent").checked ? "true" : "false");
  fd.append("consent_version", state.cfg.consent_version);
  if (state.photos.length) {
    fd.append("photos_sha256", state.photos.map((p) => p.sha256).join(","));
    state.photos.forEach((p, i) => fd.append("photo", p.blob, `photo-${i + 1}.jpg`));
  }
  return fd;
}

const ALIAS = { lat: "location", lon: "location", address: "location", photos_sha256: "photo" };

function showFailure(form, err) {
  const top = $("[data-js=form-error]");
  if (!(err instanceof CitizenError)) {
    top.textContent = t("citizen.report.offline");
    top.hidden = false;
    return;
  }
  const unplaced = err.fields.length ? showErrors(form, err.fields, (f) => ALIAS[f] || f) : [];
  const message = unplaced.length ? unplaced.map((e) => e.message).join(" ") : err.fields.length ? "" : err.message;
  top.textContent = message;
  top.hidden = !message;
  if (message) top.scrollIntoView({ block: "center" });
}

async function submit(ev) {
  ev.preventDefault();
  if (state.busy) return;
  const form = ev.currentTarget;
  clearErrors(form);
  $("[data-js=form-error]").hidden = true;
  const local = localErrors(form);
  if (local.length) {
    showErrors(form, local);
    return;
  }
  state.busy = true;
  const button = $("[data-js=submit]");
  button.disabled = true;
  button.textContent = t("citizen.report.sending");
  try {
    let res;
    for (let attempt = 0; ; attempt += 1) {
      try {
        res = await request("/api/v1/public/reports", { method: "POST", form: formData(form),
                                                         headers: { "Idempotency-Key": state.key } });
        break;
      } catch (err) {
        // The session (and its CSRF token) expired while the citizen was typing: take a fresh one, once.
        if (attempt === 0 && err instanceof CitizenError && err.code === "csrf_failed") {
          await loadForm();
          continue;
        }
        throw err;
      }
    }
    showResult(res.data);
  } catch (err) {
    // A definite refusal created nothing: the next try is a new report. After a lost answer keep the key.
    if (err instanceof CitizenError && err.status < 500) state.key = uuid4();
    showFailure(form, err);
  } finally {
    state.busy = false;
    button.disabled = false;
    button.textContent = t("citizen.report.submit");
  }
}

function showResult(data) {
  const url = new URL(data.tracking_url, window.location.origin).href;
  $("[data-js=form]").hidden = true;
  $("[data-js=result-reg]").textContent = data.reg_no;
  const link = $("[data-js=result-link]");
  link.href = url;
  link.textContent = url;
  const section = $("[data-js=result]");
  section.hidden = false;
  section.focus();
  window.scrollTo(0, 0);
}

function reset() {
  const form = $("[data-js=form]");
  form.reset();
  for (const p of state.photos) URL.revokeObjectURL(p.url);
  Object.assign(state, { place: null, fixNote: null, photos: [], key: uuid4() });
  renderAnswerLanguages();
  renderPhotos();
  renderPlace();
  $("[data-js=result]").hidden = true;
  form.hidden = false;
  window.scrollTo(0, 0);
}

async function main() {
  await initLanguage();
  try {
    await Promise.all([loadForm(), loadTopics()]);
  } catch {
    $("[data-js=loading]").textContent = t("citizen.report.offline");
    return;
  }
  renderTypes();
  renderAnswerLanguages();
  renderConsent();
  renderPhotos();
  renderPlace();
  if (!photosSupported()) {
    $("[data-js=photo-add]").hidden = true;
    $("[data-error-for=photo]").textContent = t("citizen.report.photos_unsupported");
  }
  onLanguageChange(() => {
    renderTypes();
    renderConsent();
    renderPlace();
    renderPhotos();
    loadTopics().catch(() => {});
  });
  const form = $("[data-js=form]");
  form.addEventListener("submit", submit);
  $("[data-js=locate]").addEventListener("click", locate);
  $("[data-js=pick]").addEventListener("click", pickOnMap);
  $("[data-js=photo-input]").addEventListener("change", (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    addPhotos(files);
  });
  $("[data-js=copy]").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("[data-js=result-link]").href);
      $("[data-js=copied]").textContent = t("citizen.result.copied");
    } catch {
      $("[data-js=copied]").textContent = "";
    }
  });
  $("[data-js=another]").addEventListener("click", reset);
  $("[data-js=loading]").hidden = true;
  form.hidden = false;
  form.dataset.ready = "true";
}

main();
