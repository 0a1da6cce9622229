// The status page's live updates: no framework, no other host. Every text shown is inserted
// with textContent or comes already escaped from the server's templates.
"use strict";

(function () {
  const token = new URLSearchParams(window.location.search).get("token");
  const statusLine = document.getElementById("live-status");

  function say(text) {
    if (statusLine) statusLine.textContent = text;
  }

  function clock() {
    return new Date().toLocaleTimeString();
  }

  // ------------------------------------------------------------------ the filter box
  function applyFilter() {
    const box = document.getElementById("filter-text");
    const table = document.getElementById("tasks");
    if (!box || !table) return;
    const wanted = box.value.trim().toLowerCase();
    for (const row of table.tBodies[0].rows) {
      const haystack = (row.dataset.search || "").toLowerCase();
      row.hidden = wanted !== "" && row.dataset.search !== undefined && !haystack.includes(wanted);
    }
  }

  const filterBox = document.getElementById("filter-text");
  if (filterBox) filterBox.addEventListener("input", applyFilter);
  const stateBox = document.getElementById("filter-state");
  if (stateBox) stateBox.addEventListener("change", () => stateBox.form.submit());

  // ------------------------------------------------------------------ live region swaps
  function focusKey(element) {
    if (!element || element === document.body) return null;
    if (element.id) return { id: element.id };
    if (element.getAttribute("href")) return { href: element.getAttribute("href") };
    return null;
  }

  function refocus(key, container) {
    if (!key) return;
    let target = null;
    if (key.id) target = document.getElementById(key.id);
    if (!target && key.href) {
      for (const a of container.querySelectorAll("a[href]")) {
        if (a.getAttribute("href") === key.href) { target = a; break; }
      }
    }
    if (target) target.focus({ preventScroll: true });
  }

  let refreshing = false;
  let again = false;

  async function refresh(region) {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      do {
        again = false;
        const answer = await fetch(region.dataset.fragment, { cache: "no-store" });
        if (!answer.ok) { say("Could not refresh (" + answer.status + "); retrying on the next change."); break; }
        const html = await answer.text();
        const hadFocus = region.contains(document.activeElement) ? focusKey(document.activeElement) : null;
        region.innerHTML = html;  // server-rendered, escaped by the templates
        refocus(hadFocus, region);
        applyFilter();
        say("Updated at " + clock() + ".");
      } while (again);
    } catch (error) {
      say("Could not refresh: " + error + ".");
    } finally {
      refreshing = false;
    }
  }

  const region = document.getElementById("live");
  if (region && region.dataset.events && window.EventSource) {
    const source = new EventSource(region.dataset.events);
    source.addEventListener("ready", () => say("Following changes live (since " + clock() + ")."));
    source.addEventListener("change", () => refresh(region));
    source.onerror = () => say("Live updates interrupted; reconnecting…");
    window.addEventListener("pagehide", () => source.close());
  }

  // ------------------------------------------------------------------ a stage's output
  const output = document.getElementById("output");
  const outputState = document.getElementById("output-state");
  if (output) output.scrollTop = output.scrollHeight;  // the newest output first
  if (output && output.dataset.events && window.EventSource) {
    const stream = new EventSource(output.dataset.events);
    if (outputState) outputState.textContent = "(following)";
    stream.addEventListener("output", (event) => {
      const message = JSON.parse(event.data);
      const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 8;
      for (const piece of message.pieces) {
        const span = document.createElement("span");
        span.className = piece.stream === "stderr" ? "stderr" : "stdout";
        span.textContent = piece.text;
        output.appendChild(span);
      }
      if (atBottom) output.scrollTop = output.scrollHeight;
    });
    stream.addEventListener("end", () => {
      stream.close();
      if (outputState) outputState.textContent = "(complete)";
    });
    window.addEventListener("pagehide", () => stream.close());
  }

  applyFilter();
})();
