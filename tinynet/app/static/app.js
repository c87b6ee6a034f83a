// The draw-a-digit page: draws, asks the server (tinynet's own layers) and paints what it answers.
"use strict";

const SEND_SIDE = 140;  // the pad (280 px) is sent at half resolution: prepare_digit scales the ink to 20 px anyway
const MAX_COLUMNS = 32; // a vector layer (Dense, Flatten) is drawn in rows of at most this many values

const pad = document.getElementById("pad");
const padContext = pad.getContext("2d");
const strokes = [];     // each stroke: {width, points: [[x, y], ...]}, kept for undo
let current = null;
const cursor = {x: 140, y: 140, shown: false};  // the keyboard's pen on the pad
let chosenLabel = null; // null: the loss is taken against the model's own answer
let lastDrawing = null;
let busy = Promise.resolve();
let cleared = 0;        // times the answers were cleared: an answer asked for before the last is not shown

// Read by the browser test: what was asked (queued) and has finished (done, answered or failed).
window.tinynet = {last: null, requests: 0, answers: 0, queued: 0, done: 0};

// -- colour maps ---------------------------------------------------------------------------
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#fde725"]
  .map(hex => [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16)));
const DIVERGING = [[33, 102, 172], [247, 247, 247], [178, 24, 43]];

function lookupTable(anchors) {
  const table = new Uint8ClampedArray(256 * 3);
  for (let level = 0; level < 256; level++) {
    const position = level / 255 * (anchors.length - 1);
    const low = Math.min(Math.floor(position), anchors.length - 2);
    const t = position - low;
    for (let c = 0; c < 3; c++) table[level * 3 + c] = anchors[low][c] * (1 - t) + anchors[low + 1][c] * t;
  }
  return table;
}
const SEQUENTIAL_TABLE = lookupTable(VIRIDIS);
const DIVERGING_TABLE = lookupTable(DIVERGING);

function rampCss(anchors) {
  return `linear-gradient(to right, ${anchors.map(([r, g, b]) => `rgb(${r},${g},${b})`).join(", ")})`;
}

