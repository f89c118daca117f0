// `npm run d1-migrations`: applies the D1 schema migrations of the stack's databases
// with wrangler (`wrangler d1 migrations apply <name> --remote`), the tool whose
// `d1_migrations` table the local runner shares (workers/usage-ledger/local/migrations.ts).
// Wrangler finds a database by the `database_id` of the Worker's wrangler.jsonc, which in
// the repository is a placeholder: the real id comes from the stack (`pulumi stack output
// d1DatabaseIds`), and is written into a copy of wrangler.jsonc beside the original (so
// `migrations_dir` resolves the same), used for the one call and removed.
// CI runs it before `pulumi up` with --skip-missing and again after it (docs/metering.md,
// "D1 migrations"): on the first deploy the database exists only after the up.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { applyEdits, modify, parse } from "jsonc-parser";
import { deriveDesiredState } from "../../stacks/model/desired.ts";
import { formatProblem, loadInventory } from "../../stacks/model/load.ts";
import { TYPES } from "../../stacks/model/names.ts";
import { selectShard, ShardError } from "../../stacks/model/shards.ts";
import { readWorkerConfigOrThrow, WORKERS_DIR } from "../../stacks/model/wrangler.ts";
import { newCommand, parseArgs } from "./cli.ts";
import { NO_TELEMETRY } from "./no-telemetry.ts";
import { escapeControls } from "../../workers/shared/printable.ts";
import { readStackSettings } from "./stack-config.ts";

/** Exit codes (README): 0 done (or nothing to do), 1 a database was not migrated, 2 bad usage or set-up. */
export const D1_EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** wrangler's default when a d1_databases entry has no migrations_dir. */
const DEFAULT_MIGRATIONS_DIR = "migrations";

/** Runs a command to completion; asynchronous, so this process keeps serving meanwhile. */
export interface Exec {
  (command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }>;
}

/** Exec with node:child_process (the CLI's; a command that cannot start fails with its reason). */
export const spawnExec: Exec = (command, args, env) =>
  new Promise((res) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (e) => res({ status: null, stdout, stderr: `${stderr}${e.message}` }));
    child.on("close", (status) => res({ status, stdout, stderr }));
  });

export interface D1MigrationsIO {
  out: (s: string) => void;
  err: (s: string) => void;
  /** The repository root (Pulumi.<stack>.yaml, the inventory). */
  root: string;
  env: NodeJS.ProcessEnv;
  /** Runs pulumi and wrangler; the CLI passes spawnExec. */
  exec: Exec;
  /** Where the Workers' folders are; default the repository's workers/. */
  workersDir?: string;
}

/** A D1 database the stack declares that has migrations: which Worker's wrangler.jsonc names it. */
export interface MigratedDatabase {
  database: string;
  /** The Worker folder whose wrangler.jsonc binds it (the first, if several do). */
  source: string;
  /** That wrangler.jsonc, absolute. */
  config: string;
  /** The migrations folder, absolute. */
  migrationsDir: string;
}

