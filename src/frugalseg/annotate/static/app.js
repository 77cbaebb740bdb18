// frugalseg annotate: the page. Plain JavaScript, no library, nothing fetched from outside this server.
// Every action is sent at once; the server saves it to the annotation file before it answers, and the page
// shows what the server answered (never what it hoped to save).
"use strict";

const COLOURS = ["#bbbbbb", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
  "#bcf60c", "#fabebe"];
const $ = (id) => document.getElementById(id);

const state = {
  classes: [],        // [[id, name], ...] foreground classes
  items: [],          // [{id, case, index, height, width}] in page order
  suggested: [],      // item ids to annotate first, in order (frugalseg annotate --suggested)
  index: 0,           // current item
  tool: "point",
  cls: 1,
  item: {},           // annotations of the current item, as the file holds them
  image: null,        // Float32Array of the current slice
  range: [0, 1],      // min, max of the current slice
  win: null, lev: null,
  view: { scale: 1, ox: 0, oy: 0 },
  progress: null,
  drag: null,         // the gesture in progress
  pending: 0,         // requests not yet answered
};
let queue = Promise.resolve();

// ------------------------------------------------------------------------------------------- server

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function itemUrl(id, tail) {
  return `/api/items/${encodeURIComponent(id)}${tail ? "/" + tail : ""}`;
}

function setStatus(text, error) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", !!error);
}

function busy(delta) {
  state.pending += delta;
  document.body.dataset.pending = String(state.pending);
}

// Actions run one after another, in the order they were made; a body given as a function is computed when its
// turn comes (a tag toggled twice in a row must see the first toggle's answer).
function send(method, url, body, label) {
  busy(1);
  queue = queue.then(async () => {
    try {
      const change = await api(method, url, typeof body === "function" ? body() : body);
      if (change.item_id === current().id) state.item = change.item;
      else await go(state.items.findIndex((it) => it.id === change.item_id));
      setStatus(`saved: ${label || change.action} (${new Date().toLocaleTimeString()})`);
      draw();
      await refreshProgress();
    } catch (err) {
      setStatus(`not saved: ${err.message}`, true);
    } finally {
      busy(-1);
    }
  });
  return queue;
}

// ------------------------------------------------------------------------------------------- navigation

function current() { return state.items[state.index]; }

function volumeItems() {
  const c = current().case;
  return state.items.filter((it) => it.case === c);
}

async function go(index) {
  if (index < 0 || index >= state.items.length) return;
  state.index = index;
  const it = current();
  busy(1);
  try {
    const [buffer, item] = await Promise.all([
      fetch(itemUrl(it.id, "image")).then((r) => r.arrayBuffer()),
      api("GET", itemUrl(it.id)),
    ]);
    if (state.index !== index) return;  // the user moved on meanwhile
    state.image = new Float32Array(buffer);
    state.item = item;
    let lo = Infinity, hi = -Infinity;
    for (const v of state.image) { if (v < lo) lo = v; if (v > hi) hi = v; }
    state.range = [lo, hi > lo ? hi : lo + 1];
    if (state.win === null) resetWindow();
    if (!state.fitted || state.fitted !== `${it.height}x${it.width}`) fit();
    history.replaceState(null, "", `#item=${encodeURIComponent(it.id)}`);
    renderImage();
    showItem();
  } finally {
    busy(-1);
  }
}

function step(delta) { go(state.index + delta); }

// The suggested slices (frugalseg suggest's order): the next one after the current slice's rank that is not
// annotated yet, wrapping round to the first one left; none left: say so.
function isAnnotated(id) {
  const i = state.items.findIndex((it) => it.id === id);
  return Boolean(state.progress && state.progress.items[i] && state.progress.items[i].annotated);
}

