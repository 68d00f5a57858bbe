// The AmoCRM API access above every view: connected, or the "Connect AmoCRM" /
// "Reconnect AmoCRM" link when the account owner has to authorise the integration.

import { api } from "./api.js";
import { byId, fill, h } from "./dom.js";

const TEXT = {
  connected: "AmoCRM connected (OAuth).",
  static_token: "AmoCRM API: a long-lived token (AMOCRM_ACCESS_TOKEN).",
  off: "AmoCRM API off: no lead fetch, no reconciliation.",
  not_connected: "AmoCRM is not connected: no lead fetch, no reconciliation.",
  needs_reconnect: "AmoCRM refused the stored authorisation: API calls have stopped.",
};

/** Show the AmoCRM access once per sign-in; a failure leaves the block hidden. */
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
  const urgent = status.status === "needs_reconnect" || status.status === "not_connected";
  block.className = `callout ${urgent ? "warn" : "info"}`;
  const parts = [h("span", {}, TEXT[status.status] || status.status)];
  if (status.problem) parts.push(h("span", { class: "muted" }, status.problem));
  if (urgent && status.authorize_url) {
    const label = status.status === "needs_reconnect" ? "Reconnect AmoCRM" : "Connect AmoCRM";
    parts.push(h("a", { href: status.authorize_url, rel: "noopener" }, label));
  }
  fill(block, ...parts);
  block.hidden = false;
}
