// The audit page: who did what on one campaign, newest first, polled.
const ID = document.body.dataset.campaign;
async function load() {
  const r = await fetch(`/api/campaigns/${ID}/audit`);
  if (!r.ok) return;
  const rows = (await r.json()).reverse().map(e => `<tr><td>${esc(e.at.slice(0, 19))}</td>
    <td>${esc(e.user)}</td><td>${esc(e.role)}</td><td>${esc(e.action)}</td>
    <td>${esc(e.experiment_number ?? "")}</td><td>${esc(e.detail)}</td></tr>`);
  document.getElementById("audit").innerHTML = rows.join("") ||
    '<tr><td colspan="6">nobody did anything yet</td></tr>';
}
poll(load);
