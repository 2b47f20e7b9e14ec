/**
 * `/runbooks`: docs/runbooks.md as one HTML page, each heading an anchor. Rules carry
 * `runbook_url: /runbooks#<alertname lower-cased>` and alertmanager/templates/links.tmpl
 * puts a lookout address in front, so every install can open the runbook its alerts link.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Context } from 'koa';
import type { Tokens } from 'marked';
import { errorText, type Logger } from '../lib/log.js';

/** From dist/exporter/ (and src/exporter/ under tsx) up to the package root. */
export const RUNBOOKS_FILE = fileURLToPath(new URL('../../docs/runbooks.md', import.meta.url));

/**
 * The id GitHub gives a heading (lower case, punctuation dropped, spaces to hyphens), so
 * the anchors are the same on this page and in the repository's rendering of the file.
 */
export function headingSlug(text: string): string {
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The whole page. A repeated heading gets GitHub's -1, -2 suffix, so ids stay unique.
 * marked is imported here, on the first request: most lookouts never serve this page, and
 * loading it at start-up cost every one of them its memory and compile time.
 */
export async function renderRunbooks(markdown: string): Promise<string> {
  const { Marked } = await import('marked');
  const seen = new Map<string, number>();
  const marked = new Marked({
    gfm: true,
    renderer: {
      heading(this: { parser: { parseInline(tokens: Tokens.Generic[]): string } }, token) {
        const base = headingSlug(token.text);
        const n = seen.get(base) ?? 0;
        seen.set(base, n + 1);
        const id = n === 0 ? base : `${base}-${n}`;
        const inner = this.parser.parseInline(token.tokens);
        return `<h${token.depth} id="${escapeHtml(id)}"><a href="#${escapeHtml(id)}">${inner}</a></h${token.depth}>\n`;
      },
    },
  });
  const body = marked.parse(markdown, { async: false });
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>lookout runbooks</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;line-height:1.5}
h1 a,h2 a,h3 a,h4 a{color:inherit;text-decoration:none}h2{border-top:1px solid #ddd;padding-top:1em}
:target{background:#fff8c5}pre{background:#f6f8fa;padding:.8em;overflow:auto}code{font-size:.9em}
table{border-collapse:collapse}td,th{padding:.3em .8em;border:1px solid #ddd}</style>
</head><body>
<p><a href="/">lookout</a></p>
${body}
</body></html>
`;
}

/**
 * The koa handler. The page is rendered on the first request and kept: the file ships
 * with lookout and does not change while it runs. A missing or unreadable file is a 404
 * that says where lookout looked, logged once (not on every click of a runbook link), and
 * read again on the next request, so putting the file in place needs no restart.
 */
export function runbooksHandler(
  log: Logger,
  file: string = RUNBOOKS_FILE,
): (ctx: Context) => Promise<void> {
  let page: string | undefined;
  let logged = false;
  return async (ctx) => {
    if (page === undefined) {
      try {
        page = await renderRunbooks(await readFile(file, 'utf8'));
      } catch (err) {
        if (!logged) {
          logged = true;
          log.warn('runbooks unavailable', { file, err: errorText(err) });
        }
        ctx.status = 404;
        ctx.type = 'text/plain; charset=utf-8';
        ctx.body = `lookout: the runbooks are not installed here (cannot read ${file}); they are docs/runbooks.md in lookout's package.\n`;
        return;
      }
    }
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = page;
  };
}
