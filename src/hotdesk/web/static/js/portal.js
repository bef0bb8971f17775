// The user portal: one card per entitled pool, Connect / Disconnect / Release, live countdown.
import { call, clearSession, currentSession, formatSeconds, h, setupSignIn, signOut } from "./api.js";

const POLL_MS = 2000;
const LABELS = {
  unassigned: "Unassigned",
  preparing: "Preparing your desktop",
  ready: "Ready",
  connected: "Connected",
  disconnected: "Disconnected",
  waiting: "Waiting for a desktop",
};
const cards = new Map(); // pool name -> {node, card, deadline}
const wantConsole = new Set(); // pools whose console opens once their desktop is ready
let timer = null;

const $ = (id) => document.getElementById(id);

function announce(text) {
  $("announce").textContent = text;
}

function showError(err) {
  $("portal-error").textContent = err ? `${err.message}` : "";
  if (err && err.status === 401) showSignIn();
}

function showSignIn() {
  clearInterval(timer);
  clearSession();
  cards.clear();
  $("cards").replaceChildren();
  $("sign-in-section").hidden = false;
  $("cards-section").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("username").focus();
}

function showPortal(session) {
  $("sign-in-section").hidden = true;
  $("cards-section").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `Signed in as ${session.user.username} (${session.user.tenant})`;
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, POLL_MS);
}

async function refresh() {
  try {
    const list = await call("GET", "/me/pools");
    showError(null);
    render(list);
  } catch (err) {
    showError(err);
  }
}

function render(list) {
  const seen = new Set();
  for (const card of list) {
    seen.add(card.pool_name);
    update(card);
  }
  for (const [name, entry] of cards) {
    if (!seen.has(name)) {
      entry.node.remove();
      cards.delete(name);
    }
  }
  $("no-cards").hidden = list.length > 0;
}

function build(pool) {
  const id = `pool-${pool.replace(/[^a-zA-Z0-9_-]/g, "_")}`;
  const act = (label, action, cls) =>
    h("button", { type: "button", class: cls, "data-action": action, onclick: () => run(pool, action) }, label);
  const node = h(
    "li",
    { class: "card", "data-pool": pool, "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, pool),
    h("p", { class: "state", "data-field": "state" }),
    h("p", { class: "desktop", "data-field": "desktop" }),
    h("progress", { max: "100", "data-field": "progress", hidden: true, "aria-label": `${pool} progress` }),
    h("p", { class: "detail", "data-field": "detail" }),
    h(
      "div",
      { class: "actions" },
      act("Connect", "connect", "primary"),
      act("Open console", "console", "primary"),
      act("Disconnect", "disconnect"),
      act("Release", "release", "danger"),
      act("Leave queue", "cancel"),
    ),
  );
  $("cards").append(node);
  const entry = { node, card: null, deadline: null };
  cards.set(pool, entry);
  return entry;
}

function update(card) {
  const entry = cards.get(card.pool_name) || build(card.pool_name);
  const previous = entry.card;
  entry.card = card;
  entry.deadline = card.seconds_left == null ? null : Date.now() + card.seconds_left * 1000;
  const node = entry.node;
  const field = (name) => node.querySelector(`[data-field="${name}"]`);
  node.dataset.state = card.state;
  field("state").textContent = LABELS[card.state] || card.state;
  field("desktop").textContent = card.desktop ? `Desktop: ${card.desktop.name}` : "";
  const progress = field("progress");
  progress.hidden = card.state !== "preparing";
  if (card.progress) progress.value = card.progress.percent || 0;
  field("detail").textContent = detail(entry);
  const show = {
    connect: ["unassigned", "disconnected"].includes(card.state),
    console: ["connected", "ready"].includes(card.state),
    disconnect: card.state === "connected",
    release: ["ready", "connected", "disconnected", "preparing"].includes(card.state),
    cancel: card.state === "waiting",
  };
  for (const button of node.querySelectorAll("button[data-action]")) {
    button.hidden = !show[button.dataset.action];
  }
  if (!previous || previous.state !== card.state) {
    announce(`${card.pool_name}: ${LABELS[card.state] || card.state}`);
  } else if (card.state === "waiting" && previous.position !== card.position) {
    announce(`${card.pool_name}: you are number ${card.position} in the queue`);
  }
  if (wantConsole.has(card.pool_name) && ["ready", "connected"].includes(card.state)) {
    wantConsole.delete(card.pool_name);
    openConsole(card.desktop.id);
  }
}

function detail(entry) {
  const card = entry.card;
  if (card.state === "preparing" && card.progress) {
    const error = card.progress.last_error ? ` (retrying: ${card.progress.last_error})` : "";
    return `${card.progress.stage}${error}`;
  }
  if (card.state === "waiting") {
    return `The pool is full. You are number ${card.position} of ${card.waiting} in the queue.`;
  }
  if (card.state === "disconnected" && entry.deadline) {
    const left = (entry.deadline - Date.now()) / 1000;
    return `Kept for ${formatSeconds(left)} more, then destroyed. Connect to continue.`;
  }
  if (card.state === "connected") return `If you leave, the desktop is kept for ${formatSeconds(card.retention_seconds)}.`;
  if (card.state === "ready") return "Your desktop is ready: open its console.";
  return `Connect to get a fresh desktop. It is kept ${formatSeconds(card.retention_seconds)} after you leave.`;
}

function tick() {
  for (const entry of cards.values()) {
    if (entry.card && entry.card.state === "disconnected") {
      entry.node.querySelector('[data-field="detail"]').textContent = detail(entry);
    }
  }
}

async function run(pool, action) {
  const entry = cards.get(pool);
  if (action === "console") {
    openConsole(entry.card.desktop.id);
    return;
  }
  // Open the tab while the click still counts as a user gesture (popup blockers).
  const tab = action === "connect" ? window.open("", `hotdesk-${pool}`) : null;
  try {
    const card = await call("POST", `/me/pools/${encodeURIComponent(pool)}/${action}`);
    showError(null);
    if (action === "connect") {
      if (card.desktop && ["connected", "ready"].includes(card.state)) {
        openConsole(card.desktop.id, tab);
      } else {
        if (tab) tab.close();
        wantConsole.add(pool);
      }
    }
    update(card);
  } catch (err) {
    if (tab) tab.close();
    showError(err);
  }
}

function openConsole(desktopId, tab = null) {
  const url = `/console/${encodeURIComponent(desktopId)}`;
  if (tab) tab.location.href = url;
  else window.open(url, `hotdesk-console-${desktopId}`);
}

document.addEventListener("DOMContentLoaded", () => {
  setupSignIn($("sign-in"), showPortal);
  $("sign-out").addEventListener("click", async () => {
    await signOut().catch(() => {});
    showSignIn();
  });
  setInterval(tick, 1000);
  const session = currentSession();
  if (session) showPortal(session);
  else showSignIn();
});
