// The admin console: sign-in, live snapshot stream (SSE over fetch), pools table and charts.
import { call, clearSession, currentSession, h, readEvents, setupSignIn, signOut } from "./api.js";
import { drawChart } from "./chart.js";
import { setupDesktops, renderDesktops, loadEvents } from "./admin-desktops.js";
import { setupPoolForm, editPool, newPool, setupEntitlements, showEntitlements } from "./admin-pools.js";

const $ = (id) => document.getElementById(id);
const HISTORY = 300; // samples kept per pool (5 min at one per second)
export const state = { pools: [], desktops: [], history: new Map(), stream: null };

export function report(err) {
  $("admin-error").textContent = err ? err.message : "";
  if (err && err.status === 401) showSignIn();
}

function showSignIn() {
  if (state.stream) state.stream.abort();
  clearSession();
  $("sign-in-section").hidden = false;
  $("console-app").hidden = true;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
}

async function showConsole(session) {
  $("sign-in-section").hidden = true;
  $("console-app").hidden = false;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `${session.user.username} (${session.user.tenant})`;
  await Promise.all([setupPoolForm(), setupEntitlements()]).catch(report);
  startStream();
  loadEvents().catch(report);
}

function startStream() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        await readEvents("/stream", (type, data) => type === "snapshot" && applySnapshot(data), controller.signal);
      } catch (err) {
        if (controller.signal.aborted) return;
        if (err.status === 401) return report(err);
        $("live").textContent = "Live updates interrupted; retrying…";
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  };
  run();
}

let lastEvents = 0;
function applySnapshot(data) {
  state.pools = data.pools;
  state.desktops = data.desktops;
  $("live").textContent = `Live: updated ${new Date().toLocaleTimeString()}`;
  sample();
  renderPools();
  renderDesktops();
  syncPoolSelects();
  if (Date.now() - lastEvents > 3000) {
    lastEvents = Date.now();
    loadEvents().catch(report);
  }
}

function sample() {
  const now = Date.now();
  for (const pool of state.pools) {
    const s = pool.status;
    if (!s) continue;
    const series = state.history.get(pool.name) || [];
    series.push({ t: now, ready: s.ready, assigned: s.assigned_connected + s.assigned_disconnected, waiting: s.waiting });
    if (series.length > HISTORY) series.shift();
    state.history.set(pool.name, series);
  }
}

function renderPools() {
  const body = $("pool-table").querySelector("tbody");
  const rows = state.pools.map((pool) => {
    const s = pool.status || {};
    const health = pool.draining ? "draining" : s.provisioning_failing ? `provisioning failing: ${s.provisioning_error || ""}` : "ok";
    const act = (label, fn, cls) => h("button", { type: "button", class: cls, onclick: fn, "aria-label": `${label} ${pool.name}` }, label);
    return h(
      "tr",
      { "data-pool": pool.name },
      h("th", { scope: "row" }, pool.name),
      h("td", {}, `${pool.template} (rev ${s.current_revision ?? "?"})`),
      ...[s.ready, s.provisioning, s.assigned_connected, s.assigned_disconnected, s.waiting].map((v) => h("td", {}, v ?? 0)),
      h("td", {}, `${s.total ?? 0} / ${pool.max_desktops}`),
      h("td", {}, pool.warm_desktops),
      h("td", {}, health),
      h(
        "td",
        {},
        h(
          "div",
          { class: "actions" },
          act("Edit", () => editPool(pool)),
          act("Entitlements", () => showEntitlements(pool.name)),
          act("Desktops", () => showDesktopsOf(pool.name)),
          act("Recreate", () => recreate(pool.name)),
          act("Delete", () => drain(pool.name), "danger"),
        ),
      ),
    );
  });
  body.replaceChildren(...rows);
  const charts = $("charts");
  charts.replaceChildren(...state.pools.map((pool) => drawChart(pool.name, state.history.get(pool.name) || [])));
}

function syncPoolSelects() {
  const names = state.pools.map((p) => p.name);
  for (const id of ["desktop-pool", "event-pool", "ent-pool"]) {
    const select = $(id);
    const current = [...select.options].filter((o) => o.value).map((o) => o.value);
    if (current.join() === names.join()) continue;
    const keep = select.value;
    const first = id === "ent-pool" ? [] : [h("option", { value: "" }, "all pools")];
    select.replaceChildren(...first, ...names.map((n) => h("option", { value: n }, n)));
    select.value = names.includes(keep) ? keep : select.options[0]?.value || "";
    if (id === "ent-pool" && !keep && select.value) showEntitlements(select.value, { focus: false });
  }
}

function showDesktopsOf(name) {
  $("desktop-pool").value = name;
  renderDesktops();
  $("desktops").scrollIntoView();
  $("desktop-pool").focus();
}

async function recreate(name) {
  try {
    const body = await call("POST", `/pools/${encodeURIComponent(name)}/recreate`);
    $("op-status").textContent = `Recreate ${name}: ${body.replaced.length} desktop(s) replaced.`;
  } catch (err) {
    report(err);
  }
}

async function drain(name) {
  if (!window.confirm(`Delete pool ${name}? Assigned desktops finish, then every VM is destroyed.`)) return;
  try {
    await call("DELETE", `/pools/${encodeURIComponent(name)}`);
    $("op-status").textContent = `Pool ${name} is draining.`;
  } catch (err) {
    report(err);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupSignIn($("sign-in"), showConsole, { requireAdmin: true });
  setupDesktops();
  $("new-pool").addEventListener("click", newPool);
  $("sign-out").addEventListener("click", async () => {
    await signOut().catch(() => {});
    showSignIn();
  });
  const session = currentSession();
  if (session && session.user.role === "tenant-admin") showConsole(session);
  else showSignIn();
});
