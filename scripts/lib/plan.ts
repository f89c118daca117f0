// `npm run plan`: the offline plan of the fleet. Reads the same stack settings and
// inventory as `pulumi preview`, derives the same desired state, and shows it as a
// summary, one zone in detail, a diff against a git revision (with the safety
// guard), JSON, or BIND zone files. Pure apart from reading files and git.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import Table from "cli-table3";
import { Command, Option } from "commander";
import pc from "picocolors";
import { zoneFiles } from "../../stacks/model/bind.ts";
import { deriveDesiredState, type DesiredState } from "../../stacks/model/desired.ts";
import { applyGuard, diffStates, type GuardVerdict, type PlanDiff } from "../../stacks/model/diff.ts";
import { formatProblem, loadInventory, parseInventory, type LoadResult, type Problem } from "../../stacks/model/load.ts";
import { TYPES } from "../../stacks/model/names.ts";
import { rdata } from "../../stacks/model/posture.ts";
import type { Inventory } from "../../stacks/model/schema.ts";
import { findings, summarize, workerStores, type Finding, type WorkerStore } from "../../stacks/model/summary.ts";
import { fromDesired } from "../../policies/lib/from-desired.ts";
import { runPolicies } from "../../policies/run.ts";
import { EXIT } from "./exit-codes.ts";
import { GitError, sourcesAtRevision } from "./git.ts";
import { readStackSettings } from "./stack-config.ts";
import type { DesiredWorker } from "../../stacks/model/workers.ts";
import { selectShard, ShardError, shardSummary } from "../../stacks/model/shards.ts";
import { newCommand, parseArgs } from "./cli.ts";

export interface PlanIO {
  out: (s: string) => void;
  err: (s: string) => void;
  /** The repository root (where Pulumi.<stack>.yaml lives). */
  root: string;
  color?: boolean;
}

interface PlanOptions {
  inventory?: string;
  stack: string;
  json?: boolean;
  zone?: string;
  base?: string;
  zoneFiles?: string;
  force?: boolean;
  shard?: string;
}

/** Used when the stack file has no account id: zones to create show it as such. */
export const PLACEHOLDER_ACCOUNT = "<account-id>";

function command(io: PlanIO): Command {
  return newCommand("plan", io)
    .description(
      "The offline plan of the fleet: what `pulumi preview` would register, from the inventory alone.\n" +
        "Exit codes: 0 ok, 1 invalid inventory, 2 bad usage, 3 refused by the safety guard, 4 policy violations.",
    )
    .option("--inventory <dir>", "inventory directory (default: the stack's edgefleet:inventory, else fleet)")
    .option("--stack <name>", "Pulumi stack whose Pulumi.<name>.yaml gives the account and inventory", "prod")
    .option("--json", "print the plan as JSON on stdout")
    .option("--zone <name>", "show one zone in detail")
    .option("--base <git-rev>", "diff against the inventory at this git revision (records added, changed, removed)")
    .option("--zone-files <dir>", "write one BIND zone file per zone into <dir>")
    .option("--shard <name>", "plan only this DNS shard's stack (default: the stack's edgefleet:shard, else the whole fleet)")
    .addOption(new Option("--force", "accept a diff the safety guard refuses"));
}

