/** The events bench/aicost.ts and its load generator (bench/aicost-client.ts) send. */
export const TOKEN = 'bench-ai-ingest-token-0123456789';
export const BATCH = 500;

export const SERVICES = ['chat-api', 'search', 'summariser', 'support-bot', 'batch'];
export const MODELS = [
  'gpt-4o',
  'gpt-4o-mini',
  'claude-sonnet-4-5',
  'claude-haiku-4-5',
  'gemini-2.5-flash',
];
export const PROVIDERS = ['openai', 'openai', 'anthropic', 'anthropic', 'google'];

export function eventJson(id: string, i: number, timeMs?: number): string {
  const m = i % MODELS.length;
  return `{"id":"${id}","service":"${SERVICES[i % SERVICES.length]}","model":"${MODELS[m]}","provider":"${PROVIDERS[m]}","input_tokens":${500 + (i % 1000)},"output_tokens":${100 + (i % 300)},"cache_read_tokens":${i % 200},"cache_write_tokens":0${timeMs === undefined ? '' : `,"time":${timeMs}`}}`;
}
