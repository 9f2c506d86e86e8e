// The tracking page (/t/<token>), entry module: the public view of one appeal (stages, the answer, "after"
// photos) and, within the window after the answer, the citizen's verdict: confirm or dispute, rated 1-5.

import { formatDateTime } from "/static/js/format.js";
import { clearErrors, showErrors } from "/static/js/form-errors.js";
import { onLanguageChange, t } from "/static/js/i18n.js";
import { initLanguage } from "./lang.js";
import { CitizenError, request, setCsrf } from "./net.js";

const $ = (sel) => document.querySelector(sel);
const token = decodeURIComponent(window.location.pathname.replace(/^\/t\//, "").replace(/\/$/, ""));
const url = `/api/v1/public/tracking/${encodeURIComponent(token)}`;
let view = null;
let busy = false;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderStars() {
  const box = $("[data-js=stars]");
  const chosen = box.querySelector("input:checked")?.value;
  box.replaceChildren(...[1, 2, 3, 4, 5].map((n) => {
    const label = el("label", "c-star");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "rating";
    input.value = String(n);
    input.checked = String(n) === chosen;
    label.append(input, el("span", null, String(n)));
    label.title = t(`citizen.feedback.rating_${n}`);
    return label;
  }));
}

function render() {
  const v = view;
  $("[data-js=reg]").textContent = v.reg_no;
  const stage = $("[data-js=stage]");
  stage.textContent = t(`citizen.stage.${v.stage}`);
  stage.dataset.stage = v.stage;
  $("[data-js=what]").textContent = `${t(`citizen.type.${v.type}`)} · ${v.topic.name}`;
  $("[data-js=filed]").textContent = formatDateTime(v.created_at);
  const due = $("[data-js=due]");
  due.textContent = formatDateTime(v.due_at);
  due.hidden = $("[data-js=due-label]").hidden = !v.due_at || Boolean(v.answer);

  $("[data-js=timeline]").replaceChildren(...v.timeline.map((s) => {
    const li = el("li");
    li.dataset.stage = s.stage;
    li.append(el("time", null, formatDateTime(s.at)), " ", el("span", null, t(`citizen.stage.${s.stage}`)));
    return li;
  }));

  const answer = $("[data-js=answer]");
  answer.hidden = !v.answer && !v.photos.length;
  $("[data-js=answer-text]").textContent = v.answer?.text || "";
  $("[data-js=answer-at]").textContent = v.answer?.at ? formatDateTime(v.answer.at) : "";
  $("[data-js=photos]").replaceChildren(...v.photos.map((p, i) => {
    const a = el("a", "c-photo");
    a.href = p.large;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    const img = document.createElement("img");
    img.src = p.thumb;
    img.loading = "lazy";
    img.alt = t("citizen.track.after_photo", { n: i + 1 });
    a.append(img);
    return a;
  }));

  const fb = v.feedback;
  $("[data-js=feedback]").hidden = !fb.open;
  if (fb.open) $("[data-js=feedback-until]").textContent = t("citizen.feedback.until", { date: formatDateTime(fb.until) });
  const given = $("[data-js=given]");
  if (fb.given) {
    given.textContent = t(`citizen.feedback.given_${fb.given.verdict}`) +
      (fb.given.rating ? ` ${t("citizen.feedback.given_rating", { n: fb.given.rating })}` : "");
    given.dataset.verdict = fb.given.verdict;
    given.hidden = false;
  } else if (!fb.open && fb.until) {
    given.textContent = t("citizen.feedback.closed");
    given.dataset.verdict = "";
    given.hidden = false;
  } else {
    given.hidden = true;
  }
}

async function load() {
  const { data } = await request(url);
  setCsrf(data.csrf_token);
  view = data;
  render();
}

async function send(ev) {
  ev.preventDefault();
  if (busy) return;
  const form = ev.currentTarget;
  const verdict = ev.submitter?.value || "confirm";
  clearErrors(form);
  const comment = form.elements.namedItem("comment").value.trim();
  const rating = form.querySelector("input[name=rating]:checked")?.value;
  if (verdict === "dispute" && !comment) {
    showErrors(form, [{ field: "comment", message: t("citizen.error.dispute_comment") }]);
    return;
  }
  busy = true;
  form.querySelectorAll("button").forEach((b) => {
    b.disabled = true;
  });
  try {
    const body = { verdict, rating: rating ? Number(rating) : null, comment: comment || null };
    const { data } = await request(`${url}/feedback`, { method: "POST", json: body });
    setCsrf(data.csrf_token);
    view = data;
    render();
    $("[data-js=given]").focus?.();
  } catch (err) {
    if (err instanceof CitizenError) {
      const rest = showErrors(form, err.fields);
      const box = form.querySelector("[data-error-for=verdict]");
      if (!err.fields.length || rest.length) box.textContent = err.message;
      if (["feedback_already_given", "feedback_window_closed", "feedback_not_open"].includes(err.code)) {
        await load().catch(() => {});
      }
    } else {
      form.querySelector("[data-error-for=verdict]").textContent = t("citizen.report.offline");
    }
  } finally {
    busy = false;
    form.querySelectorAll("button").forEach((b) => {
      b.disabled = false;
    });
  }
}

async function main() {
  await initLanguage();
  renderStars();
  try {
    await load();
  } catch (err) {
    $("[data-js=loading]").hidden = true;
    const box = $("[data-js=load-error]");
    box.textContent = err instanceof CitizenError ? err.message : t("citizen.report.offline");
    box.hidden = false;
    return;
  }
  onLanguageChange(() => {
    renderStars();
    load().catch(() => render());
  });
  $("[data-js=feedback-form]").addEventListener("submit", send);
  $("[data-js=loading]").hidden = true;
  $("[data-js=track]").hidden = false;
  document.body.dataset.ready = "true";
}

main();
