// Remote enrollment: a photo of the portrait side of the representative's ID card, shrunk
// on the phone (a camera photo is megabytes) and sent once; the face check comes next.
import { Problem, csrf, jpegOf, newKey, showProblem, t } from "./common.js";

const root = document.getElementById("idcard");
const input = document.getElementById("photo");
const chosen = document.getElementById("chosen");
const result = document.getElementById("result");
const button = document.getElementById("upload");
const MAX_SIDE = 1600;

input.addEventListener("change", () => {
  const file = input.files?.[0];
  chosen.textContent = file ? file.name : "";
  button.disabled = !file;
});

async function shrink(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return jpegOf(canvas, 0.9);
}

button.addEventListener("click", async () => {
  const file = input.files?.[0];
  if (!file) return;
  button.disabled = true;
  result.hidden = true;
  chosen.textContent = t("idcard.uploading");
  try {
    const form = new FormData();
    form.append("photo", await shrink(file), "id-card.jpg");
    const response = await fetch("/api/v1/scan/id-card", {
      method: "PUT",
      body: form,
      headers: { Accept: "application/json", "X-CSRF-Token": csrf, "Idempotency-Key": newKey() },
      credentials: "same-origin",
    });
    const body = (response.headers.get("Content-Type") || "").includes("json") ? await response.json() : null;
    if (!response.ok) throw new Problem(response.status, body);
    location.assign(root.dataset.nextUrl);
  } catch (error) {
    chosen.textContent = "";
    showProblem(result, error instanceof Problem ? error : new Problem(0, { code: "network", detail: String(error) }));
    result.hidden = false;
    button.disabled = false;
  }
});
