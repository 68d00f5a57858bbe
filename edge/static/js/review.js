// The review queue: unknown sales grouped by normalised source, the most revenue first, each
// with who it most likely belongs to. A suggestion becomes a proposed rule change (the diff
// shown first, saved with PUT /api/admin/rules on confirm, or previewed over the page's range
// and applied to the sales already logged: edge/static/js/reattribution.js); a group can be
// marked not attributable with a reason.

import { api } from "./api.js";
import { byId, fill, h, say } from "./dom.js";
import { formatNumber, formatTime } from "./format.js";
import { previewReattribution } from "./reattribution.js";

let generation = 0;
let navigate = () => {};
// "file" when the rules are managed in a file (ROUTING_RULES_SOURCE=file): nothing is saved here.
let rulesSource = null;

/** Wire the page's controls once; `go("review", params)` updates the deep link. */
export function mountReview(go) {
  navigate = go;
  const form = byId("review-range");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate("review", rangeParams());
  });
  byId("review-refresh").addEventListener("click", () => load(rangeParams()));
}

/** Show the queue for a deep link's parameters (received_from, received_to: local dates). */
export function showReview(params) {
  const form = byId("review-range");
  form.elements.from.value = params.get("from") || "";
  form.elements.to.value = params.get("to") || "";
  form.elements.dismissed.checked = params.get("dismissed") === "1";
  load(params);
}

function rangeParams() {
  const form = byId("review-range");
  const params = new URLSearchParams();
  if (form.elements.from.value) params.set("from", form.elements.from.value);
  if (form.elements.to.value) params.set("to", form.elements.to.value);
  if (form.elements.dismissed.checked) params.set("dismissed", "1");
  return params;
}

function localMidnight(date) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(y, m - 1, d);
}

async function load(params) {
  const mine = ++generation;
  const section = byId("review-view");
  section.setAttribute("aria-busy", "true");
  let data;
  try {
    const to = params.get("to");
    data = await api("review/unknown", {
      params: {
        received_from: params.get("from") ? localMidnight(params.get("from")).toISOString() : "",
        // The whole last day, where the operator is.
        received_to: to ? new Date(localMidnight(to).getTime() + 86400000).toISOString() : "",
        include_dismissed: params.get("dismissed") === "1" ? "true" : "",
      },
    });
  } catch (failure) {
    if (mine === generation) {
      say(byId("review-error"), failure.message);
      fill(byId("review-groups"));
      section.removeAttribute("aria-busy");
    }
    return;
  }
  if (mine !== generation) return;
  say(byId("review-error"), "");
  rulesSource = data.rules_source;
  say(byId("review-suggestions-error"), data.suggestions_error
    ? `No suggestions: ${data.suggestions_error}` : "");
  byId("review-summary").textContent = summary(data);
  fill(byId("review-groups"), data.groups.map(groupRow));
  byId("review-empty").hidden = data.groups.length > 0;
  section.removeAttribute("aria-busy");
}

function summary(data) {
  const shown = data.groups.length < data.total_groups
    ? ` (the ${data.groups.length} with the most revenue shown)` : "";
  const rules = data.rules_version ? ` Suggestions against rules version ${data.rules_version}.` : "";
  return `${formatNumber(data.total_count)} unknown sales, revenue ${formatNumber(data.total_revenue)}, `
    + `in ${formatNumber(data.total_groups)} groups${shown}.${rules}`;
}

function cell(label, ...content) {
  const attrs = label.startsWith("#") ? { class: "num", dataset: { label: label.slice(1) } }
    : { dataset: { label } };
  return h("td", attrs, ...content);
}

function groupRow(group) {
  const row = h("tr", { class: "review-group", dataset: { key: group.key } },
    cell("Source",
      h("div", { class: "mono review-key" }, group.key.trim() ? group.key : "(no UTM marks)"),
      h("ul", { class: "variants" }, group.variants.map((v) => h("li", {},
        h("span", { class: "mono" }, quoted(v.utm_source)),
        v.utm_campaign ? [" · ", h("span", { class: "mono" }, quoted(v.utm_campaign))] : null,
        h("span", { class: "muted" }, ` ×${formatNumber(v.count)}`))))),
    cell("#Sales", formatNumber(group.count)),
    cell("#Revenue", formatNumber(group.revenue)),
    cell("Seen", formatTime(group.first_seen), h("br"), h("span", { class: "muted" }, "to "),
      formatTime(group.last_seen)),
    cell("Leads", h("ul", { class: "lead-links" }, group.lead_ids.map((lead, i) => h("li", {},
      h("a", { href: `#/logs/${group.log_ids[i]}`, title: `webhook log ${group.log_ids[i]}` },
        String(lead)))))),
    cell("Suggestion", suggestionCell(group)));
  return row;
}

function quoted(value) {
  return value === null || value === undefined ? "(none)" : `“${value}”`;
}

