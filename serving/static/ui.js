/* The clinician page of lapse: the patient list, one patient, the model card.
   Plain JavaScript, no external assets; charts are inline SVG drawn here. Every text is set
   with textContent, never as HTML. */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const state = {
    overview: null,
    sort: { key: "risk", dir: "desc" },
    lastOpened: null,
    navigated: false,
    tierRank: {},
    page: 0,
  };
  // Rows drawn per page of the full list: drawing thousands of rows at once blocks the page for seconds.
  const PAGE_SIZE = 50;

  // --- small helpers ---------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function pct(risk) {
    if (risk === null || risk === undefined) return "—";
    if (risk > 0 && risk < 0.005) return "under 1%";
    if (risk < 1 && risk > 0.995) return "over 99%";
    return Math.round(risk * 100) + "%";
  }

  function points(change) {
    return Math.round(Math.abs(change) * 100);
  }

  function changeText(change) {
    if (change === null || change === undefined) return { icon: "•", text: "first score", cls: "first" };
    const p = points(change);
    if (p === 0) return { icon: "=", text: "no change", cls: "same" };
    const unit = p === 1 ? "point" : "points";
    return change > 0
      ? { icon: "▲", text: "up " + p + " " + unit, cls: "up" }
      : { icon: "▼", text: "down " + p + " " + unit, cls: "down" };
  }

  const DATE = { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" };
  function dateText(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const day = d.toLocaleDateString("en-GB", DATE);
    const midnight = d.getUTCHours() === 0 && d.getUTCMinutes() === 0;
    return midnight ? day : day + ", " + d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit",
      timeZone: "UTC" }) + " UTC";
  }

  function shortDate(iso) {
    const d = new Date(iso.length === 10 ? iso + "T00:00:00Z" : iso);
    return d.toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
  }

  function capital(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
  }

  function tierRank(tier) {
    const r = state.tierRank[tier];
    return r === undefined ? 99 : r;
  }

  // The tier as a word plus a signal-strength icon: the bars, not the colour, carry the level.
  function tierBadge(tier) {
    const tiers = (state.overview && state.overview.tiers) || [tier];
    const levels = tiers.length;
    const filled = levels - tierRank(tier);
    const icon = svg("svg", { class: "tier-icon", viewBox: "0 0 18 14", width: 18, height: 14, "aria-hidden": "true",
      focusable: "false" });
    for (let i = 0; i < levels; i++) {
      const h = 4 + (10 * (i + 1)) / levels;
      icon.append(svg("rect", { x: i * 6, y: 14 - h, width: 4, height: h, rx: 1,
        class: i < filled ? "bar-on" : "bar-off" }));
    }
    return el("span", { class: "tier tier-" + rankClass(tier) }, icon, el("span", { text: capital(tier) }));
  }

  function rankClass(tier) {
    const r = tierRank(tier);
    const n = ((state.overview && state.overview.tiers) || []).length;
    if (r === 0) return "top";
    if (r >= n - 1) return "bottom";
    return "middle";
  }

  function supportWords(trigger, priority) {
    if (!trigger) return { icon: "", text: "No", cls: "no" };
    return { icon: "⚑", text: priority === "urgent" ? "Yes, urgent" : "Yes, soon", cls: priority === "urgent"
      ? "urgent" : "soon" };
  }

  function setStatus(text) {
    document.getElementById("status").textContent = text || "";
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin",
      headers: { Accept: "application/json" } }, options || {}));
    if (response.status === 401) {
      window.location.assign("login");
      throw new Error("signed out");
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error : "the service answered " + response.status;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function overview(force) {
    if (!state.overview || force) {
      state.overview = await api("api/overview");
      state.loadedAt = Date.now();
      state.tierRank = {};
      state.overview.tiers.forEach((t, i) => { state.tierRank[t] = i; });
    }
    return state.overview;
  }

  function horizonWords(days) {
    return days ? "within the next " + days + " days" : "soon";
  }

  // --- the list --------------------------------------------------------------------------

  function fillFilters(data) {
    const tier = document.getElementById("filter-tier");
    const program = document.getElementById("filter-program");
    if (tier.options.length === 1) {
      for (const t of data.tiers) tier.append(el("option", { value: t, text: capital(t) }));
    }
    if (program.options.length === 1) {
      for (const p of data.programs) program.append(el("option", { value: p, text: p }));
      if (data.patients.some((p) => !p.program)) program.append(el("option", { value: "-", text: "Not recorded" }));
    }
  }

  function compare(a, b, key) {
    switch (key) {
      case "tier": return tierRank(b.tier) - tierRank(a.tier);
      case "trigger": return (Number(a.trigger) - Number(b.trigger)) ||
        ((a.priority === "urgent") - (b.priority === "urgent"));
      case "risk": return a.risk - b.risk;
      case "change": return a.change - b.change;
      case "days_idle": return a.days_idle - b.days_idle;
      default: return String(a[key] || "").localeCompare(String(b[key] || ""));
    }
  }

  function sorted(rows) {
    const { key, dir } = state.sort;
    const sign = dir === "asc" ? 1 : -1;
    return rows.slice().sort((a, b) => {
      const aMissing = a[key] === null || a[key] === undefined;
      const bMissing = b[key] === null || b[key] === undefined;
      if (aMissing !== bMissing) return aMissing ? 1 : -1;
      const c = aMissing ? 0 : compare(a, b, key) * sign;
      return c || (b.risk - a.risk) || a.patient_id.localeCompare(b.patient_id);
    });
  }

  function filtered(rows) {
    const tier = document.getElementById("filter-tier").value;
    const program = document.getElementById("filter-program").value;
    const text = document.getElementById("filter-text").value.trim().toLowerCase();
    const support = document.getElementById("filter-support").checked;
    return rows.filter((r) => (!tier || r.tier === tier) &&
      (!program || (program === "-" ? !r.program : r.program === program)) &&
      (!text || r.patient_id.toLowerCase().includes(text)) && (!support || r.trigger));
  }

  function riskCell(risk) {
    const bar = svg("svg", { class: "risk-bar", viewBox: "0 0 60 8", width: 60, height: 8, "aria-hidden": "true",
      focusable: "false" },
      svg("rect", { x: 0, y: 0, width: 60, height: 8, rx: 2, class: "risk-track" }),
      svg("rect", { x: 0, y: 0, width: Math.max(1, 60 * risk), height: 8, rx: 2, class: "risk-fill" }));
    return el("td", { class: "risk" }, el("span", { class: "risk-value", text: pct(risk) }), bar);
  }

  // The theme of the top logged factor ("Use of the program") with its direction; a patient's page words it fully.
  function reasonCell(top) {
    if (!top) return el("td", { text: "—" });
    const raises = top.direction === "raises";
    const arrow = el("span", { "aria-hidden": "true", class: "direction " + (raises ? "raises" : "lowers"),
      text: raises ? "▲" : "▼" });
    if (top.sentence) return el("td", { class: "reason-cell" }, arrow, " ", el("span", { text: top.sentence }));
    return el("td", { class: "reason-cell" }, arrow, " ", el("span", { text: top.label + ": " +
      (raises ? "raises risk" : "lowers risk") }));
  }

  function renderRows() {
    const data = state.overview;
    const rows = sorted(filtered(data.patients));
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const body = document.querySelector("#patients tbody");
    body.replaceChildren();
    for (const r of rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)) {
      const ch = changeText(r.change);
      const sup = supportWords(r.trigger, r.priority);
      const link = el("a", { href: "#/patient/" + encodeURIComponent(r.patient_id), class: "patient-link",
        "data-patient": r.patient_id, text: r.patient_id });
      const tr = el("tr", { "data-patient": r.patient_id },
        el("th", { scope: "row" }, link),
        riskCell(r.risk),
        el("td", { class: "change change-" + ch.cls },
          el("span", { "aria-hidden": "true", class: "change-icon", text: ch.icon + " " }), ch.text),
        el("td", {}, tierBadge(r.tier)),
        el("td", { class: "state" + (r.left ? " left-flag" : ""), text: r.state }),
        reasonCell(r.top_reason),
        el("td", { class: "support support-" + sup.cls },
          sup.icon ? el("span", { "aria-hidden": "true", text: sup.icon + " " }) : null, sup.text),
        el("td", { class: "program", text: r.program || "Not recorded" }),
        el("td", { class: "scored", text: dateText(r.as_of) }));
      tr.addEventListener("click", (event) => {
        if (event.target.closest("a")) return;
        window.location.hash = link.getAttribute("href");
      });
      body.append(tr);
    }
    const shown = rows.length;
    const total = data.patients.length;
    let count = shown === total ? total + (total === 1 ? " patient" : " patients")
      : "Showing " + shown + " of " + total + " patients";
    if (data.truncated) count += " (the " + total + " highest risks of " + data.total + " scored)";
    document.getElementById("list-count").textContent = count;
    // The list is rebuilt every few seconds at most: scores logged since then show on a later load.
    document.getElementById("list-built").textContent = data.built_at ? "List as of " + dateText(data.built_at) + "."
      : "";
    document.getElementById("list-empty").hidden = shown !== 0;
    const pager = document.getElementById("pager");
    pager.hidden = pages < 2;
    document.getElementById("page-info").textContent = "Page " + (state.page + 1) + " of " + pages + " (rows " +
      (state.page * PAGE_SIZE + 1) + "–" + Math.min(rows.length, (state.page + 1) * PAGE_SIZE) + ")";
    document.getElementById("page-prev").disabled = state.page === 0;
    document.getElementById("page-next").disabled = state.page >= pages - 1;
    for (const th of document.querySelectorAll("#patients th[data-sort]")) {
      const active = th.dataset.sort === state.sort.key;
      th.setAttribute("aria-sort", active ? (state.sort.dir === "asc" ? "ascending" : "descending") : "none");
      th.querySelector(".sort-icon").textContent = active ? (state.sort.dir === "asc" ? " ▲" : " ▼") : "";
    }
    const caption = document.getElementById("patients-caption");
    const name = document.querySelector('#patients th[data-sort="' + state.sort.key + '"] button').firstChild
      .textContent;
    caption.textContent = "Patients and their latest dropout risk, sorted by " + name.toLowerCase() + ", " +
      (state.sort.dir === "asc" ? "lowest first" : "highest first");
  }

  async function showList() {
    const data = await overview(!state.overview || Date.now() - state.loadedAt > 10000);
    fillFilters(data);
    document.getElementById("list-intro").textContent = "Each patient's latest dropout risk: the chance they stop " +
      "using the program " + horizonWords(data.horizon_days) + ". Highest risk first; select a column heading to " +
      "sort, or a patient to see why.";
    renderRows();
    show("view-list", "list-title");
  }

  // --- one patient -----------------------------------------------------------------------

  function summaryItem(label, ...value) {
    return el("div", { class: "summary-item" }, el("dt", { text: label }), el("dd", {}, ...value));
  }

  function renderSummary(p, data) {
    const ch = changeText(p.change);
    const since = p.previous_as_of ? " since " + dateText(p.previous_as_of) : "";
    const list = el("dl", { class: "summary-list" },
      summaryItem("Dropout risk " + horizonWords(data.horizon_days),
        el("span", { class: "big", text: pct(p.risk) })),
      summaryItem("Risk level", tierBadge(p.tier)),
      summaryItem("Change", el("span", { class: "change change-" + ch.cls },
        el("span", { "aria-hidden": "true", text: ch.icon + " " }), ch.text + (p.change === null ? "" : since))),
      summaryItem("Scored", el("span", { text: dateText(p.as_of) })),
      summaryItem("Program", el("span", { text: p.program || "Not recorded" })),
      summaryItem("Model version", el("span", { text: p.model_version })));
    const left = p.timeline.available && p.timeline.discontinued_at;
    const box = document.getElementById("patient-summary");
    box.replaceChildren(list);
    if (left) {
      box.append(el("p", { class: "note left-note" }, el("span", { "aria-hidden": "true", text: "⚠ " }),
        "Left the program on " + dateText(p.timeline.discontinued_at) + ", before this score. " +
        "Check whether they finished, moved to other care or want to come back before reaching out."));
    }
  }

  function renderSupport(p) {
    const s = p.support;
    const box = document.getElementById("patient-support");
    const headline = !s.trigger ? "No outreach needed now"
      : s.priority === "urgent" ? "Reach out today" : "Reach out in the next few days";
    const cls = !s.trigger ? "none" : s.priority;
    const icon = !s.trigger ? "✓" : "⚑";
    box.replaceChildren(
      el("p", { class: "support-headline support-" + cls },
        el("span", { "aria-hidden": "true", text: icon + " " }), headline),
      el("p", { class: "support-why", text:
        (s.trigger ? "The risk is at or above the level at which the program offers human support."
          : "The risk is below the level at which the program offers human support; keep monitoring.") +
        (s.trigger && p.reasons.items.some((r) => r.direction === "raises")
          ? " Main reason: " + p.reasons.items.find((r) => r.direction === "raises").sentence + "." : "") }));
  }

  function renderReasons(p) {
    const list = document.getElementById("patient-reasons");
    const items = p.reasons.items;
    const largest = Math.max(1e-9, ...items.map((r) => Math.abs(r.contribution)));
    list.replaceChildren(el("li", { class: "reason reason-legend", "aria-hidden": "true" }, el("span", {}),
      el("span", {}), el("span", { class: "legend-axis" }, el("span", { class: "lowers", text: "◀ lowers risk" }),
        el("span", { class: "raises", text: "raises risk ▶" }))));
    for (const r of items) {
      const raises = r.direction === "raises";
      const half = 100;
      const length = Math.max(2, (Math.abs(r.contribution) / largest) * (half - 6));
      const chart = svg("svg", { class: "reason-chart", viewBox: "0 0 200 18", preserveAspectRatio: "none",
        "aria-hidden": "true", focusable: "false" },
        svg("rect", { x: raises ? half : half - length, y: 3, width: length, height: 12, rx: 2,
          class: raises ? "bar-raises" : "bar-lowers" }),
        svg("line", { x1: half, y1: 0, x2: half, y2: 18, class: "axis" }));
      list.append(el("li", { class: "reason " + (raises ? "raises" : "lowers") },
        el("span", { class: "reason-text" }, el("strong", { text: r.label + ": " }), r.sentence,
          r.related && r.related.length ? el("span", { class: "related", text: " (also: " +
            r.related.slice(0, 3).map((x) => x.replace(/ (raises|lowers) risk$/, "")).join("; ") + ")" }) : null),
        el("span", { class: "reason-direction", "aria-hidden": "true", text: raises ? "▲ raises" : "▼ lowers" }),
        chart));
    }
    if (!items.length) list.append(el("li", { class: "reason", text: "No single factor stood out." }));
    const note = document.getElementById("reasons-note");
    note.hidden = !p.reasons.note;
    note.textContent = p.reasons.note || "";
  }

  function renderHistory(p, data) {
    const box = document.getElementById("patient-history");
    const h = p.history;
    const W = 640, H = 220, L = 48, R = 120, T = 12, B = 34;
    const times = h.map((x) => new Date(x.as_of).getTime());
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const x = (t) => (t1 === t0 ? L + (W - L - R) / 2 : L + ((t - t0) / (t1 - t0)) * (W - L - R));
    const y = (r) => T + (1 - r) * (H - T - B);
    const first = h[0], last = h[h.length - 1];
    const label = h.length === 1 ? "One score so far: " + pct(last.risk) + " on " + dateText(last.as_of) + "."
      : h.length + " scores from " + dateText(first.as_of) + " to " + dateText(last.as_of) + ", from " +
        pct(first.risk) + " to " + pct(last.risk) + ".";
    const chart = svg("svg", { class: "history-chart", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-labelledby": "history-summary" });
    for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
      chart.append(svg("line", { x1: L, x2: W - R, y1: y(tick), y2: y(tick), class: "grid" }));
      chart.append(svg("text", { x: L - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end",
        text: Math.round(tick * 100) + "%" }));
    }
    const cuts = (data.cuts || []).filter((c) => c.min_risk > 0);
    for (const c of cuts) {
      chart.append(svg("line", { x1: L, x2: W - R, y1: y(c.min_risk), y2: y(c.min_risk), class: "cut" }));
      chart.append(svg("text", { x: W - R + 6, y: y(c.min_risk) + 4, class: "cut-label",
        text: capital(c.tier) + " from " + pct(c.min_risk) }));
    }
    if (h.length > 1) {
      chart.append(svg("polyline", { class: "risk-line", fill: "none",
        points: h.map((p0, i) => x(times[i]) + "," + y(p0.risk)).join(" ") }));
    }
    h.forEach((p0, i) => {
      chart.append(svg("circle", { cx: x(times[i]), cy: y(p0.risk), r: 4.5, class: "risk-point" },
        svg("title", { text: dateText(p0.as_of) + ": " + pct(p0.risk) })));
    });
    const dates = t1 === t0 ? [t0] : times.length <= 8 ? times : [t0, t1];
    for (const t of dates) {
      chart.append(svg("text", { x: x(t), y: H - 12, class: "tick", "text-anchor": "middle",
        text: shortDate(new Date(t).toISOString()) }));
    }
    const table = el("table", { class: "plain" },
      el("caption", { class: "visually-hidden", text: "Scores over time" }),
      el("thead", {}, el("tr", {}, ...["Scored", "Risk", "Risk level", "Support", "Model version"].map((t) =>
        el("th", { scope: "col", text: t })))),
      el("tbody", {}, ...h.slice().reverse().map((p0) => {
        const s = supportWords(p0.trigger, p0.priority);
        return el("tr", {}, el("td", { text: dateText(p0.as_of) }), el("td", { text: pct(p0.risk) }),
          el("td", { text: capital(p0.tier) }), el("td", { text: s.text }), el("td", { text: p0.model_version }));
      })));
    box.replaceChildren(el("p", { id: "history-summary", class: "hint", text: label }), chart,
      el("details", {}, el("summary", { text: "Show the scores as a table" }), table));
  }

  const TIMELINE_ROWS = [
    { key: "activity", label: "Any activity", kind: "bar" },
    { key: "sessions", label: "Sessions", kind: "square" },
    { key: "modules", label: "Modules completed", kind: "triangle" },
    { key: "checkins", label: "Mood check-ins", kind: "circle" },
    { key: "questionnaires", label: "PHQ-9 / GAD-7", kind: "diamond" },
    { key: "from_coach", label: "Messages from coach", kind: "envelope" },
    { key: "to_coach", label: "Messages to coach", kind: "reply" },
    { key: "left", label: "Left the program", kind: "cross" },
  ];

  function marker(kind, cx, cy) {
    switch (kind) {
      case "square": return svg("rect", { x: cx - 5, y: cy - 5, width: 10, height: 10, class: "mark" });
      case "triangle": return svg("polygon", { points: `${cx},${cy - 6} ${cx + 6},${cy + 5} ${cx - 6},${cy + 5}`,
        class: "mark" });
      case "circle": return svg("circle", { cx: cx, cy: cy, r: 5, class: "mark" });
      case "diamond": return svg("polygon", { points: `${cx},${cy - 6} ${cx + 6},${cy} ${cx},${cy + 6} ${cx - 6},${cy}`,
        class: "mark" });
      case "envelope": return svg("rect", { x: cx - 6, y: cy - 4, width: 12, height: 8, class: "mark-open" });
      case "cross": return svg("path", { d: `M${cx - 5},${cy - 5} L${cx + 5},${cy + 5} M${cx + 5},${cy - 5} ` +
        `L${cx - 5},${cy + 5}`, class: "mark-cross" });
      default: return svg("polygon", { points: `${cx - 6},${cy} ${cx + 5},${cy - 5} ${cx + 5},${cy + 5}`,
        class: "mark" });
    }
  }

  function renderTimeline(p) {
    const box = document.getElementById("patient-timeline");
    const t = p.timeline;
    if (!t.available) {
      box.replaceChildren(el("p", { class: "note", text: t.note }));
      return;
    }
    const days = t.days;
    const n = days.length;
    const L = 150, cell = 22, rowH = 24, top = 8, barH = 46;
    const W = L + n * cell + 8;
    const H = top + barH + 8 + (TIMELINE_ROWS.length - 1) * rowH + 44;
    const last = t.last_activity_days;
    const summary = "Active on " + t.active_days + " of the last " + n + " days" +
      (t.enrolled_days < n ? " (enrolled for " + t.enrolled_days + " of them)" : "") + ". " +
      (last === null ? "No activity recorded yet." : last === 0 ? "Last activity less than a day before the score."
        : "Last activity " + last + (last === 1 ? " day" : " days") + " before the score.") +
      (t.discontinued_at ? " Left the program on " + dateText(t.discontinued_at) + "." : "");
    const chart = svg("svg", { class: "timeline-chart", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-labelledby": "timeline-summary" });
    const maxActivity = Math.max(1, ...days.map((d) => d.activity));
    chart.append(svg("defs", {}, svg("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" }, svg("rect", { width: 6, height: 6, class: "hatch-bg" }),
      svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "hatch-line" }))));
    const plotH = H - top - 44;
    const before = days.filter((d) => !d.enrolled).length;
    if (before) {
      chart.append(svg("rect", { x: L, y: top, width: before * cell, height: plotH, fill: "url(#hatch)" }));
      if (before >= 4) {
        chart.append(svg("text", { x: L + (before * cell) / 2, y: top + plotH / 2, class: "region-label",
          "text-anchor": "middle", text: "not yet enrolled" }));
      }
    }
    days.forEach((d, i) => {
      // Week boundaries counted back from the score, as the reasons count ("in the last 7 days").
      if (d.days_before % 7 === 0 && i > 0) {
        chart.append(svg("line", { x1: L + i * cell, x2: L + i * cell, y1: top, y2: top + plotH + 30,
          class: "week" }));
      }
    });
    chart.append(svg("line", { x1: L + n * cell, x2: L + n * cell, y1: top - 4, y2: top + plotH, class: "score-line" }));
    TIMELINE_ROWS.forEach((row, r) => {
      const cy = r === 0 ? top + barH / 2 : top + barH + 8 + (r - 1) * rowH + rowH / 2;
      chart.append(svg("text", { x: L - 8, y: cy + 4, class: "row-label", "text-anchor": "end", text: row.label }));
      days.forEach((d, i) => {
        const v = d[row.key];
        if (!v) return;
        const cx = L + i * cell + cell / 2;
        const when = dateText(d.date + "T00:00:00Z");
        if (row.kind === "bar") {
          const h = Math.max(2, (v / maxActivity) * (barH - 14));
          chart.append(svg("rect", { x: cx - 7, y: top + barH - h, width: 14, height: h, class: "activity" },
            svg("title", { text: when + ": " + v + " activities" })));
          chart.append(svg("text", { x: cx, y: top + barH - h - 3, class: "count-label", "text-anchor": "middle",
            text: String(v) }));
        } else {
          const m = marker(row.kind, cx, cy);
          m.append(svg("title", { text: when + ": " + v + " " + row.label.toLowerCase() }));
          chart.append(m);
        }
      });
    });
    const weekNames = ["last 7 days", "1–2 weeks before", "2–3 weeks before", "3–4 weeks before"];
    for (let w = 0; w * 7 < n; w++) {
      const span = days.filter((d) => d.days_before > w * 7 && d.days_before <= (w + 1) * 7);
      if (!span.length) continue;
      const i0 = days.indexOf(span[0]);
      const mid = L + (i0 + span.length / 2) * cell;
      chart.append(svg("text", { x: mid, y: H - 24, class: "tick week-name", "text-anchor": "middle",
        text: weekNames[w] || w + "–" + (w + 1) + " weeks before" }));
      chart.append(svg("text", { x: mid, y: H - 8, class: "tick", "text-anchor": "middle",
        text: shortDate(span[0].date) + " – " + shortDate(span[span.length - 1].date) }));
    }
    const legend = el("p", { class: "hint" }, "Each column is one day; the latest score is at the right edge. " +
      "Numbers above the bars count the patient's own activities that day (sessions, modules, exercises, " +
      "check-ins, questionnaires, messages to the coach)." + (before ? " Hatched days are before enrolment." : ""));
    const table = el("table", { class: "plain" },
      el("caption", { class: "visually-hidden", text: "Engagement day by day" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Day" }),
        ...TIMELINE_ROWS.map((row) => el("th", { scope: "col", text: row.label })),
        el("th", { scope: "col", text: "Session minutes" }))),
      el("tbody", {}, ...days.slice().reverse().map((d) => el("tr", {},
        el("th", { scope: "row", text: dateText(d.date + "T00:00:00Z") + (d.enrolled ? "" : " (not yet enrolled)") }),
        ...TIMELINE_ROWS.map((row) => el("td", { text: String(d[row.key]) })),
        el("td", { text: String(d.minutes) })))));
    box.replaceChildren(el("p", { id: "timeline-summary", class: "timeline-summary", text: summary }), legend,
      el("div", { class: "chart-wrap", tabindex: "0", role: "region", "aria-label": "Engagement chart, latest " +
        "days at the right" }, chart),
      el("details", {}, el("summary", { text: "Show the days as a table" }), table));
  }

  async function showPatient(patientId) {
    setStatus("Loading patient " + patientId + "…");
    const data = await overview(false);
    if (!data.cuts) {
      try {
        const card = await api("api/model");
        data.cuts = card.tiers;
      } catch (e) { data.cuts = []; }
    }
    const p = await api("api/patient", { method: "POST", body: JSON.stringify({ patient_id: patientId }),
      headers: { "Content-Type": "application/json", Accept: "application/json" } });
    state.lastOpened = patientId;
    document.getElementById("patient-title").textContent = "Patient " + p.patient_id;
    document.title = "Patient " + p.patient_id + " · lapse";
    renderSummary(p, data);
    renderSupport(p);
    renderReasons(p);
    renderHistory(p, data);
    renderTimeline(p);
    window.lapseWork.renderPatientWork(p);
    setStatus("");
    show("view-patient", "patient-title");
    // The latest days in view on a narrow screen: the chart scrolls, opened at its right (newest) end.
    for (const wrap of document.querySelectorAll("#view-patient .chart-wrap")) wrap.scrollLeft = wrap.scrollWidth;
  }

  // --- the model card --------------------------------------------------------------------

  function section(title, ...content) {
    return el("section", { class: "card" }, el("h2", { text: title }), ...content);
  }

  async function showModel() {
    const m = await api("api/model");
    const box = document.getElementById("model-card");
    const windows = m.windows.map((w) => el("li", {}, el("strong", { text: w.part + ": " }),
      "patients enrolled " + dateText(w.from) + " to " + dateText(w.to) +
      (w.patients !== null ? " (" + w.patients.toLocaleString("en-GB") + " patients" +
        (w.snapshots !== null ? ", " + w.snapshots.toLocaleString("en-GB") + " scoring moments" : "") + ")" : "") +
      "."));
    const tiers = m.tiers.map((t, i) => {
      const upper = i === 0 ? null : m.tiers[i - 1].min_risk;
      const range = upper === null ? pct(t.min_risk) + " or more" : t.min_risk > 0
        ? pct(t.min_risk) + " to under " + pct(upper) : "under " + pct(upper);
      return el("li", {}, tierBadge(t.tier), " " + range);
    });
    const metrics = el("dl", { class: "metrics" }, ...m.metrics.flatMap((x) => [
      el("dt", {}, x.name + ": ", el("span", { class: "metric-value", text: x.value })),
      el("dd", { text: x.text })]));
    const looks = m.looks_at.map((g) => el("details", {}, el("summary", { text: g.level + " (" + g.labels.length +
      ")" }), el("ul", {}, ...g.labels.map((l) => el("li", { text: l })))));
    box.replaceChildren(
      el("p", { class: "lead", text: m.predicts }),
      section("Version", el("p", { text: m.name + ", version " + m.version + ", served as “" + m.alias +
        "” since " + dateText(m.loaded_at) + "." }),
        el("p", { id: "promotion", class: "promotion promotion-" + m.promotion.outcome, text: m.promotion.text })),
      section("What it learned from", el("ul", {}, ...windows),
        el("p", { text: m.data_end ? "Data up to " + dateText(m.data_end) + "." : "" })),
      section("How accurate it is", el("p", { class: "hint", text: m.evaluated }), metrics),
      section("Risk levels and support",
        el("ul", { class: "tiers" }, ...tiers),
        el("p", { text: "Human support is suggested at a risk of " + pct(m.trigger_risk) + " or more." })),
      section("What it cannot see", el("ul", {}, ...m.cannot_see.map((c) => el("li", { text: c })))),
      section("What it looks at", ...looks));
    show("view-model", "model-title");
  }

  // --- routing ---------------------------------------------------------------------------

  // Moves focus to the new view's heading after navigation (not on first load, so the skip link stays first);
  // back on the list, focus returns to the patient that was open.
  function show(id, headingId) {
    for (const view of document.querySelectorAll("main > section")) view.hidden = view.id !== id;
    for (const [nav, view] of [["nav-today", "view-today"], ["nav-list", "view-list"], ["nav-model", "view-model"]]) {
      const link = document.getElementById(nav);
      if (view === id) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    if (!state.navigated) return;
    if ((id === "view-list" || id === "view-today") && state.lastOpened) {
      const view = document.getElementById(id);
      const link = view.querySelector('a.patient-link[data-patient="' + CSS.escape(state.lastOpened) + '"]');
      state.lastOpened = null;
      if (link) { link.focus(); return; }
    }
    const heading = document.getElementById(headingId);
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }

  async function route() {
    const hash = window.location.hash || "#/";
    try {
      if (hash.startsWith("#/patient/")) {
        await showPatient(decodeURIComponent(hash.slice("#/patient/".length)));
      } else if (hash === "#/model") {
        document.title = "About the model · lapse";
        await showModel();
      } else if (hash === "#/patients") {
        document.title = "All patients · lapse";
        await showList();
      } else {
        document.title = "Today · lapse";
        await window.lapseWork.showToday();
      }
      setStatus("");
    } catch (error) {
      if (error.message !== "signed out") setStatus("Could not load this page: " + error.message + ".");
    }
  }

  function init() {
    for (const th of document.querySelectorAll("#patients th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.sort;
        if (state.sort.key === key) state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
        else state.sort = { key: key, dir: ["patient_id", "program"].includes(key) ? "asc" : "desc" };
        renderRows();
      });
    }
    for (const id of ["filter-tier", "filter-program", "filter-support"]) {
      document.getElementById(id).addEventListener("change", () => { state.page = 0; renderRows(); });
    }
    document.getElementById("filter-text").addEventListener("input", () => { state.page = 0; renderRows(); });
    document.getElementById("page-prev").addEventListener("click", () => { state.page -= 1; renderRows(); });
    document.getElementById("page-next").addEventListener("click", () => { state.page += 1; renderRows(); });
    document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
    window.addEventListener("hashchange", () => { state.navigated = true; route(); });
    route();
  }

  // Shared with work.js (Today's queue, marks, assignment, the patient's measures).
  window.lapseUI = { el, svg, pct, api, dateText, shortDate, tierBadge, changeText, capital, setStatus, show, overview,
    state };
  document.addEventListener("DOMContentLoaded", init);
})();
