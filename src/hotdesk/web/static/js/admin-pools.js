// Pool editor (P1, P2: the API's 422 {detail, field} shown at the field) and entitlements (C1).
import { call, h } from "./api.js";
import { report } from "./admin.js";

const $ = (id) => document.getElementById(id);
const FIELDS = [
  { name: "name", label: "Name", required: true },
  { name: "provider", label: "Provider", type: "select" },
  { name: "template", label: "Template", type: "select" },
  { name: "max_desktops", label: "Maximum desktops", type: "number", value: "4" },
  { name: "warm_desktops", label: "Warm (pre-created) desktops", type: "number", value: "1" },
  { name: "retention", label: "Disconnected retention (ISO 8601, e.g. PT30M)", value: "PT30M" },
  { name: "name_pattern", label: "VM name pattern (with {SEQUENCE})", value: "desktop-{SEQUENCE}" },
  { name: "sequence_start", label: "Sequence starts at", type: "number", value: "1" },
  { name: "display_name_pattern", label: "Display name pattern (optional)" },
  { name: "provision_concurrency", label: "Provisioning concurrency", type: "number", value: "2" },
  { name: "network", label: "Network (optional)" },
  { name: "target", label: "Target cluster/host (optional)" },
  { name: "datastores", label: "Datastores (comma-separated, optional)" },
  { name: "login_on_assignment", label: "Log the user in on assignment", type: "checkbox" },
  {
    name: "permissions",
    label: "Permissions: one rule per line, e.g. “role user: accessConsole, restart” or “user bob: start”",
    type: "textarea",
  },
];
let editing = null; // pool name being edited, or null for a new pool
let templates = [];

export async function setupPoolForm() {
  const form = $("pool-form");
  if (!form.dataset.ready) {
    form.dataset.ready = "1";
    const status = form.querySelector("#pool-form-ok");
    for (const field of FIELDS) status.before(fieldNode(field));
    status.after(
      h("div", { class: "actions wide" },
        h("button", { type: "submit", class: "primary", id: "pool-submit" }, "Create pool"),
        h("button", { type: "button", onclick: newPool }, "Clear")),
    );
    form.addEventListener("submit", submit);
    form.elements.template.addEventListener("change", showRevision);
  }
  const [providers, tpls] = await Promise.all([call("GET", "/providers"), call("GET", "/templates")]);
  templates = tpls;
  fillSelect(form.elements.provider, providers.map((p) => [p.name, `${p.name} (${p.kind})`]));
  fillSelect(form.elements.template, tpls.map((t) => [t.name, t.name]));
  showRevision();
}

function fieldNode(field) {
  const id = `pool-${field.name}`;
  const described = `${id}-error`;
  const common = { id, name: field.name, "aria-describedby": described };
  let input;
  if (field.type === "select") input = h("select", common);
  else if (field.type === "textarea") input = h("textarea", { ...common, rows: 3 });
  else if (field.type === "checkbox") input = h("input", { ...common, type: "checkbox" });
  else input = h("input", { ...common, type: field.type === "number" ? "number" : "text", value: field.value, required: field.required });
  const extra = field.name === "template" ? h("span", { id: "template-revision", class: "hint" }) : null;
  return h("div", { class: `field${field.type === "textarea" ? " wide" : ""}` },
    h("label", { for: id }, field.label), input, extra,
    h("p", { class: "field-error", id: described, "data-field-error": field.name }));
}

function fillSelect(select, options) {
  const keep = select.value;
  select.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
  if (keep) select.value = keep;
}

function showRevision() {
  const form = $("pool-form");
  const tpl = templates.find((t) => t.name === form.elements.template.value);
  $("template-revision").textContent = tpl ? `current revision: ${tpl.current_revision ?? "none"}` : "";
}

export function newPool() {
  editing = null;
  const form = $("pool-form");
  form.reset();
  form.elements.name.disabled = false;
  $("pool-editor-title").textContent = "New pool";
  $("pool-submit").textContent = "Create pool";
  clearErrors();
  $("pool-form-ok").textContent = "";
  $("pool-editor").scrollIntoView();
  form.elements.name.focus();
}

export function editPool(pool) {
  editing = pool.name;
  const form = $("pool-form");
  clearErrors();
  $("pool-form-ok").textContent = "";
  for (const field of FIELDS) {
    const input = form.elements[field.name];
    const value = pool[field.name];
    if (field.type === "checkbox") input.checked = Boolean(value);
    else if (field.name === "datastores") input.value = (value || []).join(", ");
    else if (field.name === "permissions") input.value = (value || []).map(ruleText).join("\n");
    else input.value = value ?? "";
  }
  form.elements.name.disabled = true;
  const revision = pool.status ? pool.status.current_revision : null;
  $("pool-editor-title").textContent = `Edit pool ${pool.name} (template revision ${revision ?? "?"})`;
  $("pool-submit").textContent = "Save changes";
  showRevision();
  $("pool-editor").scrollIntoView();
  form.elements.max_desktops.focus();
}

function ruleText(rule) {
  return `${rule.user ? `user ${rule.user}` : `role ${rule.role}`}: ${rule.may.join(", ")}`;
}

function parseRules(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const match = line.match(/^(user|role)\s+([^:\s]+)\s*:\s*(.*)$/);
    if (!match) return { may: [line] }; // the API names the bad rule
    return { [match[1]]: match[2], may: match[3].split(/[,\s]+/).filter(Boolean) };
  });
}

