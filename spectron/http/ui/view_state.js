// State: entities, attributes as timelines of values (who, when, which memory), conflicts first.
import { onScope } from "./api.js";
import { h, scopeLabel, when } from "./dom.js";
import { logTimes, scopeForm, viewHeader } from "./controls.js";
import { currentScope, memoryLink, query, scopeOfView } from "./nav.js";

/** The scope a value was asserted at (an entity seen from several scopes carries it per value). */
const scopeOf = (attr, entity) => attr.scope || entity.scope;

/** Chains by key and scope (values supersede one another within a scope), each in log order. */
function chains(entity) {
  const byKey = new Map();
  for (const attr of entity.attributes) {
    const id = `${attr.key}\u0000${JSON.stringify(scopeOf(attr, entity))}`;
    const list = byKey.get(id) || [];
    list.push(attr);
    byKey.set(id, list);
  }
  return [...byKey.values()].map((values) => {
    values.sort((a, b) => (a.recorded_at < b.recorded_at ? -1 : a.recorded_at > b.recorded_at ? 1 : 0));
    return {
      key: values[0].key,
      scope: scopeOf(values[0], entity),
      values,
      multi: values.some((v) => v.cardinality === "multi"),
    };
  });
}

/** Scopes whose current values of one key differ (sent by servers that merge an entity's scopes). */
function disagreementLine(entity, disagreement) {
  return h(
    "li",
    { class: "conflict" },
    h("strong", {}, `${entity.name} · ${disagreement.key}: `),
    h("span", { class: "change" }, "scopes disagree"),
    h(
      "ul",
      {},
      disagreement.values.map((v) =>
        h("li", {}, `${v.value} at ${scopeLabel(v.scope)} by ${v.principal}, `, when(v.recorded_at)),
      ),
    ),
  );
}

function conflictLine(entity, chain) {
  const current = chain.values.filter((v) => !v.superseded_by).at(-1);
  const previous = chain.values.filter((v) => v.superseded_by && current && v.superseded_by.memory_id === current.memory_id).at(-1);
  if (!current || !previous) return null;
  return h(
    "li",
    { class: "conflict" },
    h("strong", {}, `${entity.name} · ${chain.key}: `),
    h("span", { class: "change" }, `was ${previous.value} → now ${current.value}`),
    h(
      "span",
      { class: "by" },
      ` — ${current.value} by ${current.principal} at `,
      when(current.recorded_at),
      `; ${previous.value} by ${previous.principal} at `,
      when(previous.recorded_at),
    ),
  );
}

function timeline(entity, chain, label) {
  return h(
    "ol",
    { class: "timeline", "aria-label": label },
    chain.values.map((value) =>
      h(
        "li",
        { class: value.superseded_by && !chain.multi ? "superseded" : "current" },
        h("span", { class: "value" }, value.value),
        h("span", { class: "tag" }, chain.multi ? "one of several" : value.superseded_by ? "superseded" : "current"),
        h(
          "span",
          { class: "meta" },
          `${value.principal} · ${scopeLabel(scopeOf(value, entity))} · `,
          when(value.recorded_at),
          " · memory ",
          memoryLink(value.memory_id, scopeOfView()),
        ),
      ),
    ),
  );
}

export async function stateView() {
  const scope = currentScope();
  if (!scope) return [h("h1", { tabindex: -1 }, "State"), scopeForm("state", null)];
  const asOf = query().get("as_of") || undefined;
  const [events, state] = await Promise.all([logTimes(scope), onScope(scope, "GET", "state", { query: { as_of: asOf } })]);
  const conflicts = [];
  const entities = state.entities.map((entity) => {
    const keyed = chains(entity);
    const scopes = entity.scopes || [entity.scope];
    for (const chain of keyed) {
      if (!chain.multi) {
        const line = conflictLine(entity, chain);
        if (line) conflicts.push(line);
      }
    }
    for (const disagreement of entity.disagreements || []) conflicts.push(disagreementLine(entity, disagreement));
    return h(
      "article",
      { class: "entity card" },
      h("h3", {}, `${entity.type}: ${entity.name}`),
      h("p", { class: "scope" }, scopes.map(scopeLabel).join("; ")),
      keyed.length
        ? h(
            "dl",
            { class: "attributes" },
            keyed.map((chain) => {
              // the scope is named only where one entity's values come from several scopes
              const where = scopes.length > 1 ? ` at ${scopeLabel(chain.scope)}` : "";
              return [
                h("dt", {}, chain.key + where),
                h("dd", {}, timeline(entity, chain, `History of ${entity.name} ${chain.key}${where}`)),
              ];
            }),
          )
        : null,
      entity.relations.length
        ? h(
            "ul",
            { class: "relations", "aria-label": `Relations of ${entity.name}` },
            entity.relations.map((r) =>
              h("li", {}, `${r.subject} → ${r.predicate} → ${r.object_type}/${r.object} (${r.principal}, `, when(r.recorded_at), ")"),
            ),
          )
        : null,
    );
  });
  return [
    ...viewHeader("state", scope, events),
    state.pending ? h("p", { class: "pending" }, `${state.pending} memories still await their facts.`) : null,
    h(
      "section",
      { class: "card", "aria-labelledby": "conflicts-heading" },
      h("h2", { id: "conflicts-heading" }, `Superseded values and disagreements (${conflicts.length})`),
      conflicts.length ? h("ul", { class: "conflicts" }, conflicts) : h("p", { class: "empty" }, "No value was superseded; no scopes disagree."),
    ),
    h("h2", {}, `Entities (${state.entities.length})`),
    state.entities.length ? h("div", { class: "entities" }, entities) : h("p", { class: "empty" }, "No entities known here."),
  ];
}
