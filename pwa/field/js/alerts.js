// Getting attention outdoors: vibration and a short beep (WebAudio, no sound file) for a new assignment,
// and a transient message line (toast) for everything else.

let audio = null;

function audioContext() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  if (!audio) audio = new Ctx();
  return audio;
}

/** Unlock sound on the first touch: browsers only allow audio after a user gesture. */
export function armSound() {
  const unlock = () => {
    const ctx = audioContext();
    if (ctx && ctx.state === "suspended") ctx.resume().catch(() => {});
    window.removeEventListener("pointerdown", unlock);
    window.removeEventListener("keydown", unlock);
  };
  window.addEventListener("pointerdown", unlock);
  window.addEventListener("keydown", unlock);
}

/** Two short tones. */
export function beep() {
  const ctx = audioContext();
  if (!ctx || ctx.state !== "running") return;
  const now = ctx.currentTime;
  for (const [offset, freq] of [[0, 880], [0.22, 1175]]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.3, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.2);
  }
}

/** Vibrate and beep: something new to do. */
export function alertNew() {
  if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
  beep();
}

let toastTimer = null;

/** Show ``text`` in the message line for a few seconds (kind: "info" | "ok" | "warn"). */
export function toast(text, kind = "info") {
  const el = document.querySelector("[data-js=toast]");
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 5000);
}
