// The report: its pages as images, who has signed, and "sign", which goes through a fresh
// face check when the last one is older than the signing freshness; then the download.
import { api, el, pageImages, showProblem, t } from "./common.js";

const app = document.getElementById("app");

async function load() {
  let report;
  try {
    report = await api("GET", "/api/v1/evaluation/report");
  } catch (error) {
    if (error.status === 401) {
      location.assign("/m/");
      return;
    }
    if (error.status === 404) {
      app.replaceChildren(el("section", { class: "card" }, el("p", { id: "no-report", text: t("report.none") })));
      return;
    }
    showProblem(app, error);
    return;
  }
  const pages = pageImages(report.page_urls, "report.page");
  const status = el("p", { id: "signature-count", text: t("report.signatures", { signed: report.signature_count, total: report.slot_count }) });
  const signers = el(
    "ul",
    { class: "signers" },
    report.signers.map((signer) =>
      el("li", { class: signer.status }, `${signer.name || signer.role} · ${t(`report.slot.${signer.status}`)}`),
    ),
  );
  const actions = [];
  if (report.signed_by_me) {
    actions.push(
      el("p", { class: "result ok", id: "signed", text: t("report.signed") }),
      el("a", { class: "button primary", id: "download", href: report.file_url, download: "" }, t("report.download")),
    );
  } else if (report.refused_by_me) {
    actions.push(el("p", { class: "result fail", text: t("report.refused") }));
  } else if (report.can_sign) {
    actions.push(
      el("p", { class: "muted", text: t("report.fresh_needed") }),
      el("a", { class: "button primary", id: "sign", href: "/m/sign" }, t("report.sign")),
    );
  }
  app.replaceChildren(
    el("section", { class: "card" }, el("h1", { text: report.title || t("report.title") }), status, signers, ...actions),
    el("section", { class: "card pages", id: "pages" }, pages),
  );
}

load();
