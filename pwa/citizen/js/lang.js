// The citizen pages' language: the visitor's earlier pick (remembered), else their browser's languages
// (the same list it sends as Accept-Language), else Russian; a kk / ru / en switch in the header.

import { LANGUAGES, LANGUAGE_NAMES, language, onLanguageChange, setLanguage } from "/static/js/i18n.js";

const STORAGE_KEY = "jauap.lang";
const SHORT = { kk: "ҚАЗ", ru: "РУС", en: "ENG" };

function remembered() {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

/** The language to start with (see the header comment). */
export function startLanguage() {
  const pick = remembered();
  if (LANGUAGES.includes(pick)) return pick;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const code = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(code)) return code;
  }
  return "ru";
}

function render(box) {
  box.replaceChildren(...LANGUAGES.map((code) => {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "lang-btn";
    btn.lang = code;
    btn.dataset.lang = code;
    btn.textContent = SHORT[code];
    btn.title = LANGUAGE_NAMES[code];
    btn.setAttribute("aria-label", LANGUAGE_NAMES[code]);
    btn.setAttribute("aria-pressed", String(code === language()));
    btn.addEventListener("click", () => setLanguage(code, { remember: true }));
    return btn;
  }));
}

/** Load the catalogs, translate the page and draw the switch into [data-js=lang-switch]. */
export async function initLanguage() {
  await setLanguage(startLanguage());
  const box = document.querySelector("[data-js=lang-switch]");
  if (box) {
    render(box);
    onLanguageChange(() => render(box));
  }
}
