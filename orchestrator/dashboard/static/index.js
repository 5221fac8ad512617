poll(async () => {
  const rows = await (await fetch("/api/campaigns")).json();
  document.querySelector("#campaigns tbody").innerHTML = rows.map(c => `<tr>
    <td>${fmt(c.id, 0)}</td><td><a href="/campaigns/${encodeURIComponent(c.id)}">${esc(c.name)}</a></td>
    <td>${esc(c.route)}</td><td>${esc(c.target)}</td><td>${esc(c.status)}</td>
    <td>${fmt(c.experiments, 0)}/${fmt(c.budget ?? "?", 0)}</td><td>${fmt(c.best_error)}</td>
    <td>${fmt(c.awaiting || "", 0)}</td><td>${esc(c.workcells.join(", "))}</td></tr>`).join("");
});