// -- drawing -------------------------------------------------------------------------------
function redraw() {
  padContext.fillStyle = "#fff";
  padContext.fillRect(0, 0, pad.width, pad.height);
  padContext.strokeStyle = "#000";
  padContext.lineCap = "round";
  padContext.lineJoin = "round";
  for (const stroke of strokes) {
    padContext.lineWidth = stroke.width;
    padContext.beginPath();
    stroke.points.forEach(([x, y], i) => (i ? padContext.lineTo(x, y) : padContext.moveTo(x, y)));
    if (stroke.points.length === 1) padContext.lineTo(stroke.points[0][0] + 0.1, stroke.points[0][1]);
    padContext.stroke();
  }
  if (cursor.shown) {  // the keyboard's cursor: a ring, red while the pen is down
    padContext.lineWidth = 2;
    padContext.strokeStyle = current ? "#c0392b" : "#1f5fa8";
    padContext.beginPath();
    padContext.arc(cursor.x, cursor.y, 7, 0, 2 * Math.PI);
    padContext.stroke();
  }
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", event => {
  pad.setPointerCapture(event.pointerId);
  current = {width: Number(document.getElementById("brush").value), points: [padPoint(event)]};
  strokes.push(current);
  redraw();
});
pad.addEventListener("pointermove", event => {
  if (!current) return;
  current.points.push(padPoint(event));
  redraw();
});
function endStroke() {
  if (!current) return;
  current = null;
  explain();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// Drawing with the keyboard: the arrow keys move a cursor (Shift: finer), Space or Enter puts the
// pen down and lifts it again (the model answers when it is lifted).
pad.addEventListener("keydown", event => {
  const steps = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
  if (event.key in steps) {
    const size = event.shiftKey ? 4 : 14;
    cursor.x = Math.min(pad.width, Math.max(0, cursor.x + steps[event.key][0] * size));
    cursor.y = Math.min(pad.height, Math.max(0, cursor.y + steps[event.key][1] * size));
    if (current) current.points.push([cursor.x, cursor.y]);
  } else if (event.key === " " || event.key === "Enter") {
    if (current) {
      endStroke();
    } else {
      current = {width: Number(document.getElementById("brush").value), points: [[cursor.x, cursor.y]]};
      strokes.push(current);
    }
  } else if (event.key === "Escape" && current) {
    endStroke();
  } else {
    return;
  }
  event.preventDefault();
  cursor.shown = true;
  redraw();
});
pad.addEventListener("blur", () => { cursor.shown = false; redraw(); });

document.getElementById("undo").addEventListener("click", () => {
  strokes.pop();
  redraw();
  strokes.length ? explain() : clearAnswers();
});
document.getElementById("clear").addEventListener("click", () => {
  strokes.length = 0;
  redraw();
  chooseLabel(null);  // a new digit: the label picked for the last one does not hold
  clearAnswers();
  showError("");  // a message about the last digit's request does not hold either
});

// The pad's ink, 0 (paper) to 255 (ink), at SEND_SIDE x SEND_SIDE, row by row.
function drawing() {
  const ring = cursor.shown;  // the keyboard's cursor is not ink
  cursor.shown = false;
  redraw();
  cursor.shown = ring;
  const small = document.createElement("canvas");
  small.width = small.height = SEND_SIDE;
  const context = small.getContext("2d");
  context.drawImage(pad, 0, 0, SEND_SIDE, SEND_SIDE);
  const rgba = context.getImageData(0, 0, SEND_SIDE, SEND_SIDE).data;
  const pixels = new Array(SEND_SIDE * SEND_SIDE);
  for (let i = 0; i < pixels.length; i++) pixels[i] = 255 - rgba[i * 4];
  if (ring) redraw();
  return {width: SEND_SIDE, height: SEND_SIDE, pixels};
}

// -- talking to the server -----------------------------------------------------------------
async function post(path, body) {
  window.tinynet.requests++;
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  let answer;
  try {
    answer = await response.json();
  } catch (error) {
    throw new Error(`The server answered ${response.status} without a readable message.`);
  }
  if (!response.ok) {
    const error = new Error(answer.error || `The server answered ${response.status}.`);
    error.diverged = answer.diverged === true;
    throw error;
  }
  return answer;
}

// The server's message; for a model whose numbers diverged, with the one way out: Reset.
function showError(message, diverged = false) {
  const banner = document.getElementById("error");
  banner.textContent = message;
  if (diverged) {
    const reset = document.createElement("button");
    reset.type = "button";
    reset.textContent = "Reset the model";
    reset.addEventListener("click", () => document.getElementById("reset").click());
    banner.append(" ", reset);
  }
  banner.hidden = !message;
}

// Requests run one after another, so answers arrive in the order the strokes ended.
function queue(task) {
  window.tinynet.queued++;
  busy = busy.then(task).catch(error => showError(error.message, error.diverged))
    .finally(() => window.tinynet.done++);
  return busy;
}

function explain() {
  lastDrawing = drawing();
  const asked = cleared;
  return queue(async () => {
    const body = {...lastDrawing};
    if (chosenLabel !== null) body.label = chosenLabel;
    const answer = await post("api/explain", body);
    if (asked !== cleared) return;  // the pad was cleared while it was on its way: nothing to show it for
    showError("");
    show(answer);
  });
}

function clearAnswers() {
  cleared++;
  lastDrawing = null;
  window.tinynet.last = null;
  for (const id of ["probabilities", "layers", "weight-grads", "step-result", "loss", "saliency-legend"])
    document.getElementById(id).replaceChildren();
  document.getElementById("prediction").textContent = "Draw a digit: the model answers when you lift the pen.";
  document.getElementById("step").disabled = true;
  for (const id of ["seen", "saliency"]) {
    const canvas = document.getElementById(id);
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
}

// -- painting the answer ---------------------------------------------------------------------
// Gradients are coloured on one logarithmic scale, the same for every layer and every drawing,
// so that a gradient of 1e-8 (a digit the model is sure of) looks faint and one of 6 looks strong:
// |g| from 10^LOG_LOW (white) to 10^LOG_HIGH (full colour), its sign red (+) or blue (-).
const LOG_LOW = -10, LOG_HIGH = 1;

function decodeFloats(base64) {
  const text = atob(base64);
  const view = new DataView(new ArrayBuffer(text.length));
  for (let i = 0; i < text.length; i++) view.setUint8(i, text.charCodeAt(i));
  const values = new Float32Array(text.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);  // sent little-endian
  return values;
}

function logarithmic() {
  return document.getElementById("scale").value === "log";
}

// A value's colour level 0-255 on the map's scale: its layer's [low, high], or the shared logarithmic one.
function leveller(maps, centred) {
  if (centred && logarithmic()) {
    return v => {
      if (v === 0) return 128;
      const t = Math.min(1, Math.max(0, (Math.log10(Math.abs(v)) - LOG_LOW) / (LOG_HIGH - LOG_LOW)));
      return Math.round(128 + Math.sign(v) * t * 127);
    };
  }
  const span = maps.high - maps.low;
  return v => (span > 0 ? Math.round(Math.min(1, Math.max(0, (v - maps.low) / span)) * 255) : 128);
}

function paint(canvas, values, offset, width, height, table, level, scale) {
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const value = values[offset + i];
    const index = (value === undefined || Number.isNaN(value) ? 128 : level(value)) * 3;
    image.data.set(table.subarray(index, index + 3), i * 4);
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function legend(maps, anchors, centred) {
  const box = document.createElement("div");
  box.className = "legend";
  const shared = centred && logarithmic();
  const low = document.createElement("span");
  low.textContent = shared ? `−${10 ** LOG_HIGH}` : format(maps.low);
  const ramp = document.createElement("span");
  ramp.className = "ramp";
  ramp.style.background = rampCss(anchors);
  const high = document.createElement("span");
  high.textContent = shared ? `+${10 ** LOG_HIGH}` : format(maps.high);
  const range = document.createElement("span");
  range.className = "range";
  range.dataset.low = maps.low;
  range.dataset.high = maps.high;
  range.textContent = (shared ? `(log scale, white: |g| below 1e${LOG_LOW}) ` : "") +
                      `values from ${exact(maps.low)} to ${exact(maps.high)}`;
  box.append(low, ramp, high, range);
  return box;
}

function format(value) {
  if (value === 0) return "0";
  const size = Math.abs(value);
  return size >= 0.01 && size < 1000 ? value.toFixed(size < 1 ? 3 : 2) : value.toExponential(1);
}

// A number with three significant digits, however small: 1.23e-8, never "0.000".
function exact(value) {
  if (value === 0) return "0";
  const size = Math.abs(value);
  return size >= 0.01 && size < 1000 ? value.toPrecision(3) : value.toExponential(2);
}

// Up to 8 maps of a layer (or one vector, wrapped into rows), on the scale the learner picked.
function mapsFigure(maps, table, anchors, title, centred) {
  const figure = document.createElement("figure");
  const heading = document.createElement("figcaption");
  heading.textContent = title;
  const row = document.createElement("div");
  row.className = "maps";
  const values = decodeFloats(maps.values);
  const level = leveller(maps, centred);
  const size = maps.height * maps.width;
  for (let channel = 0; channel < maps.shown; channel++) {
    const canvas = document.createElement("canvas");
    canvas.dataset.channel = channel;
    if (maps.height === 1) {  // a vector: wrap it, the last row padded with the scale's middle
      // A flattened square image (784 = 28 x 28) keeps its rows; anything else wraps at MAX_COLUMNS.
      const side = Math.round(Math.sqrt(maps.width));
      const columns = side * side === maps.width && side > MAX_COLUMNS && side <= 64 ? side
                                                                                     : Math.min(MAX_COLUMNS, maps.width);
      const rows = Math.ceil(maps.width / columns);
      canvas.dataset.columns = columns;
      paint(canvas, values, 0, columns, rows, table, level, columns > 16 ? 8 : 16);
      if (rows * columns > maps.width) {  // the padding is not a value: grey it out
        const context = canvas.getContext("2d");
        context.fillStyle = "#ddd";
        context.fillRect(maps.width % columns, rows - 1, columns - maps.width % columns, 1);
      }
    } else {
      paint(canvas, values, channel * size, maps.width, maps.height, table, level, Math.max(2, Math.floor(84 / maps.width)));
    }
    row.append(canvas);
  }
  figure.append(heading, row, legend(maps, anchors, centred));
  return figure;
}

// One bar per value. {top}: the row to stand out; {after}: a second bar per row (a step's result),
// drawn in the same track under the first; {log}: lengths on the shared logarithmic scale.
function bars(container, values, names, {top = -1, after = null, log = false, text = null} = {}) {
  container.replaceChildren();
  container.classList.toggle("paired", after !== null);
  const largest = Math.max(...values, ...(after || []), 1e-300);
  const length = value => (log ? Math.min(1, Math.max(0, (Math.log10(value) - LOG_LOW) / (LOG_HIGH - LOG_LOW)))
                               : value / largest);
  values.forEach((value, i) => {
    const row = document.createElement("div");
    row.className = "row" + (i === top ? " top" : "");
    row.dataset.index = i;
    const name = document.createElement("span");
    name.textContent = names[i];
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = after ? "fill before" : "fill";
    fill.style.width = `${100 * length(value)}%`;
    track.append(fill);
    if (after) {
      const moved = document.createElement("div");
      moved.className = "fill after";
      moved.style.width = `${100 * length(after[i])}%`;
      track.append(moved);
    }
    const number = document.createElement("span");
    number.className = "value";
    number.textContent = text ? text(value, i) : after ? `${value.toFixed(3)} → ${after[i].toFixed(3)}` : value.toFixed(3);
    row.append(name, track, number);
    container.append(row);
  });
}

function show(answer) {
  window.tinynet.last = answer;
  window.tinynet.answers++;
  render(answer);
}

function render(answer) {
  const seen = document.getElementById("seen");
  const grey = lookupTable([[0, 0, 0], [255, 255, 255]]);
  paint(seen, answer.image.flat(), 0, 28, 28, grey, v => Math.round(v * 255), 5);

  const p = answer.probabilities;
  document.getElementById("prediction").textContent =
    `It reads ${answer.prediction} (p = ${p[answer.prediction].toFixed(3)})`;
  bars(document.getElementById("probabilities"), p, p.map((_, d) => `${d}`), {top: answer.prediction});

  document.getElementById("loss").textContent =
    `Loss against label ${answer.label}${chosenLabel === null ? " (its own answer: pick the right digit)" : ""}: ` +
    `L = −log p[${answer.label}] = ${answer.loss === 0 ? "below 1e-300" : exact(answer.loss)}`;
  const saliency = answer.saliency;
  paint(document.getElementById("saliency"), decodeFloats(saliency.values), 0, 28, 28, DIVERGING_TABLE,
        leveller(saliency, true), 5);
  document.getElementById("saliency-legend").replaceChildren(...legend(saliency, DIVERGING, true).childNodes);
  document.getElementById("step").disabled = chosenLabel === null;
  if (answer.steps) document.getElementById("steps").textContent = `${answer.steps} step(s) taken on your copy`;

  const norms = answer.weight_grads.map(w => w.norm);
  bars(document.getElementById("weight-grads"), norms, answer.weight_grads.map(w => w.name),
       {log: logarithmic(), text: exact});

  const layers = document.getElementById("layers");
  layers.replaceChildren();
  for (const layer of answer.layers) {
    const block = document.createElement("div");
    block.className = "layer";
    block.dataset.position = layer.position;
    const caption = document.createElement("div");
    caption.className = "caption";
    const out = layer.output;
    const which = out.height > 1 ? (out.shown < out.channels ? `, first ${out.shown} of ${out.channels} channels`
                                                               : `, all ${out.channels} channels`) : "";
    caption.innerHTML = `<b>${layer.position}. ${escapeHtml(layer.name)}</b> → (${layer.shape.join(", ")})${which}`;
    const pair = document.createElement("div");
    pair.className = "pair";
    const output = mapsFigure(out, SEQUENTIAL_TABLE, VIRIDIS, "output", false);
    const grad = mapsFigure(layer.grad, DIVERGING_TABLE, DIVERGING, "dL/d(output)", true);
    output.dataset.kind = "output";
    grad.dataset.kind = "grad";
    pair.append(output, grad);
    block.append(caption, pair);
    layers.append(block);
  }
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
}

// -- teach it ----------------------------------------------------------------------------------
const labels = document.getElementById("labels");
for (let digit = 0; digit < 10; digit++) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = digit;
  button.dataset.digit = digit;
  button.addEventListener("click", () => {
    chooseLabel(chosenLabel === digit ? null : digit);
    if (lastDrawing) explain();
  });
  labels.append(button);
}

function chooseLabel(digit) {
  chosenLabel = digit;
  labels.querySelectorAll("button").forEach(b => {
    const chosen = Number(b.dataset.digit) === chosenLabel;
    b.classList.toggle("chosen", chosen);
    b.setAttribute("aria-pressed", String(chosen));
  });
}

// -- click a number: how it was made (POST /api/unit) -----------------------------------------
// A map's pixel (or a vector's cell) under a click: [c, h, w] for maps, [f] for vectors.
function clickedIndex(canvas, event, maps) {
  const box = canvas.getBoundingClientRect();
  const column = Math.floor((event.clientX - box.left) / box.width * canvas.width);
  const row = Math.floor((event.clientY - box.top) / box.height * canvas.height);
  if (maps.height > 1) return [Number(canvas.dataset.channel), row, column];
  const f = row * Number(canvas.dataset.columns) + column;
  return f < maps.width ? [f] : null;
}

function explainUnit(layer, index, direction, what) {
  if (!lastDrawing) return;
  const body = {...lastDrawing, layer, index, direction};
  if (chosenLabel !== null) body.label = chosenLabel;
  const asked = cleared;
  queue(async () => {
    const unit = await post("api/unit", body);
    if (asked !== cleared) return;
    window.tinynet.unit = unit;
    showUnit(unit, what);
  });
}

function showUnit(unit, what) {
  const panel = document.getElementById("unit");
  const title = document.createElement("h3");
  title.textContent = `${what} [${unit.index.join(", ")}] = ${exact(unit.value)}`;
  const rule = document.createElement("p");
  rule.textContent = `${unit.direction === "forward" ? "Forward" : "Backward"} through ${unit.name}: ${unit.rule}.`;
  const grid = document.createElement("div");
  grid.className = "terms";
  // A convolution's window keeps its shape (one row of kh x kw per input channel); other terms wrap by 8.
  const columns = unit.window ? unit.window[2] : Math.min(8, unit.terms.length);
  grid.style.gridTemplateColumns = `repeat(${columns}, auto)`;
  const shown = unit.terms.slice(0, 144);
  shown.forEach((term, k) => {
    const cell = document.createElement("span");
    cell.className = "term" + (term > 0 ? " positive" : term < 0 ? " negative" : "");
    const left = unit.inputs[k], right = unit.weights ? unit.weights[k] : null;
    cell.textContent = right === null ? exact(term) : `${exact(left)}×${exact(right)}`;
    cell.title = `${right === null ? "" : `${exact(left)} × ${exact(right)} = `}${exact(term)} (at [${unit.at[k] ?? "padding"}])`;
    grid.append(cell);
  });
  const sum = document.createElement("p");
  sum.className = "sum";
  const more = unit.terms.length > shown.length ? ` (${shown.length} of ${unit.terms.length} terms shown)` : "";
  sum.textContent = unit.kind === "rule"
    ? `${unit.rule} of these ${unit.terms.length} = ${exact(unit.sum)}${more}`
    : `Σ ${unit.terms.length} terms + bias ${exact(unit.bias)} = ${exact(unit.sum)}${more}; the page shows ${exact(unit.value)}`;
  panel.replaceChildren(title, rule, grid, sum);
  panel.hidden = false;
  highlightWindow(unit);
}

// Mark the inputs of a forward unit on the maps they come from (the 28x28 image for layer 0).
function highlightWindow(unit) {
  if (unit.direction !== "forward") return;
  const canvases = unit.layer === 0 ? [document.getElementById("seen")]
    : [...document.querySelectorAll(`#layers .layer[data-position="${unit.layer - 1}"] [data-kind=output] canvas`)];
  for (const canvas of canvases) {
    const context = canvas.getContext("2d");
    context.fillStyle = "rgba(255, 64, 0, 0.55)";
    for (const at of unit.at) {
      if (!at || at.length !== 3) continue;
      const [c, h, w] = at;
      if (unit.layer === 0 || Number(canvas.dataset.channel) === c) context.fillRect(w, h, 1, 1);
    }
  }
}

document.getElementById("layers").addEventListener("click", event => {
  const canvas = event.target.closest("canvas");
  const figure = event.target.closest("figure");
  const block = event.target.closest(".layer");
  if (!canvas || !figure || !block || !window.tinynet.last) return;
  const position = Number(block.dataset.position);
  const layer = window.tinynet.last.layers[position];
  const gradient = figure.dataset.kind === "grad";
  const index = clickedIndex(canvas, event, gradient ? layer.grad : layer.output);
  if (!index) return;
  render(window.tinynet.last);  // clear the previous highlight
  if (gradient) explainUnit(position + 1, index, "backward", `dL/d(output of layer ${position})`);
  else explainUnit(position, index, "forward", `Output of layer ${position}`);
});
document.getElementById("saliency").addEventListener("click", event => {
  if (!window.tinynet.last) return;
  const [, h, w] = clickedIndex(event.target, event, {height: 28, width: 28});
  explainUnit(0, [0, h, w], "backward", "dL/d(input)");
});

document.getElementById("scale").addEventListener("change", () => {
  if (window.tinynet.last) render(window.tinynet.last);
});

document.getElementById("step").addEventListener("click", () => queue(async () => {
  if (!lastDrawing || chosenLabel === null) return;
  const lr = Number(document.getElementById("lr").value);
  const asked = cleared;
  const answer = await post("api/step", {...lastDrawing, label: chosenLabel, lr});
  if (asked !== cleared) return;  // the step was taken; the next drawing's answer shows it
  showError("");
  show(answer);
  const result = document.getElementById("step-result");
  const heading = document.createElement("h3");
  heading.textContent = `One SGD step (lr ${lr}) on your copy of the model: probabilities before (grey) → after (green)`;
  const rows = document.createElement("div");
  rows.className = "bars step-chart";
  bars(rows, answer.before, answer.before.map((_, d) => `${d}`), {top: chosenLabel, after: answer.probabilities});
  result.replaceChildren(heading, rows);
}));

document.getElementById("reset").addEventListener("click", () => {
  queue(async () => {
    await post("api/reset", {});
    showError("");
    document.getElementById("step-result").replaceChildren();
    document.getElementById("steps").textContent = "Back to the loaded weights.";
  });
  if (lastDrawing) explain();  // queued after the reset
});

fetch("api/model").then(r => r.json()).then(model => {
  const meta = model.metadata || {};
  const accuracy = meta.test_accuracy ? `, ${(100 * meta.test_accuracy).toFixed(2)}% on the MNIST test set` : "";
  document.getElementById("model-info").textContent =
    `${model.layers.length} layers, ${model.parameters.toLocaleString()} parameters${accuracy}` +
    (meta.made_by ? ` (made by: ${meta.made_by})` : "");
}).catch(error => showError(`Could not read the model: ${error.message}`));

redraw();