function nextSuggested() {
  const ids = state.suggested;
  if (!ids.length) { setStatus("no suggested slices (frugalseg annotate --suggested FILE)"); return; }
  const from = ids.indexOf(current().id) + 1;
  const order = [...ids.slice(from), ...ids.slice(0, from)];
  const id = order.find((x) => !isAnnotated(x));
  if (id === undefined) { setStatus(`all ${ids.length} suggested slices are annotated`); return; }
  go(state.items.findIndex((it) => it.id === id));
}

function stepVolume(delta) {
  const c = current().case;
  let i = state.index;
  if (delta > 0) {
    while (i < state.items.length && state.items[i].case === c) i++;
  } else {
    while (i > 0 && state.items[i].case === c) i--;
    const prev = state.items[i].case;
    if (prev === c) return;
    while (i > 0 && state.items[i - 1].case === prev) i--;
  }
  if (i < state.items.length) go(i);
}

function showItem() {
  const it = current();
  const vol = volumeItems();
  $("item-id").textContent = it.id;
  const rank = state.suggested.indexOf(it.id);
  $("item-pos").textContent = `volume ${it.case}, slice ${it.index + 1} of ${vol.length} ` +
    `(${state.index + 1} of ${state.items.length} slices, ${it.height}×${it.width})` +
    (rank >= 0 ? ` · suggested ${rank + 1} of ${state.suggested.length}` : "");
  const slider = $("slider");
  slider.max = String(vol.length - 1);
  slider.value = String(it.index);
  showTags();
  highlightRow();
  draw();
}

// ------------------------------------------------------------------------------------------- drawing

const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const offscreen = document.createElement("canvas");

function resetWindow() {
  const [lo, hi] = state.range;
  state.win = hi - lo;
  state.lev = (hi + lo) / 2;
  syncWindowInputs();
}

function syncWindowInputs() {
  const [lo, hi] = state.range;
  const span = hi - lo;
  const w = $("window"), l = $("level");
  w.min = String(span / 100); w.max = String(span * 2); w.step = String(span / 500);
  l.min = String(lo - span / 2); l.max = String(hi + span / 2); l.step = String(span / 500);
  w.value = String(state.win);
  l.value = String(state.lev);
}

function renderImage() {
  const it = current();
  offscreen.width = it.width;
  offscreen.height = it.height;
  const octx = offscreen.getContext("2d");
  const data = octx.createImageData(it.width, it.height);
  const low = state.lev - state.win / 2;
  const gain = 255 / state.win;
  for (let i = 0; i < state.image.length; i++) {
    const v = Math.max(0, Math.min(255, (state.image[i] - low) * gain));
    data.data[4 * i] = data.data[4 * i + 1] = data.data[4 * i + 2] = v;
    data.data[4 * i + 3] = 255;
  }
  octx.putImageData(data, 0, 0);
  draw();
}

function fit() {
  const it = current();
  const w = canvas.clientWidth, h = canvas.clientHeight;
  const scale = 0.95 * Math.min(w / it.width, h / it.height);
  state.view = { scale, ox: (w - scale * it.width) / 2, oy: (h - scale * it.height) / 2 };
  state.fitted = `${it.height}x${it.width}`;
}

function toScreen(y, x) {
  const v = state.view;
  return [v.ox + (x + 0.5) * v.scale, v.oy + (y + 0.5) * v.scale];
}

function toImage(event) {
  const rect = canvas.getBoundingClientRect();
  const v = state.view;
  return [Math.floor((event.clientY - rect.top - v.oy) / v.scale),
    Math.floor((event.clientX - rect.left - v.ox) / v.scale)];
}

function inside(y, x) {
  const it = current();
  return y >= 0 && x >= 0 && y < it.height && x < it.width;
}

