// The browser side of pydeephaven.widget: draws the rows the Python side sends, and sends back
// what the user asks for (the first visible row, a sort, a filter). The Python side does the rest.

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render({ model, el: host }) {
  const root = el("div", "dh-widget");
  const title = el("div", "dh-title");
  const error = el("div", "dh-error");
  const scroller = el("div", "dh-scroller");
  const table = el("table", "dh-table");
  const thead = el("thead");
  const tbody = el("tbody");
  table.append(thead, tbody);
  scroller.append(table);
  const bar = el("div", "dh-bar");
  const status = el("span", "dh-status");
  const buttons = {};
  for (const [name, label] of [["top", "\u00ab"], ["prev", "\u25b2"], ["next", "\u25bc"], ["end", "\u00bb"]]) {
    buttons[name] = el("button", "dh-" + name, label);
    buttons[name].title = { top: "first rows", prev: "previous page", next: "next page", end: "last rows" }[name];
    bar.append(buttons[name]);
  }
  bar.append(status);
  root.append(title, error, scroller, bar);
  host.append(root);

  function moveTo(first) {
    const size = model.get("size"), page = model.get("page");
    // size -1: unknown (a rollup or tree): forward only while the page is full
    const end = size >= 0 ? size : model.get("first") + model.get("rows").length + (model.get("rows").length >= page ? page : 0);
    const f = Math.max(0, Math.min(first, Math.max(0, end - page)));
    if (f !== model.get("first")) {
      model.set("first", f);
      model.save_changes();
    }
  }
  buttons.top.onclick = () => moveTo(0);
  buttons.prev.onclick = () => moveTo(model.get("first") - model.get("page"));
  buttons.next.onclick = () => moveTo(model.get("first") + model.get("page"));
  buttons.end.onclick = () => moveTo(model.get("size"));
  scroller.addEventListener("wheel", (e) => {
    e.preventDefault();
    moveTo(model.get("first") + (e.deltaY > 0 ? 3 : -3));
  }, { passive: false });

  function nextSort(name) {
    const now = model.get("sort").find((s) => s[0] === name);
    if (!now) return [[name, "asc"]];
    return now[1] === "asc" ? [[name, "desc"]] : [];
  }

  function drawHead() {
    thead.replaceChildren();
    const names = el("tr", "dh-names");
    const boxes = el("tr", "dh-filters");
    const sort = model.get("sort");
    const filters = model.get("filters");
    for (const col of model.get("columns")) {
      const th = el("th");
      th.dataset.column = col.name;
      const s = sort.find((x) => x[0] === col.name);
      const name = el("span", "dh-name", col.name + (s ? (s[1] === "asc" ? " \u25b2" : " \u25bc") : ""));
      if (model.get("sortable")) {
        name.onclick = () => {
          model.set("sort", nextSort(col.name));
          model.save_changes();
        };
      }
      th.append(name, el("div", "dh-type", col.type));
      names.append(th);
      const td = el("th");
      const input = el("input", "dh-filter");
      input.dataset.column = col.name;
      input.placeholder = "filter";
      input.value = filters[col.name] || "";
      input.onkeydown = (e) => {
        if (e.key !== "Enter") return;
        const next = Object.assign({}, model.get("filters"));
        if (input.value.trim()) next[col.name] = input.value;
        else delete next[col.name];
        model.set("filters", next);
        model.save_changes();
      };
      td.append(input);
      boxes.append(td);
    }
    thead.append(names);
    if (model.get("sortable")) thead.append(boxes);
  }

  function drawRows() {
    const rows = model.get("rows");
    const depths = model.get("depths"), open = model.get("expandable");
    const body = [];
    rows.forEach((row, i) => {
      const tr = el("tr");
      row.forEach((v, j) => {
        const td = el("td", v === "null" ? "dh-null" : "", v);
        if (j === 0 && depths.length) {  // a rollup or tree: indent by depth, a triangle opens or closes
          td.textContent = "";
          td.style.paddingLeft = `${8 + 16 * Math.max(0, depths[i] - 1)}px`;
          const toggle = el("span", "dh-toggle", open[i] === null ? "" : open[i] ? "\u25be " : "\u25b8 ");
          toggle.dataset.row = String(i);
          if (open[i] !== null) toggle.onclick = () => model.send({ toggle: i });
          td.append(toggle, document.createTextNode(v));
        }
        tr.append(td);
      });
      body.push(tr);
    });
    tbody.replaceChildren(...body);
    const first = model.get("first"), size = model.get("size");
    const of = size >= 0 ? ` of ${size}` : "";
    status.textContent = rows.length ? `rows ${first + 1}\u2013${first + rows.length}${of}` : `0 rows${of}`;
    buttons.end.style.display = size >= 0 ? "" : "none";
    root.dataset.updates = String(model.get("updates"));
    root.dataset.first = String(first);
    root.dataset.size = String(size);
  }

  function drawMeta() {
    title.textContent = model.get("title");
    root.dataset.title = model.get("title");
    title.style.display = model.get("title") ? "" : "none";
    error.textContent = model.get("error");
    error.style.display = model.get("error") ? "" : "none";
  }

  drawHead();
  drawRows();
  drawMeta();
  const events = [
    ["change:columns change:sort change:filters change:sortable", drawHead],
    ["change:rows change:size change:first change:updates change:depths change:expandable", drawRows],
    ["change:error change:title", drawMeta],
  ];
  for (const [names, fn] of events) model.on(names, fn);
  return () => {
    for (const [names, fn] of events) model.off(names, fn);
  };
}

export default { render };
