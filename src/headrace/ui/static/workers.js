// The workers page: one row per worker, fetched again when workers change.
import { el, getJSON, live, showError, text, time } from "./common.js";

const rows = document.getElementById("rows");
let expiry = null;

function loadavg(values) {
  return Array.isArray(values) ? values.map((v) => Number(v).toFixed(2)).join(", ") : "—";
}

function row(worker, now) {
  const ago = worker.heartbeat ? ` (${Math.max(0, Math.round(now - worker.heartbeat))} s ago)` : "";
  return el(
    "tr",
    { "data-worker": worker.hostname },
    el("td", { class: "mono" }, worker.hostname),
    el("td", { class: worker.online ? "online" : "offline" }, worker.online ? "online" : "offline"),
    el("td", { class: "num" }, text(worker.active)),
    el("td", { class: "num" }, text(worker.processed)),
    el("td", { class: "num" }, text(worker.failed)),
    el("td", {}, loadavg(worker.loadavg)),
    el("td", { class: "num" }, text(worker.pool_size)),
    el("td", {}, worker.queues ? worker.queues.join(", ") || "—" : "—"),
    el("td", {}, time(worker.heartbeat) + ago),
  );
}

async function refresh() {
  const data = await getJSON("/ui/api/celery/workers");
  const body = data.workers.map((worker) => row(worker, data.now));
  if (body.length === 0) {
    body.push(el("tr", { class: "empty" }, el("td", { colspan: 9 }, "No worker seen yet.")));
  }
  rows.replaceChildren(...body);
  // A worker goes offline when its heartbeat expires, and no event says so:
  // look again just after the next expiry.
  clearTimeout(expiry);
  const next = Math.min(...data.workers.filter((w) => w.online && w.expires).map((w) => w.expires));
  if (Number.isFinite(next)) expiry = setTimeout(update, (next - data.now) * 1000 + 500);
}

const update = live("workers", refresh);

document.getElementById("inspect").addEventListener("click", async () => {
  try {
    await getJSON("/flower/api/workers?refresh=1");
    update();
  } catch (error) {
    showError(error);
  }
});
