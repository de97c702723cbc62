/* Stackyard editor: small helpers shared by every module (DOM, formatting, toasts, modals, API calls). */
(function (SY) {
  "use strict";

  /** h('div.cls#id', {attr: v, onclick: fn}, child, ...) → Element. */
  function h(spec, attrs, ...children) {
    const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec) || [];
    const el = document.createElement(m[1] || "div");
    (m[2] || "").replace(/([.#])([\w-]+)/g, (_, kind, name) => {
      if (kind === ".") el.classList.add(name); else el.id = name;
    });
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
        else if (key === "dataset") Object.assign(el.dataset, value);
        else if (key === "text") el.textContent = value;
        else if (key === "html") el.innerHTML = value;
        else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
        else if (key === "value") el.value = value;
        else if (key in el && key !== "list" && key !== "type" && typeof value !== "string") el[key] = value;
        else el.setAttribute(key, value === true ? "" : value);
      }
    }
    append(el, children);
    return el;
  }

  function append(el, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
    return el;
  }

  // 16×16 stroke icons (no icon font, no CDN).
  const ICONS = {
    undo: "M6 4 2.5 7.5 6 11M3 7.5h6.5a3.5 3.5 0 0 1 0 7H7",
    redo: "M10 4l3.5 3.5L10 11M13 7.5H6.5a3.5 3.5 0 0 0 0 7H9",
    layout: "M2 3h4v3H2zM2 10h4v3H2zM10 6.5h4v3h-4zM6 4.5h2v7H6M8 8h2",
    note: "M3 2.5h10v7l-3.5 3.5H3zM9.5 13V9.5H13",
    minus: "M3.5 8h9",
    plus: "M3.5 8h9M8 3.5v9",
    fit: "M2.5 6V2.5H6M10 2.5h3.5V6M13.5 10v3.5H10M6 13.5H2.5V10",
  };
  function icon(name) {
    const el = svg("svg", { viewBox: "0 0 16 16", width: 16, height: 16, fill: "none", stroke: "currentColor",
      "stroke-width": 1.6, "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" });
    el.appendChild(svg("path", { d: ICONS[name] }));
    return el;
  }

  function debounce(fn, ms) {
    let timer = null;
    const wrapped = (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
    wrapped.cancel = () => clearTimeout(timer);
    return wrapped;
  }

  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  const uid = (prefix) => `${prefix || "id"}_${Math.random().toString(36).slice(2, 9)}`;
  const isMac = /Mac|iPhone|iPad/.test(navigator.platform || "");

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    return `${Math.floor(ms / 60000)} m ${Math.round((ms % 60000) / 1000)} s`;
  }

  /** Milliseconds since the epoch; the API's times are UTC, with or without an explicit offset. */
  const parseTime = (iso) => (iso ? Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z") : NaN);

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(parseTime(iso));
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return sameDay ? time : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
  }

  function shortType(type) {
    return String(type || "Any").replace(/haystack\.[\w.]+\./g, "").replace(/collections\.abc\./g, "");
  }

  /** Port colour family by Haystack type, so compatible ports look alike. */
  function typeFamily(type) {
    const t = String(type || "");
    if (/ChatMessage/.test(t)) return "chat";
    if (/Document/.test(t)) return "docs";
    if (/list\[float\]/.test(t)) return "vector";
    if (/Path|ByteStream/.test(t)) return "files";
    if (/^(str|list\[str\]|str \| None)$/.test(t)) return "text";
    if (/^(int|float|bool)/.test(t)) return "number";
    if (/^dict/.test(t)) return "dict";
    return "any";
  }

  // --- toasts -----------------------------------------------------------------------------------
  let toastHost = null;
  function toast(message, kind = "info", ms = 4200) {
    if (!toastHost) return;
    const el = h("div.sy-toast", { role: "status", dataset: { kind } }, h("span.sy-toast-text", { text: message }),
      h("button.sy-toast-x", { "aria-label": "Dismiss", text: "×", onclick: () => el.remove() }));
    toastHost.appendChild(el);
    while (toastHost.children.length > 4) toastHost.firstChild.remove();
    if (ms) setTimeout(() => el.classList.add("sy-fade"), ms);
    if (ms) setTimeout(() => el.remove(), ms + 400);
    return el;
  }

  // --- modals -----------------------------------------------------------------------------------
  let modalHost = null;
  /** modal({title, body: Element, actions: [{label, kind, onclick}], width}) → {close, el}. */
  function modal({ title, body, actions = [], width, onclose, className }) {
    const backdrop = h("div.sy-modal-backdrop");
    const close = () => {
      backdrop.remove();
      document.removeEventListener("keydown", onKey, true);
      if (onclose) onclose();
    };
    const buttons = actions.map((a) => h(`button.sy-btn${a.kind ? ".sy-btn-" + a.kind : ""}`, {
      text: a.label, dataset: { action: a.id || a.label.toLowerCase() },
      onclick: () => a.onclick ? a.onclick(close) : close(),
    }));
    const dialog = h("div.sy-modal", { role: "dialog", "aria-modal": "true", "aria-label": title,
      style: width ? { width: `${width}px` } : null, class: `sy-modal ${className || ""}` },
      h("div.sy-modal-head", null, h("h2", { text: title }),
        h("button.sy-icon-btn", { "aria-label": "Close", text: "×", onclick: close })),
      h("div.sy-modal-body", null, body),
      buttons.length ? h("div.sy-modal-foot", null, buttons) : null);
    backdrop.appendChild(dialog);
    backdrop.addEventListener("pointerdown", (e) => { if (e.target === backdrop) close(); });
    function onKey(e) {
      if (e.key === "Escape") { e.stopPropagation(); close(); }
    }
    document.addEventListener("keydown", onKey, true);
    modalHost.appendChild(backdrop);
    const first = dialog.querySelector("input, textarea, select");
    if (first) setTimeout(() => first.focus(), 0);
    return { close, el: dialog };
  }

  function confirmDialog(title, message, label = "OK", kind = "danger") {
    return new Promise((resolve) => {
      let answered = false;
      modal({ title, body: h("p.sy-muted", { text: message }), width: 420,
        onclose: () => { if (!answered) resolve(false); },
        actions: [{ label: "Cancel" }, { label, kind, onclick: (close) => { answered = true; close(); resolve(true); } }] });
    });
  }

  // --- server calls -----------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(error) {
      super(error.message || "Request failed");
      this.type = error.type;
      this.issues = error.issues || null;
      this.field = error.field;
    }
  }

  const api = {
    server: null,
    /** Call a Gradio server function with one object; throws ApiError on {"error": ...}. */
    async call(name, payload) {
      let result;
      try {
        result = await api.server[name](payload || {});
      } catch (err) {
        throw new ApiError({ message: `The server did not answer ${name} (${err && err.message ? err.message : err}).` });
      }
      if (result && result.error) throw new ApiError(result.error);
      return result;
    },
    /** The HTTP API (same origin, same login). */
    async rest(method, path, body, headers) {
      const init = { method, headers: { Accept: "application/json", ...(headers || {}) }, credentials: "same-origin" };
      if (body !== undefined) {
        if (body instanceof Blob) init.body = body;
        else { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
      }
      const response = await fetch(path, init);
      const text = await response.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: { message: text } }; }
      if (!response.ok) throw new ApiError((data && data.error) || { message: `${response.status} ${response.statusText}` });
      return data;
    },
  };

  /** A "?" that opens the guide (README, served at /help) at the section that explains what it sits next to. */
  function helpLink(section, what) {
    return h("a.sy-help", { text: "?", href: `/help#${section}`, target: "_blank", title: `Guide: ${what}`, "aria-label": `Help: ${what}` });
  }

  SY.util = { h, append, svg, icon, debounce, clamp, clone, uid, fmtMs, fmtTime, parseTime, shortType, typeFamily, toast, modal,
    confirmDialog, isMac, ApiError, helpLink,
    setHosts(toasts, modals) { toastHost = toasts; modalHost = modals; } };
  SY.api = api;
})(window.Stackyard = window.Stackyard || {});
