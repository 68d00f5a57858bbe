// The webhook log viewer: stats for a window, filters and search, the newest
// events first with "load more", expandable details with attempts and replay.

import { api, apiDownload } from "./api.js";
import { byId, fill, h, saveFile, say } from "./dom.js";
import { mountBulkReplay, showBulkReplay } from "./bulk_replay.js";
import { drawFlow } from "./flow_chart.js";
import { zonedDate } from "./zone.js";
import { badge, formatMs, formatNumber, formatPercent, formatTime, timeAgo } from "./format.js";

/** Filters the API takes, in the order they appear in a deep link. */
export const FILTERS = ["status", "routing", "source", "lead_id", "q", "received_from", "received_to"];
const WINDOWS = ["1h", "24h", "7d", "30d"];
const AUTO_REFRESH_MS = 10000;
const PAGE = 50;

const state = {
  params: new URLSearchParams(),
  items: [],
  nextCursor: null,
  expanded: new Set(),
  // Log id -> the row its replay created, so the result outlives a refresh.
  replays: new Map(),
  highlight: null,
  // How many events the filters match (the list's total), null while unknown.
  total: null,
  timer: null,
  generation: 0,
};

let navigate = () => {};

/** Wire the view's controls once; `go(params)` updates the deep link (the hash). */
export function mountLogs(go) {
  navigate = go;
  const form = byId("filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    applyForm();
  });
  form.addEventListener("change", (event) => {
    if (event.target.tagName === "SELECT") applyForm();
  });
  form.addEventListener("reset", () => {
    setTimeout(() => navigate(withUiParams(new URLSearchParams())), 0);
  });
  byId("refresh").addEventListener("click", () => refresh());
  byId("auto-refresh").addEventListener("change", () => applyForm());
  byId("stats-window").addEventListener("change", () => applyForm());
  byId("load-more").addEventListener("click", () => loadMore());
  byId("export-csv").addEventListener("click", () => exportCsv());
  document.addEventListener("visibilitychange", () => scheduleAutoRefresh());
  mountBulkReplay(() => apiFilters());
}

/** Show the view for a deep link's parameters. */
export function showLogs(params) {
  state.params = params;
  const form = byId("filters");
  for (const name of FILTERS) {
    if (form.elements[name]) form.elements[name].value = params.get(name) || "";
  }
  const windowValue = params.get("window");
  byId("stats-window").value = WINDOWS.includes(windowValue) ? windowValue : "24h";
  byId("auto-refresh").checked = params.get("auto") === "1";
  scheduleAutoRefresh();
  showBulkReplay();
  refresh({ fresh: true });
}

export function hideLogs() {
  clearInterval(state.timer);
  state.timer = null;
}

function applyForm() {
  const form = byId("filters");
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const value = (form.elements[name]?.value || "").trim();
    if (value) params.set(name, value);
  }
  navigate(withUiParams(params));
}

function withUiParams(params) {
  const windowValue = byId("stats-window").value;
  if (windowValue !== "24h") params.set("window", windowValue);
  if (byId("auto-refresh").checked) params.set("auto", "1");
  return params;
}

/** The API parameters for the current filters (date-times, read in the chosen time zone,
 * sent as ISO 8601). */
function apiFilters() {
  const out = {};
  for (const name of FILTERS) {
    const value = state.params.get(name);
    if (!value) continue;
    if (name.startsWith("received_")) {
      const date = zonedDate(value);
      out[name] = date ? date.toISOString() : value;
    } else out[name] = value;
  }
  return out;
}

function scheduleAutoRefresh() {
  clearInterval(state.timer);
  state.timer = null;
  if (byId("auto-refresh").checked && document.visibilityState === "visible"
      && !byId("logs-view").hidden) {
    state.timer = setInterval(() => refresh(), AUTO_REFRESH_MS);
  }
}

