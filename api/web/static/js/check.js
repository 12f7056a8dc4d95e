// The face check: camera preview inside a face guide, the screen around it lit in the
// server's colours step by step, one prompt per challenged action as the server reveals
// it, frames captured at the hinted rate, downscaled and JPEG-encoded here, each step
// uploaded as it ends (retried, never taken twice), then the result in plain words.
import {
  Problem,
  api,
  createPasskey,
  deviceId,
  el,
  getPasskey,
  jpegOf,
  newKey,
  passkeysAvailable,
  showProblem,
  signReport,
  t,
} from "./common.js";

const root = document.getElementById("check");
const purpose = root.dataset.purpose;
const challengeUrl = root.dataset.challengeUrl;
const doneUrl = root.dataset.doneUrl;
const freshnessMs = Number(root.dataset.freshnessS || 0) * 1000;

const startButton = document.getElementById("start");
const camera = document.getElementById("camera");
const video = document.getElementById("preview");
const prompt = document.getElementById("prompt");
const steps = document.getElementById("steps");
const stepsFill = document.getElementById("steps-fill");
const stepLabel = document.getElementById("step-label");
const upload = document.getElementById("upload");
const uploadFill = document.getElementById("upload-fill");
const result = document.getElementById("result");
const light = document.getElementById("light");
const alternativeLink = document.getElementById("alternative-link");

const sleepUntil = (when) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, when - performance.now())));

function cameraProblem(error) {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    return [t("check.insecure")];
  }
  if (error?.name === "NotAllowedError" || error?.name === "SecurityError") {
    return [t("check.camera_denied"), t("check.camera_denied_help")];
  }
  if (error?.name === "NotFoundError" || error?.name === "OverconstrainedError") {
    return [t("check.no_camera"), t("check.no_camera_help")];
  }
  return [t("check.camera_error", { name: error?.name || String(error) })];
}

async function openCamera() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw Object.assign(new Error("insecure"), { camera: true });
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
    video.srcObject = stream;
    camera.hidden = false;
    await video.play();
    while (!video.videoWidth) await sleepUntil(performance.now() + 30);
    return stream;
  } catch (error) {
    throw Object.assign(error, { camera: true });
  }
}

// The screen lights the face: the server's colour for each step fills the page around
// the preview while that step is filmed. Frames in the first moments after a change are
// not taken (screen and camera need a frame or two to show the new colour).
const SETTLE_MS = 120;
// Frames filmed while a step uploads go with the next step, so a slow answer does not
// blind the check to a turn made meanwhile: up to a second's worth per step, from the
// spare the frame cap leaves over the planned frames (the cap is never crossed).
const CARRY_SECONDS = 1;

function deviceInfo() {
  return JSON.stringify({
    id: deviceId,
    model: navigator.userAgent.slice(0, 180),
    screen: `${screen.width}x${screen.height}`,
  });
}

function send(url, form, key) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("Idempotency-Key", key);
    request.timeout = 60000;
    request.onload = () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new Problem(request.status, body));
    };
    request.onerror = () => reject(Object.assign(new Error("network"), { retry: true }));
    request.ontimeout = request.onerror;
    request.send(form);
  });
}

// One step's frames, as soon as the step is over: retried with the same key (the server
// answers a retry from its record instead of taking the step twice).
async function sendStep(challenge, index, blobs, times, carried) {
  const form = new FormData();
  form.append("nonce", challenge.nonce);
  form.append("step", String(index));
  form.append("carried", String(carried));
  blobs.forEach((blob, n) => form.append("frames", blob, `${index}-${n}.jpg`));
  form.append("timestamps_ms", JSON.stringify(times));
  form.append("device", deviceInfo());
  const key = newKey();
  for (let attempt = 0; ; attempt++) {
    try {
      return await send(challenge.submit_url, form, key);
    } catch (error) {
      if (!error.retry || attempt >= 2) throw error.retry ? new Problem(0, { code: "network" }) : error;
      await sleepUntil(performance.now() + 300 * 2 ** attempt);
    }
  }
}

