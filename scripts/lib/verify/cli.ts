// `npm run verify`: checks a seeded sample (or all, or named zones) of the fleet
// against live DNS through the operator's resolvers, compares with the desired
// state, and reports a summary table, JSON or an HTML page. Exit code says whether
// drift was found. The entry point is scripts/verify.ts.
import { isIP } from "node:net";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { randomInt } from "node:crypto";
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import { Command, InvalidArgumentError } from "commander";
import pc from "picocolors";
import { deriveDesiredState } from "../../../stacks/model/desired.ts";
import { formatProblem, loadInventory } from "../../../stacks/model/load.ts";
import { EXIT } from "../exit-codes.ts";
import { readStackSettings } from "../stack-config.ts";
import { mtaStsSiteFiles } from "../../../stacks/model/mail.ts";
import { CHECKS, expectations } from "./checks.ts";
import { policyFetcher } from "./mta-sts.ts";
import { DEFAULT_MAX_IN_FLIGHT, Dns } from "./dns.ts";
import { renderHtml } from "./html.ts";
import { summarize, verifyZones } from "./run.ts";
import { sample } from "./sample.ts";
import { intAtLeast, newCommand, parseArgs } from "../cli.ts";

export const VERIFY_EXIT = {
  ...EXIT,
  /** Live DNS differs from the desired state in at least one zone. */
  drift: 4,
  /** No drift seen, but some checks could not run (timeouts, SERVFAIL, refused). */
  unverified: 5,
} as const;

export const DEFAULTS = { sample: 50, timeoutMs: 2000, tries: 2, concurrency: 32, maxQueries: DEFAULT_MAX_IN_FLIGHT } as const;

export interface VerifyIO {
  out: (s: string) => void;
  err: (s: string) => void;
  root: string;
  color?: boolean;
  /** Show a progress bar on stderr (an interactive terminal). */
  progress?: boolean;
}

interface VerifyOptions {
  inventory?: string;
  stack: string;
  sample: number;
  all?: boolean;
  zone: string[];
  seed?: number;
  resolver: string[];
  timeout: number;
  tries: number;
  concurrency: number;
  maxQueries: number;
  json?: boolean;
  html?: string;
  mtaStsOrigin?: string;
}

function resolverArg(v: string, prev: string[]): string[] {
  // HOST, HOST:PORT, [V6] or [V6]:PORT with an IP address: the forms Node's setServers() accepts.
  const m = /^(?:\[([^\]]+)\]|([^:]+)|([0-9a-f:]+))(?::(\d{1,5}))?$/i.exec(v);
  const host = m && (m[1] ?? m[2] ?? m[3]);
  const port = m?.[4] === undefined ? 53 : Number(m[4]);
  const bare = m?.[3] !== undefined; // a bare IPv6 address: no port
  const ok = host !== null && host !== undefined && isIP(host) !== 0 && (bare ? isIP(host) === 6 : true) && port >= 1 && port <= 65535 && (m?.[2] === undefined || isIP(host) === 4);
  if (!ok) throw new InvalidArgumentError(`'${v}' is not HOST:PORT with an IP address (e.g. 127.0.0.1:5353 or [::1]:53)`);
  return [...prev, v];
}

function originArg(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError(`'${v}' is not a URL (e.g. http://127.0.0.1:8787)`);
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || (u.pathname !== "/" && u.pathname !== "")) throw new InvalidArgumentError(`'${v}' must be an http: or https: origin without a path`);
  return u.origin;
}

function command(io: VerifyIO): Command {
  return newCommand("verify", io)
    .description(
      "Spot-check the live DNS posture (MX, SPF, DMARC, DKIM, report authorisations, CAA, MTA-STS, TLS-RPT) against the desired state.\n" +
        "Exit codes: 0 no drift, 1 invalid inventory, 2 bad usage, 4 drift found, 5 some checks could not run (no drift seen).",
    )
    .option("--inventory <dir>", "inventory directory (default: the stack's edgefleet:inventory, else fleet)")
    .option("--stack <name>", "Pulumi stack whose Pulumi.<name>.yaml gives the inventory", "prod")
    .option("--sample <n>", "check a seeded random sample of n zones", intAtLeast("--sample", 1), DEFAULTS.sample)
    .option("--all", "check every zone")
    .option("--zone <name>", "check this zone (repeatable)", (v: string, p: string[]) => [...p, v], [] as string[])
    .option("--seed <s>", "seed of the sample (printed on every run, to reproduce it)", intAtLeast("--seed", 0))
    .option("--resolver <host:port>", "resolver to query (repeatable; default: the system's)", resolverArg, [] as string[])
    .option("--timeout <ms>", "timeout per DNS query try", intAtLeast("--timeout", 1), DEFAULTS.timeoutMs)
    .option("--tries <n>", "tries per DNS query", intAtLeast("--tries", 1), DEFAULTS.tries)
    .option("--concurrency <n>", "zones checked at once", intAtLeast("--concurrency", 1), DEFAULTS.concurrency)
    .option("--max-queries <n>", "DNS queries in flight at once, across all zones", intAtLeast("--max-queries", 1), DEFAULTS.maxQueries)
    .option("--mta-sts-origin <url>", "fetch MTA-STS policies from this origin (Host: mta-sts.<zone>), e.g. a local router; default https://mta-sts.<zone>", originArg)
    .option("--json", "print the results as JSON on stdout")
    .option("--html <file>", "write a self-contained HTML report to <file>");
}