/** Reload the stats and the first page; keeps open details open. */
async function refresh({ fresh = false } = {}) {
  const generation = ++state.generation;
  if (fresh) {
    state.expanded.clear();
    fill(byId("logs-body"));
    byId("logs-empty").hidden = true;
    byId("load-more").hidden = true;
  }
  byId("logs-view").setAttribute("aria-busy", "true");
  const limit = Math.min(200, Math.max(PAGE, fresh ? PAGE : state.items.length));
  const one = state.params.get("id");
  if (one && fresh) {
    state.expanded.add(Number(one));
    state.highlight = Number(one);
  }
  const [page] = await Promise.all([
    one ? loadOne(one, generation) : load({ ...apiFilters(), limit, total: "true" }, generation),
    loadStats(generation),
    loadFlow(generation),
  ]);
  if (page && generation === state.generation) {
    state.items = page.items;
    state.nextCursor = page.next_cursor;
    state.total = page.total ?? null;
    renderRows();
    byId("updated").textContent = `Updated ${formatTime(new Date().toISOString())}`;
  }
  byId("logs-view").removeAttribute("aria-busy");
}

async function loadMore() {
  if (!state.nextCursor) return;
  const generation = state.generation;
  const button = byId("load-more");
  button.disabled = true;
  const page = await load({ ...apiFilters(), limit: PAGE, cursor: state.nextCursor }, generation);
  button.disabled = false;
  if (!page || generation !== state.generation) return;
  state.items = state.items.concat(page.items);
  state.nextCursor = page.next_cursor;
  const body = byId("logs-body");
  for (const item of page.items) body.append(...rowsFor(item));
  updateFooter();
}

async function load(params, generation) {
  try {
    const page = await api("webhook-logs", { params });
    if (generation === state.generation) say(byId("logs-error"), "");
    return page;
  } catch (error) {
    if (generation === state.generation) say(byId("logs-error"), error.message);
    return null;
  }
}

/** One event as a page of its own (#/logs/{id}). */
async function loadOne(id, generation) {
  try {
    const item = await api(`webhook-logs/${id}`);
    if (generation === state.generation) say(byId("logs-error"), "");
    return { items: [item], next_cursor: null };
  } catch (error) {
    if (generation === state.generation) say(byId("logs-error"), error.message);
    return null;
  }
}

function renderRows() {
  const body = byId("logs-body");
  fill(body, state.items.map(rowsFor));
  updateFooter();
}

function updateFooter() {
  byId("logs-empty").hidden = state.items.length > 0;
  byId("load-more").hidden = !state.nextCursor;
  const one = state.params.get("id");
  const total = one ? null : state.total;
  byId("logs-count").textContent = (total === null ? "" : `${formatNumber(total)} matching · `)
    + `${formatNumber(state.items.length)} shown` + (state.nextCursor ? ", more below" : "");
  byId("export-csv").hidden = Boolean(one);
}

/** The link that opens one event on its own (#/logs/{id}). */
export function eventLink(id, text = `#${id}`) {
  return h("a", { href: `#/logs/${Number(id)}`, class: "mono event-link",
    title: `Open event #${id} on its own` }, text);
}

/** Download every event the filters match as CSV (the token travels in the header,
 * never in a URL, so the file is fetched and then saved). */
async function exportCsv() {
  const button = byId("export-csv");
  button.disabled = true;
  try {
    const { blob, filename } = await apiDownload("webhook-logs", { ...apiFilters(), format: "csv" });
    saveFile(blob, filename || "webhook-logs.csv");
    say(byId("logs-error"), "");
  } catch (error) {
    say(byId("logs-error"), error.message);
  } finally {
    button.disabled = false;
  }
}

async function loadFlow(generation) {
  const windowValue = byId("stats-window").value;
  let series;
  try {
    series = await api("webhook-stats/timeseries", { params: { window: windowValue } });
  } catch (error) {
    if (generation === state.generation) say(byId("flow-error"), error.message);
    return;
  }
  if (generation !== state.generation) return;
  say(byId("flow-error"), "");
  drawFlow(byId("flow-chart"), series);
}

