// The admin API: the token lives in sessionStorage (gone when the tab closes)
// and travels only in the Authorization header, never in a URL.

const TOKEN_KEY = "amoroute.adminToken";

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** Called when the API answers 401 with the stored token: the UI signs out. */
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/**
 * Call the API; resolves to the parsed JSON, rejects with an ApiError whose message is the
 * server's description ("status: must be one of …"). `params` skips empty values; `body`,
 * when given, is sent as JSON. Cookies are neither sent nor kept unless `keepCookies`:
 * the admin API authenticates by the bearer token alone.
 */
export async function api(
  path, { method = "GET", params = {}, body, bearer = token.get(), keepCookies = false } = {},
) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const search = query.toString();
  const url = `/api/admin/${path}${search ? `?${search}` : ""}`;
  let response;
  try {
    const headers = { Authorization: `Bearer ${bearer || ""}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: keepCookies ? "same-origin" : "omit",
    });
  } catch {
    throw new ApiError(0, "The edge did not answer: check the network and that it is running.");
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    const message = answer?.description || answer?.title || `HTTP ${response.status}`;
    const error = new ApiError(response.status, message, response.headers.get("Retry-After"));
    // The whole answer, for callers that read more than the message (a 409 names the
    // current version).
    error.body = answer;
    if (response.status === 401 && bearer === token.get()) onUnauthorized(error);
    throw error;
  }
  return answer;
}


/**
 * Fetch a file from the API (e.g. a CSV export) with the token in the header; resolves to
 * { blob, filename } (the name from Content-Disposition), rejects with an ApiError.
 */
export async function apiDownload(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  let response;
  try {
    response = await fetch(`/api/admin/${path}?${query}`, {
      headers: { Authorization: `Bearer ${token.get() || ""}` },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "The edge did not answer: check the network and that it is running.");
  }
  if (!response.ok) {
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, answer?.description || `HTTP ${response.status}`);
  }
  const disposition = response.headers.get("Content-Disposition") || "";
  const filename = disposition.match(/filename="([^"]+)"/)?.[1] || null;
  return { blob: await response.blob(), filename };
}
