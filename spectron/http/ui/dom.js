// DOM helpers shared by every view: elements from text (never HTML), tables, times, notices.
import { ApiError } from "./api.js";

/** An element: attributes (on* are listeners, true is a bare attribute) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const $ = (selector) => document.querySelector(selector);

export function scopeLabel(scope) {
  const parts = Object.entries(scope).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(" / ") : "every scope";
}

export function isWithin(inner, outer) {
  return Object.entries(outer).every(([k, v]) => inner[k] === v);
}

/** A log time for people: UTC to the second (the full value in a tooltip). */
export function when(iso) {
  const text = new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  return h("time", { datetime: iso, title: iso }, text);
}

/** A log position as "partition:offset" (the API sends it as a [partition, offset] pair). */
export function position(at) {
  return Array.isArray(at) ? `${at[0]}:${at[1]}` : `${at.partition}:${at.offset}`;
}

export function shortId(id) {
  return h("code", { title: id }, String(id).slice(0, 8));
}

/** A table (stacked as labelled rows on a phone; see style.css), reachable by keyboard. */
export function table(caption, headers, rows) {
  for (const row of rows) {
    [...row.children].forEach((cell, i) => cell.setAttribute("data-label", headers[i] ?? ""));
  }
  return h(
    "div",
    { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((head) => h("th", { scope: "col" }, head)))),
      h("tbody", {}, rows),
    ),
  );
}

export function announce(text) {
  const status = $("#status");
  if (status) status.textContent = text;
}

export function showProblem(error) {
  const box = $("#problem");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const problem = error instanceof ApiError ? error.problem : { detail: String(error) };
  box.hidden = false;
  box.textContent = `${problem.title || "Error"}: ${problem.detail || ""}`;
}