/** The table row of one log and its (initially hidden) detail row. */
function rowsFor(item) {
  const detailCell = h("td", { colspan: 10, class: "detail-cell" });
  const detailRow = h("tr", { class: "detail", hidden: true, dataset: { logId: item.id } },
    detailCell);
  const toggle = h("button", {
    type: "button",
    class: "expand",
    "aria-expanded": "false",
    "aria-label": `Details of log ${item.id}`,
  }, "Details");
  const row = h("tr", {
    class: `log status-row-${item.processing_status}${item.id === state.highlight ? " highlight" : ""}`,
    dataset: { logId: item.id },
  },
  cell("ID", eventLink(item.id)),
  cell("Received", timeAgo(item.received_at)),
  cell("Deal", dealSummary(item)),
  cell("Source", [item.source,
    item.replay_of ? h("span", { class: "muted" }, " of ", eventLink(item.replay_of)) : null]),
  cell("Routing", item.routing_decision ? badge("routing", item.routing_decision) : h("span", { class: "muted" }, "—")),
  cell("Status", badge("status", item.processing_status)),
  cell("UTM", utmSummary(item)),
  // A row opened by its link comes from the detail endpoint, where attempts is the list.
  cell("Tries", formatNumber(Array.isArray(item.attempts) ? item.attempts.length : item.attempts),
    "num"),
  cell("Time", formatMs(item.processing_ms), "num"),
  h("td", { class: "actions" }, toggle));
  const open = () => {
    const opening = detailRow.hidden;
    detailRow.hidden = !opening;
    toggle.setAttribute("aria-expanded", String(opening));
    toggle.setAttribute("aria-label", `${opening ? "Hide" : "Details"} of log ${item.id}`);
    toggle.textContent = opening ? "Hide" : "Details";
    row.classList.toggle("open", opening);
    if (opening) {
      state.expanded.add(item.id);
      loadDetail(item, detailCell);
    } else state.expanded.delete(item.id);
  };
  toggle.addEventListener("click", open);
  if (state.expanded.has(item.id)) {
    state.expanded.delete(item.id);
    queueMicrotask(open);
  }
  return [row, detailRow];
}

/** A table cell; `label` heads it when the table turns into cards on a phone. */
function cell(label, content, className) {
  return h("td", { dataset: { label }, class: className }, content);
}

function dealSummary(item) {
  const lead = item.lead_id
    ? h("button", {
      type: "button",
      class: "link",
      title: "Show every event of this lead",
      onclick: () => navigate(withUiParams(new URLSearchParams({ lead_id: item.lead_id }))),
    }, `Lead ${item.lead_id}`)
    : h("span", { class: "muted" }, "no lead");
  return h("div", { class: "deal" },
    lead,
    item.deal_name ? h("div", { class: "deal-name" }, item.deal_name) : null,
    item.error_message ? h("div", { class: "error-line" }, item.error_message) : null);
}

function utmSummary(item) {
  if (!item.utm_source && !item.utm_campaign) return h("span", { class: "muted" }, "—");
  return h("div", { class: "utm" },
    item.utm_source ? h("div", {}, h("span", { class: "muted" }, "source "), item.utm_source) : null,
    item.utm_campaign ? h("div", {}, h("span", { class: "muted" }, "campaign "), item.utm_campaign) : null);
}

async function loadDetail(item, container) {
  fill(container, h("p", { class: "muted" }, "Loading…"));
  let detail;
  try {
    detail = await api(`webhook-logs/${item.id}`);
  } catch (error) {
    fill(container, h("p", { class: "error", role: "alert" }, error.message));
    return;
  }
  fill(container, renderDetail(detail));
}

function renderDetail(detail) {
  const replayOutput = h("p", { class: "replay-result", role: "status", hidden: true });
  if (state.replays.has(detail.id)) showReplay(replayOutput, state.replays.get(detail.id));
  return h("div", { class: "detail-body" },
    detail.error_message
      ? h("div", { class: "callout error" }, h("strong", {}, "Error: "), detail.error_message)
      : null,
    h("dl", { class: "facts" },
      fact("Event", detail.event || "—"),
      fact("Pipeline", detail.pipeline_id ?? "—"),
      fact("Status id", detail.status_id ?? "—"),
      fact("Processed", formatTime(detail.processed_at)),
      fact("Next retry", detail.retry_at ? formatTime(detail.retry_at) : "none"),
      fact("Legs", legs(detail.legs)),
      fact("Link", eventLink(detail.id, `#/logs/${detail.id}`)),
      detail.replay_of ? fact("Replay of", eventLink(detail.replay_of)) : null,
      reattributed(detail),
      detail.replayed_as?.length
        ? fact("Replayed as", ...detail.replayed_as.flatMap((id, i) => [i ? ", " : null, eventLink(id)]))
        : null,
      amoLink(detail)),
    h("div", { class: "detail-actions" },
      replayButton(detail, replayOutput),
      copyButton(detail.deal_data)),
    replayOutput,
    whyCredited(detail.why),
    h("h3", {}, `Attempts (${detail.attempts.length})`),
    attemptsTable(detail.attempts),
    h("h3", {}, "Deal data (the body as received: parsed, or kept raw when unparseable)"),
    h("pre", { class: "json", tabindex: "0" }, JSON.stringify(detail.deal_data, null, 2)));
}