function draw() {
  if (canvas.width !== canvas.clientWidth || canvas.height !== canvas.clientHeight) {
    canvas.width = canvas.clientWidth;
    canvas.height = canvas.clientHeight;
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!state.image) return;
  const v = state.view;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(offscreen, v.ox, v.oy, offscreen.width * v.scale, offscreen.height * v.scale);
  for (const s of state.item.scribbles || []) drawPixels(s.path, s.class);
  for (const b of state.item.boxes || []) drawBox(b.y0, b.x0, b.y1, b.x1, b.class, false);
  for (const p of state.item.points || []) drawPoint(p.y, p.x, p.class);
  const d = state.drag;
  if (d && d.kind === "box") drawBox(Math.min(d.y0, d.y1), Math.min(d.x0, d.x1), Math.max(d.y0, d.y1),
    Math.max(d.x0, d.x1), state.cls, true);
  if (d && d.kind === "scribble") drawPixels(d.path, state.cls);
}

function drawPixels(path, cls) {
  const v = state.view;
  const size = Math.max(v.scale, 2);
  ctx.fillStyle = COLOURS[cls % COLOURS.length];
  ctx.globalAlpha = 0.85;
  for (const [y, x] of path) ctx.fillRect(v.ox + x * v.scale, v.oy + y * v.scale, size, size);
  ctx.globalAlpha = 1;
}

function drawBox(y0, x0, y1, x1, cls, dashed) {
  const v = state.view;
  ctx.strokeStyle = COLOURS[cls % COLOURS.length];
  ctx.lineWidth = 2;
  ctx.setLineDash(dashed ? [6, 4] : []);
  ctx.strokeRect(v.ox + x0 * v.scale, v.oy + y0 * v.scale, (x1 - x0 + 1) * v.scale, (y1 - y0 + 1) * v.scale);
  ctx.setLineDash([]);
}

function drawPoint(y, x, cls) {
  const [sx, sy] = toScreen(y, x);
  ctx.beginPath();
  ctx.arc(sx, sy, 6, 0, 2 * Math.PI);
  ctx.fillStyle = COLOURS[cls % COLOURS.length];
  ctx.fill();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "#fff";
  ctx.stroke();
}

// ------------------------------------------------------------------------------------------- gestures

// The pixels of the segment (y0, x0)-(y1, x1), ends included (Bresenham): a fast stroke leaves no gaps.
function line(y0, x0, y1, x1) {
  const out = [];
  const dy = -Math.abs(y1 - y0), dx = Math.abs(x1 - x0);
  const sy = y0 < y1 ? 1 : -1, sx = x0 < x1 ? 1 : -1;
  let err = dx + dy;
  for (;;) {
    out.push([y0, x0]);
    if (y0 === y1 && x0 === x1) return out;
    const e2 = 2 * err;
    if (e2 >= dy) { err += dy; x0 += sx; }
    if (e2 <= dx) { err += dx; y0 += sy; }
  }
}

function addToStroke(d, y, x) {
  for (const [py, px] of line(d.last[0], d.last[1], y, x)) {
    const key = `${py},${px}`;
    if (inside(py, px) && !d.seen.has(key)) { d.seen.add(key); d.path.push([py, px]); }
  }
  d.last = [y, x];
}

canvas.addEventListener("contextmenu", (e) => e.preventDefault());

canvas.addEventListener("mousedown", (e) => {
  canvas.focus();
  e.preventDefault();
  const [y, x] = toImage(e);
  if (e.button === 2) {
    state.drag = { kind: "window", sx: e.clientX, sy: e.clientY, win: state.win, lev: state.lev };
  } else if (e.button === 1 || (e.button === 0 && e.shiftKey)) {
    state.drag = { kind: "pan", sx: e.clientX, sy: e.clientY, ox: state.view.ox, oy: state.view.oy };
  } else if (e.button === 0 && !inside(y, x)) {
    setStatus("outside the image", true);
  } else if (state.tool === "point") {
    send("POST", itemUrl(current().id, "points"), { class: state.cls, y, x }, `point of ${className(state.cls)}`);
  } else if (state.tool === "box") {
    state.drag = { kind: "box", y0: y, x0: x, y1: y, x1: x };
  } else if (state.tool === "scribble") {
    state.drag = { kind: "scribble", path: [], seen: new Set(), last: [y, x] };
    addToStroke(state.drag, y, x);
    draw();
  }
});

