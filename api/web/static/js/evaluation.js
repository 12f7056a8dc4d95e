// The evaluation, one step at a time as the overview says: invitation, recusal
// declaration, chair vote, scoring (a draft kept on the phone and saved to the server),
// results, then the report.
import { Problem, api, el, showProblem, t } from "./common.js";

const app = document.getElementById("app");
let overview = null;

function card(title, ...children) {
  return el("section", { class: "card" }, el("h2", { text: title }), ...children);
}

function button(label, onclick, { primary = false, id } = {}) {
  return el("button", { type: "button", class: primary ? "button primary" : "button", id, onclick }, label);
}

// Any action: disable its button, call, reload the overview; a problem shows in place.
function action(run) {
  return async (event) => {
    const target = event.currentTarget;
    target.disabled = true;
    try {
      await run();
      await load();
    } catch (error) {
      target.disabled = false;
      const slot = target.closest("section")?.querySelector(".slot") || app;
      showProblem(slot, error);
    }
  };
}

function header() {
  const me = overview.me;
  const chair = overview.committee.find((seat) => seat.is_chair);
  return el(
    "section",
    { class: "card" },
    el("h1", { id: "project-name", text: overview.name }),
    el("p", { class: "muted", text: `${overview.code} · ${overview.tenderer_name}` }),
    el("p", { id: "my-seat", text: `${t("eval.my_seat")}: ${me.name || ""} · ${me.specialty} · ${t(`seat.${me.status}`)}` }),
    chair ? el("p", { text: t("eval.chair.is", { name: chair.name || chair.specialty }) }) : null,
    overview.session_flagged ? el("p", { class: "notice", text: t("eval.flagged") }) : null,
  );
}

function invitation() {
  const reason = el("textarea", { id: "decline-reason", maxlength: "1000" });
  return card(
    t("eval.invite.title"),
    el("p", { text: t("eval.invite.body") }),
    button(t("eval.invite.accept"), action(() => api("POST", "/api/v1/evaluation/response", { accept: true })), {
      primary: true,
      id: "accept",
    }),
    el("label", { for: "decline-reason", text: t("eval.invite.reason") }),
    reason,
    button(
      t("eval.invite.decline"),
      action(() => api("POST", "/api/v1/evaluation/response", { accept: false, reason: reason.value.trim() || null })),
      { id: "decline" },
    ),
    el("div", { class: "slot" }),
  );
}

function recusal() {
  const statement = el("textarea", { id: "statement", maxlength: "5000" });
  statement.value = t("eval.recusal.default");
  const units = [
    { name: overview.tenderer_name, credit_code: overview.tenderer_credit_code },
    ...overview.bidders,
  ].filter((unit) => unit.credit_code);
  const boxes = units.map((unit) =>
    el("label", { class: "checkbox" }, el("input", { type: "checkbox", value: unit.credit_code }), unit.name),
  );
  const conflict = el("input", { type: "checkbox", id: "conflict" });
  const list = el("div", { hidden: true }, boxes);
  conflict.addEventListener("change", () => {
    list.hidden = !conflict.checked;
  });
  return card(
    t("eval.recusal.title"),
    el("label", { for: "statement", text: t("eval.recusal.statement") }),
    statement,
    el("label", { class: "checkbox" }, conflict, t("eval.recusal.conflict")),
    list,
    button(
      t("eval.recusal.submit"),
      action(async () => {
        if (conflict.checked && !confirm(t("eval.recusal.confirm_conflict"))) return;
        const related = boxes.map((box) => box.querySelector("input")).filter((input) => input.checked);
        await api("POST", "/api/v1/evaluation/recusal", {
          conflict: conflict.checked,
          statement: statement.value.trim(),
          related_units: related.map((input) => input.value),
        });
      }),
      { primary: true, id: "declare" },
    ),
    el("div", { class: "slot" }),
  );
}

