import type { RouteNote } from './routes.js';
import type { CollectorState } from './runner.js';

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Collectors' routes: each mounted, or off and why. */
function routesTable(routes: readonly RouteNote[]): string {
  if (routes.length === 0) return '';
  const rows = routes
    .map(
      (r) =>
        `<tr class="${r.off === undefined ? 'ok' : 'off'}"><td>${escapeHtml(`${r.method} ${r.path}`)}</td><td>${escapeHtml(r.collector)}</td><td>${r.off === undefined ? 'on (its own bearer token)' : escapeHtml(`off: ${r.off}`)}</td></tr>`,
    )
    .join('\n');
  return `<h2>Routes</h2>
<table><thead><tr><th>route</th><th>collector</th><th>state</th></tr></thead>
<tbody>
${rows}
</tbody></table>
`;
}

/** The page at `/`: what is running, how each collector is doing, and collectors' routes. */
export function landingPage(
  states: readonly CollectorState[],
  version: string,
  routes: readonly RouteNote[] = [],
): string {
  const rows = states
    .map((s) => {
      const took =
        s.lastDurationSeconds === undefined
          ? ''
          : `${(s.lastDurationSeconds * 1000).toFixed(1)} ms`;
      const last =
        s.lastSuccessTimestamp === undefined
          ? 'never'
          : new Date(s.lastSuccessTimestamp * 1000).toISOString();
      return `<tr class="${s.outcome}"><td>${escapeHtml(s.name)}</td><td>${s.outcome}</td><td>${took}</td><td>${last}</td><td>${s.intervalMs / 1000}s</td><td>${escapeHtml(s.lastError ?? '')}</td><td>${escapeHtml(s.description)}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>lookout</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
tr.ok td:nth-child(2){color:#1a7f37}tr.failed td:nth-child(2),tr.timeout td:nth-child(2),tr.stuck td:nth-child(2){color:#cf222e;font-weight:bold}</style>
</head><body>
<h1>lookout ${escapeHtml(version)}</h1>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/runbooks">runbooks</a></p>
<table><thead><tr><th>collector</th><th>state</th><th>last duration</th><th>last success</th><th>interval</th><th>last error</th><th>what it collects</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${routesTable(routes)}</body></html>
`;
}
