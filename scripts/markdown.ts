/**
 * The headings and links of a Markdown file as GitHub renders them: what the reference
 * generator names runbook sections by, and what the links test resolves anchors against.
 */

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/<[^>]*>|`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The lines of a Markdown file outside fenced code blocks, with their line numbers. */
function prose(text: string): Array<{ line: string; n: number }> {
  const out: Array<{ line: string; n: number }> = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, i) => {
    const f = /^\s*(```+|~~~+)/.exec(line);
    if (f) {
      if (fence === undefined) fence = f[1]![0];
      else if (f[1]![0] === fence) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ line, n: i + 1 });
  });
  return out;
}

/** Each heading's anchor and text; a repeated anchor gets -1, -2, ... as GitHub does. */
export function headings(text: string): Map<string, string> {
  const anchors = new Map<string, string>();
  const count = new Map<string, number>();
  for (const { line } of prose(text)) {
    const m = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]!);
    const k = count.get(base) ?? 0;
    count.set(base, k + 1);
    anchors.set(k === 0 ? base : `${base}-${k}`, m[1]!);
  }
  return anchors;
}

export interface MdLink {
  target: string;
  line: number;
}

/** Every inline link and image target outside code (fenced blocks and code spans). */
export function links(text: string): MdLink[] {
  const out: MdLink[] = [];
  for (const { line, n } of prose(text)) {
    const bare = line.replace(/`[^`]*`/g, '');
    for (const m of bare.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g))
      out.push({ target: m[1]!, line: n });
  }
  return out;
}