function chairVote() {
  const seats = overview.committee.map((seat) =>
    el(
      "div",
      { class: "seat" },
      el("span", { text: `${seat.name || ""} (${seat.specialty})` }),
      el(
        "button",
        {
          type: "button",
          class: "button small",
          "data-assignment": seat.assignment_id,
          onclick: action(() => api("POST", "/api/v1/evaluation/chair/vote", { assignment_id: seat.assignment_id })),
        },
        t("eval.chair.vote"),
      ),
    ),
  );
  return card(t("eval.chair.title"), ...seats, el("div", { class: "slot" }));
}

// --- scoring -------------------------------------------------------------------------

const draftKey = () => `evalsign-draft/${overview.project_id}/${overview.me.assignment_id}`;
const CENTS = /^\d+(\.\d{1,2})?$/;

function loadDraft() {
  try {
    return JSON.parse(localStorage.getItem(draftKey()) || "null");
  } catch {
    return null;
  }
}

function scoring() {
  const sheet = overview.sheet;
  let points = structuredClone(sheet?.points || {});
  const local = loadDraft();
  let restored = false;
  if (local && (!sheet || Date.parse(local.saved_at) > Date.parse(sheet.updated_at))) {
    points = local.points;
    restored = true;
  }
  const status = el("p", { class: "muted", id: "save-status", "aria-live": "polite" });
  const inputs = [];
  let timer = null;

  function valid(input) {
    const text = input.value.trim();
    const max = Number(input.dataset.max);
    const error = input.parentElement.querySelector(".field-error");
    if (text === "") {
      input.removeAttribute("aria-invalid");
      error.textContent = "";
      return true;
    }
    const ok = CENTS.test(text) && Number(text) <= max;
    input.setAttribute("aria-invalid", ok ? "false" : "true");
    error.textContent = ok ? "" : t("eval.scores.invalid", { max });
    return ok;
  }

  function collect() {
    const result = {};
    for (const input of inputs) {
      const text = input.value.trim();
      if (text === "" || !valid(input)) continue;
      (result[input.dataset.bidder] ||= {})[input.dataset.criterion] = Number(text);
    }
    return result;
  }

  function totals() {
    for (const form of app.querySelectorAll(".bidder")) {
      const sum = [...form.querySelectorAll("input")]
        .filter((input) => input.value.trim() !== "" && valid(input))
        .reduce((total, input) => total + Number(input.value), 0);
      form.querySelector(".total").textContent = t("eval.scores.total", { total: Math.round(sum * 100) / 100 });
    }
  }

  async function saveToServer() {
    status.textContent = t("app.saving");
    try {
      await api("PUT", "/api/v1/evaluation/scores", { points: collect() });
      status.textContent = t("app.saved");
    } catch (error) {
      status.textContent = error instanceof Problem && error.status === 0 ? t("app.save_failed") : error.message_;
    }
  }

  function changed() {
    totals();
    localStorage.setItem(draftKey(), JSON.stringify({ points: collect(), saved_at: new Date().toISOString() }));
    clearTimeout(timer);
    timer = setTimeout(saveToServer, 700);
  }

  const forms = overview.bidders.map((bidder, index) => {
    const rows = overview.criteria.map((criterion) => {
      const id = `score-${index}-${criterion.name}`;
      const input = el("input", {
        id,
        type: "text",
        inputmode: "decimal",
        autocomplete: "off",
        "data-bidder": bidder.credit_code,
        "data-criterion": criterion.name,
        "data-max": criterion.max_points,
      });
      const value = points[bidder.credit_code]?.[criterion.name];
      if (value !== undefined) input.value = String(value);
      input.addEventListener("input", changed);
      input.addEventListener("blur", () => valid(input));
      inputs.push(input);
      return el(
        "div",
        { class: "criterion" },
        el("label", { for: id }, `${criterion.name} `, el("span", { class: "muted", text: t("eval.scores.max", { max: criterion.max_points }) })),
        input,
        el("p", { class: "field-error" }),
      );
    });
    return el("section", { class: "card bidder" }, el("h2", { text: bidder.name }), ...rows, el("p", { class: "total" }));
  });

  const submit = button(
    t("eval.scores.submit"),
    action(async () => {
      const missing = inputs.filter((input) => input.value.trim() === "" || !valid(input)).length;
      if (missing) throw new Problem(422, { code: "scores-incomplete", detail: t("eval.scores.incomplete", { n: missing }) });
      if (!confirm(t("eval.scores.confirm"))) return;
      clearTimeout(timer);
      await api("PUT", "/api/v1/evaluation/scores", { points: collect() });
      await api("POST", "/api/v1/evaluation/scores/submit");
      localStorage.removeItem(draftKey());
    }),
    { primary: true, id: "submit-scores" },
  );
  const head = card(t("eval.scores.title"), restored ? el("p", { class: "notice", id: "restored", text: t("eval.scores.draft_local") }) : null, status);
  const foot = el("section", { class: "card" }, submit, el("div", { class: "slot" }));
  queueMicrotask(() => {
    inputs.forEach(valid);
    totals();
    if (restored) saveToServer();
  });
  return [head, ...forms, foot];
}

