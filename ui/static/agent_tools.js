/* Stackyard editor: the "Tools" section of an Agent node in the inspector: its tools (a node, a saved workflow
 * version, an MCP server) as Haystack serializes them (workflows/agents.py checks them on the server), each
 * removable, and a dialog to add each kind. */
(function (SY) {
  "use strict";
  const { h, append, clone, modal, shortType } = SY.util;

  const AGENT = "haystack.components.agents.agent.Agent";
  const COMPONENT_TOOL = "haystack.tools.component_tool.ComponentTool";
  const PIPELINE_TOOL = "haystack.tools.pipeline_tool.PipelineTool";
  const MCP_TOOLSET = "haystack_integrations.tools.mcp.mcp_toolset.MCPToolset";
  const MCP_HTTP = "haystack_integrations.tools.mcp.mcp_tool.StreamableHttpServerInfo";
  const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

  /** A JSON schema the model can fill for a port of this Haystack type, or null (documents, messages, …). */
  function argSchema(type) {
    const simple = { str: "string", int: "integer", float: "number", bool: "boolean" };
    const t = String(type || "").replace(/\s*\|\s*None$/, "").trim();
    if (simple[t]) return { type: simple[t] };
    if (t === "Any") return {};                        // a prompt variable: whatever the model writes
    const list = /^list\[(str|int|float|bool)\]$/.exec(t);
    if (list) return { type: "array", items: { type: simple[list[1]] } };
    if (/^dict(\[|$)/.test(t)) return { type: "object" };
    return null;
  }

  /** A ComponentTool's `parameters`: only these ports are the model's to fill (the others keep the node's values). */
  function toolParameters(ports) {
    const properties = {};
    for (const p of ports) properties[p.name] = Object.assign(argSchema(p.type), { description: `${p.name} (${shortType(p.type)})` });
    return { type: "object", properties, required: ports.filter((p) => p.mandatory).map((p) => p.name) };
  }

  /** The names an agent's tools are called by (an MCP server's tools are named by the server). */
  const toolNames = (tools) => tools.filter((t) => t && t.type !== MCP_TOOLSET && t.data).map((t) => t.data.name);

  function freeToolName(base, taken) {
    const stem = String(base || "tool").toLowerCase().replace(/[^a-z0-9_-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 60) || "tool";
    let name = stem;
    for (let i = 2; taken.includes(name); i += 1) name = `${stem}_${i}`;
    return name;
  }

  const labelled = (label, control, hint) => h("div.sy-field", null, h("label.sy-label", { text: label }), control,
    hint ? h("div.sy-hint", { text: hint }) : null);

  /** The "Tools" section of an Agent node: its tools (a node, a saved workflow version, an MCP server), each
   * removable, and a dialog to add each kind. Every change is one undoable edit of the node's `tools`, the path
   * other parameter edits take, so validation, drafts and saving see it as they see any edit. */
  class AgentTools {
    constructor(inspector) {
      this.insp = inspector;
      this.ed = inspector.ed;
      this.workflowNames = null;   // workflow id → name, for the rows of workflow tools
      this.namesLoading = null;
      this.checks = new WeakMap();  // a check's result → node name → its tools (JSON) when that result was drawn
    }

    section(node) {
      const raw = node.params.tools;
      const tools = Array.isArray(raw) ? raw : [];
      const list = h("div.sy-tools");
      if (raw !== undefined && raw !== null && !Array.isArray(raw)) {
        list.appendChild(h("p.sy-field-error", { text: "'tools' is not a list: fix it with “Edit tools as JSON” below." }));
      }
      // Problems are pinned to a tool by its index: only while the tools are the ones that were checked.
      const checked = this.checkedTools(node, tools);
      const issues = checked ? this.ed.canvas.issues.byNode.get(node.name) || [] : [];
      const at = `components.${node.name}.init_parameters.tools`;
      tools.forEach((tool, index) => {
        const own = issues.filter((i) => i.field && (i.field === `${at}[${index}]` || i.field.startsWith(`${at}[${index}].`)));
        list.appendChild(this.row(tool, index, own, () => this.change(node.name, "remove tool", (all) => all.filter((_, j) => j !== index))));
      });
      if (!tools.length) list.appendChild(h("p.sy-muted", { text: "No tools yet: the agent can only answer from what it is told." }));
      const taken = () => toolNames(tools);
      const add = (tool) => this.change(node.name, "add tool", (all) => [...all, tool]);
      let json = null;
      const rawBtn = h("button.sy-link", { text: "Edit tools as JSON", onclick: () => {
        if (json) { json.remove(); json = null; return; }
        json = this.insp.jsonEditor({ name: "tools", kind: "list" }, raw, true,
          (next, unset) => this.change(node.name, "edit tools", () => (unset ? [] : next)));
        rawBtn.after(json);
      } });
      const el = this.insp.section(null, h("h3", null, "Tools", h("span.sy-count", { text: String(tools.length) })), list,
        h("div.sy-row-btns", null,
          h("button.sy-btn.sy-btn-sm", { text: "+ Node as tool", dataset: { action: "add-node-tool" }, onclick: () => this.addNodeTool(node) }),
          h("button.sy-btn.sy-btn-sm", { text: "+ Workflow as tool", dataset: { action: "add-workflow-tool" }, onclick: () => this.workflowDialog(taken(), add) }),
          h("button.sy-btn.sy-btn-sm", { text: "+ MCP server", dataset: { action: "add-mcp-tool" }, onclick: () => this.mcpDialog(add) })),
        checked === false ? h("div.sy-hint.sy-warn", { text: "The tools changed since they were checked: Validate to check them again." }) : null,
        h("div.sy-hint", { text: "The model picks a tool by its name and description: say what it does and when to use it." }), rawBtn);
      el.dataset.section = "tools";
      return el;
    }

    /** null when nothing was checked; else whether `tools` are what the last check (validate, save, a draft's
     * problems) saw — the first time a check's result is drawn, the tools on the canvas are the ones it saw. */
    checkedTools(node, tools) {
      const result = this.ed.validation;
      if (!result) return null;
      if (!this.checks.has(result)) this.checks.set(result, new Map());
      const seen = this.checks.get(result);
      const now = JSON.stringify(tools);
      if (!seen.has(node.name)) seen.set(node.name, now);
      return seen.get(node.name) === now;
    }

    /** The "Node as tool" dialog for an Agent node, with `type` (a palette entry) already picked when given: what a
     * palette item dropped on the agent's tools port on the canvas opens. */
    addNodeTool(node, type) {
      const current = this.ed.graph.nodes.get(node.name);
      if (!current) return;
      const tools = Array.isArray(current.params.tools) ? current.params.tools : [];
      this.nodeDialog(toolNames(tools), (tool) => this.change(current.name, "add tool", (all) => [...all, tool]), type);
    }

    /** One undoable edit of the node's tools, by name (an undo may have replaced the node object meanwhile). */
    change(name, label, fn) {
      const node = this.ed.graph.nodes.get(name);
      if (!node) return;
      const current = Array.isArray(node.params.tools) ? node.params.tools : [];
      this.ed.commit(label, () => { node.params.tools = fn(current); });
    }

    row(tool, index, issues, remove) {
      const d = this.describe(tool);
      const detail = h("div.sy-hint", { text: d.detail || "" });
      if (d.workflow) this.withWorkflowName(d.workflow, (name) => { if (name) detail.textContent = `${d.detail} · from “${name}”`; });
      return h("div.sy-tool-row", { dataset: { tool: String(index), kind: d.kind } },
        h("div.sy-tool-head", null, h("span.sy-badge.sy-tool-kind", { text: d.kindLabel }),
          h("b.sy-tool-name", { text: d.name || "(no name)", title: d.name || "" }),
          h("button.sy-icon-btn", { text: "×", title: "Remove this tool", "aria-label": `Remove tool ${d.name}`, onclick: remove })),
        d.description ? h("div.sy-tool-desc", { text: d.description }) : null, detail,
        issues.map((i) => h("div.sy-field-error", { text: i.message })));
    }

    /** What a tool dict is, in the words the list shows. */
    describe(tool) {
      const data = (tool && tool.data && typeof tool.data === "object") ? tool.data : {};
      const type = tool && tool.type;
      if (type === COMPONENT_TOOL) {
        const comp = data.component || {};
        const entry = this.ed.catalogEntry(comp.type);
        const fills = data.parameters && data.parameters.properties ? Object.keys(data.parameters.properties) : null;
        return { kind: "node", kindLabel: `node · ${entry ? entry.title : String(comp.type || "?").split(".").pop()}`,
          name: data.name, description: data.description,
          detail: fills ? `The model fills: ${fills.join(", ") || "nothing"}; the rest keep the node's values.` : "The model may fill every input." };
      }
      if (type === PIPELINE_TOOL) {
        const source = (((data.pipeline || {}).metadata || {}).stackyard || {}).source || {};
        const args = Object.keys(data.input_mapping || {});
        return { kind: "workflow", kindLabel: `workflow${source.version ? ` v${source.version}` : ""}`, name: data.name,
          description: data.description, workflow: source.workflow,
          detail: `Arguments: ${args.join(", ") || "none"}` };
      }
      if (type === MCP_TOOLSET) {
        const server = data.server_info || {};
        const names = Array.isArray(data.tool_names) && data.tool_names.length ? data.tool_names : null;
        const token = server.token && Array.isArray(server.token.env_vars) ? ` · token from ${server.token.env_vars.join(", ")}` : "";
        return { kind: "mcp", kindLabel: "MCP server", name: server.url,
          description: names ? `Offers the model: ${names.join(", ")}` : "Offers the model all of its tools",
          detail: `Streamable HTTP${token}` };
      }
      return { kind: "other", kindLabel: "unknown", name: String(type), description: "Not a tool an agent can use here: remove it." };
    }

    withWorkflowName(id, use) {
      if (!this.workflowNames && !this.namesLoading) {
        this.namesLoading = SY.api.rest("GET", "/api/v1/workflows")
          .then((list) => { this.workflowNames = new Map(list.map((w) => [w.id, w.name])); })
          .catch(() => { this.workflowNames = new Map(); })
          .finally(() => { this.namesLoading = null; });
      }
      if (this.workflowNames) use(this.workflowNames.get(id));
      else this.namesLoading.then(() => use(this.workflowNames.get(id)));
    }

    /** A node type from the palette as a tool, with the inputs the model may fill ticked. */
    nodeDialog(taken, add, type) {
      const entries = this.ed.catalog.filter((e) => AgentTools.canBeTool(e.type));
      const pick = h("select.sy-input", { "aria-label": "Node type" }, h("option", { value: "", text: "— choose a node —" }),
        this.ed.categories.map((cat) => {
          const items = entries.filter((e) => e.category === cat);
          return items.length ? h("optgroup", { label: cat }, items.map((e) => h("option", { value: e.type, text: e.title }))) : null;
        }));
      const name = h("input.sy-input.sy-mono", { "aria-label": "Tool name", placeholder: "search_kb", spellcheck: false });
      const description = h("textarea.sy-input", { "aria-label": "Tool description", rows: 3, placeholder: "What it does and when to use it" });
      const inputs = h("div.sy-tool-inputs");
      const error = h("div.sy-field-error");
      let entry = null;
      for (const el of [name, description]) el.addEventListener("input", () => { el.dataset.edited = "1"; });
      const showInputs = () => {
        inputs.textContent = "";
        const ports = entry && entry.ports ? entry.ports.inputs || [] : [];
        if (!entry) return append(inputs, h("div.sy-hint", { text: "Pick a node to see its inputs." }));
        if (!ports.length) {
          return append(inputs, h("div.sy-hint", { text: "Its inputs are not known here (they depend on its parameters): "
            + "the model may fill every input (parameters stay empty). Narrow them later with “Edit tools as JSON”." }));
        }
        for (const port of ports) {
          const schema = argSchema(port.type);
          append(inputs, h("label.sy-tool-input", { title: schema ? port.type : `${port.type}: not something a model writes` },
            h("input", { type: "checkbox", value: port.name, disabled: !schema, "aria-label": `The model fills ${port.name}` }),
            h("code", { text: port.name }), port.mandatory ? h("span.sy-req", { text: "*" }) : null,
            h("span.sy-muted", { text: shortType(port.type) })));
        }
        append(inputs, h("div.sy-hint", { text: "Tick the inputs the model may fill, or none to let it fill all of them. "
          + "An unticked input keeps the node's own value (a required one, *, has none)." }));
      };
      const choose = () => {
        entry = this.ed.catalogEntry(pick.value) || null;
        if (entry && !name.dataset.edited) name.value = freeToolName(entry.title, taken);
        if (entry && !description.dataset.edited) description.value = entry.description || "";
        showInputs();
      };
      pick.addEventListener("change", choose);
      if (type && AgentTools.canBeTool(type)) pick.value = type;
      choose();
      const submit = (close) => {
        const toolName = name.value.trim();
        if (!entry) { error.textContent = "Pick the node the model calls."; return; }
        if (!TOOL_NAME.test(toolName)) { error.textContent = "A tool name is 1-64 letters, digits, _ or - (the model calls the tool by it)."; return; }
        if (taken.includes(toolName)) { error.textContent = `This agent has a tool named “${toolName}” already.`; return; }
        const ticked = new Set([...inputs.querySelectorAll("input:checked")].map((box) => box.value));
        const ports = (entry.ports.inputs || []).filter((p) => ticked.has(p.name));
        close();
        add({ type: COMPONENT_TOOL, data: { component: { type: entry.type, init_parameters: clone(entry.defaults || {}) },
          name: toolName, description: description.value.trim(), parameters: ports.length ? toolParameters(ports) : null } });
      };
      modal({ title: "Node as tool", width: 520, className: "sy-tool-modal",
        body: h("div.sy-tool-form", null, labelled("Node", pick, "Its parameters start at the palette's defaults."),
          labelled("Name", name), labelled("Description", description), labelled("Inputs the model fills", inputs), error),
        actions: [{ label: "Cancel" }, { label: "Add tool", id: "add-tool", kind: "primary", onclick: submit }] });
    }

    /** A saved workflow version as a tool: the API copies it in (GET …/versions/{n}/tool). */
    workflowDialog(taken, add) {
      const wfPick = h("select.sy-input", { "aria-label": "Workflow" }, h("option", { value: "", text: "Loading workflows…" }));
      const versionPick = h("select.sy-input", { "aria-label": "Version", disabled: true });
      const name = h("input.sy-input.sy-mono", { "aria-label": "Tool name", placeholder: "price_list", spellcheck: false });
      const description = h("textarea.sy-input", { "aria-label": "Tool description", rows: 3, placeholder: "What it does and when to use it" });
      const about = h("div.sy-hint");
      const error = h("div.sy-field-error");
      for (const el of [name, description]) el.addEventListener("input", () => { el.dataset.edited = "1"; });
      let workflows = [];
      let versions = [];
      let asked = 0;
      let busy = false;
      SY.api.rest("GET", "/api/v1/workflows").then((list) => {
        workflows = list;
        this.workflowNames = new Map(list.map((w) => [w.id, w.name]));
        wfPick.textContent = "";
        append(wfPick, h("option", { value: "", text: list.length ? "— choose a workflow —" : "No workflows yet" }), list.map((w) => {
          const self = this.ed.workflow && w.id === this.ed.workflow.id;   // a workflow may not call itself
          return h("option", { value: w.id, disabled: Boolean(self || !w.latest_version),
            text: `${w.name}${self ? " (this workflow)" : w.latest_version ? "" : " (not saved)"}` });
        }));
      }).catch((err) => { error.textContent = `Workflows could not be listed: ${err.message}`; });
      const showAbout = () => {
        const v = versions.find((x) => String(x.number) === versionPick.value);
        const spec = (v && v.spec) || {};
        about.textContent = v ? `Arguments (its inputs): ${Object.keys(spec.inputs || {}).join(", ") || "none"} · `
          + `the model reads (its outputs): ${Object.keys(spec.outputs || {}).join(", ") || "none"}` : "";
      };
      wfPick.addEventListener("change", async () => {
        const wf = workflows.find((w) => w.id === wfPick.value);
        const mine = ++asked;
        versions = [];
        versionPick.textContent = "";
        versionPick.disabled = true;
        showAbout();
        if (!wf) return;
        if (!name.dataset.edited) name.value = freeToolName(wf.name, taken);
        if (!description.dataset.edited) description.value = wf.description || "";
        let found;
        try { found = await SY.api.rest("GET", `/api/v1/workflows/${encodeURIComponent(wf.id)}/versions`); } catch (err) {
          if (mine === asked) error.textContent = err.message;
          return;
        }
        if (mine !== asked) return;                  // another workflow was picked meanwhile
        versions = found.sort((a, b) => b.number - a.number);
        append(versionPick, versions.map((v) => h("option", { value: String(v.number), text: `v${v.number}${v.note ? ` — ${v.note}` : ""}` })));
        versionPick.disabled = !versions.length;
        showAbout();
      });
      versionPick.addEventListener("change", showAbout);
      const submit = async (close) => {
        if (busy) return;
        error.textContent = "";
        if (!wfPick.value || !versionPick.value) { error.textContent = "Pick a saved workflow and its version."; return; }
        const toolName = name.value.trim();
        if (taken.includes(toolName)) { error.textContent = `This agent has a tool named “${toolName}” already.`; return; }
        const query = new URLSearchParams({ name: toolName, description: description.value.trim() });
        busy = true;
        try {
          const tool = await SY.api.rest("GET", `/api/v1/workflows/${encodeURIComponent(wfPick.value)}/versions/${versionPick.value}/tool?${query}`);
          close();
          add(tool);
        } catch (err) {
          error.textContent = err.message;           // the API's own words (e.g. a name it refuses)
        } finally { busy = false; }
      };
      modal({ title: "Workflow as tool", width: 520, className: "sy-tool-modal",
        body: h("div.sy-tool-form", null, labelled("Workflow", wfPick), labelled("Version", versionPick), about,
          labelled("Name", name, "1-64 letters, digits, _ or -: the model calls the tool by it."), labelled("Description", description),
          h("div.sy-hint", { text: "The version is copied into the agent: later versions of that workflow do not change it." }), error),
        actions: [{ label: "Cancel" }, { label: "Add tool", id: "add-tool", kind: "primary", onclick: submit }] });
    }

    /** An MCP server reached over Streamable HTTP, as Haystack's MCPToolset serializes it. */
    mcpDialog(add) {
      const url = h("input.sy-input.sy-mono", { "aria-label": "MCP server URL", placeholder: "https://tools.example.com/mcp", spellcheck: false });
      const names = h("input.sy-input.sy-mono", { "aria-label": "Tool names", placeholder: "search, fetch", spellcheck: false });
      const token = h("input.sy-input.sy-mono", { "aria-label": "Token environment variable", placeholder: "MCP_TOKEN", spellcheck: false });
      const error = h("div.sy-field-error");
      const submit = (close) => {
        const address = url.value.trim();
        const wanted = names.value.split(/[\s,]+/).filter(Boolean);
        const env = token.value.trim();
        const bad = wanted.find((n) => !TOOL_NAME.test(n));
        if (!/^https?:\/\/\S+$/.test(address)) { error.textContent = "The server's Streamable HTTP address: http(s)://…"; return; }
        if (bad) { error.textContent = `“${bad}” is not a tool name (letters, digits, _ and -).`; return; }
        if (env && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) { error.textContent = "The token is named by an environment variable (letters, digits, _)."; return; }
        close();
        add({ type: MCP_TOOLSET, data: {
          server_info: { type: MCP_HTTP, url: address, token: env ? { type: "env_var", env_vars: [env], strict: true } : null,
            headers: null, timeout: 30, max_retries: 3, base_delay: 1.0, max_delay: 30.0, oauth_config: null },
          tool_names: wanted.length ? wanted : null, connection_timeout: 30.0, invocation_timeout: 30.0, eager_connect: false,
          inputs_from_state: null, outputs_to_state: null, outputs_to_string: null } });
      };
      modal({ title: "MCP server", width: 520, className: "sy-tool-modal",
        body: h("div.sy-tool-form", null,
          labelled("Server URL", url, "Only servers an operator allows (STACKYARD_MCP_SERVERS) pass validation."),
          labelled("Tool names (optional)", names, "Comma-separated; empty offers the model all of the server's tools."),
          labelled("Token (optional)", token, "The name of an environment variable on the workers holding the token; the token itself is never stored."),
          error),
        actions: [{ label: "Cancel" }, { label: "Add tool", id: "add-tool", kind: "primary", onclick: submit }] });
    }
  }

  /** Whether a palette entry of this type can be an agent's tool ("Node as tool" offers every node but an Agent). */
  AgentTools.canBeTool = (type) => Boolean(type) && type !== AGENT;
  AgentTools.AGENT = AGENT;

  /** What a tool's chip on the canvas shows: its kind (letter and colour), a short name (an MCP server: its host)
   * and a line on hover. `entryOf` finds a palette entry by type. */
  AgentTools.chip = function (tool, entryOf) {
    const data = (tool && tool.data && typeof tool.data === "object") ? tool.data : {};
    const type = tool && tool.type;
    const name = String(data.name || "(no name)");
    const about = typeof data.description === "string" && data.description ? ` — ${data.description}` : "";
    if (type === COMPONENT_TOOL) {
      const comp = (data.component && typeof data.component === "object") ? data.component : {};
      const entry = entryOf(comp.type);
      const title = entry ? entry.title : String(comp.type || "?").split(".").pop() || "?";
      return { kind: "node", cat: entry ? entry.category : "unknown", letter: title[0].toUpperCase(), name,
        title: `${name} · node as tool (${title})${about}` };
    }
    if (type === PIPELINE_TOOL) return { kind: "workflow", letter: "W", name, title: `${name} · workflow as tool${about}` };
    if (type === MCP_TOOLSET) {
      const url = String((data.server_info && data.server_info.url) || "");
      let host = url;
      try { host = new URL(url).host || url; } catch (_) { /* not a URL: shown as written (validation says why) */ }
      const names = Array.isArray(data.tool_names) && data.tool_names.length ? data.tool_names.join(", ") : "all of its tools";
      return { kind: "mcp", letter: "M", name: host || "(no URL)", title: `MCP server ${url} · offers the model ${names}` };
    }
    return { kind: "other", letter: "?", name: String(type), title: "Not a tool an agent can use here: remove it in the inspector." };
  };

  SY.AgentTools = AgentTools;
})(window.Stackyard = window.Stackyard || {});
