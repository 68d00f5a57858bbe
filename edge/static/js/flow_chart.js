// The webhook flow chart on the logs page: webhooks per interval stacked by status,
// failures at the bottom in red so they show at a glance, and the p95 processing time
// as a line on its own axis over the same time axis. Drawn with the vendored uPlot.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { formatMs, formatNumber } from "./format.js";
import { timeZone } from "./zone.js";

// Bottom to top: what needs attention first.
const LAYERS = ["error", "partial", "pending", "success"];

let chart = null;
let resizer = null;

/** The chart's colours, from the page's theme (light or dark). */
function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    text: v("--muted"),
    grid: v("--line"),
    success: v("--chart-success"),
    pending: v("--chart-pending"),
    partial: v("--chart-partial"),
    error: v("--chart-error"),
    p95: v("--chart-p95"),
  };
}

/** A short account of the series for screen readers and the chart's title. */
function summary(series) {
  const sum = (key) => series.buckets.reduce((total, b) => total + b[key], 0);
  const failed = sum("error");
  return `${formatNumber(sum("total"))} webhooks in the last ${series.window}: `
    + `${formatNumber(failed)} failed, ${formatNumber(sum("partial"))} partial, `
    + `${formatNumber(sum("pending"))} pending`;
}

/** Draw `series` (GET webhook-stats/timeseries) into `container`, replacing what was there. */
export function drawFlow(container, series) {
  const colors = palette();
  const xs = series.buckets.map((b) => Date.parse(b.start) / 1000);
  const raw = Object.fromEntries(LAYERS.map((status) => [status, series.buckets.map((b) => b[status])]));
  // Each layer drawn as the total of itself and those below it, the tallest first.
  const cumulative = [];
  let running = xs.map(() => 0);
  for (const status of LAYERS) {
    running = running.map((value, i) => value + raw[status][i]);
    cumulative.push(running);
  }
  const order = [...LAYERS.keys()].reverse();
  const bars = uPlot.paths.bars({ size: [0.8, 48], align: 0 });
  const opts = {
    width: Math.max(container.clientWidth, 260),
    height: container.clientWidth < 600 ? 180 : 220,
    cursor: { points: { show: false } },
    // The time axis in the chosen time zone.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), timeZone()),
    legend: { live: true },
    scales: { x: { time: true }, count: { range: (u, min, max) => [0, Math.max(4, max)] },
      ms: { range: (u, min, max) => [0, Math.max(10, max ?? 10)] } },
    axes: [
      { stroke: colors.text, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid } },
      { scale: "count", stroke: colors.text, grid: { stroke: colors.grid, width: 1 },
        ticks: { stroke: colors.grid }, size: 44 },
      { scale: "ms", side: 1, stroke: colors.p95, grid: { show: false }, size: 64,
        values: (u, ticks) => ticks.map((t) => formatMs(t)) },
    ],
    series: [
      { label: "Time" },
      ...order.map((i) => ({
        label: LAYERS[i],
        scale: "count",
        paths: bars,
        points: { show: false },
        fill: colors[LAYERS[i]],
        stroke: colors[LAYERS[i]],
        // No outline: an empty interval draws nothing rather than a line at zero.
        width: 0,
        value: (u, v, si, idx) => (idx == null ? "—" : formatNumber(raw[LAYERS[i]][idx])),
      })),
      {
        label: "p95",
        scale: "ms",
        stroke: colors.p95,
        width: 2,
        points: { show: true, size: 4, fill: colors.p95 },
        value: (u, v) => (v == null ? "—" : formatMs(v)),
      },
    ],
  };
  const data = [xs, ...order.map((i) => cumulative[i]), series.buckets.map((b) => b.p95_ms)];
  if (chart) chart.destroy();
  container.replaceChildren();
  chart = new uPlot(opts, data, container);
  const label = summary(series);
  container.setAttribute("aria-label", label);
  container.title = label;
  // One point per interval: the browser tests read these.
  container.dataset.points = String(xs.length);
  container.dataset.window = series.window;
  if (!resizer) {
    resizer = new ResizeObserver(() => {
      if (chart && container.clientWidth) {
        chart.setSize({ width: Math.max(container.clientWidth, 260),
          height: container.clientWidth < 600 ? 180 : 220 });
      }
    });
    resizer.observe(container);
  }
}
