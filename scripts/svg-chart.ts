/**
 * Static SVG charts for the docs (no script, no outside fonts): grouped bars and lines over dates. Every
 * plotted mark carries its series, its category and its value (`data-series`, `data-x`, `data-value`), and
 * the value axis's ticks carry theirs (`data-tick`), so a test can read a chart back and check that each
 * mark sits where its value puts it on the axis.
 */

export interface Series {
  name: string;
  /** One value per category; null where the series has no figure. */
  values: (number | null)[];
}

export interface ChartData {
  title: string;
  /** The value axis's label, with its unit. */
  unit: string;
  /** The categories along x (weight types, dates), in order. */
  categories: string[];
  series: Series[];
}

const WIDTH = 640;
const HEIGHT = 320;
const PLOT = { left: 64, right: 16, top: 40, bottom: 64 };
const COLORS = ['#3a7bd5', '#e07b39', '#3aa876', '#b04ac2', '#c9a227', '#d43f5e'];

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Rounds figures for attributes and labels without float noise (0.30000000000000004). */
function fixed(n: number): string {
  return String(Number(n.toPrecision(12)));
}

/** A "nice" step (1, 2 or 5 times a power of ten) giving about `count` ticks from 0 to `max`. */
function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const top = Math.ceil(max / step) * step;
  return Array.from({ length: Math.round(top / step) + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

function frame(data: ChartData, kind: 'bar' | 'line') {
  const values = data.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  if (values.length === 0) throw new Error(`chart "${data.title}": no values to plot`);
  const bad = values.find((v) => !Number.isFinite(v) || v < 0);
  if (bad !== undefined) throw new Error(`chart "${data.title}": ${bad} cannot be plotted (values must be finite and >= 0)`);
  for (const s of data.series) {
    if (s.values.length !== data.categories.length) throw new Error(`chart "${data.title}": series "${s.name}" has ${s.values.length} values for ${data.categories.length} categories`);
  }
  const axis = ticks(Math.max(...values));
  const top = axis[axis.length - 1]!;
  const plotWidth = WIDTH - PLOT.left - PLOT.right;
  const plotHeight = HEIGHT - PLOT.top - PLOT.bottom;
  const y = (v: number) => PLOT.top + plotHeight * (1 - v / top);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeXml(data.title)}" data-kind="${kind}" font-family="system-ui, sans-serif" font-size="12">`,
    `<title>${escapeXml(data.title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600" fill="#222">${escapeXml(data.title)}</text>`,
    `<text transform="translate(14 ${PLOT.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" fill="#555">${escapeXml(data.unit)}</text>`,
  ];
  for (const t of axis) {
    parts.push(
      `<g data-tick="${fixed(t)}"><line x1="${PLOT.left}" x2="${WIDTH - PLOT.right}" y1="${fixed(y(t))}" y2="${fixed(y(t))}" stroke="#ddd"/>` +
        `<text x="${PLOT.left - 6}" y="${fixed(y(t) + 4)}" text-anchor="end" fill="#555">${fixed(t)}</text></g>`,
    );
  }
  // The legend under the x labels, one entry per series.
  data.series.forEach((s, i) => {
    const x = PLOT.left + i * 150;
    parts.push(`<rect x="${x}" y="${HEIGHT - 18}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 14}" y="${HEIGHT - 9}" fill="#333">${escapeXml(s.name)}</text>`);
  });
  return { parts, y, plotWidth, plotHeight };
}

/** Side-by-side bars per category, one colour per series (e.g. this engine and llama.cpp per weight type). */
export function barChart(data: ChartData): string {
  const { parts, y, plotWidth } = frame(data, 'bar');
  const slot = plotWidth / data.categories.length;
  const barWidth = (slot * 0.7) / data.series.length;
  data.categories.forEach((category, c) => {
    const x0 = PLOT.left + c * slot + slot * 0.15;
    parts.push(`<text x="${fixed(PLOT.left + (c + 0.5) * slot)}" y="${HEIGHT - PLOT.bottom + 18}" text-anchor="middle" fill="#333">${escapeXml(category)}</text>`);
    data.series.forEach((s, i) => {
      const v = s.values[c];
      if (v === null || v === undefined) return;
      const top = y(v);
      parts.push(
        `<rect data-series="${escapeXml(s.name)}" data-x="${escapeXml(category)}" data-value="${fixed(v)}" x="${fixed(x0 + i * barWidth)}" y="${fixed(top)}" width="${fixed(barWidth - 2)}" height="${fixed(y(0) - top)}" fill="${COLORS[i % COLORS.length]}"><title>${escapeXml(`${s.name}, ${category}: ${fixed(v)} ${data.unit}`)}</title></rect>`,
      );
    });
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** One line per series across the categories (dates, in order); a lone point is drawn as a dot. */
export function lineChart(data: ChartData): string {
  const { parts, y, plotWidth } = frame(data, 'line');
  const step = data.categories.length > 1 ? plotWidth / (data.categories.length - 1) : 0;
  const x = (c: number) => (data.categories.length > 1 ? PLOT.left + c * step : PLOT.left + plotWidth / 2);
  data.categories.forEach((category, c) => {
    parts.push(`<text x="${fixed(x(c))}" y="${HEIGHT - PLOT.bottom + 18}" text-anchor="middle" fill="#333">${escapeXml(category)}</text>`);
  });
  data.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const points = s.values.flatMap((v, c) => (v === null ? [] : [{ c, v }]));
    if (points.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((p) => `${fixed(x(p.c))},${fixed(y(p.v))}`).join(' ')}"/>`);
    for (const p of points) {
      const category = data.categories[p.c]!;
      parts.push(
        `<circle data-series="${escapeXml(s.name)}" data-x="${escapeXml(category)}" data-value="${fixed(p.v)}" cx="${fixed(x(p.c))}" cy="${fixed(y(p.v))}" r="4" fill="${color}"><title>${escapeXml(`${s.name}, ${category}: ${fixed(p.v)} ${data.unit}`)}</title></circle>`,
      );
    }
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
