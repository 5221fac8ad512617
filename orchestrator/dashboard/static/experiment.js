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
})();
