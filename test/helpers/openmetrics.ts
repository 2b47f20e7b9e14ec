/**
 * The test oracle for lookout's renderer (src/exporter/openmetrics.ts render()): the
 * OpenMetrics form of prom-client's own text, made line by line, as lookout served it
 * before render() wrote both formats in one pass.
 */
export function toOpenMetrics(text: string): string {
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
  out.push('# EOF');
  out.push('');
  return out.join('\n');
}
