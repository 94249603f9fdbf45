/**
 * Text put into generated Markdown (the actions, CLI and HTTP API references, the model tables). Outside
 * code spans, `<name>` would be read as an HTML tag (GitHub drops it; the docs site's Vue compiler fails on
 * it), `{...}` as attributes (the docs site's markdown-it-attrs) or a Vue interpolation, and `|` would end a
 * table cell.
 */

/** Escapes `text` for a Markdown paragraph or table cell, leaving `code spans` as they are. */
export function markdownText(text: string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\{/g, '&#123;').replace(/\}/g, '&#125;')))
    .join('')
    .replace(/\|/g, '\\|');
}

/** A Markdown table: a header row and one row per entry, every cell escaped unless it is already code. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)];
}
