// RateLimiter: one Durable Object per tenant holding its buckets in SQLite: requests
// (rate, burst) and, when the tenant has token limits, input and output tokens per
// minute, and its spend budgets (daily, monthly). Calls are synchronous inside the
// object, so the input gate serialises them: under any concurrency it never admits more
// than the buckets and budgets allow. The same class, named `authfail:<ip>`, counts
// failed authentications per client address.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.ts";
import { config } from "./config.ts";
import { applyGive, BUDGET_KINDS, capGive, chargeAfter, expireHoldings, holderOf, holdingAfter, isBudgetKind, LEGACY_HOLDER, type BudgetGive, type BudgetKind, type BudgetLimits, type BudgetRows, type Holding } from "./policy/budget.ts";
import { admit, giveBack, MAX_LEASE, take, type Bucket, type TakeResult, type TokenAsk, type TokenBuckets, type TokenLimits, type Tokens } from "./policy/token-bucket.ts";

/** A report's number as the object keeps it (0: none, as from an earlier version). */
function reportSeq(seq: unknown): number {
  return typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0 ? seq : 0;
}

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
    // Who holds what is reserved (budget.ts, "Holders"): per isolate and kind, its
    // reservations in a window, what of them to charge should it fall silent (its latest
    // money report, by number; -1: all), and when the object last heard from it. `reserved` in
    // `budget` is the sum of its window's holdings.
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS holding (holder TEXT NOT NULL, kind TEXT NOT NULL, window_start INTEGER NOT NULL, reserved INTEGER NOT NULL, charge INTEGER NOT NULL, report_seq INTEGER NOT NULL, seen_ms INTEGER NOT NULL, PRIMARY KEY (holder, kind))",
    );
    // An object that reserved before it recorded holders: what no holding accounts for is
    // LEGACY_HOLDER's, charged in full (nothing says what of it is unspent leases) if
    // nobody gives it back in time.
    for (const [kind, row] of Object.entries(this.readBudget()) as [BudgetKind, BudgetRows[BudgetKind] & {}][]) {
      const held = ctx.storage.sql.exec<{ s: number }>("SELECT COALESCE(SUM(reserved), 0) AS s FROM holding WHERE kind = ? AND window_start = ?", kind, row.start).one().s;
      if (row.reserved > held) {
        const legacy = this.readHolding(LEGACY_HOLDER)[kind];
        const have = legacy !== undefined && legacy.start === row.start ? legacy.reserved : 0;
        this.writeHolding(LEGACY_HOLDER, { [kind]: { start: row.start, reserved: have + row.reserved - held } }, { charge: -1, seq: 0 }, Date.now());
      }
    }
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
      if (isBudgetKind(r.kind)) out[r.kind] = { start: r.window_start, spent: r.spent, reserved: r.reserved };
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

  private readHolding(holder: string): Holding {
    const out: Holding = {};
    for (const r of this.ctx.storage.sql.exec<{ kind: string; window_start: number; reserved: number }>("SELECT kind, window_start, reserved FROM holding WHERE holder = ?", holder)) {
      if (isBudgetKind(r.kind)) out[r.kind] = { start: r.window_start, reserved: r.reserved };
    }
    return out;
  }

  /** Writes the holder's holding and, unless an older report than the one kept (by
   *  `seq`), what to charge of it. */
  private writeHolding(holder: string, h: Holding, report: { charge: number; seq: number }, nowMs: number): void {
    for (const kind of BUDGET_KINDS) {
      const x = h[kind];
      if (x === undefined) continue;
      this.ctx.storage.sql.exec(
        "INSERT INTO holding (holder, kind, window_start, reserved, charge, report_seq, seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(holder, kind) DO UPDATE SET window_start = excluded.window_start, reserved = excluded.reserved, " +
          "charge = CASE WHEN excluded.report_seq >= holding.report_seq THEN excluded.charge ELSE holding.charge END, report_seq = MAX(holding.report_seq, excluded.report_seq), seen_ms = excluded.seen_ms",
        holder,
        kind,
        x.start,
        x.reserved,
        report.charge,
        report.seq,
        nowMs,
      );
    }
  }

  /** The budgets, after expiring what holders the object has not heard from for
   *  BUDGET_HOLD_TTL_MS held (their isolates are gone, or cut off: nobody gives it back):
   *  their calls' money is charged, their leases' released (expireHoldings). */
  private readBudgetSwept(nowMs: number): BudgetRows {
    const rows = this.readBudget();
    const cutoff = nowMs - config(this.env).holdTtlMs;
    const gone = this.ctx.storage.sql
      .exec<{ kind: string; window_start: number; reserved: number; charge: number }>("SELECT kind, window_start, reserved, charge FROM holding WHERE seen_ms < ?", cutoff)
      .toArray();
    if (gone.length === 0) return rows;
    const swept = expireHoldings(
      rows,
      gone.flatMap((g) => (isBudgetKind(g.kind) ? [{ kind: g.kind, start: g.window_start, reserved: g.reserved, charge: g.charge }] : [])),
    );
    this.ctx.storage.sql.exec("DELETE FROM holding WHERE seen_ms < ?", cutoff);
    this.writeBudget(swept);
    return swept;
  }

  /** What a budgeted call of `holder` starts from: the budgets after expiring silent
   *  holders, then the holder's holding and its give capped at it. In that order: a holder
   *  whose own holding this expires must not then release it again (its give capped at the
   *  holding read before) or keep it (written back with its new grant, money `reserved` no
   *  longer counts). */
  private holderGive(nowMs: number, holder: string, give: BudgetGive | undefined): { rows: BudgetRows; holder: string; held: Holding; give: BudgetGive | undefined } {
    const rows = this.readBudgetSwept(nowMs);
    const held = this.readHolding(holder);
    return { rows, holder, held, give: capGive(give, held) };
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
    const money = ask.budget;
    const h = money !== undefined ? this.holderGive(now, holderOf(money.holder), money.give) : undefined;
    const r = admit(
      { requests: this.readRequests(), tokens: this.readTokens(), budget: h?.rows },
      now,
      ratePerMinute,
      burst,
      leaseCap ?? MAX_LEASE,
      money !== undefined ? { ...ask, budget: { ...money, ...(h?.give !== undefined ? { give: h.give } : {}) } } : ask,
    );
    this.writeRequests(r.requests);
    this.writeTokens(r.tokens);
    this.writeBudget(r.budget);
    const b = r.result.budget;
    if (money !== undefined && h !== undefined && r.budget !== undefined) {
      const granted = b?.granted ?? 0;
      const own = money.admits === true && r.result.allowed ? Math.min(granted, Math.max(0, Math.ceil(money.want))) : 0;
      this.writeHolding(h.holder, holdingAfter(h.held, r.budget, money.limits, h.give, granted, b?.windows ?? {}), { charge: chargeAfter(money.charge, own, granted > own), seq: reportSeq(money.seq) }, now);
    }
    return r.result;
  }

  /** A settle: gives back what a call reserved and did not use (a negative amount takes
   *  what it used beyond its reservation), and, for a tenant with budgets, releases the
   *  call's money reservation and spends its actual cost. Sent from ctx.waitUntil, off
   *  the client's path. */
  settle(limits: TokenLimits, give: Tokens, budget?: { limits: BudgetLimits; give: BudgetGive; holder?: string; charge?: number; seq?: number }): void {
    const now = Date.now();
    if (give.input !== 0 || give.output !== 0) this.writeTokens(giveBack(this.readTokens(), now, limits, give));
    if (budget !== undefined) {
      const h = this.holderGive(now, holderOf(budget.holder), budget.give);
      const rows = applyGive(h.rows, now, budget.limits, h.give);
      this.writeBudget(rows);
      this.writeHolding(h.holder, holdingAfter(h.held, rows, budget.limits, h.give, 0, {}), { charge: chargeAfter(budget.charge, 0, false), seq: reportSeq(budget.seq) }, now);
    }
  }

  /** An isolate with a budgeted call in flight says it is alive (tokens.ts), with its
   *  money report: what it holds stays reserved. */
  touch(holder: string, charge?: number, seq?: number): void {
    const n = reportSeq(seq);
    this.ctx.storage.sql.exec(
      "UPDATE holding SET seen_ms = ?, charge = CASE WHEN ? >= report_seq THEN ? ELSE charge END, report_seq = MAX(report_seq, ?) WHERE holder = ?",
      Date.now(),
      n,
      chargeAfter(charge, 0, false),
      n,
      holderOf(holder),
    );
  }

  /** The budgets' current windows (operators and tests; the ledger is the record of spend),
   *  after releasing what silent holders held. */
  budgetState(): BudgetRows {
    return this.readBudgetSwept(Date.now());
  }
}
