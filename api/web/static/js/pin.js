// The non-face path on the phone: the signing PIN, after staff checked the person's ID card
// at the center, in place of the face check (to sign in, or to sign the report).
import { Problem, api, el, showProblem, signReport, t } from "./common.js";

const root = document.getElementById("pin-check");
const form = document.getElementById("pin-form");
const pinInput = document.getElementById("pin");
const idInput = document.getElementById("id-number");
const result = document.getElementById("result");
const submit = document.getElementById("submit");
const purpose = root.dataset.purpose;

function refused(outcome) {
  const text = outcome.voided ? t("pin.voided") : t("pin.wrong", { n: outcome.attempts_remaining });
  result.className = "result fail";
  result.replaceChildren(el("strong", { id: outcome.voided ? "voided" : "wrong", text }));
  result.hidden = false;
  submit.disabled = Boolean(outcome.voided);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!form.reportValidity()) return;
  submit.disabled = true;
  result.hidden = true;
  const pin = pinInput.value;
  pinInput.value = ""; // never left on the screen
  try {
    let outcome;
    if (purpose === "sign") outcome = await api("POST", "/api/v1/evaluation/pin", { pin });
    else {
      const body = { pin };
      if (idInput) body.id_number = idInput.value.trim().toUpperCase();
      outcome = await api("POST", "/api/v1/scan/pin", body);
    }
    if (!outcome.passed) {
      refused(outcome);
      if (!outcome.voided) submit.disabled = false;
      return;
    }
    result.className = "result ok";
    result.replaceChildren(el("strong", { id: "passed", text: t("pin.passed") }));
    result.hidden = false;
    if (purpose === "sign") await signReport({ withPasskey: false }); // the PIN path
    else await api("POST", "/api/v1/scan/sign-in", {});
    location.assign(root.dataset.doneUrl);
  } catch (error) {
    showProblem(result, error instanceof Problem ? error : new Problem(0, { code: "network", detail: String(error) }));
    result.hidden = false;
    submit.disabled = false;
  }
});
