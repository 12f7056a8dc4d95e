// Shared by the phone pages: strings, the API with the page's CSRF token, retries that
// never act twice (Idempotency-Key), and small DOM helpers. No third-party code.

const messages = JSON.parse(document.getElementById("messages").textContent);

export function t(key, values = {}) {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export const csrf = document.querySelector('meta[name="csrf-token"]').content;
export const deviceId = document.querySelector('meta[name="device-id"]').content;

export class Problem extends Error {
  constructor(status, body) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || "network";
    this.body = body || {};
  }

  // What to show a person: our catalogue's words for the code, else the service's.
  get message_() {
    const key = `error.${this.code}`;
    const known = t(key);
    return known === key ? t("error.generic", { detail: this.message }) : known;
  }
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One API call. A state change carries an Idempotency-Key kept across retries, so a
// request whose answer was lost on a flaky network is answered, not repeated.
export async function api(method, path, body, { retries = 3, onRetry } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf;
    headers["Idempotency-Key"] = newKey();
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (error) {
      if (attempt >= retries) throw new Problem(0, { code: "network", detail: String(error) });
      onRetry?.(attempt + 1);
      await sleep(500 * 2 ** attempt);
      continue;
    }
    if (response.status === 409 && response.headers.get("Retry-After") && attempt < retries) {
      await sleep(1000); // the first try of this key is still running
      continue;
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : null;
    if (!response.ok) throw new Problem(response.status, data);
    return data;
  }
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// A frame as JPEG, encoded now. The browsers' own asynchronous encoders (toBlob,
// convertToBlob) wait for the main thread to fall idle, and a page playing a live camera
// preview seldom does: measured in Chromium, 0.4 to 6.6 s a frame, which stretched a 5 s
// face check past 30 s and let the film miss the turns in it. Encoding here costs a few
// milliseconds of the main thread a frame, at the eight frames a second a check takes.
export function jpegOf(canvas, quality) {
  const url = canvas.toDataURL("image/jpeg", quality);
  const text = atob(url.slice(url.indexOf(",") + 1));
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return Promise.resolve(new Blob([bytes], { type: "image/jpeg" }));
}

export function showProblem(container, problem) {
  container.replaceChildren(
    el("div", { class: "result fail", role: "alert", id: "problem", "data-code": problem.code },
      problem instanceof Problem ? problem.message_ : t("error.generic", { detail: String(problem) })),
  );
}

// A document's pages as images: sharp on the phone's screen (at most 2 device pixels per
// CSS pixel) and no wider, loaded as they come near the screen, not all at once on a slow
// connection; a page image is the heaviest thing these pages send.
export function pageImages(urls, altKey) {
  const ratio = Math.min(2, window.devicePixelRatio || 1);
  const width = Math.min(1600, Math.max(320, Math.round(Math.min(window.innerWidth, 640) * ratio)));
  const nearby = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        entry.target.src = entry.target.dataset.src;
        nearby.unobserve(entry.target);
      }
    },
    { rootMargin: "200px 0px" },
  );
  return urls.map((url, index) => {
    const image = el("img", {
      "data-src": `${url}&width=${width}`,
      alt: t(altKey, { n: index + 1 }),
      width: "640",
      height: "905",
    });
    if (index === 0) image.src = image.dataset.src;
    else nearby.observe(image);
    return image;
  });
}

// Sign the committee's report with the fresh check just passed (its session is a cookie),
// approved by this phone's passkey (the in-person path, with its PIN, has none).
export async function signReport({ withPasskey = true } = {}) {
  const overview = await api("GET", "/api/v1/evaluation");
  if (!overview.report_document_id) throw new Problem(409, { code: "report-missing", detail: t("report.none") });
  const url = `/api/v1/documents/${overview.report_document_id}`;
  if (!withPasskey) return api("POST", `${url}/signatures`, {});
  // The approval prepares this member's signature on the report as it stands; when a
  // colleague's signature lands first, the server refuses it (document-moved-on) and the
  // phone approves the report as it now stands.
  for (let attempt = 1; ; attempt++) {
    const issued = await api("POST", `${url}/approval`, {});
    const passkey = { nonce: issued.nonce, assertion: await getPasskey(issued.publicKey) };
    try {
      return await api("POST", `${url}/signatures`, { passkey });
    } catch (error) {
      if (!(error instanceof Problem) || error.code !== "document-moved-on" || attempt >= 5) throw error;
    }
  }
}

// Passkeys. WebAuthn's options and answers travel as JSON with base64url binary fields
// (the server's fido2 reads and writes that form); here they become ArrayBuffers and back.
const fromB64url = (text) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=")), (c) =>
    c.charCodeAt(0),
  );
const toB64url = (buffer) =>
  btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

// Some in-app browsers (messaging apps) and older phones have no WebAuthn.
export const passkeysAvailable = () =>
  Boolean(window.isSecureContext && window.PublicKeyCredential && navigator.credentials?.get);

function passkeyProblem(error) {
  if (error instanceof Problem) return error;
  const code = error?.name === "NotAllowedError" ? "passkey-cancelled" : "passkey-unsupported";
  return new Problem(0, { code, detail: error?.message || String(error) });
}

// RegistrationResponseJSON / AuthenticationResponseJSON, as the server's fido2 reads them.
function asJson(credential, fields) {
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null,
    response: { clientDataJSON: toB64url(credential.response.clientDataJSON), ...fields },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

function descriptors(list) {
  return (list || []).map((item) => ({ ...item, id: fromB64url(item.id) }));
}

export async function createPasskey(options) {
  if (!passkeysAvailable()) throw new Problem(0, { code: "passkey-unsupported" });
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: descriptors(options.excludeCredentials),
  };
  let credential;
  try {
    credential = await navigator.credentials.create({ publicKey });
  } catch (error) {
    throw passkeyProblem(error);
  }
  const response = credential.response;
  return asJson(credential, {
    attestationObject: toB64url(response.attestationObject),
    transports: response.getTransports ? response.getTransports() : [],
  });
}

export async function getPasskey(options) {
  if (!passkeysAvailable()) throw new Problem(0, { code: "passkey-unsupported" });
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    allowCredentials: descriptors(options.allowCredentials),
  };
  let credential;
  try {
    credential = await navigator.credentials.get({ publicKey });
  } catch (error) {
    throw passkeyProblem(error);
  }
  const response = credential.response;
  return asJson(credential, {
    authenticatorData: toB64url(response.authenticatorData),
    signature: toB64url(response.signature),
    userHandle: response.userHandle ? toB64url(response.userHandle) : null,
  });
}
