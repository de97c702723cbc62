/* Stackyard editor: the side panel's "Inspect" tab — a form generated from the selected node's param schema
 * (text, number, boolean, enum, JSON, secrets as env-var names, templates whose variables become ports live),
 * its ports with workflow input/output declarations, or the workflow's own settings when nothing is selected. */
(function (SY) {
  "use strict";
  const { h, append, debounce, shortType, typeFamily } = SY.util;

  const NAME_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;
  // Haystack Secret parameters the catalog does not flag (e.g. an embedder's HF token) still get the env-var field.
  const TEMPLATE_PORTS = new Set(["template", "template_variables"]);
  const SECRET_NAME = /^(token|api_key|.*_api_key|.*_token|secret)$/;
  const MILVUS_STORE = "milvus_haystack.document_store.MilvusDocumentStore";
  const NEW_COLLECTION = "\u0000new";
  const KNOWLEDGE_BASE = "knowledge_base";    // a store named by knowledge base: {type: "knowledge_base", init_parameters: {name}}
  const BASE_OPTION = "\u0000kb:";
  const AGENT = "haystack.components.agents.agent.Agent";   // its tools: agent_tools.js
  // Agent parameters only their default is allowed for (workflows/agents.py _FIXED).
  const AGENT_FIXED = new Set(["streaming_callback", "hooks", "raise_on_tool_invocation_failure",
    "tool_streaming_callback_passthrough"]);
  const AGENT_PORTS = new Set(["messages", "streaming_callback", "generation_kwargs", "tools", "hook_context",
    "system_prompt", "user_prompt", "break_point", "snapshot"]);   // its own inputs, not its prompt's variables
  const AGENT_STREAMING = "Streams the final answer only with a local model (it cannot stream and call tools at once); "
    + "an OpenAI-compatible server streams every step.";

  class Inspector {
    constructor(ed, host) {
      this.ed = ed;
      this.host = host;
      this.refreshPorts = debounce((name) => this.ed.refreshPorts(name), 250);
      this.agentTools = new SY.AgentTools(this);
    }

    render() {
      const sel = [...this.ed.selection];
      this.host.textContent = "";
      const nodes = sel.filter((k) => k.startsWith("n:"));
      if (sel.length === 1 && nodes.length === 1) return this.renderNode(this.ed.graph.nodes.get(nodes[0].slice(2)));
      if (sel.length === 1 && sel[0].startsWith("e:")) return this.renderEdge(sel[0].slice(2));
      if (sel.length > 1) return this.renderMany(sel);
      return this.renderWorkflow();
    }

    section(title, ...children) {
      return h("section.sy-section", null, title ? h("h3", { text: title }) : null, ...children);
    }

    // --- one node -----------------------------------------------------------------------------------
    renderNode(node) {
      if (!node) return this.renderWorkflow();
      const entry = this.ed.catalogEntry(node.type) || { title: node.type.split(".").pop(), params: [], description: "" };
      const issues = this.ed.canvas.issues.byNode.get(node.name) || [];
      const name = h("input.sy-input", { value: node.name, "aria-label": "Node name", spellcheck: false });
      name.addEventListener("change", () => this.rename(node, name));
      name.addEventListener("keydown", (e) => { if (e.key === "Enter") name.blur(); });
      append(this.host, 
        h("div.sy-insp-head", { dataset: { cat: entry.category || "other" } },
          h("span.sy-node-icon", { text: entry.title[0].toUpperCase() }),
          h("div", null, h("div.sy-insp-title", { text: entry.title }), h("div.sy-insp-type", { text: node.type }))),
        entry.description ? h("p.sy-muted.sy-insp-desc", { text: entry.description }) : null,
        issues.length ? this.section(null, h("ul.sy-issue-list.sy-compact", null,
          issues.map((i) => h("li.sy-issue", null, h("span.sy-issue-where", { text: i.port ? `${i.port}` : "node" }), h("span", { text: i.message }))))) : null,
        this.section("Name", name, h("div.sy-hint", { text: "Letters, digits, _ and -; used in connections (name.port)." })),
        node.type === AGENT ? this.agentTools.section(node) : null,
        this.section(null, h("h3", null, "Parameters ", SY.util.helpLink("concepts", "nodes and their parameters")),
          this.paramForm(node, entry)),
        this.portsSection = this.section("Ports", this.portList(node)),
        this.ed.runs.hasOutput(node.name) ? this.section("Last run", h("button.sy-btn", { text: "View output", onclick: () => this.ed.runs.showNodeOutput(node.name) })) : null);
    }

    rename(node, input) {
      const next = input.value.trim();
      if (next === node.name) return;
      if (!NAME_RE.test(next) || this.ed.graph.nodes.has(next)) {
        SY.util.toast(this.ed.graph.nodes.has(next) ? `A node named "${next}" exists already.` : "A name may hold letters, digits, _ and - (no dots).", "error");
        input.value = node.name;
        return;
      }
      const old = node.name;
      this.ed.commit("rename node", () => this.ed.graph.renameNode(old, next));
      this.ed.selection = new Set([`n:${next}`]);
      this.ed.canvas.renderSelection();
      this.render();
    }

    paramForm(node, entry) {
      const form = h("div.sy-form");
      const params = entry.params || [];
      if (!params.length) form.appendChild(h("p.sy-muted", { text: "This node has no parameters." }));
      const has = (name) => Object.prototype.hasOwnProperty.call(node.params, name);
      // An agent's hooks, state schema … are Stackyard's to set: shown only when a definition sets them (to undo it).
      const shown = node.type === AGENT ? params.filter((p) => !AGENT_FIXED.has(p.name) || has(p.name)) : params;
      for (const spec of shown) form.appendChild(this.field(node, spec));
      if (shown.length < params.length) form.appendChild(h("div.sy-hint", { text: "Stackyard sets this agent's hooks and how tool failures and streaming pass on." }));
      const known = new Set(params.map((p) => p.name));
      if (node.type === AGENT) known.add("tools");     // the Tools section edits them
      for (const key of Object.keys(node.params).filter((k) => !known.has(k))) {
        form.appendChild(this.field(node, { name: key, kind: "object", default: null }));
      }
      return form;
    }

    /** One form row; every change is one undo step and refreshes the node's ports (they may depend on it). */
    field(node, spec) {
      if (spec.kind === "object" && SECRET_NAME.test(spec.name)) spec = Object.assign({}, spec, { kind: "secret" });
      const has = Object.prototype.hasOwnProperty.call(node.params, spec.name);
      const value = has ? node.params[spec.name] : spec.default;
      const set = (next, unset) => {
        this.ed.commit(`edit ${spec.name}`, () => {
          if (unset) delete node.params[spec.name]; else node.params[spec.name] = next;
        }, undefined, { render: false });
        this.refreshPorts(node.name);
      };
      // The parameter in plain words; Haystack's own name (what YAML and the API use) on hover.
      const label = h("label.sy-label", { title: `${spec.name}: the Haystack parameter` }, spec.label || spec.name,
        spec.required ? h("span.sy-req", { text: " *", title: "required" }) : null,
        h("span.sy-kind", { text: spec.kind === "document_store" ? "store" : spec.kind }));
      const row = h("div.sy-field", { dataset: { param: spec.name, kind: spec.kind } }, label);
      const reset = has ? h("button.sy-reset", { title: "Back to the default", text: "↺", onclick: () => { set(null, true); this.render(); } }) : null;
      let control;
      if (spec.kind === "boolean") {
        control = h("input", { type: "checkbox", checked: Boolean(value), "aria-label": spec.name });
        control.addEventListener("change", () => set(control.checked));
        row.appendChild(h("label.sy-switch", null, control, h("span", { text: value ? "on" : "off" })));
      } else if (spec.kind === "enum") {
        control = h("select.sy-input", { "aria-label": spec.name },
          h("option", { value: "", text: `default${spec.default !== null && spec.default !== undefined ? ` (${spec.default})` : ""}` }),
          (spec.enum || []).map((opt) => h("option", { value: String(opt), text: String(opt) })));
        control.value = has ? String(value) : "";
        control.addEventListener("change", () => {
          const opt = (spec.enum || []).find((o) => String(o) === control.value);
          set(opt, control.value === "");
        });
        row.appendChild(control);
      } else if (spec.kind === "integer" || spec.kind === "number") {
        control = h("input.sy-input", { type: "number", step: spec.kind === "integer" ? "1" : "any", "aria-label": spec.name,
          placeholder: spec.default === null || spec.default === undefined ? "default" : String(spec.default) });
        if (has && value !== null) control.value = String(value);
        control.addEventListener("change", () => {
          if (control.value === "") return set(null, true);
          const n = spec.kind === "integer" ? parseInt(control.value, 10) : parseFloat(control.value);
          if (!Number.isNaN(n)) set(n);
        });
        row.appendChild(control);
      } else if (spec.kind === "secret") {
        const envs = value && typeof value === "object" && Array.isArray(value.env_vars) ? value.env_vars.join(", ") : "";
        control = h("input.sy-input.sy-mono", { value: envs, placeholder: "ENV_VAR_NAME", spellcheck: false, "aria-label": spec.name });
        control.addEventListener("change", () => {
          const names = control.value.split(/[\s,]+/).filter(Boolean);
          if (!names.length) return set(null, true);
          set({ type: "env_var", env_vars: names, strict: true });
        });
        append(row, control, h("div.sy-hint", { text: "The name of an environment variable on the workers; the secret itself is never stored." }));
      } else if (spec.kind === "document_store" && value && typeof value === "object"
                 && (value.type === MILVUS_STORE || value.type === KNOWLEDGE_BASE)) {
        control = this.storeEditor(spec, value, set);
        row.appendChild(control);
      } else if (spec.kind === "string" && spec.name === "knowledge_base") {   // the knowledge base writer's base
        control = this.baseEditor(spec, value, set);
        row.appendChild(control);
      } else if (spec.kind === "template" && (typeof value === "string" || value === null || value === undefined)) {
        control = this.templateEditor(node, spec, value || "", set);
        row.appendChild(control);
      } else if (spec.kind === "string") {
        const long = typeof value === "string" && (value.length > 60 || value.includes("\n"));
        control = h(long ? "textarea.sy-input" : "input.sy-input", { "aria-label": spec.name, spellcheck: false,
          placeholder: spec.default === null || spec.default === undefined ? "default" : String(spec.default) });
        if (has && value !== null) control.value = value;
        control.addEventListener("change", () => set(control.value, control.value === "" && !spec.required));
        row.appendChild(control);
      } else {
        control = this.jsonEditor(spec, value, has, set);
        row.appendChild(control);
      }
      if (reset) label.appendChild(reset);
      if (spec.doc) row.appendChild(h("div.sy-hint.sy-param-doc", { text: spec.doc }));  // from the component's docstring
      if (node.type === AGENT && spec.name === "chat_generator") row.appendChild(h("div.sy-hint.sy-agent-streaming", { text: AGENT_STREAMING }));
      return row;
    }

    jsonEditor(spec, value, has, set) {
      const text = value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
      const area = h("textarea.sy-input.sy-mono", { value: text, rows: Math.min(10, Math.max(2, text.split("\n").length)),
        placeholder: "JSON, e.g. " + (spec.kind === "list" ? '["a", "b"]' : '{"key": "value"}'), spellcheck: false, "aria-label": spec.name });
      const err = h("div.sy-field-error");
      area.addEventListener("change", () => {
        if (!area.value.trim()) { err.textContent = ""; return set(null, true); }
        try {
          const parsed = JSON.parse(area.value);
          err.textContent = "";
          area.classList.remove("sy-invalid");
          set(parsed);
        } catch (ex) {
          err.textContent = `Not valid JSON: ${ex.message}`;
          area.classList.add("sy-invalid");
        }
      });
      return h("div", null, area, err);
    }

    /** A Milvus store: a knowledge base (GET /api/v1/knowledge-bases: its serving collection, resolved when the
     * workflow is built) or a collection picked from those the vector store holds (GET /api/v1/collections) or
     * named new; the rest of the store's settings stay as they are ("Edit as JSON" shows them all). */
    storeEditor(spec, value, set) {
      const params = value.init_parameters || {};
      const isBase = value.type === KNOWLEDGE_BASE;
      const current = isBase ? BASE_OPTION + (params.name || "") : params.collection_name || "";
      const shown = isBase ? `Knowledge base: ${params.name || "?"}` : current;
      const bases = h("optgroup", { label: "Knowledge bases" });
      const collections = h("optgroup", { label: "Collections" });
      const pick = h("select.sy-input", { "aria-label": `${spec.label || spec.name} collection` },
        h("option", { value: current, text: shown || "— choose —" }), bases, collections,
        h("option", { value: NEW_COLLECTION, text: "New collection…" }));
      pick.value = current;
      const named = h("input.sy-input.sy-mono", { placeholder: "new_collection", hidden: true, spellcheck: false,
        "aria-label": "New collection name" });
      const status = h("div.sy-hint", { text: "Loading knowledge bases and the vector store's collections…" });
      const milvus = isBase ? { type: MILVUS_STORE, init_parameters: { consistency_level: "Strong" } } : value;
      const choose = (name) => {
        if (name.startsWith(BASE_OPTION)) return set({ type: KNOWLEDGE_BASE, init_parameters: { name: name.slice(BASE_OPTION.length) } });
        set(Object.assign({}, milvus, { init_parameters: Object.assign({}, milvus.init_parameters || {}, { collection_name: name }) }));
      };
      pick.addEventListener("change", () => {
        named.hidden = pick.value !== NEW_COLLECTION;
        if (named.hidden) choose(pick.value); else named.focus();
      });
      named.addEventListener("change", () => { if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(named.value)) choose(named.value);
        else status.textContent = "A collection name holds letters, digits and _, and starts with a letter or _."; });
      Promise.all([SY.api.rest("GET", "/api/v1/knowledge-bases"), SY.api.rest("GET", "/api/v1/collections")]).then(([kbs, data]) => {
        for (const kb of kbs) if (BASE_OPTION + kb.name !== current)
          bases.appendChild(h("option", { value: BASE_OPTION + kb.name, text: `Knowledge base: ${kb.name} (${kb.status})` }));
        // a base's own collections are reached through the base, not by their generation's name
        const plain = data.collections.filter((name) => !/^kb_[0-9a-f]+_g\d+(_parents)?$/.test(name));
        for (const name of plain) if (name !== current) collections.appendChild(h("option", { value: name, text: name }));
        status.textContent = `${kbs.length} knowledge base(s), ${plain.length} other collection(s). A knowledge base keeps its `
          + "documents and chunks browsable on /knowledge; a workflow names it, and export writes its Milvus store.";
      }).catch((err) => { status.textContent = `Stores could not be listed: ${err.message}`; });
      let json = null;
      const raw = h("button.sy-link", { text: "Edit as JSON", onclick: () => {
        if (json) { json.remove(); json = null; return; }
        json = this.jsonEditor(spec, value, true, set);
        raw.after(json);
      } });
      return h("div.sy-store", null, pick, named, status, raw);
    }

    /** A knowledge base by name, picked from GET /api/v1/knowledge-bases (a name no base has stays shown). */
    baseEditor(spec, value, set) {
      const current = typeof value === "string" ? value : "";
      const pick = h("select.sy-input", { "aria-label": spec.label || spec.name },
        h("option", { value: current, text: current || "— choose a knowledge base —" }));
      pick.value = current;
      const status = h("div.sy-hint", { text: "Loading knowledge bases…" });
      pick.addEventListener("change", () => set(pick.value));
      SY.api.rest("GET", "/api/v1/knowledge-bases").then((kbs) => {
        for (const kb of kbs) if (kb.name !== current) pick.appendChild(h("option", { value: kb.name, text: `${kb.name} (${kb.status})` }));
        const known = !current || kbs.some((kb) => kb.name === current);
        status.textContent = known ? `${kbs.length} knowledge base(s); create one on /knowledge.`
          : `No knowledge base '${current}' yet: create it on /knowledge, or pick another.`;
      }).catch((err) => { status.textContent = `Knowledge bases could not be listed: ${err.message}`; });
      return h("div", null, pick, status);
    }

    /** A prompt template: as it is typed, its {{ variables }} become the node's input ports. */
    templateEditor(node, spec, value, set) {
      const area = h("textarea.sy-input.sy-mono.sy-template", { value, rows: Math.min(14, Math.max(5, value.split("\n").length + 1)),
        spellcheck: false, "aria-label": spec.name });
      const vars = h("div.sy-vars");
      this.varsEl = vars;
      this.showVars(node);
      let before = null;
      area.addEventListener("focus", () => { before = this.ed.graph.snapshot(); });
      area.addEventListener("input", () => {
        node.params[spec.name] = area.value;
        this.ed.touch();
        this.refreshPorts(node.name);
      });
      area.addEventListener("change", () => {
        if (before) this.ed.commit(`edit ${spec.name}`, null, before, { render: false });
        before = this.ed.graph.snapshot();
      });
      return h("div", null, area, vars);
    }

    /** The template's variables as Haystack sees them: the node's input ports (not loop variables, say). */
    showVars(node) {
      const fixed = node.type === AGENT ? AGENT_PORTS : TEMPLATE_PORTS;
      const names = (node.ports.inputs || []).map((p) => p.name).filter((n) => !fixed.has(n));
      this.varsEl.textContent = "";
      append(this.varsEl, h("span.sy-hint", { text: names.length ? "Variables → input ports: " : "No {{ variables }} yet." }),
        names.map((n) => h("code.sy-var", { text: n })));
    }

    /** New ports arrived (e.g. a template edit): redraw only the port list, so the focused field keeps focus. */
    updatePorts(name) {
      const sel = [...this.ed.selection];
      if (sel.length !== 1 || sel[0] !== `n:${name}` || !this.portsSection || !this.portsSection.isConnected) return;
      if (this.varsEl && this.varsEl.isConnected) this.showVars(this.ed.graph.nodes.get(name));
      const fresh = this.section("Ports", this.portList(this.ed.graph.nodes.get(name)));
      this.portsSection.replaceWith(fresh);
      this.portsSection = fresh;
    }

    portList(node) {
      const list = h("div.sy-ports");
      const ports = node.ports || {};
      if (ports.problem) list.appendChild(h("p.sy-field-error", { text: ports.problem }));
      for (const port of ports.inputs || []) {
        const ref = `${node.name}.${port.name}`;
        const fed = this.ed.graph.edges.find((e) => e.receiver === ref);
        list.appendChild(this.portRow(port, "in", ref, this.ed.graph.inputAlias(ref), fed ? `from ${fed.sender}` : null));
      }
      for (const port of ports.outputs || []) {
        const ref = `${node.name}.${port.name}`;
        list.appendChild(this.portRow(port, "out", ref, this.ed.graph.outputAlias(ref), null));
      }
      return list;
    }

    portRow(port, kind, ref, alias, fed) {
      const input = h("input.sy-input.sy-alias", { value: alias || "", spellcheck: false,
        placeholder: kind === "in" ? "workflow input…" : "workflow output…",
        title: kind === "in" ? "Declare this input as a workflow input under this name" : "Declare this output as a workflow output under this name",
        "aria-label": `${kind === "in" ? "Workflow input" : "Workflow output"} for ${ref}` });
      input.addEventListener("change", () => {
        const next = input.value.trim();
        if (next && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(next)) {
          SY.util.toast("Use letters, digits and _ for input and output names.", "error");
          input.value = alias || "";
          return;
        }
        this.ed.commit(kind === "in" ? "declare input" : "declare output",
          () => (kind === "in" ? this.ed.graph.setInputAlias(ref, next) : this.ed.graph.setOutputAlias(ref, next)));
      });
      return h("div.sy-port-row", { dataset: { kind, port: port.name } },
        h("span.sy-dot", { dataset: { fam: typeFamily(port.type) } }),
        h("div.sy-port-info", null,
          h("div", null, h("b", { text: port.name }), kind === "in" && port.mandatory ? h("span.sy-req", { text: " *" }) : null,
            h("span.sy-muted", { text: kind === "in" ? "  input" : "  output" })),
          h("code.sy-port-type", { text: shortType(port.type), title: port.type }),
          fed ? h("div.sy-hint", { text: fed }) : null),
        kind === "in" && fed ? null : input);
    }

    // --- an edge, a multi-selection, the workflow ---------------------------------------------------------
    renderEdge(id) {
      const edge = this.ed.graph.edges.find((e) => e.id === id);
      if (!edge) return this.renderWorkflow();
      append(this.host, this.section("Connection",
        h("div.sy-edge-card", null, h("code", { text: edge.sender }), h("span.sy-arrow", { text: "→" }), h("code", { text: edge.receiver })),
        h("button.sy-btn.sy-btn-danger", { text: "Delete connection", onclick: () => this.ed.deleteSelection() })));
    }

    renderMany(sel) {
      const nodes = sel.filter((k) => k.startsWith("n:")).length;
      append(this.host, this.section("Selection",
        h("p", { text: `${nodes} node${nodes === 1 ? "" : "s"}, ${sel.length - nodes} other item${sel.length - nodes === 1 ? "" : "s"} selected.` }),
        h("div.sy-row-btns", null,
          h("button.sy-btn", { text: "Copy", onclick: () => this.ed.copy() }),
          h("button.sy-btn", { text: "Duplicate", onclick: () => this.ed.duplicate() }),
          h("button.sy-btn.sy-btn-danger", { text: "Delete", onclick: () => this.ed.deleteSelection() }))));
    }

    /** Which declared input takes the user's message (and the history), which output is the reply (and the
     * sources): saved with the version, so publishing on /apps needs only a slug. */
    chatSection(g, inputs, outputs) {
      const roles = [["message", "User message", inputs, true], ["history", "Conversation history", inputs, false],
        ["reply", "Reply", outputs, true], ["sources", "Sources", outputs, false]];
      const rows = roles.map(([role, label, names, required]) => {
        const current = g.chat[role] || "";
        const pick = h("select.sy-input", { "aria-label": `Chat ${label.toLowerCase()}`, dataset: { chatRole: role } },
          h("option", { value: "", text: required ? "— choose —" : "— none —" }),
          [...new Set([...names, current].filter(Boolean))].map((name) => h("option", { value: name, text: name })));
        pick.value = current;
        pick.addEventListener("change", () => this.ed.commit("edit chat app", () => {
          if (pick.value) g.chat[role] = pick.value; else delete g.chat[role];
        }));
        const missing = current && !names.includes(current);
        return h("div.sy-field", null, h("label.sy-label", null, label, required ? h("span.sy-req", { text: " *" }) : null),
          pick, missing ? h("div.sy-hint.sy-warn", { text: `"${current}" is no longer declared.` }) : null);
      });
      const ready = g.chat.message && g.chat.reply && inputs.includes(g.chat.message) && outputs.includes(g.chat.reply);
      return this.section(null, h("h3", null, "Chat app ", SY.util.helpLink("the-editor-and-published-apps", "chat apps")),
        ...rows, h("div.sy-hint", { text: ready
        ? "Saved with the next version: on Publish (/apps) give only a slug."
        : "Pick the input that takes the user's message and the output that is the reply, to publish this workflow as a chat app." }));
    }

    renderWorkflow() {
      const ed = this.ed;
      if (!ed.workflow) {
        append(this.host, this.section("No workflow open", h("p.sy-muted", { text: "Open or create a workflow to start." }),
          h("button.sy-btn.sy-btn-primary", { text: "Workflows…", onclick: () => ed.panels.openWorkflows() })));
        return;
      }
      const g = ed.graph;
      const inputs = Object.entries(g.inputs);
      const outputs = Object.entries(g.outputs);
      const maxRuns = h("input.sy-input", { type: "number", min: "1", step: "1", placeholder: "100 (needed for loops)",
        value: g.extra.max_runs_per_component ? String(g.extra.max_runs_per_component) : "", "aria-label": "max_runs_per_component" });
      maxRuns.addEventListener("change", () => ed.commit("edit run limit", () => {
        const n = parseInt(maxRuns.value, 10);
        if (Number.isNaN(n) || n < 1) delete g.extra.max_runs_per_component; else g.extra.max_runs_per_component = n;
      }));
      append(this.host, 
        this.section("Workflow", h("div.sy-kv", null, h("span", { text: "Name" }), h("b", { text: ed.workflow.name })),
          h("div.sy-kv", null, h("span", { text: "Nodes" }), h("b", { text: String(g.nodes.size) })),
          h("div.sy-kv", null, h("span", { text: "Connections" }), h("b", { text: String(g.edges.length) })),
          h("div.sy-kv", null, h("span", { text: "Saved version" }), h("b", { text: ed.version ? `v${ed.version.number}` : "none yet" }))),
        this.section("Inputs", inputs.length ? h("ul.sy-io-list", null, inputs.map(([alias, refs]) => h("li", null,
          h("b", { text: alias }), h("span.sy-muted", { text: " → " }), h("code", { text: refs.join(", ") }),
          h("button.sy-icon-btn", { title: "Remove", text: "×", onclick: () => ed.commit("remove input", () => { delete g.inputs[alias]; }) }))))
          : h("p.sy-muted", { text: "None. Select a node and name one of its free input ports as a workflow input." })),
        this.section("Outputs", outputs.length ? h("ul.sy-io-list", null, outputs.map(([alias, ref]) => h("li", null,
          h("b", { text: alias }), h("span.sy-muted", { text: " ← " }), h("code", { text: ref }),
          h("button.sy-icon-btn", { title: "Remove", text: "×", onclick: () => ed.commit("remove output", () => { delete g.outputs[alias]; }) }))))
          : h("p.sy-muted", { text: "None. Select a node and name an output port as a workflow output." })),
        this.chatSection(g, inputs.map(([alias]) => alias), outputs.map(([alias]) => alias)),
        this.section("Run limit", maxRuns, h("div.sy-hint", { text: "max_runs_per_component: how often one node may run in a loop." })),
        this.section("Tips", h("p.sy-muted", { text: "Drag nodes in from the palette, then drag from an output port (right) to an input port (left). Press ? for shortcuts." })));
    }
  }

  SY.Inspector = Inspector;
})(window.Stackyard = window.Stackyard || {});
