// A loopback fake of Cloudflare's D1 query endpoint, backed by real SQLite (node:sqlite):
//   POST /client/v4/accounts/{account_id}/d1/database/{database_id}/query
//   body {sql, params?: string[]}  (or {batch: [{sql, params?}]})
//   200 {success: true, errors: [], messages: [], result: [{results: [...rows], success: true, meta: {...}}]}
// Contract from node_modules/cloudflare 7.3.0, resources/d1/database/database.{d.ts,js}
// (DatabaseQueryParams: D1SingleQuery | MultipleQueries, `params?: Array<string>`;
// QueryResult {results, success, meta{changed_db, changes, duration, last_row_id, rows_read,
// rows_written, size_after, ...}}; query() posts to the path above and reads `result` as a
// SinglePage), and from wrangler 4.153 (wrangler-dist/cli.js: error code 7404 means "no
// such database"). Checked 2026-11-27. Errors use Cloudflare's v4 envelope
// ({success: false, errors: [{code, message}], messages: [], result: null}); the codes
// for a bad token (10000) and a SQL error (7500) are the ones Cloudflare's API reports in
// public threads; the SDK maps the HTTP status (400/403/404/429/5xx) to its error classes.
// Stricter than lenient: a wrong token, another account, an unknown database, a body that
// is neither form, non-string params, params with several statements, more than 100
// bound parameters or a statement over 100 KB (D1's limits), and SQL that controls
// transactions (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...) are refused.
// The account-wide API limit applies to this endpoint as to every other (1,200 requests per
// 5 minutes per user, then 429 for five minutes: developers.cloudflare.com/fundamentals/api/
// reference/limits/, "applies cumulatively regardless of whether the request is made via the
// dashboard, API key, or API token"; D1's own limits page lists no separate API limit):
// test/support/account-rate-limit.ts, counted on arrival, before authentication.
// Faults: failNext(status, code) answers the next request with that error.
import { AccountRateLimit, RATE_LIMITED, type AccountLimitOptions } from "../support/account-rate-limit.ts";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { DatabaseSync } from "node:sqlite";
import type { AddressInfo } from "node:net";

const PATH = /^\/client\/v4\/accounts\/([^/]+)\/d1\/database\/([^/]+)\/query$/;

export class FakeD1Api {
  readonly token: string;
  readonly accountId: string;
  readonly databases = new Map<string, DatabaseSync>();
  readonly requests: { path: string; body: unknown }[] = [];
  private faults: { status: number; code: number; message: string }[] = [];
  private server: Server | undefined;
  url = "";
  /** The account-wide API limit (1,200 requests / 5 min); a test may put a smaller one in. */
  account: AccountRateLimit;

  constructor(o: { token: string; accountId: string; limit?: AccountLimitOptions }) {
    this.token = o.token;
    this.accountId = o.accountId;
    this.account = new AccountRateLimit(o.limit);
  }

  /** The base URL to give the SDK (its default is https://api.cloudflare.com/client/v4). */
  get baseURL(): string {
    return `${this.url}/client/v4`;
  }

  addDatabase(id: string): DatabaseSync {
    const db = new DatabaseSync(":memory:");
    this.databases.set(id, db);
    return db;
  }

  failNext(status: number, code: number, message = "injected fault"): void {
    this.faults.push({ status, code, message });
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    for (const db of this.databases.values()) db.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, code: number, message: string) => send(status, { success: false, errors: [{ code, message }], messages: [], result: null });
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    this.requests.push({ path: req.url ?? "", body });
    const blocked = this.account.arrive(Date.now());
    if (blocked !== undefined) return send(429, { success: false, errors: [RATE_LIMITED], messages: [], result: null }, { "retry-after": String(blocked) });
    const fault = this.faults.shift();
    if (fault) return fail(fault.status, fault.code, fault.message);
    const m = PATH.exec((req.url ?? "").split("?")[0]!);
    if (!m) return fail(404, 7003, "Could not route to the requested path");
    if (req.method !== "POST") return fail(405, 10405, "Method not allowed");
    // A request that also carries a global API key (X-Auth-Key/X-Auth-Email) is authenticated
    // by that key, not the token (cloudflare/cloudflare-typescript#2454); the fake knows no
    // global key, so it is refused, as the real API refuses a wrong one.
    if (req.headers["x-auth-key"] !== undefined || req.headers["x-auth-email"] !== undefined) return fail(403, 10000, "Authentication error");
    if (req.headers.authorization !== `Bearer ${this.token}`) return fail(403, 10000, "Authentication error");
    if (m[1] !== this.accountId) return fail(403, 10000, "Authentication error");
    const db = this.databases.get(decodeURIComponent(m[2]!));
    if (!db) return fail(404, 7404, `The database ${m[2]} could not be found`);
    const queries = parseBody(body);
    if (typeof queries === "string") return fail(400, 7400, queries);
    // D1 runs a request's statements as one transaction of its own and refuses SQL that
    // controls transactions (workerd's SQLite authorizer, src/workerd/api/sql.c++
    // allowTransactions: "use ... instead of the SQL BEGIN TRANSACTION or SAVEPOINT
    // statements"; nuxt-hub/core#81 for D1). Wrapping every request in BEGIN/COMMIT here,
    // a COMMIT in a migration file would have ended that transaction early and made the
    // rest of the file non-atomic, where the real API refuses the file.
    const control = queries.flatMap((q) => q.statements).find((st) => TRANSACTION_CONTROL.test(withoutLeadingComments(st)));
    if (control !== undefined) return fail(400, 7500, `not authorized: ${withoutLeadingComments(control).split(/\s/)[0]}: SQLITE_AUTH`);
    const result: unknown[] = [];
    try {
      db.exec("BEGIN");
      for (const q of queries) {
        for (const sql of q.statements) {
          const started = performance.now();
          const stmt = db.prepare(sql);
          const rows = stmt.columns().length > 0 ? stmt.all(...q.params) : [];
          const run = stmt.columns().length > 0 ? { changes: 0, lastInsertRowid: 0 } : stmt.run(...q.params);
          result.push({
            results: rows,
            success: true,
            meta: {
              changed_db: Number(run.changes) > 0,
              changes: Number(run.changes),
              duration: performance.now() - started,
              last_row_id: Number(run.lastInsertRowid),
              rows_read: rows.length,
              rows_written: Number(run.changes),
              served_by_primary: true,
              served_by_region: "WEUR",
              size_after: 0,
            },
          });
        }
      }
      db.exec("COMMIT");
    } catch (e) {
      if (db.isTransaction) db.exec("ROLLBACK");
      return fail(400, 7500, `${(e as Error).message}: SQLITE_ERROR`);
    }
    send(200, { success: true, errors: [], messages: [], result });
  }
}

