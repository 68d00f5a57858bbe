// The AmoCRM integration on one card above every view: how the API is reached (with the
// "Connect AmoCRM" / "Reconnect AmoCRM" link when the account owner has to authorise it), the
// account, the token's expiry, the webhook (and "Re-enable the webhook" when AmoCRM disabled
// it), the last reconciliation and what it found, and the invalid answers of the last 2 hours.

import { api } from "./api.js";
import { byId, fill, h } from "./dom.js";
import { formatNumber, formatTime } from "./format.js";

const TEXT = {
  connected: "AmoCRM connected (OAuth).",
  static_token: "AmoCRM API: a long-lived token (AMOCRM_ACCESS_TOKEN).",
  off: "AmoCRM API off: no lead fetch, no reconciliation.",
  not_connected: "AmoCRM is not connected: no lead fetch, no reconciliation.",
  needs_reconnect: "AmoCRM refused the stored authorisation: API calls have stopped.",
};

const HOOK = {
  enabled: "enabled",
  disabled: "DISABLED by AmoCRM: no events arrive",
  missing: "not registered: no AmoCRM webhook points at /webhook/amocrm",
  unknown: "not checked yet",
};

// AmoCRM disables the webhook above this many invalid answers in 2 hours.
const AMOCRM_LIMIT = 100;

/** Show the AmoCRM card once per sign-in; a failure leaves it hidden. */
export async function showAmoCrm() {
  const block = byId("amocrm-status");
  let status;
  try {
    // The answer sets the cookie that binds the link's `state` to this browser.
    status = await api("amocrm", { keepCookies: true });
  } catch {
    block.hidden = true;
    return;
  }
  render(block, status);
  block.hidden = false;
}

function render(block, status, message) {
  const urgent = status.status === "needs_reconnect" || status.status === "not_connected";
  const hook = status.webhook || { state: "unknown" };
  const warn = urgent || hook.state === "disabled" || hook.state === "missing";
  block.className = `card amocrm-card ${warn ? "warn" : ""}`;
  const line = [h("span", {}, TEXT[status.status] || status.status)];
  if (status.problem) line.push(h("span", { class: "muted" }, status.problem));
  if (urgent && status.authorize_url) {
    const label = status.status === "needs_reconnect" ? "Reconnect AmoCRM" : "Connect AmoCRM";
    line.push(h("a", { href: status.authorize_url, rel: "noopener" }, label));
  }
  const facts = h("dl", { class: "amocrm-facts" });
  const fact = (term, ...value) => facts.append(h("dt", {}, term), h("dd", {}, ...value));
  if (status.account) fact("Account", `${status.account}.amocrm.ru`);
  if (status.expires_at) fact("Token expires", formatTime(status.expires_at));
  if (status.webhook) {
    const since = hook.disabled_since ? ` (last seen enabled ${formatTime(hook.disabled_since)})` : "";
    const checked = hook.checked_at ? `; checked ${formatTime(hook.checked_at)}` : "";
    fact("Webhook", h("span", { class: hook.state === "enabled" ? "" : "bad" },
      `${HOOK[hook.state] || hook.state}${since}`), checked);
  }
  if ("last_reconciliation" in status) fact("Last reconciliation", reconciliation(status.last_reconciliation));
  const invalid = status.invalid_answers_2h;
  if (invalid) {
    const causes = Object.entries(invalid.by_cause)
      .map(([cause, count]) => `${cause}: ${formatNumber(count)}`).join(", ");
    fact("Invalid answers, last 2 h", h("span", { class: invalid.total >= AMOCRM_LIMIT / 2 ? "bad" : "" },
      `${formatNumber(invalid.total)} of AmoCRM's ${AMOCRM_LIMIT}`), causes ? ` (${causes})` : "");
  }
  const parts = [h("p", { class: "amocrm-line" }, line)];
  if (facts.childElementCount) parts.push(facts);
  if (hook.state === "disabled" || hook.state === "missing") {
    const button = h("button", { type: "button" }, "Re-enable the webhook");
    button.addEventListener("click", () => reenable(block, status, button));
    parts.push(h("div", { class: "amocrm-actions" }, button,
      h("span", { class: "muted" }, "registers it in AmoCRM again, then reconciles the deals missed since it stopped")));
  }
  parts.push(h("p", { class: message?.error ? "callout error" : "muted", role: "status" }, message?.text || ""));
  fill(block, ...parts);
}

function reconciliation(last) {
  if (!last) return "none yet";
  const found = `${formatTime(last.at)}: ${formatNumber(last.leads_seen)} won deals seen, `
    + `${formatNumber(last.routed)} routed, ${formatNumber(last.already_routed)} already routed`;
  if (!last.errors.length) return found;
  return [found, h("span", { class: "bad" }, `; ${last.errors.length} problem(s): ${last.errors[0]}`)];
}

async function reenable(block, status, button) {
  button.disabled = true;
  button.textContent = "Re-enabling…";
  let done;
  try {
    done = await api("amocrm/webhook/reenable", { method: "POST" });
  } catch (error) {
    render(block, status, { error: true, text: error.message });
    return;
  }
  const found = done.reconciliation;
  const text = `Webhook registered again (${done.webhook.destination}). Reconciled from `
    + `${formatTime(done.reconciled_from)}: ${formatNumber(found.leads_seen)} won deals seen, `
    + `${formatNumber(found.routed.length)} routed.`;
  let fresh = status;
  try {
    fresh = await api("amocrm", { keepCookies: true });  // the link's state cookie
  } catch {
    // the action succeeded: keep the card as it was, with the message
  }
  render(block, fresh, { text });
}
