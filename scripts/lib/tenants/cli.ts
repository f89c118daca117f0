// `npm run tenants`: create a tenant key (printed once), list tenants, set a tenant's
// limits (requests, input and output tokens per minute, daily and monthly spend
// budgets), opt one in to the archive, disable one;
// against the local Miniflare state shared with `npm run dev:proxy` (--local) or the
// deployed Worker's TENANTS namespace through the Cloudflare API (--remote).
import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import Table from "cli-table3";
import { cloudflareCredentials, UsageError, cloudflareApiBase } from "../cli.ts";
import { openLocalStore, DEFAULT_PERSIST } from "./local.ts";
import { openRemoteStore } from "./remote.ts";
import { createTenant, DEFAULT_LIMITS, disableTenant, LIST_LAG_NOTE, listTenants, setArchive, setLimits, PartialWriteError, TenantError, type Limits, type TenantKv } from "./store.ts";
import { wranglerWorkerOptions } from "../../../workers/llm-proxy/local/miniflare.ts";
import { dollars, dollarsToMicros } from "../../../workers/shared/cost.ts";
import { escapeControls, safeJson } from "../../../workers/shared/printable.ts";
import { describeError } from "../cloudflare-error.ts";

export const TENANT_EXIT = {
  ok: 0,
  /** The store refused or failed (API error, unreachable). */
  failed: 1,
  /** Bad command line or input (unknown option, invalid rate, missing credentials). */
  usage: 2,
  /** The tenant is disabled (create --id without --reenable). */
  refused: 3,
  /** No tenant with that id. */
  notFound: 4,
} as const;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  root: string;
}

interface StoreOpts {
  local?: boolean;
  remote?: boolean;
  persist: string;
  accountId?: string;
  namespaceId?: string;
  stackOutputs?: string;
  stackOutputKey: string;
  apiBase?: string;
  json?: boolean;
}


const PLACEHOLDER_NS = /^0+$/;

async function openStore(o: StoreOpts, io: Io): Promise<{ kv: TenantKv; close: () => Promise<void>; where: string }> {
  if (o.local === o.remote) throw new UsageError("choose where: --local (the dev:proxy state) or --remote (the deployed Worker, via the Cloudflare API)");
  if (o.local) {
    const s = await openLocalStore(io.root, o.persist);
    return { ...s, where: `local state ${o.persist}` };
  }
  let namespaceId = o.namespaceId ?? io.env.EDGEFLEET_TENANTS_NAMESPACE_ID;
  if (namespaceId === undefined && o.stackOutputs !== undefined) {
    namespaceId = namespaceFromStackOutputs(resolve(io.root, o.stackOutputs), o.stackOutputKey);
  }
  if (namespaceId === undefined) {
    const kv = wranglerWorkerOptions().options.kvNamespaces;
    const ns = kv !== undefined && !Array.isArray(kv) ? kv.TENANTS : undefined;
    const id = typeof ns === "string" ? ns : ns?.id;
    if (id !== undefined && !PLACEHOLDER_NS.test(id)) namespaceId = id;
  }
  const { apiToken, accountId } = cloudflareCredentials(o, io.env, {
    prefix: "--remote needs:",
    more: [namespaceId ? undefined : "--namespace-id, EDGEFLEET_TENANTS_NAMESPACE_ID or --stack-outputs (wrangler.jsonc holds a placeholder id)"],
  });
  const baseURL = cloudflareApiBase(o.apiBase, io.env);
  const kv = openRemoteStore({ apiToken, accountId, namespaceId: namespaceId!, ...(baseURL ? { baseURL } : {}) });
  return { kv, close: async () => {}, where: `KV namespace ${namespaceId} (account ${accountId})` };
}

/**
 * The TENANTS namespace id from a saved `pulumi stack output --json` (a flat object of
 * outputs; `key` may be a dotted path into it, e.g. `llmProxy.tenantsNamespaceId`).
 */
