/**
 * Turns Prometheus text exposition (as prom-client writes it) into OpenMetrics 1.0.
 * prom-client can write OpenMetrics itself, but doing so renames counters inside the
 * registry (it strips `_total` from the metric object), so one registry cannot serve
 * both formats; converting the cached text is cheaper and leaves the registry alone.
 */
export function toOpenMetrics(text: string, { eof = true }: { eof?: boolean } = {}): string {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const counters = new Set<string>();
  for (const line of lines) {
    const m = /^# TYPE (\S+) counter$/.exec(line);
    if (m?.[1]) counters.add(m[1]);
  }
  const out = lines.map((line) => {
    const m = /^# (HELP|TYPE) (\S+)(.*)$/.exec(line);
    if (!m || !counters.has(m[2]!)) return line;
    // In OpenMetrics a counter family is named without `_total`; its samples keep it.
    return `# ${m[1]} ${m[2]!.replace(/_total$/, '')}${m[3]}`;
  });
  if (eof) out.push('# EOF');
  out.push('');
  return out.join('\n');
}
