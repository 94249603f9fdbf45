/**
 * The documentation site in a real browser: the site is built (`npm run docs:build`), served on loopback,
 * and opened in Debian's chromium through playwright-core. Every page of the sidebar and the home page
 * render without console errors and without a request leaving the site, on a desktop (1280x800) and a
 * phone (390x844; screenshots in test-output/screenshots, which CI keeps); the phone menu works; the local
 * search finds and opens the expected pages; every internal link and anchor resolves, and a broken one is
 * caught. Fails, naming the program, where chromium is missing.
 * @needs chromium
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { brokenLinks, fileFor } from '../site-crawl.js';
import { removeDir, tempDir } from '../helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DIST = join('docs', '.vitepress', 'dist');
const SCREENSHOTS = join('test-output', 'screenshots');
const VIEWPORTS = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
];

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json', '.woff2': 'font/woff2', '.png': 'image/png' };

/** Serves a built site as App Platform does: a path's file, `.html` added, a 404 page with status 404. */
function serve(dist: string): Promise<{ server: Server; base: string }> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const file = fileFor(dist, path);
    response.writeHead(file ? 200 : 404, { 'Content-Type': TYPES[extname(file ?? '.html')] ?? 'application/octet-stream' });
    response.end(readFileSync(file ?? join(dist, '404.html')));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

