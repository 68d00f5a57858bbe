// How values look on screen: dates, numbers, badges.

import { h } from "./dom.js";
import { timeZone, zonedDay } from "./zone.js";

const number = new Intl.NumberFormat();
const dateTimes = new Map();

/** The date-time format of the chosen time zone. */
function dateTime() {
  const zone = timeZone();
  if (!dateTimes.has(zone)) {
    dateTimes.set(zone, new Intl.DateTimeFormat(undefined,
      { dateStyle: "short", timeStyle: "medium", timeZone: zone }));
  }
  return dateTimes.get(zone);
}

export function formatNumber(value) {
  return value === null || value === undefined ? "—" : number.format(value);
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateTime().format(date);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

/** A moment as "3 min ago", the absolute time on hover (and in `datetime`). */
export function timeAgo(iso, reference = Date.now()) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return formatTime(iso);
  const seconds = Math.round((date.getTime() - reference) / 1000);
  const [unit, size] = UNITS.find(([, s]) => Math.abs(seconds) >= s) || UNITS[3];
  const text = Math.abs(seconds) > 30 * 86400
    ? formatTime(iso) : relative.format(Math.round(seconds / size), unit);
  return h("time", { datetime: date.toISOString(), title: formatTime(iso) }, text);
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function formatPercent(fraction) {
  return fraction === null || fraction === undefined ? "—" : `${(fraction * 100).toFixed(1)} %`;
}

const KNOWN = {
  status: ["pending", "success", "partial", "error"],
  routing: ["referral", "traffic", "both", "unknown", "ignored"],
  leg: ["recorded", "duplicate", "failed"],
};

/** A coloured label; the colour comes from a class, the meaning is in the text too. */
export function badge(kind, value) {
  const known = KNOWN[kind]?.includes(value);
  const variant = known ? `${kind}-${value}` : `${kind}-other`;
  return h("span", { class: `badge ${variant}`, title: kind }, value || "—");
}

/** The date (YYYY-MM-DD) of a Date in the chosen time zone. */
export function isoDate(date) {
  return zonedDay(date);
}
