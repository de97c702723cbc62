/* Stackyard editor: the shell and the editing commands. Mounted by the page's gr.HTML js_on_load:
 *   window.Stackyard.mount(element, {server, ...})
 * The graph stays in the browser while it is edited; it goes to Python (server functions) whole, only to check
 * an edge, validate, save or open. */
(function (SY) {
  "use strict";
  const { h, append, toast, clone, uid, confirmDialog } = SY.util;
  const LAST_KEY = "stackyard.lastWorkflow";
  const DRAFT_DELAY_MS = 800;   // a change is kept as the workflow's draft this long after the last one
  const CLIP_KEY = "stackyard.clipboard";

  class Editor {
    constructor(root) {
      this.root = root;
      this.graph = new SY.model.Graph();
      this.history = new SY.model.History(this.graph, (label, restored) => this.afterChange(label, restored));
      this.selection = new Set();
      this.catalog = [];
      this.byType = new Map();
      this.categories = [];
      this.templates = [];
      this.workflow = null;
      this.version = null;
      this.latestVersion = 0;
      this.savedKey = null;
      this.dirty = false;
      this.validation = null;
      this.pasteCount = 0;
      this.buildShell();
    }

    // --- the page ---------------------------------------------------------------------------------
    buildShell() {
      const tool = (name, title, onclick, action) => h("button.sy-tool", { title, "aria-label": title, onclick, dataset: { action } }, SY.util.icon(name));
      this.title = h("button.sy-wf-switch", { title: "Workflows (open, create, import)", onclick: () => this.panels.openWorkflows(), dataset: { action: "workflows" } });
      this.versionLabel = h("span.sy-version-label");
      this.draftBtn = h("button.sy-link.sy-draft-discard", { text: "discard draft", hidden: true, title: "Drop the unsaved draft and open the newest version",
        onclick: () => this.discardDraft(), dataset: { action: "discard-draft" } });
      this.exportLink = h("a.sy-btn", { text: "Download YAML", title: "Download the saved version as Haystack YAML", dataset: { action: "download" } });
      const topbar = h("header.sy-topbar", null,
        h("div.sy-brand", null, h("span.sy-logo"), "Stackyard"), this.title, this.versionLabel, this.draftBtn, h("div.sy-spacer"),
        h("button.sy-btn", { text: "Validate", title: "Check with Haystack's rules (V)", onclick: () => this.validate(), dataset: { action: "validate" } }),
        h("button.sy-btn", { text: "History", title: "Versions (H)", onclick: () => this.side.show("history"), dataset: { action: "history" } }),
        this.exportLink,
        h("a.sy-btn", { text: "Jobs", title: "Batch jobs and schedules", href: "/jobs", target: "_blank", dataset: { action: "jobs" } }),
        h("a.sy-btn", { text: "Knowledge", title: "Knowledge bases: documents, chunks, retrieval tests", href: "/knowledge", target: "_blank", dataset: { action: "knowledge" } }),
        h("a.sy-btn", { text: "Evaluations", title: "Test sets, evaluation scores and comparisons", href: "/evaluations", target: "_blank", dataset: { action: "evaluations" } }),
        h("a.sy-btn", { text: "Conversations", title: "Chat logs of published apps: threads, ratings, test cases", href: "/conversations", target: "_blank", dataset: { action: "conversations" } }),
        h("a.sy-btn", { text: "Models", title: "Which generators and embedders this installation can use", href: "/models", target: "_blank", dataset: { action: "models" } }),
        h("a.sy-btn", { text: "Publish", title: "Serve a saved version as a chat app, and manage API keys", href: "/apps", target: "_blank", dataset: { action: "publish" } }),
        h("button.sy-btn.sy-btn-primary", { text: "Save", title: "Save a new version (Ctrl+S)", onclick: () => this.openSave(), dataset: { action: "save" } }),
        h("button.sy-btn.sy-btn-run", { text: "▶ Run", title: "Open the run panel (Ctrl+Enter runs)", onclick: () => this.openDrawer(true), dataset: { action: "open-run" } }),
        h("button.sy-icon-btn", { text: "?", title: "Shortcuts (?)", onclick: () => this.showHelp() }),
        this.loginLink = h("a.sy-link.sy-logout", { text: "Log out", href: "/logout", hidden: true }));

      this.viewport = h("div.sy-viewport", { tabindex: "0", "aria-label": "Workflow canvas" });
      this.empty = h("div.sy-empty", null, h("b", { text: "Drag a node from the palette to start" }),
        h("span", { text: "then connect an output port (right) to an input port (left)" }));
      this.undoBtn = tool("undo", "Undo (Ctrl+Z)", () => this.undo(), "undo");
      this.redoBtn = tool("redo", "Redo (Ctrl+Shift+Z)", () => this.redo(), "redo");
      this.zoomLabel = h("span.sy-zoom-label", { text: "100%" });
      const toolbar = h("div.sy-toolbar", null, this.undoBtn, this.redoBtn, h("span.sy-sep"),
        tool("layout", "Auto-layout (L)", () => this.autoLayout(), "layout"),
        tool("note", "Sticky note (N)", () => this.addNote(), "note"), h("span.sy-sep"),
        tool("minus", "Zoom out (−)", () => this.canvas.zoomAt(this.canvas.view.k / 1.2), "zoom-out"), this.zoomLabel,
        tool("plus", "Zoom in (+)", () => this.canvas.zoomAt(this.canvas.view.k * 1.2), "zoom-in"),
        tool("fit", "Zoom to fit (F)", () => this.canvas.fit(), "fit"));

      this.drawerBody = h("div.sy-drawer-body");
      this.drawerSummary = h("span.sy-drawer-summary");
      this.drawer = h("section.sy-drawer", { dataset: { open: "0" } },
        h("button.sy-drawer-head", { onclick: () => this.openDrawer(this.drawer.dataset.open !== "1") },
          h("b", { text: "Run" }), this.drawerSummary, h("span.sy-caret", { text: "▴" })), this.drawerBody);

      const tabs = ["inspect", "problems", "history"];
      this.tabBodies = {};
      this.tabButtons = {};
      const tabBar = h("div.sy-tabs", { role: "tablist" });
      for (const tab of tabs) {
        this.tabButtons[tab] = h("button.sy-tab", { role: "tab", dataset: { tab }, onclick: () => this.side.show(tab) },
          tab[0].toUpperCase() + tab.slice(1), tab === "problems" ? (this.problemCount = h("span.sy-count", { hidden: true })) : null);
        append(tabBar, this.tabButtons[tab]);
        this.tabBodies[tab] = h("div.sy-tab-body", { dataset: { tab }, hidden: true });
      }
      const paletteHost = h("aside.sy-palette");
      const side = h("aside.sy-side", null, tabBar, ...Object.values(this.tabBodies));
      this.root.textContent = "";
      append(this.root, h("div.sy-app", null, topbar,
        h("div.sy-main", null, paletteHost,
          h("div.sy-center", null, h("div.sy-stage", null, this.viewport, toolbar, this.empty), this.drawer), side),
        this.toasts = h("div.sy-toasts", { "aria-live": "polite" }), this.modals = h("div.sy-modals")));
      SY.util.setHosts(this.toasts, this.modals);

      this.canvas = new SY.Canvas(this, this.viewport);
      this.canvas.onview = (v) => { this.zoomLabel.textContent = `${Math.round(v.k * 100)}%`; };
      this.palette = new SY.Palette(this, paletteHost);
      this.inspector = new SY.Inspector(this, this.tabBodies.inspect);
      this.runs = new SY.RunPanel(this, this.drawerBody);
      this.panels = { openWorkflows: () => SY.panels.openWorkflows(this) };
      this.side = {
        current: "inspect",
        show: (tab) => {
          this.side.current = tab;
          for (const t of tabs) {
            this.tabBodies[t].hidden = t !== tab;
            this.tabButtons[t].classList.toggle("sy-active", t === tab);
          }
          if (tab === "inspect") this.inspector.render();
          if (tab === "problems") SY.panels.renderProblems(this, this.tabBodies.problems, this.validation);
          if (tab === "history") SY.panels.renderHistory(this, this.tabBodies.history);
        },
      };
      SY.installInteractions(this);
      // Changes are kept as a draft a moment after each one; only a draft not yet written is at risk on leaving.
      window.addEventListener("beforeunload", (e) => { if (this.draftTimer || this.draftSaving) { e.preventDefault(); e.returnValue = ""; } });
      this.side.show("inspect");
      this.updateChrome();
    }

    async boot(server) {
      SY.api.server = server;
      const data = await SY.api.call("bootstrap", {});
      this.catalog = data.catalog;
      this.byType = new Map(this.catalog.map((e) => [e.type, e]));
      this.categories = data.categories;
      this.templates = data.templates;
      this.loginLink.hidden = !data.login;
      this.palette.render();
      const wanted = new URLSearchParams(location.search).get("workflow") || localStorage.getItem(LAST_KEY);
      const known = data.workflows.find((w) => w.id === wanted || w.name === wanted);
      if (known) await this.open(known.id);
      else if (data.workflows.length) await this.open([...data.workflows].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1))[0].id);
      else this.panels.openWorkflows();
      this.root.dataset.ready = "1";
    }

    catalogEntry(type) { return this.byType.get(type); }

    // --- opening and saving -------------------------------------------------------------------------
    async open(ref, version) {
      if (this.draftTimer) await this.keepDraft();   // what is on the canvas stays as this workflow's draft
      if (version && this.dirty && !(await confirmDialog("Unsaved changes", "Your draft stays kept; open this version instead of it for now?", "Open"))) return;
      const started = performance.now();
      try {
        this.load(await SY.api.call("open_workflow", { ref, version: version || null }));
        this.root.dataset.lastOpenMs = String(Math.round(performance.now() - started));
      } catch (err) {
        toast(err.message, "error");
      }
    }

    /** Show an opened workflow ({workflow, version, spec, ports, versions}). */
    load(opened) {
      this.workflow = opened.workflow;
      this.version = opened.version;
      this.latestVersion = opened.workflow.latest_version || 0;
      const draft = opened.draft || null;
      clearTimeout(this.draftTimer);
      this.draftTimer = null;
      this.hasDraft = Boolean(draft);
      this.graph = SY.model.Graph.fromSpec(opened.spec, opened.ports);
      const versionKey = draft ? this.specKey() : null;   // the saved version, which a draft differs from
      if (draft) this.graph = SY.model.Graph.fromSpec(draft.spec, draft.ports);
      this.history.reset(this.graph);
      this.selection.clear();
      this.validation = null;
      this.canvas.issues = { byNode: new Map(), byPort: new Map() };
      this.canvas.expanded.clear();
      this.runs.reset();
      if ([...this.graph.nodes.values()].some((n) => n.x === null)) SY.layoutGraph(this.graph, [...this.graph.nodes.keys()], 80, 80, (n) => this.canvas.layoutOf(n).height);
      this.canvas.render();
      this.canvas.fit();
      this.savedKey = draft ? versionKey : this.specKey();   // after the layout, which fills in missing positions
      this.touch(false);
      localStorage.setItem(LAST_KEY, this.workflow.id);
      const url = new URL(location.href);
      url.searchParams.set("workflow", this.workflow.id);
      history.replaceState(null, "", url);
      this.side.show(this.side.current === "history" ? "history" : "inspect");
      this.runs.renderForm();
      this.runs.loadHistory();
      this.problemCount.hidden = true;
      if (draft) {
        this.showIssues(draft.issues || []);
        const when = new Date(draft.saved_at).toLocaleTimeString();
        toast(`Opened your unsaved draft (kept ${when}${draft.based_on ? `, started from v${draft.based_on}` : ""}). Save a version to keep it for good, or discard it.`, "info", 8000);
      }
      this.root.dataset.workflow = this.workflow.id;
      this.root.dataset.loadedAt = String(Math.round(performance.now()));   // ms since navigation start
      this.root.dataset.loads = String(Number(this.root.dataset.loads || 0) + 1);
    }

    closeWorkflow() {
      this.workflow = null;
      this.version = null;
      this.graph = new SY.model.Graph();
      this.history.reset(this.graph);
      this.dirty = false;
      this.savedKey = null;
      localStorage.removeItem(LAST_KEY);
      this.canvas.render();
      this.updateChrome();
      this.side.show("inspect");
    }

    specKey() { return JSON.stringify(this.graph.toSpec()); }

    openSave() { SY.panels.openSave(this); }

    async save(note) {
      const started = performance.now();
      try {
        const res = await SY.api.call("save_version", { ref: this.workflow.id, spec: this.graph.toSpec(), note });
        this.version = res.version;
        this.latestVersion = res.version.number;
        this.workflow.latest_version = res.version.number;
        this.savedKey = this.specKey();
        clearTimeout(this.draftTimer);
        this.draftTimer = null;
        this.hasDraft = false;                      // the server cleared it with the save
        this.touch(false);
        const warnings = res.warnings || [];
        this.showIssues(warnings);
        this.root.dataset.lastSaveMs = String(Math.round(performance.now() - started));
        if (warnings.length) {
          this.side.show("problems");
          toast(`Saved version ${res.version.number}, but it cannot run here yet: ${warnings[0].message}`, "warn", 12000);
        } else toast(`Saved version ${res.version.number}.`, "ok");
        if (this.side.current === "history") this.side.show("history");
        this.runs.renderForm();
        return true;
      } catch (err) {
        if (err.issues) {
          this.showIssues(err.issues);
          this.side.show("problems");
          toast(`Not saved: ${err.issues.length} problem${err.issues.length === 1 ? "" : "s"} to fix first.`, "error", 7000);
        } else toast(err.message, "error", 7000);
        return false;
      }
    }

    async restore(number) {
      if (this.dirty && !(await confirmDialog("Unsaved changes", "Restoring discards the changes you have not saved.", "Restore"))) return;
      try {
        this.dirty = false;
        this.load(await SY.api.call("restore_version", { ref: this.workflow.id, number }));
        this.side.show("history");
        toast(`Restored version ${number} as version ${this.version.number}.`, "ok");
      } catch (err) { toast(err.message, "error"); }
    }

    async validate() {
      if (!this.workflow) return;
      try {
        const res = await SY.api.call("validate", { spec: this.graph.toSpec(), workflow: this.workflow.id });
        const warnings = res.warnings || [];
        this.showIssues(res.issues.concat(warnings));
        this.side.show("problems");
        if (!res.valid) toast(`${res.issues.length} problem${res.issues.length === 1 ? "" : "s"} found.`, "error");
        else if (warnings.length) toast(`Valid, but it cannot run here yet: ${warnings[0].message}`, "warn", 12000);
        else toast("No problems found.", "ok");
      } catch (err) { toast(err.message, "error"); }
    }

    showIssues(issues) {
      this.validation = { issues };
      this.canvas.setIssues(issues);
      this.problemCount.hidden = !issues.length;
      this.problemCount.textContent = String(issues.length);
      if (this.side.current === "problems") SY.panels.renderProblems(this, this.tabBodies.problems, this.validation);
    }

    focusNode(name) {
      if (!this.graph.nodes.has(name)) return;
      this.select([`n:${name}`]);
      this.side.show("inspect");
      this.canvas.centerOn(name);
      const el = this.canvas.nodeEls.get(name);
      if (el) { el.classList.remove("sy-pulse"); void el.offsetWidth; el.classList.add("sy-pulse"); }
    }

    // --- changes ------------------------------------------------------------------------------------
    /** Apply `fn` as one undoable step. opts.render=false when the canvas already shows the change. */
    commit(label, fn, before, opts) {
      this.pendingRender = !(opts && opts.render === false);
      const changed = this.history.commit(label, fn, before);
      this.pendingRender = true;
      return changed;
    }

    afterChange(label, restored) {
      if (restored || this.pendingRender !== false) {
        for (const name of [...this.selection]) {
          const [kind, key] = [name.slice(0, 2), name.slice(2)];
          if ((kind === "n:" && !this.graph.nodes.has(key)) || (kind === "e:" && !this.graph.edges.some((e) => e.id === key))
            || (kind === "s:" && !this.graph.notes.some((n) => n.id === key))) this.selection.delete(name);
        }
        this.canvas.render();
        if (this.side.current === "inspect") this.inspector.render();
      }
      this.touch();
    }

    /** Recompute "unsaved changes" (undoing back to the saved state makes the workflow clean again). */
    touch(keep = true) {
      this.dirty = Boolean(this.workflow) && this.specKey() !== this.savedKey;
      if (keep && this.workflow && (this.dirty || this.hasDraft)) {
        clearTimeout(this.draftTimer);
        this.draftTimer = setTimeout(() => this.keepDraft(), DRAFT_DELAY_MS);
      }
      this.updateChrome();
    }

    /** Keep the canvas as the workflow's draft (or drop the draft when the canvas is back to the saved version). */
    async keepDraft() {
      this.draftTimer = null;
      if (!this.workflow || this.draftSaving) { if (this.workflow) this.touch(); return; }
      const ref = this.workflow.id;
      this.draftSaving = true;
      try {
        const still = () => this.workflow && this.workflow.id === ref;   // another workflow may have opened meanwhile
        if (this.dirty) {
          await SY.api.call("save_draft", { ref, spec: this.graph.toSpec(), based_on: this.version ? this.version.number : null });
          if (still()) this.hasDraft = true;
          this.root.dataset.draftSaved = String(Date.now());
        } else if (this.hasDraft) {
          await SY.api.call("discard_draft", { ref });
          if (still()) this.hasDraft = false;
        }
      } catch (err) {
        toast(`The draft was not kept: ${err.message}`, "error", 7000);
      } finally {
        this.draftSaving = false;
        this.updateChrome();
      }
    }

    async discardDraft() {
      if (!this.workflow) return;
      if (!(await confirmDialog("Discard the draft", "Drop the changes you have not saved as a version?", "Discard"))) return;
      clearTimeout(this.draftTimer);
      this.draftTimer = null;
      try {
        this.load(await SY.api.call("discard_draft", { ref: this.workflow.id }));
        toast("Draft discarded.", "ok");
      } catch (err) { toast(err.message, "error"); }
    }

    updateChrome() {
      this.title.textContent = this.workflow ? `${this.workflow.name} ▾` : "Open a workflow ▾";
      this.versionLabel.textContent = !this.workflow ? "" : this.version ? `v${this.version.number}${this.version.number < this.latestVersion ? ` (newest v${this.latestVersion})` : ""}` : "not saved yet";
      this.versionLabel.classList.toggle("sy-dirty", this.dirty);
      this.versionLabel.dataset.dirty = this.dirty ? "1" : "0";
      if (this.dirty) this.versionLabel.textContent += this.hasDraft && !this.draftTimer ? " · draft kept" : " · unsaved changes";
      this.draftBtn.hidden = !this.hasDraft;
      const live = Object.entries((this.workflow && this.workflow.published) || {});
      if (live.length) this.versionLabel.textContent += " · live: " + live.map(([slug, n]) => `${slug} → v${n}`).join(", ");
      this.undoBtn.disabled = !this.history.undoStack.length;
      this.redoBtn.disabled = !this.history.redoStack.length;
      this.empty.hidden = this.graph.nodes.size > 0 || !this.workflow;
      if (this.workflow && this.version) {
        this.exportLink.href = `/api/v1/workflows/${encodeURIComponent(this.workflow.id)}/export?version=${this.version.number}`;
        this.exportLink.setAttribute("download", `${this.workflow.name}-v${this.version.number}.yaml`);
        this.exportLink.classList.remove("sy-disabled");
      } else {
        this.exportLink.removeAttribute("href");
        this.exportLink.classList.add("sy-disabled");
      }
      document.title = this.workflow ? `${this.workflow.name}${this.dirty ? " •" : ""} — Stackyard` : "Stackyard";
    }

    updateTitle() { this.updateChrome(); }

    // --- selection ----------------------------------------------------------------------------------
    select(keys) {
      this.selection = new Set(keys);
      this.canvas.renderSelection();
      if (this.side.current === "inspect") this.inspector.render();
    }

    toggleSelect(key) {
      if (this.selection.has(key)) this.selection.delete(key); else this.selection.add(key);
      this.select([...this.selection]);
    }

    clearSelection() { if (this.selection.size) this.select([]); }

    selectAll() {
      this.select([...[...this.graph.nodes.keys()].map((n) => `n:${n}`), ...this.graph.notes.map((n) => `s:${n.id}`)]);
    }

    selectedNodes() { return [...this.selection].filter((k) => k.startsWith("n:")).map((k) => k.slice(2)); }

    // --- editing commands ---------------------------------------------------------------------------
    addNode(entry, pos) {
      if (!entry || !this.workflow) return toast(this.workflow ? "Unknown node type." : "Open or create a workflow first.", "error");
      const name = this.graph.uniqueName(entry.title);
      const r = this.viewport.getBoundingClientRect();
      const at = pos || this.canvas.screenToWorld(r.left + r.width / 2 - 120, r.top + r.height / 2 - 40);
      this.commit("add node", () => this.graph.addNode({ name, type: entry.type, params: clone(entry.defaults || {}),
        x: Math.round(at.x), y: Math.round(at.y), ports: clone(entry.ports || { inputs: [], outputs: [] }) }));
      this.select([`n:${name}`]);
      return name;
    }

    async connect(sender, receiver) {
      if (this.graph.edges.some((e) => e.sender === sender && e.receiver === receiver)) return toast("Those ports are connected already.", "info");
      let res;
      try {
        res = await SY.api.call("connect_check", { spec: this.graph.toSpec(), sender, receiver });
      } catch (err) { return toast(err.message, "error"); }
      if (!res.ok) {
        this.root.dataset.lastRefusal = res.message;
        this.canvas.flashPort(receiver, "in");
        this.canvas.flashPort(sender, "out");
        toast(`Connection refused: ${res.message}`, "error", 9000).classList.add("sy-refusal");
        return false;
      }
      this.commit("connect", () => this.graph.addEdge(sender, receiver));
      if (res.warning) toast(res.warning, "warn", 7000);
      return true;
    }

    deleteSelection() {
      if (!this.selection.size) return;
      const keys = [...this.selection];
      this.commit("delete", () => {
        this.graph.removeNodes(keys.filter((k) => k.startsWith("n:")).map((k) => k.slice(2)));
        this.graph.removeEdges(keys.filter((k) => k.startsWith("e:")).map((k) => k.slice(2)));
        const notes = new Set(keys.filter((k) => k.startsWith("s:")).map((k) => k.slice(2)));
        this.graph.notes = this.graph.notes.filter((n) => !notes.has(n.id));
      });
      this.select([]);
    }

    async refreshPorts(name) {
      const node = this.graph.nodes.get(name);
      if (!node) return;
      const asked = JSON.stringify(node.params);
      let ports;
      try { ports = await SY.api.call("ports", { type: node.type, params: node.params }); } catch (err) { return; }
      const now = this.graph.nodes.get(name);
      if (!now || JSON.stringify(now.params) !== asked) return;   // edited again meanwhile; a newer call follows
      now.ports = ports;
      this.canvas.refreshNodes([name]);
      this.inspector.updatePorts(name);
    }

    copy() {
      const names = this.selectedNodes();
      const notes = [...this.selection].filter((k) => k.startsWith("s:")).map((k) => k.slice(2));
      if (!names.length && !notes.length) return;
      this.clipboard = this.graph.extract(names, notes);
      try { localStorage.setItem(CLIP_KEY, JSON.stringify(this.clipboard)); } catch (_) { /* private mode */ }
      this.pasteCount = 0;
      toast(`Copied ${names.length} node${names.length === 1 ? "" : "s"}.`, "info", 1800);
    }

    paste(data) {
      let clip = data || this.clipboard;
      if (!clip) { try { clip = JSON.parse(localStorage.getItem(CLIP_KEY) || "null"); } catch (_) { clip = null; } }
      if (!clip || !this.workflow) return;
      this.pasteCount += 1;
      const offset = 40 * this.pasteCount;
      const names = new Map();
      const keys = [];
      this.commit("paste", () => {
        for (const node of clip.nodes) {
          const name = this.graph.uniqueName(node.name);
          names.set(node.name, name);
          this.graph.addNode(Object.assign(clone(node), { name, x: node.x + offset, y: node.y + offset }));
          keys.push(`n:${name}`);
        }
        const rename = (ref) => { const i = ref.indexOf("."); return `${names.get(ref.slice(0, i))}${ref.slice(i)}`; };
        for (const e of clip.edges) this.graph.addEdge(rename(e.sender), rename(e.receiver));
        for (const note of clip.notes) {
          const copy = Object.assign(clone(note), { id: uid("note"), x: note.x + offset, y: note.y + offset });
          this.graph.notes.push(copy);
          keys.push(`s:${copy.id}`);
        }
      });
      this.select(keys);
    }

    duplicate() {
      const names = this.selectedNodes();
      const notes = [...this.selection].filter((k) => k.startsWith("s:")).map((k) => k.slice(2));
      if (!names.length && !notes.length) return;
      const saved = this.pasteCount;
      this.pasteCount = 0;
      this.paste(this.graph.extract(names, notes));
      this.pasteCount = saved;
    }

    addNote(at) {
      if (!this.workflow) return;
      const r = this.viewport.getBoundingClientRect();
      const p = at || this.canvas.screenToWorld(r.left + r.width / 2 - 100, r.top + r.height / 2 - 60);
      const note = { id: uid("note"), text: "", x: Math.round(p.x), y: Math.round(p.y), w: 200, h: 120 };
      this.commit("add note", () => this.graph.notes.push(note));
      this.select([`s:${note.id}`]);
      const el = this.canvas.noteEls.get(note.id);
      if (el) el.querySelector("textarea").focus();
    }

    nudge(key, step) {
      const d = { arrowleft: [-step, 0], arrowright: [step, 0], arrowup: [0, -step], arrowdown: [0, step] }[key];
      if (!d || !this.selection.size) return;
      this.commit("move", () => {
        for (const k of this.selection) {
          const item = k.startsWith("n:") ? this.graph.nodes.get(k.slice(2)) : k.startsWith("s:") ? this.graph.notes.find((n) => n.id === k.slice(2)) : null;
          if (item) { item.x += d[0]; item.y += d[1]; }
        }
      });
    }

    autoLayout() {
      if (!this.graph.nodes.size) return;
      const chosen = this.selectedNodes();
      const names = chosen.length > 1 ? chosen : [...this.graph.nodes.keys()];
      const box = this.canvas.bounds(names);
      this.commit("auto-layout", () => SY.layoutGraph(this.graph, names, box ? box.x : 80, box ? box.y : 80,
        (n) => this.canvas.layoutOf(n).height));
      if (names.length === this.graph.nodes.size) this.canvas.fit();
    }

    undo() {
      const label = this.history.undo();
      toast(label ? `Undid ${label}.` : "Nothing to undo.", "info", 1500);
    }

    redo() {
      const label = this.history.redo();
      toast(label ? `Redid ${label}.` : "Nothing to redo.", "info", 1500);
    }

    openDrawer(open) {
      this.drawer.dataset.open = open ? "1" : "0";
      if (open) this.runs.renderForm();
    }

    onRunShown() {
      const run = this.runs.run;
      this.drawerSummary.textContent = run ? ` · ${run.state}` : "";
      this.drawerSummary.dataset.state = run ? run.state : "";
    }

    showHelp() { SY.panels.showHelp(); }
  }

  SY.mount = function (element, ctx) {
    const root = element.querySelector(".sy-root") || element;
    const editor = new Editor(root);
    SY.editor = editor;
    editor.boot(ctx.server).catch((err) => {
      root.dataset.ready = "error";
      toast(`The editor could not start: ${err.message}`, "error", 0);
    });
    return editor;
  };
})(window.Stackyard = window.Stackyard || {});
