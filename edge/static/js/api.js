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
 * server's description ("status: must be one of …"). `params` skips empty values.
 */
export async function api(path, { method = "GET", params = {}, bearer = token.get() } = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const search = query.toString();
  const url = `/api/admin/${path}${search ? `?${search}` : ""}`;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: { Authorization: `Bearer ${bearer || ""}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "The edge did not answer: check the network and that it is running.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body?.description || body?.title || `HTTP ${response.status}`;
    const error = new ApiError(response.status, message, response.headers.get("Retry-After"));
    if (response.status === 401 && bearer === token.get()) onUnauthorized(error);
    throw error;
  }
  return body;
}

/**
 * Send a JSON body (PUT, POST); resolves and rejects as api() does, and the ApiError
 * also carries the answer's JSON as `body` (a 409 says which version is current).
 */
export async function sendJson(path, method, payload) {
  const bearer = token.get();
  let response;
  try {
    response = await fetch(`/api/admin/${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${bearer || ""}`,
        Accept: "application/json",
        "Content-Type": "application/json",
      },
      body: JSON.stringify(payload),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "The edge did not answer: check the network and that it is running.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body?.description || body?.title || `HTTP ${response.status}`;
    const error = new ApiError(response.status, message, response.headers.get("Retry-After"));
    error.body = body;
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return body;
}
