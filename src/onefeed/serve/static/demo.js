// The onefeed demo page: plain JS over the service's own JSON endpoints (docs/SERVING.md).
// Every piece of data reaches the page through textContent / attributes, never parsed as HTML.
"use strict";

const PAGE = 50; // users per GET /users page
const state = { user: null, offset: 0, total: null, generation: 0 };

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

// fetch JSON; a non-2xx answer becomes an ApiError carrying the service's {error, field}
async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, `network error: ${e.message}`, null);
  }
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    const message = data && typeof data.error === "string" ? data.error : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, message, data ? data.field : null);
  }
  return data;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function showError(id, err) {
  const box = $(id);
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const status = err.status ? `${err.status}: ` : "";
  const field = err.field ? ` (field: ${err.field})` : "";
  box.textContent = `${status}${err.message}${field}`;
  box.hidden = false;
}

function k() {
  const value = Number.parseInt($("k-input").value, 10);
  return Number.isFinite(value) ? value : 10;
}

// ---- users ---------------------------------------------------------------------------------
async function loadUsers() {
  try {
    const page = await api("GET", `/users?limit=${PAGE}&offset=${state.offset}`);
    const select = $("user-select");
    for (const u of page.users) {
      const option = el("option", `${u.user} (${u.events} events)`);
      option.value = u.user;
      select.append(option);
    }
    state.offset += page.users.length;
    state.total = page.total;
    $("more-users").disabled = state.offset >= page.total;
    showError("users-error", null);
  } catch (err) {
    showError("users-error", err);
  }
}

async function pickUser(user) {
  state.user = user || null;
  const gen = ++state.generation;
  for (const id of ["history-list", "feed-list", "suggest-list"]) $(id).replaceChildren();
  for (const id of ["history-error", "feed-error", "suggest-error"]) showError(id, null);
  $("history-count").textContent = "";
  if (!state.user) return;
  await Promise.all([loadHistory(gen), loadFeed(gen), loadSuggestions(gen, null)]);
}

async function loadHistory(gen) {
  try {
    const out = await api("GET", `/users/${encodeURIComponent(state.user)}/history?limit=50`);
    if (gen !== state.generation) return;
    const list = $("history-list");
    for (const e of out.events) {
      const li = el("li");
      li.dataset.behaviour = e.behaviour;
      li.append(el("span", e.behaviour, "behaviour"));
      if (e.query !== null) li.append(el("span", `“${e.query}” `, "query"));
      if (e.item !== null) {
        li.append(el("span", e.title, "title"));
        li.append(el("span", e.item, "item-id"));
      }
      list.append(li);
    }
    const shown = out.events.length < out.total ? `last ${out.events.length} of ` : "";
    $("history-count").textContent = `(${shown}${out.total} events)`;
  } catch (err) {
    if (gen === state.generation) showError("history-error", err);
  }
}

// ---- results (feed and search) -------------------------------------------------------------
function renderItems(listId, out) {
  const list = $(listId);
  list.replaceChildren();
  out.items.forEach((hit, position) => {
    const button = el("button", null, "result");
    button.type = "button";
    button.dataset.item = hit.item;
    button.append(el("span", hit.title, "title"), el("span", hit.item, "item-id"),
                  el("span", hit.score.toFixed(3), "score"));
    button.addEventListener("click", () => click(hit.item, position, out.request_id));
    const li = el("li");
    li.append(button);
    list.append(li);
  });
  if (!out.items.length) list.append(el("li", "no items", "muted"));
}

async function loadFeed(gen) {
  try {
    const out = await api("POST", "/recommend", { user: state.user, k: k() });
    if (gen === state.generation) renderItems("feed-list", out);
  } catch (err) {
    if (gen === state.generation) showError("feed-error", err);
  }
}

async function search(query) {
  showError("search-error", null);
  const body = { query, k: k() };
  if (state.user) body.user = state.user;
  try {
    renderItems("search-list", await api("POST", "/search", body));
  } catch (err) {
    $("search-list").replaceChildren();
    showError("search-error", err);
  }
}

// ---- suggestions -----------------------------------------------------------------------------
async function loadSuggestions(gen, triggerItem) {
  const body = { user: state.user };
  if (triggerItem) body.trigger_item = triggerItem;
  try {
    const out = await api("POST", "/suggest", body);
    if (gen !== state.generation) return;
    showError("suggest-error", null);
    $("suggest-note").textContent = triggerItem ? `(after ${triggerItem})` : "";
    const list = $("suggest-list");
    list.replaceChildren();
    for (const q of out.queries) {
      const button = el("button", q);
      button.type = "button";
      button.addEventListener("click", () => {
        $("search-input").value = q;
        search(q);
      });
      const li = el("li");
      li.append(button);
      list.append(li);
    }
    if (!out.queries.length) list.append(el("li", "no suggestion", "muted"));
  } catch (err) {
    if (gen === state.generation) showError("suggest-error", err);
  }
}

// ---- feedback ------------------------------------------------------------------------------
async function click(item, position, requestId) {
  const status = $("feedback-status");
  if (!state.user) {
    status.textContent = `pick a user to log a click on ${item}`;
    return;
  }
  const event = { user: state.user, kind: "click", item, position,
                  timestamp: Date.now() / 1000, request_id: requestId };
  try {
    const out = await api("POST", "/feedback", { events: [event] });
    status.textContent = `logged a click on ${item} (log id ${out.ids.join(", ")})`;
  } catch (err) {
    status.textContent = `click on ${item} not logged: ${err.status || ""} ${err.message}`;
  }
  loadSuggestions(state.generation, item);
}

// ---- start ---------------------------------------------------------------------------------
async function start() {
  try {
    const h = await api("GET", "/health");
    $("status").textContent = `${h.kind} run ${h.run}: ${h.n_items} items, ${h.n_users} users`;
    $("k-input").max = "1000";
  } catch (err) {
    $("status").textContent = `service not healthy: ${err.message}`;
  }
  $("user-select").addEventListener("change", (e) => pickUser(e.target.value));
  $("more-users").addEventListener("click", loadUsers);
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("search-input").value);
  });
  await loadUsers();
  document.body.dataset.ready = "true";
}

start();
