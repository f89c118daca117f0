// `npm run import`: reads zones and DNS records from a Cloudflare account (official
// SDK, paginated, rate-limited) and writes an inventory that adopts them plus a
// Pulumi import file; `--drift` instead compares the account with the current
// inventory's desired state. Entry point: scripts/import.ts.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import { APIError } from "cloudflare";
import { Command } from "commander";
import pc from "picocolors";
import { deriveDesiredState } from "../../../stacks/model/desired.ts";
import { formatProblem, loadInventory } from "../../../stacks/model/load.ts";
import { METERING_FILE } from "../../../stacks/model/metering.ts";
import { EXIT } from "../exit-codes.ts";
import { readStackSettings } from "../stack-config.ts";
import { client, readAccount, type AccountZone } from "./account.ts";
import { adopt, importFilesByShard, zonesYaml } from "./adopt.ts";
import { driftReport } from "./drift.ts";
import { CLOUDFLARE_LIMIT, DEFAULT_IMPORT_BUDGET, SlidingWindowLimiter } from "./rate-limit.ts";
import { apiBaseUrl, intAtLeast, newCommand, parseArgs, UsageError } from "../cli.ts";

export const IMPORT_EXIT = {
  ...EXIT,
  /** --drift: the account differs from the inventory. */
  drift: 4,
  /** The Cloudflare API refused or failed (auth, permissions, repeated 429/5xx). */
  api: 6,
} as const;

export interface ImportIO {
  out: (s: string) => void;
  err: (s: string) => void;
  root: string;
  env: Record<string, string | undefined>;
  color?: boolean;
  progress?: boolean;
}

interface ImportOptions {
  inventory?: string;
  stack: string;
  account?: string;
  tokenEnv: string;
  apiUrl?: string;
  out: string;
  zone: string[];
  drift?: boolean;
  json?: boolean;
  force?: boolean;
  maxRequests: number;
  rateWindowMs: number;
  concurrency: number;
}

function command(io: ImportIO): Command {
  const cmd = newCommand("import", io)
    .description(
      "Adopt a Cloudflare account's zones: write an inventory whose plan equals the account's records,\n" +
        "and a file for `pulumi import --file`; or, with --drift, compare the account with the inventory.\n" +
        "Reads only (GET requests). Exit codes: 0 ok, 1 invalid inventory (read or written), 2 bad usage,\n" +
        "4 drift (--drift), 6 Cloudflare API error.",
    )
    .option("--inventory <dir>", "inventory giving fleet.yaml and profiles.yaml (and, for --drift, the zones) (default: the stack's, else fleet)")
    .option("--stack <name>", "Pulumi stack whose Pulumi.<name>.yaml gives the account and inventory", "prod")
    .option("--account <id>", "Cloudflare account id (default: the stack's edgefleet:accountId)")
    .option("--token-env <name>", "environment variable holding the API token (Zone:Read, DNS:Read)", "CLOUDFLARE_API_TOKEN")
    .option("--api-url <url>", "API base URL (default Cloudflare's; a fake's for tests)")
    .option("--out <dir>", "directory for the generated inventory and import file", "imported")
    .option("--zone <name>", "only this zone (repeatable)", (v: string, p: string[]) => [...p, v], [] as string[])
    .option("--drift", "compare the account with the inventory's desired state instead of importing")
    .option("--json", "print the result as JSON on stdout")
    .option("--force", "overwrite an existing zones.yaml in --out")
    .option("--max-requests <n>", "API requests per 5 minutes (Cloudflare allows 1,200 per user, shared by all its tokens and the dashboard)", intAtLeast("--max-requests", 1), DEFAULT_IMPORT_BUDGET)
    .option("--concurrency <n>", "zones read at once", intAtLeast("--concurrency", 1), 4);
  // The window is Cloudflare's; tests shorten it to see the limiter work in seconds.
  cmd.addOption(cmd.createOption("--rate-window-ms <ms>").argParser(intAtLeast("--rate-window-ms", 1)).default(CLOUDFLARE_LIMIT.windowMs).hideHelp());
  return cmd;
}

