/* Stackyard editor: the palette, the side panel's Problems and History tabs, and the dialogs for workflows
 * (list, create from blank or a template, rename, delete, import YAML) and for saving a version. */
(function (SY) {
  "use strict";
  const { h, append, toast, modal, confirmDialog, fmtTime } = SY.util;

  const CATEGORY_TITLES = { inputs: "Inputs", loaders: "Loaders", splitters: "Splitters", embedders: "Embedders",
    stores: "Stores", retrievers: "Retrievers", rankers: "Rankers", prompts: "Prompts", generators: "Generators",
    routers: "Routers", joiners: "Joiners", other: "Other" };

  // --- palette --------------------------------------------------------------------------------------
  class Palette {
    constructor(ed, host) {
      this.ed = ed;
      this.host = host;
      this.search = h("input.sy-input.sy-search", { type: "search", placeholder: "Search nodes  ( / )", "aria-label": "Search nodes", spellcheck: false });
      this.list = h("div.sy-pal-list");
      this.collapsed = new Set();
      this.search.addEventListener("input", () => this.render());
      this.search.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          const first = this.list.querySelector(".sy-pal-item");
          if (first) this.ed.addNode(this.ed.catalogEntry(first.dataset.type));
        } else if (e.key === "Escape") { this.search.value = ""; this.render(); this.search.blur(); }
      });
      append(host, h("div.sy-pal-head", null, h("div.sy-panel-title", { text: "Nodes" }), this.search), this.list);
    }

    focus() { this.search.focus(); this.search.select(); }

    render() {
      const q = this.search.value.trim().toLowerCase();
      this.list.textContent = "";
      for (const category of this.ed.categories) {
        const entries = this.ed.catalog.filter((e) => e.category === category && (!q ||
          `${e.title} ${e.description} ${e.type} ${category}`.toLowerCase().includes(q)));
        if (!entries.length) continue;
        const open = q || !this.collapsed.has(category);
        const group = h("div.sy-pal-group", { dataset: { cat: category } },
          h("button.sy-pal-cat", { "aria-expanded": open ? "true" : "false", onclick: () => {
            if (this.collapsed.has(category)) this.collapsed.delete(category); else this.collapsed.add(category);
            this.render();
          } }, h("span.sy-caret", { text: open ? "▾" : "▸" }), CATEGORY_TITLES[category] || category, h("span.sy-count", { text: String(entries.length) })));
        if (open) for (const entry of entries) group.appendChild(this.item(entry));
        this.list.appendChild(group);
      }
      if (!this.list.children.length) this.list.appendChild(h("p.sy-muted.sy-pad", { text: "No node matches." }));
    }

    item(entry) {
      const el = h("div.sy-pal-item", { tabindex: "0", role: "button", dataset: { type: entry.type, cat: entry.category },
        title: `${entry.description}\n${entry.type}\nDrag onto the canvas, or double-click to add.` },
        h("span.sy-node-icon", { text: entry.title[0].toUpperCase() }),
        h("div.sy-pal-text", null, h("div.sy-pal-title", null, entry.title, entry.needs_gpu ? h("span.sy-badge", { text: "GPU" }) : null),
          h("div.sy-pal-desc", { text: entry.description })));
      el.addEventListener("pointerdown", (e) => {
        if (e.button !== 0) return;
        e.preventDefault();
        this.ed.beginPaletteDrag(e, entry);
      });
      el.addEventListener("dblclick", () => this.ed.addNode(entry));
      el.addEventListener("keydown", (e) => { if (e.key === "Enter") this.ed.addNode(entry); });
      return el;
    }
  }

  // --- problems -------------------------------------------------------------------------------------
  function renderProblems(ed, host, result) {
    host.textContent = "";
    if (!result) {
      append(host, h("p.sy-muted.sy-pad", { text: "Press Validate (V) to check the workflow with Haystack's own rules." }));
      return;
    }
    if (!result.issues.length) {
      append(host, h("div.sy-ok-banner", { text: "✓ No problems: this workflow can be saved and run." }));
      return;
    }
    const list = h("ul.sy-issue-list");
    for (const issue of result.issues) {
      const li = h("li.sy-issue", { tabindex: "0", role: "button", dataset: { node: issue.node || "", port: issue.port || "" } },
        h("div.sy-issue-where", null, issue.node ? h("b", { text: issue.node }) : h("b", { text: "workflow" }),
          issue.port ? h("span", { text: `.${issue.port}` }) : null, h("span.sy-code", { text: issue.code })),
        h("div.sy-issue-msg", { text: issue.message }));
      const go = () => { if (issue.node) ed.focusNode(issue.node); };
      li.addEventListener("click", go);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
      list.appendChild(li);
    }
    append(host, h("div.sy-issue-count", { text: `${result.issues.length} problem${result.issues.length === 1 ? "" : "s"} — click one to jump to its node.` }), list);
  }

  // --- history --------------------------------------------------------------------------------------
  async function renderHistory(ed, host) {
    host.textContent = "";
    if (!ed.workflow) return append(host, h("p.sy-muted.sy-pad", { text: "No workflow open." }));
    append(host, h("p.sy-muted.sy-pad", { text: "Loading versions…" }));
    let data;
    try {
      data = await SY.api.call("history", { ref: ed.workflow.id });
    } catch (err) {
      host.textContent = "";
      return append(host, h("p.sy-field-error", { text: err.message }));
    }
    host.textContent = "";
    if (!data.versions.length) return append(host, h("p.sy-muted.sy-pad", { text: "Not saved yet: Save (Ctrl+S) creates version 1." }));
    if (data.versions.length > 1) append(host, compareRow(ed, data.versions));
    for (const v of data.versions) {
      const current = ed.version && ed.version.number === v.number;
      const details = h("div.sy-diff", { hidden: true }, diffDetails(v.changes));
      append(host, h("div.sy-version", { dataset: { number: String(v.number) }, class: `sy-version${current ? " sy-current" : ""}` },
        h("div.sy-version-head", null, h("b", { text: `v${v.number}` }), current ? h("span.sy-badge", { text: "open" }) : null,
          h("span.sy-muted", { text: fmtTime(v.created_at) })),
        v.note ? h("div.sy-version-note", { text: v.note }) : null,
        h("button.sy-link.sy-version-summary", { text: v.changes.summary, title: "Show what changed",
          onclick: () => { details.hidden = !details.hidden; } }),
        details,
        h("div.sy-row-btns", null,
          h("button.sy-btn.sy-btn-sm", { text: "Open", onclick: () => ed.open(ed.workflow.id, v.number) }),
          h("button.sy-btn.sy-btn-sm", { text: "Restore", title: "Save this version's contents as the newest version",
            onclick: () => ed.restore(v.number) }),
          h("a.sy-btn.sy-btn-sm", { text: "YAML", href: `/api/v1/workflows/${encodeURIComponent(ed.workflow.id)}/export?version=${v.number}`,
            download: `${ed.workflow.name}-v${v.number}.yaml` }))));
    }
  }

  /** Any two versions side by side: what changed from one to the other (each row below shows only N−1 → N). */
  function compareRow(ed, versions) {
    const pick = (label, number) => {
      const select = h("select.sy-input.sy-input-sm", { "aria-label": label },
        versions.map((v) => h("option", { value: String(v.number), text: `v${v.number}` })));
      select.value = String(number);
      return select;
    };
    const before = pick("Compare from version", versions[versions.length - 1].number);
    const after = pick("Compare to version", versions[0].number);
    const out = h("div.sy-diff.sy-compare-result");
    const go = async () => {
      try {
        const result = await SY.api.call("compare_versions", { ref: ed.workflow.id, before: Number(before.value), after: Number(after.value) });
        out.textContent = "";
        append(out, h("div.sy-muted", { text: `v${result.before} → v${result.after}: ${result.changes.summary}` }), diffDetails(result.changes));
      } catch (err) { out.textContent = ""; append(out, h("p.sy-field-error", { text: err.message })); }
    };
    return h("div.sy-version.sy-compare", null, h("div.sy-version-head", null, h("b", { text: "Compare" })),
      h("div.sy-row-btns", null, before, h("span.sy-muted", { text: "→" }), after,
        h("button.sy-btn.sy-btn-sm", { text: "Show changes", dataset: { action: "compare" }, onclick: go })), out);
  }

  function diffDetails(c) {
    const rows = [];
    const add = (label, items, cls) => { for (const item of items) rows.push(h(`div.sy-diff-row.${cls}`, null, h("span.sy-diff-kind", { text: label }), h("code", { text: item }))); };
    add("+ node", c.nodes.added, "sy-add");
    add("− node", c.nodes.removed, "sy-del");
    add("~ type", c.nodes.retyped, "sy-mod");
    for (const p of c.params) {
      const show = (v) => (v === undefined || v === null ? "default" : JSON.stringify(v)).slice(0, 80);
      rows.push(h("div.sy-diff-row.sy-mod", null, h("span.sy-diff-kind", { text: "~ param" }), h("code", { text: `${p.node}.${p.param}` }),
        h("div.sy-diff-vals", null, h("del", { text: show(p.before) }), " → ", h("ins", { text: show(p.after) }))));
    }
    add("+ edge", c.edges.added, "sy-add");
    add("− edge", c.edges.removed, "sy-del");
    for (const part of ["inputs", "outputs"]) {
      add(`+ ${part.slice(0, -1)}`, c[part].added, "sy-add");
      add(`− ${part.slice(0, -1)}`, c[part].removed, "sy-del");
      add(`~ ${part.slice(0, -1)}`, c[part].changed, "sy-mod");
    }
    if (c.moved.length) rows.push(h("div.sy-diff-row", null, h("span.sy-diff-kind", { text: "layout" }), h("span", { text: `${c.moved.length} node(s) moved` })));
    if (c.notes_changed) rows.push(h("div.sy-diff-row", null, h("span.sy-diff-kind", { text: "notes" }), h("span", { text: "changed" })));
    return rows.length ? rows : [h("p.sy-muted", { text: "Nothing changed." })];
  }

  // --- workflows dialog -----------------------------------------------------------------------------
  async function openWorkflows(ed) {
    const listHost = h("div.sy-wf-list");
    const body = h("div.sy-wf-dialog");
    const { close } = modal({ title: "Workflows", body, width: 760, className: "sy-wf-modal" });

    let asked = 0;
    const refresh = async () => {
      const mine = ++asked;
      let workflows = [];
      try { workflows = (await SY.api.call("list_workflows", {})).workflows; } catch (err) { toast(err.message, "error"); }
      if (mine !== asked) return;   // a newer refresh is on its way
      listHost.textContent = "";
      if (!workflows.length) append(listHost, h("p.sy-muted", { text: "No workflows yet — create one on the right." }));
      for (const wf of workflows) append(listHost, workflowRow(wf));
    };

    const workflowRow = (wf) => {
      const name = h("button.sy-wf-name", { text: wf.name, title: "Open", onclick: () => { close(); ed.open(wf.id); } });
      const row = h("div.sy-wf-row", { dataset: { name: wf.name } }, name,
        h("span.sy-muted", { text: wf.latest_version ? `v${wf.latest_version}` : "not saved" }),
        h("span.sy-muted", { text: fmtTime(wf.updated_at) }),
        h("div.sy-row-btns", null,
          h("button.sy-btn.sy-btn-sm", { text: "Rename", onclick: () => renameInline(wf, row) }),
          h("button.sy-btn.sy-btn-sm.sy-btn-danger-ghost", { text: "Delete", onclick: async () => {
            if (!(await confirmDialog("Delete workflow", `Delete "${wf.name}" with all its versions and runs? This cannot be undone.`, "Delete"))) return;
            try {
              await SY.api.call("delete_workflow", { ref: wf.id });
              toast(`Deleted ${wf.name}.`, "ok");
              if (ed.workflow && ed.workflow.id === wf.id) ed.closeWorkflow();
              refresh();
            } catch (err) { toast(err.message, "error"); }
          } })));
      return row;
    };

    const renameInline = (wf, row) => {
      const input = h("input.sy-input", { value: wf.name, "aria-label": "New name" });
      let finished = false;
      const done = async () => {
        if (finished) return;
        finished = true;
        const next = input.value.trim();
        if (next && next !== wf.name) {
          try {
            await SY.api.call("rename_workflow", { ref: wf.id, name: next });
            if (ed.workflow && ed.workflow.id === wf.id) { ed.workflow.name = next; ed.updateTitle(); }
          } catch (err) { toast(err.message, "error"); }
        }
        refresh();
      };
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") done(); if (e.key === "Escape") refresh(); });
      input.addEventListener("blur", done);
      row.firstChild.replaceWith(input);
      input.focus();
      input.select();
    };

    // create
    const newName = h("input.sy-input", { placeholder: "Workflow name", "aria-label": "New workflow name" });
    let template = "";
    const cards = h("div.sy-tpl-cards");
    const options = [{ name: "", title: "Blank", description: "An empty canvas." }, ...ed.templates];
    const pick = (name) => {
      template = name;
      for (const c of cards.children) c.classList.toggle("sy-picked", c.dataset.template === name);
    };
    for (const t of options) {
      append(cards, h("button.sy-tpl-card", { dataset: { template: t.name }, onclick: () => pick(t.name) },
        h("b", { text: t.title }), h("span.sy-muted", { text: t.description })));
    }
    pick("");
    const create = async () => {
      const name = newName.value.trim();
      if (!name) { newName.focus(); return toast("Give the workflow a name.", "error"); }
      try {
        const opened = await SY.api.call("create_workflow", { name, template: template || null });
        close();
        ed.load(opened);
        toast(`Created ${name}${template ? ` from the ${template} template` : ""}.`, "ok");
      } catch (err) { toast(err.message, "error"); }
    };
    newName.addEventListener("keydown", (e) => { if (e.key === "Enter") create(); });

    // import
    const file = h("input", { type: "file", accept: ".yaml,.yml,.json", "aria-label": "Haystack YAML file" });
    const importName = h("input.sy-input", { placeholder: "Name (new, or existing → new version)", "aria-label": "Import as" });
    file.addEventListener("change", () => {
      if (file.files[0] && !importName.value) importName.value = file.files[0].name.replace(/\.(ya?ml|json)$/i, "");
    });
    const doImport = async () => {
      if (!file.files[0]) return toast("Choose a YAML file first.", "error");
      try {
        const text = await file.files[0].text();
        const opened = await SY.api.call("import_yaml", { name: importName.value.trim() || file.files[0].name, text });
        close();
        ed.load(opened);
        toast(`Imported ${opened.workflow.name} v${opened.version.number}.`, "ok");
      } catch (err) {
        toast(err.issues ? `Not imported: ${err.issues.length} problem(s) — ${err.issues[0].message}` : err.message, "error", 9000);
      }
    };

    append(body, 
      h("div.sy-wf-col", null, h("h3", { text: "Open" }), listHost),
      h("div.sy-wf-col.sy-wf-side", null,
        h("h3", { text: "New workflow" }), newName, cards,
        h("button.sy-btn.sy-btn-primary", { text: "Create", dataset: { action: "create" }, onclick: create }),
        h("h3", { text: "Import Haystack YAML" }), file, importName,
        h("button.sy-btn", { text: "Import", dataset: { action: "import" }, onclick: doImport })));
    refresh();
  }

  // --- save dialog ----------------------------------------------------------------------------------
  function openSave(ed) {
    if (!ed.workflow) return toast("Open or create a workflow first.", "error");
    const next = ed.latestVersion + 1;
    const note = h("input.sy-input", { placeholder: "What changed? (optional)", maxlength: "2000", "aria-label": "Version note" });
    const go = async (close) => {
      close();
      await ed.save(note.value.trim());
    };
    const dialog = modal({ title: `Save version ${next}`, width: 460,
      body: h("div", null, h("p.sy-muted", { text: "Saved versions never change; runs and exports refer to them by number." }), note),
      actions: [{ label: "Cancel" }, { label: "Save", id: "save", kind: "primary", onclick: go }] });
    note.addEventListener("keydown", (e) => { if (e.key === "Enter") go(dialog.close); });
  }

  function showHelp() {
    const guide = [["the-editor-and-published-apps", "The editor and published apps"], ["models", "Models"],
      ["running-workflows", "Running workflows"], ["batch-jobs-and-schedules", "Batch jobs and schedules"],
      ["security-model", "Security model"], ["settings", "Settings"]];
    modal({ title: "Help", width: 560,
      body: h("div", null,
        h("p.sy-help-links", null, h("a", { href: "/help", target: "_blank", text: "Guide" }), " · ",
          guide.map(([anchor, title]) => h("a", { href: `/help#${anchor}`, target: "_blank", text: title })).flatMap((a) => [a, " · "]),
          h("a", { href: "/docs", target: "_blank", text: "API reference" })),
        h("h3", { text: "Keyboard and mouse" }),
        h("table.sy-keys", null, SY.SHORTCUTS.map(([k, v]) => h("tr", null, h("td", null, h("kbd", { text: k })), h("td", { text: v }))))) });
  }

  SY.Palette = Palette;
  SY.panels = { renderProblems, renderHistory, openWorkflows, openSave, showHelp };
})(window.Stackyard = window.Stackyard || {});
