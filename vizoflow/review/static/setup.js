// The set-up page: zones and lines drawn on a camera's picture, in the pixels of the frames
// they are drawn on (frame_size); the server checks them and returns the site YAML.
(() => {
  const root = document.getElementById("setup");
  if (!root) return;
  const camera = root.dataset.camera;
  const run = root.dataset.run;
  const svg = document.getElementById("drawing");
  const NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const state = { size: [1280, 720], zones: {}, lines: {}, points: [], picture: null,
                  selected: null, mode: null, draft: [] };

  const el = (name, attrs, parent) => {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    (parent || svg).appendChild(node);
    return node;
  };
  const toImage = (event) => {
    const p = svg.createSVGPoint();
    p.x = event.clientX; p.y = event.clientY;
    const q = p.matrixTransform(svg.getScreenCTM().inverse());
    const [w, h] = state.size;
    return [Math.round(Math.min(Math.max(q.x, 0), w)), Math.round(Math.min(Math.max(q.y, 0), h))];
  };
  const shapes = () => [
    ...Object.entries(state.zones).map(([name, pts]) => ({ kind: "zone", name, pts })),
    ...Object.entries(state.lines).map(([name, pts]) => ({ kind: "line", name, pts })),
  ];
  const isSelected = (s) => state.selected && state.selected.kind === s.kind && state.selected.name === s.name;

  function draw() {
    svg.replaceChildren();
    const [w, h] = state.size;
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    if (state.picture) el("image", { href: state.picture, x: 0, y: 0, width: w, height: h, preserveAspectRatio: "none" });
    else el("rect", { x: 0, y: 0, width: w, height: h, fill: "#222" });
    const r = Math.max(w, h) / 260;
    const font = Math.max(w, h) / 45;  // labels and handles in proportion to the frame, whatever its size
    const defs = el("defs", {});
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 5, markerHeight: 5,
                                  orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#ffd400" }, marker);
    for (const p of state.points) el("circle", { cx: p.x, cy: p.y, r, class: p.role || "unknown", opacity: 0.55 });
    for (const s of shapes()) {
      const cls = `${s.kind}${isSelected(s) ? " selected" : ""}`;
      const pts = s.pts.map((p) => p.join(",")).join(" ");
      const shape = s.kind === "zone" ? el("polygon", { points: pts, class: cls })
        : el("polyline", { points: pts, class: cls, fill: "none", "marker-end": "url(#arrow)" });
      shape.addEventListener("pointerdown", (e) => { if (!state.mode) { select(s.kind, s.name); e.stopPropagation(); } });
      const label = el("text", { x: s.pts[0][0] + font / 4, y: s.pts[0][1] - font / 4, class: "label", "font-size": font });
      label.textContent = s.name;
    }
    if (state.selected && !state.mode) {
      const s = shapes().find(isSelected);
      if (s) s.pts.forEach((p, i) => handle(s, p, i, r * 1.6));
    }
    if (state.draft.length) {
      el("polyline", { points: state.draft.map((p) => p.join(",")).join(" "), class: state.mode, fill: "none" });
      for (const p of state.draft) el("circle", { cx: p[0], cy: p[1], r: r * 1.4, class: "handle" });
    }
    const list = $("shapes");
    list.replaceChildren();
    for (const s of shapes()) {
      const li = document.createElement("li");
      li.textContent = `${s.kind} ${s.name} (${s.pts.length} points)`;
      li.className = isSelected(s) ? "selected" : "";
      li.addEventListener("click", () => select(s.kind, s.name));
      list.appendChild(li);
    }
    $("delete").disabled = !state.selected;
    $("finish").disabled = state.mode !== "zone" || state.draft.length < 3;
  }

  function handle(s, p, i, r) {
    const c = el("circle", { cx: p[0], cy: p[1], r, class: "handle" });
    c.addEventListener("pointerdown", (e) => {
      e.stopPropagation();
      c.setPointerCapture(e.pointerId);
      const move = (m) => { s.pts[i] = toImage(m); (s.kind === "zone" ? state.zones : state.lines)[s.name] = s.pts; draw(); };
      const up = () => { c.removeEventListener("pointermove", move); c.removeEventListener("pointerup", up); draw(); };
      c.addEventListener("pointermove", move);
      c.addEventListener("pointerup", up);
    });
  }

  function select(kind, name) { state.selected = { kind, name }; draw(); }

  function start(mode) {
    const name = $("name").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9_]*$/.test(name)) { status("give the new shape a name: letters, digits and _"); return; }
    if (name in state.zones || name in state.lines) { status(`${name} exists: pick another name or delete it first`); return; }
    state.mode = mode; state.draft = []; state.selected = null; state.draftName = name;
    status(mode === "zone" ? `click the corners of ${name}, then Finish` : `click the two ends of ${name}`);
    draw();
  }

  function finish() {
    const name = state.draftName;
    if (state.mode === "zone" && state.draft.length >= 3) state.zones[name] = state.draft;
    if (state.mode === "line" && state.draft.length === 2) state.lines[name] = state.draft;
    const kind = state.mode;
    state.mode = null; state.draft = [];
    $("name").value = "";
    status(`${kind} ${name} added`);
    select(kind, name);
  }

  function status(text) { $("status").textContent = text; }

  svg.addEventListener("pointerdown", (e) => {
    if (!state.mode) { state.selected = null; draw(); return; }
    state.draft.push(toImage(e));
    if (state.mode === "line" && state.draft.length === 2) finish(); else draw();
  });
  $("new-zone").addEventListener("click", () => start("zone"));
  $("new-line").addEventListener("click", () => start("line"));
  $("finish").addEventListener("click", finish);
  $("delete").addEventListener("click", () => {
    if (!state.selected) return;
    delete (state.selected.kind === "zone" ? state.zones : state.lines)[state.selected.name];
    status(`${state.selected.kind} ${state.selected.name} deleted`);
    state.selected = null; draw();
  });
  $("make-yaml").addEventListener("click", async () => {
    const body = JSON.stringify({ zones: state.zones, lines: state.lines, frame_size: state.size });
    const reply = await fetch(`/api/setup/${encodeURIComponent(camera)}/yaml?run=${encodeURIComponent(run)}`,
      { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const data = await reply.json().catch(() => ({ error: `the server answered ${reply.status}` }));
    $("warnings").replaceChildren(...(data.warnings || []).map((w) => Object.assign(document.createElement("li"), { textContent: w })));
    if (!reply.ok) { status(`not valid: ${data.error || reply.status}`); $("yaml").value = ""; return; }
    $("yaml").value = data.yaml;
    status(data.ok ? "passes vizoflow's checks: paste it into the site file"
      : "the zones are valid, but the site's rules name zones that are not drawn (below)");
  });

  fetch(`/api/setup/${encodeURIComponent(camera)}?run=${encodeURIComponent(run)}`)
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`the server answered ${r.status}`))))
    .then((data) => {
      Object.assign(state, { size: data.frame_size, zones: data.zones, lines: data.lines, points: data.points,
                             picture: data.picture });
      if (!data.picture) status("no picture of this camera yet: a run writes latest.jpg every 5 s");
      root.dataset.ready = "true";
      draw();
    })
    .catch((err) => status(`cannot load this camera's layout: ${err.message}`));
})();
