/**
 * Every relative link in README.md and docs/*.md leads to a file of the repo, and every
 * #anchor (in the same file or another Markdown file) to a heading GitHub renders there.
 * Links to the web are not followed: this test checks the repo against itself.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { headings, links, slug } from '../scripts/markdown.js';
import { REPO } from './helpers/procs.js';

async function docFiles(): Promise<string[]> {
  const docs = (await readdir(join(REPO, 'docs'))).filter((f) => f.endsWith('.md')).sort();
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

describe('links in README.md and docs/', () => {
  test('every relative link resolves to a file, and every anchor to a heading of its file', async () => {
    const files = await docFiles();
    assert.ok(files.length >= 9, `only ${files.join(', ')}`);
    const anchorsOf = new Map<string, Set<string>>();
    const anchors = async (file: string) => {
      if (!anchorsOf.has(file))
        anchorsOf.set(file, new Set(headings(await readFile(join(REPO, file), 'utf8')).keys()));
      return anchorsOf.get(file)!;
    };
    const bad: string[] = [];
    let checked = 0;
    for (const file of files) {
      for (const link of links(await readFile(join(REPO, file), 'utf8'))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) continue; // http:, mailto:
        checked++;
        const [path, anchor] = link.target.split('#', 2) as [string, string | undefined];
        const target = path === '' ? file : relative(REPO, join(REPO, dirname(file), path));
        const where = `${file}:${link.line}: ${link.target}`;
        if (target.startsWith('..') || !existsSync(join(REPO, target))) {
          bad.push(`${where}: no file ${target}`);
          continue;
        }
        if (anchor === undefined || anchor === '') continue;
        if (!target.endsWith('.md')) {
          bad.push(`${where}: an anchor into a file that is not Markdown`);
          continue;
        }
        if (!(await anchors(target)).has(decodeURIComponent(anchor)))
          bad.push(`${where}: no heading in ${target} has the anchor #${anchor}`);
      }
    }
    assert.ok(checked > 50, `only ${checked} relative links found`);
    assert.deepEqual(bad, [], `${bad.length} links do not resolve:\n${bad.join('\n')}`);
  });

  test("anchors are GitHub's: lower case, punctuation dropped, spaces as dashes, repeats numbered", () => {
    assert.equal(slug('Growing past one Prometheus'), 'growing-past-one-prometheus');
    assert.equal(slug('`lookout check`: validate'), 'lookout-check-validate');
    assert.equal(slug('nginx and TLS metrics'), 'nginx-and-tls-metrics');
    const h = headings('# A\n```sh\n# not a heading\n```\n## A\n### b.c\n');
    assert.deepEqual([...h.keys()], ['a', 'a-1', 'bc']);
  });
});
