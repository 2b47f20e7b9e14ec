/**
 * Runs inside a test's network namespace (started by netns-sinks.ts through nsenter): the
 * SMTP and Slack sinks of sinks.ts, which listen on the namespace's 127.0.0.1, and a TCP
 * relay for each on every address of the namespace, so containers there (through the
 * bridge gateway) can deliver to them. Reports on stdout, one JSON object a line:
 * {"ready":{smtpPort,slackPort,slackPath}}, then {"email":...} / {"slack":...} as they arrive.
 */
import { createServer, connect, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startSlackSink, startSmtpSink } from './sinks.js';

function relay(targetPort: number): Promise<Server> {
  const server = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1');
    inbound.pipe(outbound).pipe(inbound);
    // Either side closing or failing ends both; the sink logs nothing to lose here.
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '0.0.0.0', () => resolve(server));
  });
}

const smtp = await startSmtpSink();
const slack = await startSlackSink();
const smtpRelay = await relay(smtp.port);
const slackRelay = await relay(Number(new URL(slack.url).port));
const say = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
say({
  ready: {
    smtpPort: (smtpRelay.address() as AddressInfo).port,
    slackPort: (slackRelay.address() as AddressInfo).port,
    slackPath: new URL(slack.url).pathname,
  },
});

let emails = 0;
let slacks = 0;
// The sinks only record; forward what is new every 50 ms.
const timer = setInterval(() => {
  while (emails < smtp.received.length) say({ email: smtp.received[emails++] });
  while (slacks < slack.received.length) say({ slack: slack.received[slacks++] });
}, 50);

process.once('SIGTERM', () => {
  clearInterval(timer);
  smtpRelay.close();
  slackRelay.close();
  void Promise.all([smtp.stop(), slack.stop()]).then(() => process.exit(0));
});
