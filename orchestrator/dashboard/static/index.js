poll(async () => {
  const rows = await (await fetch("/api/campaigns")).json();
  document.querySelector("#campaigns tbody").innerHTML = rows.map(c => `<tr>
    <td>${c.id}</td><td><a href="/campaigns/${c.id}">${esc(c.name)}</a></td>
    <td>${esc(c.route)}</td><td>${esc(c.target)}</td><td>${esc(c.status)}</td>
    <td>${c.experiments}/${c.budget ?? "?"}</td><td>${fmt(c.best_error)}</td>
    <td>${c.awaiting || ""}</td><td>${esc(c.workcells.join(", "))}</td></tr>`).join("");
});
