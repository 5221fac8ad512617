// Shared by every page: the user's API key (or the dashboard's token), who it is, messages,
// formatting, POST and polling.
// Every value from the server reaches the page through text(), fmt() or esc(): never as HTML.
const tokenInput = document.getElementById("token");
document.querySelector("header form").addEventListener("submit", e => e.preventDefault());
tokenInput.value = localStorage.getItem("qdlab-token") || "";
tokenInput.onchange = () => { localStorage.setItem("qdlab-token", tokenInput.value); whoAmI(); };
async function whoAmI() {
  const r = await fetch("/api/me", {headers: {"Authorization": "Bearer " + tokenInput.value}});
  const me = r.ok ? await r.json() : {user: null};
  document.getElementById("who").textContent =
    me.user ? `${me.user} (${me.role})` : (tokenInput.value ? "unknown key" : "");
}
whoAmI();
function say(text) { document.getElementById("message").textContent = text; }
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";");
}
function text(v, d = 2) { return typeof v === "number" ? v.toFixed(d) : String(v ?? ""); }
function fmt(v, d = 2) { return esc(text(v, d)); }
async function post(path, body) {
  const r = await fetch(path, {method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json",
              "Authorization": "Bearer " + tokenInput.value}});
  const data = await r.json();
  if (!r.ok) { say("refused: " + (data.detail ?? r.status)); return null; }
  say(""); return data;
}
function poll(load) { load(); setInterval(load, 1000); }
