// Shared by every page: the write token, messages, formatting, POST and polling.
const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("qdlab-token") || "";
tokenInput.onchange = () => localStorage.setItem("qdlab-token", tokenInput.value);
function say(text) { document.getElementById("message").textContent = text; }
function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => "&#" + c.charCodeAt(0) + ";");
}
function fmt(v, d = 2) { return typeof v === "number" ? v.toFixed(d) : (v ?? ""); }
async function post(path, body) {
  const r = await fetch(path, {method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json",
              "Authorization": "Bearer " + tokenInput.value}});
  const data = await r.json();
  if (!r.ok) { say("refused: " + (data.detail ?? r.status)); return null; }
  say(""); return data;
}
function poll(load) { load(); setInterval(load, 1000); }
