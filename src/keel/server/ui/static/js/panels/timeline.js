// The session's events as they happen, filtered by agent, task and type. The run loop's own
// bookkeeping (node enter/exit, streamed model text, context assembly) is hidden unless
// asked for. The view follows the newest event while it is scrolled to the bottom.

import { agentOf, describe, familyOf, INTERNAL } from "../describe.js";
import { card, clip, clock, fill, h } from "../dom.js";

const ALL = "";

export function timelinePanel() {
  const tasks = new Map(); // task id -> goal, from task.created events
  const seen = { agent: new Set(), task: new Set(), type: new Set() };
  const filter = { agent: ALL, task: ALL, type: ALL, internals: false };
  let pending = [];
  let total = 0;

  const select = (name, label) =>
    h(`select.filter`, { name, "aria-label": label, onchange: (e) => { filter[name] = e.target.value; apply(); } },
      h("option", { value: ALL }, label));
  const selects = {
    agent: select("agent", "All agents"),
    task: select("task", "All tasks"),
    type: select("type", "All types"),
  };
  const internals = h("input", {
    type: "checkbox",
    name: "internals",
    onchange: (e) => { filter.internals = e.target.checked; apply(); },
  });
  const counter = h("span.muted.event-count", "0 events");
  const state = h("span.stream-state", "connecting");
  const rows = h("ol.events");
  const scroller = h("div.timeline-scroll", rows);
  const empty = h("p.empty", "Waiting for events…");

  const node = card(
    ["Timeline ", counter],
    { cls: "timeline", actions: state },
    h("div.filters", selects.agent, selects.task, selects.type,
      h("label.check", internals, "show internals")),
    empty,
    scroller,
  );

  function visible(row) {
    const d = row.dataset;
    if (filter.agent && d.agent !== filter.agent) return false;
    if (filter.task && d.task !== filter.task) return false;
    if (filter.type) return d.type === filter.type;
    return filter.internals || !INTERNAL.has(d.type);
  }

  function apply() {
    for (const name of Object.keys(selects)) selects[name].value = filter[name];
    let shown = 0;
    for (const row of rows.children) {
      row.hidden = !visible(row);
      if (!row.hidden) shown += 1;
    }
    fill(counter, shown === total ? `${total} events` : `${shown} of ${total} events`);
    empty.hidden = total > 0;
  }

  function option(name, value, label) {
    if (!value || seen[name].has(value)) return;
    seen[name].add(value);
    selects[name].append(h("option", { value }, label ?? value));
  }

  function row(event) {
    const agent = agentOf(event);
    const family = familyOf(event.type);
    const taskGoal = event.taskId ? tasks.get(event.taskId) : null;
    return h(
      `li.event.f-${family}`,
      {
        dataset: { seq: String(event.seq), type: event.type, agent: agent ?? "", task: event.taskId ?? "" },
        title: taskGoal ? `task: ${taskGoal}` : "",
      },
      h("span.seq", String(event.seq)),
      h("span.time", clock(event.timestamp)),
      h(`span.type.f-${family}`, event.type),
      h("span.who", agent ?? ""),
      h("span.what", describe(event)),
    );
  }

  function flush() {
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
    const batch = pending;
    pending = [];
    let shown = 0;
    const fragment = document.createDocumentFragment();
    for (const event of batch) {
      const item = row(event);
      item.hidden = !visible(item);
      if (!item.hidden) shown += 1;
      fragment.append(item);
    }
    rows.append(fragment);
    total += batch.length;
    apply();
    if (atBottom && shown) scroller.scrollTop = scroller.scrollHeight;
  }

  return {
    node,
    add(event) {
      if (event.type === "task.created") {
        tasks.set(event.taskId, event.payload.goal);
        option("task", event.taskId, clip(event.payload.goal, 48));
      }
      option("agent", agentOf(event));
      option("type", event.type);
      if (pending.length === 0) requestAnimationFrame(flush);
      pending.push(event);
    },
    showTask(taskId) {
      filter.task = taskId ?? ALL;
      apply();
    },
    streaming(how) {
      fill(state, { live: "● live", retrying: "reconnecting…", ended: "ended" }[how] ?? how);
      state.className = `stream-state ${how}`;
    },
  };
}