const TRANSACTION_CONTROL = /^(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b/i;

/** A statement without the comments and space before its first word. */
function withoutLeadingComments(sql: string): string {
  let t = sql.trimStart();
  for (;;) {
    if (t.startsWith("--")) {
      const end = t.indexOf("\n");
      t = end < 0 ? "" : t.slice(end + 1).trimStart();
    } else if (t.startsWith("/*")) {
      const end = t.indexOf("*/");
      t = end < 0 ? "" : t.slice(end + 2).trimStart();
    } else return t;
  }
}

const MAX_BOUND_PARAMS = 100;
const MAX_STATEMENT_BYTES = 100_000;

/** The body's queries, or why the API refuses it. */
function parseBody(body: unknown): { statements: string[]; params: string[] }[] | string {
  if (typeof body !== "object" || body === null) return "the body must be a JSON object";
  const b = body as Record<string, unknown>;
  const one = (q: Record<string, unknown>): { statements: string[]; params: string[] } | string => {
    if (typeof q.sql !== "string" || q.sql.trim() === "") return "sql is required";
    if (q.params !== undefined && (!Array.isArray(q.params) || q.params.some((p) => typeof p !== "string"))) return "params must be an array of strings";
    const statements = splitStatements(q.sql);
    if (statements.length === 0) return "sql is required";
    const params = (q.params as string[] | undefined) ?? [];
    if (statements.length > 1 && params.length > 0) return "params cannot be bound to several statements";
    // D1's limits (developers.cloudflare.com/d1/platform/limits, read 2026-11-28): 100 bound
    // parameters and 100 KB of SQL per statement.
    if (params.length > MAX_BOUND_PARAMS) return `too many SQL variables: ${params.length} bound parameters (D1 allows ${MAX_BOUND_PARAMS}): SQLITE_ERROR`;
    const long = statements.find((s) => Buffer.byteLength(s) > MAX_STATEMENT_BYTES);
    if (long !== undefined) return `statement too long: ${Buffer.byteLength(long)} bytes (D1 allows ${MAX_STATEMENT_BYTES}): SQLITE_TOOBIG`;
    return { statements, params };
  };
  if ("batch" in b) {
    if (!Array.isArray(b.batch) || b.batch.length === 0 || "sql" in b) return "batch must be a non-empty array, without sql";
    const out = [];
    for (const q of b.batch) {
      const r = typeof q === "object" && q !== null ? one(q as Record<string, unknown>) : "each batch entry is an object";
      if (typeof r === "string") return r;
      out.push(r);
    }
    return out;
  }
  const r = one(b);
  return typeof r === "string" ? r : [r];
}

/**
 * The statements of a multi-statement query, split at the semicolons SQLite would end a
 * statement at: not inside a string, a quoted name or a comment (wrangler sends a whole
 * migration file, comments and all, as one query). A piece that is only comments is no
 * statement. (CREATE TRIGGER bodies, whose inner semicolons SQLite keeps, are not
 * handled: no migration of the repository has one.)
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let code = false; // the current piece holds something other than comments and space
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "'" || c === '"' || c === "`" || c === "[") {
      const close = c === "[" ? "]" : c;
      let j = i + 1;
      // A quote inside is doubled ('it''s'); a bracketed name has no escape.
      while (j < sql.length && !(sql[j] === close && !(close !== "]" && sql[j + 1] === close))) j += sql[j] === close ? 2 : 1;
      i = j;
      code = true;
    } else if (c === ";") {
      if (code) out.push(sql.slice(start, i).trim());
      start = i + 1;
      code = false;
    } else if (!/\s/.test(c)) {
      code = true;
    }
  }
  if (code) out.push(sql.slice(start).trim());
  return out;
}
