// The REST API from the browser: the signed-in session (sessionStorage), JSON calls, errors.
const KEY = "hotdesk.session";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.field = body ? body.field : null;
    this.errors = body ? body.errors : null;
  }
}

export function currentSession() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

export async function signIn(tenant, username, password) {
  const body = await call("POST", "/auth/login", { tenant, username, password }, null);
  const session = { token: body.token, user: body.user };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export async function signOut() {
  try {
    await call("POST", "/auth/logout");
  } finally {
    clearSession();
  }
}

// Call /api/v1 with the session's bearer token; throws ApiError (401 also forgets the session).
export async function call(method, path, body, token = currentSession()?.token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!response.ok) {
    if (response.status === 401 && token) clearSession();
    throw new ApiError(response.status, data);
  }
  return data;
}

// Server-sent events read with fetch (so the token goes in a header, not the URL).
export async function readEvents(path, onEvent, signal) {
  const token = currentSession()?.token;
  const response = await fetch(`/api/v1${path}`, {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
    signal,
  });
  if (!response.ok) throw new ApiError(response.status, null);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = { type: "message", data: "" };
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event.type = line.slice(6).trim();
        else if (line.startsWith("data:")) event.data += line.slice(5).trim();
      }
      if (event.data) onEvent(event.type, JSON.parse(event.data));
    }
  }
}

// A small element builder: h("button", {class: "x", onclick: f}, "text", child...).
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// 1799 -> "29 min 59 s", 7260 -> "2 h 01 min".
export function formatSeconds(total) {
  const s = Math.max(0, Math.round(total));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;
  if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
  if (minutes) return `${minutes} min ${String(seconds).padStart(2, "0")} s`;
  return `${seconds} s`;
}

// Wire a sign-in form (tenant, username, password) to signIn; calls done(session).
export function setupSignIn(form, done, { requireAdmin = false } = {}) {
  const error = form.querySelector("[data-error]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    try {
      const session = await signIn(
        String(data.get("tenant") || "default"),
        String(data.get("username")),
        String(data.get("password")),
      );
      if (requireAdmin && session.user.role !== "tenant-admin") {
        clearSession();
        throw new Error("this account is not a tenant administrator");
      }
      form.reset();
      done(session);
    } catch (err) {
      error.textContent = `Sign-in failed: ${err.message}`;
    }
  });
}
