// The two sales dashboards: traffic sales per targetologist and referral
// conversions per code, over a range of local dates of the deals' won time, read from
// the services. A range without sales shows all time instead, and says so: a first
// deal is often won before this month (the sample payloads were won in 2025).

import { api, apiDownload } from "./api.js";
import { byId, fill, h, saveFile, say } from "./dom.js";
import { formatNumber, isoDate } from "./format.js";
import { zonedDate } from "./zone.js";
import { drawSalesChart } from "./sales_chart.js";
import { closePartnerForm, mountPartners, openPartnerForm } from "./partners.js";

const VIEWS = {
  traffic: {
    path: "sales/traffic",
    // The revenue chart, and the drill-down from a row onto its sales.
    daily: "sales/traffic/daily",
    drill: "sales/traffic/sales",
    owner: "targetologist",
    owners: "targetologists",
    count: (totals) => plural(totals.sales, "sale"),
    nothing: "No traffic sales were won",
    columns: ["Targetologist", "#Sales", "#Revenue", "#Share of revenue", "#Reversed",
      "!Sales list"],
    row: (item, totals) => [
      cell("Targetologist", item.targetologist),
      cell("Sales", formatNumber(item.sales), "num"),
      cell("Revenue", formatNumber(item.revenue), "num"),
      cell("Share of revenue", share(item.revenue, totals.revenue), "num"),
      cell("Reversed", reversed(item.reversed_sales, item.reversed_revenue), "num"),
      salesButton("traffic", item.targetologist),
    ],
    total: (totals) => [
      cell("Targetologist", "Total"),
      cell("Sales", formatNumber(totals.sales), "num"),
      cell("Revenue", formatNumber(totals.revenue), "num"),
      cell("Share of revenue", "", "num"),
      cell("Reversed", reversed(totals.reversed_sales, totals.reversed_revenue), "num"),
      h("td", { class: "partner-action" }),
    ],
  },
  referral: {
    path: "sales/referral",
    daily: "sales/referral/daily",
    drill: "sales/referral/sales",
    owner: "referral_code",
    owners: "codes",
    count: (totals) => plural(totals.conversions, "conversion"),
    nothing: "No referral conversions were won",
    // A leading "!" marks a column whose title is for screen readers only.
    columns: ["Code", "Partner", "#Conversions", "#Amount", "#Commission rate", "#Commission",
      "#Reversed", "!Sales list", "!Partner actions"],
    row: (item) => [
      cell("Code", h("span", { class: "mono" }, item.referral_code)),
      cell("Partner", item.partner_registered
        ? item.partner_name || h("span", { class: "muted" }, "unnamed")
        : h("span", { class: "badge status-partial" }, "not registered")),
      cell("Conversions", formatNumber(item.conversions), "num"),
      cell("Amount", formatNumber(item.amount_total), "num"),
      cell("Commission rate", item.commission_bp ? `${item.commission_bp / 100} %` : "not set", "num"),
      cell("Commission", item.commission_bp ? formatNumber(item.commission_total) : "—", "num"),
      cell("Reversed", reversed(item.reversed_conversions, item.reversed_amount), "num"),
      salesButton("referral", item.referral_code),
      h("td", { class: "partner-action" }, h("button", {
        type: "button",
        class: "secondary small",
        "aria-label": `${item.partner_registered ? "Edit" : "Register"} partner ${item.referral_code}`,
        onclick: () => openPartnerForm(item),
      }, item.partner_registered ? "Edit" : "Register")),
    ],
    total: (totals) => [
      cell("Code", "Total"),
      cell("Partner", ""),
      cell("Conversions", formatNumber(totals.conversions), "num"),
      cell("Amount", formatNumber(totals.amount_total), "num"),
      cell("Commission rate", "", "num"),
      cell("Commission", formatNumber(totals.commission_total), "num"),
      cell("Reversed", reversed(totals.reversed_conversions, totals.reversed_amount), "num"),
      h("td", { class: "partner-action" }),
      h("td", { class: "partner-action" }),
    ],
  },
};

const PRESETS = {
  today: () => { const d = new Date(); return [d, d]; },
  "7d": () => { const d = new Date(); return [addDays(d, -6), d]; },
  month: () => { const d = new Date(); return [new Date(d.getFullYear(), d.getMonth(), 1), d]; },
  "30d": () => { const d = new Date(); return [addDays(d, -29), d]; },
};

// Money columns: their header carries the currency (AMOCRM_CURRENCY) when known.
const MONEY = ["#Revenue", "#Amount", "#Commission"];
const generations = { traffic: 0, referral: 0 };
// The API parameters of the figures each dashboard shows: what its export holds.
const shown = { traffic: {}, referral: {} };
let navigate = () => {};

