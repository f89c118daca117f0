// Applies the ledger's D1 migrations (workers/usage-ledger/migrations/*.sql) to a local
// database, keeping wrangler's own record of them: the `d1_migrations` table with the
// columns `wrangler d1 migrations apply` creates (node_modules/wrangler/wrangler-dist/cli.js,
// getCreateMigrationsTableQuery, checked 2026-11-27), so wrangler and this agree on what
// was applied. Production is migrated by wrangler itself (docs/metering.md); this exists
// because a wrangler process per test run takes tens of seconds on a loaded machine.
// Each file runs in one D1 batch (one transaction) with its d1_migrations row.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { D1Database } from "@cloudflare/workers-types";

export const MIGRATIONS_TABLE = "d1_migrations";

/**
 * Splits a migration file into statements: `--` comments dropped, split at `;`. Our
 * migrations keep to what this handles (no `;` or `--` inside string literals, no
 * triggers); a test checks every file against that.
 */
export function splitStatements(sql: string): string[] {
  return sql
    .split("\n")
    .map((l) => l.replace(/--.*$/, ""))
    .join("\n")
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Applies the migrations not yet recorded, in file-name order; returns their names. */
export async function applyMigrations(db: D1Database, dir: string): Promise<string[]> {
  await db.exec(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE}(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);`);
  const done = new Set((await db.prepare(`SELECT name FROM ${MIGRATIONS_TABLE}`).all<{ name: string }>()).results.map((r) => r.name));
  const files = readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
  const applied: string[] = [];
  for (const f of files) {
    if (done.has(f)) continue;
    const stmts = splitStatements(readFileSync(join(dir, f), "utf8")).map((s) => db.prepare(s));
    await db.batch([...stmts, db.prepare(`INSERT INTO ${MIGRATIONS_TABLE} (name) VALUES (?1)`).bind(f)]);
    applied.push(f);
  }
  return applied;
}
