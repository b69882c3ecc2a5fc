// The session's workspace snapshots (0 is where it started; Keel takes one after each batch
// of writing tool calls) and what changed: the whole change, or one snapshot's own.

import { api, ApiError } from "../api.js";
import { card, fill, h, when } from "../dom.js";

function diffView(patch) {
  if (!patch.trim()) return h("p.empty", "No differences.");
  const lines = patch.replace(/\n$/, "").split("\n").map((line) => {
    let kind = "ctx";
    if (line.startsWith("diff --git")) kind = "file";
    else if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("index ")) kind = "hdr";
    else if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    const text = kind === "file" ? line.replace(/^diff --git a\/(.*) b\/.*$/, "$1") : line;
    return h(`span.line.${kind}`, text || " ");
  });
  return h("pre.diff", lines);
}

export function snapshotsPanel(sessionId) {
  const list = h("ol.snapshots", h("p.empty", "Loading…"));
  const diff = h("div.diff-box");
  const caption = h("span.muted");
  const node = card(["Workspace ", caption], { cls: "workspace" }, h("div.workspace-grid", list, diff));
  const base = `/v1/sessions/${encodeURIComponent(sessionId)}`;
  let snapshots = [];
  let chosen = null; // null: the whole change; else a snapshot number
  let drawn = null;

  async function showDiff(signal) {
    const latest = snapshots[snapshots.length - 1];
    const [a, b, title] = chosen === null
      ? [0, latest.number, `Whole change: snapshot 0 → ${latest.number}`]
      : [chosen - 1, chosen, `Snapshot ${chosen}: ${snapshots.find((s) => s.number === chosen)?.label ?? ""}`];
    const key = `${a}-${b}`;
    if (key === drawn) return;
    if (b === 0) {
      fill(diff, h("div.diff-title", "Snapshot 0"), h("p.empty", "The files the session started with."));
      drawn = key;
      return;
    }
    const patch = await api.get(`${base}/diff?a=${a}&b=${b}`, { as: "text", signal });
    fill(diff, h("div.diff-title", title), diffView(patch));
    drawn = key;
  }

  function render() {
    const latest = snapshots[snapshots.length - 1];
    const whole = latest.number === 0 ? null : h(`li.snapshot.whole${chosen === null ? ".selected" : ""}`,
      { onclick: () => { chosen = null; render(); showDiff(); } },
      h("span.snap-no", "Σ"), h("span.snap-label", "Whole change"),
      h("span.muted", `0 → ${latest.number}`));
    fill(list, whole, snapshots.slice().reverse().map((snap) => h(
      `li.snapshot${chosen === snap.number ? ".selected" : ""}`,
      { title: snap.commit, onclick: () => { chosen = snap.number; render(); showDiff(); } },
      h("span.snap-no", String(snap.number)),
      h("span.snap-label", snap.label),
      h("span.muted", `${snap.filesChanged} file${snap.filesChanged === 1 ? "" : "s"} · `, when(snap.createdAt)),
    )));
  }

  return {
    node,
    async refresh(signal) {
      let found;
      try {
        found = await api.get(`${base}/snapshots`, { signal });
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 404) throw error;
        fill(list, h("p.empty", error.message));
        fill(diff);
        return;
      }
      snapshots = found.snapshots;
      fill(caption, found.workspace);
      if (!snapshots.length) {
        fill(list, h("p.empty", "No snapshots yet."));
        return;
      }
      render();
      await showDiff(signal);
    },
  };
}
