/* Stackyard editor: the run panel. A form from the workflow's declared inputs (files upload into the files
 * root), runs started through the run API (the Celery path), live per-node status on the canvas, progress,
 * node output previews, final outputs and the run history. */
(function (SY) {
  "use strict";
  const { h, append, toast, modal, fmtMs, fmtTime, parseTime } = SY.util;
  const POLL_MS = 300;
  const PATH_SOCKETS = new Set(["paths", "sources"]);

  class RunPanel {
    constructor(ed, host) {
      this.ed = ed;
      this.host = host;
      this.run = null;           // the run shown (RunPublic)
      this.values = {};          // input alias → value being edited
      this.timer = 0;
      this.form = h("div.sy-run-form");
      this.status = h("div.sy-run-status");
      this.nodes = h("div.sy-run-nodes");
      this.outputs = h("div.sy-run-outputs");
      this.historyList = h("div.sy-run-history");
      this.bar = h("div.sy-progress-bar");
      this.progress = h("div.sy-progress", { role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, this.bar);
      this.runBtn = h("button.sy-btn.sy-btn-primary", { text: "▶ Run", dataset: { action: "run" }, onclick: () => this.start() });
      this.cancelBtn = h("button.sy-btn", { text: "Cancel", hidden: true, onclick: () => this.cancel() });
      append(host, 
        h("div.sy-run-col.sy-run-inputs", null, h("h3", { text: "Inputs" }), this.form, h("div.sy-row-btns", null, this.runBtn, this.cancelBtn)),
        h("div.sy-run-col.sy-run-main", null, h("div.sy-run-top", null, this.status, this.progress), this.nodes, this.outputs),
        h("div.sy-run-col.sy-run-hist", null, h("h3", { text: "History" }), this.historyList));
    }

    // --- inputs form ----------------------------------------------------------------------------------
    /** The port a declared input feeds (its type picks the field). */
    inputPort(refs) {
      for (const ref of refs) {
        const i = ref.indexOf(".");
        const node = this.ed.graph.nodes.get(ref.slice(0, i));
        const port = node && (node.ports.inputs || []).find((p) => p.name === ref.slice(i + 1));
        if (port) return { node, port };
      }
      return null;
    }

    renderForm() {
      this.form.textContent = "";
      const inputs = Object.entries(this.ed.graph.inputs);
      if (!inputs.length) {
        append(this.form, h("p.sy-muted", { text: "This workflow declares no inputs. Select a node and name a free input port as a workflow input." }));
        return;
      }
      for (const [alias, refs] of inputs) {
        const found = this.inputPort(refs);
        const type = found ? found.port.type : "Any";
        const isFiles = found && (PATH_SOCKETS.has(found.port.name) || found.node.type === "nodes.files.FileSource") && /list/.test(type);
        const row = h("div.sy-field", { dataset: { input: alias } },
          h("label.sy-label", null, alias, found && found.port.mandatory ? h("span.sy-req", { text: " *" }) : null, h("span.sy-kind", { text: SY.util.shortType(type) })));
        row.appendChild(isFiles ? this.filesField(alias) : this.valueField(alias, type));
        this.form.appendChild(row);
      }
    }

    valueField(alias, type) {
      const current = this.values[alias];
      if (/^(int|float)/.test(type)) {
        const el = h("input.sy-input", { type: "number", step: "any", value: current === undefined ? "" : String(current), "aria-label": alias });
        el.addEventListener("input", () => { if (el.value === "") delete this.values[alias]; else this.values[alias] = Number(el.value); });
        return el;
      }
      if (/^bool/.test(type)) {
        const el = h("input", { type: "checkbox", checked: Boolean(current), "aria-label": alias });
        el.addEventListener("change", () => { this.values[alias] = el.checked; });
        return el;
      }
      const json = /^(list|dict)/.test(type) && !/str/.test(type.split("[")[1] || "");
      const el = h("textarea.sy-input", { rows: 3, value: current === undefined ? "" : (typeof current === "string" ? current : JSON.stringify(current)),
        placeholder: json ? "JSON" : "Text", "aria-label": alias });
      el.addEventListener("input", () => {
        if (el.value === "") { delete this.values[alias]; return; }
        if (json || /^list/.test(type)) {
          try { this.values[alias] = JSON.parse(el.value); return; } catch (_) { /* plain text below */ }
          if (/^list\[str/.test(type)) { this.values[alias] = el.value.split("\n").filter(Boolean); return; }
        }
        this.values[alias] = el.value;
      });
      return el;
    }

    /** Paths under the files root: upload files (they land under uploads/) or type paths/folders. */
    filesField(alias) {
      const paths = Array.isArray(this.values[alias]) ? this.values[alias] : [];
      this.values[alias] = paths;
      const chips = h("div.sy-chips");
      const drawChips = () => {
        chips.textContent = "";
        for (const p of paths) append(chips, h("span.sy-chip", null, p, h("button", { text: "×", "aria-label": `Remove ${p}`, onclick: () => { paths.splice(paths.indexOf(p), 1); drawChips(); } })));
      };
      drawChips();
      const picker = h("input", { type: "file", multiple: true, hidden: true, "aria-label": `Upload files for ${alias}` });
      const note = h("div.sy-hint");
      picker.addEventListener("change", async () => {
        for (const file of picker.files) {
          note.textContent = `Uploading ${file.name}…`;
          try {
            const res = await SY.api.rest("POST", `/api/v1/editor/files?name=${encodeURIComponent(file.name)}`, file, { "Content-Type": "application/octet-stream" });
            paths.push(res.path);
            drawChips();
          } catch (err) { toast(`Upload failed: ${err.message}`, "error"); }
        }
        note.textContent = paths.length ? "" : "No files yet.";
        picker.value = "";
      });
      const typed = h("input.sy-input", { placeholder: "or a path/folder under the files root, Enter", "aria-label": `Path for ${alias}` });
      typed.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && typed.value.trim()) { paths.push(typed.value.trim()); typed.value = ""; drawChips(); }
      });
      return h("div.sy-files", null, chips,
        h("div.sy-row-btns", null, h("button.sy-btn.sy-btn-sm", { text: "Upload files…", onclick: () => picker.click() }), picker), typed, note);
    }

    // --- running ---------------------------------------------------------------------------------------
    async start() {
      const ed = this.ed;
      ed.openDrawer(true);
      if (!ed.workflow) return toast("Open a workflow first.", "error");
      if (!ed.version) return toast("Save the workflow first: runs use a saved version.", "error");
      if (ed.dirty) toast(`Running saved v${ed.version.number}; your unsaved changes are not part of this run.`, "warn", 6000);
      this.runBtn.disabled = true;
      try {
        const run = await SY.api.rest("POST", `/api/v1/workflows/${encodeURIComponent(ed.workflow.id)}/runs`,
          { inputs: this.values, version: ed.version.number });
        this.show(run);
        if (run.notice) toast(run.notice, "warn", 9000);
        this.poll(run.id);
      } catch (err) {
        toast(err.message, "error", 8000);
      } finally {
        this.runBtn.disabled = false;
      }
    }

    async cancel() {
      if (!this.run) return;
      try { this.show(await SY.api.rest("POST", `/api/v1/runs/${this.run.id}/cancel`)); } catch (err) { toast(err.message, "error"); }
    }

    poll(id) {
      clearTimeout(this.timer);
      const tick = async () => {
        try {
          const run = await SY.api.rest("GET", `/api/v1/runs/${id}`);
          if (!this.run || this.run.id !== id) return;   // another run was opened meanwhile
          this.show(run);
          if (run.finished) { this.loadHistory(); return; }
        } catch (err) { /* a missed poll is retried */ }
        this.timer = setTimeout(tick, POLL_MS);
      };
      this.timer = setTimeout(tick, POLL_MS);
    }

    /** The latest attempt's row per node → canvas statuses. */
    statuses(run) {
      const latest = {};
      for (const row of run.node_runs || []) {
        const prev = latest[row.node];
        if (!prev || row.attempt > prev.attempt || (row.attempt === prev.attempt && row.started_at >= prev.started_at)) latest[row.node] = row;
      }
      const out = {};
      for (const name of this.ed.graph.nodes.keys()) {
        const row = latest[name];
        if (row) out[name] = { state: row.state, duration_ms: row.duration_ms, error: row.error, notice: row.notice };
        else if (!run.finished) out[name] = { state: "queued" };
        else out[name] = { state: "skipped" };
      }
      return { out, latest };
    }

    show(run) {
      this.run = run;
      const { out, latest } = this.statuses(run);
      this.latest = latest;
      this.ed.canvas.setStatuses(out);
      const total = this.ed.graph.nodes.size || 1;
      const done = Object.values(out).filter((s) => s.state === "done" || s.state === "failed").length;
      const finished = run.finished;
      const pct = finished ? 100 : Math.round((done / total) * 100);
      this.bar.style.width = `${pct}%`;
      this.progress.dataset.state = run.state;
      this.progress.setAttribute("aria-valuenow", String(pct));
      const elapsed = run.started_at ? (run.finished_at ? parseTime(run.finished_at) : Date.now()) - parseTime(run.started_at) : null;
      const running = Object.entries(out).filter(([, s]) => s.state === "running").map(([n]) => n);
      this.status.textContent = "";
      this.status.classList.remove("sy-muted");
      this.progress.hidden = false;
      append(this.status, h("span.sy-state", { dataset: { state: run.state }, text: run.state }),
        h("span.sy-muted", { text: ` ${done}/${total} nodes${elapsed !== null && elapsed >= 0 ? " · " + fmtMs(elapsed) : ""}${running.length ? " · running " + running.join(", ") : ""}` }),
        run.notice && !finished ? h("div.sy-hint", { text: run.notice }) : null,
        run.error ? h("div.sy-field-error", { text: run.error }) : null);
      this.cancelBtn.hidden = finished;
      this.renderNodes(out);
      this.renderOutputs(run);
      this.ed.onRunShown();
    }

    renderNodes(out) {
      this.nodes.textContent = "";
      for (const [name, s] of Object.entries(out)) {
        const hasOut = this.hasOutput(name);
        append(this.nodes, h("div.sy-run-node", { dataset: { node: name, state: s.state } },
          h("span.sy-state-dot", { dataset: { state: s.state } }), h("span.sy-run-node-name", { text: name }),
          h("span.sy-muted", { text: s.state === "done" || s.state === "failed" ? fmtMs(s.duration_ms) : s.state }),
          hasOut || s.error ? h("button.sy-link", { text: "output", onclick: () => this.showNodeOutput(name) }) : null,
          s.notice ? h("div.sy-hint.sy-node-notice", { text: s.notice }) : null));
        const steps = this.stepRows(name);
        if (steps.length) append(this.nodes, this.renderSteps(name, steps));
      }
    }

    /** An agent's model and tool calls ("agent · step 2 · tool search"), trace rows of their own that are no
     * canvas nodes: listed in the order they ran, from the attempt the node shows. */
    stepRows(name) {
      const prefix = `${name} · `;
      const rows = ((this.run && this.run.node_runs) || []).filter((row) => row.node.startsWith(prefix));
      if (!rows.length) return [];
      const attempt = this.latest && this.latest[name] ? this.latest[name].attempt : Math.max(...rows.map((row) => row.attempt));
      const step = (row) => Number((/ · step (\d+) · /.exec(row.node) || [])[1] || 0);
      return rows.filter((row) => row.attempt === attempt)
        .sort((a, b) => step(a) - step(b) || (a.started_at < b.started_at ? -1 : a.started_at > b.started_at ? 1 : 0));
    }

    renderSteps(name, steps) {
      return h("div.sy-run-steps", { dataset: { agent: name } }, steps.map((row) => {
        const finished = row.state === "done" || row.state === "failed";
        return h("div.sy-run-node.sy-run-step", { dataset: { step: row.node, state: row.state }, title: row.error || null },
          h("span.sy-state-dot", { dataset: { state: row.state } }),
          h("span.sy-run-node-name", { text: row.node.slice(name.length + 3) }),
          h("span.sy-muted", { text: finished ? fmtMs(row.duration_ms) : row.state }),
          row.output_preview || row.error ? h("button.sy-link", { text: "output", onclick: () => this.showRowOutput(row) }) : null);
      }));
    }

    renderOutputs(run) {
      this.outputs.textContent = "";
      if (!run.outputs) return;
      append(this.outputs, h("h3", { text: "Outputs" }));
      for (const [alias, value] of Object.entries(run.outputs)) {
        append(this.outputs, h("div.sy-output", { dataset: { output: alias } }, h("div.sy-output-name", { text: alias }), viewValue(value)));
      }
    }

    hasOutput(name) {
      return Boolean(this.latest && this.latest[name] && (this.latest[name].output_preview || this.latest[name].error));
    }

    showNodeOutput(name) {
      const row = this.latest && this.latest[name];
      if (!row) return toast(`"${name}" has no output in this run.`, "info");
      this.showRowOutput(row);
    }

    /** One trace row's state, timing and output: a node's sockets, a model call's replies, a tool call's
     * arguments and result. */
    showRowOutput(row) {
      const name = row.node;
      const preview = row.output_preview;
      const parts = preview && typeof preview === "object" && !Array.isArray(preview) ? preview : preview === null || preview === undefined ? {} : { output: preview };
      const body = h("div.sy-output-view", null,
        h("div.sy-kv", null, h("span", { text: "State" }), h("b", { text: row.state })),
        h("div.sy-kv", null, h("span", { text: "Duration" }), h("b", { text: fmtMs(row.duration_ms) || "—" })),
        row.attempt > 1 ? h("div.sy-kv", null, h("span", { text: "Attempt" }), h("b", { text: String(row.attempt) })) : null,
        row.error ? h("div.sy-field-error", { text: row.error }) : null,
        row.notice ? h("div.sy-hint", { text: row.notice }) : null,
        row.output_chars && this.run ? h("div.sy-kv", null, h("span", { text: "Whole result" }),
          h("a.sy-link.sy-download-output", { text: `download (${row.output_chars.toLocaleString()} characters)`,
            href: `/api/v1/runs/${encodeURIComponent(this.run.id)}/nodes/${row.id}/output` })) : null,
        Object.entries(parts).map(([socket, value]) =>
          h("div.sy-output", { dataset: { output: socket } }, h("div.sy-output-name", { text: socket }), viewValue(value))));
      modal({ title: `Output of ${name}`, body, width: 720, className: "sy-output-modal" });
    }

    async loadHistory() {
      this.historyList.textContent = "";
      if (!this.ed.workflow) return;
      const id = this.ed.workflow.id;
      let runs = [];
      try { runs = await SY.api.rest("GET", `/api/v1/runs?workflow_id=${encodeURIComponent(id)}&limit=30`); } catch (err) { return; }
      // Another workflow may have opened while this list was on its way: its own list is the one to show.
      if (!this.ed.workflow || this.ed.workflow.id !== id) return;
      this.historyList.textContent = "";
      if (!runs.length) append(this.historyList, h("p.sy-muted", { text: "No runs yet." }));
      for (const run of runs) {
        const dur = run.started_at && run.finished_at ? parseTime(run.finished_at) - parseTime(run.started_at) : null;
        append(this.historyList, h("button.sy-run-item", { dataset: { run: run.id, state: run.state },
          class: `sy-run-item${this.run && this.run.id === run.id ? " sy-current" : ""}`,
          onclick: () => this.openRun(run.id) },
          h("span.sy-state-dot", { dataset: { state: run.state } }), h("span", { text: fmtTime(run.created_at) }),
          h("span.sy-muted", { text: run.state }), h("span.sy-muted", { text: dur !== null ? fmtMs(dur) : "" })));
      }
    }

    async openRun(id) {
      try {
        const run = await SY.api.rest("GET", `/api/v1/runs/${id}`);
        this.values = Object.assign({}, run.inputs);
        this.renderForm();
        this.show(run);
        if (!run.finished) this.poll(id);
        this.loadHistory();
      } catch (err) { toast(err.message, "error"); }
    }

    reset() {
      clearTimeout(this.timer);
      this.run = null;
      this.latest = null;
      this.values = {};
      this.status.textContent = "No run yet: fill in the inputs and press Run. Node status shows on the canvas as it goes.";
      this.status.classList.add("sy-muted");
      this.progress.hidden = true;
      this.nodes.textContent = "";
      this.outputs.textContent = "";
      this.bar.style.width = "0";
      this.cancelBtn.hidden = true;
      this.ed.canvas.setStatuses({});
    }
  }

  /** A readable view of a JSON value: chat replies and documents as text, the rest as pretty JSON. */
  function viewValue(value) {
    const items = Array.isArray(value) ? value : [value];
    const texty = items.length && items.every((v) => typeof v === "string" || (v && typeof v === "object" && (typeof v.text === "string" || typeof v.content === "string")));
    if (texty) {
      return h("div.sy-texts", null, items.map((v) => h("div.sy-text-item", null,
        v && v.role ? h("span.sy-badge", { text: v.role }) : null,
        v && v.meta && v.meta.file_path ? h("span.sy-badge", { text: v.meta.file_path }) : null,
        h("pre.sy-pre", { text: typeof v === "string" ? v : (v.text || v.content) }))));
    }
    return h("pre.sy-pre.sy-json", { text: JSON.stringify(value, null, 2) });
  }

  SY.RunPanel = RunPanel;
})(window.Stackyard = window.Stackyard || {});
