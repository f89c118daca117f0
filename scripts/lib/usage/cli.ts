// `npm run usage`: per UTC day, tenant and model, the calls, tokens by kind, cache hit
// rate, cost and budget used, from the usage ledger: local Miniflare state (--local, the
// default) or the deployed D1 database through the Cloudflare API (--remote); budgets
// from the tenant records on the same side. Table, --json, --csv or --html (--out FILE).
import * as nodeFs from "node:fs";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { Option } from "commander";
import { cloudflareCredentials, daysOption, ID, isUtcDay, MAX_DAYS, newCommand, outPath, parseArgs, UsageError, type CliOutput, cloudflareApiBase } from "../cli.ts";
import { describeError as describe } from "../cloudflare-error.ts";
import { escapeControls } from "../../../workers/shared/printable.ts";
import { DEFAULT_PERSIST as TENANTS_PERSIST, openLocalStore } from "../tenants/local.ts";
import { openRemoteStore } from "../tenants/remote.ts";
import { readBudgets, type BudgetLookup } from "./budgets.ts";
import { renderCsv, renderJson, renderTable } from "./format.ts";
import { renderHtml } from "./html.ts";
import { DEFAULT_PERSIST, openLocalSource } from "./local.ts";
import { LEDGER_DATABASE_NEEDED, ledgerDatabaseId, openRemoteSource } from "./remote.ts";
import { usageReport, type UsageFilter, type UsageSource } from "./report.ts";

export const USAGE_EXIT = {
  ok: 0,
  /** The ledger could not be read (API error, unreachable, no local state), or --out
   *  could not be written. Unreadable budgets are not a failure: they show "-". */
  failed: 1,
  /** Bad command line, missing credentials, or --out in a folder that does not exist. */
  usage: 2,
} as const;

export interface Io extends CliOutput {
  env: NodeJS.ProcessEnv;
}



/** A day a report may name: a UTC day YYYY-MM-DD from the year 1 on. */
const reportDay = (v: string) => isUtcDay(v) && v >= "0001-01-01";

function day(name: string): (v: string) => string {
  return (v) => {
    if (!reportDay(v)) throw new UsageError(`${name} must be a date YYYY-MM-DD from the year 1 on, got '${escapeControls(v.slice(0, 40))}'`);
    return v;
  };
}

const DAY_MS = 86_400_000;

/** The report's days. `daysGiven`: --days was on the command line (not its default):
 *  with --from it would be ignored, so the pair is refused. Any range is at most MAX_DAYS
 *  long (a range of millennia drew a chart of 3.6 million days: 9 s and 757 MB) and
 *  starts in year 1 or later. */
export function filterFrom(o: { from?: string; to?: string; days: number; daysGiven?: boolean; tenant?: string; model?: string }, now = new Date()): UsageFilter {
  if (o.from !== undefined && o.daysGiven) throw new UsageError("--from and --days: choose one (--days counts back from --to)");
  const to = o.to !== undefined ? day("--to")(o.to) : now.toISOString().slice(0, 10);
  const counted = new Date(Date.parse(`${to}T00:00:00Z`) - (o.days - 1) * DAY_MS).toISOString().slice(0, 10);
  if (o.from === undefined && !reportDay(counted)) throw new UsageError(`--days ${o.days} back from ${to} goes before the year 1`);
  const from = o.from !== undefined ? day("--from")(o.from) : counted;
  if (from > to) throw new UsageError(`--from (${from}) is after --to (${to})`);
  const span = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS + 1;
  if (span > MAX_DAYS) throw new UsageError(`--from ${from} to --to ${to} is ${span} days; a report covers at most ${MAX_DAYS}`);
  for (const [k, v] of [["--tenant", o.tenant], ["--model", o.model]] as const) {
    if (v !== undefined && !ID.test(v)) throw new UsageError(`${k} must be an id (letters, digits, '.', '_', ':', '-')`);
  }
  return { from, to, ...(o.tenant !== undefined ? { tenant: o.tenant } : {}), ...(o.model !== undefined ? { model: o.model } : {}) };
}

interface Opts {
  local?: boolean;
  remote?: boolean;
  persist: string;
  from?: string;
  to?: string;
  days: number;
  tenant?: string;
  model?: string;
  json?: boolean;
  csv?: boolean;
  html?: boolean;
  out?: string;
  budgets: boolean;
  tenantsPersist: string;
  tenantsNamespaceId?: string;
  accountId?: string;
  databaseId?: string;
  apiBase?: string;
}

