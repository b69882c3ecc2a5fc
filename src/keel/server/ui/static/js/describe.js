// What an event means, in one line (as `keel`'s terminal view says it), and which family
// of events it belongs to (the timeline colours them by family).

import { clip } from "./dom.js";

const args = (values) =>
  Object.entries(values ?? {}).map(([k, v]) => `${k}=${clip(typeof v === "string" ? v : JSON.stringify(v), 60)}`).join(", ");

const DESCRIBE = {
  "session.created": (p) => `goal: ${clip(p.goal)}`,
  "session.started": (p) => `run ${p.runId}${p.step !== undefined ? ` at step ${p.step} (${p.node})` : ""}`,
  "session.resumed": (p) => `run ${p.runId}${p.step !== undefined ? ` at step ${p.step} (${p.node})` : ""}`,
  "session.claimed": (p) => `worker ${p.workerId} took the lease`,
  "session.queued": () => "waiting for a worker",
  "session.completed": (p) => clip(p.finalAnswer ?? "finished", 160),
  "session.failed": (p) => clip(p.reason ?? "failed", 160),
  "session.cancelled": (p) => clip(p.reason ?? "cancelled", 160),
  "session.message": (p) => clip(p.text ?? "", 160),
  "cancel.requested": (p) => clip(p.reason ?? "", 120),
  "task.created": (p) => `${clip(p.goal, 90)}${p.assignedAgent ? ` → ${p.assignedAgent}` : ""}`,
  "task.status": (p) => `${p.from} → ${p.to}${p.reason ? ` (${clip(p.reason, 70)})` : ""}`,
  "workflow.node.enter": (p) => String(p.node ?? ""),
  "workflow.node.exit": (p) => String(p.node ?? ""),
  "model.call": (p) => `${p.model}: ${p.inputTokens} in, ${p.outputTokens} out, ${p.durationMs} ms`,
  "model.delta": (p) => `… ${clip(p.text, 110)}`,
  "model.retry": (p) => `attempt ${p.attempt} failed, retry in ${Number(p.delayS ?? 0).toFixed(1)} s: ${clip(p.error, 70)}`,
  "agent.message": (p) => clip(p.text, 160),
  "plan.created": (p) => `${(p.tasks ?? []).length} tasks from ${p.source}`,
  "route.decided": (p) => `→ ${p.agent}: ${p.reason}`,
  "tool.call": (p) => `${p.tool}(${args(p.arguments)})`,
  "tool.result": (p) => `${p.tool} ${p.ok ? "ok" : "error"} in ${p.durationMs} ms: ${clip(p.output, 80)}`,
  "tool.interrupted": (p) => `${p.tool} was interrupted by a crash and not re-run`,
  "guardrail.decision": (p) => `${p.verdict} ${p.tool}: ${(p.reasons ?? []).join("; ")}`,
  "approval.requested": (p) => `${p.tool}(${args(p.arguments)}) needs an answer`,
  "approval.answered": (p) => `${p.decision}${p.by ? ` by ${p.by}` : ""}${p.remember ? " (remembered)" : ""}`,
  "approval.applied": (p) => `${p.decision}: the answer was taken in, the task runs again`,
  "budget.exceeded": (p) => `${p.scope} ${p.limit}: ${p.used} of ${p.allowed}`,
  "fact.written": (p) => `${p.scope}/${p.key} v${p.version}`,
  "decision.recorded": (p) => `${p.scope}/${p.key} v${p.version}: ${clip(p.decision, 80)}`,
  "artifact.stored": (p) => `${p.name} (${p.type ?? "file"}, ${p.size ?? "?"} bytes)`,
  "workspace.opened": (p) => `${p.kind} ${p.path}${p.branch ? ` on ${p.branch}` : ""}`,
  "workspace.snapshot": (p) => `snapshot ${p.number} (${String(p.commit ?? "").slice(0, 10)}): ${p.label}`,
  "workspace.task.opened": (p) => `own worktree${p.branch ? ` on ${p.branch}` : ""}, from its parent's files`,
  "workspace.task.discarded": (p) => `worktree removed unmerged${p.artifactId ? `; its change is artifact ${p.artifactId}` : ""}`,
  "workspace.merged": (p) => `merged into ${p.into}: ${(p.files ?? []).length} file(s)`,
  "workspace.merge.conflict": (p) => `conflict with ${p.into}: ${(p.files ?? []).join(", ")}`,
  "context.assembled": (p) => `${(p.messages ?? []).length} messages, ${(p.facts ?? []).length} facts`,
};

export function describe(event) {
  const how = DESCRIBE[event.type];
  const payload = event.payload ?? {};
  try {
    if (how) return how(payload);
  } catch {
    // a payload of another shape: fall through to the raw one
  }
  return clip(JSON.stringify(payload), 160);
}

/** The agent an event is about, if any. */
export function agentOf(event) {
  const payload = event.payload ?? {};
  if (typeof payload.agent === "string" && event.type !== "route.decided") return payload.agent;
  if (event.actor && event.actor !== "keel" && event.type !== "session.created") return event.actor;
  return null;
}

export function familyOf(type) {
  if (type.startsWith("session.") || type === "cancel.requested") return "session";
  if (type.startsWith("task.") || type === "plan.created" || type === "route.decided" || type === "handoff") return "task";
  if (type.startsWith("model.") || type === "agent.message" || type === "context.assembled") return "model";
  if (type.startsWith("tool.")) return "tool";
  if (type.startsWith("approval.") || type.startsWith("guardrail.") || type === "budget.exceeded") return "guard";
  if (type.startsWith("workspace.")) return "workspace";
  if (type.startsWith("fact.") || type.startsWith("decision.") || type.startsWith("artifact.") || type.startsWith("blackboard.")) return "board";
  return "flow";
}

/** Events that say how the run loop works rather than what happened: hidden unless asked. */
export const INTERNAL = new Set(["model.delta", "workflow.node.enter", "workflow.node.exit", "context.assembled"]);
