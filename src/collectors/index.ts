// Each collector registers itself when imported; adding one is one line here.
import './host.js';
import './filesystem.js';
import './processes.js';
import './runtime.js';
import './nginx.js';
import './tls.js';
import './accesslog.js';
import './probes.js';
import './containers.js';

export { collectorDefinitions } from './collector.js';