async function openSource(o: Opts, io: Io): Promise<UsageSource> {
  if (o.local && o.remote) throw new UsageError("choose one: --local or --remote");
  if (!o.remote) return openLocalSource(o.persist);
  const databaseId = ledgerDatabaseId(o.databaseId, io.env);
  const { apiToken, accountId } = cloudflareCredentials(o, io.env, { prefix: "--remote needs:", permission: "D1 read permission", more: [databaseId ? undefined : LEDGER_DATABASE_NEEDED] });
  const baseURL = cloudflareApiBase(o.apiBase, io.env);
  return openRemoteSource({ apiToken, accountId, databaseId: databaseId!, ...(baseURL ? { baseURL } : {}) });
}

/**
 * The tenants' budgets, from the tenant records on the ledger's side: the local
 * `dev:proxy` state (--tenants-persist) or the deployed TENANTS KV namespace. Never fails
 * the report: what cannot be read is a reason, shown with "-".
 */
/** Where a budget reader's warnings go: standard error, escaped, naming the store. */
const warnOf = (io: Io, where: string) => (m: string) => io.err(`usage: warning: ${escapeControls(m)} (${where})\n`);

async function readTenantBudgets(o: Opts, io: Io): Promise<BudgetLookup> {
  if (!o.budgets) return { available: false, source: null, reason: "not read (--no-budgets)" };
  let where: string;
  try {
    if (!o.remote) {
      where = `local tenant state ${o.tenantsPersist}`;
      // Checked first: opening Miniflare on a missing folder would create it.
      if (!existsSync(resolve(o.tenantsPersist, "kv"))) {
        return { available: false, source: null, reason: `no tenant records in ${where} (npm run tenants -- create --local writes them; or give --tenants-persist)` };
      }
      const store = await openLocalStore(process.cwd(), o.tenantsPersist);
      try {
        return { available: true, source: where, byTenant: await readBudgets({ ...store.kv, warn: warnOf(io, where) }) };
      } finally {
        await store.close();
      }
    }
    const namespaceId = o.tenantsNamespaceId ?? io.env.EDGEFLEET_TENANTS_NAMESPACE_ID;
    if (!namespaceId) {
      return { available: false, source: null, reason: "--remote reads budgets from the deployed TENANTS KV namespace: give --tenants-namespace-id or EDGEFLEET_TENANTS_NAMESPACE_ID" };
    }
    where = `KV namespace ${namespaceId} (account ${o.accountId ?? io.env.CLOUDFLARE_ACCOUNT_ID})`;
    const baseURL = cloudflareApiBase(o.apiBase, io.env);
    const kv = openRemoteStore({ apiToken: io.env.CLOUDFLARE_API_TOKEN!, accountId: (o.accountId ?? io.env.CLOUDFLARE_ACCOUNT_ID)!, namespaceId, ...(baseURL ? { baseURL } : {}) });
    return { available: true, source: where, byTenant: await readBudgets({ ...kv, warn: warnOf(io, where) }) };
  } catch (e) {
    return { available: false, source: null, reason: `cannot read the tenant records: ${describe(e)}` };
  }
}

export type OutFs = Pick<typeof nodeFs, "existsSync" | "realpathSync" | "statSync" | "openSync" | "writeFileSync" | "closeSync" | "renameSync" | "rmSync">;

/**
 * Writes --out whole or not at all: into `<file>.tmp-<pid>` beside it (same folder, so
 * same file system), then renamed over it. A write that fails midway (disk full) leaves
 * the previous report as it was and no temporary file, where writing in place left half
 * a page and no old report. The temporary file is created exclusively (never through a
 * link someone left at its name). Something that is not a regular file (/dev/stdout, a
 * pipe, a device) is written in place: a rename would replace it. A link is followed, so
 * the file it points to is replaced, not the link.
 */
