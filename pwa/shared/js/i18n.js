// Interface language: kk / ru / en catalogs from /static/i18n/<lang>.json, applied to [data-i18n] hooks.
// The language is the staff member's setting unless the switch chose another (remembered in localStorage).
//   data-i18n="key"                      -> element.textContent
//   data-i18n-attr="placeholder:key;aria-label:key"  -> attributes

export const LANGUAGES = ["kk", "ru", "en"];
export const LANGUAGE_NAMES = { kk: "Қазақша", ru: "Русский", en: "English" };
const STORAGE_KEY = "jauap.lang";

const catalogs = {};
let lang = "ru";
const listeners = [];

async function load(code) {
  if (!catalogs[code]) {
    const res = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`i18n catalog ${code}: HTTP ${res.status}`);
    catalogs[code] = await res.json();
  }
  return catalogs[code];
}

function stored() {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

/** The language to start with: the remembered switch, else the user's setting, else Russian. */
export function initialLanguage(userLanguage) {
  const remembered = stored();
  if (LANGUAGES.includes(remembered)) return remembered;
  return LANGUAGES.includes(userLanguage) ? userLanguage : "ru";
}

/** The current language code. */
export function language() {
  return lang;
}

/** Translate ``key``, filling ``{name}`` placeholders from ``params``; English, then the key, as fallbacks. */
export function t(key, params) {
  let text = catalogs[lang]?.[key] ?? catalogs.en?.[key] ?? key;
  if (params) {
    text = text.replace(/\{(\w+)\}/g, (m, name) => (params[name] === undefined ? m : String(params[name])));
  }
  return text;
}

/** Whether the catalog has ``key`` (for optional labels such as unknown event kinds). */
export function has(key) {
  return key in (catalogs[lang] || {}) || key in (catalogs.en || {});
}

/** Translate every hook under ``root``. */
export function apply(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  root.querySelectorAll("[data-i18n-attr]").forEach((el) => {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  });
}

/** Switch to ``code`` (remembered when ``remember``), translate the page, and tell the listeners. */
export async function setLanguage(code, { remember = false } = {}) {
  if (!LANGUAGES.includes(code)) code = "ru";
  await Promise.all([load(code), load("en")]);
  lang = code;
  if (remember) {
    try {
      window.localStorage.setItem(STORAGE_KEY, code);
    } catch {
      /* private mode: the switch lasts for this page only */
    }
  }
  document.documentElement.lang = code;
  apply(document);
  for (const fn of listeners) fn(code);
}

/** Call ``fn(code)`` after every language change. */
export function onLanguageChange(fn) {
  listeners.push(fn);
}
