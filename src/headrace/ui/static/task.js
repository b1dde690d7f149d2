// The task detail page: every stored field, fetched again when tasks change.
import { el, getJSON, live, seconds, stateClass, text, time } from "./common.js";

const PREFIX = "/ui/celery/tasks/";
const uuid = decodeURIComponent(window.location.pathname.slice(PREFIX.length));

function taskLink(id) {
  return id ? el("a", { class: "mono", href: PREFIX + encodeURIComponent(id) }, id) : "—";
}

function block(value) {
  return value === null || value === undefined ? "—" : el("pre", {}, value);
}

function fields(task) {
  const children = task.children.length ? task.children.flatMap((id, i) => (i ? [", ", taskLink(id)] : [taskLink(id)])) : ["—"];
  return [
    ["UUID", el("span", { class: "mono" }, task.uuid)],
    ["Name", text(task.name)],
    ["State", el("span", { class: stateClass(task.state) }, task.state)],
    ["Worker", text(task.worker)],
    ["Args", block(task.args)],
    ["Kwargs", block(task.kwargs)],
    ["Result", block(task.result)],
    ["Exception", block(task.exception)],
    ["Traceback", block(task.traceback)],
    ["Runtime", seconds(task.runtime)],
    ["ETA", text(task.eta)],
    ["Expires", text(task.expires)],
    ["Retries", text(task.retries)],
    ["Parent", taskLink(task.parent_id)],
    ["Root", taskLink(task.root_id)],
    ["Children", el("span", {}, ...children)],
    ["Client", text(task.client)],
    ["Exchange", text(task.exchange)],
    ["Routing key", text(task.routing_key)],
    ["Sent", time(task.sent)],
    ["Received", time(task.received)],
    ["Started", time(task.started)],
    ["Succeeded", time(task.succeeded)],
    ["Failed", time(task.failed)],
    ["Retried", time(task.retried)],
    ["Revoked", time(task.revoked)],
    ["Rejected", time(task.rejected)],
    ["Last change", time(task.timestamp)],
    ["Clock", text(task.clock)],
  ];
}

async function refresh() {
  const task = await getJSON(`/ui/api/celery/tasks/${encodeURIComponent(uuid)}`);
  document.getElementById("title").textContent = `Task ${task.name || task.uuid}`;
  const items = fields(task).flatMap(([label, value]) => [
    el("dt", {}, label),
    el("dd", { "data-field": label.toLowerCase() }, value),
  ]);
  document.getElementById("fields").replaceChildren(...items);
}

live("tasks", refresh);
