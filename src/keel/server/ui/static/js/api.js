// The session API as the dashboard uses it: every call carries the Bearer token, errors
// arrive as problem documents, and a session's events stream over fetch (EventSource cannot
// send an Authorization header), resuming from the last sequence number after a drop.

const TOKEN_KEY = "keel.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** Called with the error when the API refuses the token (401). */
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${token.get() ?? ""}`, ...extra };
}

async function failure(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.detail) detail = body.detail;
  } catch {
    // not a problem document: keep the status line
  }
  const error = new ApiError(response.status, detail);
  if (response.status === 401) onUnauthorized(error);
  return error;
}

async function request(method, path, { body, as = "json", signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  if (as === "text") return response.text();
  if (as === "blob") return response.blob();
  return response.json();
}

export const api = {
  get: (path, options) => request("GET", path, options),
  post: (path, body, options) => request("POST", path, { ...options, body }),
};

function parseFrame(frame) {
  const event = { id: null, type: "message", data: "" };
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") event.id = value;
    else if (field === "event") event.type = value;
    else if (field === "data") event.data += (event.data ? "\n" : "") + value;
  }
  return event.data ? event : null;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/**
 * Follow a session's events: `onEvent(event)` for each, in order, none twice. Returns when
 * the session's final event has arrived (the server then ends the stream) or `signal`
 * aborts. A dropped connection is opened again after the last sequence number seen.
 * `onState("live" | "retrying" | "ended")` tells how the stream is.
 */
export async function followEvents(sessionId, { after = 0, onEvent, onState = () => {}, signal }) {
  let last = after;
  let ended = false;
  while (!signal.aborted && !ended) {
    try {
      const response = await fetch(
        `/v1/sessions/${encodeURIComponent(sessionId)}/events?after=${last}`,
        { headers: headers({ Accept: "text/event-stream" }), signal },
      );
      if (!response.ok) throw await failure(response);
      onState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (!frame) continue;
          const event = JSON.parse(frame.data);
          if (event.seq <= last) continue;
          last = event.seq;
          onEvent(event);
          if (["session.completed", "session.failed", "session.cancelled"].includes(event.type)) {
            ended = true;
          }
        }
      }
      // The server ends the stream after the session's final event; any other end is a drop.
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status !== 503) throw error;
    }
    if (!ended && !signal.aborted) {
      onState("retrying");
      await sleep(1000, signal);
    }
  }
  if (ended) onState("ended");
}
