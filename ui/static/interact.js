/* Stackyard editor: pointer and keyboard gestures on the canvas — drag, pan, zoom, box-select, connect,
 * drop from the palette, port tooltips, shortcuts. Moves are applied once per animation frame. */
(function (SY) {
  "use strict";
  const { h, append, clamp, toast } = SY.util;

  function install(ed) {
    const canvas = ed.canvas;
    const vp = canvas.viewport;
    let gesture = null;      // the active pointer gesture
    let frame = 0;
    let lastPointer = { x: 0, y: 0 };

    const schedule = (fn) => {
      if (frame) cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => { frame = 0; fn(); });
    };

    // --- pointer down: decide what this gesture is ------------------------------------------------
    vp.addEventListener("pointerdown", (e) => {
      if (e.button === 2) return;
      hideTip();
      const t = e.target;
      lastPointer = { x: e.clientX, y: e.clientY };
      if (t.closest(".sy-more")) return;                       // handled on click
      if (t.closest(".sy-node-status")) return;                // handled on click
      if (t.closest(".sy-note-text")) { ed.select([`s:${t.closest(".sy-note").dataset.note}`]); return; }
      const port = t.closest(".sy-port");
      if (port && e.button === 0) return startConnect(e, port);
      const nodeEl = t.closest(".sy-node");
      const noteEl = t.closest(".sy-note");
      const edgeEl = t.closest(".sy-edge");
      if ((nodeEl || noteEl) && e.button === 0) {
        const key = nodeEl ? `n:${nodeEl.dataset.name}` : `s:${noteEl.dataset.note}`;
        if (e.shiftKey || e.metaKey || e.ctrlKey) ed.toggleSelect(key);
        else if (!ed.selection.has(key)) ed.select([key]);
        // A node clicked is a node to inspect, whichever tab (problems, history) the side panel shows.
        if (nodeEl && !(e.shiftKey || e.metaKey || e.ctrlKey) && ed.side.current !== "inspect") ed.side.show("inspect");
        return startDrag(e);
      }
      if (edgeEl && e.button === 0) {
        const key = `e:${edgeEl.dataset.id}`;
        if (e.shiftKey || e.metaKey || e.ctrlKey) ed.toggleSelect(key); else ed.select([key]);
        return;
      }
      if (e.shiftKey && e.button === 0) return startBox(e);
      startPan(e);
    });

    vp.addEventListener("click", (e) => {
      const more = e.target.closest(".sy-more");
      if (more) { canvas.toggleExpanded(more.dataset.toggle); return; }
      const badge = e.target.closest(".sy-node-status");
      if (badge) ed.runs.showNodeOutput(badge.closest(".sy-node").dataset.name);
    });

    vp.addEventListener("dblclick", (e) => {
      const nodeEl = e.target.closest(".sy-node");
      if (nodeEl && !e.target.closest(".sy-port")) { ed.side.show("inspect"); return; }
      if (!nodeEl && !e.target.closest(".sy-note") && !e.target.closest(".sy-edge")) {
        ed.addNote(canvas.screenToWorld(e.clientX, e.clientY));
      }
    });

    function capture(e, g) {
      gesture = g;
      try { vp.setPointerCapture(e.pointerId); } catch (_) { /* synthetic events */ }
    }

    function startDrag(e) {
      const start = canvas.screenToWorld(e.clientX, e.clientY);
      const nodes = [...ed.selection].filter((k) => k.startsWith("n:")).map((k) => ed.graph.nodes.get(k.slice(2))).filter(Boolean);
      const notes = [...ed.selection].filter((k) => k.startsWith("s:")).map((k) => ed.graph.notes.find((n) => n.id === k.slice(2))).filter(Boolean);
      capture(e, { kind: "drag", start, before: ed.graph.snapshot(), moved: false,
        nodes: nodes.map((n) => ({ n, x: n.x, y: n.y })), notes: notes.map((n) => ({ n, x: n.x, y: n.y })) });
    }

    function startPan(e) {
      capture(e, { kind: "pan", sx: e.clientX, sy: e.clientY, vx: canvas.view.x, vy: canvas.view.y, moved: false });
      vp.classList.add("sy-panning");
    }

    function startBox(e) {
      const r = vp.getBoundingClientRect();
      const box = h("div.sy-box");
      vp.appendChild(box);
      capture(e, { kind: "box", sx: e.clientX - r.left, sy: e.clientY - r.top, box, additive: new Set(ed.selection) });
    }

    function startConnect(e, portEl) {
      const kind = portEl.dataset.kind;
      const ref = `${portEl.dataset.node}.${portEl.dataset.port}`;
      const from = canvas.portPoint(ref, kind);
      capture(e, { kind: "connect", ref, portKind: kind, from });
      vp.classList.add("sy-connecting", kind === "out" ? "sy-want-in" : "sy-want-out");
    }

    vp.addEventListener("pointermove", (e) => {
      lastPointer = { x: e.clientX, y: e.clientY };
      if (!gesture) { maybeTip(e); return; }
      const g = gesture;
      if (g.kind === "pan") {
        g.moved = g.moved || Math.abs(e.clientX - g.sx) + Math.abs(e.clientY - g.sy) > 3;
        const x = g.vx + e.clientX - g.sx;
        const y = g.vy + e.clientY - g.sy;
        schedule(() => { canvas.view.x = x; canvas.view.y = y; canvas.applyView(); });
      } else if (g.kind === "drag") {
        const p = canvas.screenToWorld(e.clientX, e.clientY);
        const dx = p.x - g.start.x;
        const dy = p.y - g.start.y;
        if (!g.moved && Math.abs(dx) + Math.abs(dy) < 2 / canvas.view.k) return;
        g.moved = true;
        schedule(() => {
          for (const m of g.nodes) { m.n.x = Math.round(m.x + dx); m.n.y = Math.round(m.y + dy); canvas.moveNode(m.n); }
          for (const m of g.notes) { m.n.x = Math.round(m.x + dx); m.n.y = Math.round(m.y + dy); canvas.moveNote(m.n); }
          canvas.updateEdges(g.nodes.map((m) => m.n.name));
        });
      } else if (g.kind === "box") {
        const r = vp.getBoundingClientRect();
        const x = e.clientX - r.left, y = e.clientY - r.top;
        const x0 = Math.min(x, g.sx), y0 = Math.min(y, g.sy), w = Math.abs(x - g.sx), hgt = Math.abs(y - g.sy);
        Object.assign(g.box.style, { left: `${x0}px`, top: `${y0}px`, width: `${w}px`, height: `${hgt}px` });
        schedule(() => boxSelect(g, x0, y0, w, hgt));
      } else if (g.kind === "connect") {
        const p = canvas.screenToWorld(e.clientX, e.clientY);
        schedule(() => canvas.showTempEdge(g.from, p, g.portKind === "in"));
        highlightTarget(e);
      }
    });

    function boxSelect(g, x0, y0, w, hgt) {
      const a = canvas.screenToWorld(x0 + vp.getBoundingClientRect().left, y0 + vp.getBoundingClientRect().top);
      const b = { x: a.x + w / canvas.view.k, y: a.y + hgt / canvas.view.k };
      const keys = new Set(g.additive);
      for (const node of ed.graph.nodes.values()) {
        const n = canvas.nodeBox(node);
        if (n.x < b.x && n.x + n.w > a.x && n.y < b.y && n.y + n.h > a.y) keys.add(`n:${node.name}`);
      }
      for (const note of ed.graph.notes) {
        if (note.x < b.x && note.x + (note.w || 200) > a.x && note.y < b.y && note.y + (note.h || 120) > a.y) keys.add(`s:${note.id}`);
      }
      ed.select([...keys]);
    }

    let hovered = null;
    function highlightTarget(e) {
      const el = document.elementFromPoint(e.clientX, e.clientY);
      const port = el && el.closest(".sy-port");
      if (hovered && hovered !== port) hovered.classList.remove("sy-target");
      hovered = port && port.dataset.kind !== gesture.portKind ? port : null;
      if (hovered) hovered.classList.add("sy-target");
    }

    function endGesture(e) {
      const g = gesture;
      if (!g) return;
      gesture = null;
      if (frame) { cancelAnimationFrame(frame); frame = 0; }
      vp.classList.remove("sy-panning", "sy-connecting", "sy-want-in", "sy-want-out");
      if (g.kind === "pan") {
        canvas.view.x = g.vx + e.clientX - g.sx;
        canvas.view.y = g.vy + e.clientY - g.sy;
        canvas.applyView();
        if (!g.moved) ed.clearSelection();
      } else if (g.kind === "drag") {
        if (g.moved) {
          const p = canvas.screenToWorld(e.clientX, e.clientY);
          const dx = p.x - g.start.x, dy = p.y - g.start.y;
          for (const m of g.nodes) { m.n.x = Math.round(m.x + dx); m.n.y = Math.round(m.y + dy); canvas.moveNode(m.n); }
          for (const m of g.notes) { m.n.x = Math.round(m.x + dx); m.n.y = Math.round(m.y + dy); canvas.moveNote(m.n); }
          canvas.updateEdges(g.nodes.map((m) => m.n.name));
          ed.commit("move", null, g.before, { render: false });
        }
      } else if (g.kind === "box") {
        g.box.remove();
      } else if (g.kind === "connect") {
        canvas.hideTempEdge();
        if (hovered) hovered.classList.remove("sy-target");
        hovered = null;
        const el = document.elementFromPoint(e.clientX, e.clientY);
        const tools = el && el.closest(".sy-agent-tools");
        const port = el && el.closest(".sy-port");
        if (tools) refuseTools(g, tools.dataset.node);
        else if (port && port.dataset.kind !== g.portKind) {
          const other = `${port.dataset.node}.${port.dataset.port}`;
          if (g.portKind === "out") ed.connect(g.ref, other); else ed.connect(other, g.ref);
        }
      }
    }

    /** An edge dropped on an agent's tools port (or its chips): tools are not data, so the canvas's usual refusal. */
    function refuseTools(g, agent) {
      const message = `tools are not data. Give “${agent}” a tool by dropping a node from the palette on its tools port, `
        + "or with “+ Node as tool”, “+ Workflow as tool” or “+ MCP server” in its Tools section.";
      ed.root.dataset.lastRefusal = message;
      canvas.flashPort(g.ref, g.portKind);
      canvas.flashTools(agent);
      toast(`Connection refused: ${message}`, "error", 9000).classList.add("sy-refusal");
    }

    vp.addEventListener("pointerup", endGesture);
    vp.addEventListener("pointercancel", endGesture);

    vp.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.shiftKey && !e.ctrlKey) {
        canvas.view.x -= e.deltaY || e.deltaX;
        canvas.applyView();
        return;
      }
      const factor = Math.exp(-clamp(e.deltaY, -120, 120) * (e.ctrlKey ? 0.01 : 0.0018));
      canvas.zoomAt(canvas.view.k * factor, e.clientX, e.clientY);
    }, { passive: false });

    // --- notes: text edits are one undo step each ---------------------------------------------------
    vp.addEventListener("focusin", (e) => {
      if (e.target.classList.contains("sy-note-text")) e.target._before = ed.graph.snapshot();
    });
    vp.addEventListener("input", (e) => {
      if (!e.target.classList.contains("sy-note-text")) return;
      const note = ed.graph.notes.find((n) => n.id === e.target.closest(".sy-note").dataset.note);
      if (note) note.text = e.target.value;
      ed.touch();
    });
    vp.addEventListener("focusout", (e) => {
      if (!e.target.classList.contains("sy-note-text")) return;
      if (e.target._before) ed.commit("edit note", null, e.target._before, { render: false });
    });

    // --- palette → canvas drop (pointer based, so it works the same with a mouse, a pen or a test) ---
    // Dropped on an Agent's tools port or chips, a node becomes one of its tools (the inspector's dialog) instead.
    ed.beginPaletteDrag = function (e, entry) {
      const ghost = h("div.sy-ghost", { text: entry.title });
      document.body.appendChild(ghost);
      const toolable = SY.AgentTools.canBeTool(entry.type);
      let target = null;          // the agent's tools under the pointer
      const toolsAt = (ev) => {
        const el = toolable ? document.elementFromPoint(ev.clientX, ev.clientY) : null;
        const area = el && el.closest(".sy-agent-tools");
        return area && vp.contains(area) && ed.graph.nodes.has(area.dataset.node) ? area : null;
      };
      vp.classList.toggle("sy-tool-drag", toolable);
      const move = (ev) => {
        ghost.style.transform = `translate(${ev.clientX + 8}px, ${ev.clientY + 8}px)`;
        const r = vp.getBoundingClientRect();
        vp.classList.toggle("sy-drop-ok", ev.clientX > r.left && ev.clientX < r.right && ev.clientY > r.top && ev.clientY < r.bottom);
        const area = toolsAt(ev);
        if (area === target) return;
        if (target) target.classList.remove("sy-tool-target");
        target = area;
        if (target) target.classList.add("sy-tool-target");
        ghost.textContent = target ? `${entry.title} → a tool of ${target.dataset.node}` : entry.title;
      };
      const up = (ev) => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        const agent = toolsAt(ev);
        ghost.remove();
        if (target) target.classList.remove("sy-tool-target");
        vp.classList.remove("sy-drop-ok", "sy-tool-drag");
        const r = vp.getBoundingClientRect();
        if (agent) {
          const name = agent.dataset.node;
          ed.select([`n:${name}`]);
          if (ed.side.current !== "inspect") ed.side.show("inspect");
          ed.inspector.agentTools.addNodeTool(ed.graph.nodes.get(name), entry.type);
        } else if (ev.clientX > r.left && ev.clientX < r.right && ev.clientY > r.top && ev.clientY < r.bottom) {
          const p = canvas.screenToWorld(ev.clientX, ev.clientY);
          ed.addNode(entry, { x: p.x - SY.layout.W / 2, y: p.y - 20 });
        }
      };
      move(e);
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    };

    // --- port tooltips ------------------------------------------------------------------------------
    const tip = h("div.sy-tip", { role: "tooltip" });
    document.body.appendChild(tip);
    let tipTimer = 0;
    let tipFor = null;
    function hideTip() { clearTimeout(tipTimer); tip.classList.remove("sy-show"); tipFor = null; }
    function maybeTip(e) {
      const port = e.target.closest && e.target.closest(".sy-port");
      if (port === tipFor) return;
      hideTip();
      if (!port) return;
      tipFor = port;
      tipTimer = setTimeout(() => showTip(port), 180);
    }
    function showTip(portEl) {
      const node = ed.graph.nodes.get(portEl.dataset.node);
      if (!node) return;
      const kind = portEl.dataset.kind;
      const list = kind === "in" ? node.ports.inputs : node.ports.outputs;
      const port = (list || []).find((p) => p.name === portEl.dataset.port);
      if (!port) return;
      const ref = `${node.name}.${port.name}`;
      const issue = canvas.issues.byPort.get(ref);
      const feeds = kind === "in" ? ed.graph.edges.filter((x) => x.receiver === ref).map((x) => x.sender)
        : ed.graph.edges.filter((x) => x.sender === ref).map((x) => x.receiver);
      tip.textContent = "";
      append(tip, h("div.sy-tip-title", null, h("b", { text: port.name }), h("span.sy-tip-kind", { text: kind === "in" ? " input" : " output" })),
        port.words && port.words !== port.type ? h("div.sy-tip-words", { text: port.words }) : null,
        h("code.sy-tip-type", { text: port.type, title: "The Haystack type" }),
        kind === "in" ? h("div.sy-tip-note", { text: `${port.mandatory ? "required" : "optional"}${port.variadic ? " · takes many senders" : ""}` }) : null,
        feeds.length ? h("div.sy-tip-note", { text: `${kind === "in" ? "from" : "to"} ${feeds.join(", ")}` }) : null,
        issue ? h("div.sy-tip-issue", { text: issue.message }) : null);
      const r = portEl.querySelector(".sy-dot").getBoundingClientRect();
      tip.style.left = `${kind === "in" ? r.left - 8 : r.right + 8}px`;
      tip.style.top = `${r.top + r.height / 2}px`;
      tip.dataset.side = kind === "in" ? "left" : "right";
      tip.classList.add("sy-show");
    }
    vp.addEventListener("pointerleave", hideTip);

    // --- keyboard -----------------------------------------------------------------------------------
    const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
    document.addEventListener("keydown", (e) => {
      if (document.querySelector(".sy-modal-backdrop")) return;
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && key === "s") { e.preventDefault(); ed.openSave(); return; }
      if (mod && key === "enter") { e.preventDefault(); ed.runs.start(); return; }
      if (typing(e.target)) return;
      const shortcuts = [
        [mod && key === "z" && !e.shiftKey, () => ed.undo()],
        [mod && ((key === "z" && e.shiftKey) || key === "y"), () => ed.redo()],
        [mod && key === "c", () => ed.copy()],
        [mod && key === "x", () => { ed.copy(); ed.deleteSelection(); }],
        [mod && key === "v", () => ed.paste()],
        [mod && key === "d", () => ed.duplicate()],
        [mod && key === "a", () => ed.selectAll()],
        [!mod && (key === "delete" || key === "backspace"), () => ed.deleteSelection()],
        [!mod && key === "escape", () => ed.clearSelection()],
        [!mod && key === "l", () => ed.autoLayout()],
        [!mod && key === "n", () => ed.addNote(canvas.screenToWorld(lastPointer.x, lastPointer.y))],
        [!mod && key === "f", () => canvas.fit(ed.selectedNodes().length ? ed.selectedNodes() : undefined)],
        [!mod && (key === "+" || key === "="), () => canvas.zoomAt(canvas.view.k * 1.2)],
        [!mod && (key === "-" || key === "_"), () => canvas.zoomAt(canvas.view.k / 1.2)],
        [!mod && key === "0", () => canvas.zoomAt(1)],
        [!mod && key === "v", () => ed.validate()],
        [!mod && key === "h", () => ed.side.show("history")],
        [!mod && key === "/", () => ed.palette.focus()],
        [!mod && key === "?", () => ed.showHelp()],
        [!mod && key.startsWith("arrow"), () => ed.nudge(key, e.shiftKey ? 50 : 10)],
      ];
      const hit = shortcuts.find(([when]) => when);
      if (hit) { e.preventDefault(); hit[1](); }
    });
  }

  SY.installInteractions = install;
  SY.SHORTCUTS = [
    ["Drag from palette", "add a node (or double-click it)"], ["Drop on an agent's tools port", "give it a tool"],
    ["Drag output → input", "connect ports"],
    ["Drag background", "pan"], ["Shift + drag", "select with a box"], ["Wheel", "zoom"],
    ["Click / Shift+click", "select / add to selection"], ["Delete, Backspace", "delete selection"],
    ["Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", "undo / redo"], ["Ctrl+C / Ctrl+X / Ctrl+V", "copy / cut / paste"],
    ["Ctrl+D", "duplicate"], ["Ctrl+A", "select all"], ["Arrows (Shift)", "nudge by 10 (50)"],
    ["L", "auto-layout"], ["N / double-click background", "sticky note"], ["F", "zoom to fit (selection)"],
    ["+ / − / 0", "zoom in / out / 100%"], ["V", "validate"], ["Ctrl+S", "save a version"],
    ["Ctrl+Enter", "run"], ["H", "version history"], ["/", "search the palette"], ["?", "this help"],
  ];
})(window.Stackyard = window.Stackyard || {});
