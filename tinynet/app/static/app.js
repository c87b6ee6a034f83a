// The draw-a-digit page: draws, asks the server (tinynet's own layers) and paints what it answers.
"use strict";

const SEND_SIDE = 140;  // the pad (280 px) is sent at half resolution: prepare_digit scales the ink to 20 px anyway
const MAX_COLUMNS = 32; // a vector layer (Dense, Flatten) is drawn in rows of at most this many values

const pad = document.getElementById("pad");
const padContext = pad.getContext("2d");
const strokes = [];     // each stroke: {width, points: [[x, y], ...]}, kept for undo
let current = null;
let chosenLabel = null; // null: the loss is taken against the model's own answer
let lastDrawing = null;
let busy = Promise.resolve();

window.tinynet = {last: null, requests: 0, answers: 0};  // read by the browser test

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

document.getElementById("undo").addEventListener("click", () => {
  strokes.pop();
  redraw();
  strokes.length ? explain() : clearAnswers();
});
document.getElementById("clear").addEventListener("click", () => {
  strokes.length = 0;
  redraw();
  clearAnswers();
});

// The pad's ink, 0 (paper) to 255 (ink), at SEND_SIDE x SEND_SIDE, row by row.
function drawing() {
  const small = document.createElement("canvas");
  small.width = small.height = SEND_SIDE;
  const context = small.getContext("2d");
  context.drawImage(pad, 0, 0, SEND_SIDE, SEND_SIDE);
  const rgba = context.getImageData(0, 0, SEND_SIDE, SEND_SIDE).data;
  const pixels = new Array(SEND_SIDE * SEND_SIDE);
  for (let i = 0; i < pixels.length; i++) pixels[i] = 255 - rgba[i * 4];
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
  if (!response.ok) throw new Error(answer.error || `The server answered ${response.status}.`);
  return answer;
}

function showError(message) {
  const banner = document.getElementById("error");
  banner.textContent = message;
  banner.hidden = !message;
}

// Requests run one after another, so answers arrive in the order the strokes ended.
function queue(task) {
  busy = busy.then(task).catch(error => showError(error.message));
  return busy;
}

function explain() {
  lastDrawing = drawing();
  return queue(async () => {
    const body = {...lastDrawing};
    if (chosenLabel !== null) body.label = chosenLabel;
    const answer = await post("api/explain", body);
    showError("");
    show(answer);
  });
}

