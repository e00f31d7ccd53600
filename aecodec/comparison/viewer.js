/* aecodec compare: the viewer of one image's page.

   Two of the page's images (the original, each decoder's output) side by side on one canvas, split
   by a divider the reader drags; both sides always show the same region at the same zoom. The view
   is three numbers: a zoom level (zoom = 2 ** level, 1/8 … 32) and the canvas position, in device
   pixels, of the image's top-left corner (x, y): image pixel (i, j) covers device pixels from
   (x + i * zoom, y + j * zoom). The canvas's backing store is sized in device pixels, so at 100 %
   one image pixel is one screen pixel; at zoom 1 and above x and y are whole numbers and smoothing
   is off, so every image pixel is a square of zoom × zoom screen pixels of exactly its value.

   The images come as PNG data URIs in the page's JSON blob; they are decoded with
   createImageBitmap without colour-space conversion or premultiplication, so the canvas holds the
   decoders' values. No network: nothing is fetched. */
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("aecodec-compare-data").textContent);
  const MIN_LEVEL = -3;
  const MAX_LEVEL = 5;
  const WHEEL_STEP = 50; // wheel travel (pixels) per zoom step: a mouse notch is ~100, a trackpad sends less per event
  const LINE_PIXELS = 33; // a wheel "line" (deltaMode 1) in pixels
  const BACKGROUND = "#2e2e2e"; // the stage's colour, around the image

  const $ = (id) => document.getElementById(id);
  const stage = $("stage");
  const canvas = $("view");
  const divider = $("divider");
  const context = canvas.getContext("2d", { alpha: false });
  const menus = { left: $("left-choice"), right: $("right-choice") };
  const labels = { left: $("left-label"), right: $("right-label") };
  const zoomText = $("zoom-level");
  const readout = $("pixel-readout");
  const rows = Array.from(document.querySelectorAll("#results tbody tr[data-codec]"));
  const images = new Map(data.images.map((entry) => [entry.id, entry]));
  const bitmaps = new Map(); // id -> ImageBitmap (or a decoded <img>), once ready
  const pixelValues = new Map(); // id -> ImageData, made when the readout first needs it

  const view = { left: data.left, right: data.right, level: 0, x: 0, y: 0, split: 0.5, sized: false };
  let drag = null; // {kind: "divider"} or {kind: "pan", clientX, clientY, x, y} while a pointer is down
  let wheelTravel = 0;

  const zoom = () => 2 ** view.level;
  const clamp = (value, low, high) => Math.min(high, Math.max(low, value));
  const splitColumn = () => Math.round(view.split * canvas.width); // the first device column of the right side

  // ------------------------------------------------------------------ decoding
  async function decode(entry) {
    const binary = atob(entry.src.slice(entry.src.indexOf(",") + 1));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const blob = new Blob([bytes], { type: "image/png" });
    try {
      return await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch (unsupported) {
      // A browser without createImageBitmap's options: an <img> (an untagged PNG is sRGB, as the canvas).
      const img = new Image();
      img.src = entry.src;
      await img.decode();
      return img;
    }
  }

  async function decodeAll() {
    // the two shown first, then the others in the page's order
    const order = [...new Set([view.left, view.right, ...images.keys()])];
    for (const id of order) {
      bitmaps.set(id, await decode(images.get(id)));
      if (id === view.left || id === view.right) draw();
    }
  }

  // ------------------------------------------------------------------ the view
  function fitLevel() {
    let level = MAX_LEVEL;
    while (level > MIN_LEVEL && (data.width * 2 ** level > canvas.width || data.height * 2 ** level > canvas.height)) {
      level -= 1;
    }
    return level;
  }

  function clampAxis(offset, extent, size) {
    // an image smaller than the canvas is centred; a larger one always covers the canvas
    if (extent <= size) return Math.round((size - extent) / 2);
    return Math.round(clamp(offset, Math.ceil(size - extent), 0));
  }

  function clampView() {
    view.x = clampAxis(view.x, data.width * zoom(), canvas.width);
    view.y = clampAxis(view.y, data.height * zoom(), canvas.height);
  }

  function zoomAt(level, px, py) {
    // keep the image point under device pixel (px, py) where it is
    level = clamp(level, MIN_LEVEL, MAX_LEVEL);
    const ratio = 2 ** (level - view.level);
    view.x = px - (px - view.x) * ratio;
    view.y = py - (py - view.y) * ratio;
    view.level = level;
    clampView();
    draw();
  }

  const zoomAtCentre = (level) => zoomAt(level, canvas.width / 2, canvas.height / 2);

  function fit() {
    view.level = fitLevel();
    clampView();
    draw();
  }

  function show(side, id) {
    if (!images.has(id)) return;
    view[side] = id;
    menus[side].value = id;
    draw();
  }

  function swap() {
    [view.left, view.right] = [view.right, view.left];
    menus.left.value = view.left;
    menus.right.value = view.right;
    draw();
  }

  // ------------------------------------------------------------------ drawing
  function paint(id, column0, column1) {
    // the part of image `id` that falls in device columns [column0, column1)
    const bitmap = bitmaps.get(id);
    const z = zoom();
    if (!bitmap || column1 <= column0) return;
    const sx0 = Math.max(0, Math.floor((column0 - view.x) / z));
    const sx1 = Math.min(data.width, Math.ceil((column1 - view.x) / z));
    const sy0 = Math.max(0, Math.floor(-view.y / z));
    const sy1 = Math.min(data.height, Math.ceil((canvas.height - view.y) / z));
    if (sx1 <= sx0 || sy1 <= sy0) return;
    context.save();
    context.beginPath();
    context.rect(column0, 0, column1 - column0, canvas.height);
    context.clip();
    context.imageSmoothingEnabled = z < 1;
    context.imageSmoothingQuality = "high";
    context.drawImage(bitmap, sx0, sy0, sx1 - sx0, sy1 - sy0,
      view.x + sx0 * z, view.y + sy0 * z, (sx1 - sx0) * z, (sy1 - sy0) * z);
    context.restore();
  }

  function draw() {
    if (!view.sized) return;
    const split = splitColumn();
    context.fillStyle = BACKGROUND;
    context.fillRect(0, 0, canvas.width, canvas.height);
    paint(view.left, 0, split);
    paint(view.right, split, canvas.width);
    divider.style.left = `${(100 * split) / canvas.width}%`;
    const z = zoom();
    zoomText.value = `${z >= 1 ? z * 100 : +(z * 100).toFixed(1)}\u00a0%`;
    $("zoom-in").disabled = view.level >= MAX_LEVEL;
    $("zoom-out").disabled = view.level <= MIN_LEVEL;
    for (const side of ["left", "right"]) {
      const entry = images.get(view[side]);
      labels[side].textContent = bitmaps.has(entry.id) ? entry.caption : `${entry.caption} (decoding…)`;
      labels[side].style.setProperty("--swatch", entry.colour);
    }
    for (const row of rows) {
      row.classList.toggle("shown-left", row.dataset.codec === view.left);
      row.classList.toggle("shown-right", row.dataset.codec === view.right);
    }
  }

  function resize(width, height) {
    if (width === canvas.width && height === canvas.height && view.sized) return;
    canvas.width = width;
    canvas.height = height;
    if (!view.sized) {
      view.sized = true;
      view.level = Math.min(0, fitLevel()); // 100 % when the image fits, else the largest zoom that fits
    }
    clampView();
    draw();
  }

  function observeSize() {
    // The backing store in device pixels: the CSS size times devicePixelRatio, or exactly the
    // browser's own count where it reports one that agrees (Chromium's emulation of another scale
    // reports the CSS size there).
    const observer = new ResizeObserver((entries) => {
      const entry = entries[entries.length - 1];
      const ratio = window.devicePixelRatio || 1;
      let width = Math.round(entry.contentRect.width * ratio);
      let height = Math.round(entry.contentRect.height * ratio);
      const box = entry.devicePixelContentBoxSize && entry.devicePixelContentBoxSize[0];
      if (box && Math.abs(box.inlineSize - width) <= 1 && Math.abs(box.blockSize - height) <= 1) {
        [width, height] = [box.inlineSize, box.blockSize];
      }
      resize(width, height);
    });
    try {
      observer.observe(canvas, { box: "device-pixel-content-box" });
    } catch (unsupported) {
      observer.observe(canvas);
    }
  }

  // ------------------------------------------------------------------ the pixel under the pointer
  function valuesOf(id) {
    if (!pixelValues.has(id)) {
      const bitmap = bitmaps.get(id);
      if (!bitmap) return null;
      const scratch = document.createElement("canvas");
      scratch.width = data.width;
      scratch.height = data.height;
      const scratchContext = scratch.getContext("2d", { willReadFrequently: true });
      scratchContext.drawImage(bitmap, 0, 0);
      pixelValues.set(id, scratchContext.getImageData(0, 0, data.width, data.height));
    }
    return pixelValues.get(id);
  }

  function updateReadout(event) {
    const [px, py] = devicePoint(event);
    const i = Math.floor((px - view.x) / zoom());
    const j = Math.floor((py - view.y) / zoom());
    if (i < 0 || j < 0 || i >= data.width || j >= data.height) {
      readout.value = readout.defaultValue; // the hint the page was written with
      return;
    }
    const rgb = (id) => {
      const values = valuesOf(id);
      if (!values) return "…";
      const k = 4 * (j * data.width + i);
      return `${values.data[k]} ${values.data[k + 1]} ${values.data[k + 2]}`;
    };
    readout.value = `x ${i}  y ${j}   left ${rgb(view.left)}   right ${rgb(view.right)}`;
  }

  // ------------------------------------------------------------------ input
  function devicePoint(event) {
    const rect = canvas.getBoundingClientRect();
    return [((event.clientX - rect.left) * canvas.width) / rect.width,
      ((event.clientY - rect.top) * canvas.height) / rect.height];
  }

  divider.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation();
    divider.setPointerCapture(event.pointerId);
    drag = { kind: "divider" };
  });

  stage.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || drag) return;
    event.preventDefault();
    stage.setPointerCapture(event.pointerId);
    drag = { kind: "pan", clientX: event.clientX, clientY: event.clientY, x: view.x, y: view.y };
    stage.classList.add("panning");
  });

  stage.addEventListener("pointermove", (event) => {
    if (drag && drag.kind === "divider") {
      const rect = canvas.getBoundingClientRect();
      view.split = clamp((event.clientX - rect.left) / rect.width, 0, 1);
      draw();
    } else if (drag) {
      const scale = canvas.width / canvas.getBoundingClientRect().width; // device pixels per CSS pixel
      view.x = drag.x + (event.clientX - drag.clientX) * scale;
      view.y = drag.y + (event.clientY - drag.clientY) * scale;
      clampView();
      draw();
    }
    updateReadout(event);
  });

  const endDrag = () => {
    drag = null;
    stage.classList.remove("panning");
  };
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", endDrag);
  stage.addEventListener("pointerleave", () => {
    if (!drag) readout.value = readout.defaultValue;
  });

  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    wheelTravel += event.deltaY * (event.deltaMode === 1 ? LINE_PIXELS : event.deltaMode === 2 ? canvas.height : 1);
    if (Math.abs(wheelTravel) < WHEEL_STEP) return;
    const step = wheelTravel < 0 ? 1 : -1; // wheel up (away from the reader) zooms in
    wheelTravel = 0;
    const [px, py] = devicePoint(event);
    zoomAt(view.level + step, px, py);
  }, { passive: false });

  for (const side of ["left", "right"]) {
    menus[side].addEventListener("change", () => show(side, menus[side].value));
  }
  $("zoom-in").addEventListener("click", () => zoomAtCentre(view.level + 1));
  $("zoom-out").addEventListener("click", () => zoomAtCentre(view.level - 1));
  $("zoom-100").addEventListener("click", () => zoomAtCentre(0));
  $("zoom-fit").addEventListener("click", fit);

  for (const row of rows) {
    row.addEventListener("click", (event) => {
      if (!event.target.closest("a")) show("right", row.dataset.codec);
    });
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") show("right", row.dataset.codec);
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const target = event.target;
    if (target.isContentEditable || ["INPUT", "TEXTAREA"].includes(target.tagName)) return;
    // a focused button or link keeps Space and Enter for itself
    if (["BUTTON", "A"].includes(target.tagName) && (event.key === " " || event.key === "Enter")) return;
    const digit = /^(?:Digit|Numpad)([1-9])$/.exec(event.code);
    let handled = true;
    if (digit) {
      const entry = data.images[Number(digit[1]) - 1];
      if (entry) show(event.shiftKey ? "left" : "right", entry.id);
    } else if (event.key === " ") {
      swap();
    } else if (event.key === "+" || event.key === "=") {
      zoomAtCentre(view.level + 1);
    } else if (event.key === "-" || event.key === "_") {
      zoomAtCentre(view.level - 1);
    } else if (event.key === "0" || event.code === "Digit0" || event.code === "Numpad0") {
      zoomAtCentre(0);
    } else if (event.key === "f" || event.key === "F") {
      fit();
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });

  observeSize();
  decodeAll().catch((error) => console.error("aecodec compare: an image could not be decoded:", error));
})();