let browser: Browser;
let server: Server;
let base: string;
let sidebar: { text: string; href: string }[];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (.ci/run does), or set CHROMIUM_PATH`);
  execFileSync('npm', ['run', 'docs:build'], { stdio: 'pipe' });
  ({ server, base } = await serve(DIST));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: VIEWPORTS[0]! });
  await page.goto(`${base}/getting-started.html`);
  sidebar = await page.$$eval('.VPSidebar a.VPLink', (links) => links.map((a) => ({ text: a.textContent!.trim(), href: new URL((a as HTMLAnchorElement).href).pathname })));
  await page.close();
  mkdirSync(SCREENSHOTS, { recursive: true });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

/** A page that records console errors, page errors, failed requests and requests that leave the site. */
async function watchedPage(viewport: { width: number; height: number }): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`request outside the site: ${r.url()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`);
  });
  return { page, problems };
}

async function open(path: string, viewport: { width: number; height: number }): Promise<{ page: Page; problems: string[] }> {
  const watched = await watchedPage(viewport);
  await watched.page.goto(`${base}${path}`, { waitUntil: 'networkidle' });
  return watched;
}

describe('the sidebar', () => {
  test('has every section and its pages', () => {
    const paths = sidebar.map((l) => l.href);
    for (const p of ['/getting-started.html', '/conversion-guide.html', '/engine.html', '/gpu.html', '/distributed.html', '/demo-api.html', '/reference/http-api.html', '/reference/cli.html', '/workflows.html', '/actions.html', '/runner-setup.html', '/model-format.html', '/performance.html', '/benchmark-history.html', '/security.html', '/models.html']) {
      expect(paths).toContain(p);
    }
  });
});

describe.each(VIEWPORTS)('at $width x $height ($name)', (viewport) => {
  test('the home page and every sidebar page render cleanly', async () => {
    const pages = ['/', ...new Set(sidebar.map((l) => l.href).filter((p) => p !== '/'))];
    const { page, problems: found } = await watchedPage(viewport);
    const problems: string[] = [];
    for (const path of pages) {
      found.length = 0;
      await page.goto(`${base}${path}`, { waitUntil: 'load' });
      const heading = page.locator(path === '/' ? '.VPHero .name' : '.vp-doc h1').first();
      await heading.waitFor({ state: 'visible', timeout: 10_000 }).catch(() => found.push('no visible heading'));
      // Nothing wider than the screen: a phone must not scroll sideways.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) found.push(`the page is ${overflow} px wider than the window`);
      const name = path === '/' ? 'home' : path.slice(1).replace(/\.html$/, '').replace(/\//g, '-');
      await page.screenshot({ path: join(SCREENSHOTS, `${name}-${viewport.name}.png`) });
      problems.push(...found.map((p) => `${path}: ${p}`));
    }
    await page.close();
    expect(problems).toEqual([]);
  }, 180_000);
});

test('the performance page shows its charts', async () => {
  const { page, problems } = await open('/performance.html', VIEWPORTS[0]!);
  const widths = await page.$$eval('img[src$=".svg"]', (images) => images.map((i) => (i as HTMLImageElement).naturalWidth));
  expect(widths.length).toBe(2);
  for (const w of widths) expect(w).toBeGreaterThan(0);
  expect(problems).toEqual([]);
  await page.close();
});

test('the phone menu opens the navigation and the sidebar, and a sidebar link navigates', async () => {
  const { page, problems } = await open('/getting-started.html', VIEWPORTS[1]!);
  expect(await page.locator('.VPSidebar').isVisible()).toBe(true); // present, but off screen until opened
  expect(await page.locator('.VPSidebar.open').count()).toBe(0);
  await page.click('.VPNavBarHamburger');
  await page.locator('.VPNavScreen').waitFor({ state: 'visible' });
  expect(await page.locator('.VPNavScreen a', { hasText: 'Models' }).isVisible()).toBe(true);
  await page.click('.VPNavBarHamburger');
  await page.locator('.VPNavScreen').waitFor({ state: 'hidden' });
  await page.click('.VPLocalNav .menu');
  await page.locator('.VPSidebar.open').waitFor({ state: 'visible' });
  await page.screenshot({ path: join(SCREENSHOTS, 'phone-menu-open.png') });
  await page.locator('.VPSidebar.open a', { hasText: 'OpenAI-compatible server' }).click();
  await page.waitForURL(`${base}/demo-api.html`);
  await expect(page.locator('.vp-doc h1').textContent()).resolves.toContain('The demo API');
  expect(await page.locator('.VPSidebar.open').count()).toBe(0); // the menu closes on navigation
  expect(problems).toEqual([]);
  await page.close();
});

describe('search', () => {
  test.each([
    ['INTELLECT-3', '/conversion-guide.html', 'Converting GLM models'],
    ['q40', '/model-format.html', 'The .m model file'],
    ['rate limit', '/demo-api.html', 'The demo API'],
  ])('"%s" finds %s and opens it', async (query, path, title) => {
    const { page, problems } = await open('/', VIEWPORTS[1]!);
    await page.click('.VPNavBarSearch button');
    const input = page.locator('.VPLocalSearchBox .search-input');
    await input.fill(query);
    const results = page.locator('.VPLocalSearchBox a.result');
    await results.first().waitFor();
    const hrefs = await results.evaluateAll((links) => links.map((a) => (a as HTMLAnchorElement).getAttribute('href')!));
    const hit = hrefs.findIndex((h) => h.split('#')[0] === path);
    expect(hit).toBeGreaterThanOrEqual(0);
    await page.screenshot({ path: join(SCREENSHOTS, `search-${query.replace(/\W+/g, '-')}.png`) });
    await results.nth(hit).click();
    await page.waitForURL((url) => url.pathname === path);
    await expect(page.locator('.vp-doc h1').textContent()).resolves.toContain(title);
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);
});

describe('internal links', () => {
  test('every link and anchor of the built site resolves', () => {
    expect(brokenLinks(DIST)).toEqual([]);
  });

  test('a broken link and a broken anchor are caught', async () => {
    const dir = await tempDir();
    try {
      cpSync(DIST, dir, { recursive: true });
      const page = join(dir, 'gpu.html');
      writeFileSync(page, readFileSync(page, 'utf8').replace('</main>', '<a href="./no-such-page.html">x</a><a href="/engine.html#no-such-heading">y</a></main>'));
      expect(brokenLinks(dir)).toEqual(['/gpu.html: ./no-such-page.html (no such page or file)', '/gpu.html: /engine.html#no-such-heading (no #no-such-heading in /engine.html)']);
    } finally {
      await removeDir(dir);
    }
  });
});
