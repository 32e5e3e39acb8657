// The h264create console's script. It builds no markup from data: the live fragments come
// from the server already escaped, and everything else is set as text.
"use strict";

(function () {
  const meta = (name) => {
    const m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") : "";
  };
  const csrf = meta("csrf");
  const result = () => document.getElementById("result");

  // Operator actions: confirm in the page, then POST with the session's CSRF token.
  let pending = null;
  const box = document.getElementById("confirm");
  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button.action");
    if (!button || !box) return;
    ev.preventDefault();
    pending = button.getAttribute("data-action");
    document.getElementById("confirm-text").textContent = button.getAttribute("data-confirm");
    box.hidden = false;
  });
  if (box) {
    document.getElementById("confirm-no").addEventListener("click", () => {
      pending = null;
      box.hidden = true;
    });
    document.getElementById("confirm-yes").addEventListener("click", async () => {
      const action = pending;
      pending = null;
      box.hidden = true;
      if (!action) return;
      try {
        const res = await fetch(action, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf },
        });
        const text = await res.text();
        result().textContent = (res.ok ? "" : "Refused: ") + text;
        result().className = res.ok ? "ok" : "error";
      } catch (e) {
        result().textContent = "The controller cannot be reached: " + e;
        result().className = "error";
      }
    });
  }

  // The live view: the server sends rendered, escaped fragments.
  if (document.querySelector("[data-live]")) {
    const state = document.getElementById("live-state");
    const source = new EventSource("/events");
    source.addEventListener("open", () => { state.textContent = "live"; });
    source.addEventListener("error", () => { state.textContent = "reconnecting"; });
    source.addEventListener("fleet", (e) => {
      const body = document.getElementById("fleet-body");
      if (body) body.innerHTML = e.data;
    });
    source.addEventListener("rollout", (e) => {
      const section = document.getElementById("rollout");
      if (section) section.innerHTML = e.data;
    });
  }

  // Charts, drawn with the vendored uPlot.
  const hours = document.getElementById("chart-hours");
  if (hours && window.uPlot) {
    fetch("/api/charts?days=30", { credentials: "same-origin" })
      .then((r) => r.json())
      .then((d) => {
        const width = Math.min(900, document.body.clientWidth - 40);
        const bars = uPlot.paths.bars({ size: [0.6, 60] });
        new uPlot({
          width, height: 240,
          series: [{}, { label: "media hours", stroke: "#2a6", fill: "rgba(34,170,102,0.3)", paths: bars }],
        }, [d.days, d.hours], hours);
        new uPlot({
          width, height: 240,
          scales: { x: { time: false } },
          axes: [{ label: "generation" }, { values: (u, v) => v.map((x) => (x * 100).toFixed(0) + "%") }],
          series: [{ label: "generation" }, { label: "failure rate", stroke: "#c33", fill: "rgba(204,51,51,0.3)", paths: bars }],
        }, [d.revisions, d.failure_rates], document.getElementById("chart-failures"));
        new uPlot({
          width, height: 240,
          scales: { x: { time: false } },
          axes: [{ label: "x real time" }, { label: "attempts" }],
          series: [{ label: "speed" }, { label: "attempts", stroke: "#36c", fill: "rgba(51,102,204,0.3)", paths: bars }],
        }, [d.speeds, d.counts], document.getElementById("chart-speed"));
      })
      .catch((e) => { result().textContent = "Charts unavailable: " + e; });
  }
})();
