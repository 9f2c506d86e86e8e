// Similar open appeals near the point (same topic, within 50 m) from /appeals/similar, shown before
// saving with a "this is the same problem: don't duplicate" hint listing their registration numbers.

import { api } from "/static/js/api.js";
import { formatDateTime, formatDistance } from "/static/js/format.js";
import { t } from "/static/js/i18n.js";

const DEBOUNCE_MS = 250;

export class SimilarBox {
  constructor(root) {
    this.root = root;
    this.list = root.querySelector("[data-js=similar-list]");
    this.hint = root.querySelector("[data-js=similar-hint]");
    this.items = [];
    this.timer = null;
    this.seq = 0;
  }

  /** Look again for ``point`` {lat, lon} and ``topic`` (nothing without both). */
  check(point, topic) {
    clearTimeout(this.timer);
    const seq = ++this.seq;
    if (!point || !topic) {
      this.show([]);
      return;
    }
    this.timer = setTimeout(async () => {
      try {
        const items = await api(`/api/v1/appeals/similar?lat=${point.lat}&lon=${point.lon}&topic=${encodeURIComponent(topic)}`);
        if (seq === this.seq) this.show(items);
      } catch {
        if (seq === this.seq) this.show([]);
      }
    }, DEBOUNCE_MS);
  }

  show(items) {
    this.items = items;
    this.render();
  }

  render() {
    const items = this.items;
    this.root.hidden = items.length === 0;
    this.root.dataset.count = String(items.length);
    this.hint.textContent = items.length
      ? t("similar.hint", { list: items.map((s) => s.reg_no).join(", ") }) : "";
    this.list.replaceChildren(...items.map((s) => {
      const li = document.createElement("li");
      li.dataset.regNo = s.reg_no;
      const reg = document.createElement("strong");
      reg.textContent = s.reg_no;
      li.append(reg, ` · ${t(`status.${s.status}`)} · ${formatDistance(s.distance_m)} · ${formatDateTime(s.created_at)}`);
      return li;
    }));
  }
}
