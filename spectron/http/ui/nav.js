// Where the console is: the signed-in key, the view and its query (scope, as_of, ...) in the URL.
import { announce, h } from "./dom.js";

export const TITLES = {
  scopes: "Scopes",
  memories: "Memories",
  state: "State",
  audit: "Audit",
  health: "Health",
};

/** The signed-in key (principal, scope_floor, capabilities), the scope tree, the view's scope. */
export const signedIn = { me: null, rootScopes: null, viewScope: null };

let renderer = (_options) => {};

/** The function that renders the page for the current URL (app.js registers it). */
export function setRenderer(render) {
  renderer = render;
}

/** Render the current URL again (after a change on the server, e.g. a forget). */
export function rerender(options) {
  renderer(options);
}

export const can = (capability) => Boolean(signedIn.me && signedIn.me.capabilities.includes(capability));

export const query = () => new URLSearchParams(location.search);

export function viewName() {
  const name = location.pathname.replace(/^\/ui\/?/, "").split("/")[0];
  return name in TITLES ? name : "scopes";
}

/** The URL of `view` with the current query changed by `changes` (null deletes). */
export function urlOf(view, changes = {}, keep = true) {
  const params = keep ? query() : new URLSearchParams();
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") params.delete(name);
    else params.set(name, typeof value === "string" ? value : JSON.stringify(value));
  }
  const text = params.toString();
  return `/ui/${view}${text ? `?${text}` : ""}`;
}

export function navigate(url, { replace = false, focus = true, travel = false } = {}) {
  announce("");
  history[replace ? "replaceState" : "pushState"](null, "", url);
  renderer({ focus, travel });
}

/** The scope of the view being rendered (for links that stay on it). */
export const scopeOfView = () => signedIn.viewScope;

export function currentScope() {
  const text = query().get("scope");
  if (text) {
    try {
      const scope = JSON.parse(text);
      if (scope && typeof scope === "object" && !Array.isArray(scope)) return scope;
    } catch {
      // fall through to the default: the scope field shows what is in use
    }
  }
  if (signedIn.me && Object.keys(signedIn.me.scope_floor).length) return signedIn.me.scope_floor;
  const root = signedIn.rootScopes?.nodes.find((node) => node.parent === null);
  return root ? root.scope : null;
}

/** A link to one memory on the Memories view (at the scope being looked at). */
export function memoryLink(id, scope) {
  return h(
    "a",
    { href: urlOf("memories", { scope, memory: id, q: null, cursor: null }, false), "data-nav": true, "aria-label": `Memory ${id}` },
    h("code", {}, String(id).slice(0, 8)),
  );
}

export function scopeQuery() {
  const params = new URLSearchParams();
  const scope = query().get("scope");
  const asOf = query().get("as_of");
  if (scope) params.set("scope", scope);
  if (asOf) params.set("as_of", asOf);
  const text = params.toString();
  return text ? `?${text}` : "";
}