function body() {
  const form = $("pool-form");
  const out = {};
  for (const field of FIELDS) {
    const input = form.elements[field.name];
    if (field.type === "checkbox") out[field.name] = input.checked;
    else if (field.type === "number") out[field.name] = input.value === "" ? null : Number(input.value);
    else if (field.name === "datastores") out[field.name] = input.value.split(",").map((s) => s.trim()).filter(Boolean);
    else if (field.name === "permissions") out[field.name] = parseRules(input.value);
    else out[field.name] = input.value.trim() === "" && !field.required ? null : input.value.trim();
  }
  return out;
}

function clearErrors() {
  const form = $("pool-form");
  for (const node of form.querySelectorAll("[data-field-error]")) node.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  $("pool-form-error").textContent = "";
}

function showErrors(err) {
  const form = $("pool-form");
  const problems = err.errors && err.errors.length ? err.errors : [{ field: err.field, detail: err.message }];
  let first = null;
  for (const problem of problems) {
    const base = String(problem.field || "").split(/[.[]/)[0];
    const slot = form.querySelector(`[data-field-error="${base}"]`);
    if (!slot) continue;
    slot.textContent = slot.textContent ? `${slot.textContent}; ${problem.detail}` : problem.detail;
    form.elements[base].setAttribute("aria-invalid", "true");
    first = first || form.elements[base];
  }
  $("pool-form-error").textContent = `The pool was not saved: ${err.message}`;
  if (first) first.focus();
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  $("pool-form-ok").textContent = "";
  const data = body();
  try {
    if (editing) {
      delete data.name;
      await call("PUT", `/pools/${encodeURIComponent(editing)}`, data);
      $("pool-form-ok").textContent = `Pool ${editing} saved.`;
    } else {
      const created = await call("POST", "/pools", data);
      editPool(created);
      $("pool-form-ok").textContent = `Pool ${created.name} created.`;
    }
  } catch (err) {
    if (err.status === 422 || err.status === 409 || err.status === 404) showErrors(err);
    else report(err);
  }
}

// --- entitlements -----------------------------------------------------------------------

export async function setupEntitlements() {
  $("ent-add").onclick = () => addLine({ kind: "user", name: "", include_suborganizations: false }, true);
  $("ent-save").onclick = saveEntitlements;
  $("ent-pool").onchange = () => showEntitlements($("ent-pool").value, { focus: false });
  const [users, groups, orgs] = await Promise.all(
    ["/users", "/groups", "/organizations"].map((p) => call("GET", p).catch(() => [])),
  );
  const fill = (id, names) => $(id).replaceChildren(...names.map((n) => h("option", { value: n })));
  fill("dir-users", users.map((u) => u.username));
  fill("dir-groups", groups.map((g) => g.name));
  fill("dir-orgs", orgs.map((o) => o.name));
}

export async function showEntitlements(pool, { focus = true } = {}) {
  if (!pool) return;
  $("ent-pool").value = pool;
  try {
    const data = await call("GET", `/pools/${encodeURIComponent(pool)}/entitlements`);
    $("ent-lines").replaceChildren();
    for (const line of data.entitlements) addLine(line);
    showUsers(data.effective_users);
    $("ent-status").textContent = "";
    if (focus) {
      $("entitlements").scrollIntoView();
      $("ent-pool").focus();
    }
  } catch (err) {
    report(err);
  }
}

let lineCount = 0;
function addLine(line, focus = false) {
  const n = ++lineCount;
  const lists = { user: "dir-users", group: "dir-groups", organization: "dir-orgs" };
  const kind = h("select", { id: `ent-kind-${n}`, "data-role": "kind" },
    ...["user", "group", "organization"].map((k) => h("option", { value: k, selected: k === line.kind }, k)));
  const name = h("input", { id: `ent-name-${n}`, "data-role": "name", value: line.name, list: lists[line.kind] });
  const sub = h("input", { type: "checkbox", id: `ent-sub-${n}`, "data-role": "sub", checked: line.include_suborganizations });
  const subLabel = h("label", { for: `ent-sub-${n}` }, h("span", {}, sub, " with sub-organisations"));
  const sync = () => {
    name.setAttribute("list", lists[kind.value]);
    subLabel.hidden = kind.value !== "organization";
  };
  kind.addEventListener("change", sync);
  const row = h("div", { class: "ent-line" },
    h("label", { for: kind.id }, "Kind", kind), h("label", { for: name.id }, "Who (name)", name), subLabel,
    h("button", { type: "button", onclick: () => row.remove(), "aria-label": `Remove line ${n}` }, "Remove"));
  sync();
  $("ent-lines").append(row);
  if (focus) name.focus();
}

function showUsers(users) {
  $("ent-users").replaceChildren(...(users.length ? users.map((u) => h("li", {}, u)) : [h("li", {}, "nobody")]));
}

async function saveEntitlements() {
  const pool = $("ent-pool").value;
  const lines = [...$("ent-lines").querySelectorAll(".ent-line")].map((row) => ({
    kind: row.querySelector('[data-role="kind"]').value,
    name: row.querySelector('[data-role="name"]').value.trim(),
    include_suborganizations: row.querySelector('[data-role="kind"]').value === "organization" && row.querySelector('[data-role="sub"]').checked,
  }));
  try {
    const data = await call("PUT", `/pools/${encodeURIComponent(pool)}/entitlements`, { entitlements: lines });
    showUsers(data.effective_users);
    $("ent-status").textContent = `Saved: ${data.effective_users.length} user(s) entitled to ${pool}.`;
  } catch (err) {
    $("ent-status").textContent = `Not saved: ${err.message}${err.field ? ` (${err.field})` : ""}`;
  }
}