export async function runImport(argv: string[], io: ImportIO): Promise<number> {
  const cmd = command(io);
  const stop = parseArgs(cmd, argv, EXIT);
  if (stop !== undefined) return stop;
  const opts = cmd.opts<ImportOptions>();
  const c = io.color ? pc : pc.createColors(false);
  const token = io.env[opts.tokenEnv];
  if (!token) {
    io.err(`import: set ${opts.tokenEnv} to a Cloudflare API token with Zone:Read and DNS:Read (or pass --token-env NAME)\n`);
    return EXIT.usage;
  }
  let apiUrl: string | undefined;
  try {
    apiUrl = apiBaseUrl(opts.apiUrl, undefined, { flag: "--api-url" });
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`import: ${e.message}\n`);
    return EXIT.usage;
  }
  const settings = readStackSettings(io.root, opts.stack);
  const accountId = opts.account ?? settings.accountId;
  if (accountId !== undefined && !/^[0-9a-f]{32}$/.test(accountId)) {
    io.err(`import: --account '${accountId}' is not a Cloudflare account id (32 hex digits)\n`);
    return EXIT.usage;
  }
  const dir = opts.inventory ?? settings.inventory ?? "fleet";
  const invDir = resolve(io.root, dir);
  const loaded = loadInventory(invDir, io.root);
  if (!loaded.ok) {
    io.err(`import: the inventory ${dir} has ${loaded.problems.length} problem(s):\n${loaded.problems.map((p) => `  ${formatProblem(p)}`).join("\n")}\n`);
    return EXIT.invalid;
  }
  const inventory = loaded.inventory;
  const outDir = resolve(io.root, opts.out);
  if (!opts.drift && outDir === resolve(io.root, invDir)) {
    io.err(`import: --out ${opts.out} is the inventory being read; write the import elsewhere, review it, then merge\n`);
    return EXIT.usage;
  }
  if (!opts.drift && existsSync(join(outDir, "zones.yaml")) && !opts.force) {
    io.err(`import: ${opts.out}/zones.yaml exists; pass --force to overwrite it or choose another --out\n`);
    return EXIT.usage;
  }

  const cf = client({ apiToken: token, baseURL: apiUrl, limiter: new SlidingWindowLimiter(opts.maxRequests, opts.rateWindowMs) });
  const bar = io.progress && !opts.json ? new SingleBar({ format: "read [{bar}] {value}/{total} zones | {zone}", stream: process.stderr, hideCursor: true }) : undefined;
  let account: AccountZone[];
  try {
    account = await readAccount(cf, {
      accountId,
      zones: opts.zone.length > 0 ? opts.zone : undefined,
      concurrency: opts.concurrency,
      onZone: (zone, done, total) => {
        if (done === 1) bar?.start(total, 0, { zone });
        bar?.update(done, { zone });
      },
    });
  } catch (e) {
    bar?.stop();
    if (e instanceof APIError) {
      // The SDK's message carries the status and the envelope's errors, never the token.
      io.err(`import: the Cloudflare API failed: ${e.message}\n`);
      return IMPORT_EXIT.api;
    }
    if (e instanceof Error && /fetch failed|ECONNREFUSED|ENOTFOUND|Connection error/i.test(e.message)) {
      io.err(`import: cannot reach the Cloudflare API${opts.apiUrl ? ` at ${opts.apiUrl}` : ""}: ${e.message}\n`);
      return IMPORT_EXIT.api;
    }
    throw e;
  }
  bar?.stop();
  const missingZones = opts.zone.filter((z) => !account.some((a) => a.name === z));
  if (missingZones.length > 0) {
    io.err(`import: no zone ${missingZones.map((z) => `'${z}'`).join(", ")} in the account\n`);
    return EXIT.usage;
  }

  if (opts.drift) {
    const state = deriveDesiredState(inventory, { accountId: accountId ?? "<account-id>", workers: false });
    const scoped = opts.zone.length > 0 ? { ...state, zones: state.zones.filter((z) => opts.zone.includes(z.name)) } : state;
    const report = driftReport(scoped, account);
    const drifted = report.filter((z) => z.status === "drift" || z.status === "not in account");
    if (opts.json) io.out(`${JSON.stringify({ inventory: dir, accountId, zones: report }, null, 2)}\n`);
    else {
      const t = new Table({ head: ["zone", "status", "missing", "changed", "extra"], style: { head: [], border: [] } });
      for (const z of report.filter((x) => x.status !== "in sync")) t.push([z.zone, z.status, String(z.missing), String(z.changed), String(z.extra)]);
      io.out(`${c.bold("edgefleet import --drift")}  inventory ${dir}  ${account.length} zone(s) in the account\n`);
      io.out(`${report.filter((z) => z.status === "in sync").length} zone(s) in sync, ${drifted.length} with drift\n`);
      if (t.length > 0) io.out(`${t.toString()}\n`);
      for (const z of drifted) {
        for (const r of z.records.slice(0, 50)) {
          const sign = r.kind === "missing" ? c.red("-") : r.kind === "extra" ? c.yellow("+") : c.yellow("~");
          const text = r.kind === "changed" ? `${r.have} -> declared ${r.want}` : r.kind === "missing" ? `declared, not in the account: ${r.want}` : `in the account, not declared: ${r.have}`;
          io.out(`  ${sign} ${z.zone} ${r.type} ${r.name}: ${text}\n`);
        }
      }
    }
    return drifted.length > 0 ? IMPORT_EXIT.drift : EXIT.ok;
  }

  const adoption = adopt(inventory, account, { accountId: accountId ?? "<account-id>" });
  // Everything is written to a staging directory beside --out and validated there; only a
  // valid import replaces files in --out, so a failed one leaves --out as it was.
  mkdirSync(dirname(outDir), { recursive: true });
  const stage = mkdtempSync(join(dirname(outDir), `.${basename(outDir)}.import-`));
  const importFiles: { file: string; shard?: string; records: number }[] = [];
  try {
    copyFileSync(join(invDir, "fleet.yaml"), join(stage, "fleet.yaml"));
    copyFileSync(join(invDir, "profiles.yaml"), join(stage, "profiles.yaml"));
    // metering.yaml, when the inventory has one: fleet.yaml's Workers may need it.
    if (existsSync(join(invDir, METERING_FILE))) copyFileSync(join(invDir, METERING_FILE), join(stage, METERING_FILE));
    const header =
      "# Generated by `npm run import` from the Cloudflare account" +
      (accountId ? ` ${accountId}` : "") +
      `.\n# Each zone has the profile its records match; other records are explicit, and records\n# edgefleet must not manage are ignore rules. Review, then merge into the fleet inventory.\n`;
    writeFileSync(join(stage, "zones.yaml"), zonesYaml(adoption.zones, header));
    // One import file for the stack that declares the posture; one per stack on a sharded fleet.
    const byShard = importFilesByShard(inventory, adoption);
    const files = byShard ? [...byShard].map(([shard, f]) => ({ name: `pulumi-import.${shard}.json`, shard, f })) : [{ name: "pulumi-import.json", shard: undefined, f: adoption.importFile }];
    for (const { name, shard, f } of files) {
      writeFileSync(join(stage, name), `${JSON.stringify(f, null, 2)}\n`);
      importFiles.push({ file: `${opts.out}/${name}`, ...(shard ? { shard } : {}), records: f.resources.filter((r) => r.id).length });
    }
    // The written inventory must load like any other (fleet.yaml may refer to zones that were not adopted).
    const written = loadInventory(stage);
    if (!written.ok) {
      const shown = written.problems.map((p) => `  ${formatProblem({ ...p, file: join(opts.out, basename(p.file)) })}`).join("\n");
      io.err(`import: the generated inventory does not validate, so nothing was written to ${opts.out}; fix fleet.yaml or adopt the zones it names:\n${shown}\n`);
      return EXIT.invalid;
    }
    mkdirSync(outDir, { recursive: true });
    for (const f of readdirSync(stage)) renameSync(join(stage, f), join(outDir, f));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  const report = { accountId, inventory: opts.out, importFiles, zones: adoption.outcomes, unmanaged: adoption.unmanaged };
  writeFileSync(join(outDir, "import-report.json"), `${JSON.stringify(report, null, 2)}\n`);

  if (opts.json) io.out(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const adopted = adoption.outcomes.filter((o) => o.profile);
    const byProfile = new Map<string, number>();
    for (const o of adopted) byProfile.set(o.profile!, (byProfile.get(o.profile!) ?? 0) + 1);
    const t = new Table({ head: ["profile", "zones"], style: { head: [], border: [] } });
    for (const [p, n] of byProfile) t.push([p, String(n)]);
    io.out(`${c.bold("edgefleet import")}  ${account.length} zone(s) read; ${adopted.length} adopted, ${adoption.outcomes.length - adopted.length} not adopted\n${t.toString()}\n`);
    for (const o of adoption.outcomes.filter((x) => !x.profile)) io.out(`  ${c.yellow("not adopted")} ${o.zone}: ${o.reason}\n`);
    if (adoption.unmanaged.length > 0) {
      io.out(`Records left unmanaged (${adoption.unmanaged.length}, written as ignore rules):\n`);
      for (const u of adoption.unmanaged.slice(0, 100)) io.out(`  ${u.zone} ${u.type} ${u.name} ${u.value}: ${u.why}\n`);
    }
    io.out(`Wrote ${opts.out}/zones.yaml (+ fleet.yaml, profiles.yaml${existsSync(join(invDir, METERING_FILE)) ? `, ${METERING_FILE}` : ""}), ${importFiles.map((f) => `${f.file} (${f.records} records${f.shard ? `, shard ${f.shard}` : ""})`).join(", ")} and ${opts.out}/import-report.json\n`);
    io.out(`Next: review, \`npm run plan -- --inventory ${opts.out}\`, point the stack's edgefleet:inventory at it, then\n`);
    for (const f of importFiles) io.out(`  pulumi import --file ${f.file} --generate-code=false${f.shard ? ` --stack <the stack with edgefleet:shard ${f.shard}>` : ""}\n`);
    io.out("and `pulumi preview`: it should create nothing.\n");
  }
  return EXIT.ok;
}
