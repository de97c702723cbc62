/* Stackyard editor: drawing the graph. Nodes are absolutely positioned DIVs, edges one SVG layer, both inside a
 * "world" element moved by one CSS transform (pan/zoom). Port positions are computed, never measured, so a drag
 * touches only the moved nodes and their edges, once per animation frame. */
(function (SY) {
  "use strict";
  const { h, append, svg, clamp, fmtMs, shortType, typeFamily } = SY.util;

  const W = 240;        // node width
  const HEAD = 48;      // node header height
  const ROW = 24;       // port row height
  const PAD = 6;        // body padding above the first row
  const FOOT = 8;
  const ORIGIN = 50000; // the edge SVG's offset, so it can draw at negative coordinates
  // An Agent's tools hang below it: the tools port on its bottom edge, then one chip per tool (canvas.css draws the
  // dashed line from the port to each chip with these sizes).
  const TOOLS_TOP = 14; // bottom edge (the port) to the first chip
  const CHIP = 26;      // a chip and the gap under it
  const MAX_CHIPS = 8;  // more tools than this show as "+ N more"

  const STATE_LABEL = { queued: "queued", running: "running", done: "done", failed: "failed", skipped: "not reached" };

  function flash(portEl) {
    if (!portEl) return;
    portEl.classList.add("sy-refused");
    setTimeout(() => portEl.classList.remove("sy-refused"), 1600);
  }

  class Canvas {
    constructor(editor, viewport) {
      this.ed = editor;
      this.viewport = viewport;
      this.view = { x: 40, y: 40, k: 1 };
      this.world = h("div.sy-world");
      this.edgeSvg = svg("svg", { class: "sy-edges", width: 2 * ORIGIN, height: 2 * ORIGIN });
      this.edgeGroup = svg("g", { transform: `translate(${ORIGIN},${ORIGIN})` });
      this.edgeSvg.appendChild(this.edgeGroup);
      this.tempPath = svg("path", { class: "sy-edge-temp" });
      this.noteLayer = h("div.sy-notes");
      this.nodeLayer = h("div.sy-nodes");
      append(this.world, this.noteLayer, this.edgeSvg, this.nodeLayer);
      viewport.appendChild(this.world);
      this.nodeEls = new Map();
      this.edgeEls = new Map();
      this.noteEls = new Map();
      this.issues = { byNode: new Map(), byPort: new Map() };
      this.statuses = {};
      this.expanded = new Set();
      this.applyView();
    }

    // --- geometry -----------------------------------------------------------------------------
    layoutOf(node) {
      const connected = new Set(this.ed.graph.edges.filter((e) => e.receiver.startsWith(node.name + "."))
        .map((e) => e.receiver.slice(node.name.length + 1)));
      const inputs = node.ports.inputs || [];
      const shown = inputs.filter((p) => this.expanded.has(node.name) || p.mandatory || connected.has(p.name)
        || this.ed.graph.inputAlias(`${node.name}.${p.name}`) || this.portIssue(node, p.name));
      const hidden = inputs.length - shown.length;
      const outputs = node.ports.outputs || [];
      const rows = Math.max(shown.length, outputs.length) + (hidden || this.expanded.has(node.name) && inputs.some((p) => !p.mandatory) ? 1 : 0);
      const card = HEAD + PAD + Math.max(rows, 1) * ROW + FOOT;
      const tools = this.toolsOf(node);
      const chips = tools ? Math.min(tools.length, MAX_CHIPS) + (tools.length > MAX_CHIPS ? 1 : 0) : 0;
      // `height` takes in the chips below an agent, so layout, fit and box-select leave them room.
      return { inputs: shown, outputs, hidden, rows, card, tools, height: card + (tools ? TOOLS_TOP + chips * CHIP : 0) };
    }

    /** An Agent node's tools (its `tools` parameter; [] when it is not a list), or null for any other node. */
    toolsOf(node) {
      if (node.type !== SY.AgentTools.AGENT) return null;
      return Array.isArray(node.params.tools) ? node.params.tools : [];
    }

    /** Whether an issue is about an agent's `tools` parameter (validation pins it to a port named "tools"): the
     * tools port's problem, not its data input's. */
    isToolsIssue(node, issue) {
      if (node.type !== SY.AgentTools.AGENT || !issue.field) return false;
      const at = `components.${node.name}.init_parameters.tools`;
      return issue.field === at || (issue.field.startsWith(at) && "[.".includes(issue.field[at.length]));
    }

    portIssue(node, socket) {
      const issue = this.issues.byPort.get(`${node.name}.${socket}`);
      return issue && !this.isToolsIssue(node, issue) ? issue : null;
    }

    portPoint(ref, kind) {
      const i = ref.indexOf(".");
      const node = this.ed.graph.nodes.get(ref.slice(0, i));
      if (!node) return null;
      const socket = ref.slice(i + 1);
      const layout = node._layout || (node._layout = this.layoutOf(node));
      const list = kind === "out" ? layout.outputs : layout.inputs;
      const index = list.findIndex((p) => p.name === socket);
      if (index < 0) return { x: kind === "out" ? node.x + W : node.x, y: node.y + HEAD / 2, dangling: true };
      return { x: kind === "out" ? node.x + W : node.x, y: node.y + HEAD + PAD + index * ROW + ROW / 2 };
    }

    nodeBox(node) {
      const layout = node._layout || (node._layout = this.layoutOf(node));
      return { x: node.x, y: node.y, w: W, h: layout.height };
    }

    screenToWorld(clientX, clientY) {
      const r = this.viewport.getBoundingClientRect();
      return { x: (clientX - r.left - this.view.x) / this.view.k, y: (clientY - r.top - this.view.y) / this.view.k };
    }

    // --- view ---------------------------------------------------------------------------------
    applyView() {
      const { x, y, k } = this.view;
      this.world.style.transform = `translate(${x}px, ${y}px) scale(${k})`;
      this.viewport.style.backgroundPosition = `${x}px ${y}px`;
      this.viewport.style.backgroundSize = `${22 * k}px ${22 * k}px`;
      if (this.onview) this.onview(this.view);
    }

    zoomAt(k, clientX, clientY) {
      const r = this.viewport.getBoundingClientRect();
      const cx = clientX === undefined ? r.width / 2 : clientX - r.left;
      const cy = clientY === undefined ? r.height / 2 : clientY - r.top;
      const next = clamp(k, 0.15, 2.5);
      this.view.x = cx - ((cx - this.view.x) * next) / this.view.k;
      this.view.y = cy - ((cy - this.view.y) * next) / this.view.k;
      this.view.k = next;
      this.applyView();
    }

    bounds(names) {
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const node of this.ed.graph.nodes.values()) {
        if (names && !names.includes(node.name)) continue;
        const b = this.nodeBox(node);
        x0 = Math.min(x0, b.x); y0 = Math.min(y0, b.y); x1 = Math.max(x1, b.x + b.w); y1 = Math.max(y1, b.y + b.h);
      }
      if (!names) {
        for (const n of this.ed.graph.notes) {
          x0 = Math.min(x0, n.x); y0 = Math.min(y0, n.y); x1 = Math.max(x1, n.x + (n.w || 200)); y1 = Math.max(y1, n.y + (n.h || 120));
        }
      }
      return x0 === Infinity ? null : { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
    }

    fit(names, maxK = 1.1) {
      const b = this.bounds(names);
      const r = this.viewport.getBoundingClientRect();
      if (!b || !r.width) return;
      const pad = 60;
      const k = clamp(Math.min((r.width - 2 * pad) / b.w, (r.height - 2 * pad) / b.h, maxK), 0.15, 2.5);
      this.view = { k, x: (r.width - b.w * k) / 2 - b.x * k, y: (r.height - b.h * k) / 2 - b.y * k };
      this.applyView();
    }

    centerOn(name) {
      const node = this.ed.graph.nodes.get(name);
      if (!node) return;
      const r = this.viewport.getBoundingClientRect();
      const b = this.nodeBox(node);
      const k = Math.max(this.view.k, 0.8);
      this.view = { k, x: r.width / 2 - (b.x + b.w / 2) * k, y: r.height / 2 - (b.y + b.h / 2) * k };
      this.applyView();
    }

    // --- full render ----------------------------------------------------------------------------
    render() {
      this.nodeLayer.textContent = "";
      this.edgeGroup.textContent = "";
      this.noteLayer.textContent = "";
      this.nodeEls.clear();
      this.edgeEls.clear();
      this.noteEls.clear();
      const nodes = document.createDocumentFragment();
      for (const node of this.ed.graph.nodes.values()) {
        node._layout = this.layoutOf(node);
        const el = this.buildNode(node);
        this.nodeEls.set(node.name, el);
        nodes.appendChild(el);
      }
      this.nodeLayer.appendChild(nodes);
      for (const edge of this.ed.graph.edges) this.drawEdge(edge);
      this.edgeGroup.appendChild(this.tempPath);
      for (const note of this.ed.graph.notes) this.drawNote(note);
      this.renderSelection();
      if (this.onrender) this.onrender();
    }

    /** Re-draw some nodes (ports, params, issues changed) and their edges. */
    refreshNodes(names) {
      for (const name of names) {
        const node = this.ed.graph.nodes.get(name);
        const old = this.nodeEls.get(name);
        if (!node) { if (old) old.remove(); this.nodeEls.delete(name); continue; }
        node._layout = this.layoutOf(node);
        const el = this.buildNode(node);
        if (old) old.replaceWith(el); else this.nodeLayer.appendChild(el);
        this.nodeEls.set(name, el);
      }
      this.updateEdges(names);
      this.renderSelection();
    }

    buildNode(node) {
      const entry = this.ed.catalogEntry(node.type);
      const layout = node._layout;
      const nodeIssues = this.issues.byNode.get(node.name) || [];
      const el = h("div.sy-node", { dataset: { name: node.name, cat: entry ? entry.category : "other" },
        style: { transform: `translate(${node.x}px, ${node.y}px)`, width: `${W}px` } });
      if (nodeIssues.length) el.classList.add("sy-has-issue");
      if (node.ports.problem) el.classList.add("sy-broken");
      const status = this.statuses[node.name];
      const head = h("div.sy-node-head", null,
        h("span.sy-node-icon", { text: (entry ? entry.title : node.type.split(".").pop())[0].toUpperCase() }),
        h("div.sy-node-titles", null,
          h("div.sy-node-name", { text: node.name }),
          h("div.sy-node-type", { text: entry ? entry.title : node.type.split(".").pop(), title: node.type })),
        this.statusBadge(status),
        nodeIssues.length ? h("span.sy-node-issues", { text: String(nodeIssues.length), title: nodeIssues.map((i) => i.message).join("\n") }) : null);
      const body = h("div.sy-node-body", { style: { height: `${layout.card - HEAD}px` } });
      layout.inputs.forEach((port, i) => body.appendChild(this.buildPort(node, port, "in", i)));
      layout.outputs.forEach((port, i) => body.appendChild(this.buildPort(node, port, "out", i)));
      if (layout.hidden || this.expanded.has(node.name)) {
        const rowIndex = Math.max(layout.inputs.length, layout.outputs.length);
        if (layout.hidden || (node.ports.inputs || []).some((p) => !p.mandatory)) {
          body.appendChild(h("button.sy-more", { style: { top: `${PAD + rowIndex * ROW}px` }, dataset: { toggle: node.name },
            text: this.expanded.has(node.name) ? "− hide optional inputs" : `+ ${layout.hidden} optional input${layout.hidden === 1 ? "" : "s"}` }));
        }
      }
      append(el, head, body);
      const message = nodeIssues[0] ? nodeIssues[0].message : node.ports.problem;
      if (message) el.appendChild(h("div.sy-node-msg", { text: message, title: message }));
      if (layout.tools) el.appendChild(this.buildTools(node, layout.tools));
      return el;
    }

    /** An agent's tools port and its tools' chips: drawn from its parameters, never nodes of the workflow. A chip is
     * part of the agent's element, so clicking or dragging one selects or moves the agent. */
    buildTools(node, tools) {
      const entryOf = (type) => this.ed.catalogEntry(type);
      const chips = tools.slice(0, MAX_CHIPS).map((tool, i) => {
        const chip = SY.AgentTools.chip(tool, entryOf);
        return h("div.sy-tool-chip", { dataset: { tool: String(i), kind: chip.kind }, title: chip.title },
          h("span.sy-tool-icon", { dataset: { letter: chip.letter, cat: chip.cat || chip.kind } }),
          h("span.sy-tool-chip-name", { text: chip.name }));
      });
      const more = tools.length - chips.length;
      const issues = (this.issues.byNode.get(node.name) || []).filter((i) => this.isToolsIssue(node, i));
      const port = h("div.sy-tools-port", { dataset: { node: node.name, kind: "tools" },
        title: [...issues.map((i) => i.message),
          "Tools, not data: drop a node from the palette here to give the agent a tool (edit them in the inspector)"].join("\n") },
        h("span.sy-tools-socket"), h("span.sy-tools-label", { text: "tools" }));
      if (issues.length) port.classList.add("sy-port-issue");
      return h("div.sy-agent-tools", { dataset: { node: node.name } }, port,
        h("div.sy-tool-chips", null, chips,
          more ? h("div.sy-tool-more", { text: `+ ${more} more`, title: "Select the agent to see all of its tools" }) : null,
          h("div.sy-tool-drop", { text: "drop: a node as a tool" })));
    }

    buildPort(node, port, kind, index) {
      const ref = `${node.name}.${port.name}`;
      const issue = kind === "in" ? this.portIssue(node, port.name) : this.issues.byPort.get(ref);
      const el = h(`div.sy-port.sy-${kind}`, { dataset: { port: port.name, kind, node: node.name },
        style: { top: `${PAD + index * ROW}px` } },
        h("span.sy-dot", { dataset: { fam: typeFamily(port.type) } }),
        h("span.sy-port-label", { text: port.name }));
      if (kind === "in" && port.mandatory) el.classList.add("sy-required");
      if (issue) el.classList.add("sy-port-issue");
      const alias = kind === "in" ? this.ed.graph.inputAlias(ref) : this.ed.graph.outputAlias(ref);
      if (alias) el.appendChild(h("span.sy-io-chip", { text: kind === "in" ? `${alias} →` : `→ ${alias}`,
        title: kind === "in" ? `Workflow input "${alias}"` : `Workflow output "${alias}"` }));
      return el;
    }

    statusBadge(status) {
      if (!status) return null;
      const text = status.state === "done" || status.state === "failed" ? fmtMs(status.duration_ms) : STATE_LABEL[status.state] || status.state;
      return h("button.sy-node-status", { dataset: { state: status.state }, title: `${STATE_LABEL[status.state] || status.state}${status.error ? ": " + status.error : ""} — click to see the output`, text });
    }

    // --- edges ----------------------------------------------------------------------------------
    edgePath(a, b) {
      const dx = Math.max(40, Math.abs(b.x - a.x) * 0.5);
      return `M${a.x},${a.y} C${a.x + dx},${a.y} ${b.x - dx},${b.y} ${b.x},${b.y}`;
    }

    drawEdge(edge) {
      const a = this.portPoint(edge.sender, "out");
      const b = this.portPoint(edge.receiver, "in");
      if (!a || !b) return;
      let entry = this.edgeEls.get(edge.id);
      if (!entry) {
        const g = svg("g", { class: "sy-edge", "data-id": edge.id });
        const hit = svg("path", { class: "sy-edge-hit" });
        const line = svg("path", { class: "sy-edge-line" });
        const title = svg("title");
        title.textContent = `${edge.sender} → ${edge.receiver}`;
        append(g, title, hit, line);
        this.edgeGroup.insertBefore(g, this.tempPath.parentNode === this.edgeGroup ? this.tempPath : null);
        entry = { g, hit, line };
        this.edgeEls.set(edge.id, entry);
        const senderNode = this.ed.graph.nodes.get(edge.sender.split(".")[0]);
        const port = senderNode && (senderNode.ports.outputs || []).find((p) => `${senderNode.name}.${p.name}` === edge.sender);
        g.dataset.fam = port ? typeFamily(port.type) : "any";
      }
      const d = this.edgePath(a, b);
      entry.hit.setAttribute("d", d);
      entry.line.setAttribute("d", d);
      entry.g.classList.toggle("sy-dangling", Boolean(a.dangling || b.dangling));
    }

    updateEdges(names) {
      const set = names ? new Set(names) : null;
      const live = new Set(this.ed.graph.edges.map((e) => e.id));
      for (const [id, entry] of this.edgeEls) if (!live.has(id)) { entry.g.remove(); this.edgeEls.delete(id); }
      for (const edge of this.ed.graph.edges) {
        if (set && !set.has(edge.sender.split(".")[0]) && !set.has(edge.receiver.split(".")[0]) && this.edgeEls.has(edge.id)) continue;
        this.drawEdge(edge);
      }
    }

    showTempEdge(from, to, reverse) {
      this.tempPath.setAttribute("d", reverse ? this.edgePath(to, from) : this.edgePath(from, to));
      this.tempPath.style.display = "";
    }

    hideTempEdge() {
      this.tempPath.style.display = "none";
    }

    // --- notes ----------------------------------------------------------------------------------
    drawNote(note) {
      const text = h("textarea.sy-note-text", { value: note.text || "", placeholder: "Note…", spellcheck: false });
      const el = h("div.sy-note", { dataset: { note: note.id },
        style: { transform: `translate(${note.x}px, ${note.y}px)`, width: `${note.w || 200}px`, height: `${note.h || 120}px` } },
        h("div.sy-note-grip", { title: "Drag to move" }), text);
      this.noteEls.set(note.id, el);
      this.noteLayer.appendChild(el);
      return el;
    }

    // --- moving without re-rendering ----------------------------------------------------------------
    moveNode(node) {
      const el = this.nodeEls.get(node.name);
      if (el) el.style.transform = `translate(${node.x}px, ${node.y}px)`;
    }

    moveNote(note) {
      const el = this.noteEls.get(note.id);
      if (el) el.style.transform = `translate(${note.x}px, ${note.y}px)`;
    }

    // --- selection, issues, statuses ------------------------------------------------------------------
    renderSelection() {
      const sel = this.ed.selection;
      for (const [name, el] of this.nodeEls) el.classList.toggle("sy-selected", sel.has(`n:${name}`));
      for (const [id, entry] of this.edgeEls) entry.g.classList.toggle("sy-selected", sel.has(`e:${id}`));
      for (const [id, el] of this.noteEls) el.classList.toggle("sy-selected", sel.has(`s:${id}`));
    }

    setIssues(issues) {
      const touched = new Set([...this.issues.byNode.keys()]);
      this.issues = { byNode: new Map(), byPort: new Map() };
      for (const issue of issues || []) {
        if (!issue.node || !this.ed.graph.nodes.has(issue.node)) continue;
        touched.add(issue.node);
        if (!this.issues.byNode.has(issue.node)) this.issues.byNode.set(issue.node, []);
        this.issues.byNode.get(issue.node).push(issue);
        if (issue.port) this.issues.byPort.set(`${issue.node}.${issue.port}`, issue);
      }
      this.refreshNodes([...touched].filter((n) => this.ed.graph.nodes.has(n) || this.nodeEls.has(n)));
    }

    setStatuses(statuses) {
      const changed = [];
      for (const name of new Set([...Object.keys(this.statuses), ...Object.keys(statuses)])) {
        if (JSON.stringify(this.statuses[name]) !== JSON.stringify(statuses[name])) changed.push(name);
      }
      this.statuses = statuses;
      for (const name of changed) {
        const el = this.nodeEls.get(name);
        if (!el) continue;
        const head = el.querySelector(".sy-node-head");
        const old = head.querySelector(".sy-node-status");
        const badge = this.statusBadge(statuses[name]);
        if (old && badge) old.replaceWith(badge);
        else if (old) old.remove();
        else if (badge) head.insertBefore(badge, head.querySelector(".sy-node-issues"));
        el.dataset.state = statuses[name] ? statuses[name].state : "";
      }
    }

    toggleExpanded(name) {
      if (this.expanded.has(name)) this.expanded.delete(name); else this.expanded.add(name);
      this.refreshNodes([name]);
    }

    flashPort(ref, kind) {
      const [name, port] = [ref.slice(0, ref.indexOf(".")), ref.slice(ref.indexOf(".") + 1)];
      const el = this.nodeEls.get(name);
      flash(el && [...el.querySelectorAll(`.sy-port.sy-${kind}`)].find((p) => p.dataset.port === port));
    }

    /** An agent's tools port, refusing an edge (tools are not data). */
    flashTools(name) {
      const el = this.nodeEls.get(name);
      flash(el && el.querySelector(".sy-tools-port"));
    }
  }

  SY.Canvas = Canvas;
  SY.layout = { W, HEAD, ROW, PAD };
})(window.Stackyard = window.Stackyard || {});
