// Controls shared by the scoped views: the scope field and time travel (as-of input and slider).
import { onScope } from "./api.js";
import { h, scopeLabel, showProblem } from "./dom.js";
import { TITLES, navigate, query, urlOf } from "./nav.js";

export function scopeForm(view, scope) {
  const input = h("input", {
    id: "scope-input",
    name: "scope",
    value: scope ? JSON.stringify(scope) : "",
    spellcheck: "false",
    placeholder: '{"org":"acme","project":"alpha"}',
    required: true,
  });
  return h(
    "form",
    {
      class: "scope-form",
      onsubmit: (event) => {
        event.preventDefault();
        try {
          const value = JSON.parse(input.value);
          navigate(urlOf(view, { scope: value, as_of: null, cursor: null }));
        } catch {
          showProblem(new Error(`the scope must be a JSON object, e.g. {"org":"acme"}`));
        }
      },
    },
    h("label", { for: "scope-input" }, "Scope (JSON)"),
    input,
    h("button", { type: "submit" }, "Open scope"),
  );
}

// the slider's events, per scope: read again on every render except the slider's and the
// date-time input's own (moving through time must not re-read the log at each step)
const eventCache = new Map();
let reuseEvents = false;

/** Whether the next render only moves through time (and may reuse the scope's events). */
export function travelling(travel) {
  reuseEvents = travel;
}

/** Log events visible from the scope (ascending; the newest 1000), for the as-of slider. */
export async function logTimes(scope) {
  const key = JSON.stringify(scope);
  if (!reuseEvents || !eventCache.has(key)) {
    const loading = onScope(scope, "GET", "audit", { query: { limit: 1000 } }).then((page) =>
      page.items
        .filter((record) => record.event_id !== null)
        .sort((a, b) => (a.recorded_at < b.recorded_at ? -1 : a.recorded_at > b.recorded_at ? 1 : 0)),
    );
    eventCache.set(key, loading);
    loading.catch(() => eventCache.delete(key));
  }
  return eventCache.get(key);
}

function localInputValue(iso) {
  // datetime-local shows local time; keep milliseconds so a chosen moment survives a round trip
  const date = new Date(iso);
  const offset = date.getTimezoneOffset() * 60_000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 23);
}

function describe(record) {
  return `${record.type} by ${record.principal}${record.summary ? `: ${record.summary}` : ""}`;
}

/** The time-travel control: a date-time input and a slider over the scope's log events. */
export function asOfControl(view, events) {
  const asOf = query().get("as_of");
  const index = asOf
    ? events.reduce((found, record, i) => (record.recorded_at <= asOf ? i : found), -1)
    : events.length;
  const at = Math.max(index, 0);
  const label = !asOf
    ? "Now: the latest state"
    : index < 0
      ? "before this scope's first event"
      : `after ${describe(events[index])}`;
  const output = h("output", { id: "as-of-output", for: "as-of-range" }, asOf ? `As of ${asOf}` : "Now");
  const detail = asOf ? [" · ", label] : ": the latest state";
  let pending = null;
  const range = h("input", {
    type: "range",
    id: "as-of-range",
    min: 0,
    max: events.length,
    step: 1,
    value: at,
    "aria-valuetext": asOf ? `${asOf}, ${label}` : label,
    oninput: (event) => {
      const i = Number(event.target.value);
      const chosen = i >= events.length ? null : events[i].recorded_at;
      output.textContent = chosen ? `As of ${chosen}` : "Now";
      clearTimeout(pending);
      pending = setTimeout(
        () => navigate(urlOf(view, { as_of: chosen, cursor: null }), { replace: true, focus: false, travel: true }),
        120,
      );
    },
  });
  const picker = h("input", {
    type: "datetime-local",
    id: "as-of-time",
    step: "0.001",
    value: asOf ? localInputValue(asOf) : "",
    onchange: (event) => {
      const value = event.target.value;
      const chosen = value ? new Date(value).toISOString() : null;
      navigate(urlOf(view, { as_of: chosen, cursor: null }), { replace: true, focus: false, travel: true });
    },
  });
  return h(
    "section",
    { class: "as-of card", "aria-labelledby": "as-of-heading" },
    h("h2", { id: "as-of-heading" }, "Time travel"),
    h(
      "div",
      { class: "as-of-row" },
      h("label", { for: "as-of-time" }, "As of (your local time)"),
      picker,
      h(
        "button",
        {
          type: "button",
          disabled: !asOf,
          onclick: () => navigate(urlOf(view, { as_of: null, cursor: null }), { replace: true }),
        },
        "Now",
      ),
    ),
    h(
      "div",
      { class: "as-of-row" },
      h("label", { for: "as-of-range" }, `Log events (${events.length})`),
      range,
    ),
    h("p", { class: "as-of-now", id: "as-of-label" }, output, detail),
  );
}

export function viewHeader(view, scope, events) {
  return [
    h("h1", { tabindex: -1 }, `${TITLES[view]}${scope ? ` · ${scopeLabel(scope)}` : ""}`),
    scopeForm(view, scope),
    events ? asOfControl(view, events) : null,
  ];
}
