// Test support for `npm run usage`'s report code: a UsageSource over an in-memory SQLite
// database (node:sqlite) with the ledger's real migrations applied, holding the given
// usage_daily rows; so report, format and html tests run the report's real SQL without
// starting workerd. Test only: shipped code never imports it.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { UsageSource } from "../../scripts/lib/usage/report.ts";
import { MIGRATIONS_DIR } from "../../workers/usage-ledger/local/miniflare.ts";
import { splitStatements } from "../../workers/usage-ledger/local/migrations.ts";

export interface Rollup {
  day: string;
  tenant: string;
  model: string;
  calls?: number;
  input?: number;
  w5?: number;
  w1?: number;
  read?: number;
  output?: number;
  cost: number;
  unknown?: number;
  /** Streams cut short (usage_daily.cut_calls). */
  cut?: number;
  /** Calls with no answer (usage_daily.no_answer_calls). */
  noAnswer?: number;
  /** What budgets held beyond the cost (usage_daily.held_micros). */
  held?: number;
  /** usage_daily.maybe_billed_attempts. */
  maybeBilled?: number;
}

export function rollupSource(rows: Rollup[], where = "test rollups"): UsageSource & { queries: { sql: string; params: string[] }[]; db: DatabaseSync } {
  const db = new DatabaseSync(":memory:");
  for (const f of readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith(".sql")).sort()) {
    for (const s of splitStatements(readFileSync(join(MIGRATIONS_DIR, f), "utf8"))) db.exec(s);
  }
  const ins = db.prepare(
    "INSERT INTO usage_daily (day, tenant, model, calls, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, unknown_model_calls, cut_calls, no_answer_calls, held_micros, maybe_billed_attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
  );
  for (const r of rows) ins.run(r.day, r.tenant, r.model, r.calls ?? 1, r.input ?? 0, r.w5 ?? 0, r.w1 ?? 0, r.read ?? 0, r.output ?? 0, r.cost, r.unknown ?? 0, r.cut ?? 0, r.noAnswer ?? 0, r.held ?? 0, r.maybeBilled ?? 0);
  const queries: { sql: string; params: string[] }[] = [];
  return {
    where,
    queries,
    db,
    async query(sql, params) {
      queries.push({ sql, params });
      return db.prepare(sql).all(...params);
    },
    close: async () => db.close(),
  };
}