window.addEventListener("mousemove", (e) => {
  const d = state.drag;
  if (!d) return;
  const [y, x] = toImage(e);
  const it = current();
  if (d.kind === "box") {
    d.y1 = Math.max(0, Math.min(it.height - 1, y));
    d.x1 = Math.max(0, Math.min(it.width - 1, x));
  } else if (d.kind === "scribble") {
    addToStroke(d, y, x);
  } else if (d.kind === "pan") {
    state.view.ox = d.ox + e.clientX - d.sx;
    state.view.oy = d.oy + e.clientY - d.sy;
  } else if (d.kind === "window") {
    const span = state.range[1] - state.range[0];
    state.win = Math.max(span / 100, d.win + (e.clientX - d.sx) * span / 300);
    state.lev = d.lev - (e.clientY - d.sy) * span / 300;
    syncWindowInputs();
    renderImage();
    return;
  }
  draw();
});

window.addEventListener("mouseup", () => {
  const d = state.drag;
  state.drag = null;
  if (!d) return;
  const id = current().id;
  if (d.kind === "box") {
    const box = { class: state.cls, y0: Math.min(d.y0, d.y1), x0: Math.min(d.x0, d.x1),
      y1: Math.max(d.y0, d.y1), x1: Math.max(d.x0, d.x1) };
    send("POST", itemUrl(id, "boxes"), box, `box of ${className(state.cls)}`);
  } else if (d.kind === "scribble" && d.path.length) {
    send("POST", itemUrl(id, "scribbles"), { class: state.cls, path: d.path },
      `scribble of ${className(state.cls)} (${d.path.length} pixels)`);
  }
  draw();
});

canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const rect = canvas.getBoundingClientRect();
  zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - rect.left, e.clientY - rect.top);
}, { passive: false });

function zoom(factor, cx, cy) {
  const v = state.view;
  if (cx === undefined) { cx = canvas.clientWidth / 2; cy = canvas.clientHeight / 2; }
  v.ox = cx - (cx - v.ox) * factor;
  v.oy = cy - (cy - v.oy) * factor;
  v.scale *= factor;
  draw();
}

// ------------------------------------------------------------------------------------------- controls

function className(c) {
  if (c === 0) return "background";
  const found = state.classes.find(([id]) => id === c);
  return found ? found[1] : `class ${c}`;
}

function setTool(tool) {
  state.tool = tool;
  for (const b of $("tools").children) b.classList.toggle("active", b.dataset.tool === tool);
}

function setClass(c) {
  if (c !== 0 && !state.classes.some(([id]) => id === c)) return;
  state.cls = c;
  for (const b of $("classes").children) b.classList.toggle("active", Number(b.dataset.cls) === c);
}

function toggleTag(c) {
  if (!state.classes.some(([id]) => id === c)) return;
  // The first tag of a slice also marks present every class its points, boxes and scribbles show (the file
  // refuses tags that contradict them); later toggles flip one class.
  const next = () => {
    if (!state.item.tags) {
      const marks = [...(state.item.points || []), ...(state.item.boxes || []), ...(state.item.scribbles || [])];
      const present = new Set(marks.map((m) => m.class).filter((k) => k > 0));
      present.add(c);
      return { tags: [...present].sort((a, b) => a - b) };
    }
    const tags = [...state.item.tags];
    return { tags: tags.includes(c) ? tags.filter((t) => t !== c) : [...tags, c].sort((a, b) => a - b) };
  };
  send("PUT", itemUrl(current().id, "tags"), next, `tag of ${className(c)}`).then(showTags);
}

function markEmpty() {
  send("PUT", itemUrl(current().id, "tags"), { tags: [] }, "nothing in this slice").then(showTags);
}

