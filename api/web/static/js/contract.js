// The contract a representative's link is for: the parties and who has signed, the pages
// as images, and "seal and sign", which goes through a fresh face check; then the file.
import { api, el, pageImages, showProblem, t } from "./common.js";

const app = document.getElementById("app");

async function load() {
  let contract;
  try {
    contract = await api("GET", "/api/v1/contract");
  } catch (error) {
    if (error.status === 401) {
      location.assign("/m/");
      return;
    }
    showProblem(app, error);
    return;
  }
  const mine = contract.parties.find((party) => party.is_mine);
  const parties = el(
    "ul",
    { class: "signers", id: "parties" },
    contract.parties.map((party) =>
      el(
        "li",
        { class: party.signed ? "signed" : "pending", "data-role": party.role },
        `${t(`contract.party.${party.role}`)} ${party.name}${party.is_mine ? t("contract.mine") : ""} · ${t(
          party.signed ? "contract.party.signed" : "contract.party.pending",
        )}`,
      ),
    ),
  );
  const facts = el(
    "dl",
    { class: "facts" },
    el("dt", { text: t("contract.amount") }),
    el("dd", { id: "amount", text: `${contract.amount_words}（${contract.amount_figures}）` }),
  );
  const actions = [];
  if (contract.status === "completed") {
    actions.push(el("p", { class: "result ok", id: "completed", text: t("contract.completed") }));
  } else if (contract.signed_by_my_party) {
    actions.push(el("p", { class: "result ok", id: "signed", text: t("contract.signed") }));
  } else if (contract.waiting_for_other_party) {
    actions.push(el("p", { class: "muted", id: "waiting", text: t("contract.waiting") }));
  } else if (contract.can_sign) {
    actions.push(
      el("p", { class: "muted", text: t("contract.fresh_needed", { unit: mine ? mine.name : "" }) }),
      el("a", { class: "button primary", id: "sign", href: "/m/contract/sign" }, t("contract.sign")),
    );
  }
  if (contract.signed_by_my_party || contract.status === "completed") {
    actions.push(el("a", { class: "button", id: "download", href: contract.file_url, download: "" }, t("contract.download")));
    actions.push(el("a", { class: "button", id: "validation", href: contract.validation_url }, t("contract.validation")));
  }
  app.replaceChildren(
    el(
      "section",
      { class: "card" },
      el("h1", { text: contract.title || t("contract.title") }),
      facts,
      el("h2", { text: t("contract.parties") }),
      parties,
      ...actions,
    ),
    el("section", { class: "card pages", id: "pages" }, pageImages(contract.page_urls, "contract.page")),
  );
}

load();
