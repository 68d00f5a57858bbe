// "Replay all matching" on the filtered log view: a dry run shows how many stored events
// match first; confirming starts a bulk replay job, whose progress is polled until it ends,
// with a Cancel button meanwhile.

import { api } from "./api.js";
import { byId, fill, h } from "./dom.js";
import { formatNumber } from "./format.js";

const POLL_MS = 1000;
const RUNNING = ["queued", "running"];

let filtersNow = () => ({});
let poller = null;
// A new view or new filters make any count shown stale.
let generation = 0;

/** Wire the button once; `filters()` gives the list view's current API filters. */
export function mountBulkReplay(filters) {
  filtersNow = filters;
  byId("bulk-replay").addEventListener("click", () => count());
}

/** The filters changed: drop a count shown for the previous ones (a job keeps its panel). */
export function showBulkReplay() {
  generation += 1;
  if (!poller) {
    const panel = byId("bulk-replay-panel");
    fill(panel);
    panel.hidden = true;
  }
}

function show(...children) {
  const panel = byId("bulk-replay-panel");
  fill(panel, ...children);
  panel.hidden = false;
}

async function count() {
  const mine = ++generation;
  const filters = filtersNow();
  const button = byId("bulk-replay");
  button.disabled = true;
  try {
    const { matching } = await api("webhook-logs/replay", {
      method: "POST", body: { filters, dry_run: true },
    });
    if (mine !== generation) return;
    if (matching === 0) {
      show(h("p", {}, "No stored event matches these filters: nothing to replay."));
      return;
    }
    show(
      h("p", {}, `${formatNumber(matching)} events match these filters. Replaying sends each `
        + "through routing again as a new replay event; services credit a sale once."),
      h("div", { class: "filter-buttons" },
        h("button", { type: "button", id: "bulk-replay-start", onclick: () => start(filters) },
          `Replay all ${formatNumber(matching)} matching`),
        h("button", { type: "button", class: "secondary", onclick: () => showBulkReplay() },
          "Never mind")),
    );
  } catch (error) {
    show(h("p", { class: "error", role: "alert" }, error.message));
  } finally {
    button.disabled = false;
  }
}

async function start(filters) {
  try {
    const { job } = await api("webhook-logs/replay", { method: "POST", body: { filters } });
    follow(job);
  } catch (error) {
    show(h("p", { class: "error", role: "alert" }, error.message));
  }
}

function follow(job) {
  render(job);
  clearInterval(poller);
  poller = null;
  if (!RUNNING.includes(job.state)) return;
  poller = setInterval(async () => {
    try {
      const now = await api(`jobs/${job.id}`);
      render(now);
      if (!RUNNING.includes(now.state)) {
        clearInterval(poller);
        poller = null;
      }
    } catch (error) {
      show(h("p", { class: "error", role: "alert" }, error.message));
      clearInterval(poller);
      poller = null;
    }
  }, POLL_MS);
}

function render(job) {
  const total = job.total || 0;
  const handled = job.done + job.failed;
  const running = RUNNING.includes(job.state);
  show(
    h("p", { id: "bulk-replay-progress", role: "status", dataset: { state: job.state } },
      `Bulk replay #${job.id}: ${job.state}, ${formatNumber(job.done)} of `
      + `${formatNumber(total)} replayed`
      + (job.failed ? `, ${formatNumber(job.failed)} could not be replayed` : "")
      + (job.error ? ` (${job.error})` : "")),
    h("progress", { max: String(Math.max(total, 1)), value: String(handled) }),
    running ? h("button", {
      type: "button", class: "secondary", id: "bulk-replay-cancel",
      onclick: () => cancel(job.id),
    }, "Cancel") : h("button", { type: "button", class: "secondary", onclick: () => {
      fill(byId("bulk-replay-panel"));
      byId("bulk-replay-panel").hidden = true;
    } }, "Close"),
  );
}

async function cancel(id) {
  try {
    follow(await api(`jobs/${id}`, { method: "DELETE" }));
  } catch (error) {
    // 409: it finished meanwhile; show how.
    follow(await api(`jobs/${id}`));
  }
}