function suggestionCell(group) {
  const box = h("div", { class: "review-suggestion" });
  const [best, ...others] = group.suggestions;
  if (group.dismissed) {
    fill(box,
      h("p", { class: "dismissed" }, `Not attributable: ${group.dismissed.reason}`),
      h("p", { class: "muted" }, `by ${group.dismissed.by}, ${formatTime(group.dismissed.at)}`),
      h("button", { type: "button", class: "secondary", onclick: () => undismiss(group, box) },
        "Put back in the queue"));
    return box;
  }
  if (!best) {
    box.append(h("p", { class: "muted" }, "Nobody close."));
  } else {
    // Through h(): it leaves out the parts that do not apply (null), append() would not.
    box.append(...h("div", {},
      h("p", { class: "suggested" }, h("strong", {}, best.target),
        h("span", { class: "badge kind" }, best.kind),
        best.marks_covered < group.variants.length
          ? h("span", { class: "muted" }, ` (${best.marks_covered} of ${group.variants.length} spellings)`) : null),
      h("p", { class: "why" }, best.why),
      others.length ? h("p", { class: "muted" },
        `Also close: ${others.map((s) => s.target).join(", ")}`) : null).childNodes);
    box.append(proposeControl(group, best));
  }
  box.append(dismissControl(group));
  return box;
}

function proposeControl(group, best) {
  if (best.already_in_rules) {
    return h("p", { class: "callout info" },
      "The current rules already credit these sales: replay them to credit them.");
  }
  if (!best.proposed_rules_yaml) {
    return h("p", { class: "muted" },
      "No rule change to propose: the router keeps no rules versions.");
  }
  const panel = h("div", { class: "proposal", hidden: true });
  const button = h("button", { type: "button", class: "propose", onclick: () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) showProposal(panel, group, best);
  } }, "Propose rule change");
  return h("div", {}, button, panel);
}

function showProposal(panel, group, best) {
  const comment = `Review: credit '${group.source}' to ${best.target}`;
  const result = h("p", { class: "proposal-result", role: "status", hidden: true });
  const confirm = h("button", { type: "button", class: "confirm" }, "Save this change");
  confirm.addEventListener("click", () => save(best, comment, confirm, result));
  const whatIf = h("div", { class: "reattribution", hidden: true });
  const preview = h("button", { type: "button", class: "preview-reattribution" },
    "Preview re-attribution");
  preview.addEventListener("click", () => previewReattribution(whatIf, {
    yaml: best.proposed_rules_yaml, expectedVersion: best.rules_version, comment,
    ...reviewRange(), onApplied: () => setTimeout(() => load(rangeParams()), 1500),
  }));
  fill(panel,
    h("p", {}, `Rules version ${best.rules_version} with this change:`),
    h("pre", { class: "diff" }, best.proposed_diff.split("\n").map((line) => h("span", {
      class: line.startsWith("+") && !line.startsWith("+++") ? "add"
        : line.startsWith("-") && !line.startsWith("---") ? "del" : "",
    }, `${line}\n`))),
    h("p", { class: "muted" }, `Comment: ${comment}`),
    rulesSource === "file"
      ? h("p", { class: "callout info" }, "The rules are managed in a file "
        + "(ROUTING_RULES_SOURCE=file): make this change there.")
      : h("div", { class: "detail-actions" }, preview, confirm,
        h("button", { type: "button", class: "secondary", onclick: () => { panel.hidden = true; } },
          "Cancel")),
    result, whatIf);
}

/** The page's range as moments: from its first day (or ever) to the end of its last (or now). */
function reviewRange() {
  const form = byId("review-range");
  const from = form.elements.from.value ? localMidnight(form.elements.from.value)
    : new Date(Date.UTC(2000, 0, 1));
  const to = form.elements.to.value
    ? new Date(localMidnight(form.elements.to.value).getTime() + 86400000)
    : new Date(Date.now() + 86400000);
  return { from, to };
}

async function save(best, comment, button, result) {
  button.disabled = true;
  try {
    const saved = await api("rules", {
      method: "PUT",
      body: { yaml: best.proposed_rules_yaml, expected_version: best.rules_version, comment },
    });
    result.className = "proposal-result replay-result";
    say(result, `Saved as rules version ${saved.version}. New sales are credited; `
      + "replay the ones in this group to credit them too.");
    setTimeout(() => load(rangeParams()), 1500);
  } catch (failure) {
    result.className = "proposal-result replay-result error";
    if (failure.status === 409) {
      say(result, "The rules changed since this suggestion was made: reloading the queue "
        + "with suggestions against the current rules.");
      setTimeout(() => load(rangeParams()), 1500);
    } else {
      say(result, failure.message);
      button.disabled = false;
    }
  }
}

function dismissControl(group) {
  const form = h("form", { class: "dismiss", hidden: true });
  const reason = h("input", { name: "reason", required: true, maxlength: 500,
    placeholder: "e.g. organic search, direct" });
  const error = h("p", { class: "error-line", role: "alert", hidden: true });
  form.append(h("label", {}, "Why is it not attributable?", reason),
    h("div", { class: "detail-actions" },
      h("button", { type: "submit" }, "Mark not attributable"),
      h("button", { type: "button", class: "secondary", onclick: () => { form.hidden = true; } },
        "Cancel")),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("review/unknown/dismissals", {
        method: "POST", body: { key: group.key, reason: reason.value } });
    } catch (failure) {
      say(error, failure.message);
      return;
    }
    load(rangeParams());
  });
  const open = h("button", { type: "button", class: "secondary not-attributable", onclick: () => {
    form.hidden = false;
    reason.focus();
  } }, "Not attributable…");
  return h("div", {}, open, form);
}

async function undismiss(group, box) {
  try {
    await api("review/unknown/dismissals", { method: "DELETE", params: { key: group.key } });
  } catch (failure) {
    box.append(h("p", { class: "error-line", role: "alert" }, failure.message));
    return;
  }
  load(rangeParams());
}
