/**
 * lookout's config loader: the config layer's loader given the registered collectors'
 * blocks and what one collector's config implies for another's. Commands and tests load
 * a config through here; src/config/ itself knows no collector.
 */
// First: collectors register in index.ts's order (the landing page's, `lookout status`'s
// and `lookout check`'s); importing one collector module before it would move it ahead.
import { collectorDefinitions } from './index.js';
import { configLoader } from '../config/load.js';
import { withHttpsProbeCertificates } from './derived.js';

export { ConfigError } from '../config/load.js';

export const { parseConfig, parseConfigText, loadConfig } = configLoader({
  collectors: collectorDefinitions(),
  derive: withHttpsProbeCertificates,
});
