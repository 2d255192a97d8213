// Health: projection lag per partition, pending embeddings, dead letters (retry with admin).
import { api } from "./api.js";
import { announce, h, showProblem, table, when } from "./dom.js";
import { can, rerender, signedIn } from "./nav.js";

export async function healthView() {
  const status = await api("GET", "/v1/status");
  const rows = status.partitions.map((p) =>
    h("tr", { class: p.lag ? "lagging" : "" }, h("td", {}, String(p.partition)), h("td", {}, String(p.log_end)), h("td", {}, String(p.projected)), h("td", {}, String(p.lag))),
  );
  const lag = status.partitions.reduce((sum, p) => sum + p.lag, 0);
  let letters;
  if (can("admin") && Object.keys(signedIn.me.scope_floor).length === 0) {
    const found = await api("GET", "/v1/dead-letters");
    const retry = async (position) => {
      try {
        const outcome = await api("POST", "/v1/dead-letters/retry", { body: position || {} });
        announce(`Revived ${outcome.revived.length}; still dead ${Object.keys(outcome.kept).length}.`);
        rerender({ focus: false });
      } catch (error) {
        showProblem(error);
      }
    };
    letters = found.length
      ? [
          table(
            "Dead letters",
            ["Position", "Logged", "Reason", "Bytes", "Starts with", "Action"],
            found.map((d) =>
              h(
                "tr",
                {},
                h("td", {}, `${d.partition}:${d.offset}`),
                h("td", {}, when(d.recorded_at)),
                h("td", {}, d.reason),
                h("td", {}, String(d.size)),
                h("td", {}, h("code", {}, d.preview)),
                h("td", {}, h("button", { type: "button", "aria-label": `Retry dead letter ${d.partition}:${d.offset}`, onclick: () => retry({ partition: d.partition, offset: d.offset }) }, "Retry")),
              ),
            ),
          ),
          h("button", { type: "button", onclick: () => retry(null) }, "Retry all dead letters"),
        ]
      : h("p", { class: "empty" }, "No dead letters.");
  } else {
    letters = h("p", {}, "Listing and retrying dead letters needs an admin key whose floor is every scope ({}).");
  }
  return [
    h("h1", { tabindex: -1 }, "Health"),
    h(
      "ul",
      { class: "stats" },
      h("li", { class: "card" }, h("span", { class: "big" }, String(lag)), " events behind"),
      h("li", { class: "card" }, h("span", { class: "big" }, String(status.pending_embeddings)), " pending embeddings"),
      h("li", { class: `card ${status.dead_letters ? "bad" : ""}` }, h("span", { class: "big" }, String(status.dead_letters)), " dead letters"),
      h("li", { class: "card" }, h("span", { class: "big" }, String(status.memories)), " memories"),
    ),
    table("Projection lag per partition", ["Partition", "Log end", "Projected", "Lag"], rows),
    h("button", { type: "button", onclick: () => rerender({ focus: false }) }, "Refresh"),
    h("section", { class: "card", "aria-labelledby": "dlq-heading" }, h("h2", { id: "dlq-heading" }, `Dead letters (${status.dead_letters})`), letters),
  ];
}
