// Entry point: sign-in, the three views and deep links (#/view?filters).

import { api, token, whenUnauthorized } from "./api.js";
import { showAmoCrm } from "./amocrm.js";
import { forgetCatalog } from "./amocrm_catalog.js";
import { byId, say } from "./dom.js";
import { hideLogs, mountLogs, showLogs } from "./logs.js";
import { mountSales, showSales } from "./sales.js";
import { mountReview, showReview } from "./review.js";
import { mountRules, showRules } from "./rules.js";
import { mountChats, showChats } from "./chats.js";
import { mountZonePicker } from "./zone.js";

const VIEWS = { logs: "Webhook logs", traffic: "Traffic sales", referral: "Referral conversions" };
VIEWS.review = "Review";
VIEWS.rules = "Routing rules";
VIEWS.chats = "Telegram chats";

// The AmoCRM access block is asked for once per sign-in.
let amocrmShown = false;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const cut = raw.indexOf("?");
  const path = cut < 0 ? raw : raw.slice(0, cut);
  const params = new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1));
  // #/logs/{id}: one event, opened (the webhook's answer links here).
  const one = path.match(/^logs\/(\d{1,19})$/);
  if (one) {
    params.set("id", one[1]);
    return { view: "logs", params };
  }
  return { view: path in VIEWS ? path : "logs", params };
}

/** Go to a view with parameters: the URL's hash is the deep link. */
function go(view, params) {
  const query = params.toString();
  const hash = `#/${view}${query ? `?${query}` : ""}`;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  if (!token.get()) {
    showSignIn();
    return;
  }
  const { view, params } = parseHash();
  byId("sign-in-view").hidden = true;
  byId("nav").hidden = false;
  byId("sign-out").hidden = false;
  if (!amocrmShown) {
    amocrmShown = true;
    showAmoCrm();
  }
  for (const name of Object.keys(VIEWS)) {
    byId(`${name}-view`).hidden = name !== view;
    const link = byId(`nav-${name}`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${VIEWS[view]} · amoroute admin`;
  if (view === "logs") showLogs(params);
  else if (view === "review") {
    hideLogs();
    showReview(params);
  } else if (view === "rules") {
    hideLogs();
    showRules();
  } else if (view === "chats") {
    hideLogs();
    showChats();
  } else {
    hideLogs();
    showSales(view, params);
  }
}

function showSignIn(message) {
  hideLogs();
  amocrmShown = false;
  forgetCatalog();
  byId("amocrm-status").hidden = true;
  for (const name of Object.keys(VIEWS)) byId(`${name}-view`).hidden = true;
  byId("nav").hidden = true;
  byId("sign-out").hidden = true;
  byId("sign-in-view").hidden = false;
  document.title = "Sign in · amoroute admin";
  say(byId("sign-in-error"), message);
  byId("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("token");
  const value = input.value.trim();
  const button = byId("sign-in-button");
  if (!value) return;
  button.disabled = true;
  try {
    await api("webhook-stats", { params: { window: "1h" }, bearer: value });
  } catch (error) {
    const message = error.status === 401 ? "That token is not the admin token." : error.message;
    say(byId("sign-in-error"), message);
    button.disabled = false;
    input.select();
    return;
  }
  button.disabled = false;
  input.value = "";
  token.set(value);
  route();
}

function signOut() {
  token.clear();
  showSignIn("Signed out.");
}

/** `make run` prints a sign-in link `/admin/#token=…`: keep the token for this tab, then
 * drop it from the address bar and the history so it is not shared or bookmarked. */
function takeTokenFromLink() {
  const match = location.hash.match(/^#token=([A-Za-z0-9._~-]+)$/);
  if (!match) return;
  token.set(match[1]);
  history.replaceState(null, "", location.pathname + location.search);
}

takeTokenFromLink();
mountLogs((params) => go("logs", params));
mountSales(go);
mountReview(go);
mountRules();
mountChats();
mountZonePicker(byId("time-zone"), () => route());
byId("sign-in-form").addEventListener("submit", signIn);
byId("sign-out").addEventListener("click", signOut);
whenUnauthorized(() => {
  token.clear();
  showSignIn("The admin token was refused (it may have changed): sign in again.");
});
window.addEventListener("hashchange", route);
route();