// Film the challenge as the server reveals it: each step's colour on the screen (and its
// prompt, when it brings one), its frames uploaded the moment it ends; the answer brings
// the next step, and the last answer is the judgement.
async function film(challenge) {
  const hints = challenge.capture;
  const scale = Math.min(1, hints.max_width / video.videoWidth, hints.max_height / video.videoHeight);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  const context = canvas.getContext("2d");
  steps.hidden = false;
  upload.hidden = false;
  stepLabel.textContent = "";
  prompt.textContent = t("check.get_ready");
  light.hidden = false;
  document.body.classList.add("lit");
  const actionCount = Number(hints.action_count || 0);
  let prompted = 0;
  let step = challenge.step;
  let carried = [];
  let carriedTimes = [];
  // The steps' own frames can come to a little over the planned count (each step starts
  // its own count), hence the quarter kept back.
  let spare = Math.max(0, Math.floor(Number(hints.max_frames) - 1.25 * Number(hints.frame_count)));
  const started = performance.now();
  // Each frame's time must follow the one before (the server refuses a chunk that does
  // not): a page running behind its schedule takes its next frame half a frame later,
  // never in the same millisecond.
  const gap = 500 / hints.fps;
  let lastShot = -Infinity;
  const shoot = (at) =>
    sleepUntil(Math.max(at, lastShot + gap)).then(() => {
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      lastShot = performance.now();
      return [Math.round(lastShot - started), jpegOf(canvas, hints.jpeg_quality)];
    });
  try {
    for (;;) {
      light.style.backgroundColor = step.colour;
      light.dataset.colour = step.colour;
      if (step.prompt) {
        prompted += 1;
        prompt.textContent = t(`action.${step.prompt}`);
        prompt.dataset.action = step.prompt;
        stepLabel.textContent = actionCount
          ? t("check.step", { n: prompted, total: actionCount })
          : t(`action.${step.prompt}`);
      }
      const begun = performance.now();
      const shots = [];
      const times = [];
      for (let k = 0; ; k++) {
        const at = begun + Math.min(SETTLE_MS, step.ms / 3) + (k * 1000) / hints.fps;
        if (k > 0 && at >= begun + step.ms) break;
        const [time, shot] = await shoot(at);
        times.push(time);
        shots.push(shot);
      }
      await sleepUntil(begun + step.ms);
      const last = step.index === step.of - 1;
      if (last) {
        light.hidden = true;
        document.body.classList.remove("lit");
        prompt.textContent = "";
        stepLabel.textContent = t("check.verifying");
      }
      const blobs = await Promise.all([...carried, ...shots]);
      const sending = sendStep(challenge, step.index, blobs, [...carriedTimes, ...times], carried.length);
      carried = [];
      carriedTimes = [];
      if (!last) {
        // Film on while the step uploads: the screen still shows its colour, and the
        // person goes on moving. These frames go with the next step, marked as carried.
        let answered = false;
        sending.then(
          () => (answered = true),
          () => (answered = true),
        );
        const waiting = sending.catch(() => null);
        const carryMost = Math.min(spare, Math.ceil(CARRY_SECONDS * hints.fps));
        for (let k = 1; !answered && carried.length < carryMost; k++) {
          await Promise.race([waiting, sleepUntil(begun + step.ms + (k * 1000) / hints.fps)]);
          if (answered) break;
          const [time, shot] = await shoot(performance.now());
          carriedTimes.push(time);
          carried.push(shot);
        }
        spare -= carried.length;
      }
      const answer = await sending;
      const percent = Math.round((100 * (step.index + 1)) / step.of);
      stepsFill.style.width = `${percent}%`;
      uploadFill.style.width = `${percent}%`;
      if (last) return answer;
      step = answer.next_step;
    }
  } finally {
    light.hidden = true;
    document.body.classList.remove("lit");
    delete prompt.dataset.action;
  }
}

function explain(outcome) {
  const words = [];
  for (const issue of outcome.frame_issues || []) words.push(t(`issue.${issue}`));
  for (const reason of outcome.reasons || []) {
    const text = t(`reason.${reason}`);
    words.push(text === `reason.${reason}` ? t("reason.other") : text);
  }
  const unique = [...new Set(words)].slice(0, 4);
  const parts = [el("strong", { text: t("check.failed") }), el("ul", {}, unique.map((w) => el("li", { text: w })))];
  if (outcome.locked) parts.push(el("p", { id: "locked", text: t("check.locked") }));
  else if (outcome.attempts_remaining !== null && outcome.attempts_remaining !== undefined) {
    parts.push(el("p", { id: "attempts", text: t("check.attempts_left", { n: outcome.attempts_remaining }) }));
  }
  result.className = "result fail";
  result.replaceChildren(...parts);
  result.hidden = false;
  result.dataset.reasons = (outcome.reasons || []).join(" ");
}

