/**
 * The AI-usage store's shape: what the ledger (src/aicost/ledger*.ts) writes, what
 * `lookout cost` and `lookout status` read (read-only), and what pricing and repricing
 * fill in. One SQLite file, `ai-usage.sqlite`, in the aicost collector's state directory;
 * a user can open it with the `sqlite3` shell, so names here are for people too.
 */

/** The database file's name inside the aicost collector's state directory. */
export const DATABASE_FILE = 'ai-usage.sqlite';

/** Bumped when the DDL changes; the ledger refuses a newer file and migrates an older one. */
export const SCHEMA_VERSION = 1;

/**
 * Disjoint token buckets: no token is in two of them. `input` is uncached input only;
 * `output` includes reasoning/thinking tokens.
 */
export interface UsageBuckets {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
}

/** The `type` label values of `lookout_ai_tokens_total`; both cache-write buckets are `cache_write`. */
export const TOKEN_TYPES = ['input', 'output', 'cache_read', 'cache_write'] as const;
export type TokenType = (typeof TOKEN_TYPES)[number];

/**
 * How an event's cost was decided: `reported` (the client sent cost_usd), `priced`
 * (the pricing table knew the model at the event's time) or `unpriced` (it did not:
 * cost_usd is NULL, never 0, until `lookout cost reprice` prices it).
 */
export type CostSource = 'reported' | 'priced' | 'unpriced';

/**
 * Times are integer milliseconds since the epoch (UTC). Costs are REAL US dollars.
 * Rollup hours are the epoch millisecond of the hour's start (UTC).
 */
export const DDL = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS events (
  id                    TEXT PRIMARY KEY,   -- idempotency key: the client's id, else the provider's response id
  time_ms               INTEGER NOT NULL,   -- when the request happened (the event's time)
  received_ms           INTEGER NOT NULL,   -- when lookout stored it
  service               TEXT NOT NULL,
  model                 TEXT NOT NULL,
  provider              TEXT NOT NULL,
  operation             TEXT NOT NULL,
  source                TEXT NOT NULL,      -- http, or jsonl:<file>, or what the client said
  input_tokens          INTEGER NOT NULL,   -- uncached input
  output_tokens         INTEGER NOT NULL,   -- including reasoning
  cache_read_tokens     INTEGER NOT NULL,
  cache_write_5m_tokens INTEGER NOT NULL,
  cache_write_1h_tokens INTEGER NOT NULL,
  cost_usd              REAL,               -- NULL while unpriced
  cost_source           TEXT NOT NULL CHECK (cost_source IN ('reported','priced','unpriced')),
  priced_as             TEXT,               -- the pricing entry that priced it (model id and effective date)
  raw_usage             TEXT                -- the provider's usage object as sent (JSON), when one was
) STRICT;
CREATE INDEX IF NOT EXISTS events_time ON events (time_ms);
CREATE INDEX IF NOT EXISTS events_unpriced ON events (cost_source) WHERE cost_source = 'unpriced';

-- Kept after raw events are pruned, so totals and counters stay exact.
CREATE TABLE IF NOT EXISTS rollups_hourly (
  hour_ms               INTEGER NOT NULL,
  service               TEXT NOT NULL,
  model                 TEXT NOT NULL,
  source                TEXT NOT NULL,
  requests              INTEGER NOT NULL,
  unpriced_requests     INTEGER NOT NULL,
  input_tokens          INTEGER NOT NULL,
  output_tokens         INTEGER NOT NULL,
  cache_read_tokens     INTEGER NOT NULL,
  cache_write_5m_tokens INTEGER NOT NULL,
  cache_write_1h_tokens INTEGER NOT NULL,
  unpriced_tokens       INTEGER NOT NULL,   -- all tokens of the unpriced requests
  cost_usd              REAL NOT NULL,      -- priced and reported events only
  cache_savings_usd     REAL NOT NULL,      -- what cache reads saved against the input price
  PRIMARY KEY (hour_ms, service, model, source)
) STRICT, WITHOUT ROWID;

-- JSONL files followed by the tail: the position is stored in the same transaction as the lines' events.
CREATE TABLE IF NOT EXISTS tail_positions (
  path    TEXT PRIMARY KEY,
  dev     INTEGER NOT NULL,
  ino     INTEGER NOT NULL,
  offset  INTEGER NOT NULL,
  state   TEXT NOT NULL                       -- the tail's position object, JSON, as src/lib/tail.ts hands it
) STRICT;

-- All-time sums per service, model and source, updated in the same transaction as the
-- events and never pruned: what lookout seeds its lookout_ai_* counters from at start.
-- Rows are inserted in the order each combination was first stored (rowid), which is the
-- order label caps admit values in. Repricing adds the cost it finds to cost_usd here too;
-- unpriced_* count what was unpriced when stored and never go down (they are counters).
CREATE TABLE IF NOT EXISTS totals (
  service               TEXT NOT NULL,
  model                 TEXT NOT NULL,
  source                TEXT NOT NULL,
  requests              INTEGER NOT NULL,
  unpriced_requests     INTEGER NOT NULL,
  input_tokens          INTEGER NOT NULL,
  output_tokens         INTEGER NOT NULL,
  cache_read_tokens     INTEGER NOT NULL,
  cache_write_5m_tokens INTEGER NOT NULL,
  cache_write_1h_tokens INTEGER NOT NULL,
  unpriced_tokens       INTEGER NOT NULL,
  cost_usd              REAL NOT NULL,
  UNIQUE (service, model, source)
) STRICT;

-- How ingest went, all time: kind 'events' (key: the event's source; result accepted,
-- duplicate or rejected) and 'jsonl' (key: the file's path; result stored, duplicate or
-- rejected). Seeds lookout_ai_ingest_events_total and lookout_ai_jsonl_lines_total.
CREATE TABLE IF NOT EXISTS ingest_counts (
  kind   TEXT NOT NULL,
  key    TEXT NOT NULL,
  result TEXT NOT NULL,
  n      INTEGER NOT NULL,
  PRIMARY KEY (kind, key, result)
) STRICT, WITHOUT ROWID;
`;
