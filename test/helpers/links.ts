/**
 * Following the links of a delivered notification: pulling every link out of an email
 * (HTML and text parts) and a Slack message, and a Grafana stand-in that knows only the
 * dashboards of grafana/dashboards/*.json.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { REPO } from './procs.js';

// ---------------------------------------------------------------- extracting links

/** One link found in a message: the URL and where in the message it was. */
export interface FoundLink {
  url: string;
  /** e.g. 'email HTML href', 'Slack attachments[0].text'. */
  where: string;
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
};

/** HTML character references decoded (what a mail client does before it follows an href). */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code =
        ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return NAMED_ENTITIES[ref.toLowerCase()] ?? whole;
  });
}

/** A bare http(s) URL in running text, as mail clients and Slack auto-link it. */
const BARE_URL = /https?:\/\/[^\s<>"'|]+/g;

function bareUrls(text: string, where: string): FoundLink[] {
  return [...text.matchAll(BARE_URL)].map((m) => ({
    // A sentence's full stop or a closing bracket is not part of the link.
    url: m[0].replace(/[.,;:!?)\]]+$/, ''),
    where,
  }));
}

/**
 * Every link of an HTML email part: each href (entity-decoded; a relative or non-http one
 * is kept as it is, so the caller can fail it) and each URL written in the visible text.
 */
export function htmlLinks(html: string): FoundLink[] {
  const hrefs = [...html.matchAll(/\shref\s*=\s*(?:"([^"]*)"|'([^']*)')/gi)].map((m) => ({
    url: decodeEntities(m[1] ?? m[2] ?? ''),
    where: 'email HTML href',
  }));
  const visible = decodeEntities(
    html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]*>/g, ' '),
  );
  return [...hrefs, ...bareUrls(visible, 'email HTML text')];
}

/** Every URL in a plain-text email part. */
export function textLinks(text: string): FoundLink[] {
  return bareUrls(text, 'email text');
}

/**
 * Every link of a Slack message body: `title_link` fields whole, `<target|label>` and
 * `<target>` in any string (Slack's mrkdwn links), and bare URLs outside them.
 */
