// Every pending approval the caller may answer, across sessions.

import { fill, h } from "../dom.js";
import { approvalsPanel } from "../panels/approvals.js";

const REFRESH_MS = 3000;

export function approvalsPage(view, { report, onChange }) {
  const controller = new AbortController();
  const inbox = approvalsPanel({ title: "Waiting for an answer", onAnswered: onChange });
  fill(view,
    h("div.page-head", h("h1", "Approvals"), h("span.muted", "tool calls waiting for a person, in all your sessions")),
    inbox.node);
  const tick = () => inbox.refresh(controller.signal).catch(report);
  tick();
  const timer = setInterval(tick, REFRESH_MS);
  return () => {
    clearInterval(timer);
    controller.abort();
  };
}