// Each mark (the unit's seal, then the representative's signature) is approved by this
// phone's passkey on its own. A phone not yet bound is bound here, on the link, after the
// face check (only once the center has confirmed who the representative is).
async function signContract() {
  const base = root.dataset.signUrl.replace(/\/signatures$/, "");
  for (let attempt = 0; attempt < 8; attempt++) {
    let issued;
    try {
      stepLabel.textContent = t("passkey.approving");
      issued = await api("POST", `${base}/approval`, {});
    } catch (error) {
      if (error.code !== "passkey-not-bound") throw error;
      stepLabel.textContent = t("bind.creating");
      const options = await api("POST", `${base}/passkey-binding`, {});
      const credential = await createPasskey(options.publicKey);
      const label = navigator.userAgentData?.platform || navigator.platform || "phone";
      await api("POST", `${base}/passkey-binding/complete`, {
        enrollment_id: options.enrollment_id,
        credential,
        label: label.slice(0, 100),
      });
      continue;
    }
    const passkey = { nonce: issued.nonce, assertion: await getPasskey(issued.publicKey) };
    stepLabel.textContent = t("contract.signing");
    try {
      const signed = await api("POST", root.dataset.signUrl, { passkey });
      if (signed.remaining === 0) return;
    } catch (error) {
      // The other party's mark landed first: approve again on the contract as it stands.
      if (error.code !== "document-moved-on") throw error;
    }
  }
  throw new Problem(0, { code: "document-moved-on" });
}

// The face alone signs no one in: the passkey of the phone bound at the desk joins it.
async function signIn() {
  stepLabel.textContent = t("passkey.approving");
  const options = await api("POST", "/api/v1/scan/passkey", {});
  const passkey = await getPasskey(options);
  stepLabel.textContent = t("check.verifying");
  await api("POST", "/api/v1/scan/sign-in", { passkey });
}

async function bindPhone() {
  stepLabel.textContent = t("bind.creating");
  const options = await api("POST", "/api/v1/passkey-enrollment/options", {});
  const credential = await createPasskey(options);
  const label = navigator.userAgentData?.platform || navigator.platform || "phone";
  await api("POST", "/api/v1/passkey-enrollment/complete", { credential, label: label.slice(0, 100) });
}

// The answer the member chose on the call-up page, confirmed by the bound phone's passkey.
async function answerCallUp() {
  const base = root.dataset.answerUrl;
  stepLabel.textContent = t("passkey.approving");
  const issued = await api("POST", `${base}/passkey`, {});
  const assertion = await getPasskey(issued.publicKey);
  stepLabel.textContent = t("check.verifying");
  const reason = root.dataset.reason || null;
  await api("POST", `${base}/answer`, { decision: root.dataset.decision, reason, passkey: { assertion } });
}

async function finish() {
  if (purpose === "sign-in") await signIn();
  else if (purpose === "bind") await bindPhone();
  else if (purpose === "contract") await signContract();
  else if (purpose === "call-up") await answerCallUp();
  else {
    stepLabel.textContent = t("report.signing");
    await signReport();
  }
  location.assign(doneUrl);
}

// Where the center allows it, an SMS code stands in for the passkey this phone cannot
// give (no WebAuthn, or never bound): offered after the face check passed.
const smsAllowed = root.dataset.sms === "1" && (purpose === "sign-in" || purpose === "sign");
const smsBox = document.getElementById("sms");
let smsNonce = null;

function offerSms(error) {
  const code = String(error?.code || "");
  if (!smsAllowed || !["passkey-unsupported", "passkey-not-bound", "passkey-cancelled"].includes(code)) return;
  smsBox.hidden = false;
}

async function reportUrl() {
  const overview = await api("GET", "/api/v1/evaluation");
  return `/api/v1/documents/${overview.report_document_id}`;
}

document.getElementById("sms-send").addEventListener("click", async () => {
  try {
    const sent =
      purpose === "sign-in"
        ? await api("POST", "/api/v1/scan/sms-code", {})
        : await api("POST", `${await reportUrl()}/approval/sms`, {});
    smsNonce = sent.nonce;
    const note = document.getElementById("sms-sent");
    note.textContent = t("sms.sent", { to: sent.sent_to });
    for (const id of ["sms-sent", "sms-label", "sms-code", "sms-confirm"]) document.getElementById(id).hidden = false;
    document.getElementById("sms-code").focus();
  } catch (error) {
    showProblem(result, error);
    result.hidden = false;
  }
});