export function namespaceFromStackOutputs(file: string, key: string): string {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`--stack-outputs ${file}: ${e instanceof SyntaxError ? "not JSON (save it with \`pulumi stack output --json\`)" : "cannot be read"}`);
  }
  let v: unknown = data;
  for (const part of key.split(".")) v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[part] : undefined;
  if (typeof v !== "string" || !/^[0-9a-f]{32}$/.test(v)) {
    const keys = typeof data === "object" && data !== null ? Object.keys(data).join(", ") : "";
    throw new UsageError(`--stack-outputs ${file}: output '${key}' is ${v === undefined ? "missing" : "not a 32-hex namespace id"} (outputs: ${keys || "none"})`);
  }
  return v;
}

/** What each location of the Worker may take to see a change (docs/llm-proxy.md, "How
 *  long a disabled key still works"): the isolate's cache, the location's KV cache, and
 *  KV's own propagation. */
const APPLY_WINDOW = "within TENANT_CACHE_SECONDS + KV_CACHE_TTL_SECONDS + KV's propagation to each location (Cloudflare: up to 60 s or more; docs/llm-proxy.md, \"How long a disabled key still works\")";

/** A number written in decimal digits (a fraction for --rate): an empty flag
 *  (`--input-tokens-per-minute "$TPM"` with TPM unset) is an error, never 0, which means
 *  "no limit"; so are hex, exponents and signs, which Number() would take. */
function positiveNumber(flag: string, v: string): number {
  if (!/^\d{1,15}(\.\d{1,6})?$/.test(v.trim())) throw new UsageError(`${flag}: '${v}' is not a number in decimal digits`);
  return Number(v.trim());
}

/** Digits a budget may have before the decimal point (up to $999,999,999.999999). */
const BUDGET_WHOLE_DIGITS = 9;

/**
 * A budget flag: dollars as text ("12.50", at most 6 decimals), parsed as text into
 * integer micro-dollars (pricing's parser: no float); `none` removes the budget (0).
 * A budget of $0 is refused: it would refuse every call (`tenants disable` does that).
 */
function budgetFlag(flag: string, v: string): number {
  if (v.trim().toLowerCase() === "none") return 0;
  const micros = dollarsToMicros(v, BUDGET_WHOLE_DIGITS);
  if (micros === undefined) throw new UsageError(`${flag}: '${v}' is not an amount in dollars with at most 6 decimals (e.g. 12.50), or 'none' to remove the budget`);
  if (micros === 0) throw new UsageError(`${flag}: a budget must be more than $0 ('none' removes it; \`tenants disable\` stops a tenant)`);
  return micros;
}

/** The limit flags given on the command line (undefined where not given). */
function limitFlags(o: Record<string, unknown>): Partial<Limits> {
  const flagOf = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const n = (k: string) => (o[k] === undefined ? undefined : positiveNumber(flagOf(k), String(o[k])));
  const b = (k: string, flag: string) => (o[k] === undefined ? undefined : budgetFlag(flag, String(o[k])));
  return {
    ratePerMinute: n("rate"),
    burst: n("burst"),
    inputTokensPerMinute: n("inputTokensPerMinute"),
    outputTokensPerMinute: n("outputTokensPerMinute"),
    dailyBudgetMicros: b("dailyBudget", "--daily-budget"),
    monthlyBudgetMicros: b("monthlyBudget", "--monthly-budget"),
  };
}

const limitOptions = (c: Command) =>
  c
    .option("--rate <n>", `sustained requests per minute (new tenant: ${DEFAULT_LIMITS.ratePerMinute})`)
    .option("--burst <n>", `requests allowed at once, the bucket size (new tenant: ${DEFAULT_LIMITS.burst})`)
    .option("--input-tokens-per-minute <n>", "input tokens per minute: uncached input + cache writes; cache reads are free (0: no limit, the default)")
    .option("--output-tokens-per-minute <n>", "output tokens per minute (0: no limit, the default)")
    .option("--daily-budget <dollars>", "spend budget per UTC day in US dollars, e.g. 12.50 ('none': no budget, the default)")
    .option("--monthly-budget <dollars>", "spend budget per UTC calendar month in US dollars ('none': no budget, the default)");