export function writeWhole(file: string, text: string, fs: OutFs = nodeFs): void {
  const target = fs.existsSync(file) ? fs.realpathSync(file) : file;
  if (fs.existsSync(target) && !fs.statSync(target).isFile()) {
    fs.writeFileSync(target, text);
    return;
  }
  const tmp = `${target}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, "wx");
  try {
    try {
      fs.writeFileSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}


export async function runUsage(argv: string[], io: Io, now = new Date()): Promise<number> {
  let opts: Opts | undefined;
  const cmd = newCommand("usage", io)
    .description("Usage per UTC day, tenant and model from the usage ledger: calls, tokens by kind, cache hit rate, cost and budget used.")
    .option("--local", "read the local ledger state (the default)")
    .option("--remote", "read the deployed ledger's D1 database through the Cloudflare API")
    .option("--persist <dir>", "local state folder (wrangler's --persist-to layout)", DEFAULT_PERSIST)
    .option("--from <day>", "first UTC day, YYYY-MM-DD (default: --days before --to)")
    .option("--to <day>", "last UTC day, YYYY-MM-DD (default: today)")
    .option("--days <n>", `days to show when --from is not given (at most ${MAX_DAYS})`, daysOption, 7)
    .option("--tenant <id>", "only this tenant")
    .option("--model <id>", "only this model")
    .addOption(new Option("--json", "print JSON (shape: docs/metering.md)").conflicts(["csv", "html"]))
    .addOption(new Option("--csv", "print CSV (RFC 4180)").conflicts("html"))
    .option("--html", "an HTML page with charts (self-contained: no script, no outside request)")
    .option("--out <file>", "write the output to this file instead of standard output")
    .option("--no-budgets", "do not read the tenant records (budget used shows -)")
    .option("--tenants-persist <dir>", "local tenant state, where budgets are read (--local)", TENANTS_PERSIST)
    .option("--tenants-namespace-id <id>", "the deployed TENANTS KV namespace, where budgets are read (--remote; or EDGEFLEET_TENANTS_NAMESPACE_ID)")
    .option("--account-id <id>", "Cloudflare account (--remote; or CLOUDFLARE_ACCOUNT_ID)")
    .option("--database-id <uuid>", "the ledger's D1 database (--remote; or EDGEFLEET_USAGE_DATABASE_ID)")
    .option("--api-base <url>", "Cloudflare API base URL (or CLOUDFLARE_API_BASE_URL)")
    .addHelpText(
      "after",
      "\nThe token is read from CLOUDFLARE_API_TOKEN only. Cost is rounded up to the micro-dollar per call.\n" +
        "cache hit = cache read / (input + 5m cache write + 1h cache write + cache read) tokens.\n" +
        "budget day = (the tenant's cost that UTC day, all models, + what its budget held beyond it) / its daily\n" +
        "budget; budget month = the same from the 1st of that UTC month through the day / its monthly budget.\n" +
        "\"-\": no budget, or budgets not readable (the reason is printed, and in --json under budgets.reason).\n" +
        "Rows marked (!) include calls of a model missing from fleet/metering.yaml, priced at the table's highest rates.\n" +
        "Exit codes: 0 ok, 1 the ledger could not be read or --out not written,\n" +
        "2 bad command line, missing credentials or --out in a missing folder.\n",
    )
    .action((o: Opts) => {
      opts = o;
    });
  const early = parseArgs(cmd, argv, USAGE_EXIT);
  if (early !== undefined) return early;
  const o = opts!;
  let filter: UsageFilter;
  let source: UsageSource;
  let out: string | undefined;
  try {
    filter = filterFrom({ ...o, daysGiven: cmd.getOptionValueSource("days") === "cli" }, now);
    if (o.out !== undefined) out = outPath(o.out, io.env);
    source = await openSource(o, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`usage: ${e.message}\n`);
      return USAGE_EXIT.usage;
    }
    io.err(`usage: ${describe(e)}\n`);
    return USAGE_EXIT.failed;
  }
  let text: string;
  try {
    const budgets = await readTenantBudgets(o, io);
    const report = await usageReport(source, filter, budgets);
    if (!budgets.available && o.budgets) io.err(`usage: budget used shows "-": ${escapeControls(budgets.reason)}\n`);
    text = o.json ? renderJson(report) : o.csv ? renderCsv(report) : o.html ? renderHtml(report, { generated: now.toISOString() }) : renderTable(report);
  } catch (e) {
    const why = describe(e);
    // A ledger whose schema predates a column the report reads (migration 0002's cut_calls).
    const hint = /no such column/i.test(why)
      ? " (the ledger's schema is older than this report: apply its migrations, `npm run d1-migrations` for a deployed fleet; a local ledger is migrated when `npm run dev:proxy` starts)"
      : "";
    io.err(`usage: cannot read ${source.where}: ${why}${hint}\n`);
    return USAGE_EXIT.failed;
  } finally {
    await source.close();
  }
  if (out === undefined) {
    io.out(text);
    return USAGE_EXIT.ok;
  }
  try {
    writeWhole(out, text);
  } catch (e) {
    io.err(`usage: cannot write --out ${o.out}: ${e instanceof Error ? e.message : String(e)}\n`);
    return USAGE_EXIT.failed;
  }
  io.out(`wrote ${out}\n`);
  return USAGE_EXIT.ok;
}
