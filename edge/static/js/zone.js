// The time zone every time is shown and every date filter is read in: the operator's pick
// (kept in this browser), else the server's default (ADMIN_TIME_ZONE), else the browser's.

import { h } from "./dom.js";

const KEY = "amoroute.timeZone";

export const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;
const serverZone = () => document.querySelector('meta[name="amoroute-time-zone"]')?.content || "";

export function timeZone() {
  return localStorage.getItem(KEY) || serverZone() || browserZone();
}

/** How many milliseconds `zone`'s clocks are ahead of UTC at the moment `ms`. */
function offset(ms, zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute,
    parts.second);
  return wall - Math.floor(ms / 1000) * 1000;
}

/** A wall-clock time "YYYY-MM-DDTHH:MM[:SS]" in the chosen zone, as a Date (invalid: null). */
export function zonedDate(value) {
  const asUtc = Date.parse(`${value}Z`);
  if (Number.isNaN(asUtc)) return null;
  const zone = timeZone();
  // Twice: the offset at the guess may differ from the first one across a DST change.
  const guess = asUtc - offset(asUtc, zone);
  return new Date(asUtc - offset(guess, zone));
}

/** The date (YYYY-MM-DD) a moment falls on in the chosen zone. */
export function zonedDay(date) {
  return new Intl.DateTimeFormat("en-CA", {
    timeZone: timeZone(), year: "numeric", month: "2-digit", day: "2-digit",
  }).format(date);
}

/** Fill the zone picker; `changed()` runs after the operator picks another zone. */
export function mountZonePicker(select, changed) {
  const browser = browserZone();
  const server = serverZone();
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const first = [[browser, `${browser} (this browser)`]];
  if (server && server !== browser) first.push([server, `${server} (server default)`]);
  const listed = new Set(first.map(([zone]) => zone));
  const current = timeZone();
  const options = [...first, ...zones.filter((z) => !listed.has(z)).map((z) => [z, z])];
  if (!options.some(([zone]) => zone === current)) options.push([current, current]);
  select.replaceChildren(...options.map(([zone, label]) => h("option", { value: zone }, label)));
  select.value = current;
  select.addEventListener("change", () => {
    localStorage.setItem(KEY, select.value);
    changed();
  });
}
