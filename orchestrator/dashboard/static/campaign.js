const ID = Number(document.body.dataset.campaign);
let shown = -1;
const cond = c => Object.entries(c).map(([k, v]) => `${k}=${text(v, 3)}`).join(", ");
async function approve(n) {
  if (await post(`/api/campaigns/${ID}/approve`, {numbers: [n]})) load();
}
async function reject(n) {
  const reason = document.getElementById(`reason-${n}`).value;
  if (await post(`/api/campaigns/${ID}/reject`, {number: n, reason})) load();
}
// (buttons made for each proposal: one listener, no inline handlers under the CSP)
document.getElementById("awaiting").addEventListener("click", event => {
  const n = Number(event.target.dataset.n);
  if (event.target.matches("button.approve")) approve(n);
  else if (event.target.matches("button.reject")) reject(n);
});
document.getElementById("pause").onclick = async () => {
  if (await post(`/api/campaigns/${ID}/pause`, {reason: "from the dashboard"})) load();
};
document.getElementById("resume").onclick = async () => {
  if (await post(`/api/campaigns/${ID}/resume`, {})) load();
};
document.getElementById("add").onclick = async () => {
  let conditions;
  try { conditions = JSON.parse(document.getElementById("add-conditions").value); }
  catch (e) { say("conditions: not JSON"); return; }
  const note = document.getElementById("add-note").value || null;
  if (await post(`/api/campaigns/${ID}/add`, {conditions, note})) load();
};
function plots(d) {
  const t = d.target, xs = d.experiments;
  const done = xs.filter(e => e.error !== null);
  const right = done.filter(e => e.shape_ok), wrong = done.filter(e => !e.shape_ok);
  let best = Infinity;
  const bestSoFar = right.map(e => (best = Math.min(best, e.error)));
  Plotly.react("convergence", [
    {x: right.map(e => e.number), y: right.map(e => e.error), mode: "markers", name: "|error|"},
    {x: wrong.map(e => e.number), y: wrong.map(e => e.error), mode: "markers",
     marker: {symbol: "x", color: "gray"}, name: `not ${t.shape}`},
    {x: right.map(e => e.number), y: bestSoFar, mode: "lines", name: "best so far",
     line: {shape: "hv"}},
    {x: [1, Math.max(xs.length, 1)], y: [t.tolerance, t.tolerance], mode: "lines",
     line: {dash: "dot", color: "gray"}, name: "tolerance"}],
    {title: {text: "Convergence"}, xaxis: {title: {text: "experiment"}},
     // one labelled tick a decade (a log axis otherwise labels 5, 2, 10, 5, 2, 1, ...)
     yaxis: {title: {text: "|error| (nm)"}, type: "log", dtick: 1}, margin: {t: 40}});
  const sp = [];
  d.spectra.forEach(s => {
    const peak = Math.max(...(s.pl || [1]));
    sp.push({x: s.wavelengths_nm, y: (s.pl || []).map(v => v / peak), mode: "lines",
             name: `#${s.number} PL`});
    sp.push({x: s.wavelengths_nm, y: s.absorbance, mode: "lines", yaxis: "y2",
             line: {dash: "dot"}, name: `#${s.number} abs`});
  });
  // around the target's colour, not the whole 300-800 nm grid
  const around = t.observable === "pl_peak_nm" ? {range: [t.value - 130, t.value + 130]} : {};
  Plotly.react("spectra", sp, {title: {text: "Latest spectra"},
    xaxis: {title: {text: "wavelength (nm)"}, ...around},
    yaxis: {title: {text: "PL (normalised)"}, rangemode: "tozero"}, margin: {t: 40},
    yaxis2: {title: {text: "absorbance"}, overlaying: "y", side: "right", tickformat: ".2f",
             showgrid: false, rangemode: "tozero"},
    legend: {orientation: "h", y: -0.25},
    shapes: t.observable === "pl_peak_nm" ? [{type: "line", x0: t.value, x1: t.value,
      yref: "paper", y0: 0, y1: 1, line: {color: "black", dash: "dash"}}] : []});
  // each condition against the outcome, coloured by |error| (SVG: quick to draw, no WebGL)
  const names = Object.keys(d.space), explored = [], layout = {
    title: {text: "Explored conditions"}, margin: {t: 40}, showlegend: false,
    grid: {rows: 1, columns: Math.max(names.length, 1), pattern: "independent"}};
  names.forEach((n, i) => {
    const axis = i === 0 ? "" : String(i + 1);
    explored.push({x: done.map(e => e.conditions[n]), y: done.map(e => e.observables[t.observable]),
      xaxis: "x" + axis, yaxis: "y" + axis, mode: "markers", type: "scatter",
      text: done.map(e => `#${e.number}`),
      marker: {size: 5, color: done.map(e => e.error), colorscale: "Viridis",
               reversescale: true, showscale: i === names.length - 1,
               colorbar: {title: {text: "|error|"}}}});
    layout["xaxis" + axis] = {title: {text: n}};
    layout["yaxis" + axis] = {title: {text: i === 0 ? t.observable : ""}};
  });
  Plotly.react("explored", explored, layout);
  const pr = done.filter(e => e.predicted_mean !== null);
  const measured = pr.map(e => e.observables[t.observable]);
  const lo = Math.min(...measured, ...pr.map(e => e.predicted_mean)),
        hi = Math.max(...measured, ...pr.map(e => e.predicted_mean));
  Plotly.react("predicted", [
    {x: pr.map(e => e.predicted_mean), y: measured, mode: "markers", name: "experiments",
     error_x: {type: "data", array: pr.map(e => e.predicted_std ?? 0)},
     text: pr.map(e => `#${e.number}`)},
    {x: [lo, hi], y: [lo, hi], mode: "lines", line: {dash: "dot", color: "gray"},
     name: "measured = predicted"}],
    {title: {text: "Planner's prediction vs measured"}, margin: {t: 40},
     annotations: pr.length ? [] : [{text: "no predictions from this planner yet",
       showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5}],
     xaxis: {title: {text: `predicted ${t.observable}`}},
     yaxis: {title: {text: `measured ${t.observable}`}}});
}
// the in-situ trajectories overlaid (a lab that reads nothing in situ has none: no plot)
let grown = -1;
async function growth(t) {
  const r = await fetch(`/api/campaigns/${ID}/growth`);
  if (!r.ok) return;
  const g = await r.json(), box = document.getElementById("growth");
  box.hidden = g.length === 0;
  const stamp = g.map(e => e.number).join(",");
  if (g.length === 0 || stamp === grown) return;
  grown = stamp;
  const last = Math.max(...g.map(e => e.number));
  const traces = g.flatMap(e => [
    {x: e.growth_time_s, y: e.pl_peak_nm, mode: "lines+markers", marker: {size: 4},
     name: `#${e.number}${e.hot ? " (hot)" : ""}`, legendgroup: String(e.number),
     line: {color: `hsl(${240 - 200 * e.number / last}, 60%, 45%)`}},
    {x: [e.quench_s], y: [e.product_pl_nm], mode: "markers", showlegend: false,
     legendgroup: String(e.number), marker: {symbol: "star", size: 11,
     color: `hsl(${240 - 200 * e.number / last}, 60%, 45%)`}, name: `#${e.number} product`}]);
  Plotly.react("growth", traces, {title: {text: "Growth in situ (lines) and the product (stars)"},
    xaxis: {title: {text: "growth time (s)"}}, yaxis: {title: {text: "PL peak (nm)"}},
    margin: {t: 40}, shapes: t.observable === "pl_peak_nm" ? [{type: "line", xref: "paper",
      x0: 0, x1: 1, y0: t.value, y1: t.value, line: {color: "black", dash: "dash"}}] : []});
}
async function load() {
  const r = await fetch(`/api/campaigns/${ID}`);
  if (!r.ok) { say(`campaign ${ID}: ${r.status}`); return; }
  const d = await r.json(), c = d.campaign;
  document.getElementById("summary").textContent =
    `${c.route}, target ${c.target}: ${c.status}` +
    (c.status_reason ? ` (${c.status_reason})` : "") +
    `; ${c.experiments}/${c.budget ?? "?"} experiments; best |error| ` +
    (c.best_error === null ? "-" : `${fmt(c.best_error)} nm`) +
    (c.workcells.length ? `; workcells ${c.workcells.join(", ")}` : "");
  document.getElementById("pause").hidden = !["running", "created"].includes(c.status);
  document.getElementById("resume").hidden = c.status !== "paused";
  document.getElementById("adding").hidden = c.status === "completed";
  const waiting = d.experiments.filter(e => e.status === "awaiting_approval");
  document.getElementById("approval").hidden = waiting.length === 0;
  document.getElementById("awaiting").innerHTML = waiting.map(e => `<tr>
    <td>${fmt(e.number, 0)}</td><td>${esc(cond(e.conditions))}</td>
    <td>${fmt(e.predicted_mean)} ± ${fmt(e.predicted_std)}</td>
    <td><button class="approve" data-n="${fmt(e.number, 0)}">approve</button>
    <input type="text" id="reason-${fmt(e.number, 0)}" placeholder="reason to reject">
    <button class="reject" data-n="${fmt(e.number, 0)}">reject</button></td></tr>`).join("");
  document.getElementById("experiments").innerHTML = d.experiments.map(e => `<tr>
    <td><a href="/campaigns/${ID}/experiments/${fmt(e.number, 0)}">${fmt(e.number, 0)}</a></td>
    <td class="${esc(e.status)}">${esc(e.status)}</td><td>${esc(cond(e.conditions))}</td>
    <td>${fmt(e.observables.pl_peak_nm)}</td><td>${fmt(e.observables.pl_fwhm_nm)}</td>
    <td>${fmt(e.error)}</td><td>${esc(e.chosen_by)}</td>
    <td>${esc(e.reason)}</td></tr>`
  ).join("");
  const stamp = d.experiments.length * 1000 + d.experiments.filter(e => e.error !== null).length;
  if (stamp !== shown) { shown = stamp; plots(d); growth(d.target); }  // only what changed
}
poll(load);