/** The "Why credited" block: the router's decision and reason as it gave them when it
 * routed the event, who each leg credited with what amount, and the request. */
function whyCredited(why) {
  if (!why) return null;
  const muted = (text) => h("span", { class: "muted" }, text);
  let reason;
  if (why.decision === "unknown") {
    reason = [h("strong", {}, "No rule matched"), why.reason ? ` — ${why.reason}` : null];
  } else if (why.reason) {
    reason = why.reason;
  } else {
    reason = muted(why.decision ? "not recorded (routed before reasons were kept)" : "not routed yet");
  }
  const credits = why.credits.length
    ? h("ul", { class: "credits" }, why.credits.map((c) => h("li", { class: "credit" },
      `${c.leg}: `, h("strong", {}, c.party || "—"),
      c.amount == null ? null : `, ${formatNumber(c.amount)}`, " ", badge("leg", c.outcome))))
    : muted("nobody");
  const utm = [why.utm_source && `utm_source ${why.utm_source}`,
    why.utm_campaign && `utm_campaign ${why.utm_campaign}`].filter(Boolean).join(", ");
  return h("section", { class: "why-credited", "aria-label": "Why credited" },
    h("h3", {}, "Why credited"),
    h("dl", { class: "why-facts" },
      fact("Decision", why.decision ? badge("routing", why.decision) : muted("none yet")),
      fact("Reason", reason),
      fact("UTM", utm || muted("none")),
      fact("Credited", credits),
      fact("Request id", why.request_id || muted("not recorded")),
      fact("Trace id", why.trace_id || muted("not traced")),
      fact("Content type", why.content_type || muted("not recorded")),
      fact("User agent", why.user_agent || muted("not recorded"))));
}

