// The Telegram chats page: chats Telegram moved ("chat moved: update the rules", with the
// update offered when the rules live in the router's database) and chats the bot cannot
// reach (the reason, how many sales failed, when last).

import { api } from "./api.js";
import { byId, fill, h, say } from "./dom.js";
import { formatNumber, formatTime } from "./format.js";

let generation = 0;

export function mountChats() {
  byId("chats-refresh").addEventListener("click", () => showChats());
}

export async function showChats(done) {
  const mine = ++generation;
  const section = byId("chats-view");
  section.setAttribute("aria-busy", "true");
  say(byId("chats-error"), "");
  say(byId("chats-done"), done || "");
  let chats;
  try {
    chats = await api("telegram/chats");
  } catch (failure) {
    if (mine === generation) {
      say(byId("chats-error"), failure.message);
      section.removeAttribute("aria-busy");
    }
    return;
  }
  if (mine !== generation) return;
  say(byId("chats-read-only"), chats.rules_editable ? "" : chats.rules_read_only_reason);
  fill(byId("moves-rows"), chats.moves.map((move) => moveRow(move, chats.rules_editable)));
  byId("moves-empty").hidden = chats.moves.length > 0;
  fill(byId("unreachable-rows"), chats.unreachable.map(unreachableRow));
  byId("unreachable-empty").hidden = chats.unreachable.length > 0;
  section.removeAttribute("aria-busy");
}

function moveRow(move, editable) {
  let rules;
  if (move.targetologists.length === 0) {
    rules = h("span", { class: "muted" }, "Rules updated");
  } else {
    const names = move.targetologists.join(", ");
    rules = h(
      "div",
      {},
      h("strong", {}, "chat moved: update the rules"),
      h("div", { class: "muted" }, `telegram_chat_id of ${names}: ${move.old_chat_id} → `
        + move.current_chat_id),
      editable
        ? h("button", {
          type: "button",
          class: "update-rules",
          onclick: (event) => updateRules(event.currentTarget, move),
        }, "Update the rules")
        : null,
    );
  }
  return h(
    "tr",
    { dataset: { oldChatId: move.old_chat_id } },
    h("td", { dataset: { label: "Old chat" } }, move.old_chat_id),
    h("td", { dataset: { label: "Now" } }, move.current_chat_id),
    h("td", { dataset: { label: "Moved" } }, formatTime(move.moved_at)),
    h("td", { dataset: { label: "Rules" } }, rules),
  );
}

async function updateRules(button, move) {
  button.disabled = true;
  try {
    const result = await api("telegram/chat-moves/update-rules", {
      method: "POST",
      body: { old_chat_id: move.old_chat_id },
    });
    await showChats(
      `Rules version ${result.version}: ${result.old_chat_id} → ${result.new_chat_id}.`,
    );
  } catch (failure) {
    say(byId("chats-error"), failure.message);
    button.disabled = false;
  }
}

function unreachableRow(chat) {
  return h(
    "tr",
    { dataset: { chatId: chat.chat_id } },
    h("td", { dataset: { label: "Chat" } }, chat.chat_id),
    h("td", { dataset: { label: "Reason" } }, chat.reason || "—"),
    h("td", { class: "num", dataset: { label: "Failed" } }, formatNumber(chat.count)),
    h("td", { dataset: { label: "Last seen" } }, formatTime(chat.last_seen)),
  );
}
