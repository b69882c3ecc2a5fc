// Building the page: elements from plain values (text is always set as text, never parsed
// as HTML, so nothing an agent writes can run here), and how times and states read.

/**
 * `h("div.card#main", { onclick }, child, ...)`: an element with classes and an id from the
 * selector, attributes or listeners (`on...`) from the object, and children (strings
 * become text; null, false and undefined are skipped; arrays are flattened).
 */
export function h(selector, attrs, ...children) {
  const [, tag = "div", rest = ""] = selector.match(/^([a-z0-9-]*)(.*)$/i);
  const node = document.createElement(tag || "div");
  for (const part of rest.match(/[.#][^.#]+/g) ?? []) {
    if (part[0] === ".") node.classList.add(part.slice(1));
    else node.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h(`div.toast.${kind}`, message);
  box.append(item);
  setTimeout(() => item.classList.add("leaving"), 4000);
  setTimeout(() => item.remove(), 4600);
}

const ICONS = {
  pending: "○",
  queued: "○",
  running: "◐",
  blocked: "‖",
  done: "✓",
  failed: "✕",
  cancelled: "⊘",
  allowed: "✓",
  denied: "✕",
  expired: "⌛",
};

export function statusIcon(status) {
  return h(`span.icon.s-${status}`, { title: status, "aria-hidden": "true" }, ICONS[status] ?? "•");
}

export function statusPill(status) {
  return h(`span.pill.s-${status}`, statusIcon(status), status);
}

/** A time (ISO text or microseconds since the epoch) as a Date. */
export function dateOf(value) {
  return typeof value === "number" ? new Date(value / 1000) : new Date(value);
}

export function clock(value) {
  const date = dateOf(value);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function ago(value, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - dateOf(value).getTime()) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return dateOf(value).toLocaleDateString();
}

export function when(value) {
  return h("time", { datetime: dateOf(value).toISOString(), title: dateOf(value).toLocaleString() },
    ago(value));
}

export function duration(fromValue, toValue) {
  const seconds = Math.max(0, (dateOf(toValue) - dateOf(fromValue)) / 1000);
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function clip(text, width = 120) {
  const line = String(text ?? "").split(/\s+/).join(" ").trim();
  return line.length <= width ? line : `${line.slice(0, width - 1)}…`;
}

/** Call `fn` at most once per `ms`, after the last request (coalesces bursts of events). */
export function coalesce(fn, ms = 200) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}

export function card(title, { actions = null, cls = "" } = {}, ...body) {
  return h(`section.card${cls ? `.${cls}` : ""}`,
    h("header.card-head", h("h2", title), actions),
    h("div.card-body", ...body));
}
