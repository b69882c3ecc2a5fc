// The session's task tree: each task's status, goal and agent. Clicking a task filters the
// timeline to it (clicking it again shows every task).

import { api } from "../api.js";
import { card, clip, fill, h, statusIcon } from "../dom.js";

export function taskPanel(sessionId, { onSelect }) {
  const summary = h("span.muted");
  const body = h("div.tree", h("p.empty", "Loading…"));
  const node = card(["Tasks ", summary], {}, body);
  let selected = null;
  let latest = [];

  function row(entry) {
    const { task, children } = entry;
    const line = h(
      `button.task-line${task.id === selected ? ".selected" : ""}`,
      {
        type: "button",
        title: `${task.goal}\n${task.id}`,
        dataset: { taskId: task.id, status: task.status },
        onclick: () => {
          selected = selected === task.id ? null : task.id;
          onSelect(selected);
          render();
        },
      },
      statusIcon(task.status),
      h("span.task-goal", clip(task.goal, 90)),
      task.assignedAgent ? h("span.agent", task.assignedAgent) : null,
      h(`span.task-status.s-${task.status}`, task.status),
    );
    return h("li", line, children.length ? h("ul", children.map(row)) : null);
  }

  function count(entries) {
    return entries.reduce(
      (sum, { task, children }) => {
        const below = count(children);
        return { all: sum.all + 1 + below.all, done: sum.done + (task.status === "done" ? 1 : 0) + below.done };
      },
      { all: 0, done: 0 },
    );
  }

  function render() {
    if (!latest.length) {
      fill(body, h("p.empty", "No tasks yet: the planner makes them when the session starts."));
      fill(summary);
      return;
    }
    const { all, done } = count(latest);
    fill(summary, `${done} of ${all} done`);
    fill(body, h("ul.tree-root", latest.map(row)));
  }

  return {
    node,
    select(taskId) {
      selected = taskId;
      render();
    },
    async refresh(signal) {
      latest = (await api.get(`/v1/sessions/${encodeURIComponent(sessionId)}/tasks`, { signal })).tasks;
      render();
    },
  };
}
