/**
 * The docs site's generated charts and pages: every mark of a committed chart is read back from the SVG
 * and must show its data file's value, both in its attributes and in where it is drawn against the axis
 * ticks;, and `docs:generate --check` finds the committed pages fresh.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { engineCharts, historyCharts, performanceData, readHistory, readUsage, usageCharts } from '../scripts/docs-data.js';
import { barChart, lineChart, type ChartData } from '../scripts/svg-chart.js';
import { runProgram } from './helpers.js';

interface Mark {
  series: string;
  x: string;
  value: number;
  /** The drawn value: the bar's top or the dot's centre, mapped back through the axis ticks. */
  drawn: number;
}

const attr = (tag: string, name: string) => {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  if (!m) throw new Error(`no ${name} in ${tag}`);
  return m[1]!;
};

/** Reads a chart's marks, mapping their positions back to values with the two outermost ticks. */
function readChart(svg: string): Mark[] {
  const ticks = [...svg.matchAll(/<g data-tick="([^"]+)"><line [^>]*y1="([^"]+)"/g)].map((m) => ({ value: Number(m[1]), y: Number(m[2]) }));
  expect(ticks.length).toBeGreaterThanOrEqual(2);
  const [low, high] = [ticks[0]!, ticks[ticks.length - 1]!];
  const valueAt = (y: number) => low.value + ((y - low.y) / (high.y - low.y)) * (high.value - low.value);
  return [...svg.matchAll(/<(rect|circle) data-series[^>]*>/g)].map((m) => {
    const tag = m[0];
    const y = m[1] === 'rect' ? Number(attr(tag, 'y')) : Number(attr(tag, 'cy'));
    if (m[1] === 'rect') expect(Number(attr(tag, 'y')) + Number(attr(tag, 'height'))).toBeCloseTo(low.y, 6); // bars stand on 0
    return { series: attr(tag, 'data-series'), x: attr(tag, 'data-x'), value: Number(attr(tag, 'data-value')), drawn: valueAt(y) };
  });
}

/** The marks a chart's data should give: one per non-null value. */
function expectedMarks(data: ChartData): { series: string; x: string; value: number }[] {
  return data.series.flatMap((s) => s.values.flatMap((v, i) => (v === null ? [] : [{ series: s.name, x: data.categories[i]!, value: v }])));
}

function expectChartShows(file: string, data: ChartData): void {
  // Compared in one order (bars are drawn category by category, lines series by series).
  const byKey = (a: { series: string; x: string }, b: { series: string; x: string }) => `${a.series}\0${a.x}`.localeCompare(`${b.series}\0${b.x}`);
  const marks = readChart(readFileSync(join('docs', 'public', 'charts', file), 'utf8')).sort(byKey);
  const expected = expectedMarks(data).sort(byKey);
  expect(marks.map(({ series, x }) => ({ series, x }))).toEqual(expected.map(({ series, x }) => ({ series, x })));
  const top = Math.max(...expected.map((e) => e.value));
  marks.forEach((mark, i) => {
    // The SVG writes 12 significant digits; the position must match to a millionth of the axis.
    expect(Math.abs(mark.value - expected[i]!.value)).toBeLessThanOrEqual(1e-11 * Math.abs(expected[i]!.value));
    expect(Math.abs(mark.drawn - expected[i]!.value)).toBeLessThanOrEqual(1e-6 * top);
  });
}

describe('charts', () => {
  const performance = performanceData();
  const engine = engineCharts(performance);

  test('the engine charts plot docs/data/performance.yaml', () => {
    expectChartShows('engine-prefill.svg', engine['engine-prefill']);
    expectChartShows('engine-decode.svg', engine['engine-decode']);
    // The figures themselves, not only what the loader made of them.
    const decode = engine['engine-decode'].series;
    expect(decode.map((s) => s.values[0])).toEqual([performance.engineVsLlamaCpp.runs[0]!.decode.engine, performance.engineVsLlamaCpp.runs[0]!.decode.llamaCpp]);
  });

  test('the history charts plot the benchmark results files', () => {
    const history = readHistory();
    const charts = historyCharts(history);
    expectChartShows('history-decode.svg', charts['history-decode']);
    expectChartShows('history-kld.svg', charts['history-kld']);
    const latest = history.at(-1)!;
    expect(charts['history-decode'].series.find((s) => s.name === `${latest.model} ${latest.quant}`)!.values.at(-1)).toBe(latest.benchmark!.decodeTps);
  });

  test('the usage charts plot docs/data/usage.json', () => {
    const usage = readUsage();
    const charts = usageCharts(usage);
    expectChartShows('usage-requests.svg', charts['usage-requests']);
    expectChartShows('usage-latency.svg', charts['usage-latency']);
    const last = usage.days.at(-1)!;
    expect(charts['usage-requests'].series.map((s) => s.values.at(-1))).toEqual([last.requests, last.clients, last.rateLimited]);
    expect(charts['usage-latency'].series.map((s) => s.values.at(-1))).toEqual([last.p50Ms, last.p95Ms]);
  });

  test('a mark drawn at the wrong height is caught', () => {
    const data: ChartData = { title: 't', unit: 'u', categories: ['a', 'b', 'c'], series: [{ name: 's', values: [1, 2.5, null] }] };
    const svg = lineChart(data);
    expect(readChart(svg).map((m) => Number(m.drawn.toFixed(6)))).toEqual([1, 2.5]);
    const moved = svg.replace(/(data-value="2\.5"[^>]*cy=")([^"]+)/, (_m, head: string, cy: string) => `${head}${Number(cy) - 10}`);
    expect(readChart(moved)[1]!.drawn).not.toBeCloseTo(2.5, 3);
  });

  test('bars and ticks', () => {
    const svg = barChart({ title: 'x <y>', unit: 'tok/s', categories: ['q40', 'q80'], series: [{ name: 'a', values: [120, 0] }, { name: 'b', values: [null, 7] }] });
    expect(readChart(svg).map((m) => [m.series, m.x, m.value, Number(m.drawn.toFixed(6))])).toEqual([['a', 'q40', 120, 120], ['a', 'q80', 0, 0], ['b', 'q80', 7, 7]]);
    expect(svg).toContain('<title>x &lt;y&gt;</title>');
    expect(() => barChart({ title: 'bad', unit: 'u', categories: ['a'], series: [{ name: 's', values: [Number.NaN] }] })).toThrow('chart "bad": NaN cannot be plotted');
    expect(() => barChart({ title: 'short', unit: 'u', categories: ['a', 'b'], series: [{ name: 's', values: [1] }] })).toThrow('series "s" has 1 values for 2 categories');
  });
});

describe('docs:generate', () => {
  test('the committed pages are what the sources give', () => {
    const r = runProgram(process.execPath, ['dist/scripts/docs-generate.js', '--check']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('the generated docs pages are fresh');
    expect(r.status).toBe(0);
  });
});
