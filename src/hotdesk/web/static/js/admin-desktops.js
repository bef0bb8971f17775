// Desktops with every O1 operation, the console log, and the event/audit log with filters (O2).
import { call, h } from "./api.js";
import { report, state } from "./admin.js";

const $ = (id) => document.getElementById(id);
const OPERATIONS = [
  ["Power on", "power-on"],
  ["Power off", "power-off"],
  ["Restart", "restart"],
  ["Force restart", "force-restart"],
  ["Console log", "console-log"],
];

export function setupDesktops() {
  $("desktop-pool").addEventListener("change", renderDesktops);
  $("event-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadEvents().catch(report);
  });
}

export function renderDesktops() {
  const pool = $("desktop-pool").value;
  const rows = state.desktops.filter((d) => !pool || d.pool === pool).map(desktopRow);
  const body = $("desktop-table").querySelector("tbody");
  // Keep keyboard focus on the same button across live updates.
  const focused = document.activeElement;
  const key = focused && focused.dataset ? focused.dataset.key : null;
  body.replaceChildren(...rows);
  if (key) body.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 9 }, "No desktops.")));
}

function desktopRow(d) {
  const button = (label, fn, cls) =>
    h("button", { type: "button", class: cls, onclick: fn, "data-key": `${d.id}:${label}`, "aria-label": `${label} ${d.name}` }, label);
  const until = d.retention_deadline ? new Date(d.retention_deadline).toLocaleTimeString() : "";
  return h(
    "tr",
    { "data-desktop": d.id, "data-name": d.name },
    h("th", { scope: "row" }, d.display_name, h("br"), h("small", {}, d.name)),
    h("td", {}, d.pool || ""),
    h("td", { "data-field": "state" }, d.state, d.last_error ? h("br") : null, d.last_error ? h("small", { class: "error" }, d.last_error) : null),
    h("td", {}, d.power_state || ""),
    h("td", {}, d.user || ""),
    h("td", {}, d.template_revision ?? ""),
    h("td", {}, [d.host, d.datastore].filter(Boolean).join(" / ")),
    h("td", {}, until),
    h(
      "td",
      {},
      h(
        "div",
        { class: "actions" },
        button("Console", () => window.open(`/console/${encodeURIComponent(d.id)}?as=admin`, `hotdesk-admin-${d.id}`), "primary"),
        ...OPERATIONS.map(([label, kind]) => button(label, () => operate(d, kind))),
        d.user ? button("Release now", () => destroy(d, "release"), "danger") : null,
        button("Delete", () => destroy(d, "delete"), "danger"),
      ),
    ),
  );
}

async function operate(desktop, kind) {
  const status = $("op-status");
  status.textContent = `${kind} on ${desktop.name}: requested…`;
  try {
    let op = await call("POST", `/desktops/${encodeURIComponent(desktop.id)}/operations`, { kind });
    for (let i = 0; i < 120 && ["pending", "running"].includes(op.state); i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      op = await call("GET", `/operations/${op.id}`);
      status.textContent = `${kind} on ${desktop.name}: ${op.state}…`;
    }
    status.textContent = `${kind} on ${desktop.name}: ${op.state}${op.state === "failed" ? ` (${op.result})` : ""}`;
    if (kind === "console-log") showLog(desktop, op);
  } catch (err) {
    status.textContent = `${kind} on ${desktop.name} failed: ${err.message}`;
  }
}

function showLog(desktop, op) {
  const title = $("log-title");
  const log = $("console-log");
  title.hidden = false;
  log.hidden = false;
  title.textContent = `Console log of ${desktop.name}`;
  log.textContent = op.result || "(empty)";
  log.scrollTop = log.scrollHeight;
}

async function destroy(desktop, how) {
  const force = $("force").checked;
  const what = how === "release" ? "Release (destroy now, skipping retention)" : "Delete";
  if (!window.confirm(`${what} ${desktop.name}?`)) return;
  try {
    if (how === "release") await call("POST", `/desktops/${encodeURIComponent(desktop.id)}/release`, { force });
    else await call("DELETE", `/desktops/${encodeURIComponent(desktop.id)}?force=${force}`);
    $("op-status").textContent = `${desktop.name}: ${how === "release" ? "released" : "deleted"}.`;
  } catch (err) {
    $("op-status").textContent = `${desktop.name}: ${err.message}`;
  }
}

export async function loadEvents() {
  const form = $("event-filters");
  const params = new URLSearchParams();
  for (const key of ["pool", "desktop", "limit"]) {
    const value = form.elements[key].value.trim();
    if (value) params.set(key, value);
  }
  const kind = form.elements.kind.value.trim();
  const events = await call("GET", `/events?${params}`);
  const rows = events
    .filter((e) => !kind || e.kind.includes(kind))
    .map((e) =>
      h(
        "tr",
        {},
        h("td", {}, new Date(e.at).toLocaleString()),
        h("td", {}, e.actor),
        h("td", {}, e.kind),
        h("td", {}, e.pool || ""),
        h("td", {}, e.desktop_id ? e.desktop_id.slice(0, 8) : ""),
        h("td", {}, e.from_state || e.to_state ? `${e.from_state || "–"} → ${e.to_state || "–"}` : ""),
        h("td", {}, e.reason),
      ),
    );
  $("event-table").querySelector("tbody").replaceChildren(...rows);
}