export async function runVerify(argv: string[], io: VerifyIO): Promise<number> {
  const cmd = command(io);
  const stop = parseArgs(cmd, argv, EXIT);
  if (stop !== undefined) return stop;
  const opts = cmd.opts<VerifyOptions>();
  const c = io.color ? pc : pc.createColors(false);
  if (opts.all && opts.zone.length > 0) {
    io.err("verify: give either --all or --zone, not both\n");
    return EXIT.usage;
  }

  const settings = readStackSettings(io.root, opts.stack);
  const dir = opts.inventory ?? settings.inventory ?? "fleet";
  const invDir = resolve(io.root, dir);
  const loaded = loadInventory(invDir, io.root);
  if (!loaded.ok) {
    if (opts.json) io.out(`${JSON.stringify({ error: "the inventory is invalid", problems: loaded.problems }, null, 2)}\n`);
    io.err(`verify: the inventory has ${loaded.problems.length} problem(s):\n${loaded.problems.map((p) => `  ${formatProblem(p)}`).join("\n")}\n`);
    return EXIT.invalid;
  }
  const state = deriveDesiredState(loaded.inventory, { accountId: settings.accountId ?? "<account-id>", workers: false });
  const policies = new Map(mtaStsSiteFiles(loaded.inventory).map((f) => [f.host, f.body]));
  const expected = expectations(state, policies);
  const names = state.zones.map((z) => z.name);

  let chosen: string[];
  let seed: number | undefined;
  if (opts.zone.length > 0) {
    const unknown = opts.zone.filter((z) => !expected.has(z));
    if (unknown.length > 0) {
      io.err(`verify: no zone ${unknown.map((z) => `'${z}'`).join(", ")} in ${dir} (${names.length} zones)\n`);
      return EXIT.usage;
    }
    chosen = [...new Set(opts.zone)];
  } else if (opts.all) {
    chosen = names;
  } else {
    seed = opts.seed ?? randomInt(0, 2 ** 31);
    chosen = sample(names, opts.sample, seed);
  }

  const dns = new Dns({ servers: opts.resolver, timeoutMs: opts.timeout, tries: opts.tries, maxInFlight: opts.maxQueries });
  const bar = io.progress && !opts.json ? new SingleBar({ format: "verify [{bar}] {value}/{total} zones | {drift} drift | {eta_formatted} left", stream: process.stderr, hideCursor: true }) : undefined;
  let drift = 0;
  bar?.start(chosen.length, 0, { drift });
  const results = await verifyZones(
    dns,
    chosen.map((z) => expected.get(z)!),
    {
      concurrency: opts.concurrency,
      timeoutMs: opts.timeout,
      fetchPolicy: policyFetcher({ timeoutMs: opts.timeout * opts.tries, origin: opts.mtaStsOrigin }),
      onZone: (r) => {
        if (r.status === "drift") drift++;
        bar?.increment(1, { drift });
      },
    },
  );
  bar?.stop();
  const summary = summarize(results, dns.queries);
  const meta = { generated: new Date().toISOString(), resolvers: dns.servers, seed, inventory: dir };

  if (opts.html) {
    const file = resolve(io.root, opts.html);
    writeFileSync(file, renderHtml(results, summary, meta));
    if (!opts.json) io.err(`verify: wrote the HTML report to ${opts.html}\n`);
  }
  if (opts.json) {
    io.out(`${JSON.stringify({ ...meta, selection: opts.zone.length > 0 ? "zones" : opts.all ? "all" : "sample", summary, zones: results }, null, 2)}\n`);
  } else {
    io.out(render(c, results, summary, meta));
  }
  if (summary.byResult.drift > 0) return VERIFY_EXIT.drift;
  if (summary.byResult.error > 0) return VERIFY_EXIT.unverified;
  return EXIT.ok;
}

type Colors = ReturnType<typeof pc.createColors>;

function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] }, chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" } });
}

function render(c: Colors, results: Awaited<ReturnType<typeof verifyZones>>, summary: ReturnType<typeof summarize>, meta: { resolvers: string[]; seed?: number; inventory: string }): string {
  const out: string[] = [];
  const how = meta.seed !== undefined ? `sample of ${summary.zones} (--seed ${meta.seed})` : `${summary.zones} zone(s)`;
  out.push(`${c.bold("edgefleet verify")}  inventory ${meta.inventory}  ${how}  resolvers ${meta.resolvers.join(", ")}\n\n`);
  const zones = table(["result", "zones"]);
  zones.push([c.green("pass"), String(summary.byResult.pass)], [c.red("drift"), String(summary.byResult.drift)], [c.yellow("cannot verify"), String(summary.byResult.error)]);
  const checks = table(["check", "drift", "cannot verify"]);
  for (const name of CHECKS) checks.push([name, String(summary.byCheck[name].drift), String(summary.byCheck[name].error)]);
  out.push(`${zones.toString()}\n${checks.toString()}\n`);
  const failed = results.filter((r) => r.status !== "pass");
  for (const r of failed.slice(0, 100)) {
    out.push(`${r.status === "drift" ? c.red("drift") : c.yellow("cannot verify")}  ${c.bold(r.zone)}\n`);
    for (const ch of r.checks) for (const p of ch.status === "drift" || ch.status === "error" ? ch.problems : []) out.push(`  ${ch.check}: ${p}\n`);
  }
  if (failed.length > 100) out.push(`  ... ${failed.length - 100} more zone(s) (use --json or --html for all)\n`);
  out.push(`${summary.queries} DNS queries\n`);
  return out.join("");
}
