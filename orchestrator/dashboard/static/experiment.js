const table = (id, obj) => document.getElementById(id).innerHTML = Object.entries(obj)
  .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${fmt(v, 3)}</td></tr>`).join("");
(async () => {
  const d = await (await fetch(`/api/campaigns/${document.body.dataset.campaign}/experiments/${document.body.dataset.number}`)).json();
  const e = d.experiment;
  table("conditions", e.conditions);
  table("observables", {status: e.status, ...e.observables, "|error| nm": e.error,
                        why: e.reason});
  document.getElementById("provenance").textContent = JSON.stringify({planner: e.planner,
    version: d.planner_version, seed: d.seed, acquisition_value: e.acquisition_value,
    predicted_mean: e.predicted_mean, predicted_std: e.predicted_std,
    workcell: e.workcell, ...d.provenance}, null, 2);
  document.getElementById("documents").textContent =
    d.documents.map(([n, doc]) => n + " " + JSON.stringify(doc)).join("\n");
  const s = d.spectra;
  if (s.wavelengths_nm) Plotly.newPlot("spectrum", [
    {x: s.wavelengths_nm, y: s.pl, name: "PL (counts)"},
    {x: s.wavelengths_nm, y: s.absorbance, name: "absorbance", yaxis: "y2"}],
    {title: {text: "Spectra"}, xaxis: {title: {text: "wavelength (nm)"}}, margin: {t: 40},
     yaxis2: {overlaying: "y", side: "right", title: {text: "absorbance"}}});
  const g = d.growth;
  if (g.growth_time_s && g.growth_time_s.length) {
    document.getElementById("growth").hidden = false;
    const quench = e.conditions.time_s ?? e.conditions.residence_time_s;
    Plotly.newPlot("growth", [
      {x: g.growth_time_s, y: g.pl_peak_nm, mode: "lines+markers",
       name: g.hot ? "hot mixture (in situ)" : "product at shorter residence"},
      {x: [quench], y: [e.observables.pl_peak_nm], mode: "markers", name: "product",
       marker: {symbol: "star", size: 12}}],
      {title: {text: "PL peak while the dots grew"}, margin: {t: 40},
       xaxis: {title: {text: "growth time (s)"}}, yaxis: {title: {text: "PL peak (nm)"}}});
  }
  const T = d.temperature;
  if (T.time_s && T.time_s.length) {
    document.getElementById("temperature").hidden = false;
    Plotly.newPlot("temperature", [{x: T.time_s, y: T.temperature_c, mode: "lines+markers",
      line: {shape: "hv"}, name: "vessel"}],
      {title: {text: "Vessel temperature (monitor)"}, margin: {t: 40},
       xaxis: {title: {text: "time from the run's start (s)"}},
       yaxis: {title: {text: "temperature (°C)"}}});
  }
})();
