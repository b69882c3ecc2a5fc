// The session's blackboard: the facts and decisions its agents can see (their latest
// versions), and the artifacts it stored, each downloadable.

import { api } from "../api.js";
import { card, clip, fill, h, toast, when } from "../dom.js";

function value(fact) {
  const text = typeof fact.value === "string" ? fact.value : JSON.stringify(fact.value);
  return h("span.fact-value", { title: text }, clip(text, 140));
}

export function blackboardPanel(sessionId) {
  const facts = h("div", h("p.empty", "Loading…"));
  const artifacts = h("div");
  const node = card("Blackboard", { cls: "blackboard" }, facts, artifacts);
  const base = `/v1/sessions/${encodeURIComponent(sessionId)}`;

  async function download(artifact) {
    try {
      const blob = await api.get(`${base}/artifacts/${encodeURIComponent(artifact.id)}`, { as: "blob" });
      const link = h("a", { href: URL.createObjectURL(blob), download: artifact.name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (error) {
      toast(`Could not download ${artifact.name}: ${error.message}`, "error");
    }
  }

  function latestVersions(found) {
    const latest = new Map();
    for (const fact of found) {
      const key = `${fact.scope}/${fact.key}`;
      if (!latest.has(key) || latest.get(key).version < fact.version) latest.set(key, fact);
    }
    return [...latest.values()].sort((a, b) => a.key.localeCompare(b.key));
  }

  return {
    node,
    async refresh(signal) {
      const [factList, artifactList] = await Promise.all([
        api.get(`${base}/facts`, { signal }),
        api.get(`${base}/artifacts`, { signal }),
      ]);
      const shownFacts = latestVersions(factList.facts);
      fill(facts, shownFacts.length
        ? h("table.facts",
          h("thead", h("tr", ["key", "value", "by", "v", "written"].map((c) => h("th", c)))),
          h("tbody", shownFacts.map((fact) => h("tr",
            h("td", h(`span.kind.${fact.kind}`, fact.kind === "decision" ? "decision" : "fact"), " ", h("code", fact.key)),
            h("td", value(fact)),
            h("td", h("span.agent", fact.agent)),
            h("td.num", String(fact.version)),
            h("td.muted", when(fact.writtenAt)))))
        )
        : h("p.empty", "No facts yet: agents write what they learn here for the others."));
      fill(artifacts, artifactList.artifacts.length
        ? h("ul.artifacts", artifactList.artifacts.map((artifact) => h("li",
          h("span.artifact-type", artifact.type),
          h("span.artifact-name", artifact.name),
          h("span.spacer"),
          h("button.link", { type: "button", onclick: () => download(artifact) }, "download"))))
        : null);
    },
  };
}
