/**
 * The built docs site's internal links, checked from the files: every `href` and `src` that stays on the
 * site must name a file of the build, and every `#anchor` an element id of the page it points into.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative } from 'node:path';

function htmlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? htmlFiles(path) : name.endsWith('.html') ? [path] : [];
  });
}

/** The file a site path is served from (the static server's rule: a folder's index.html, else `.html` added). */
export function fileFor(dist: string, path: string): string | undefined {
  const local = join(dist, decodeURIComponent(path));
  if (path.endsWith('/')) return existsSync(join(local, 'index.html')) ? join(local, 'index.html') : undefined;
  if (existsSync(local) && statSync(local).isFile()) return local;
  return existsSync(`${local}.html`) ? `${local}.html` : undefined;
}

const idsCache = new Map<string, Set<string>>();
function idsOf(file: string): Set<string> {
  let ids = idsCache.get(file);
  if (!ids) {
    ids = new Set([...readFileSync(file, 'utf8').matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!));
    idsCache.set(file, ids);
  }
  return ids;
}

/** "page: link (why)" for each internal link or anchor of the built site that does not resolve. */
export function brokenLinks(dist: string): string[] {
  idsCache.clear();
  const broken: string[] = [];
  for (const file of htmlFiles(dist)) {
    const page = `/${relative(dist, file).split('\\').join('/')}`;
    const html = readFileSync(file, 'utf8');
    for (const m of html.matchAll(/<(?:a|link|img|script)\s[^>]*?\b(?:href|src)="([^"]*)"/g)) {
      const link = m[1]!.replace(/&amp;/g, '&');
      if (/^[a-z][a-z0-9+.-]*:/i.test(link) || link.startsWith('//')) continue; // another site
      const [pathPart, anchor] = link.split('#', 2) as [string, string | undefined];
      const path = pathPart === '' ? page : posix.resolve(posix.dirname(page), pathPart.split('?')[0]!) + (pathPart.endsWith('/') ? '/' : '');
      const target = fileFor(dist, path);
      if (!target) {
        broken.push(`${page}: ${link} (no such page or file)`);
        continue;
      }
      if (anchor && !idsOf(target).has(decodeURIComponent(anchor))) broken.push(`${page}: ${link} (no #${anchor} in ${path})`);
    }
  }
  return broken;
}
