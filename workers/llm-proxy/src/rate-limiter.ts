// RateLimiter: one Durable Object per tenant holding its buckets in SQLite: requests
// (rate, burst) and, when the tenant has token limits, input and output tokens per
// minute, and its spend budgets (daily, monthly). Calls are synchronous inside the
// object, so the input gate serialises them: under any concurrency it never admits more
// than the buckets and budgets allow. The same class, named `authfail:<ip>`, counts
// failed authentications per client address.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.ts";
import { applyGive, BUDGET_KINDS, type BudgetGive, type BudgetLimits, type BudgetRows } from "./policy/budget.ts";
import { admit, giveBack, MAX_LEASE, take, type Bucket, type TakeResult, type TokenAsk, type TokenBuckets, type TokenLimits, type Tokens } from "./policy/token-bucket.ts";

export class RateLimiter extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS bucket (id INTEGER PRIMARY KEY CHECK (id = 1), tokens REAL NOT NULL, updated_ms INTEGER NOT NULL)",
    );
    // Token buckets: kind 'input' or 'output'. A table of its own so the request bucket's
    // rows (and objects created before token limits) stay as they are.
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS token_bucket (kind TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_ms INTEGER NOT NULL)");
    // Budgets: one row per kind ('daily', 'monthly') for the current fixed UTC window,
    // in integer micro-dollars: settled calls' cost, and what admitted calls and leases
    // hold. A row of an ended window is replaced by the next window's on first use.
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS budget (kind TEXT PRIMARY KEY, window_start INTEGER NOT NULL, spent INTEGER NOT NULL, reserved INTEGER NOT NULL)",
    );
  }

  private readRequests(): Bucket | undefined {
    const row = this.ctx.storage.sql
      .exec<{ tokens: number; updated_ms: number }>("SELECT tokens, updated_ms FROM bucket WHERE id = 1")
      .toArray()[0];
    return row === undefined ? undefined : { tokens: row.tokens, updatedMs: row.updated_ms };
  }

  private writeRequests(b: Bucket): void {
    this.ctx.storage.sql.exec(
      "INSERT INTO bucket (id, tokens, updated_ms) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms",
      b.tokens,
      b.updatedMs,
    );
  }

  private readTokens(): TokenBuckets {
    const out: TokenBuckets = {};
    for (const r of this.ctx.storage.sql.exec<{ kind: string; tokens: number; updated_ms: number }>("SELECT kind, tokens, updated_ms FROM token_bucket")) {
      if (r.kind === "input" || r.kind === "output") out[r.kind] = { tokens: r.tokens, updatedMs: r.updated_ms };
    }
    return out;
  }

  private writeTokens(t: TokenBuckets): void {
    for (const kind of ["input", "output"] as const) {
      const b = t[kind];
      if (b === undefined) continue;
      this.ctx.storage.sql.exec(
        "INSERT INTO token_bucket (kind, tokens, updated_ms) VALUES (?, ?, ?) ON CONFLICT(kind) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms",
        kind,
        b.tokens,
        b.updatedMs,
      );
    }
  }

  private readBudget(): BudgetRows {
    const out: BudgetRows = {};
    for (const r of this.ctx.storage.sql.exec<{ kind: string; window_start: number; spent: number; reserved: number }>("SELECT kind, window_start, spent, reserved FROM budget")) {
      if (r.kind === "daily" || r.kind === "monthly") out[r.kind] = { start: r.window_start, spent: r.spent, reserved: r.reserved };
    }
    return out;
  }

  private writeBudget(rows: BudgetRows | undefined): void {
    for (const kind of BUDGET_KINDS) {
      const b = rows?.[kind];
      if (b === undefined) continue;
      this.ctx.storage.sql.exec(
        "INSERT INTO budget (kind, window_start, spent, reserved) VALUES (?, ?, ?, ?) ON CONFLICT(kind) DO UPDATE SET window_start = excluded.window_start, spent = excluded.spent, reserved = excluded.reserved",
        kind,
        b.start,
        b.spent,
        b.reserved,
      );
    }
  }

  /** Takes one request token (and, with `ask`, the call's token reservation) if the
   *  buckets hold them. The tenant's limits come with each call, so a changed tenant
   *  record applies at once; `leaseCap` bounds the lease handed out with it (MAX_LEASE by
   *  default, clamped to MAX_TOPUP_LEASE). */
  take(ratePerMinute: number, burst: number, leaseCap?: number, ask?: TokenAsk): TakeResult {
    const now = Date.now();
    if (ask === undefined) {
      const { bucket, result } = take(this.readRequests(), now, ratePerMinute, burst, leaseCap);
      this.writeRequests(bucket);
      return result;
    }
    const budget = ask.budget !== undefined ? this.readBudget() : undefined;
    const r = admit({ requests: this.readRequests(), tokens: this.readTokens(), budget }, now, ratePerMinute, burst, leaseCap ?? MAX_LEASE, ask);
    this.writeRequests(r.requests);
    this.writeTokens(r.tokens);
    this.writeBudget(r.budget);
    return r.result;
  }

  /** A settle: gives back what a call reserved and did not use (a negative amount takes
   *  what it used beyond its reservation), and, for a tenant with budgets, releases the
   *  call's money reservation and spends its actual cost. Sent from ctx.waitUntil, off
   *  the client's path. */
  settle(limits: TokenLimits, give: Tokens, budget?: { limits: BudgetLimits; give: BudgetGive }): void {
    const now = Date.now();
    if (give.input !== 0 || give.output !== 0) this.writeTokens(giveBack(this.readTokens(), now, limits, give));
    if (budget !== undefined) this.writeBudget(applyGive(this.readBudget(), now, budget.limits, budget.give));
  }

  /** The budgets' current windows (operators and tests; the ledger is the record of spend). */
  budgetState(): BudgetRows {
    return this.readBudget();
  }
}
