// The top bar of the staff screens: who is logged in, the language switch (kk / ru / en), logout,
// and the live-connection indicator. Hooks: [data-js=lang-switch], [data-js=user], [data-js=logout], [data-js=conn].

import { logout } from "./api.js";
import { LANGUAGES, LANGUAGE_NAMES, language, onLanguageChange, setLanguage, t } from "./i18n.js";

const SHORT = { kk: "ҚАЗ", ru: "РУС", en: "ENG" };

function renderSwitch(box) {
  box.replaceChildren();
  for (const code of LANGUAGES) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "lang-btn";
    btn.dataset.lang = code;
    btn.lang = code;
    btn.textContent = SHORT[code];
    btn.title = LANGUAGE_NAMES[code];
    btn.setAttribute("aria-label", LANGUAGE_NAMES[code]);
    btn.setAttribute("aria-pressed", String(code === language()));
    btn.addEventListener("click", () => setLanguage(code, { remember: true }));
    box.append(btn);
  }
}

/** Fill the top bar for ``me`` (from /api/v1/auth/me). */
export function initTopbar(me) {
  const box = document.querySelector("[data-js=lang-switch]");
  if (box) {
    renderSwitch(box);
    onLanguageChange(() => renderSwitch(box));
  }
  const user = document.querySelector("[data-js=user]");
  const showUser = () => {
    if (user) user.textContent = `${me.full_name || me.username} · ${t(`role.${me.role}`)}`;
  };
  showUser();
  onLanguageChange(showUser);
  const out = document.querySelector("[data-js=logout]");
  out?.addEventListener("click", () => logout());
}

let connState = "connecting";

/** Show the live connection state: connecting, syncing, online or offline. */
export function setConnection(state) {
  connState = state;
  const el = document.querySelector("[data-js=conn]");
  if (!el) return;
  el.dataset.state = state;
  const label = el.querySelector("[data-js=conn-label]") || el;
  label.textContent = t(`conn.${state}`);
}

onLanguageChange(() => setConnection(connState));