function clearAnswers() {
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
function decode(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function paint(canvas, levels, offset, width, height, table, scale) {
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    const level = levels[offset + i];
    image.data.set(table.subarray(level * 3, level * 3 + 3), i * 4);
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function legend(maps, anchors) {
  const box = document.createElement("div");
  box.className = "legend";
  const low = document.createElement("span");
  low.textContent = format(maps.low);
  const ramp = document.createElement("span");
  ramp.className = "ramp";
  ramp.style.background = rampCss(anchors);
  const high = document.createElement("span");
  high.textContent = format(maps.high);
  box.append(low, ramp, high);
  return box;
}

function format(value) {
  if (value === 0) return "0";
  const size = Math.abs(value);
  return size >= 0.01 && size < 1000 ? value.toFixed(size < 1 ? 3 : 2) : value.toExponential(1);
}

// Up to 8 maps of a layer (or one vector, wrapped into rows), each on the layer's one colour scale.
function mapsFigure(maps, table, anchors, title) {
  const figure = document.createElement("figure");
  const heading = document.createElement("figcaption");
  heading.textContent = title;
  const row = document.createElement("div");
  row.className = "maps";
  const levels = decode(maps.data);
  const size = maps.height * maps.width;
  for (let channel = 0; channel < maps.shown; channel++) {
    const canvas = document.createElement("canvas");
    if (maps.height === 1) {  // a vector: wrap it, padding the last row with the scale's middle
      // A flattened square image (784 = 28 x 28) keeps its rows; anything else wraps at MAX_COLUMNS.
      const side = Math.round(Math.sqrt(maps.width));
      const columns = side * side === maps.width && side > MAX_COLUMNS && side <= 64 ? side
                                                                                     : Math.min(MAX_COLUMNS, maps.width);
      const rows = Math.ceil(maps.width / columns);
      const wrapped = new Uint8Array(rows * columns).fill(table === DIVERGING_TABLE ? 128 : 0);
      wrapped.set(levels.subarray(0, maps.width));
      paint(canvas, wrapped, 0, columns, rows, table, columns > 16 ? 8 : 16);
    } else {
      paint(canvas, levels, channel * size, maps.width, maps.height, table, Math.max(2, Math.floor(84 / maps.width)));
    }
    row.append(canvas);
  }
  figure.append(heading, row, legend(maps, anchors));
  return figure;
}

function bars(container, values, names, {top = -1, after = null} = {}) {
  container.replaceChildren();
  const largest = Math.max(...values, ...(after || []), 1e-12);
  values.forEach((value, i) => {
    const row = document.createElement("div");
    row.className = "row" + (i === top ? " top" : "");
    row.dataset.index = i;
    const name = document.createElement("span");
    name.textContent = names[i];
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${100 * value / largest}%`;
    track.append(fill);
    if (after) {
      const moved = document.createElement("div");
      moved.className = "fill after";
      moved.style.width = `${100 * after[i] / largest}%`;
      track.append(moved);
    }
    const number = document.createElement("span");
    number.className = "value";
    number.textContent = after ? `${value.toFixed(3)}→${after[i].toFixed(3)}` : value.toFixed(3);
    row.append(name, track, number);
    container.append(row);
  });
}

function show(answer) {
  window.tinynet.last = answer;
  window.tinynet.answers++;
  const seen = document.getElementById("seen");
  const flat = new Uint8Array(28 * 28);
  answer.image.flat().forEach((v, i) => (flat[i] = Math.round(v * 255)));
  const grey = lookupTable([[0, 0, 0], [255, 255, 255]]);
  paint(seen, flat, 0, 28, 28, grey, 5);

  const p = answer.probabilities;
  document.getElementById("prediction").textContent =
    `It reads ${answer.prediction} (p = ${p[answer.prediction].toFixed(3)})`;
  bars(document.getElementById("probabilities"), p, p.map((_, d) => `${d}`), {top: answer.prediction});

  document.getElementById("loss").textContent =
    `Loss against label ${answer.label}${chosenLabel === null ? " (its own answer: pick the right digit)" : ""}: ` +
    `L = ${answer.loss.toFixed(4)}`;
  const saliency = answer.saliency;
  paint(document.getElementById("saliency"), decode(saliency.data), 0, 28, 28, DIVERGING_TABLE, 5);
  document.getElementById("saliency-legend").replaceChildren(...legend(saliency, DIVERGING).childNodes);
  document.getElementById("step").disabled = chosenLabel === null;
  if (answer.steps) document.getElementById("steps").textContent = `${answer.steps} step(s) taken on the copy`;

  const norms = answer.weight_grads.map(w => w.norm);
  bars(document.getElementById("weight-grads"), norms, answer.weight_grads.map(w => w.name));
  document.querySelectorAll("#weight-grads .value").forEach((cell, i) => (cell.textContent = format(norms[i])));

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
    pair.append(mapsFigure(out, SEQUENTIAL_TABLE, VIRIDIS, "output"),
                mapsFigure(layer.grad, DIVERGING_TABLE, DIVERGING, "dL/d(output)"));
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
    chosenLabel = chosenLabel === digit ? null : digit;
    labels.querySelectorAll("button").forEach(b => b.classList.toggle("chosen", Number(b.dataset.digit) === chosenLabel));
    if (lastDrawing) explain();
  });
  labels.append(button);
}

document.getElementById("step").addEventListener("click", () => queue(async () => {
  if (!lastDrawing || chosenLabel === null) return;
  const lr = Number(document.getElementById("lr").value);
  const answer = await post("api/step", {...lastDrawing, label: chosenLabel, lr});
  showError("");
  show(answer);
  const result = document.getElementById("step-result");
  const heading = document.createElement("h3");
  heading.textContent = `One SGD step (lr ${lr}) on a copy of the model: probabilities before → after`;
  const rows = document.createElement("div");
  rows.className = "bars";
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
