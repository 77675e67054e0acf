// Live rollout view: listens to the server-sent rollout stream and updates
// each environment's panel without reloading the page.
"use strict";
(function () {
  const series = {}; // env -> {err: {canary:[], stable:[]}, lat: {...}}
  const maxPoints = 60;

  function text(root, sel, value) {
    const el = root.querySelector(sel);
    if (el) el.textContent = value;
  }

  function draw(svg, s) {
    const all = s.canary.concat(s.stable);
    const hi = Math.max(1e-9, ...all);
    const ns = "http://www.w3.org/2000/svg";
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    for (const [name, colour] of [["stable", "#2f6fdf"], ["canary", "#c0392b"]]) {
      const pts = s[name];
      if (pts.length === 0) continue;
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", colour);
      line.setAttribute("stroke-width", "1.5");
      line.setAttribute("class", name);
      line.setAttribute("points", pts.map((v, i) => `${(i * 300) / (maxPoints - 1)},${76 - (v / hi) * 72}`).join(" "));
      svg.appendChild(line);
    }
  }

  function update(snap) {
    for (const e of snap.environments) {
      const root = document.getElementById("env-" + e.env);
      if (!root) continue;
      text(root, ".stable", e.stable || "nothing yet");
      const si = root.querySelector(".stable-image");
      if (si) { si.textContent = e.stable_image || ""; si.hidden = !e.stable_image; }
      const panel = root.querySelector(".rollout");
      const approve = root.querySelector("button.approve");
      const canAct = document.getElementById("who").dataset.role !== "viewer";
      if (!e.rollout) {
        panel.hidden = true;
        if (approve) approve.disabled = true;
        continue;
      }
      panel.hidden = false;
      const r = e.rollout;
      text(root, ".version", r.version);
      const vi = root.querySelector(".version-image");
      if (vi) { vi.textContent = r.image || ""; vi.hidden = !r.image; }
      text(root, ".rid", String(r.id));
      text(root, ".step", r.step || "-");
      text(root, ".phase", r.phase);
      text(root, ".weight", r.weight + "%");
      root.querySelector(".canary-bar").style.width = r.weight + "%";
      root.querySelector(".approve-version").value = r.version;
      if (approve) approve.disabled = !(canAct && r.waiting_for_approval);
      const held = root.querySelector(".held");
      held.hidden = !r.paused;
      text(root, ".held-text", r.paused || "");
      text(root, ".verdict-text", e.verdict || "waiting for data");
      const ev = root.querySelector(".evidence");
      ev.textContent = "";
      for (const res of e.results || []) {
        const li = document.createElement("li");
        li.textContent = (res.gate || res.Gate || "") + ": " + (res.verdict || res.Verdict || "") + " — " + (res.detail || res.Detail || "");
        ev.appendChild(li);
      }
      if (e.canary && e.stable_window) {
        const s = (series[e.env] = series[e.env] || { err: { canary: [], stable: [] }, lat: { canary: [], stable: [] } });
        const push = (arr, v) => { arr.push(v); if (arr.length > maxPoints) arr.shift(); };
        push(s.err.canary, e.canary.error_rate);
        push(s.err.stable, e.stable_window.error_rate);
        push(s.lat.canary, e.canary.p99 / 1e6);
        push(s.lat.stable, e.stable_window.p99 / 1e6);
        draw(root.querySelector("svg.err"), s.err);
        draw(root.querySelector("svg.lat"), s.lat);
      }
    }
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  const es = new EventSource("/ui/events?app=" + encodeURIComponent(document.body.dataset.app || ""));
  es.addEventListener("status", (m) => update(JSON.parse(m.data)));
})();