export async function runPlan(argv: string[], io: PlanIO): Promise<number> {
  const cmd = command(io);
  const stop = parseArgs(cmd, argv, EXIT);
  if (stop !== undefined) return stop;
  const opts = cmd.opts<PlanOptions>();
  const c = io.color ? pc : pc.createColors(false);

  const settings = readStackSettings(io.root, opts.stack);
  const dir = opts.inventory ?? settings.inventory ?? "fleet";
  const accountId = settings.accountId ?? PLACEHOLDER_ACCOUNT;
  const invDir = resolve(io.root, dir);

  const current = loadInventory(invDir, io.root);
  if (!current.ok) return reportInvalid(io, opts, current.problems, "the inventory");
  const inventory = current.inventory;
  const shard = opts.shard ?? settings.shard;
  let fleetState: DesiredState;
  try {
    fleetState = deriveDesiredState(inventory, { accountId });
  } catch (e) {
    // A Worker whose code does not bundle (esbuild names the file and line).
    if (!(e instanceof Error && e.message.startsWith("cannot bundle"))) throw e;
    io.err(`plan: ${e.message}\n`);
    return EXIT.invalid;
  }
  let state: DesiredState;
  try {
    state = selectShard(inventory, fleetState, shard);
  } catch (e) {
    if (!(e instanceof ShardError)) throw e;
    io.err(`plan: ${e.message}\n`);
    return EXIT.usage;
  }
  const shards = shardSummary(inventory, fleetState);

  if (opts.zone && !state.zones.some((z) => z.name === opts.zone)) {
    io.err(`plan: no zone '${opts.zone}' in ${dir} (${state.zones.length} zones)\n`);
    return EXIT.usage;
  }

  let diff: PlanDiff | undefined;
  let verdict: GuardVerdict | undefined;
  if (opts.base) {
    let base: LoadResult;
    try {
      base = parseInventory(invDir, sourcesAtRevision(invDir, opts.base));
    } catch (e) {
      if (e instanceof GitError) {
        io.err(`plan: --base ${opts.base}: ${e.message}\n`);
        return EXIT.usage;
      }
      throw e;
    }
    if (!base.ok) return reportInvalid(io, opts, base.problems, `the inventory at ${opts.base}`);
    let before: DesiredState;
    try {
      before = selectShard(base.inventory, deriveDesiredState(base.inventory, { accountId }), shard);
    } catch (e) {
      if (!(e instanceof ShardError)) throw e;
      io.err(`plan: at ${opts.base}: ${e.message}\n`);
      return EXIT.usage;
    }
    diff = diffStates(before, state);
    verdict = applyGuard(diff, base.inventory.fleet.guard, inventory.fleet.guard);
  }

  let written: string[] = [];
  if (opts.zoneFiles) {
    const files = zoneFiles(state, inventory.fleet.defaults.ttl);
    const outDir = resolve(io.root, opts.zoneFiles);
    mkdirSync(outDir, { recursive: true });
    for (const [name, text] of files) {
      if (opts.zone && name !== `${opts.zone}.zone`) continue;
      writeFileSync(join(outDir, name), text);
      written.push(name);
    }
  }

  const summary = summarize(state);
  // The same policies `pulumi preview --policy-pack policies` runs, over the desired state.
  const violations = await runPolicies(fromDesired(state));
  const found: Finding[] = [
    ...violations.map((v): Finding => ({ level: "error", code: v.policy, message: v.resource ? `${v.resource}: ${v.message}` : v.message })),
    ...findings(inventory, state),
  ];
  const refused = verdict !== undefined && !verdict.ok && !opts.force;

  if (opts.json) {
    io.out(
      `${JSON.stringify(
        {
          inventory: dir,
          stack: opts.stack,
          accountId,
          summary,
          shard,
          shards,
          workers: state.workers.map(workerSummary),
          stores: workerStores(state),
          findings: found,
          zone: opts.zone ? zoneDetail(state, opts.zone) : undefined,
          diff: diff && { base: opts.base, totals: diff.totals, zones: diff.zones, changes: diff.changes.map(({ before: _b, after: _a, ...c }) => c) },
          guard: verdict && { ...verdict, forced: !verdict.ok && !!opts.force },
          zoneFiles: opts.zoneFiles ? { dir: opts.zoneFiles, files: written.length } : undefined,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    io.out(renderHeader(c, dir, opts.stack, accountId, settings.file));
    if (opts.zone) io.out(renderZone(c, state, inventory, opts.zone));
    else io.out(renderSummary(c, summary));
    if (shards && !opts.zone) io.out(renderShards(shards, shard));
    if (!opts.zone && state.workers.length > 0) io.out(renderWorkers(c, state));
    if (!opts.zone) io.out(renderStores(workerStores(state)));
    io.out(renderFindings(c, found));
    if (diff && verdict) io.out(renderDiff(c, diff, verdict, opts));
    if (opts.zoneFiles) io.out(`\nWrote ${written.length} zone file(s) to ${opts.zoneFiles}\n`);
  }
  if (violations.length > 0) {
    io.err(`plan: ${violations.length} policy violation(s):\n${violations.map((v) => `  - ${v.policy}: ${v.message}`).join("\n")}\n`);
  }
  if (refused) {
    io.err(
      `plan: refused by the safety guard:\n${verdict!.violations.map((v) => `  - ${v}`).join("\n")}\n` +
        "Re-run with --force if this change is intended.\n",
    );
    return EXIT.refused;
  }
  return violations.length > 0 ? EXIT.policy : EXIT.ok;
}

function reportInvalid(io: PlanIO, opts: PlanOptions, problems: Problem[], what: string): number {
  if (opts.json) io.out(`${JSON.stringify({ error: `${what} is invalid`, problems }, null, 2)}\n`);
  io.err(`plan: ${what} has ${problems.length} problem(s):\n${problems.map((p) => `  ${formatProblem(p)}`).join("\n")}\n`);
  return EXIT.invalid;
}

type Colors = ReturnType<typeof pc.createColors>;

function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] }, chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" } });
}

function renderHeader(c: Colors, dir: string, stack: string, accountId: string, file: string | undefined): string {
  const account = accountId === PLACEHOLDER_ACCOUNT ? c.yellow(`${accountId} (no ${file ?? `Pulumi.${stack}.yaml`} account)`) : accountId;
  return `${c.bold("edgefleet plan")}  inventory ${dir}  stack ${stack}  account ${account}\n\n`;
}

function renderSummary(c: Colors, s: ReturnType<typeof summarize>): string {
  const profiles = table(["profile", "zones"]);
  for (const [p, n] of Object.entries(s.zonesByProfile)) profiles.push([p, String(n)]);
  const types = table(["record type", "records"]);
  for (const [t, n] of Object.entries(s.recordsByType)) types.push([t, String(n)]);
  const totals =
    `${c.bold("Totals")}: ${s.zones} zones (${s.zonesToCreate} to create), ${s.records} DNS records, ` +
    `${s.resources} Pulumi resources; ${s.ignoreRules} rule(s) leave records alone\n`;
  return `${profiles.toString()}\n${types.toString()}\n${totals}`;
}

function renderShards(shards: Record<string, { zones: number; resources: number }>, selected: string | undefined): string {
  const t = table(["DNS shard (stack)", "zones", "resources"]);
  for (const [name, n] of Object.entries(shards)) t.push([name + (name === selected ? " (this plan)" : ""), String(n.zones), String(n.resources)]);
  return `${t.toString()}\n`;
}

/** A Worker as the plan shows it: what it serves, binds and uploads. */
function workerSummary(w: DesiredWorker) {
  const script = w.script;
  return {
    script,
    source: w.source,
    canary: w.canary,
    routes: w.deployment.routes.length,
    domains: w.deployment.domains.map((d) => d.hostname),
    zones: w.zones.length,
    secrets: w.secrets.map((s) => `${s.binding} <- edgefleet:${s.config}`),
    statusUrl: w.statusUrl,
    bundle: w.bundle,
    // Offline the plan knows the config's tags; `pulumi preview`/`up` read the live tag
    // and send only the steps after it (docs/deploys.md).
    migrations: { tags: w.migrationTags, latest: w.migrationTags[w.migrationTags.length - 1] ?? null },
  };
}

/** "v1, v2 (latest v2)" or "-". */
function migrationText(w: DesiredWorker): string {
  return w.migrationTags.length ? `${w.migrationTags.join(", ")}${w.migrationTags.length > 1 ? ` (latest ${w.migrationTags[w.migrationTags.length - 1]})` : ""}` : "-";
}

function renderWorkers(c: Colors, state: DesiredState): string {
  const t = table(["Worker (script)", "code", "serves", "secrets (Pulumi secret config)", "DO migrations", "bundle"]);
  for (const w of state.workers) {
    const s = workerSummary(w);
    const serves = [s.routes ? `${s.routes} route(s) in ${s.zones} zone(s)` : "", ...s.domains].filter(Boolean).join(", ") || "-";
    t.push([w.script + (w.canary ? c.dim(" (canary)") : ""), `workers/${w.source}`, serves, w.secrets.map((x) => `${x.binding} <- ${x.config}`).join("\n") || "-", migrationText(w), w.bundle.slice(0, 19)]);
  }
  return `${t.toString()}\n`;
}

/** The Workers' storage, queues and triggers (empty when the stack holds none). */
function renderStores(stores: WorkerStore[]): string {
  if (stores.length === 0) return "";
  const t = table(["Workers' store or trigger", "name", "bound by, settings, retention"]);
  for (const s of stores) t.push([s.kind, s.name, s.detail]);
  return `${t.toString()}\n`;
}

function renderFindings(c: Colors, found: Finding[]): string {
  if (found.length === 0) return `${c.bold("Findings")}: none\n`;
  const level = (f: Finding) => (f.level === "error" ? c.red(f.level) : f.level === "warning" ? c.yellow(f.level) : c.dim(f.level));
  return `${c.bold("Findings")}:\n${found.map((f) => `  ${level(f)}  ${f.code}: ${f.message}`).join("\n")}\n`;
}

function zoneDetail(state: DesiredState, zone: string) {
  const z = state.zones.find((x) => x.name === zone)!;
  return {
    ...z,
    resources: state.resources
      .filter((r) => r.zone === zone && r.parent)
      .map((r) => ({ type: r.type, name: r.name, inputs: r.inputs, what: r.record?.what, source: r.record?.source })),
    workers: state.workers.filter((w) => w.zones.includes(zone)).map(workerSummary),
  };
}

function renderZone(c: Colors, state: DesiredState, inventory: Inventory, zone: string): string {
  const z = state.zones.find((x) => x.name === zone)!;
  const spec = inventory.zones.find((x) => x.name === zone)!;
  const lines = [
    `${c.bold(zone)}  profile ${z.profile}  ${z.id ? `id ${z.id}` : c.yellow("no id: pulumi up creates the zone")}  tags ${z.tags.join(", ") || "-"}`,
  ];
  const t = table(["type", "name", "value", "ttl", "why", "logical name"]);
  for (const r of state.resources.filter((x) => x.zone === zone && x.record)) {
    const rec = r.record!;
    const ttl = rec.ttl === 1 ? "auto" : String(rec.ttl);
    const value = rec.type === "TXT" && (rec.content?.length ?? 0) > 60 ? `${rec.content!.slice(0, 57)}...` : rdata(rec);
    t.push([rec.type, rec.name, value + (rec.proxied ? " (proxied)" : ""), ttl, rec.what, r.name]);
  }
  lines.push(t.toString());
  const workers = state.workers.filter((w) => w.zones.includes(zone));
  if (workers.length > 0) {
    lines.push("Workers serving it (Durable Object migrations: the config's tags; preview/up send those after the live tag):");
    for (const w of workers) lines.push(`  ${w.script}  workers/${w.source}  migrations ${migrationText(w)}  bundle ${w.bundle.slice(0, 19)}`);
  }
  if (spec.ignore.length > 0) {
    lines.push("Left alone (never created, changed or deleted):");
    for (const rule of spec.ignore) lines.push(`  ${rule.type} ${rule.name}${rule.content ? ` matching '${rule.content}'` : ""}`);
  }
  return `${lines.join("\n")}\n`;
}

function renderDiff(c: Colors, diff: PlanDiff, verdict: GuardVerdict, opts: PlanOptions): string {
  const out: string[] = [`\n${c.bold(`Diff against ${opts.base}`)}: `];
  const { added, changed, removed, zonesTouched, zonesBefore } = diff.totals;
  out[0] += `${c.green(`+${added}`)} ${c.yellow(`~${changed}`)} ${c.red(`-${removed}`)} records in ${zonesTouched} of ${zonesBefore} zones\n`;
  if (diff.zones.length > 0) {
    const t = table(["zone", "status", "added", "changed", "removed", "records before"]);
    // Additions at posture-sensitive names (apex, wildcard, DMARC, DKIM, SPF) count against the guard.
    for (const z of diff.zones) {
      const added = z.sensitiveAdded > 0 ? `${z.added} (${z.sensitiveAdded} posture-sensitive)` : String(z.added);
      t.push([z.zone, z.status, added, String(z.changed), String(z.removed), String(z.recordsBefore)]);
    }
    out.push(`${t.toString()}\n`);
    const shown = diff.changes.filter((ch) => !opts.zone || ch.zone === opts.zone).slice(0, 200);
    for (const ch of shown) {
      const sign = ch.kind === "add" ? c.green("+") : ch.kind === "remove" ? c.red("-") : c.yellow("~");
      out.push(`  ${sign} ${ch.name}${ch.fields ? ` (${ch.fields.join(", ")})` : ""}\n`);
    }
    if (shown.length < diff.changes.length) out.push(`  ... ${diff.changes.length - shown.length} more (use --json for all)\n`);
  }
  // Workers, their storage, routes and custom domains (not judged by the DNS guard).
  const zoneTypes = new Set<string>([TYPES.dnsRecord, TYPES.zone, TYPES.zonePosture]);
  const workerChanges = diff.changes.filter((ch) => !zoneTypes.has(ch.type));
  if (workerChanges.length > 0 && diff.zones.length === 0) {
    out.push(`${c.bold("Workers")}: ${workerChanges.length} resource change(s)\n`);
    for (const ch of workerChanges.slice(0, 200)) {
      const sign = ch.kind === "add" ? c.green("+") : ch.kind === "remove" ? c.red("-") : c.yellow("~");
      out.push(`  ${sign} ${ch.name}${ch.fields ? ` (${ch.fields.join(", ")})` : ""}\n`);
    }
  }
  if (verdict.ok) out.push(`Safety guard: ${c.green("ok")}\n`);
  else if (opts.force) out.push(`Safety guard: ${c.yellow("forced")} past ${verdict.violations.length} violation(s)\n`);
  else out.push(`Safety guard: ${c.red("refused")} (${verdict.violations.length} violation(s), see below)\n`);
  return out.join("");
}
