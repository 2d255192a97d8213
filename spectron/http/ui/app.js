// The Spectron console: views over the HTTP API, one URL per view (scope and as-of in the query).
// No framework and no build step: plain DOM, and never HTML from data (memory content is user data).
import { ApiError, api, forgetKey, signOut, storeKey, storedKey } from "./api.js";
import { $, h, showProblem } from "./dom.js";
import { travelling } from "./controls.js";
import { TITLES, currentScope, navigate, query, scopeQuery, setRenderer, signedIn, urlOf, viewName } from "./nav.js";
import { auditView } from "./view_audit.js";
import { healthView } from "./view_health.js";
import { memoriesView } from "./view_memories.js";
import { scopesView } from "./view_scopes.js";
import { stateView } from "./view_state.js";

let renderId = 0;

const VIEWS = { scopes: scopesView, memories: memoriesView, state: stateView, audit: auditView, health: healthView };

// ---- sign-in and rendering --------------------------------------------------------------

function showSignedOut(error) {
  signedIn.me = null;
  signedIn.rootScopes = null;
  $("#views").hidden = true;
  $("#who").hidden = true;
  $("#view").replaceChildren();
  $("#sign-in").hidden = false;
  showProblem(error);
  $("#api-key").focus();
}

/** A render that failed: a 401 signs out (the key is no good); anything else is shown, key kept. */
function failed(error, id, heading, message) {
  if (id !== renderId) return; // a newer render owns the page
  if (error instanceof ApiError && error.status === 401) {
    forgetKey();
    showSignedOut(error);
    return;
  }
  showProblem(error);
  $("#view").replaceChildren(h("h1", { tabindex: -1 }, heading), h("p", {}, message));
}

async function render({ focus = false, travel = false } = {}) {
  const id = ++renderId;
  travelling(travel);
  if (!storedKey()) {
    showSignedOut(null);
    return;
  }
  try {
    if (!signedIn.me) signedIn.me = await api("GET", "/v1/whoami");
  } catch (error) {
    // e.g. the server is restarting: the key is still good, the next render asks again
    failed(error, id, "Spectron", "The server could not be reached; reload to try again.");
    return;
  }
  $("#sign-in").hidden = true;
  $("#views").hidden = false;
  $("#who").hidden = false;
  $("#principal").textContent = `${signedIn.me.principal} (${signedIn.me.capabilities.join(", ")})`;
  const view = viewName();
  document.title = `${TITLES[view]} · Spectron`;
  for (const link of document.querySelectorAll("#views a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    // nav links keep the scope (and time) being looked at
    link.href = urlOf(link.dataset.view, {}, true).split("?")[0] + scopeQuery();
  }
  const active = document.activeElement?.id;
  let nodes;
  try {
    if (view !== "scopes" && !query().get("scope") && !Object.keys(signedIn.me.scope_floor).length && !signedIn.rootScopes) {
      signedIn.rootScopes = await api("GET", "/v1/scopes");
    }
    signedIn.viewScope = currentScope();
    nodes = await VIEWS[view]();
  } catch (error) {
    failed(error, id, TITLES[view], "This view could not be loaded.");
    return;
  }
  if (id !== renderId) return; // a newer render (e.g. the slider moved on) owns the page
  showProblem(null);
  $("#view").replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  const again = active ? document.getElementById(active) : null;
  if (again && !focus) again.focus();
  else if (focus) $("#view h1")?.focus();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute("href"), { focus: true });
});

window.addEventListener("popstate", () => render({ focus: true }));

$("#sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#api-key");
  storeKey(input.value.trim());
  input.value = "";
  signedIn.me = null;
  const target = location.pathname === "/ui" || location.pathname === "/ui/" ? "/ui/scopes" : location.pathname + location.search;
  navigate(target, { focus: true });
});

$("#sign-out").addEventListener("click", async () => {
  await signOut();
  history.pushState(null, "", "/ui");
  showSignedOut(null);
});

setRenderer(render);
render({ focus: false });
