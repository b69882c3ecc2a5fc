// The caller's sessions, newest first, refreshed every few seconds.

import { api } from "../api.js";
import { clip, fill, h, statusPill, when } from "../dom.js";

const REFRESH_MS = 3000;

export function sessionsPage(view, { report }) {
  const body = h("tbody");
  const table = h("table.sessions",
    h("thead", h("tr", ["status", "goal", "session", "agents", "created", "updated"].map((c) => h("th", c)))),
    body);
  const empty = h("p.empty", { hidden: true },
    "No sessions yet. Create one with POST /v1/sessions (or `keel run`), then watch it here.");
  fill(view,
    h("div.page-head", h("h1", "Sessions"), h("span.muted", "newest first · refreshes every 3 s")),
    h("section.card", h("div.card-body.flush", table, empty)));

  const open = (id) => { location.hash = `#/sessions/${id}`; };
  const controller = new AbortController();

  async function refresh() {
    const { sessions } = await api.get("/v1/sessions?limit=100", { signal: controller.signal });
    empty.hidden = sessions.length > 0;
    table.hidden = sessions.length === 0;
    fill(body, sessions.map((s) => h(
      "tr.session-row",
      { tabindex: "0", dataset: { sessionId: s.id }, onclick: () => open(s.id), onkeydown: (e) => { if (e.key === "Enter") open(s.id); } },
      h("td", statusPill(s.status)),
      h("td.goal", { title: s.goal }, clip(s.goal, 110)),
      h("td", h("code", s.id)),
      h("td.muted", Object.keys(s.agentVersions ?? {}).join(", ")),
      h("td.muted.nowrap", when(s.createdAt)),
      h("td.muted.nowrap", when(s.updatedAt)),
    )));
  }

  const tick = () => refresh().catch(report);
  tick();
  const timer = setInterval(tick, REFRESH_MS);
  return () => {
    clearInterval(timer);
    controller.abort();
  };
}