function showTags() {
  const tags = state.item.tags;
  for (const b of $("tags").children) {
    const c = Number(b.dataset.cls);
    b.classList.toggle("present", !!tags && tags.includes(c));
    b.classList.toggle("absent", !!tags && !tags.includes(c));
  }
  $("tag-hint").textContent = tags === undefined || tags === null
    ? "No tags yet: nothing is said about which structures this slice holds."
    : tags.length ? "Tagged: a structure not marked present is absent from this slice."
      : "Marked: nothing in this slice.";
}

function buildControls() {
  const classes = $("classes"), tags = $("tags");
  for (const [c, name] of [[0, "background"], ...state.classes]) {
    const b = document.createElement("button");
    b.dataset.cls = String(c);
    b.innerHTML = `<span class="swatch" style="background:${COLOURS[c % COLOURS.length]}"></span>`;
    b.append(`${name} `);
    const k = document.createElement("kbd");
    k.textContent = String(c);
    b.append(k);
    b.addEventListener("click", () => setClass(c));
    classes.append(b);
    if (c === 0) continue;
    const t = document.createElement("button");
    t.dataset.cls = String(c);
    t.textContent = `${name} `;
    const tk = document.createElement("kbd");
    tk.textContent = `⇧${c}`;
    t.append(tk);
    t.addEventListener("click", () => toggleTag(c));
    tags.append(t);
  }
  for (const b of $("tools").children) b.addEventListener("click", () => setTool(b.dataset.tool));
  $("empty").addEventListener("click", markEmpty);
  $("untag").addEventListener("click", () => send("PUT", itemUrl(current().id, "tags"), { tags: null },
    "tags cleared").then(showTags));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("reset").addEventListener("click", () => { resetWindow(); fit(); renderImage(); });
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  $("prev-volume").addEventListener("click", () => stepVolume(-1));
  $("next-volume").addEventListener("click", () => stepVolume(1));
  $("next-suggested").addEventListener("click", nextSuggested);
  $("next-suggested").hidden = !state.suggested.length;
  $("slider").addEventListener("input", (e) => {
    const first = state.items.findIndex((it) => it.case === current().case);
    go(first + Number(e.target.value));
  });
  $("window").addEventListener("input", (e) => { state.win = Number(e.target.value); renderImage(); });
  $("level").addEventListener("input", (e) => { state.lev = Number(e.target.value); renderImage(); });
  window.addEventListener("resize", () => { fit(); draw(); });
  window.addEventListener("keydown", onKey);
}

function undo() { send("POST", "/api/undo", {}, "undo").then(showTags); }
function redo() { send("POST", "/api/redo", {}, "redo").then(showTags); }

function onKey(e) {
  if (e.target instanceof HTMLInputElement) return;
  const key = e.key.toLowerCase();
  const digit = /^Digit([0-9])$/.exec(e.code) || /^Numpad([0-9])$/.exec(e.code);
  if ((e.ctrlKey || e.metaKey) && key === "z") { e.shiftKey ? redo() : undo(); }
  else if ((e.ctrlKey || e.metaKey) && key === "y") redo();
  else if (e.ctrlKey || e.metaKey || e.altKey) return;
  else if (digit && e.shiftKey) toggleTag(Number(digit[1]));
  else if (digit) setClass(Number(digit[1]));
  else if (key === "p") setTool("point");
  else if (key === "b") setTool("box");
  else if (key === "s") setTool("scribble");
  else if (key === "e") markEmpty();
  else if (key === "n") nextSuggested();
  else if (key === "r") { resetWindow(); fit(); renderImage(); }
  else if (key === "+" || key === "=") zoom(1.25);
  else if (key === "-") zoom(1 / 1.25);
  else if (e.key === "ArrowRight") step(1);
  else if (e.key === "ArrowLeft") step(-1);
  else if (e.key === "ArrowDown" || e.key === "PageDown") stepVolume(1);
  else if (e.key === "ArrowUp" || e.key === "PageUp") stepVolume(-1);
  else return;
  e.preventDefault();
}