/** The databases the stack's state declares whose Worker config has a migrations folder. */
export function migratedDatabases(declared: ReadonlySet<string>, workers: readonly { source: string }[], workersDir = WORKERS_DIR): MigratedDatabase[] {
  const out = new Map<string, MigratedDatabase>();
  for (const w of workers) {
    const cfg = readWorkerConfigOrThrow(w.source, workersDir);
    for (const d of cfg.d1) {
      if (!declared.has(d.database) || out.has(d.database)) continue;
      const migrationsDir = resolve(cfg.dir, d.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
      if (existsSync(migrationsDir)) out.set(d.database, { database: d.database, source: w.source, config: join(cfg.dir, "wrangler.jsonc"), migrationsDir });
    }
  }
  return [...out.values()].sort((a, b) => (a.database < b.database ? -1 : 1));
}

/** The text of wrangler.jsonc with `database_id` of `database` set to `id` (comments kept). */
export function withDatabaseId(text: string, database: string, id: string): string {
  const parsed = parse(text, [], { allowTrailingComma: true }) as { d1_databases?: { database_name?: string }[] };
  const index = (parsed.d1_databases ?? []).findIndex((d) => d.database_name === database);
  if (index < 0) throw new Error(`no d1_databases entry named '${database}'`);
  return applyEdits(text, modify(text, ["d1_databases", index, "database_id"], id, { formattingOptions: { insertSpaces: true, tabSize: 2 } }));
}

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Options {
  stack: string;
  inventory?: string;
  ids?: string;
  dryRun?: boolean;
  skipMissing?: boolean;
  json?: boolean;
}

type Outcome = { database: string; status: "applied" | "listed" | "not-created" | "failed"; detail?: string };

export async function runD1Migrations(argv: string[], io: D1MigrationsIO): Promise<number> {
  const cmd = newCommand("d1-migrations", io)
    .description(
      "Apply the D1 schema migrations of the stack's databases with wrangler (`d1 migrations apply --remote`), " +
        "each database found by the id the stack exports (pulumi stack output d1DatabaseIds).\n" +
        "Needs CLOUDFLARE_API_TOKEN (D1:Edit). Exit codes: 0 done, 1 a database was not migrated, 2 bad usage or set-up.",
    )
    .option("--stack <name>", "Pulumi stack: its Pulumi.<name>.yaml gives the account, inventory and shard", "prod")
    .option("--inventory <dir>", "inventory directory (default: the stack's edgefleet:inventory, else fleet)")
    .option("--ids <file>", "read the ids from this JSON file ({name: id}) instead of `pulumi stack output d1DatabaseIds`")
    .option("--dry-run", "list the migrations wrangler would apply (`d1 migrations list --remote`); applies none (wrangler creates its empty d1_migrations table if it is missing)")
    .option("--skip-missing", "skip a database the stack has not created yet (the first deploy: run again after pulumi up)")
    .option("--json", "print the outcome per database as JSON on stdout");
  const stop = parseArgs(cmd, argv, { ok: D1_EXIT.ok, usage: D1_EXIT.usage });
  if (stop !== undefined) return stop;
  const opts = cmd.opts<Options>();
  const fail = (msg: string) => (io.err(`d1-migrations: ${msg}\n`), D1_EXIT.usage);

  const settings = readStackSettings(io.root, opts.stack);
  const accountId = io.env.CLOUDFLARE_ACCOUNT_ID ?? settings.accountId;
  if (!accountId) return fail(`no account id: set edgefleet:accountId in Pulumi.${opts.stack}.yaml or CLOUDFLARE_ACCOUNT_ID`);
  if (!io.env.CLOUDFLARE_API_TOKEN) return fail("CLOUDFLARE_API_TOKEN is not set (a token that may edit D1)");
  const loaded = loadInventory(resolve(io.root, opts.inventory ?? settings.inventory ?? "fleet"), io.root);
  if (!loaded.ok) return fail(`the inventory is invalid:\n${loaded.problems.map((p) => `  ${formatProblem(p)}`).join("\n")}`);
  let state;
  try {
    state = selectShard(loaded.inventory, deriveDesiredState(loaded.inventory, { accountId }), settings.shard);
  } catch (e) {
    if (e instanceof ShardError) return fail(e.message);
    throw e;
  }
  const declared = new Set(state.resources.filter((r) => r.type === TYPES.d1Database).map((r) => String(r.inputs.name)));
  const databases = migratedDatabases(declared, state.workers, io.workersDir);
  if (databases.length === 0) {
    if (opts.json) io.out(`${JSON.stringify({ stack: opts.stack, databases: [] }, null, 2)}\n`);
    else io.out(`No D1 database with migrations in stack ${opts.stack}: nothing to do.\n`);
    return D1_EXIT.ok;
  }

  // The ids: the stack's output (none yet before the first up), or a file.
  let ids: Record<string, unknown>;
  if (opts.ids) {
    try {
      ids = JSON.parse(readFileSync(resolve(io.root, opts.ids), "utf8")) as Record<string, unknown>;
    } catch (e) {
      return fail(`--ids ${opts.ids}: ${(e as Error).message}`);
    }
  } else {
    const r = await io.exec("pulumi", ["stack", "output", "d1DatabaseIds", "--json", "--stack", opts.stack, "--non-interactive"], io.env);
    if (r.status === 0) {
      try {
        ids = (JSON.parse(r.stdout) ?? {}) as Record<string, unknown>;
      } catch {
        return fail(`pulumi stack output d1DatabaseIds printed no JSON: ${r.stdout.slice(0, 200)}`);
      }
    } else if (/does not have output property/i.test(r.stderr)) {
      // No update has exported it yet: the first deploy. Only Pulumi's own message for
      // that ("current stack does not have output property '<name>'": pulumi stack_output.go)
      // counts; any other failure (a backend's "404 Not found", no such stack) is one, or
      // --skip-missing would skip the migrations of a fleet that has its database.
      ids = {};
    } else {
      return fail(`pulumi stack output d1DatabaseIds failed (exit ${r.status}): ${r.stderr.trim().split("\n")[0] ?? ""}`);
    }
  }

  // wrangler's own CLI (package.json "bin"; its "exports" do not list bin/): the resolved
  // package entry is wrangler-dist/cli.js, beside bin/.
  const wrangler = join(dirname(createRequire(import.meta.url).resolve("wrangler")), "..", "bin", "wrangler.js");
  const outcomes: Outcome[] = [];
  for (const db of databases) {
    const id = ids[db.database];
    if (id === undefined) {
      outcomes.push({ database: db.database, status: opts.skipMissing ? "not-created" : "failed", detail: `stack ${opts.stack} has no id for it yet (pulumi up creates it)` });
      continue;
    }
    if (typeof id !== "string" || !ID.test(id)) {
      outcomes.push({ database: db.database, status: "failed", detail: `the stack's id for it is not a D1 id: ${JSON.stringify(id).slice(0, 60)}` });
      continue;
    }
    // A copy of wrangler.jsonc with the real id, beside it (relative paths resolve the same).
    const copy = join(resolve(db.config, ".."), `.wrangler-d1-${db.database}.jsonc`);
    writeFileSync(copy, withDatabaseId(readFileSync(db.config, "utf8"), db.database, id));
    try {
      const verb = opts.dryRun ? "list" : "apply";
      const r = await io.exec(process.execPath, [wrangler, "d1", "migrations", verb, db.database, "--remote", "--config", copy], {
        ...io.env,
        ...NO_TELEMETRY,
        CLOUDFLARE_ACCOUNT_ID: accountId,
        CI: "true", // no confirmation prompt (wrangler skips it in CI)
      });
      if (!opts.json) io.out(r.stdout);
      if (r.status === 0) outcomes.push({ database: db.database, status: opts.dryRun ? "listed" : "applied", detail: relative(io.root, db.migrationsDir) });
      else outcomes.push({ database: db.database, status: "failed", detail: `wrangler exited ${r.status}: ${wranglerError(r.stderr) ?? (lastLine(r.stderr) || lastLine(r.stdout))}` });
    } finally {
      rmSync(copy, { force: true });
    }
  }

  if (opts.json) io.out(`${JSON.stringify({ stack: opts.stack, databases: outcomes }, null, 2)}\n`);
  for (const o of outcomes) {
    const line = `${o.database}: ${o.status}${o.detail ? ` (${o.detail})` : ""}`;
    if (o.status === "failed") io.err(`d1-migrations: ${line}\n`);
    else if (!opts.json) io.out(`${line}\n`);
  }
  return outcomes.some((o) => o.status === "failed") ? D1_EXIT.failed : D1_EXIT.ok;
}

/**
 * What wrangler's `[ERROR]` block says, on one line: the failed request and D1's own
 * message ("no such table: nosuch: SQLITE_ERROR [code: 7500]"). Its last line is only
 * where its log file went, on a CI runner that is gone by the time anyone reads it.
 * Colours stripped, control characters escaped; undefined when there is no such block.
 */
export function wranglerError(stderr: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const lines = stderr.replace(/\u001b\[[0-9;]*m/g, "").split("\n");
  const at = lines.findIndex((l) => l.includes("[ERROR]"));
  if (at < 0) return undefined;
  const parts = [lines[at]!.replace(/^.*\[ERROR\]\s*/, "").trim()];
  for (const l of lines.slice(at + 1)) {
    const t = l.trim();
    if (/^(If you think this is a bug|🪵|▲ \[WARNING\]|✘ \[ERROR\])/u.test(t)) break;
    if (t !== "") parts.push(t);
  }
  return escapeControls(parts.join(" ").slice(0, 1000));
}

function lastLine(s: string): string {
  return s.trim().split("\n").filter(Boolean).pop() ?? "";
}
