// RateLimiter: one Durable Object per tenant holding its token bucket in SQLite. Calls
// are synchronous inside the object, so the input gate serialises them: under any
// concurrency it never admits more than the bucket allows.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.ts";
import { take, type TakeResult } from "./policy/token-bucket.ts";

export class RateLimiter extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS bucket (id INTEGER PRIMARY KEY CHECK (id = 1), tokens REAL NOT NULL, updated_ms INTEGER NOT NULL)",
    );
  }

  /** Takes one token if there is one. The tenant's rate and burst come with each call,
   *  so a changed tenant record applies at once; `leaseCap` bounds the lease handed out
   *  with it (MAX_LEASE by default, clamped to MAX_TOPUP_LEASE). */
  take(ratePerMinute: number, burst: number, leaseCap?: number): TakeResult {
    const row = this.ctx.storage.sql
      .exec<{ tokens: number; updated_ms: number }>("SELECT tokens, updated_ms FROM bucket WHERE id = 1")
      .toArray()[0];
    const prev = row === undefined ? undefined : { tokens: row.tokens, updatedMs: row.updated_ms };
    const { bucket, result } = take(prev, Date.now(), ratePerMinute, burst, leaseCap);
    this.ctx.storage.sql.exec(
      "INSERT INTO bucket (id, tokens, updated_ms) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms",
      bucket.tokens,
      bucket.updatedMs,
    );
    return result;
  }
}
