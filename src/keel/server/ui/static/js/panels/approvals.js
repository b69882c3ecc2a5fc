// The approvals inbox: tool calls waiting for a person, with what they would do, their risk
// and the reasons they were stopped; one click answers. The session's worker takes the
// answer in and the task runs again (or is told no). With a session, the answered ones are
// listed below as its history.

import { api } from "../api.js";
import { ago, card, dateOf, fill, h, statusIcon, toast, when } from "../dom.js";

function riskLevel(risk) {
  if (risk >= 80) return "high";
  if (risk >= 40) return "medium";
  return "low";
}

function argumentsView(approval) {
  const args = approval.arguments ?? {};
  if (typeof args.command === "string" && Object.keys(args).length === 1) {
    return h("pre.arguments.command", h("code", args.command));
  }
  return h("pre.arguments", h("code", JSON.stringify(args, null, 2)));
}

function expires(approval) {
  const left = dateOf(approval.deadline).getTime() - Date.now();
  if (left <= 0) return "expired";
  const minutes = Math.round(left / 60000);
  return minutes < 1 ? "expires in under a minute" : `expires in ${minutes} min`;
}

export function approvalsPanel({ sessionId = null, title = "Approvals", onAnswered = () => {} } = {}) {
  const badge = h("span.count", { hidden: true });
  const inbox = h("div.inbox", h("p.empty", "Loading…"));
  const history = h("ul.answered");
  const node = card([title, " ", badge], { cls: "approvals" }, inbox, history);
  const answering = new Set();
  let shown = null;

  async function answer(approval, allow, buttons) {
    answering.add(approval.id);
    for (const button of buttons) button.disabled = true;
    try {
      await api.post(`/v1/approvals/${encodeURIComponent(approval.id)}`, { allow });
      toast(`${allow ? "Approved" : "Denied"} ${approval.tool} for ${approval.agent}: the task ${allow ? "resumes" : "is told no"}.`, allow ? "ok" : "warn");
      onAnswered(approval);
    } catch (error) {
      toast(`Could not answer: ${error.message}`, "error");
    } finally {
      answering.delete(approval.id);
      await refresh();
    }
  }

  function pendingCard(approval) {
    const level = riskLevel(approval.risk);
    const approve = h("button.approve", { type: "button" }, "✓ Approve");
    const deny = h("button.deny", { type: "button" }, "✕ Deny");
    const buttons = [approve, deny];
    approve.addEventListener("click", () => answer(approval, true, buttons));
    deny.addEventListener("click", () => answer(approval, false, buttons));
    if (answering.has(approval.id)) for (const b of buttons) b.disabled = true;
    return h(
      "article.approval-card",
      { dataset: { approvalId: approval.id } },
      h("div.approval-head",
        h("span.tool", approval.tool),
        h("span.agent", approval.agent),
        sessionId ? null : h("a.session-link", { href: `#/sessions/${approval.sessionId}` }, approval.sessionId),
        h("span.spacer"),
        h(`span.risk.${level}`, { title: "risk score, 0 to 100" }, `risk ${approval.risk} · ${level}`)),
      argumentsView(approval),
      approval.reasons.length
        ? h("ul.reasons", approval.reasons.map((reason) => h("li", reason)))
        : null,
      h("div.approval-foot",
        h("span.muted", "requested ", when(approval.requestedAt), " · ", expires(approval)),
        h("span.spacer"),
        deny,
        approve),
    );
  }

  function answeredRow(approval) {
    return h(
      "li",
      statusIcon(approval.status),
      h("span.tool", approval.tool),
      h("span.muted", ` ${approval.status}${approval.answeredBy ? ` by ${approval.answeredBy}` : ""}`),
      h("span.spacer"),
      approval.answeredAt ? h("span.muted", ago(approval.answeredAt)) : null,
    );
  }

  async function refresh(signal) {
    const query = sessionId ? `?session=${encodeURIComponent(sessionId)}&all=true` : "";
    const found = (await api.get(`/v1/approvals${query}`, { signal })).approvals;
    const pending = found.filter((a) => a.status === "pending");
    const answered = found.filter((a) => a.status !== "pending").sort((a, b) => (b.answeredAt ?? 0) - (a.answeredAt ?? 0));
    // Re-draw only on a change, so a button is not replaced under the pointer.
    const key = JSON.stringify(found.map((a) => [a.id, a.status]).concat([...answering]));
    if (key === shown) return pending.length;
    shown = key;
    badge.hidden = pending.length === 0;
    fill(badge, String(pending.length));
    node.classList.toggle("waiting", pending.length > 0);
    fill(inbox, pending.length
      ? pending.map(pendingCard)
      : h("p.empty", sessionId ? "Nothing waits for an answer in this session." : "Nothing waits for an answer."));
    fill(history, answered.slice(0, 6).map(answeredRow));
    return pending.length;
  }

  return { node, refresh };
}
