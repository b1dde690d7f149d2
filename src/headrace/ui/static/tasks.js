// The tasks page: filters, sort and paging live in the URL; rows are fetched
// again when tasks change.
import { el, getJSON, live, seconds, stateClass, text, time } from "./common.js";

const FIELDS = ["state", "taskname", "workername", "search", "sort_by", "limit"];
const DEFAULT_LIMIT = 50;
const params = new URLSearchParams(window.location.search);
const offset = Math.max(0, Number.parseInt(params.get("offset"), 10) || 0);
const limit = Number.parseInt(params.get("limit"), 10) || DEFAULT_LIMIT;
const rows = document.getElementById("rows");

function link(changes) {
  const next = new URLSearchParams(params);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) next.delete(name);
    else next.set(name, value);
  }
  return `/ui/celery/tasks?${next}`;
}

function setUpForm() {
  const form = document.getElementById("filters");
  for (const name of FIELDS) {
    if (params.has(name)) form.elements[name].value = params.get(name);
  }
  // Empty fields stay out of the URL (an empty limit would be refused).
  form.addEventListener("submit", () => {
    for (const name of FIELDS) form.elements[name].disabled = form.elements[name].value === "";
  });
  window.addEventListener("pageshow", () => {
    for (const name of FIELDS) form.elements[name].disabled = false;
  });
}

function setUpSorting() {
  const current = params.get("sort_by") || "";
  for (const th of document.querySelectorAll("th[data-sort]")) {
    const column = th.dataset.sort;
    const arrow = current === column ? " ↑" : current === `-${column}` ? " ↓" : "";
    const order = current === column ? `-${column}` : column;
    th.replaceChildren(el("a", { href: link({ sort_by: order, offset: null }) }, th.textContent + arrow));
  }
}

async function fillSuggestions() {
  try {
    const [types, workers] = await Promise.all([
      getJSON("/flower/api/task/types"),
      getJSON("/ui/api/celery/workers"),
    ]);
    const option = (value) => el("option", { value });
    document.getElementById("task-names").replaceChildren(...types["task-types"].map(option));
    document.getElementById("worker-names").replaceChildren(...workers.workers.map((w) => option(w.hostname)));
  } catch (_error) {
    // Suggestions only: the filters work without them.
  }
}

function row(task) {
  const failed = task.result === null && task.exception !== null;
  return el(
    "tr",
    { "data-uuid": task.uuid },
    el("td", {}, text(task.name)),
    el("td", { class: "mono" }, el("a", { href: `/ui/celery/tasks/${encodeURIComponent(task.uuid)}` }, task.uuid)),
    el("td", { class: stateClass(task.state) }, task.state),
    el("td", { class: "clip mono", title: task.args }, text(task.args)),
    el("td", { class: "clip mono", title: task.kwargs }, text(task.kwargs)),
    el("td", { class: "clip mono", title: failed ? task.exception : task.result }, text(failed ? task.exception : task.result)),
    el("td", {}, time(task.received)),
    el("td", {}, time(task.started)),
    el("td", { class: "num" }, seconds(task.runtime)),
    el("td", { class: "mono" }, text(task.worker)),
  );
}

async function refresh() {
  const query = new URLSearchParams(params);
  query.set("offset", offset);
  query.set("limit", limit);
  const page = await getJSON(`/ui/api/celery/tasks?${query}`);
  const body = page.tasks.map(row);
  if (body.length === 0) {
    body.push(el("tr", { class: "empty" }, el("td", { colspan: 10 }, "No tasks match.")));
  }
  rows.replaceChildren(...body);
  const prev = document.getElementById("prev");
  prev.hidden = offset === 0;
  prev.href = link({ offset: Math.max(0, offset - limit) || null });
  const next = document.getElementById("next");
  next.hidden = !page.more;
  next.href = link({ offset: offset + limit });
  document.getElementById("range").textContent = page.tasks.length
    ? `tasks ${offset + 1}–${offset + page.tasks.length}`
    : "";
}

setUpForm();
setUpSorting();
fillSuggestions();
live("tasks", refresh);
