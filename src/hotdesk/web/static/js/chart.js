// A small inline SVG line chart of a pool's ready / assigned / waiting counts over time.
import { h } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 320;
const HGT = 120;
const PAD = 22;
const SERIES = [
  ["ready", "#1e7b34"],
  ["assigned", "#0b5cad"],
  ["waiting", "#a4262c"],
];

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export function drawChart(name, samples) {
  const last = samples[samples.length - 1] || { ready: 0, assigned: 0, waiting: 0 };
  const summary = `${name}: ${last.ready} ready, ${last.assigned} assigned, ${last.waiting} waiting`;
  const root = svg("svg", { viewBox: `0 0 ${W} ${HGT}`, role: "img", "aria-label": `Chart of ${summary}` });
  const top = Math.max(1, ...samples.flatMap((s) => [s.ready, s.assigned, s.waiting]));
  root.append(svg("line", { x1: PAD, y1: HGT - PAD, x2: W - 4, y2: HGT - PAD, stroke: "#8c96a0" }));
  const label = svg("text", { x: 2, y: 12, "font-size": 10, fill: "#55606d" });
  label.textContent = String(top);
  root.append(label);
  if (samples.length > 0) {
    const t0 = samples[0].t;
    const span = Math.max(1, samples[samples.length - 1].t - t0);
    for (const [key, color] of SERIES) {
      const points = samples.map((s) => {
        const x = PAD + ((s.t - t0) / span) * (W - PAD - 6);
        const y = HGT - PAD - (s[key] / top) * (HGT - PAD - 14);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      if (points.length === 1) points.push(points[0].replace(/^[^,]+/, String(W - 6)));
      root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    }
  }
  const legend = h("p", { class: "legend" }, ...SERIES.map(([key, color]) => h("span", { style: `color:${color}` }, key)));
  return h("figure", { "data-chart": name }, root, legend, h("figcaption", {}, summary));
}