/** Wire both dashboards' controls once; `go(kind, params)` updates the deep link. */
export function mountSales(go) {
  navigate = go;
  for (const kind of Object.keys(VIEWS)) {
    const form = byId(`${kind}-range`);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      if (form.elements.from.value) params.set("from", form.elements.from.value);
      if (form.elements.to.value) params.set("to", form.elements.to.value);
      if (!params.toString()) params.set("all", "1");
      navigate(kind, params);
    });
    for (const button of form.querySelectorAll("[data-preset]")) {
      button.addEventListener("click", () => {
        const preset = button.dataset.preset;
        const params = new URLSearchParams();
        if (preset === "all") params.set("all", "1");
        else {
          const [from, to] = PRESETS[preset]();
          params.set("from", isoDate(from));
          params.set("to", isoDate(to));
        }
        navigate(kind, params);
      });
    }
    byId(`${kind}-refresh`).addEventListener("click", () => load(kind, currentRange(kind)));
    byId(`${kind}-export`).addEventListener("click", () => exportCsv(kind));
  }
  mountPartners((message) => load("referral", currentRange("referral"), message));
}

/** Show a dashboard for a deep link's parameters (default: this month). */
export function showSales(kind, params) {
  let range = { from: params.get("from") || "", to: params.get("to") || "" };
  if (!range.from && !range.to && params.get("all") !== "1") {
    const [from, to] = PRESETS.month();
    range = { from: isoDate(from), to: isoDate(to) };
  }
  const form = byId(`${kind}-range`);
  form.elements.from.value = range.from;
  form.elements.to.value = range.to;
  if (kind === "referral") closePartnerForm();
  load(kind, range);
}

function currentRange(kind) {
  const form = byId(`${kind}-range`);
  return { from: form.elements.from.value, to: form.elements.to.value };
}

/** Show a dashboard's figures over `range`; `saved` is a message to show with them. */
async function load(kind, range, saved = "") {
  const view = VIEWS[kind];
  const generation = ++generations[kind];
  const error = byId(`${kind}-error`);
  const section = byId(`${kind}-view`);
  section.setAttribute("aria-busy", "true");
  byId(`${kind}-caption`).textContent = describe(range);
  let data;
  let notice = saved;
  // Midnights in the chosen time zone: the range covers whole days where the operator is.
  let params = {
    from: range.from ? midnight(range.from).toISOString() : "",
    to: range.to ? midnight(nextDay(range.to)).toISOString() : "",
  };
  try {
    data = await api(view.path, { params });
    if (!data.items.length && (range.from || range.to)) {
      const allTime = await api(view.path);
      if (allTime.items.length) {
        params = {};
        notice = [saved, `${view.nothing} ${during(range)} (by the deal's won date), so all `
          + `time is shown: ${view.count(allTime.totals)}.`].filter(Boolean).join(" ");
        data = allTime;
        range = { from: "", to: "" };
      }
    }
  } catch (failure) {
    if (generation === generations[kind]) {
      say(error, failure.message);
      say(byId(`${kind}-notice`), saved);
      fill(byId(`${kind}-body`));
      fill(byId(`${kind}-foot`));
      section.removeAttribute("aria-busy");
    }
    return;
  }
  if (generation !== generations[kind]) return;
  shown[kind] = params;
  say(error, "");
  say(byId(`${kind}-notice`), notice);
  byId(`${kind}-caption`).textContent = describe(range);
  // A leading "#" marks a numeric column: right-aligned like its figures.
  // The unit of the amounts (AMOCRM_CURRENCY), when the edge knows it.
  const unit = data.currency ? ` (${data.currency})` : "";
  fill(byId(`${kind}-head`), h("tr", {}, view.columns.map((title) => {
    if (MONEY.includes(title)) return h("th", { scope: "col", class: "num" }, `${title.slice(1)}${unit}`);
    if (title.startsWith("#")) return h("th", { scope: "col", class: "num" }, title.slice(1));
    if (title.startsWith("!")) {
      return h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, title.slice(1)));
    }
    return h("th", { scope: "col" }, title);
  })));
  fill(byId(`${kind}-body`), data.items.map((item) => h("tr", {}, view.row(item, data.totals))));
  fill(byId(`${kind}-foot`), data.items.length ? h("tr", {}, view.total(data.totals)) : null);
  byId(`${kind}-empty`).hidden = data.items.length > 0;
  try {
    await drawSalesChart(byId(`${kind}-chart`), view.daily, params, view.owner, view.owners);
  } catch (failure) {
    if (generation === generations[kind]) say(error, failure.message);
  }
  section.removeAttribute("aria-busy");
}

/** The cell of a row's button that opens it onto its sales. */
function salesButton(kind, owner) {
  return h("td", { class: "partner-action" }, h("button", {
    type: "button",
    class: "secondary small",
    "aria-expanded": "false",
    "aria-label": `Sales of ${owner}`,
    onclick: (event) => toggleSales(event.currentTarget, kind, owner),
  }, "Sales"));
}

/** Open (or close) the row of `button` onto the owner's sales over the range shown:
 * lead, amount, won date, UTM, and links to AmoCRM and to the lead's events; a page at
 * a time, and all of them as CSV. */
