/* The coach's work on the clinician page: Today's queue (two sections, sized to the team's capacity),
   marking a contact (contacted / reached / no answer / declined), assigning a coach, and the patient's
   mood and questionnaire values over time. Uses the helpers ui.js shares as window.lapseUI. */
"use strict";

(function () {
  const MARKS = [["contacted", "Contacted"], ["reached", "Reached"], ["no_answer", "No answer"],
    ["declined", "Declined"]];

  function ui() { return window.lapseUI; }

  function post(path, body) {
    return ui().api(path, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json" } });
  }

  function lastMark(marks) {
    if (!marks || !marks.length) return "Not contacted yet";
    const m = marks[marks.length - 1];
    return m.words + " · " + ui().dateText(m.at);
  }

  // The four mark buttons and the assign field; `done` is called after a change is stored.
  function workControls(patientId, coach, marks, done) {
    const { el } = ui();
    const status = el("span", { class: "mark-status", role: "status", text: lastMark(marks) });
    const group = el("div", { class: "marks", role: "group", "aria-label": "Record a contact with " + patientId });
    for (const [key, words] of MARKS) {
      const button = el("button", { type: "button", class: "mark-button", "data-mark": key, text: words });
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await post("api/mark", { patient_id: patientId, mark: key });
          marks.push({ kind: key, words: words, at: new Date().toISOString() });
          status.textContent = lastMark(marks);
          if (done) done();
        } catch (error) {
          status.textContent = "Not saved: " + error.message;
        } finally {
          button.disabled = false;
        }
      });
      group.append(button);
    }
    const id = "coach-" + patientId.replace(/[^A-Za-z0-9_-]/g, "_");
    const input = el("input", { id: id, type: "text", class: "coach-input", autocomplete: "off", maxlength: 128,
      value: coach || "", list: "coach-names" });
    const save = el("button", { type: "button", class: "assign-button", text: "Assign" });
    const saved = el("span", { class: "assign-status", role: "status" });
    save.addEventListener("click", async () => {
      try {
        const answer = await post("api/assign", { patient_id: patientId, coach: input.value });
        saved.textContent = answer.coach ? "Assigned to " + answer.coach : "Not assigned";
      } catch (error) {
        saved.textContent = "Not saved: " + error.message;
      }
    });
    const assign = el("div", { class: "assign" }, el("label", { for: id, text: "Coach" }), input, save, saved);
    return el("div", { class: "work" }, group, status, assign);
  }

  function queueItem(r) {
    const { el, pct, tierBadge } = ui();
    const link = el("a", { href: "#/patient/" + encodeURIComponent(r.patient_id), class: "patient-link",
      "data-patient": r.patient_id, text: r.patient_id });
    return el("li", { class: "queue-item", "data-patient": r.patient_id },
      el("div", { class: "queue-head" }, el("span", { class: "queue-rank", text: r.rank + "." }), link,
        el("span", { class: "queue-risk", text: pct(r.risk) + " risk" }), tierBadge(r.tier),
        r.program ? el("span", { class: "queue-program", text: r.program }) : null),
      el("p", { class: "why-now", text: r.why }),
      workControls(r.patient_id, r.coach, r.marks.slice(), null));
  }

  async function showToday() {
    const { el, setStatus, show } = ui();
    setStatus("Loading today's list…");
    const [q, data] = await Promise.all([ui().api("api/today"), ui().overview(false)]);
    void data;
    const slipping = q.patients.filter((r) => r.section === "slipping");
    const lapsed = q.patients.filter((r) => r.section === "lapsed");
    document.getElementById("today-intro").textContent = q.patients.length + " of the team's " + q.capacity +
      " contacts for today, in the order the outreach policy (" + q.policy + ") ranks them. Mark each contact " +
      "as you make it; the marks are kept with the patient's record.";
    document.getElementById("slipping-hint").textContent = slipping.length + " patients still using the program " +
      "(used it in the last " + q.lapsed_after_days + " days) whose risk of stopping is high.";
    document.getElementById("lapsed-hint").textContent = lapsed.length + " patients who stopped using the " +
      "program in the last " + q.recently_lapsed_days + " days (no use for " + q.lapsed_after_days +
      " days or more)." + (q.activity_known ? "" : " Without the program's data the page cannot tell who stopped.");
    for (const [id, rows] of [["queue-slipping", slipping], ["queue-lapsed", lapsed]]) {
      const list = document.getElementById(id);
      list.replaceChildren(...rows.map(queueItem));
      if (!rows.length) list.append(el("li", { class: "queue-empty", text: "Nobody in this group today." }));
    }
    let names = document.getElementById("coach-names");
    if (!names) { names = el("datalist", { id: "coach-names" }); document.body.append(names); }
    names.replaceChildren(...q.coaches.map((c) => el("option", { value: c })));
    setStatus("");
    show("view-today", "today-title");
  }

  // The patient's marks and coach, and their mood / PHQ-9 / GAD-7 values as small line charts.
  function renderPatientWork(p) {
    const { el, dateText } = ui();
    const contact = document.getElementById("patient-contact");
    const history = p.marks.length
      ? el("ul", { class: "mark-history" }, ...p.marks.slice().reverse().map((m) => el("li", {},
        m.words + " · " + dateText(m.at) + (m.coach ? " · " + m.coach : ""))))
      : el("p", { class: "hint", text: "No contact recorded yet." });
    contact.replaceChildren(workControls(p.patient_id, p.coach, p.marks.slice(), null),
      el("h3", { text: "Past contacts" }), history);
    const box = document.getElementById("patient-measures");
    const t = p.timeline;
    if (!t.available || !t.measures) {
      box.replaceChildren(el("p", { class: "note", text: t.note || "Not available." }));
      return;
    }
    box.replaceChildren(...t.measures.map((m) => measureChart(m)));
  }

  function measureChart(m) {
    const { el, svg, shortDate, dateText } = ui();
    const pts = m.points;
    if (!pts.length) {
      return el("p", { class: "measure-empty" }, el("strong", { text: m.label + ": " }), "none recorded.");
    }
    const W = 320, H = 110, L = 30, R = 10, T = 8, B = 22;
    const times = pts.map((q) => new Date(q.at).getTime());
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const x = (t) => (t1 === t0 ? L + (W - L - R) / 2 : L + ((t - t0) / (t1 - t0)) * (W - L - R));
    const y = (v) => T + (1 - v / m.max) * (H - T - B);
    const first = pts[0], last = pts[pts.length - 1];
    const id = "measure-" + m.key;
    const words = pts.length === 1 && first.baseline
      ? "At enrolment " + first.value + ". Taken " + dateText(first.at) + "; none since."
      : (first.baseline ? "At enrolment " + first.value + ". " : "") +
      (pts.length === 1 ? "One value: " + last.value + " on " + dateText(last.at) + "."
      : pts.length + " values from " + dateText(first.at) + " to " + dateText(last.at) + ": first " + first.value +
        ", latest " + last.value + ".");
    const chart = svg("svg", { class: "measure-chart", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-labelledby": id });
    for (const tick of [0, m.max / 2, m.max]) {
      chart.append(svg("line", { x1: L, x2: W - R, y1: y(tick), y2: y(tick), class: "grid" }));
      chart.append(svg("text", { x: L - 4, y: y(tick) + 4, class: "tick", "text-anchor": "end",
        text: String(Math.round(tick)) }));
    }
    if (pts.length > 1) {
      chart.append(svg("polyline", { class: "measure-line", fill: "none",
        points: pts.map((q, i) => x(times[i]) + "," + y(q.value)).join(" ") }));
    }
    pts.forEach((q, i) => chart.append(svg("circle", { cx: x(times[i]), cy: y(q.value), r: 3, class: "measure-point" },
      svg("title", { text: dateText(q.at) + ": " + q.value }))));
    for (const [t, anchor] of t1 === t0 ? [[t0, "middle"]] : [[t0, "start"], [t1, "end"]]) {
      chart.append(svg("text", { x: x(t), y: H - 6, class: "tick", "text-anchor": anchor,
        text: shortDate(new Date(t).toISOString()) }));
    }
    return el("figure", { class: "measure" }, el("figcaption", {}, el("strong", { text: m.label }),
      el("span", { id: id, class: "hint", text: " " + words })), chart);
  }

  window.lapseWork = { showToday, renderPatientWork };
})();
