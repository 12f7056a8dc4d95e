// The supervisors' console: each page reads the API (the login cookie authenticates it,
// changes carry the CSRF token) and draws tables, charts and the project timeline.
import { api, el, showProblem, t } from "./common.js";

const page = document.body.dataset.page;
// Times in the center's own time zone, whatever the supervisor's computer is set to.
const zone = document.body.dataset.tz || undefined;
const locale = document.documentElement.lang || "zh-CN";
const clock = { timeZone: zone, hour12: false, hour: "2-digit", minute: "2-digit" };
const when = (iso) =>
  iso ? new Date(iso).toLocaleString(locale, { ...clock, year: "numeric", month: "2-digit", day: "2-digit", second: "2-digit" }) : "";
const hhmm = (iso) => (iso ? new Date(iso).toLocaleTimeString(locale, clock) : "");
const known = (key, fallback) => (t(key) === key ? fallback : t(key));
const statusWord = (status) => known(`console.status.${status}`, status);

function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows),
  );
}

function formQuery(form) {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (String(value).trim()) query.set(name, String(value).trim());
  return query;
}

// --- flags -----------------------------------------------------------------------------

// The Measures for face recognition: a filing with the regulator is due at 100,000 people.
async function holdings() {
  const target = document.getElementById("holdings");
  try {
    const held = await api("GET", "/api/v1/faces/holdings");
    const share = ((100 * held.people) / held.filing_threshold).toFixed(1);
    const values = { people: held.people.toLocaleString(), threshold: held.filing_threshold.toLocaleString(), share };
    target.textContent = t(held.warning ? "console.holdings.warning" : "console.holdings.count", values);
    target.className = held.warning ? "result fail" : "muted";
    target.dataset.warning = String(held.warning);
  } catch (error) {
    showProblem(target, error);
  }
}

// --- today's evaluations, refreshed while the page is open -------------------------------

function seatItem(seat) {
  const who = seat.name ?? "—";
  const chair = seat.chair ? `（${t("console.today.chair")}）` : "";
  const state = seat.signed_in_at
    ? `${hhmm(seat.signed_in_at)} · ${known(`console.method.${seat.method}`, seat.method)}`
    : t("console.today.waiting");
  return el("li", { class: seat.signed_in_at ? "place in" : "place", "data-assignment": seat.assignment_id }, el("span", { text: who + chair }), el("span", { class: "muted", text: state }));
}

function glanceCard(glance) {
  const facts = [
    `${glance.code} · ${statusWord(glance.status)}`,
    `${t("console.project.start")} ${when(glance.evaluation_start)}`,
  ];
  const signatures =
    glance.signatures_missing === null
      ? t("console.today.no_report")
      : glance.signatures_missing
        ? t("console.today.signatures_missing", { n: glance.signatures_missing })
        : t("console.today.signatures_done");
  return el(
    "article",
    { class: "glance", "data-project": glance.project_id },
    el("h2", {}, el("a", { href: `/console/projects/${glance.project_id}` }, glance.name)),
    el("p", { class: "muted", text: facts.join(" · ") }),
    el(
      "p",
      { class: "glance-facts" },
      el("span", { class: "fact signed", text: t("console.today.signed_in", { n: glance.signed_in, m: glance.seats.length }) }),
      el("span", { class: glance.open_flags ? "fact warn" : "fact", text: t("console.today.flags", { n: glance.open_flags }) }),
      el("span", { class: "fact", text: signatures }),
    ),
    glance.sealed ? el("p", { class: "muted", text: t("console.today.sealed") }) : null,
    el("ul", { class: "places" }, glance.seats.map(seatItem)),
  );
}

async function today() {
  const target = document.getElementById("today");
  const stamp = document.getElementById("refreshed");
  async function load() {
    try {
      const glances = await api("GET", "/api/v1/supervision/overview");
      target.replaceChildren(
        ...(glances.length ? glances.map(glanceCard) : [el("p", { id: "no-evaluations", class: "muted", text: t("console.today.none") })]),
      );
      stamp.textContent = t("console.today.refreshed", { time: hhmm(new Date().toISOString()) });
    } catch (error) {
      showProblem(target, error);
    }
  }
  await load();
  setInterval(load, 15000);
}

