// Revenue per day over a sales dashboard's range: one line per targetologist or
// referral code, days in the operator's time zone (the API buckets them). Drawn with
// the vendored uPlot, as the log page's flow chart.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { api } from "./api.js";
import { formatNumber } from "./format.js";
import { timeZone } from "./zone.js";

const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
// The chart drawn in each container, destroyed before the next one is drawn there.
const charts = new Map();

/** Draw the daily series of `path` (e.g. "sales/traffic/daily") over `params` (from,
 * to: ISO instants) in `container`, one line per series named by its `ownerKey`
 * ("targetologist", "referral_code"); `owners` names them in the label ("targetologists").
 * An open range has no chart. Returns the number of days drawn. */
export async function drawSalesChart(container, path, params, ownerKey, owners) {
  charts.get(container)?.destroy();
  charts.delete(container);
  container.replaceChildren();
  container.hidden = true;
  container.dataset.points = "0";
  if (!params.from || !params.to) return 0;
  const data = await api(path, { params: { ...params, tz: timeZone() } });
  // x: each local day as its UTC midnight in seconds, labelled in UTC below, so the
  // label is the day the API bucketed whatever the browser's zone.
  const xs = data.days.map((day) => Date.parse(`${day}T00:00:00Z`) / 1000);
  container.hidden = false;  // measured below: a hidden element has no width
  const opts = {
    width: Math.max(container.clientWidth, 260),
    // The days are already the operator's: label them as given.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "UTC"),
    height: 220,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max ?? 1)] } },
    series: [{}, ...data.series.map((s, n) => ({
      label: s[ownerKey],
      stroke: COLOURS[n % COLOURS.length],
      width: 2,
      points: { show: true },
      value: (u, v) => (v == null ? "" : formatNumber(v)),
    }))],
    axes: [
      { space: 50, incrs: [86400, 7 * 86400, 28 * 86400],
        values: (u, ticks) => ticks.map((v) => new Date(v * 1000).toISOString().slice(0, 10)) },
      { values: (u, ticks) => ticks.map((v) => formatNumber(v)), size: 70 },
    ],
  };
  charts.set(container, new uPlot(opts, [xs, ...data.series.map((s) => s.daily_revenue)],
    container));
  container.dataset.points = String(xs.length);
  const unit = data.currency ? ` (${data.currency})` : "";
  const label = `Revenue per day${unit}, ${data.days.length} days, `
    + `${data.series.length} ${owners} (${data.tz})`;
  container.setAttribute("aria-label", label);
  return xs.length;
}