function fmtTokens(n: number | undefined): string {
  return n === undefined || n === 0 ? "-" : String(n);
}

function fmtBudget(micros: number | undefined): string {
  return micros === undefined || micros === 0 ? "-" : `$${dollars(micros)}`;
}

function errorCode(e: TenantError): number {
  return e.kind === "notFound" ? TENANT_EXIT.notFound : e.kind === "refused" ? TENANT_EXIT.refused : TENANT_EXIT.usage;
}

/** Runs the command line; returns the exit code. Never prints a key except the new one. */
export async function runTenants(argv: string[], io: Io): Promise<number> {
  let code: number = TENANT_EXIT.ok;
  const program = new Command("tenants")
    .description("Manage the LLM proxy's tenants: create a key (printed once), list, set limits, disable")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  const common = (c: Command) =>
    c
      .option("--local", "use the local state shared with `npm run dev:proxy`")
      .option("--remote", "use the deployed Worker's TENANTS KV namespace (Cloudflare API; token from CLOUDFLARE_API_TOKEN)")
      .option("--persist <dir>", "local state directory", DEFAULT_PERSIST)
      .option("--account-id <id>", "Cloudflare account id (default: CLOUDFLARE_ACCOUNT_ID)")
      .option("--namespace-id <id>", "TENANTS namespace id (default: EDGEFLEET_TENANTS_NAMESPACE_ID, else --stack-outputs, else wrangler.jsonc)")
      .option("--stack-outputs <file>", "read the namespace id from a saved `pulumi stack output --json`")
      .option("--stack-output-key <key>", "the output holding the TENANTS namespace id (dotted path)", "tenantsNamespaceId")
      .option("--api-base <url>", "Cloudflare API base URL (default: CLOUDFLARE_API_BASE_URL, else the real API)")
      .option("--json", "machine-readable output");

  const run = (fn: (o: StoreOpts & Record<string, unknown>, store: Awaited<ReturnType<typeof openStore>>, args: string[]) => Promise<void>) =>
    async (...a: unknown[]) => {
      const cmd = a[a.length - 1] as Command;
      const o = cmd.opts() as StoreOpts & Record<string, unknown>;
      const opened = await openStore(o, io);
      // A key whose value is not a tenant record is skipped, and said (its name escaped:
      // anyone with write access to the namespace chose it).
      const store = { ...opened, kv: { ...opened.kv, warn: (m: string) => io.err(`tenants: warning: ${escapeControls(m)} (${opened.where})\n`) } };
      try {
        await fn(o, store, cmd.args);
      } finally {
        await store.close();
      }
    };

  limitOptions(common(program.command("create").description("create a tenant key; the key is printed once and stored only as a SHA-256 hash")))
    .option("--name <name>", "tenant name (required for a new tenant; with --id, the tenant's)")
    .option("--id <tenantId>", "add a key to an existing, enabled tenant (e.g. to rotate its key); name and limits are the tenant's")
    .option("--reenable", "with --id: allow a key for a disabled or unknown tenant, enabling the tenant again (its old keys stay disabled)")
    .action(
      run(async (o, store) => {
        const given = limitFlags(o);
        let created;
        try {
          created = await createTenant(store.kv, {
            ...(o.name !== undefined ? { name: String(o.name) } : {}),
            ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)),
            ...(o.id !== undefined ? { id: String(o.id) } : {}),
            ...(o.reenable === true ? { reenable: true } : {}),
          });
        } catch (e) {
          if (e instanceof TenantError) {
            io.err(`tenants: ${e.message}${e.kind === "input" ? "" : ` in ${store.where}`}\n`);
            code = errorCode(e);
            return;
          }
          throw e;
        }
        const { key, record } = created;
        if (o.json) io.out(safeJson({ key, tenant: record }, 2) + "\n");
        else {
          const tok = `input tokens/min ${fmtTokens(record.inputTokensPerMinute)}, output tokens/min ${fmtTokens(record.outputTokensPerMinute)}, daily budget ${fmtBudget(record.dailyBudgetMicros)}, monthly budget ${fmtBudget(record.monthlyBudgetMicros)}`;
          // The name (and id) may be an earlier record's, written before names were
          // checked or by hand: escaped.
          io.out(`created ${o.id !== undefined ? "a key for" : ""}${o.id !== undefined ? " " : ""}tenant ${escapeControls(record.id)} (${escapeControls(record.name)}) in ${store.where}: ${record.ratePerMinute}/min, burst ${record.burst}, ${tok}\n`);
          if (o.reenable === true) io.out(`tenant ${record.id} is enabled again (its earlier keys stay disabled)\n`);
          io.out(`key (shown once; store it now): ${key}\n`);
        }
      }),
    );

  limitOptions(common(program.command("limits").description("set a tenant's limits on all its keys (dry run unless --yes)")))
    .argument("<tenantId>", "the tenant's id (t_...)")
    .option("--yes", "apply; without it, only say what would change")
    .action(
      run(async (o, store, args) => {
        const id = args[0] as string;
        const dryRun = o.yes !== true;
        let r;
        try {
          r = await setLimits(store.kv, id, limitFlags(o), dryRun);
        } catch (e) {
          if (e instanceof TenantError) {
            io.err(`tenants: ${e.message}${e.kind === "notFound" ? ` in ${store.where}` : ""}\n`);
            code = errorCode(e);
            return;
          }
          throw e;
        }
        if (o.json) io.out(safeJson({ dryRun, tenant: id, keys: r.keys, before: r.before, after: r.after }, 2) + "\n");
        else {
          const show = (l: Limits) =>
            `${l.ratePerMinute}/min, burst ${l.burst}, input tokens/min ${fmtTokens(l.inputTokensPerMinute)}, output tokens/min ${fmtTokens(l.outputTokensPerMinute)}, daily budget ${fmtBudget(l.dailyBudgetMicros)}, monthly budget ${fmtBudget(l.monthlyBudgetMicros)}`;
          io.out(`${dryRun ? "would set" : "set"} ${id}'s limits on ${r.keys} key(s) in ${store.where}: ${show(r.before)} -> ${show(r.after)}\n`);
          if (dryRun) io.out("dry run: nothing changed; re-run with --yes to apply\n");
          else io.out(`the Worker applies them ${APPLY_WINDOW}\n${LIST_LAG_NOTE}\n`);
        }
      }),
    );

  common(program.command("archive").description("opt a tenant in to the R2 archive of its request and response bodies, or out (dry run unless --yes)"))
    .argument("<tenantId>", "the tenant's id (t_...)")
    .argument("<on|off>", "on: archive its calls' bodies from now on; off: stop (what is archived stays until the bucket's lifecycle rule removes it)")
    .option("--yes", "apply; without it, only say what would change")
    .action(
      run(async (o, store, args) => {
        const [id, want] = args as [string, string];
        if (want !== "on" && want !== "off") throw new UsageError(`archive: expected on or off, got '${want}'`);
        const dryRun = o.yes !== true;
        let r;
        try {
          r = await setArchive(store.kv, id, want === "on", dryRun);
        } catch (e) {
          if (e instanceof TenantError) {
            io.err(`tenants: ${e.message} in ${store.where}\n`);
            code = errorCode(e);
            return;
          }
          throw e;
        }
        if (o.json) io.out(safeJson({ dryRun, tenant: id, before: r.before, after: want === "on", changed: r.changed, keys: r.keys }, 2) + "\n");
        else {
          const show = (b: boolean) => (b ? "on" : "off");
          io.out(`${dryRun ? "would set" : "set"} ${id}'s archive ${show(r.before)} -> ${want} on ${r.changed} of ${r.keys} key(s) in ${store.where}\n`);
          if (dryRun && r.changed > 0) io.out("dry run: nothing changed; re-run with --yes to apply\n");
          else if (!dryRun) io.out(`the Worker applies it ${APPLY_WINDOW}; bodies go to the ARCHIVE bucket (docs/metering.md)\n${LIST_LAG_NOTE}\n`);
        }
      }),
    );

  common(program.command("list").description("list tenants (one row per key; keys are never shown: the table gives a prefix of their hash, --json the whole SHA-256, which cannot authenticate)")).action(
    run(async (o, store) => {
      const all = await listTenants(store.kv);
      if (o.json) {
        io.out(safeJson(all, 2) + "\n");
        return;
      }
      const t = new Table({ head: ["id", "name", "rate/min", "burst", "in tok/min", "out tok/min", "budget/day", "budget/month", "archive", "enabled", "key sha256", "created"], style: { head: [], border: [] } });
      // Records written before names were checked, or by hand, may hold control and
      // bidirectional characters: every text cell is escaped.
      const text = escapeControls;
      for (const r of all) {
        t.push([text(r.id), text(r.name), r.ratePerMinute, r.burst, fmtTokens(r.inputTokensPerMinute), fmtTokens(r.outputTokensPerMinute), fmtBudget(r.dailyBudgetMicros), fmtBudget(r.monthlyBudgetMicros), r.archive ? "yes" : "-", r.enabled ? "yes" : "NO", text(r.keyHash.slice(0, 12)), text(r.createdAt)]);
      }
      io.out(`${all.length} tenant key(s) in ${store.where}\n${t.toString()}\n`);
    }),
  );

  common(program.command("disable").description("disable every key of a tenant (dry run unless --yes)"))
    .argument("<tenantId>", "the tenant's id (t_...)")
    .option("--yes", "apply; without it, only say what would change")
    .action(
      run(async (o, store, args) => {
        const id = args[0] as string;
        const dryRun = o.yes !== true;
        let result;
        try {
          result = await disableTenant(store.kv, id, dryRun);
        } catch (e) {
          if (e instanceof TenantError) {
            io.err(`tenants: ${e.message} in ${store.where}\n`);
            code = TENANT_EXIT.notFound;
            return;
          }
          throw e;
        }
        if (o.json) io.out(safeJson({ dryRun, tenant: id, disabled: result.changed.map((r) => r.keyHash.slice(0, 12)), alreadyDisabled: result.alreadyDisabled }, 2) + "\n");
        else {
          const verb = dryRun ? "would disable" : "disabled";
          io.out(`${verb} ${result.changed.length} key(s) of ${id} in ${store.where}; ${result.alreadyDisabled} already disabled\n`);
          if (dryRun && result.changed.length > 0) io.out("dry run: nothing changed; re-run with --yes to apply\n");
          if (!dryRun) io.out(`the Worker stops accepting every key of this tenant ${APPLY_WINDOW}\n`);
        }
      }),
    );

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? TENANT_EXIT.ok : TENANT_EXIT.usage;
    if (e instanceof UsageError) {
      io.err(`tenants: ${e.message}\n`);
      return TENANT_EXIT.usage;
    }
    if (e instanceof TenantError) {
      io.err(`tenants: ${e.message}\n`);
      return errorCode(e);
    }
    // API or store failure: say what failed, never a credential, with the API's text
    // escaped and how long a 429 asked to wait (describeError); part-way through a
    // tenant's keys, how far it got.
    if (e instanceof PartialWriteError) io.err(`tenants: ${describeError(e.cause)}; ${e.message}\n`);
    else io.err(`tenants: ${describeError(e)}\n`);
    return TENANT_EXIT.failed;
  }
  return code;
}
