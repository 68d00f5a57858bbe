// The routing rules page: the version in force, an editor that saves a new version
// (starting from the version it loaded, so two editors never overwrite each other), and
// the history of versions with their diffs. Read-only when the rules come from a file.

import { showCatalog } from "./amocrm_catalog.js";
import { api } from "./api.js";
import { byId, fill, h, say } from "./dom.js";
import { formatTime } from "./format.js";

const PAGE = 20;

// What the editor started from: the version sent back as expected_version on Save.
let loaded = null;
let generation = 0;
let nextPage = null;

export function mountRules() {
  byId("rules-form").addEventListener("submit", save);
  byId("rules-reload").addEventListener("click", () => {
    showRules();
    showCatalog(true);
  });
  byId("rules-load-latest").addEventListener("click", () => showRules());
  byId("rules-more").addEventListener("click", () => loadHistory(false));
}

/** Load the rules in force into the editor, and the newest versions. */
export async function showRules() {
  const mine = ++generation;
  showCatalog();
  const section = byId("rules-view");
  section.setAttribute("aria-busy", "true");
  clearMessages();
  let current;
  try {
    current = await api("rules");
  } catch (failure) {
    if (mine === generation) {
      say(byId("rules-error"), failure.message);
      section.removeAttribute("aria-busy");
    }
    return;
  }
  if (mine !== generation) return;
  loaded = current;
  byId("rules-yaml").value = current.yaml;
  byId("rules-comment").value = "";
  showCurrent(current);
  section.removeAttribute("aria-busy");
  await loadHistory(true);
}

function showCurrent(current) {
  const readOnly = current.read_only;
  const yaml = byId("rules-yaml");
  yaml.readOnly = readOnly;
  yaml.setAttribute("aria-readonly", String(readOnly));
  byId("rules-save-row").hidden = readOnly;
  say(byId("rules-read-only"), readOnly ? current.read_only_reason : "");
  fill(byId("rules-meta"), describeVersion(current));
}

function describeVersion(version) {
  if (version.version === 0) {
    return [
      h("strong", {}, "From the file"), " ", h("code", {}, version.path || ""),
      version.created_at ? ` · loaded ${formatTime(version.created_at)}` : "",
    ];
  }
  return [
    h("strong", { id: "rules-version" }, `Version ${version.version}`),
    " · saved by ", h("span", { class: "rules-author" }, version.author || "—"),
    " · ", formatTime(version.created_at),
    version.comment ? [" · ", h("q", {}, version.comment)] : "",
  ];
}

function clearMessages() {
  say(byId("rules-error"), "");
  say(byId("rules-saved"), "");
  byId("rules-conflict").hidden = true;
  byId("rules-problems").hidden = true;
}

async function save(event) {
  event.preventDefault();
  if (!loaded || loaded.read_only) return;
  const button = byId("rules-save");
  clearMessages();
  button.disabled = true;
  let stored;
  try {
    stored = await api("rules", {
      method: "PUT",
      body: {
        yaml: byId("rules-yaml").value,
        expected_version: loaded.version,
        comment: byId("rules-comment").value.trim(),
      },
    });
  } catch (failure) {
    button.disabled = false;
    showSaveFailure(failure);
    return;
  }
  button.disabled = false;
  loaded = { ...loaded, ...stored };
  byId("rules-comment").value = "";
  showCurrent(loaded);
  say(byId("rules-saved"), `Saved as version ${stored.version}.`);
  await loadHistory(true);
}

function showSaveFailure(failure) {
  if (failure.status === 409) {
    const who = failure.body?.current_author;
    const version = failure.body?.current_version;
    const text = version
      ? `${who || "Someone else"} saved version ${version} while you were editing version `
        + `${loaded.version}. Nothing of yours was saved; your text is still in the editor. `
        + `Load version ${version} to edit from it (your changes here are replaced).`
      : `${failure.message}. Nothing of yours was saved; load the current version to edit from it.`;
    byId("rules-conflict-text").textContent = text;
    byId("rules-load-latest").textContent = version ? `Load version ${version}` : "Load the current version";
    byId("rules-conflict").hidden = false;
    return;
  }
  if (failure.status === 400) {
    fill(byId("rules-problem-list"), problems(failure.message).map((p) => h("li", {}, p)));
    byId("rules-problems").hidden = false;
    return;
  }
  const retry = failure.retryAfter ? ` Try again in ${failure.retryAfter} s.` : "";
  say(byId("rules-error"), `Not saved: ${failure.message}${retry}`);
}

/** The router names each problem "key: message", joined by "; " after "router_svc: yaml: ". */
function problems(description) {
  const text = description.replace(/^router_svc: (yaml: )?/, "");
  return text.split(/; (?=[\w.[\]]+: )/).filter(Boolean);
}

async function loadHistory(fromStart) {
  const mine = generation;
  const list = byId("rules-history");
  const more = byId("rules-more");
  let page;
  try {
    page = await api("rules/versions", {
      params: { page_size: PAGE, page_token: fromStart ? "" : nextPage },
    });
  } catch (failure) {
    if (mine === generation) say(byId("rules-error"), `History: ${failure.message}`);
    return;
  }
  if (mine !== generation) return;
  if (fromStart) fill(list);
  list.append(...page.items.map(historyItem));
  nextPage = page.next_page_token;
  more.hidden = !nextPage;
  const empty = byId("rules-history-empty");
  empty.hidden = list.children.length > 0;
  empty.textContent = loaded?.read_only
    ? "No versions are stored here: the rules come from the file, whose history is in git."
    : "No versions yet.";
}

function historyItem(version) {
  return h("li", { class: "rules-version", dataset: { version: version.version } },
    h("details", {},
      h("summary", {},
        h("strong", {}, `Version ${version.version}`),
        " · ", version.author || "—",
        " · ", formatTime(version.created_at),
        version.comment ? [" · ", h("q", {}, version.comment)] : ""),
      diffView(version.diff)));
}

/** A unified diff, a line each, coloured by what the line does. */
function diffView(diff) {
  if (!diff) return h("p", { class: "muted" }, "No change to the text.");
  const lines = diff.replace(/\n$/, "").split("\n");
  return h("pre", { class: "diff" }, lines.map((line) => {
    let kind = "same";
    if (line.startsWith("+++") || line.startsWith("---")) kind = "file";
    else if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    return h("span", { class: `diff-line diff-${kind}` }, line || " ");
  }));
}
