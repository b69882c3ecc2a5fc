// One session, live: its header, approvals, task tree, event timeline, blackboard and
// workspace. The event stream drives the page: each event lands in the timeline and
// refreshes the panels it concerns; a slow poll covers anything the stream cannot say.

import { api, ApiError, followEvents } from "../api.js";
import { coalesce, duration, fill, h, statusPill, toast, when } from "../dom.js";
import { approvalsPanel } from "../panels/approvals.js";
import { blackboardPanel } from "../panels/blackboard.js";
import { snapshotsPanel } from "../panels/snapshots.js";
import { taskPanel } from "../panels/tasks.js";
import { timelinePanel } from "../panels/timeline.js";

const POLL_MS = 5000;
const FINAL = new Set(["done", "failed", "cancelled"]);

function header(sessionId, { report }) {
  const node = h("section.session-head", h("p.empty", "Loading…"));
  let session = null;

  async function cancel(button) {
    button.disabled = true;
    try {
      await api.post(`/v1/sessions/${encodeURIComponent(sessionId)}/cancel`, { reason: "cancelled from the dashboard" });
      toast("Cancel requested: the worker stops the session within a second.", "warn");
    } catch (error) {
      report(error);
      button.disabled = false;
    }
  }

  function render() {
    const s = session;
    const ended = FINAL.has(s.status);
    const agents = Object.entries(s.agentVersions ?? {}).map(([name, v]) => h("span.agent", { title: `version ${v}` }, name));
    const cancelButton = h("button.ghost.danger", { type: "button" }, "Cancel session");
    cancelButton.addEventListener("click", () => cancel(cancelButton));
    fill(node,
      h("div.crumbs", h("a", { href: "#/" }, "Sessions"), " / ", h("code", s.id)),
      h("div.head-line",
        h("h1.session-goal", s.goal || "(a workflow session)"),
        h("span.spacer"),
        ended ? null : cancelButton),
      h("div.meta",
        h("span.session-status", { dataset: { status: s.status } }, statusPill(s.status)),
        h("span", "created ", when(s.createdAt)),
        h("span", ended ? "ran " : "running for ", duration(s.createdAt, ended ? s.updatedAt : new Date().toISOString())),
        h("span.agents", agents)),
      s.finalAnswer ? h("div.final-answer", h("strong", "Answer "), s.finalAnswer) : null);
  }

  return {
    node,
    get status() { return session?.status; },
    async refresh(signal) {
      try {
        session = await api.get(`/v1/sessions/${encodeURIComponent(sessionId)}`, { signal });
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 404) throw error;
        fill(node, h("p.empty", `${error.message}. `, h("a", { href: "#/" }, "Back to the sessions")));
        return;
      }
      render();
    },
  };
}

export function sessionPage(view, sessionId, { report, onChange }) {
  const controller = new AbortController();
  const { signal } = controller;
  const safely = (panel) => () => panel.refresh(signal).catch((error) => { if (!signal.aborted) report(error); });

  const head = header(sessionId, { report });
  const timeline = timelinePanel();
  const tasks = taskPanel(sessionId, { onSelect: (taskId) => timeline.showTask(taskId) });
  const inbox = approvalsPanel({
    sessionId,
    onAnswered: () => { refreshTasks(); onChange(); },
  });
  const board = blackboardPanel(sessionId);
  const workspace = snapshotsPanel(sessionId);

  fill(view,
    head.node,
    h("div.session-grid",
      h("div.column", inbox.node, tasks.node, board.node),
      h("div.column", timeline.node)),
    workspace.node);

  const refreshHead = coalesce(safely(head), 150);
  const refreshTasks = coalesce(safely(tasks), 150);
  const refreshInbox = coalesce(() => { safely(inbox)(); onChange(); }, 150);
  const refreshBoard = coalesce(safely(board), 400);
  const refreshWorkspace = coalesce(safely(workspace), 400);
  const everything = () => { refreshHead(); refreshTasks(); refreshInbox(); refreshBoard(); refreshWorkspace(); };

  function route(event) {
    timeline.add(event);
    const type = event.type;
    if (type.startsWith("session.")) refreshHead();
    if (type.startsWith("task.") || type === "plan.created" || type === "approval.applied") refreshTasks();
    if (type.startsWith("approval.")) refreshInbox();
    if (/^(fact|decision|artifact)\./.test(type)) refreshBoard();
    if (type.startsWith("workspace.")) refreshWorkspace();
    if (["session.completed", "session.failed", "session.cancelled"].includes(type)) everything();
  }

  for (const panel of [head, tasks, inbox, board, workspace]) safely(panel)();
  followEvents(sessionId, { onEvent: route, onState: timeline.streaming, signal }).catch((error) => {
    if (!signal.aborted) report(error);
  });
  const timer = setInterval(() => {
    if (!FINAL.has(head.status)) { refreshHead(); refreshInbox(); }
  }, POLL_MS);

  return () => {
    clearInterval(timer);
    controller.abort();
  };
}
