// ANSI SGR escape sequences of a screen → styled spans; every other sequence is dropped.

import { el, visible } from "./dom.js";

// Any escape sequence: CSI (params, intermediates, final; possibly cut off), OSC up to BEL or
// ST, DCS/SOS/PM/APC up to ST, or a short ESC sequence. Only CSI … m is interpreted.
const ESC_RE = /\x1b(?:\[([0-?]*)[ -/]*([@-~])?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -/]*[0-~]?)/g;
const CTRL_RE = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g; // keeps \t and \n
const BASE16 = [
  "#3b4048", "#e06c75", "#98c379", "#d19a66", "#61afef", "#c678dd", "#56b6c2", "#c8ccd4",
  "#5c6370", "#ff7b86", "#b5e890", "#e5c07b", "#82c4ff", "#de9bf0", "#7fd8e3", "#ffffff",
];

const plainStyle = () => ({ bold: false, dim: false, italic: false, underline: false, inverse: false, strike: false, fg: null, bg: null });

export function ansiToFragment(text) {
  const frag = document.createDocumentFragment();
  const st = plainStyle();
  let last = 0, m;
  ESC_RE.lastIndex = 0;
  while ((m = ESC_RE.exec(text))) {
    emitText(frag, text.slice(last, m.index), st);
    last = ESC_RE.lastIndex;
    if (m[2] === "m" && /^[\d;:]*$/.test(m[1])) applySgr(st, m[1]);
  }
  emitText(frag, text.slice(last), st);
  return frag;
}

function emitText(frag, raw, st) {
  const text = visible(raw.replace(CTRL_RE, ""));
  if (!text) return;
  if (Object.values(st).every((v) => !v)) return frag.append(text);
  const span = el("span", null, text);
  let fg = st.fg, bg = st.bg;
  if (st.inverse) [fg, bg] = [bg || "var(--screen-bg)", fg || "var(--screen-fg)"];
  if (fg) span.style.color = fg;
  if (bg) span.style.backgroundColor = bg;
  if (st.bold) span.style.fontWeight = "bold";
  if (st.dim) span.style.opacity = "0.6";
  if (st.italic) span.style.fontStyle = "italic";
  const deco = [st.underline && "underline", st.strike && "line-through"].filter(Boolean).join(" ");
  if (deco) span.style.textDecoration = deco;
  frag.append(span);
}

function applySgr(st, params) {
  const parts = params === "" ? ["0"] : params.split(";");
  for (let i = 0; i < parts.length; i++) {
    const sub = parts[i].split(":").map(Number); // "4:3", "38:2::r:g:b" sub-parameters
    const n = sub[0];
    if (n === 38 || n === 48) {
      let nums;
      if (sub.length > 1) {
        nums = sub.slice(1);
        if (nums[0] === 2 && nums.length > 4) nums = [2, ...nums.slice(-3)]; // skip colour-space id
      } else {
        nums = parts.slice(i + 1, i + 5).map(Number);
        i += nums[0] === 5 ? 2 : nums[0] === 2 ? 4 : parts.length;
      }
      const color = extendedColor(nums);
      if (color) st[n === 38 ? "fg" : "bg"] = color;
    } else {
      applySgrCode(st, n, sub);
    }
  }
}

// The on/off attributes; colours are handled below.
const SGR_ATTRS = {
  1: { bold: true }, 2: { dim: true }, 3: { italic: true }, 4: { underline: true }, 7: { inverse: true },
  9: { strike: true }, 22: { bold: false, dim: false }, 23: { italic: false }, 24: { underline: false },
  27: { inverse: false }, 29: { strike: false }, 39: { fg: null }, 49: { bg: null },
};

function applySgrCode(st, n, sub) {
  if (n === 0) Object.assign(st, plainStyle());
  else if (n === 4 && sub[1] === 0) st.underline = false; // "4:0" is underline off
  else if (SGR_ATTRS[n]) Object.assign(st, SGR_ATTRS[n]);
  else if (n >= 30 && n <= 37) st.fg = BASE16[n - 30];
  else if (n >= 90 && n <= 97) st.fg = BASE16[n - 90 + 8];
  else if (n >= 40 && n <= 47) st.bg = BASE16[n - 40];
  else if (n >= 100 && n <= 107) st.bg = BASE16[n - 100 + 8];
}

function extendedColor(nums) {
  if (nums[0] === 5 && nums.length >= 2) return palette256(nums[1]);
  if (nums[0] === 2 && nums.length >= 4) return rgb(nums[1], nums[2], nums[3]);
  return null;
}

function palette256(n) {
  if (!(n >= 0 && n <= 255)) return null;
  if (n < 16) return BASE16[n];
  if (n < 232) {
    const level = [0, 95, 135, 175, 215, 255];
    n -= 16;
    return rgb(level[Math.floor(n / 36)], level[Math.floor(n / 6) % 6], level[n % 6]);
  }
  const g = 8 + 10 * (n - 232);
  return rgb(g, g, g);
}

function rgb(r, g, b) {
  const c = (v) => Math.max(0, Math.min(255, v | 0));
  return `rgb(${c(r)}, ${c(g)}, ${c(b)})`;
}
