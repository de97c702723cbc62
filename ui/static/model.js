/* Stackyard editor: the graph being edited (nodes, edges, declared inputs/outputs, notes) and undo/redo.
 *
 * The graph is the workflow spec in a shape that is cheap to edit; toSpec()/fromSpec() convert. Canvas data
 * (positions, notes) goes to metadata.stackyard, so an exported file stays a plain Haystack pipeline. */
(function (SY) {
  "use strict";
  const { clone } = SY.util;
  const META = "stackyard";

  const edgeId = (sender, receiver) => `${sender}->${receiver}`;
  // A node's "_layout" is the canvas's cache of its computed size, never part of the graph.
  const plain = (key, value) => (key === "_layout" ? undefined : value);
  const copy = (value) => JSON.parse(JSON.stringify(value, plain));
  const splitRef = (ref) => {
    const i = String(ref).indexOf(".");
    return i < 0 ? [ref, null] : [ref.slice(0, i), ref.slice(i + 1)];
  };

  class Graph {
    constructor() {
      this.nodes = new Map();     // name → {name, type, params, x, y, ports: {inputs, outputs, error?}}
      this.edges = [];            // {id, sender, receiver}
      this.inputs = {};           // alias → ["node.socket", ...]
      this.outputs = {};          // alias → "node.socket"
      this.notes = [];            // {id, text, x, y, w, h}
      this.chat = {};             // chat app roles: message, history (inputs), reply, sources (outputs)
      this.metadata = {};         // everything else under metadata, kept as loaded
      this.extra = {};            // max_runs_per_component, connection_type_validation, streaming_components
    }

    static fromSpec(spec, ports) {
      const g = new Graph();
      spec = spec || {};
      g.metadata = clone(spec.metadata || {});
      const canvas = (g.metadata[META] && typeof g.metadata[META] === "object") ? g.metadata[META] : {};
      const positions = canvas.positions || {};
      for (const [name, comp] of Object.entries(spec.components || {})) {
        const pos = positions[name];
        g.nodes.set(name, { name, type: comp.type, params: clone(comp.init_parameters || {}),
          x: pos ? pos[0] : null, y: pos ? pos[1] : null, ports: (ports && ports[name]) || { inputs: [], outputs: [] } });
      }
      for (const c of spec.connections || []) g.edges.push({ id: edgeId(c.sender, c.receiver), sender: c.sender, receiver: c.receiver });
      g.inputs = clone(spec.inputs || {});
      g.outputs = clone(spec.outputs || {});
      g.notes = clone(canvas.notes || []);
      g.chat = (canvas.chat && typeof canvas.chat === "object") ? clone(canvas.chat) : {};
      for (const key of ["max_runs_per_component", "connection_type_validation", "streaming_components"]) {
        if (spec[key] !== undefined && spec[key] !== null) g.extra[key] = spec[key];
      }
      return g;
    }

    toSpec() {
      const components = {};
      const positions = {};
      for (const node of this.nodes.values()) {
        components[node.name] = { type: node.type, init_parameters: node.params };
        if (node.x !== null) positions[node.name] = [Math.round(node.x), Math.round(node.y)];
      }
      const metadata = clone(this.metadata);
      metadata[META] = Object.assign({}, metadata[META] || {}, { positions, notes: this.notes });
      const chat = Object.fromEntries(Object.entries(this.chat).filter(([, v]) => v));
      if (Object.keys(chat).length) metadata[META].chat = chat; else delete metadata[META].chat;
      const spec = {
        components,
        connections: this.edges.map((e) => ({ sender: e.sender, receiver: e.receiver })),
        inputs: this.inputs,
        outputs: this.outputs,
        metadata,
      };
      return Object.assign(spec, this.extra);
    }

    /** Everything undo needs (ports included, so undoing a template edit restores its ports). */
    snapshot() {
      return JSON.stringify({ nodes: [...this.nodes.values()], edges: this.edges, inputs: this.inputs,
        outputs: this.outputs, notes: this.notes, extra: this.extra, chat: this.chat }, plain);
    }

    restore(text) {
      const s = JSON.parse(text);
      this.nodes = new Map(s.nodes.map((n) => [n.name, n]));
      this.edges = s.edges;
      this.inputs = s.inputs;
      this.outputs = s.outputs;
      this.notes = s.notes;
      this.extra = s.extra;
      this.chat = s.chat || {};
    }

    uniqueName(base) {
      const stem = String(base || "node").toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, "") || "node";
      if (!this.nodes.has(stem)) return stem;
      let i = 2;
      while (this.nodes.has(`${stem}_${i}`)) i += 1;
      return `${stem}_${i}`;
    }

    addNode(node) {
      this.nodes.set(node.name, node);
      return node;
    }

    edgesOf(name) {
      return this.edges.filter((e) => splitRef(e.sender)[0] === name || splitRef(e.receiver)[0] === name);
    }

    removeNodes(names) {
      const gone = new Set(names);
      for (const name of gone) this.nodes.delete(name);
      this.edges = this.edges.filter((e) => !gone.has(splitRef(e.sender)[0]) && !gone.has(splitRef(e.receiver)[0]));
      for (const [alias, refs] of Object.entries(this.inputs)) {
        const kept = refs.filter((ref) => !gone.has(splitRef(ref)[0]));
        if (kept.length) this.inputs[alias] = kept; else delete this.inputs[alias];
      }
      for (const [alias, ref] of Object.entries(this.outputs)) if (gone.has(splitRef(ref)[0])) delete this.outputs[alias];
    }

    renameNode(oldName, newName) {
      const node = this.nodes.get(oldName);
      const rename = (ref) => {
        const [n, s] = splitRef(ref);
        return n === oldName ? `${newName}.${s}` : ref;
      };
      const entries = [...this.nodes.entries()].map(([k, v]) => (k === oldName ? [newName, v] : [k, v]));
      node.name = newName;
      this.nodes = new Map(entries);
      for (const e of this.edges) {
        e.sender = rename(e.sender);
        e.receiver = rename(e.receiver);
        e.id = edgeId(e.sender, e.receiver);
      }
      for (const alias of Object.keys(this.inputs)) this.inputs[alias] = this.inputs[alias].map(rename);
      for (const alias of Object.keys(this.outputs)) this.outputs[alias] = rename(this.outputs[alias]);
    }

    addEdge(sender, receiver) {
      const edge = { id: edgeId(sender, receiver), sender, receiver };
      if (!this.edges.some((e) => e.id === edge.id)) this.edges.push(edge);
      return edge;
    }

    removeEdges(ids) {
      const gone = new Set(ids);
      this.edges = this.edges.filter((e) => !gone.has(e.id));
    }

    /** The workflow-input alias a node's input socket is declared under, if any. */
    inputAlias(ref) {
      return Object.keys(this.inputs).find((alias) => this.inputs[alias].includes(ref)) || null;
    }

    outputAlias(ref) {
      return Object.keys(this.outputs).find((alias) => this.outputs[alias] === ref) || null;
    }

    setInputAlias(ref, alias) {
      for (const key of Object.keys(this.inputs)) {
        this.inputs[key] = this.inputs[key].filter((r) => r !== ref);
        if (!this.inputs[key].length) delete this.inputs[key];
      }
      if (alias) (this.inputs[alias] = this.inputs[alias] || []).push(ref);
    }

    setOutputAlias(ref, alias) {
      for (const key of Object.keys(this.outputs)) if (this.outputs[key] === ref) delete this.outputs[key];
      if (alias) this.outputs[alias] = ref;
    }

    /** The sub-graph of `names` (and the edges among them) for the clipboard. */
    extract(names, noteIds) {
      const set = new Set(names);
      return {
        nodes: [...set].filter((n) => this.nodes.has(n)).map((n) => copy(this.nodes.get(n))),
        edges: this.edges.filter((e) => set.has(splitRef(e.sender)[0]) && set.has(splitRef(e.receiver)[0])).map(clone),
        notes: this.notes.filter((n) => (noteIds || []).includes(n.id)).map(clone),
      };
    }
  }

  /** Undo/redo as whole-graph snapshots: simple, and small even at hundreds of nodes. */
  class History {
    constructor(graph, onchange) {
      this.graph = graph;
      this.undoStack = [];
      this.redoStack = [];
      this.onchange = onchange;
      this.limit = 200;
    }

    reset(graph) {
      this.graph = graph;
      this.undoStack = [];
      this.redoStack = [];
    }

    /** Record the state before a change made by `fn` (or pass a snapshot taken before a gesture). */
    commit(label, fn, before) {
      const snap = before || this.graph.snapshot();
      if (fn) fn();
      if (snap === this.graph.snapshot()) return false;
      this.undoStack.push({ label, snap });
      if (this.undoStack.length > this.limit) this.undoStack.shift();
      this.redoStack = [];
      this.onchange(label);
      return true;
    }

    undo() {
      const entry = this.undoStack.pop();
      if (!entry) return null;
      this.redoStack.push({ label: entry.label, snap: this.graph.snapshot() });
      this.graph.restore(entry.snap);
      this.onchange(`undo ${entry.label}`, true);
      return entry.label;
    }

    redo() {
      const entry = this.redoStack.pop();
      if (!entry) return null;
      this.undoStack.push({ label: entry.label, snap: this.graph.snapshot() });
      this.graph.restore(entry.snap);
      this.onchange(`redo ${entry.label}`, true);
      return entry.label;
    }
  }

  SY.model = { Graph, History, edgeId, splitRef };
})(window.Stackyard = window.Stackyard || {});
