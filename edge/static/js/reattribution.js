// What-if, then apply: candidate rules previewed over a range (which won deals change hands,
// and per party the count and revenue before and after), then applied with one button: the
// rules become the next version and a job re-routes every changed deal, its progress polled
// until it ends.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { formatNumber } from "./format.js";

const POLL_MS = 1000;
const RUNNING = ["queued", "running"];

/**
 * Preview `yaml` against the rules in force (version `expectedVersion`) over [from, to) into
 * `panel`, then offer Apply. `onApplied` runs once the job has ended.
 */
export async function previewReattribution(panel, { yaml, expectedVersion, comment, from, to,
  onApplied = () => {} }) {
  const range = { received_from: from.toISOString(), received_to: to.toISOString() };
  fill(panel, h("p", { role: "status" }, "Comparing every won deal in range under both rules…"));
  panel.hidden = false;
  let preview;
  try {
    preview = await api("reattribution/preview", { method: "POST", body: { yaml, ...range } });
  } catch (failure) {
    fill(panel, h("p", { class: "error", role: "alert" }, failure.message));
    return;
  }
  const result = h("div", { class: "reattribution-job" });
  const apply = h("button", { type: "button", class: "reattribution-apply" },
    `Apply: re-attribute ${formatNumber(preview.changed)} deals`);
  const announce = h("input", { type: "checkbox", name: "announce" });
  apply.addEventListener("click", async () => {
    apply.disabled = true;
    try {
      const answer = await api("reattribution", {
        method: "POST",
        body: { yaml, ...range, expected_version: expectedVersion, comment,
          announce: announce.checked },
      });
      if (answer.job === null) {
        fill(result, h("p", { class: "reattribution-progress", role: "status" }, answer.message));
        onApplied();
        return;
      }
      follow(result, answer.job, onApplied);
    } catch (failure) {
      apply.disabled = false;
      fill(result, h("p", { class: "error", role: "alert" }, failure.status === 409
        ? `${failure.message}. Nothing was applied.` : failure.message));
    }
  });
  fill(panel,
    h("p", { class: "reattribution-summary" },
      `${formatNumber(preview.changed)} of ${formatNumber(preview.events)} won deals in range `
      + `change hands under these rules (rules version ${preview.rules_version} now).`),
    totalsTable(preview.totals),
    preview.changed
      ? h("div", { class: "detail-actions" }, apply,
        h("label", { class: "inline" }, announce, " Announce re-attributed traffic sales in Telegram"))
      : h("p", { class: "muted" }, "Nothing would change: nothing to apply."),
    result);
}

function totalsTable(totals) {
  const pair = (figures) => `${formatNumber(figures.count)} · ${formatNumber(figures.revenue)}`;
  return h("table", { class: "reattribution-totals" },
    h("thead", {}, h("tr", {}, ["Party", "Before", "After", "Difference"].map((t) => h("th", {}, t)))),
    h("tbody", {}, totals.map((t) => h("tr", { dataset: { party: t.party } },
      h("td", { dataset: { label: "Party" } }, t.party),
      h("td", { class: "num", dataset: { label: "Before" } }, pair(t.before)),
      h("td", { class: "num", dataset: { label: "After" } }, pair(t.after)),
      h("td", { class: "num", dataset: { label: "Difference" } }, pair(t.diff))))));
}

function follow(box, job, onApplied) {
  render(box, job);
  if (!RUNNING.includes(job.state)) {
    onApplied();
    return;
  }
  const poller = setInterval(async () => {
    try {
      const now = await api(`reattribution/${job.id}`);
      render(box, now);
      if (!RUNNING.includes(now.state)) {
        clearInterval(poller);
        onApplied();
      }
    } catch (failure) {
      clearInterval(poller);
      box.append(h("p", { class: "error", role: "alert" }, failure.message));
    }
  }, POLL_MS);
}

function render(box, job) {
  const total = job.total || 0;
  const c = job.changes;
  fill(box,
    h("p", { class: "reattribution-progress", role: "status", dataset: { state: job.state } },
      `Re-attribution #${job.id} (rules version ${job.from_version} → ${job.to_version}, by `
      + `${job.created_by}): ${job.state}, ${formatNumber(job.done)} of ${formatNumber(total)} `
      + `re-routed — ${formatNumber(c.credited)} credited, ${formatNumber(c.reattributed)} `
      + `re-attributed, ${formatNumber(c.withdrawn)} withdrawn`
      + (job.failed ? `, ${formatNumber(job.failed)} could not be re-routed` : "")
      + (job.error ? ` (${job.error})` : "")),
    h("progress", { max: String(Math.max(total, 1)), value: String(job.done + job.failed) }));
}
