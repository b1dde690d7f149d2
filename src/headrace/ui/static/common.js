// Helpers shared by the dashboard's pages. Data goes into the page as text only:
// el() appends strings as text nodes and sets attributes by name, never markup.

/** A new element; `attrs` are attribute names chosen by the code, values may be data. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child === null || child === undefined ? "" : child);
  }
  return node;
}

/** Text for a value that may be missing. */
export function text(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

/** Epoch seconds as local "YYYY-MM-DD HH:MM:SS" ("—" when unknown). */
export function time(epoch) {
  if (!epoch) return "—";
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** Seconds as "0.123 s" ("—" when unknown). */
export function seconds(value) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(3)} s`;
}

/** A state's CSS class (a fixed list, so data never names a class). */
const STATES = ["success", "failure", "retry", "revoked", "rejected", "started", "received", "pending"];
export function stateClass(state) {
  const lower = String(state || "").toLowerCase();
  return STATES.includes(lower) ? `state state-${lower}` : "state";
}

/** GET a JSON document; a non-2xx answer throws with the server's `detail`. */
export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch (_err) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    const error = new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** Show (or clear, with null) the page's error line. */
export function showError(error) {
  document.getElementById("error").textContent = error ? String(error.message || error) : "";
}

/**
 * Keep a view current: run `refresh` now, and again whenever the live feed says
 * data of `kind` ("tasks" or "workers") changed. At most one refresh runs at a
 * time; notices during one make exactly one more. Without the feed (closed,
 * refused, unsupported) the page still works, just not live.
 * Returns a function that asks for a refresh.
 */
export function live(kind, refresh) {
  const badge = document.getElementById("live");
  let running = false;
  let again = false;

  async function update() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await refresh();
        showError(null);
      } while (again);
    } catch (error) {
      showError(error);
    } finally {
      running = false;
    }
  }

  function setLive(on) {
    badge.textContent = on ? "live" : "not live";
    badge.className = on ? "on" : "";
  }

  function connect() {
    if (!("EventSource" in window)) return;
    const source = new EventSource("/ui/api/celery/stream");
    source.addEventListener("open", () => {
      setLive(true);
      update(); // changes before the stream (re)opened were not announced to it
    });
    source.addEventListener("changed", (event) => {
      const kinds = JSON.parse(event.data);
      if (kinds[kind]) update();
    });
    source.addEventListener("error", () => {
      setLive(false);
      // EventSource retries by itself, except after a refusal (e.g. 503).
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 10000);
    });
  }

  setLive(false);
  update();
  connect();
  return update;
}