// --- results and report --------------------------------------------------------------

function results() {
  const me = overview.me;
  const parts = [];
  if (!overview.results) {
    parts.push(el("p", { text: t("eval.results.waiting") }));
    if (me.is_chair) {
      parts.push(button(t("eval.results.aggregate"), action(() => api("POST", "/api/v1/evaluation/aggregate")), { id: "aggregate" }));
    }
    return card(t("eval.results.title"), ...parts, el("div", { class: "slot" }));
  }
  for (const standing of overview.results.standings || []) {
    parts.push(
      el(
        "div",
        { class: "standing" },
        el("span", {}, `${t("eval.results.rank", { rank: standing.rank })} ${standing.name} `,
          standing.recommended ? el("span", { class: "badge", text: t("eval.results.recommended") }) : null),
        el("strong", { text: String(standing.score) }),
      ),
    );
  }
  if (overview.results_reviewed) {
    parts.push(el("p", { id: "reviewed", text: t("eval.results.reviewed") }));
  } else {
    const dissent = el("textarea", { id: "dissent", maxlength: "5000" });
    parts.push(
      button(t("eval.results.agree"), action(() => api("POST", "/api/v1/evaluation/results/agree")), { primary: true, id: "agree" }),
      el("label", { for: "dissent", text: t("eval.results.dissent_text") }),
      dissent,
      button(t("eval.results.dissent"), action(() => api("POST", "/api/v1/evaluation/dissent", { text: dissent.value.trim() })), { id: "send-dissent" }),
    );
  }
  return card(t("eval.results.title"), ...parts, el("div", { class: "slot" }));
}

function report() {
  if (overview.report_document_id) {
    return el("section", { class: "card" }, el("a", { class: "button primary", id: "open-report", href: "/m/report" }, t("eval.report.open")));
  }
  if (overview.me.is_chair && overview.results) {
    return card(
      t("report.title"),
      button(t("eval.report.generate"), action(() => api("POST", "/api/v1/evaluation/report")), { primary: true, id: "generate-report" }),
      el("div", { class: "slot" }),
    );
  }
  return card(t("report.title"), el("p", { class: "muted", text: t("eval.report.waiting") }));
}

function steps() {
  const me = overview.me;
  if (me.status === "invited") return [invitation()];
  if (me.status !== "accepted") return [card(t("eval.title"), el("p", { id: "seat-ended", text: t("eval.invite.declined") }))];
  if (!overview.recusal) return [recusal()];
  if (overview.recusal.conflict) return [card(t("eval.recusal.title"), el("p", { text: t("eval.recusal.withdrawn") }))];
  const shown = [];
  if (!overview.committee.some((seat) => seat.is_chair)) shown.push(chairVote());
  if (!overview.sheet || overview.sheet.status === "draft") shown.push(...scoring());
  else shown.push(card(t("eval.scores.title"), el("p", { id: "scores-submitted", text: t("eval.scores.submitted") })));
  if (overview.sheet?.status === "submitted" || overview.results) shown.push(results());
  if (overview.results) shown.push(report());
  return shown;
}

async function load() {
  try {
    overview = await api("GET", "/api/v1/evaluation");
  } catch (error) {
    if (error.status === 401) {
      location.assign("/m/");
      return;
    }
    showProblem(app, error);
    return;
  }
  app.replaceChildren(header(), ...steps());
}

load();
