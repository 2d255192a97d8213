// Audit: the hash-chain verification, an attribute's history, and who did what.
import { api, onScope } from "./api.js";
import { h, position, scopeLabel, shortId, table, when } from "./dom.js";
import { scopeForm } from "./controls.js";
import { currentScope, memoryLink, navigate, query, urlOf } from "./nav.js";

async function verificationSection() {
  const result = await api("GET", "/v1/log/verification");
  const verdict = result.verified
    ? `Verified: ${result.checked} records in ${result.partitions} partitions; every hash chain holds.`
    : `Broken: ${result.breaks.length} partition(s) fail verification.`;
  return h(
    "section",
    { class: `card verification ${result.verified ? "ok" : "broken"}`, "aria-labelledby": "chain-heading" },
    h("h2", { id: "chain-heading" }, "Hash chain"),
    h("p", { class: "verdict" }, verdict, " Checked at ", when(result.checked_at), "."),
    result.unchained ? h("p", {}, `${result.unchained} records are not chained yet.`) : null,
    result.breaks.length
      ? h("ul", {}, result.breaks.map((b) => h("li", {}, `partition ${b.partition}, offset ${b.offset}: ${b.reason}`)))
      : null,
  );
}

export async function auditView() {
  const scope = currentScope();
  if (!scope) return [h("h1", { tabindex: -1 }, "Audit"), scopeForm("audit", null)];
  const params = query();
  const principal = params.get("principal") || "";
  const entity = params.get("entity") || "";
  const attribute = params.get("attribute") || "";
  const [page, verification, history] = await Promise.all([
    onScope(scope, "GET", "audit", { query: { limit: 200, principal } }),
    verificationSection(),
    entity ? onScope(scope, "GET", "history", { query: { entity, attribute } }) : null,
  ]);
  const field = (id, labelText, value) =>
    h("div", { class: "field" }, h("label", { for: id }, labelText), h("input", { id, name: id, value, spellcheck: "false" }));
  const historyForm = h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        navigate(urlOf("audit", { entity: data.get("entity"), attribute: data.get("attribute") }));
      },
    },
    field("entity", "Entity", entity),
    field("attribute", "Attribute (optional)", attribute),
    h("button", { type: "submit" }, "Show history"),
  );
  const historyRows = (history || []).map((e) =>
    h(
      "tr",
      {},
      h("td", {}, `${e.entity_type}/${e.entity}`),
      h("td", {}, e.key),
      h("td", {}, e.value),
      h("td", {}, e.principal),
      h("td", {}, when(e.recorded_at)),
      h("td", {}, position(e.position)),
      h("td", {}, e.superseded_by ? `${e.superseded_by} (${e.superseded_at ? new Date(e.superseded_at).toISOString().slice(0, 19) : ""})` : "current"),
    ),
  );
  const eventForm = h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        navigate(urlOf("audit", { principal: new FormData(event.target).get("principal") }));
      },
    },
    field("principal", "Writer (principal)", principal),
    h("button", { type: "submit" }, "Filter"),
  );
  const rows = page.items.map((r) =>
    h(
      "tr",
      {},
      h("td", {}, when(r.recorded_at)),
      h("td", {}, r.type),
      h("td", {}, r.principal),
      h("td", {}, scopeLabel(r.scope)),
      h("td", {}, position(r.position)),
      h("td", {}, r.event_id ? (r.type === "MemoryRecorded" && r.summary !== "(content forgotten)" ? memoryLink(r.event_id, scope) : shortId(r.event_id)) : "—"),
      h("td", { class: "summary-cell" }, r.summary),
    ),
  );
  return [
    h("h1", { tabindex: -1 }, `Audit · ${scopeLabel(scope)}`),
    scopeForm("audit", scope),
    verification,
    h(
      "section",
      { class: "card", "aria-labelledby": "history-heading" },
      h("h2", { id: "history-heading" }, "Attribute history"),
      historyForm,
      history
        ? history.length
          ? table(`Every value of ${entity}${attribute ? `.${attribute}` : ""}, oldest first`, ["Entity", "Key", "Value", "Writer", "Logged", "Position", "Superseded by"], historyRows)
          : h("p", { class: "empty" }, `No values recorded for ${entity}.`)
        : null,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "events-heading" },
      h("h2", { id: "events-heading" }, "Who did what"),
      eventForm,
      h("p", { class: "summary" }, `${page.items.length} of ${page.matched} events, newest first.`),
      table("Events visible from this scope", ["Logged", "Event", "Writer", "Scope", "Position", "Event id", "Summary"], rows),
    ),
  ];
}
