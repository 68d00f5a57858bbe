// Beside the rules editor: the AmoCRM account's pipelines with their statuses and the lead
// custom fields, read from the AmoCRM API, so the rules name the won status and the UTM fields
// without copying ids from AmoCRM. A click inserts the id at the editor's cursor.

import { api } from "./api.js";
import { byId, fill, h } from "./dom.js";

let loaded = false;
// The API access states in which AmoCRM can be asked (GET /api/admin/amocrm's status).
const USABLE = new Set(["connected", "static_token"]);

/** Fill the side list once per sign-in (Reload on the rules page reads it again). */
export async function showCatalog(again = false) {
  if (loaded && !again) return;
  loaded = true;
  const status = byId("amocrm-catalog-status");
  status.textContent = "Reading the AmoCRM account…";
  let pipelines;
  let fields;
  try {
    // Asked only when the API can answer, so an account without it shows no failed request.
    const access = await api("amocrm");
    if (!USABLE.has(access.status)) {
      status.textContent = "The AmoCRM API is not in use (see the AmoCRM card): pipelines, "
        + "statuses and fields cannot be listed.";
      return;
    }
    [pipelines, fields] = await Promise.all([api("amocrm/pipelines"), api("amocrm/custom-fields")]);
  } catch (failure) {
    loaded = false;
    fill(byId("amocrm-pipelines"));
    fill(byId("amocrm-fields"));
    status.textContent = failure.message;
    return;
  }
  status.textContent = "Click an entry to insert its id at the editor's cursor.";
  fill(byId("amocrm-pipelines"), pipelines.pipelines.map((pipeline) => h("li", {},
    insertButton(pipeline.id, `${pipeline.name}${pipeline.is_archive ? " (archived)" : ""}`,
      `pipeline ${pipeline.name}`),
    h("ul", {}, pipeline.statuses.map((status) => h("li", {},
      insertButton(status.id, status.name, `status ${status.name} of ${pipeline.name}`)))))));
  fill(byId("amocrm-fields"), fields.custom_fields.map((field) => h("li", {},
    insertButton(field.id, field.code ? `${field.name} (${field.code})` : field.name,
      `custom field ${field.name}`),
    h("span", { class: "muted" }, ` ${field.type}`))));
}

/** Forget the lists (sign-out). */
export function forgetCatalog() {
  loaded = false;
}

function insertButton(id, text, what) {
  return h("button", {
    type: "button",
    class: "link-like",
    "aria-label": `Insert ${id}, ${what}`,
    onclick: () => insert(String(id)),
  }, h("span", {}, text), " ", h("code", {}, String(id)));
}

function insert(text) {
  const editor = byId("rules-yaml");
  if (editor.readOnly) return;
  const { selectionStart: start, selectionEnd: end, value } = editor;
  editor.value = value.slice(0, start) + text + value.slice(end);
  editor.focus();
  editor.setSelectionRange(start + text.length, start + text.length);
}
