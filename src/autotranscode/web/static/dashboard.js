// autotranscode dashboard: live updates (Server-Sent Events) and uploads. Plain JS, no
// build step, no inline code (the Content-Security-Policy forbids it). Names go into the
// page as text nodes only, never as HTML.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  // Control characters made visible, as the terminal views show them (text.shown).
  function shown(name) {
    return String(name).replace(/[\x00-\x1f\x7f-\x9f]/g, function (c) {
      const named = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }[c];
      return named || "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0");
    });
  }

  function size(n) {
    const sign = n < 0 ? "-" : "";
    n = Math.abs(n);
    if (n < 1000) return sign + n + " bytes";
    let value = n;
    for (const unit of ["kB", "MB", "GB", "TB"]) {
      value /= 1000;
      if (value < 999.95 || unit === "TB") return sign + value.toFixed(1) + " " + unit;
    }
    return sign + n + " bytes";
  }

  function clock(seconds) {
    const s = Math.max(Math.floor(seconds), 0);
    const pad = function (x) { return String(x).padStart(2, "0"); };
    return Math.floor(s / 3600) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
  }

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content;
    row.appendChild(td);
    return td;
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  // The done files by codec and resolution, before and after (totals.library).
  function showLibrary(lib) {
    const body = document.querySelector("#library tbody");
    if (!body) return;
    body.replaceChildren();
    for (const side of ["before", "after"]) {
      const shelves = (lib && lib[side]) || [];
      shelves.forEach(function (shelf, i) {
        const row = document.createElement("tr");
        cell(row, i === 0 ? side : "");
        cell(row, shown(shelf.codec));
        cell(row, shelf.resolution);
        cell(row, String(shelf.files));
        cell(row, size(shelf.bytes));
        body.appendChild(row);
      });
    }
    if (!lib || !lib.before.length) {
      const row = document.createElement("tr");
      row.className = "empty";
      cell(row, "no file done yet").colSpan = 5;
      body.appendChild(row);
    }
  }

  function showTotals(t) {
    const sized = { bytes_in: 1, bytes_out: 1, bytes_saved: 1 };
    for (const el of document.querySelectorAll("[data-total]")) {
      const key = el.dataset.total;
      el.textContent = sized[key] ? size(t[key]) : String(t[key]);
    }
    showLibrary(t.library);
    const list = document.getElementById("by-stage");
    if (!list) return;
    list.replaceChildren();
    const stages = Object.keys(t.by_stage);
    for (const stage of stages) {
      const li = document.createElement("li");
      li.appendChild(link("/history?stage=" + encodeURIComponent(stage), stage));
      li.appendChild(document.createTextNode(" "));
      const b = document.createElement("b");
      b.textContent = String(t.by_stage[stage]);
      li.appendChild(b);
      list.appendChild(li);
    }
    if (!stages.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "no files yet: drop one into the folder";
      list.appendChild(li);
    }
  }

  function showInFlight(files) {
    const body = document.querySelector("#in-flight tbody");
    if (!body) return;
    body.replaceChildren();
    for (const f of files) {
      const row = document.createElement("tr");
      row.dataset.id = f.id;
      cell(row, link("/files/" + encodeURIComponent(f.id), shown(f.name)));
      cell(row, f.note ? f.stage + " (" + shown(f.note) + ")" : f.stage);
      const p = f.progress || {};
      const bar = cell(row, "");
      if (p.percent !== null && p.percent !== undefined) {
        const progress = document.createElement("progress");
        progress.max = 100;
        progress.value = p.percent;
        bar.appendChild(progress);
        bar.appendChild(document.createTextNode(" " + Math.round(p.percent) + " %"));
      }
      cell(row, p.speed ? p.speed.toPrecision(2) + "×" : "");
      cell(row, p.eta_seconds !== null && p.eta_seconds !== undefined ? clock(p.eta_seconds) : "");
      cell(row, clock(f.elapsed_seconds));
      cell(row, p.worker ? shown(p.worker) : "");
      body.appendChild(row);
    }
    if (!files.length) {
      const row = document.createElement("tr");
      row.className = "empty";
      cell(row, "nothing in flight").colSpan = 7;
      body.appendChild(row);
    }
  }

  // The workers panel, the job queue's depth and the throughput cards.
  function showSide(data) {
    const depth = document.getElementById("queue-depth");
    if (depth) depth.textContent = data.queue_depth === null ? "?" : String(data.queue_depth);
    const t = data.throughput;
    const perHour = document.getElementById("files-per-hour");
    if (perHour && t) perHour.textContent = String(t.files_per_hour);
    const realtime = document.getElementById("realtime");
    if (realtime && t) realtime.textContent = String(t.realtime_factor) + "×";
    const body = document.querySelector("#workers tbody");
    if (!body) return;
    body.replaceChildren();
    const now = Date.now() / 1000;
    for (const w of data.workers || []) {
      const row = document.createElement("tr");
      row.dataset.worker = shown(w.worker);
      cell(row, shown(w.worker));
      cell(row, shown(w.host));
      cell(row, String(w.pid));
      cell(row, w.file ? shown(w.file) : "waiting for a job");
      cell(row, w.job_since ? clock(now - w.job_since) : "");
      cell(row, clock(now - w.since));
      body.appendChild(row);
    }
    if (!data.workers || !data.workers.length) {
      const row = document.createElement("tr");
      row.className = "empty";
      cell(row, data.workers ? "no workers alive" : "workers unknown").colSpan = 6;
      body.appendChild(row);
    }
  }

  function when(iso) {
    return String(iso).replace("T", " ").slice(0, 19) + " UTC";
  }

  // The Overview's latest finished files, drawn as the server draws them (_files.html).
  function showLatest(files) {
    const body = document.querySelector("#latest tbody");
    if (!body) return;
    body.replaceChildren();
    for (const f of files) {
      const row = document.createElement("tr");
      row.className = "stage-" + String(f.stage).replace(/ /g, "-");
      cell(row, link("/files/" + encodeURIComponent(f.id), shown(f.name)));
      const outcome = cell(row, f.stage);
      if (f.reason) {
        outcome.appendChild(document.createTextNode(": "));
        const reason = document.createElement("span");
        reason.className = "reason";
        reason.textContent = shown(f.reason);
        outcome.appendChild(reason);
      }
      cell(row, size(f.input.size));
      const sizes = f.outputs.filter(function (o) { return o.size; });
      cell(row, sizes.length ? size(sizes.reduce(function (n, o) { return n + o.size; }, 0)) : "");
      cell(row, clock(f.elapsed_seconds));
      cell(row, when(f.updated));
      body.appendChild(row);
    }
    if (!files.length) {
      const row = document.createElement("tr");
      row.className = "empty";
      cell(row, "no files").colSpan = 6;
      body.appendChild(row);
    }
  }

  // Asked for when the stream starts (a file may have finished since the page was made)
  // and then only when the counts by stage change, not at each progress update.
  let finishedKey = null;
  function refreshLatest(totals) {
    const key = JSON.stringify([totals.files, totals.by_stage]);
    if (key === finishedKey || !document.getElementById("latest")) return;
    finishedKey = key;
    fetch("/api/status?limit=10")
      .then(function (r) { return r.json(); })
      .then(function (report) { showLatest(report.recent); });
  }

  // A file's page while the file is in flight: its stage and progress, as they change;
  // once it has finished, how it ended and a link to its whole story.
  function showFile(el, files) {
    const f = files.find(function (x) { return x.id === el.dataset.file; });
    if (f) {
      const p = f.progress || {};
      let text = f.stage;
      if (p.percent !== null && p.percent !== undefined) text += " · " + p.percent + " %";
      el.textContent = text + " (for " + clock(f.elapsed_seconds) + ")";
      el.className = "stage-" + f.stage.replace(/ /g, "-");
      return true;
    }
    fetch("/api/files/" + encodeURIComponent(el.dataset.file))
      .then(function (r) { return r.json(); })
      .then(function (done) {
        el.textContent = done.stage + (done.reason ? ": " + shown(done.reason) : "") + " ";
        el.className = "stage-" + String(done.stage).replace(/ /g, "-");
        el.appendChild(link(window.location.pathname, "(see its whole story)"));
      });
    return false;
  }

  function live() {
    const flying = document.getElementById("in-flight");
    const file = document.getElementById("live-stage");
    if (!window.EventSource || (!flying && !file)) return;
    const source = new EventSource("/api/events");
    source.addEventListener("status", function (event) {
      const data = JSON.parse(event.data);
      if (flying) {
        showTotals(data.totals);
        showInFlight(data.in_flight);
        showSide(data);
        refreshLatest(data.totals);
      }
      if (file && !showFile(file, data.in_flight)) source.close();
      document.body.dataset.live = "1";
    });
  }

  function uploads() {
    const form = document.getElementById("upload");
    if (!form) return;
    const result = document.getElementById("upload-result");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const files = form.querySelector('input[type="file"]').files;
      for (const file of files) {
        result.textContent = "uploading " + shown(file.name) + "…";
        const response = await fetch("/api/upload?name=" + encodeURIComponent(file.name), {
          method: "POST",
          headers: { "X-CSRF-Token": csrf, "Content-Type": "application/octet-stream" },
          body: file,
        });
        const answer = await response.json();
        result.textContent = response.ok
          ? shown(answer.name) + " is in the drop folder"
          : shown(file.name) + ": " + answer.error;
      }
      form.reset();
    });
  }

  live();
  uploads();
})();
