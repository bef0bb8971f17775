// The console page: a single-use ticket, then noVNC's RFB over the broker's websocket proxy.
import { call, currentSession } from "./api.js";

const body = document.body;
const desktopId = body.dataset.desktop;
const asAdmin = new URLSearchParams(location.search).get("as") === "admin";
const $ = (id) => document.getElementById(id);
let rfb = null;

function status(text, state) {
  $("status").textContent = text;
  if (state) body.dataset.state = state;
}

function session() {
  const own = currentSession();
  if (own || !window.opener) return own;
  try {
    // A tab opened by the portal shares its origin: borrow the signed-in session.
    const raw = window.opener.sessionStorage.getItem("hotdesk.session");
    if (raw) sessionStorage.setItem("hotdesk.session", raw);
    return currentSession();
  } catch {
    return null;
  }
}

async function ticket() {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("ticket");
  if (fromUrl) {
    history.replaceState(null, "", location.pathname + location.search); // single use anyway
    return fromUrl;
  }
  if (!session()) throw new Error("sign in on the portal first");
  const path = asAdmin ? "" : "/me";
  const issued = await call("POST", `${path}/desktops/${encodeURIComponent(desktopId)}/console-ticket`);
  return issued.ticket;
}

async function connect() {
  $("reconnect").hidden = true;
  status("Connecting…", "connecting");
  let value;
  try {
    value = await ticket();
  } catch (err) {
    status(`Cannot open the console: ${err.message}`, "failed");
    $("reconnect").hidden = false;
    return;
  }
  const { default: RFB } = await import("/static/novnc/core/rfb.js");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/api/v1/console/ws?ticket=${encodeURIComponent(value)}`;
  rfb = new RFB($("screen"), url, { shared: true });
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => {
    status("Connected. Click the screen to type.", "connected");
    $("cad").disabled = false;
    rfb.focus();
  });
  rfb.addEventListener("disconnect", (event) => {
    const clean = event.detail && event.detail.clean;
    status(clean ? "The session ended." : "The connection was lost.", "disconnected");
    $("cad").disabled = true;
    $("reconnect").hidden = false;
    rfb = null;
  });
  rfb.addEventListener("desktopname", (event) => {
    $("title").textContent = event.detail.name;
    document.title = `${event.detail.name} — hotdesk`;
  });
  rfb.addEventListener("credentialsrequired", () => status("The desktop asks for a password.", "failed"));
  window.hotdeskConsole = { get rfb() { return rfb; } };
}

document.addEventListener("DOMContentLoaded", () => {
  $("cad").addEventListener("click", () => rfb && rfb.sendCtrlAltDel());
  $("fullscreen").addEventListener("click", () => $("screen").requestFullscreen?.());
  $("reconnect").addEventListener("click", connect);
  $("close").addEventListener("click", () => {
    if (rfb) rfb.disconnect();
    window.close();
  });
  if (body.dataset.novnc !== "true") {
    status("The console viewer (noVNC) is not installed on the broker: run scripts/setup-web.sh.", "failed");
    return;
  }
  connect();
});
