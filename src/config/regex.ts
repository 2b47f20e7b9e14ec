import { z } from 'zod';

/** A regular expression in the config file, checked at load time so a typo is a config error. */
export function regexSource(what: string) {
  return z.string().refine(
    (s) => {
      try {
        new RegExp(s);
        return true;
      } catch {
        return false; // the refinement's message says what is wrong
      }
    },
    { message: `expected a regular expression matching ${what}` },
  );
}
