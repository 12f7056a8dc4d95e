// The report: its pages as images, who has signed, and "sign", which goes through a fresh
// face check when the last one is older than the signing freshness; then the download.
import { api, el, showProblem, t } from "./common.js";

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
  const pages = [];
  for (let n = 1; n <= report.page_count; n++) {
    const width = Math.min(1600, Math.round(Math.min(window.innerWidth, 640) * (window.devicePixelRatio || 1)));
    pages.push(
      el("img", {
        src: `${report.pages_url}/${n}.png?width=${Math.max(320, width)}&revision=${report.revision}`,
        alt: t("report.page", { n }),
        loading: n > 1 ? "lazy" : "eager",
        width: "640",
        height: "905",
      }),
    );
  }
  const status = el("p", { id: "signature-count", text: t("report.signatures", { signed: report.signed, total: report.slots }) });
  const actions = [];
  if (report.signed_by_me) {
    actions.push(
      el("p", { class: "result ok", id: "signed", text: t("report.signed") }),
      el("a", { class: "button primary", id: "download", href: report.file_url, download: "" }, t("report.download")),
    );
  } else if (report.refused_by_me) {
    actions.push(el("p", { class: "result fail", text: t("report.refused") }));
  } else {
    actions.push(
      el("p", { class: "muted", text: t("report.fresh_needed") }),
      el("a", { class: "button primary", id: "sign", href: "/m/sign" }, t("report.sign")),
    );
  }
  app.replaceChildren(
    el("section", { class: "card" }, el("h1", { text: t("report.title") }), status, ...actions),
    el("section", { class: "card pages", id: "pages" }, pages),
  );
}

load();
