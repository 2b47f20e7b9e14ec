import { setFlagsFromString } from 'node:v8';
import { z } from 'zod';

// A pattern from the config runs on mount points and device names, which others can
// choose (a USB stick's label becomes /media/<user>/<label>). V8's backtracking engine
// takes exponential time on a pattern like "^/srv/([a-z0-9]+-?)+$" against "/srv/aaa…a_"
// (28 a's: 2 s; 40: hours), and a refresh runs on the event loop, so one such mount
// would stall /metrics. Prometheus and node_exporter use RE2, which is linear; this flag
// makes V8 move a regexp to its linear-time engine once it has backtracked too much, so
// such a match costs milliseconds. Set here, before any config pattern is compiled, as
// every module that compiles one imports this one. The second flag enables the `l` flag
// used below to ask whether a pattern can run in linear time at all.
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
setFlagsFromString('--enable-experimental-regexp-engine');

/** Whether `source` compiles, and whether the linear-time engine can run it. */
function check(source: string): 'ok' | 'invalid' | 'not-linear' {
  try {
    new RegExp(source);
  } catch {
    return 'invalid';
  }
  try {
    new RegExp(source, 'l');
    return 'ok';
  } catch {
    // Backreferences and lookarounds: RE2 (node_exporter) refuses them too, and for
    // them V8 has no linear fallback, so they could backtrack without bound.
    return 'not-linear';
  }
}

/** A regular expression in the config file, checked at load time so a typo is a config error. */
export function regexSource(what: string) {
  return z.string().superRefine((s, ctx) => {
    const verdict = check(s);
    if (verdict === 'invalid') {
      ctx.addIssue({ code: 'custom', message: `expected a regular expression matching ${what}` });
    } else if (verdict === 'not-linear') {
      ctx.addIssue({
        code: 'custom',
        message: `expected a regular expression matching ${what} without backreferences or lookarounds (RE2 syntax, as node_exporter takes)`,
      });
    }
  });
}