async function toggleSales(button, kind, owner) {
  const view = VIEWS[kind];
  const row = button.closest("tr");
  const next = row.nextElementSibling;
  if (next && next.classList.contains("sales-detail")) {
    next.remove();
    button.setAttribute("aria-expanded", "false");
    button.textContent = "Sales";
    return;
  }
  const detail = h("tr", { class: "sales-detail" },
    h("td", { colspan: String(row.children.length) }, h("p", { class: "muted" }, "Loading…")));
  row.after(detail);
  button.setAttribute("aria-expanded", "true");
  button.textContent = "Hide";
  const params = { ...shown[kind], [view.owner]: owner };
  let data;
  try {
    data = await api(view.drill, { params });
  } catch (failure) {
    fill(detail.firstChild, h("p", { class: "callout error" }, failure.message));
    return;
  }
  if (!data.items.length) {
    fill(detail.firstChild, h("p", { class: "muted" }, "No sales in this range."));
    return;
  }
  const body = h("tbody", {}, data.items.map(saleLine));
  const more = h("button", { type: "button", class: "secondary small" }, "Show more");
  const counted = h("p", { class: "muted", role: "status" });
  const download = h("button", {
    type: "button",
    class: "secondary small",
    "aria-label": `Export the sales of ${owner} as CSV`,
  }, "Export CSV");
  let token = data.next_page_token;
  const update = () => {
    counted.textContent = `${formatNumber(body.children.length)} sales shown${token ? ", more in this range" : ""}.`;
    more.hidden = !token;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await api(view.drill, { params: { ...params, page_token: token } });
      body.append(...page.items.map(saleLine));
      token = page.next_page_token;
      update();
    } catch (failure) {
      say(byId(`${kind}-error`), failure.message);
    } finally {
      more.disabled = false;
    }
  });
  download.addEventListener("click", () => downloadCsv(kind, download, view.drill, params));
  update();
  fill(detail.firstChild,
    h("table", { class: "figures sales-list" },
      h("thead", {}, h("tr", {}, ["Lead", "Amount", "Won", "UTM", "Status", "Log"].map(
        (title) => h("th", { scope: "col" }, title)))),
      body),
    h("div", { class: "filter-buttons" }, counted, more, download));
}

/** One sale of a drill-down, linked to the lead in AmoCRM and to its events. */
function saleLine(sale) {
  return h("tr", { dataset: { leadId: String(sale.lead_id) } },
    cell("Lead", sale.amocrm_url
      ? h("a", { href: sale.amocrm_url, target: "_blank", rel: "noopener noreferrer" },
        `#${sale.lead_id}`)
      : `#${sale.lead_id}`),
    cell("Amount", formatNumber(sale.amount), "num"),
    cell("Won", sale.won_at ? sale.won_at.slice(0, 10) : "—"),
    cell("UTM", Object.entries(sale.utm).map(([key, value]) => `${key}=${value}`).join(" ")),
    cell("Status", sale.reversed_at
      ? h("span", { class: "badge status-partial" }, `reversed ${sale.reversed_at.slice(0, 10)}`)
      : "credited"),
    cell("Log", h("a", { href: sale.log_url }, "events")));
}

/** Download the figures shown as CSV (the same range, all time when that is shown). */
function exportCsv(kind) {
  return downloadCsv(kind, byId(`${kind}-export`), VIEWS[kind].path, shown[kind]);
}

/** Save `path`'s answer to `params` as CSV, `button` disabled meanwhile. */
async function downloadCsv(kind, button, path, params) {
  button.disabled = true;
  try {
    const { blob, filename } = await apiDownload(path, { ...params, format: "csv" });
    saveFile(blob, filename || `${kind}-sales.csv`);
  } catch (failure) {
    say(byId(`${kind}-error`), failure.message);
  } finally {
    button.disabled = false;
  }
}

function cell(label, content, className) {
  return h("td", { dataset: { label }, class: className }, content);
}

/** Reversed sales, apart from the credited figures: "count (amount)", or a dash. */
function reversed(count, amount) {
  return count ? `${formatNumber(count)} (${formatNumber(amount)})` : "—";
}

function share(part, whole) {
  return whole ? `${((part / whole) * 100).toFixed(1)} %` : "—";
}

function describe(range) {
  if (range.from && range.to) return `Won from ${range.from} to ${range.to} (inclusive)`;
  if (range.from) return `Won on or after ${range.from}`;
  if (range.to) return `Won up to ${range.to} (inclusive)`;
  return "All time";
}

function during(range) {
  if (range.from && range.to) return `from ${range.from} to ${range.to}`;
  return range.from ? `on or after ${range.from}` : `up to ${range.to}`;
}

function plural(count, noun) {
  return `${formatNumber(count)} ${noun}${count === 1 ? "" : "s"}`;
}

function midnight(date) {
  return zonedDate(`${date}T00:00`) || new Date(NaN);
}

/** The day after a YYYY-MM-DD date. */
function nextDay(date) {
  const [year, month, day] = date.split("-").map(Number);
  return new Date(Date.UTC(year, month - 1, day + 1)).toISOString().slice(0, 10);
}

function addDays(date, days) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
}