document.getElementById("sms-confirm").addEventListener("click", async () => {
  const sms = { nonce: smsNonce, code: document.getElementById("sms-code").value.trim() };
  try {
    if (purpose === "sign-in") await api("POST", "/api/v1/scan/sign-in", { sms });
    else await api("POST", `${await reportUrl()}/signatures`, { sms });
    location.assign(doneUrl);
  } catch (error) {
    showProblem(result, error);
    result.hidden = false;
  }
});

async function freshEnough() {
  // A check passed moments ago (within the signing freshness) need not be repeated.
  try {
    const session = await api("GET", "/api/v1/face/session", undefined, { retries: 0 });
    return Date.now() - Date.parse(session.verified_at) < freshnessMs - 15000;
  } catch {
    return false;
  }
}

let stream = null;
// Set once the face check passed: a retry then redoes only the passkey step.
let facePassed = false;
const needsPasskey = ["sign-in", "bind", "sign", "contract", "call-up"].includes(purpose);

async function run() {
  startButton.disabled = true;
  result.hidden = true;
  if (needsPasskey && !passkeysAvailable() && !smsAllowed) {
    showProblem(result, new Problem(0, { code: "passkey-unsupported" }));
    result.hidden = false;
    if (purpose === "sign-in") alternativeLink.hidden = false;
    return;
  }
  if (facePassed) {
    try {
      await finish();
    } catch (error) {
      stepLabel.textContent = "";
      result.className = "result";
      showProblem(result, error);
      if (purpose === "sign-in" && String(error.code).startsWith("passkey-")) alternativeLink.hidden = false;
      offerSms(error);
      result.hidden = false;
      startButton.disabled = false;
    }
    return;
  }
  stepLabel.textContent = t("check.preparing");
  try {
    const challenge = await api("POST", challengeUrl);
    stream = await openCamera();
    const outcome = await film(challenge);
    stream.getTracks().forEach((track) => track.stop());
    prompt.textContent = "";
    camera.hidden = true;
    upload.hidden = true;
    steps.hidden = true;
    if (outcome.passed) {
      facePassed = true;
      startButton.textContent = t("app.retry");
      result.className = "result ok";
      result.replaceChildren(el("strong", { id: "passed", text: t("check.passed") }));
      result.hidden = false;
      stepLabel.textContent = "";
      await finish();
      return;
    }
    stepLabel.textContent = "";
    explain(outcome);
    startButton.textContent = t("check.try_again");
    startButton.disabled = Boolean(outcome.locked);
    if (purpose === "sign-in") alternativeLink.hidden = false;
  } catch (error) {
    stream?.getTracks().forEach((track) => track.stop());
    camera.hidden = true;
    steps.hidden = true;
    upload.hidden = true;
    stepLabel.textContent = "";
    if (error.camera) {
      const [headline, help] = cameraProblem(error);
      result.className = "result fail";
      result.replaceChildren(
        el("strong", { id: "camera-problem", "data-name": error.name || "", text: headline }),
        help ? el("p", { text: help }) : null,
      );
      result.hidden = false;
      if (purpose === "sign-in") alternativeLink.hidden = false;
    } else {
      result.className = "result"; // the problem brings its own colour
      showProblem(result, error);
      result.hidden = false;
      // No bound phone, or no passkeys here: the in-person check is the way in (or, where
      // the center allows it, an SMS code).
      if (purpose === "sign-in" && String(error.code).startsWith("passkey-")) alternativeLink.hidden = false;
      offerSms(error);
    }
    startButton.textContent = t("app.retry");
    startButton.disabled = false;
  }
}

startButton.addEventListener("click", run);
startButton.disabled = false; // rendered disabled: a tap before this script ran did nothing
if (purpose === "sign" || purpose === "contract") {
  freshEnough().then(async (fresh) => {
    if (!fresh) return;
    startButton.disabled = true;
    try {
      await finish();
    } catch (error) {
      showProblem(result, error);
      result.hidden = false;
      startButton.disabled = false;
    }
  });
}