async function flags() {
  today();
  holdings();
  const form = document.getElementById("flag-filter");
  const target = document.getElementById("flags");
  async function load() {
    try {
      const rows = await api("GET", `/api/v1/anomalies?${formQuery(form)}`);
      if (!rows.length) {
        target.replaceChildren(el("p", { id: "no-flags", class: "muted", text: t("console.flags.none") }));
        return;
      }
      target.replaceChildren(
        table(
          [t("console.flags.severity"), t("console.flags.rule"), t("console.flags.explanation"), t("console.project_id"), t("console.when"), t("console.flags.status"), ""],
          rows.map((flag) =>
            el(
              "tr",
              { "data-flag": flag.id },
              el("td", { class: `sev-${flag.severity}`, text: known(`console.severity.${flag.severity}`, flag.severity) }),
              el("td", { text: flag.rule }),
              el("td", { text: document.documentElement.lang === "en" ? flag.explanation_en : flag.explanation_zh }),
              el("td", {}, flag.project_id ? el("a", { href: `/console/projects/${flag.project_id}` }, flag.project_id.slice(0, 8)) : ""),
              el("td", { text: when(flag.created_at) }),
              el("td", { text: t(`console.flag.${flag.status}`) + (flag.note ? ` — ${flag.note}` : "") }),
              el("td", { class: "actions-cell" }, flag.status === "resolved" ? [] : handleButtons(flag, load)),
            ),
          ),
        ),
      );
    } catch (error) {
      showProblem(target, error);
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  load();
}

function handleButtons(flag, reload) {
  const act = (verb) => async () => {
    const note = prompt(t("console.flags.note"));
    if (!note) return;
    await api("POST", `/api/v1/anomalies/${flag.id}/${verb}`, { note });
    reload();
  };
  const buttons = [];
  if (flag.status === "open") buttons.push(el("button", { type: "button", class: "button small", onclick: act("acknowledge") }, t("console.flags.acknowledge")));
  buttons.push(el("button", { type: "button", class: "button small", onclick: act("resolve") }, t("console.flags.resolve")));
  return buttons;
}

// --- verification log ------------------------------------------------------------------

async function verifications() {
  const form = document.getElementById("verification-filter");
  const target = document.getElementById("verifications");
  const more = document.getElementById("more");
  const csv = document.getElementById("csv");
  let cursor = null;
  let rows = [];
  async function load(next = false) {
    const query = formQuery(form);
    csv.href = `/api/v1/face/verifications?${query}&format=csv`;
    if (next && cursor) query.set("cursor", cursor);
    try {
      const answer = await api("GET", `/api/v1/face/verifications?${query}`);
      rows = next ? rows.concat(answer.items) : answer.items;
      cursor = answer.next_cursor;
      more.hidden = !cursor;
      target.replaceChildren(
        table(
          [t("console.when"), t("console.decision"), t("console.verification.mode"), t("console.expert_id"), t("console.verification.similarity"), t("console.verification.reasons"), t("console.device")],
          rows.map((v) =>
            el(
              "tr",
              {},
              el("td", {}, el("a", { href: `/console/verifications/${v.id}`, class: "verification-link" }, when(v.created_at))),
              el("td", { class: v.passed ? "pass" : "fail", text: v.passed ? t("console.passed") : t("console.failed") }),
              el("td", { text: v.mode }),
              el("td", { text: (v.expert_id || "").slice(0, 8) }),
              el("td", { class: "num", text: v.similarity === null ? "" : v.similarity.toFixed(3) }),
              el("td", { text: v.reasons.map((r) => known(`reason.${r}`, r)).join(locale.startsWith("zh") ? "，" : ", ") }),
              el("td", { text: v.device_id }),
            ),
          ),
        ),
      );
    } catch (error) {
      showProblem(target, error);
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  more.addEventListener("click", () => load(true));
  load();
}

// --- one verification: its signals over the frames -------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

const median = (values) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
};

// One line chart: the signal per frame, its threshold(s) dashed, the prompts dotted.
function chart(title, frames, value, thresholds, prompts) {
  const W = 560, H = 200, L = 44, R = 10, T = 10, B = 26;
  const points = frames.map((f) => ({ x: f.t_ms, y: f.signals ? value(f.signals) : null, usable: f.usable }));
  const xs = points.map((p) => p.x);
  const ys = points.filter((p) => p.y !== null).map((p) => p.y).concat(thresholds.map((th) => th.value));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-6) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.08;
  y0 -= pad; y1 += pad;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const path = points
    .filter((p) => p.y !== null)
    .map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`)
    .join(" ");
  const parts = [
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    svg("text", { x: 4, y: T + 10 }, document.createTextNode(y1.toFixed(2))),
    svg("text", { x: 4, y: H - B }, document.createTextNode(y0.toFixed(2))),
    svg("text", { x: W - R - 40, y: H - 6 }, document.createTextNode(`${Math.round(x1)} ms`)),
  ];
  for (const p of points) {
    if (!p.usable) parts.push(svg("rect", { class: "unusable", x: sx(p.x) - 2, y: T, width: 4, height: H - T - B }));
  }
  for (const prompt of prompts) {
    parts.push(svg("line", { class: "prompt", x1: sx(prompt), y1: T, x2: sx(prompt), y2: H - B }));
  }
  for (const th of thresholds) {
    parts.push(
      svg("line", { class: "threshold", x1: L, y1: sy(th.value), x2: W - R, y2: sy(th.value) }),
      svg("text", { x: W - R - 120, y: sy(th.value) - 4 }, document.createTextNode(th.label)),
    );
  }
  parts.push(svg("path", { class: "series", d: path }));
  return el("div", { class: "chart" }, el("h3", { text: title }), svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title }, parts));
}

async function verification() {
  const id = document.body.dataset.verificationId;
  const limits = JSON.parse(document.body.dataset.thresholds);
  const summary = document.getElementById("summary");
  let record;
  try {
    record = await api("GET", `/api/v1/face/verifications/${id}`);
  } catch (error) {
    showProblem(summary, error);
    return;
  }
  summary.replaceChildren(
    el("p", {}, el("strong", { class: record.passed ? "pass" : "fail", id: "verdict", text: record.passed ? t("console.passed") : t("console.failed") }), ` · ${record.mode} · ${when(record.created_at)}`),
    el("p", { text: `${t("console.expert_id")}: ${record.expert_id || "—"} · ${t("console.device")}: ${record.device_id} · IP ${record.client_ip || "—"}` }),
    el("p", { text: `${t("console.verification.similarity")}: ${record.similarity === null ? "—" : record.similarity.toFixed(3)} (${t("console.verification.threshold")} ${limits.match}) · ${t("console.verification.reasons")}: ${record.reasons.join(", ") || "—"}` }),
  );
  const frames = record.frames || [];
  const usable = frames.filter((f) => f.signals);
  const lead = usable.slice(0, Math.max(3, Math.floor(usable.length / 4)));
  const actionCheck = record.checks.find((c) => c.check === "actions");
  // The baseline the action detector used (the check records it), else the frames' medians.
  const recorded = actionCheck?.values?.baseline;
  const base = {
    eye: recorded?.eye_openness ?? median(lead.map((f) => f.signals.eye_openness)),
    mouth: recorded?.mouth_openness ?? median(lead.map((f) => f.signals.mouth_openness)),
    yaw: recorded?.yaw ?? median(usable.map((f) => f.signals.yaw_degrees)),
    pitch: recorded?.pitch ?? median(usable.map((f) => f.signals.pitch_degrees)),
  };
  const prompts = (actionCheck?.values?.prompts_ms || []).filter(Number.isFinite);
  document.getElementById("charts").replaceChildren(
    chart(t("console.signal.eye"), frames, (s) => s.eye_openness, [{ value: base.eye * limits.blink_closed, label: t("console.signal.blink") }], prompts),
    chart(t("console.signal.mouth"), frames, (s) => s.mouth_openness, [{ value: base.mouth + limits.mouth_open, label: t("console.signal.open") }], prompts),
    chart(t("console.signal.yaw"), frames, (s) => s.yaw_degrees, [
      { value: base.yaw + limits.turn_degrees, label: `+${limits.turn_degrees}°` },
      { value: base.yaw - limits.turn_degrees, label: `−${limits.turn_degrees}°` },
    ], prompts),
    chart(t("console.signal.pitch"), frames, (s) => s.pitch_degrees, [
      { value: base.pitch + limits.nod_degrees, label: `+${limits.nod_degrees}°` },
      { value: base.pitch - limits.nod_degrees, label: `−${limits.nod_degrees}°` },
    ], prompts),
  );
  document.getElementById("checks").replaceChildren(
    table(
      [t("console.verification.check"), t("console.decision"), t("console.verification.reasons"), t("console.verification.values")],
      record.checks.map((c) =>
        el(
          "tr",
          {},
          el("td", { text: c.check }),
          el("td", { class: c.passed ? "pass" : "fail", text: c.passed ? "✓" : "✗" }),
          el("td", { text: [c.reason, c.detail].filter(Boolean).join(": ") }),
          el("td", { text: JSON.stringify(c.values).slice(0, 300) }),
        ),
      ),
    ),
  );
}

// --- project timeline ------------------------------------------------------------------

const PHASES = [
  ["draw", /^(draw|project)\./],
  ["sign_in", /^(task|scan|face|evaluation\.(signed_in|second_device|session))/],
  ["recusal", /recusal|response|declin|assignment|call_up/],
  ["scores", /score|chair|aggregate|results|dissent/],
  ["signatures", /report|document|signature|csc/],
];

function phaseOf(action) {
  for (const [name, pattern] of PHASES) if (pattern.test(action)) return name;
  return "other";
}

function actorWords(entry) {
  const kind = entry.actor_kind ? known(`console.actor.${entry.actor_kind}`, entry.actor_kind) : entry.actor;
  return entry.actor_name ? `${kind} ${entry.actor_name}` : kind;
}

async function projectFacts(id) {
  try {
    const project = await api("GET", `/api/v1/projects/${id}`);
    document.getElementById("project-title").textContent = `${project.name}`;
    document.getElementById("project-facts").textContent = [
      `${t("console.project.code")} ${project.code}`,
      statusWord(project.status),
      `${t("console.project.start")} ${when(project.evaluation_start)}`,
    ].join(" · ");
    const draws = await api("GET", `/api/v1/supervision/draws?project_id=${encodeURIComponent(id)}`);
    const draw = draws.items[0];
    if (draw) {
      const proof = document.getElementById("proof");
      proof.href = `/api/v1/projects/${id}/draws/${draw.id}`;
      proof.hidden = false;
    }
  } catch {
    // The timeline below still shows; its own errors are explained there.
  }
}

// Each drawn member's call-up: whether the message went out (and why not), its deadline
// and the answer. Sealed for supervisors until the evaluation starts, as the committee is.
async function callUps(id) {
  const target = document.getElementById("call-ups");
  try {
    const rows = await api("GET", `/api/v1/projects/${id}/call-ups`);
    if (!rows.length) {
      target.replaceChildren(el("p", { class: "muted", text: t("console.callups.none") }));
      return;
    }
    const word = (prefix, value) => (value ? known(`${prefix}.${value}`, value) : "—");
    target.replaceChildren(
      table(
        ["specialty", "name", "seat", "message", "sent", "deadline", "answer"].map((h) => t(`console.callups.${h}`)),
        rows.map((row) =>
          el(
            "tr",
            { "data-status": row.status, "data-answer": row.answer || "" },
            el("td", { text: row.specialty }),
            el("td", { text: row.name || t("console.callups.sealed") }),
            el("td", { text: statusWord(row.seat_status) }),
            el(
              "td",
              { title: row.last_error || "" },
              `${word("console.callups.status", row.status)}${row.attempts > 1 ? ` ×${row.attempts}` : ""}`,
              row.status === "failed" ? el("div", { class: "muted", text: row.last_error || "" }) : null,
            ),
            el("td", { text: when(row.sent_at) }),
            el("td", { text: when(row.deadline_at) }),
            el("td", { text: word("console.callups.answer", row.answer) }),
          ),
        ),
      ),
    );
  } catch (error) {
    showProblem(target, error);
  }
}

// What the trading platform was told about the project (each event to each receiver: its
// delivery status, attempts, the last error) and the project's archive pushes.
async function platformEvents(id) {
  const target = document.getElementById("platform-events");
  try {
    const log = await api("GET", `/api/v1/projects/${id}/platform-events`);
    if (!log.deliveries.length && !log.archives.length) {
      target.replaceChildren(el("p", { class: "muted", text: t("console.platform.none") }));
      return;
    }
    const word = (value) => known(`console.platform.status.${value}`, value);
    const host = (url) => {
      try {
        return new URL(url).host;
      } catch {
        return url;
      }
    };
    const status = (row) =>
      el(
        "td",
        { title: row.last_error || "" },
        `${word(row.status)}${row.attempts > 1 ? ` ×${row.attempts}` : ""}`,
        row.last_error && row.status !== "delivered" && row.status !== "pushed"
          ? el("div", { class: "muted", text: row.last_error })
          : null,
        row.next_attempt_at
          ? el("div", { class: "muted", text: `${t("console.platform.next")} ${when(row.next_attempt_at)}` })
          : null,
      );
    const deliveries = log.deliveries.map((row) =>
      el(
        "tr",
        { "data-status": row.status, "data-type": row.event_type },
        el("td", { text: known(`console.platform.type.${row.event_type}`, row.event_type) }),
        el("td", { text: when(row.event_time) }),
        el("td", { text: host(row.url), title: row.url }),
        status(row),
      ),
    );
    const archives = log.archives.map((row) =>
      el(
        "tr",
        { "data-status": row.status, "data-type": "archive" },
        el("td", { text: t("console.platform.archive") }),
        el("td", { text: when(row.created_at) }),
        el("td", { text: `${row.files.length} ${t("console.platform.files")}` }),
        status(row),
      ),
    );
    target.replaceChildren(
      table(
        ["event", "time", "receiver", "status"].map((h) => t(`console.platform.${h}`)),
        [...deliveries, ...archives],
      ),
    );
  } catch (error) {
    showProblem(target, error);
  }
}

async function project() {
  const id = document.body.dataset.projectId;
  const target = document.getElementById("timeline");
  projectFacts(id);
  callUps(id);
  platformEvents(id);
  try {
    const entries = await api("GET", `/api/v1/projects/${id}/timeline`);
    const items = [];
    let current = null;
    for (const entry of entries) {
      const phase = phaseOf(entry.action);
      if (phase !== current) {
        current = phase;
        items.push(el("li", { class: "phase", "data-phase": phase, text: t(`console.phase.${phase}`) }));
      }
      items.push(
        el(
          "li",
          { "data-seq": entry.seq, "data-action": entry.action, title: entry.action },
          el("time", { text: when(entry.occurred_at) }),
          el("span", { class: "event", text: known(`console.event.${entry.action}`, entry.action) }),
          el("span", { class: "muted", text: ` · ${actorWords(entry)}` }),
        ),
      );
    }
    target.replaceChildren(el("ol", { class: "timeline", id: "timeline-list" }, items));
  } catch (error) {
    showProblem(target, error);
  }
}

// --- project search ----------------------------------------------------------------------

async function projects() {
  const form = document.getElementById("project-search");
  const target = document.getElementById("projects");
  async function load() {
    try {
      const rows = await api("GET", `/api/v1/supervision/projects?${formQuery(form)}`);
      if (!rows.length) {
        target.replaceChildren(el("p", { id: "no-projects", class: "muted", text: t("console.projects.none") }));
        return;
      }
      target.replaceChildren(
        table(
          [t("console.project.code"), t("console.project.name"), t("console.project.status"), t("console.project.start")],
          rows.map((p) =>
            el(
              "tr",
              { "data-project": p.id },
              el("td", {}, el("a", { href: `/console/projects/${p.id}`, class: "project-link" }, p.code)),
              el("td", { text: p.name }),
              el("td", { text: statusWord(p.status) }),
              el("td", { text: when(p.evaluation_start) }),
            ),
          ),
        ),
      );
    } catch (error) {
      showProblem(target, error);
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  load();
}

// --- audit -----------------------------------------------------------------------------

async function audit() {
  const verdict = document.getElementById("verdict");
  document.getElementById("verify").addEventListener("click", async () => {
    verdict.replaceChildren(el("p", { class: "muted", text: t("app.loading") }));
    try {
      const report = await api("GET", "/api/v1/audit/verify");
      verdict.replaceChildren(
        el(
          "p",
          { class: report.ok ? "result ok" : "result fail", id: "chain-verdict" },
          report.ok
            ? t("console.audit.ok", { n: report.entries_checked, c: report.checkpoints_checked })
            : t("console.audit.broken", { seq: report.first_bad_seq ?? "?", reason: report.reason || "" }),
        ),
        ...report.checkpoint_problems.map((p) => el("p", { class: "fail", text: JSON.stringify(p) })),
      );
    } catch (error) {
      showProblem(verdict, error);
    }
  });
  const target = document.getElementById("checkpoints");
  try {
    const rows = await api("GET", "/api/v1/audit/checkpoints");
    target.replaceChildren(
      table(
        [t("console.when"), "seq", "head", t("console.audit.reason")],
        rows.map((c) => el("tr", {}, el("td", { text: when(c.created_at) }), el("td", { class: "num", text: c.seq }), el("td", { text: c.head_hash.slice(0, 16) }), el("td", { text: c.reason }))),
      ),
    );
  } catch (error) {
    showProblem(target, error);
  }
}

const pages = { flags, verifications, verification, project, projects, audit };
pages[page]?.();