// ------------------------------------------------------------------------------------------- progress

function describe(s) {
  const parts = [];
  if (s.points) parts.push(`${s.points} pt`);
  if (s.boxes) parts.push(`${s.boxes} box`);
  if (s.scribbles) parts.push(`${s.scribbles} scr`);
  if (s.empty) parts.push("nothing in it");
  else if (s.tags) parts.push(`tags ${s.tags.map(className).join(", ")}`);
  return parts.join(" · ");
}

async function refreshProgress() {
  const p = await api("GET", "/api/progress");
  state.progress = p;
  const t = p.totals;
  $("totals").textContent = `${t.annotated} of ${t.items} slices annotated, ${t.empty} marked empty, ` +
    `${t.tagged} tagged.`;
  const head = $("counts").tHead, body = $("counts").tBodies[0];
  head.innerHTML = "<tr><th>class</th><th>points</th><th>scribbles</th><th>boxes</th><th>present</th></tr>";
  body.innerHTML = "";
  for (const [c, n] of Object.entries(p.per_class)) {
    const row = body.insertRow();
    row.dataset.cls = c;
    for (const v of [className(Number(c)), n.points, n.scribbles, n.boxes, n.tags]) row.insertCell().textContent = v;
  }
  const list = $("items");
  if (list.children.length !== p.items.length) {
    list.innerHTML = "";
    p.items.forEach((s, i) => {
      const li = document.createElement("li");
      li.dataset.id = s.id;
      li.addEventListener("click", () => go(i));
      list.append(li);
    });
  }
  p.items.forEach((s, i) => {
    const li = list.children[i];
    li.classList.toggle("annotated", s.annotated);
    li.innerHTML = "";
    const rank = state.suggested.indexOf(s.id);
    li.classList.toggle("suggested", rank >= 0);
    if (rank >= 0) {
      const mark = document.createElement("span");
      mark.className = "rank";
      mark.title = `suggested slice ${rank + 1} of ${state.suggested.length}`;
      mark.textContent = `★${rank + 1}`;
      li.append(mark);
    }
    li.append(s.id);
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = describe(s);
    li.append(what);
  });
  highlightRow();
}

function highlightRow() {
  const list = $("items");
  for (const li of list.querySelectorAll(".current")) li.classList.remove("current");
  const li = list.children[state.index];
  if (li) { li.classList.add("current"); li.scrollIntoView({ block: "nearest" }); }
}

// ------------------------------------------------------------------------------------------- start

// Where to open: the item in the address (a reload stays put), else the first suggested slice not annotated
// yet, else the first one after the last annotated.
function startIndex() {
  const m = /#item=(.+)$/.exec(location.hash);
  if (m) {
    const i = state.items.findIndex((it) => it.id === decodeURIComponent(m[1]));
    if (i >= 0) return i;
  }
  const todo = state.suggested.find((id) => !isAnnotated(id));
  if (todo !== undefined) return state.items.findIndex((it) => it.id === todo);
  const done = state.progress.items.map((s) => s.annotated);
  const last = done.lastIndexOf(true);
  return last < 0 ? 0 : Math.min(last + 1, state.items.length - 1);
}

async function start() {
  busy(1);
  try {
    const session = await api("GET", "/api/session");
    state.classes = Object.entries(session.classes).map(([id, name]) => [Number(id), name]);
    state.items = session.items;
    state.suggested = session.suggested || [];
    $("where").textContent = `saving to ${session.out}`;
    buildControls();
    setTool("point");
    setClass(state.classes.length ? state.classes[0][0] : 0);
    await refreshProgress();
    await go(startIndex());
    setStatus("ready");
  } catch (err) {
    setStatus(`cannot start: ${err.message}`, true);
  } finally {
    busy(-1);
  }
}

// For tests and scripts: where an image pixel is on the canvas, and the page's state.
window.frugalseg = { state, toScreen };
start();