export function slackLinks(body: unknown): FoundLink[] {
  const out: FoundLink[] = [];
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'string') {
      if (/(^|\.)title_link$/.test(path)) {
        if (v !== '') out.push({ url: v, where: `Slack ${path}` });
        return;
      }
      const rest = v.replace(/<([^<>|]+)(?:\|[^<>]*)?>/g, (_, target: string) => {
        // <@U123>, <#C123> and <!here> are mentions, not links.
        if (!/^[@#!]/.test(target)) out.push({ url: target, where: `Slack ${path} <…|…>` });
        return ' ';
      });
      out.push(...bareUrls(rest, `Slack ${path}`));
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${path}[${i}]`));
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    }
  };
  walk(body, '');
  return out;
}

/**
 * Paths written where a link belongs but with no address in front (a template that lost
 * its base): `/runbooks#...` or `/d/...` not preceded by a host.
 */
export function baselessPaths(text: string): string[] {
  return [...text.matchAll(/(?<![\w.:/-])\/(?:runbooks|d\/)[^\s<>"'|]*/g)].map((m) => m[0]);
}

/** The ids of an HTML page (the anchors a `#fragment` can land on). */
export function htmlIds(html: string): Set<string> {
  return new Set([...html.matchAll(/\sid\s*=\s*"([^"]+)"/g)].map((m) => decodeEntities(m[1]!)));
}

// ---------------------------------------------------------------- a Grafana stand-in

/** A shipped dashboard as the stand-in knows it. */
export interface ShippedDashboard {
  /** The names of its template variables. */
  vars: Set<string>;
  /** The ids of the panels `viewPanel` can open (rows, which hold panels, excluded). */
  panels: Set<number>;
}

interface PanelJson {
  id?: unknown;
  type?: unknown;
  panels?: PanelJson[];
}

/** The panel ids of a dashboard, including those inside a collapsed row. */
function panelIds(panels: PanelJson[]): number[] {
  return panels.flatMap((p) => [
    ...(typeof p.id === 'number' && p.type !== 'row' ? [p.id] : []),
    ...panelIds(p.panels ?? []),
  ]);
}

/** The shipped dashboards by uid. */
export async function shippedDashboards(): Promise<Map<string, ShippedDashboard>> {
  const dir = join(REPO, 'grafana/dashboards');
  const out = new Map<string, ShippedDashboard>();
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.json')).sort()) {
    const d = JSON.parse(await readFile(join(dir, f), 'utf8')) as {
      uid?: unknown;
      templating?: { list?: Array<{ name?: unknown }> };
      panels?: PanelJson[];
    };
    if (typeof d.uid !== 'string' || d.uid === '') throw new Error(`${f}: no uid`);
    if (out.has(d.uid)) throw new Error(`${f}: uid ${d.uid} used twice`);
    const vars = (d.templating?.list ?? []).map((v) => v.name);
    out.set(d.uid, {
      vars: new Set(vars.filter((n): n is string => typeof n === 'string')),
      panels: new Set(panelIds(d.panels ?? [])),
    });
  }
  return out;
}

export interface GrafanaStandIn {
  url: string;
  /** Every request, with the answer's status (what was followed). */
  readonly requests: Array<{ path: string; status: number }>;
  stop(): Promise<void>;
}

/** Query parameters a Grafana dashboard URL takes besides its variables. */
const GRAFANA_PARAMS = new Set(['orgId', 'from', 'to', 'refresh', 'viewPanel', 'kiosk', 'tz']);

/**
 * Answers `GET /d/<uid>` and `/d/<uid>/<slug>` like Grafana does for the provisioned
 * dashboards — 200 only when the uid is one of `dashboards`, every `var-<name>` is one
 * of that dashboard's variables with a value, and a `viewPanel` (`panel-<id>`, or the
 * bare id older Grafana wrote) names one of its panels; anything else is a 404 that says
 * why (what a reader would see as "Dashboard not found", "Panel not found" or a dashboard
 * ignoring the variable).
 */
export async function startGrafanaStandIn(
  dashboards: Map<string, ShippedDashboard>,
): Promise<GrafanaStandIn> {
  const requests: Array<{ path: string; status: number }> = [];
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://grafana.invalid');
    const answer = (status: number, text: string) => {
      requests.push({ path: req.url ?? '', status });
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text + '\n');
    };
    if (req.method !== 'GET') return answer(405, 'GET only');
    const m = /^\/d\/([^/]+)(?:\/[^/]*)?$/.exec(u.pathname);
    if (!m) return answer(404, `not a dashboard path: ${u.pathname}`);
    const uid = decodeURIComponent(m[1]!);
    const dashboard = dashboards.get(uid);
    if (!dashboard) return answer(404, `Dashboard not found: no dashboard has uid "${uid}"`);
    const { vars, panels } = dashboard;
    for (const [k, v] of u.searchParams) {
      if (k === 'viewPanel') {
        const id = /^(?:panel-)?(\d+)$/.exec(v)?.[1];
        if (id === undefined || !panels.has(Number(id)))
          return answer(404, `Panel not found: dashboard ${uid} has no panel "${v}"`);
      } else if (k.startsWith('var-')) {
        const name = k.slice('var-'.length);
        if (!vars.has(name))
          return answer(404, `dashboard ${uid} has no variable "${name}" (has ${[...vars]})`);
        if (v === '' || /\{\{|<no value>/.test(v))
          return answer(404, `variable ${name} of dashboard ${uid} has no value: "${v}"`);
      } else if (!GRAFANA_PARAMS.has(k)) {
        return answer(404, `dashboard ${uid}: "${k}" is not a Grafana dashboard parameter`);
      }
    }
    answer(200, `dashboard ${uid}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
