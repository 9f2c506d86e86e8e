// The live events feed: the newest events first (a few dozen kept), each opening its appeal on click.

import { formatTime } from "/static/js/format.js";
import { t } from "/static/js/i18n.js";
import { kindLabel } from "./detail.js";

const KEEP = 30;

export class Feed {
  constructor(list, empty, { onPick }) {
    this.list = list;
    this.empty = empty;
    this.onPick = onPick;
    this.items = [];
  }

  add(ev) {
    this.items.unshift(ev);
    if (this.items.length > KEEP) this.items.length = KEEP;
    this.render();
  }

  render() {
    this.empty.hidden = this.items.length > 0;
    this.list.replaceChildren(...this.items.map((ev) => {
      const li = document.createElement("li");
      li.dataset.eventId = ev.id;
      li.dataset.regNo = ev.appeal.reg_no;
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "linkish";
      const time = document.createElement("time");
      time.textContent = formatTime(ev.at);
      const reg = document.createElement("strong");
      reg.textContent = ev.appeal.reg_no;
      btn.append(time, " ", reg, ` · ${kindLabel(ev.kind)}`);
      if (ev.appeal.sector) btn.append(` · ${ev.appeal.sector}`);
      else if (ev.appeal.status === "unrouted") btn.append(` · ${t("counters.unrouted")}`);
      btn.addEventListener("click", () => this.onPick(ev.appeal.id));
      li.append(btn);
      return li;
    }));
  }
}