function fact(term, ...value) {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

/** Why a `reattribution` event was routed again: which job, rules versions and admin. */
function reattributed(detail) {
  const why = detail.source === "reattribution" ? detail.deal_data?.reattribution : null;
  if (!why || typeof why !== "object") return null;
  return fact("Re-attributed", `${why.change || "changed"} by re-attribution #${why.job_id}, `
    + `rules version ${why.from_version} → ${why.to_version}, by ${why.by}`);
}

function legs(value) {
  const entries = Object.entries(value || {});
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h("span", { class: "legs" },
    entries.map(([leg, outcome]) => h("span", { class: "leg" }, `${leg} `, badge("leg", outcome))));
}

function amoLink(detail) {
  const subdomain = detail.deal_data?.account?.subdomain;
  if (!detail.lead_id || typeof subdomain !== "string" || !/^[a-z0-9-]{1,63}$/i.test(subdomain)) {
    return null;
  }
  const url = `https://${subdomain}.amocrm.ru/leads/detail/${Number(detail.lead_id)}`;
  return fact("AmoCRM", h("a", { href: url, target: "_blank", rel: "noopener noreferrer" },
    "open the lead"));
}

function attemptsTable(attempts) {
  if (!attempts.length) return h("p", { class: "muted" }, "Not processed yet.");
  return h("div", { class: "table-wrap" }, h("table", { class: "attempts" },
    h("thead", {}, h("tr", {}, ["#", "At", "Status", "Routing", "Duration", "Legs", "Error"]
      .map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, attempts.map((a) => h("tr", {},
      cell("#", String(a.attempt)),
      cell("At", formatTime(a.at)),
      cell("Status", badge("status", a.status)),
      cell("Routing", a.routing_decision ? badge("routing", a.routing_decision) : "—"),
      cell("Duration", formatMs(a.duration_ms), "num"),
      cell("Legs", legs(a.legs)),
      cell("Error", a.error_message || "—"))))));
}

function replayButton(detail, output) {
  let armed = null;
  const button = h("button", { type: "button", class: "replay" }, "Replay");
  const disarm = () => {
    clearTimeout(armed);
    armed = null;
    button.textContent = "Replay";
    button.classList.remove("danger");
  };
  button.addEventListener("click", async () => {
    if (!armed) {
      // A second click confirms: no window.confirm(), which a page must not depend on.
      button.textContent = "Confirm replay";
      button.classList.add("danger");
      armed = setTimeout(disarm, 6000);
      return;
    }
    disarm();
    button.disabled = true;
    say(output, "Replaying…");
    try {
      const replayed = await api(`webhook-logs/${detail.id}/replay`, { method: "POST" });
      state.replays.set(detail.id, replayed);
      showReplay(output, replayed);
      state.highlight = replayed.id;
      refresh();
    } catch (error) {
      output.classList.add("error");
      say(output, error.message);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function showReplay(output, replayed) {
  output.classList.remove("error");
  fill(output, "Replayed as ", eventLink(replayed.id), ": ",
    badge("status", replayed.processing_status),
    " ", replayed.routing_decision ? badge("routing", replayed.routing_decision) : "",
    replayed.error_message ? ` ${replayed.error_message} ` : " ",
    replayed.lead_id ? h("button", {
      type: "button",
      class: "link",
      onclick: () => navigate(withUiParams(new URLSearchParams({ lead_id: replayed.lead_id }))),
    }, "Show every event of this lead") : null);
  output.hidden = false;
}

function copyButton(data) {
  const button = h("button", { type: "button", class: "secondary" }, "Copy JSON");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(JSON.stringify(data, null, 2));
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy JSON"; }, 1500);
  });
  return button;
}

async function loadStats(generation) {
  const container = byId("stats");
  const windowValue = byId("stats-window").value;
  let stats;
  try {
    stats = await api("webhook-stats", { params: { window: windowValue } });
  } catch (error) {
    if (generation === state.generation) fill(container, h("p", { class: "error" }, error.message));
    return;
  }
  if (generation !== state.generation) return;
  const filterBy = (name, value) => () => {
    const params = new URLSearchParams(state.params);
    params.set(name, value);
    params.delete("auto");
    navigate(withUiParams(params));
  };
  fill(container,
    statCard("Events", formatNumber(stats.total), `last ${stats.window}`),
    statCard("Success rate", formatPercent(stats.success_rate), `${formatNumber(stats.finished)} finished`),
    statCard("p50 / p95", `${formatMs(stats.processing_ms.p50)} / ${formatMs(stats.processing_ms.p95)}`,
      "processing time"),
    h("div", { class: "stat-card wide" },
      h("div", { class: "stat-label" }, "By status"),
      h("div", { class: "chips" }, Object.entries(stats.by_status).map(([status, count]) =>
        h("button", { type: "button", class: "chip", onclick: filterBy("status", status),
          title: `Show ${status} events` }, badge("status", status), ` ${formatNumber(count)}`)))),
    h("div", { class: "stat-card wide" },
      h("div", { class: "stat-label" }, "By routing"),
      h("div", { class: "chips" }, Object.entries(stats.by_routing).map(([routing, count]) =>
        routing === "undecided"
          ? h("span", { class: "chip" }, h("span", { class: "badge routing-other" }, "undecided"),
            ` ${formatNumber(count)}`)
          : h("button", { type: "button", class: "chip", onclick: filterBy("routing", routing),
            title: `Show ${routing} events` }, badge("routing", routing), ` ${formatNumber(count)}`)))),
    retentionCard(stats.retention));
}

// The retention in force (WEBHOOK_LOG_RETENTION_DAYS …) and the oldest event still kept.
function retentionCard(retention) {
  const oldest = retention.oldest_received_at ? formatTime(retention.oldest_received_at) : "none";
  const lastRun = retention.last_run ? `last run ${formatTime(retention.last_run.at)}` : "not run yet";
  return h("div", { class: "stat-card wide", id: "retention" },
    h("div", { class: "stat-label" }, "Retention"),
    h("div", { class: "stat-value" },
      `${formatNumber(retention.days)} days (not succeeded: ${formatNumber(retention.error_days)} days)`),
    h("div", { class: "stat-note" }, `oldest event kept: ${oldest}; ${lastRun}`));
}

function statCard(label, value, note) {
  return h("div", { class: "stat-card" },
    h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, value),
    h("div", { class: "stat-note" }, note));
}
