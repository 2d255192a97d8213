// Scopes: the scope tree visible from the key's floor, with counts per scope, category and writer.
import { api } from "./api.js";
import { h, scopeLabel } from "./dom.js";
import { TITLES, signedIn, urlOf } from "./nav.js";

export async function scopesView() {
  const tree = await api("GET", "/v1/scopes");
  signedIn.rootScopes = tree;
  const children = new Map();
  for (const node of tree.nodes) {
    const siblings = children.get(node.parent) || [];
    siblings.push(node);
    children.set(node.parent, siblings);
  }
  const counts = (map) =>
    Object.entries(map)
      .map(([name, n]) => `${name} ${n}`)
      .join(", ");
  const branch = (parent) => {
    const nodes = children.get(parent) || [];
    if (!nodes.length) return null;
    return h(
      "ul",
      { class: parent === null ? "tree" : "subtree" },
      nodes.map((node) => {
        const label = scopeLabel(node.scope);
        // a scope above the key's floor is listed (its memories are in view) but cannot be opened
        const opens = Object.entries(signedIn.me.scope_floor).every(([name, value]) => node.scope[name] === value);
        const link = (view) =>
          h("a", { href: urlOf(view, { scope: node.scope }, false), "data-nav": true, "aria-label": `${TITLES[view]} at ${label}` }, TITLES[view]);
        return h(
          "li",
          {},
          h(
            "div",
            { class: "node card" },
            h("h2", { class: "scope-name" }, label),
            h("p", { class: "count" }, `${node.memories} ${node.memories === 1 ? "memory" : "memories"} here`),
            h(
              "dl",
              { class: "facts" },
              h("dt", {}, "Categories"),
              h("dd", {}, counts(node.by_category)),
              h("dt", {}, "Writers"),
              h("dd", {}, counts(node.by_principal)),
            ),
            opens
              ? h("p", { class: "links" }, link("memories"), link("state"), link("audit"))
              : h("p", { class: "links" }, "Above your key's floor: open it from a scope at or below the floor."),
          ),
          branch(node.key),
        );
      }),
    );
  };
  return [
    h("h1", { tabindex: -1 }, "Scopes"),
    h("p", {}, `Scopes holding memories visible from your key's floor (${scopeLabel(tree.root)}). A scope sees its parents' memories and its sub-scopes'.`),
    tree.nodes.length ? branch(null) : h("p", { class: "empty" }, "No memories yet."),
  ];
}
