// `npm run usage`: per UTC day, tenant and model, the calls, tokens by kind, cache hit
// rate and cost, from the usage ledger: local Miniflare state (--local, the default) or the
// deployed D1 database through the Cloudflare API (--remote). Table, --json or --csv.
import { Option } from "commander";
import { APIError } from "cloudflare";
import { intAtLeast, newCommand, parseArgs, type CliOutput } from "../cli.ts";
import { renderCsv, renderJson, renderTable } from "./format.ts";
import { DEFAULT_PERSIST, openLocalSource } from "./local.ts";
import { openRemoteSource } from "./remote.ts";
import { usageReport, type UsageFilter, type UsageSource } from "./report.ts";

export const USAGE_EXIT = {
  ok: 0,
  /** The ledger could not be read (API error, unreachable, no local state). */
  failed: 1,
  /** Bad command line or missing credentials. */
  usage: 2,
} as const;

export interface Io extends CliOutput {
  env: NodeJS.ProcessEnv;
}

class UsageError extends Error {}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function day(name: string): (v: string) => string {
  return (v) => {
    if (!DAY.test(v) || new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) !== v) throw new UsageError(`${name} must be a date YYYY-MM-DD, got '${v}'`);
    return v;
  };
}

export function filterFrom(o: { from?: string; to?: string; days: number; tenant?: string; model?: string }, now = new Date()): UsageFilter {
  const to = o.to !== undefined ? day("--to")(o.to) : now.toISOString().slice(0, 10);
  const from = o.from !== undefined ? day("--from")(o.from) : new Date(Date.parse(`${to}T00:00:00Z`) - (o.days - 1) * 86_400_000).toISOString().slice(0, 10);
  if (from > to) throw new UsageError(`--from (${from}) is after --to (${to})`);
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
  accountId?: string;
  databaseId?: string;
  apiBase?: string;
}

async function openSource(o: Opts, io: Io): Promise<UsageSource> {
  if (o.local && o.remote) throw new UsageError("choose one: --local or --remote");
  if (!o.remote) return openLocalSource(o.persist);
  const apiToken = io.env.CLOUDFLARE_API_TOKEN;
  const accountId = o.accountId ?? io.env.CLOUDFLARE_ACCOUNT_ID;
  const databaseId = o.databaseId ?? io.env.EDGEFLEET_USAGE_DATABASE_ID;
  const missing = [
    apiToken ? undefined : "CLOUDFLARE_API_TOKEN (environment only, never a flag; D1 read permission)",
    accountId ? undefined : "--account-id or CLOUDFLARE_ACCOUNT_ID",
    databaseId ? undefined : "--database-id or EDGEFLEET_USAGE_DATABASE_ID (the edgefleet-usage D1 database's uuid)",
  ].filter((m) => m !== undefined);
  if (missing.length > 0) throw new UsageError(`--remote needs: ${missing.join("; ")}`);
  const baseURL = o.apiBase ?? io.env.CLOUDFLARE_API_BASE_URL;
  return openRemoteSource({ apiToken: apiToken!, accountId: accountId!, databaseId: databaseId!, ...(baseURL ? { baseURL } : {}) });
}

/** Why a read failed, without anything secret (the SDK's messages carry no token). */
function describe(e: unknown): string {
  if (e instanceof APIError) {
    const errors = (e.errors ?? []) as { code?: number; message?: string }[];
    const detail = errors.map((x) => `${x.code ?? "?"} ${x.message ?? ""}`.trim()).join("; ");
    return `the Cloudflare API answered ${e.status ?? "no response"}${detail ? `: ${detail}` : ""}`;
  }
  return e instanceof Error ? e.message : String(e);
}

export async function runUsage(argv: string[], io: Io, now = new Date()): Promise<number> {
  let opts: Opts | undefined;
  const cmd = newCommand("usage", io)
    .description("Usage per UTC day, tenant and model from the usage ledger: calls, tokens by kind, cache hit rate, cost.")
    .option("--local", "read the local ledger state (the default)")
    .option("--remote", "read the deployed ledger's D1 database through the Cloudflare API")
    .option("--persist <dir>", "local state folder (wrangler's --persist-to layout)", DEFAULT_PERSIST)
    .option("--from <day>", "first UTC day, YYYY-MM-DD (default: --days before --to)")
    .option("--to <day>", "last UTC day, YYYY-MM-DD (default: today)")
    .option("--days <n>", "days to show when --from is not given", intAtLeast("--days", 1), 7)
    .option("--tenant <id>", "only this tenant")
    .option("--model <id>", "only this model")
    .addOption(new Option("--json", "print JSON").conflicts("csv"))
    .option("--csv", "print CSV")
    .option("--account-id <id>", "Cloudflare account (--remote; or CLOUDFLARE_ACCOUNT_ID)")
    .option("--database-id <uuid>", "the ledger's D1 database (--remote; or EDGEFLEET_USAGE_DATABASE_ID)")
    .option("--api-base <url>", "Cloudflare API base URL (or CLOUDFLARE_API_BASE_URL)")
    .addHelpText(
      "after",
      "\nThe token is read from CLOUDFLARE_API_TOKEN only. Cost is rounded up to the micro-dollar per call.\n" +
        "Rows marked (!) include calls of a model missing from fleet/metering.yaml, priced at the table's highest rates.\n" +
        "Exit codes: 0 ok, 1 the ledger could not be read, 2 bad command line or missing credentials.\n",
    )
    .action((o: Opts) => {
      opts = o;
    });
  const early = parseArgs(cmd, argv, USAGE_EXIT);
  if (early !== undefined) return early;
  const o = opts!;
  let filter: UsageFilter;
  let source: UsageSource;
  try {
    filter = filterFrom(o, now);
    source = await openSource(o, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`usage: ${e.message}\n`);
      return USAGE_EXIT.usage;
    }
    io.err(`usage: ${describe(e)}\n`);
    return USAGE_EXIT.failed;
  }
  try {
    const report = await usageReport(source, filter);
    io.out(o.json ? renderJson(report) : o.csv ? renderCsv(report) : renderTable(report));
    return USAGE_EXIT.ok;
  } catch (e) {
    io.err(`usage: cannot read ${source.where}: ${describe(e)}\n`);
    return USAGE_EXIT.failed;
  } finally {
    await source.close();
  }
}
