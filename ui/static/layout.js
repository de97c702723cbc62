/* Stackyard editor: auto-layout. Layered, left to right: longest-path layers (cycles broken where Kahn's
 * algorithm stops), barycentre ordering within a layer (a few up/down sweeps), layers centred vertically. */
(function (SY) {
  "use strict";
  const GAP_X = 140;
  const GAP_Y = 40;

  /** Layered layout: longest-path layers left to right, barycentre ordering within a layer. */
  function layoutGraph(graph, names, x0, y0, heightOf) {
    const set = new Set(names);
    const succ = new Map(names.map((n) => [n, []]));
    const pred = new Map(names.map((n) => [n, []]));
    for (const e of graph.edges) {
      const s = e.sender.split(".")[0], r = e.receiver.split(".")[0];
      if (set.has(s) && set.has(r) && s !== r) { succ.get(s).push(r); pred.get(r).push(s); }
    }
    const layer = new Map();
    const indeg = new Map(names.map((n) => [n, pred.get(n).length]));
    const queue = names.filter((n) => !indeg.get(n));
    queue.forEach((n) => layer.set(n, 0));
    while (queue.length) {
      const n = queue.shift();
      for (const m of succ.get(n)) {
        layer.set(m, Math.max(layer.get(m) || 0, layer.get(n) + 1));
        indeg.set(m, indeg.get(m) - 1);
        if (!indeg.get(m)) queue.push(m);
      }
    }
    for (const n of names) if (!layer.has(n)) layer.set(n, Math.max(0, ...pred.get(n).map((p) => (layer.has(p) ? layer.get(p) + 1 : 0))));
    const layers = [];
    for (const n of names) (layers[layer.get(n)] = layers[layer.get(n)] || []).push(n);
    const filled = layers.filter(Boolean);
    const pos = new Map();
    const order = (list) => list.forEach((n, i) => pos.set(n, i));
    filled.forEach((list) => { list.sort((a, b) => (graph.nodes.get(a).y || 0) - (graph.nodes.get(b).y || 0)); order(list); });
    const bary = (n, links) => { const xs = links.get(n).filter((m) => pos.has(m)).map((m) => pos.get(m)); return xs.length ? xs.reduce((a, b) => a + b) / xs.length : pos.get(n); };
    for (let sweep = 0; sweep < 4; sweep += 1) {
      const down = sweep % 2 === 0;
      const seq = down ? filled.slice(1) : filled.slice(0, -1).reverse();
      for (const list of seq) { list.sort((a, b) => bary(a, down ? pred : succ) - bary(b, down ? pred : succ)); order(list); }
    }
    const heights = (list) => list.map((n) => heightOf(graph.nodes.get(n)));
    const total = (list) => heights(list).reduce((a, b) => a + b, 0) + GAP_Y * (list.length - 1);
    const tallest = Math.max(...filled.map(total));
    filled.forEach((list, i) => {
      let y = y0 + (tallest - total(list)) / 2;
      const hs = heights(list);
      list.forEach((n, j) => {
        const node = graph.nodes.get(n);
        node.x = Math.round(x0 + i * (SY.layout.W + GAP_X));
        node.y = Math.round(y);
        y += hs[j] + GAP_Y;
      });
    });
  }

  SY.layoutGraph = layoutGraph;
})(window.Stackyard = window.Stackyard || {});
