// The dashboard's shell: sign-in with an API token, the top bar, and the pages by address
// (#/ sessions, #/sessions/<id> one session, #/approvals the inbox of every session).

import { api, ApiError, token, whenUnauthorized } from "./api.js";
import { fill, h, toast } from "./dom.js";
import { approvalsPage } from "./pages/approvals.js";
import { sessionPage } from "./pages/session.js";
import { sessionsPage } from "./pages/sessions.js";

const view = document.getElementById("view");
const topbar = document.querySelector(".topbar");
const pendingCount = document.getElementById("pending-count");
const apiState = document.getElementById("api-state");
let leave = () => {};
let lastError = "";

/** Show an error once (a poll that keeps failing says so once, not every time). */
function report(error) {
  if (error?.name === "AbortError") return;
  apiState.className = "live-dot down";
  apiState.title = `API: ${error.message}`;
  if (error.message !== lastError) toast(error.message, "error");
  lastError = error.message;
}

async function countPending() {
  if (!token.get()) return;
  try {
    const { approvals } = await api.get("/v1/approvals");
    pendingCount.hidden = approvals.length === 0;
    fill(pendingCount, String(approvals.length));
    apiState.className = "live-dot up";
    apiState.title = "API: connected";
    lastError = "";
  } catch (error) {
    report(error);
  }
}

function signIn(message = "") {
  leave();
  leave = () => {};
  topbar.hidden = true;
  const input = h("input#token", {
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "keel_…",
    required: true,
  });
  const problem = h("p.form-error", { hidden: !message }, message);
  const button = h("button.primary", { type: "submit" }, "Sign in");
  const form = h("form.login-card",
    h("div.login-brand", h("span.logo", "K"), h("span", "Keel")),
    h("h1", "Sign in to the dashboard"),
    h("label", { for: "token" }, "API token"),
    input,
    problem,
    button,
    h("p.hint", "`keel serve` saves an admin token in ", h("code", "$KEEL_HOME/admin.token"),
      " when it first starts; make more with ", h("code", "keel token create USER"),
      ". The token stays in this tab only."));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    token.set(input.value.trim());
    try {
      await api.get("/v1/sessions?limit=1");
      show();
      countPending();
    } catch (error) {
      token.clear();
      problem.hidden = false;
      fill(problem, error instanceof ApiError && error.status === 401
        ? "This token is unknown or was revoked."
        : `The API did not answer: ${error.message}`);
      button.disabled = false;
    }
  });
  fill(view, h("div.login", form));
  input.focus();
}

function show() {
  if (!token.get()) {
    signIn();
    return;
  }
  leave();
  topbar.hidden = false;
  const path = location.hash.replace(/^#/, "") || "/";
  const session = path.match(/^\/sessions\/([^/]+)$/);
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = session || path === "/" ? "sessions" : path.slice(1);
    link.classList.toggle("current", link.dataset.nav === current);
  }
  const context = { report, onChange: countPending };
  if (session) leave = sessionPage(view, decodeURIComponent(session[1]), context);
  else if (path === "/approvals") leave = approvalsPage(view, context);
  else leave = sessionsPage(view, context);
  window.scrollTo(0, 0);
}

whenUnauthorized(() => {
  token.clear();
  signIn("The API refused the token (unknown or revoked): sign in again.");
});

document.getElementById("sign-out").addEventListener("click", () => {
  token.clear();
  signIn();
});
window.addEventListener("hashchange", show);
setInterval(countPending, 5000);
countPending();
show();
