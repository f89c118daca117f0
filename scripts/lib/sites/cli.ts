// `npm run sites`: build the router's content map from fleet/sites and publish it to
// the router's KV namespace. The entry point is scripts/sites.ts; this module holds
// the command line so tests can run it with a fake API and captured output.
import { cloudflareClient } from "../../../stacks/model/cloudflare-client.ts";
import { writeFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import Cloudflare from "cloudflare";
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import { Command, CommanderError } from "commander";
import { InventoryError, loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { routerHosts } from "../../../stacks/model/router-shards.ts";
import { apiBaseUrl, UsageError } from "../cli.ts";
import { EXIT } from "../exit-codes.ts";
import { readStackSettings } from "../stack-config.ts";
import { buildSites, formatBuildProblem, SitesBuildError, type SitesBuild } from "./build.ts";
import { acquireLock, checkLock, confirmLock, DEFAULT_LEASE_MS, describeHolder, LockedError, releaseLock, type Lease, type LockOptions } from "./lock.ts";
import {
  applyPlan,
  DEFAULT_GRACE_MS,
  DEFAULT_PROPAGATION_MS,
  describe,
  groupHostChanges,
  hostChanges,
  planFromRemote,
  PublishError,
  rateLimitedFetch,
  type HostChanges,
  type KvTarget,
  type PublishPlan,
} from "./publish.ts";

/** Exit codes of `sites`, beyond the shared ones (0 ok, 1 invalid, 2 usage, 3 refused). */
export const SITES_EXIT = { ...EXIT, api: 4, locked: 5 } as const;

/**
 * Publishing is refused without --force when it would remove, empty or rewrite more than
 * this share of the published site hosts, or of the published MTA-STS policy hosts (each
 * group judged on its own, publish.ts groupHostChanges; the plan's fleet guard is 20% of
 * zones too).
 */
export const MAX_HOSTS_CHANGED_SHARE = 0.2;

export interface SitesIo {
  out: (s: string) => void;
  err: (s: string) => void;
  root: string;
  env: Record<string, string | undefined>;
  /** Show a progress bar (a TTY on stderr). */
  progress?: boolean;
  /** Waits (the propagation bound, the lease); tests pass a recording one. */
  sleep?: (ms: number) => Promise<void>;
}

class Exit extends Error {
  readonly code: number;
  constructor(code: number, message = "") {
    super(message);
    this.code = code;
  }
}

interface Common {
  stack: string;
  inventory?: string;
  sites?: string;
  json?: boolean;
}

function doBuild(opts: Common, io: SitesIo): { build: SitesBuild; sitesDir: string } {
  const settings = readStackSettings(io.root, opts.stack);
  const abs = (p: string) => (isAbsolute(p) ? p : join(io.root, p));
  const inventoryDir = abs(opts.inventory ?? settings.inventory ?? "fleet");
  const sitesDir = abs(opts.sites ?? join(opts.inventory ?? settings.inventory ?? "fleet", "sites"));
  try {
    const inventory = loadInventoryOrThrow(inventoryDir);
    return { build: buildSites(sitesDir, { allowedHosts: routerHosts(inventory), inventory, base: io.root }), sitesDir };
  } catch (e) {
    if (e instanceof SitesBuildError) throw new Exit(EXIT.invalid, `${e.problems.map(formatBuildProblem).join("\n")}\nsites: ${e.problems.length} problem(s); nothing was built or published\n`);
    if (e instanceof InventoryError) throw new Exit(EXIT.invalid, `${e.message}\n`);
    throw e;
  }
}

function summaryTable(build: SitesBuild): string {
  const t = new Table({ head: ["host", "files", "bytes", "redirects", "404 page"], style: { head: [], border: [] } });
  for (const h of build.manifest.hosts) {
    t.push([
      h.host,
      h.canonical ? `-> ${h.canonical}` : h.files.length,
      h.files.reduce((n, f) => n + f.size, 0),
      h.redirects,
      h.notFound ? "yes" : "",
    ]);
  }
  return `${t.toString()}\n${build.manifest.hosts.length} host(s), ${build.entries.length} KV entries, build ${build.hash.slice(0, 16)}\n`;
}

function planSummary(plan: PublishPlan, changes?: HostChanges, build?: SitesBuild) {
  return {
    // What the guard judged, per group: published hosts before, and those removed, emptied or rewritten.
    ...(changes && build
      ? { guard: groupHostChanges(changes, build).map((g) => ({ group: g.group, before: g.before, touched: g.removed.length + g.emptied.length + g.rewritten.length })) }
      : {}),
    hostsEmptied: changes?.emptied ?? [],
    hostsRewritten: changes?.rewritten ?? [],
    write: plan.content.length + plan.hosts.length,
    writeContent: plan.content.map((e) => e.key),
    writeHosts: plan.hosts.map((e) => e.key),
    delete: plan.deletes,
    deleteLater: plan.deferred,
    unchanged: plan.unchanged,
    hostsRemoved: plan.hostsRemoved,
  };
}

export async function runSites(argv: string[], io: SitesIo): Promise<number> {
  const program = new Command("sites")
    .description("Build the router's content map from fleet/sites and publish it to its KV namespace.")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError();
  let code: number = EXIT.ok;
  const common = (c: Command) =>
    c
      .option("--stack <name>", "read Pulumi.<name>.yaml for the account id and inventory", "prod")
      .option("--inventory <dir>", "the inventory directory (default: the stack's, else fleet)")
      .option("--sites <dir>", "the sites directory (default: <inventory>/sites)")
      .option("--json", "machine-readable output on stdout");

  common(program.command("build"))
    .description("build and check every site; print the manifest summary (writes nothing remote)")
    .option("--manifest <file>", "also write the manifest (JSON) to this file")
    .action((opts: Common & { manifest?: string }) => {
      const { build } = doBuild(opts, io);
      if (opts.manifest) writeFileSync(opts.manifest, `${JSON.stringify({ hash: build.hash, ...build.manifest }, null, 2)}\n`);
      io.out(opts.json ? `${JSON.stringify({ hash: build.hash, entries: build.entries.length, manifest: build.manifest }, null, 2)}\n` : summaryTable(build));
    });

  common(program.command("publish"))
    .description("write new and changed keys, delete removed ones (re-run to resume after a failure)")
    .option("--account-id <id>", "Cloudflare account id (default: edgefleet:accountId of the stack, or CLOUDFLARE_ACCOUNT_ID)")
    .option("--namespace-id <id>", "the router's KV namespace id (or EDGEFLEET_SITES_NAMESPACE_ID)")
    .option("--dry-run", "list what would be written and deleted; change nothing")
    .option("--force", `allow removing, emptying or rewriting more than ${MAX_HOSTS_CHANGED_SHARE * 100}% of the published site hosts or MTA-STS policy hosts`)
    .option("--grace-minutes <n>", "keep content no host names any more this long before deleting it (server time)", String(DEFAULT_GRACE_MS / 60_000))
    .option("--propagation-seconds <n>", "KV's propagation bound: wait this long between content and tables (and twice this for the lease)", String(DEFAULT_PROPAGATION_MS / 1000))
    .option("--lease-minutes <n>", "how long the publish lease lives if a publish dies without releasing it", String(DEFAULT_LEASE_MS / 60_000))
    .option("--api-base-url <url>", "Cloudflare API base URL (default: CLOUDFLARE_BASE_URL, else https://api.cloudflare.com/client/v4)")
    .addHelpText(
      "after",
      "\nThe API token is read from CLOUDFLARE_API_TOKEN (Account: Workers KV Storage: Edit); it is never printed.\n" +
        "Exit codes: 0 ok, 1 invalid build, 2 usage, 3 refused by the guard (--force), 4 API failure (re-run to resume),\n" +
        "5 another publish holds the lease (retry later).\n",
    )
    .action(
      async (
        opts: Common & { accountId?: string; namespaceId?: string; dryRun?: boolean; force?: boolean; apiBaseUrl?: string; graceMinutes: string; propagationSeconds: string; leaseMinutes: string },
      ) => {
        const number = (name: string, raw: string, min: number) => {
          const n = Number(raw);
          if (raw.trim() === "" || !Number.isFinite(n) || n < min) throw new Exit(EXIT.usage, `sites publish: ${name} must be a number >= ${min}, got '${raw}'\n`);
          return n;
        };
        const graceMs = number("--grace-minutes", opts.graceMinutes, 0) * 60_000;
        const propagationMs = number("--propagation-seconds", opts.propagationSeconds, 0) * 1000;
        const leaseMs = number("--lease-minutes", opts.leaseMinutes, 1) * 60_000;
        if (propagationMs < 60_000) {
          io.err(`sites publish: warning: --propagation-seconds ${propagationMs / 1000} is below KV's documented 60 s; the lease and "content visible before any table names it" no longer hold\n`);
        }
        const settings = readStackSettings(io.root, opts.stack);
        const accountId = opts.accountId ?? io.env.CLOUDFLARE_ACCOUNT_ID ?? settings.accountId;
        const namespaceId = opts.namespaceId ?? io.env.EDGEFLEET_SITES_NAMESPACE_ID;
        const token = io.env.CLOUDFLARE_API_TOKEN;
        const missing = [
          !accountId && "--account-id (or CLOUDFLARE_ACCOUNT_ID)",
          !namespaceId && "--namespace-id (or EDGEFLEET_SITES_NAMESPACE_ID; the Router stack output sitesNamespaceId)",
          !token && "CLOUDFLARE_API_TOKEN in the environment",
        ].filter(Boolean);
        if (missing.length > 0) throw new Exit(EXIT.usage, `sites publish: missing ${missing.join(", ")}\n`);
        let apiBase: string | undefined;
        try {
          apiBase = apiBaseUrl(opts.apiBaseUrl, io.env.CLOUDFLARE_BASE_URL, { flag: "--api-base-url", env: "CLOUDFLARE_BASE_URL" });
        } catch (e) {
          if (e instanceof UsageError) throw new Exit(EXIT.usage, `sites publish: ${e.message}\n`);
          throw e;
        }

        const { build } = doBuild(opts, io);
        const client = cloudflareClient({ apiToken: token!, baseURL: apiBase, maxRetries: 5, fetch: rateLimitedFetch() });
        const target: KvTarget = { client, accountId: accountId!, namespaceId: namespaceId! };
        // Durations on this machine's monotonic clock (plus the time a test's sleep stood for).
        let slept = 0;
        const sleep = async (ms: number) => {
          if (io.sleep) {
            slept += ms;
            await io.sleep(ms);
          } else await new Promise<void>((r) => setTimeout(r, ms));
        };
        const monotonic = () => performance.now() + slept;
        const lockOpts: LockOptions = { propagationMs, leaseMs, sleep, monotonic, by: describeHolder(io.env) };
        const api = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
          try {
            return await f();
          } catch (e) {
            if (e instanceof LockedError) throw new Exit(SITES_EXIT.locked, `sites publish: ${e.message}\n`);
            if (e instanceof PublishError) throw new Exit(SITES_EXIT.api, `sites publish: ${e.message}\n`);
            if (e instanceof Exit) throw e;
            throw new Exit(SITES_EXIT.api, `sites publish: ${what} failed: ${describe(e)}\n`);
          }
        };
        const planAndJudge = async () => {
          const plan = await api("listing the namespace's keys", () => planFromRemote(target, build, { graceMs }));
          const changes = await api("reading the published host tables", () => hostChanges(target, plan));
          return { plan, changes };
        };

        let { plan, changes } = await planAndJudge();
        const report = (extra: Record<string, unknown>) => {
          const summary = planSummary(plan, changes, build);
          if (opts.json) {
            io.out(`${JSON.stringify({ build: build.hash, dryRun: !!opts.dryRun, ...summary, ...extra }, null, 2)}\n`);
            return;
          }
          const lines = [
            ...summary.writeContent.map((k) => `  write  ${k}`),
            ...summary.writeHosts.map((k) => `  write  ${k}${changes.rewritten.includes(k.slice(5)) ? " (rewritten)" : changes.emptied.includes(k.slice(5)) ? " (emptied)" : ""}`),
            ...summary.delete.map((k) => `  delete ${k}`),
            ...summary.deleteLater.map((k) => `  keep   ${k} (unreferenced; deleted after the grace period)`),
          ];
          io.out(`${lines.join("\n")}${lines.length ? "\n" : ""}${summary.write} to write, ${summary.delete.length} to delete, ${summary.deleteLater.length} to delete later, ${summary.unchanged} unchanged\n`);
        };
        // Judged per group (publish.ts groupHostChanges): the operator's sites, and the
        // MTA-STS policy hosts the inventory generates.
        const refusal = () => {
          if (opts.force) return undefined;
          const reasons = groupHostChanges(changes, build).flatMap((g) => {
            const touched = [...g.removed, ...g.emptied, ...g.rewritten];
            const share = g.before > 0 ? touched.length / g.before : 0;
            if (share <= MAX_HOSTS_CHANGED_SHARE) return [];
            const parts = [
              g.removed.length && `remove ${g.removed.length}`,
              g.emptied.length && `empty ${g.emptied.length}`,
              g.rewritten.length && `rewrite ${g.rewritten.length}`,
            ].filter(Boolean);
            const list = `${touched.slice(0, 5).join(", ")}${touched.length > 5 ? ", ..." : ""}`;
            return [
              g.group === "sites"
                ? `sites publish: refused: it would ${parts.join(", ")} of ${g.before} published site hosts (${list}); is --sites the right directory? Re-run with --force if that is intended\n`
                : `sites publish: refused: it would ${parts.join(", ")} of ${g.before} published MTA-STS policy hosts (${list}); they come from the inventory: is it the right one (--inventory, --stack)? Re-run with --force if that is intended\n`,
            ];
          });
          return reasons.length > 0 ? reasons.join("") : undefined;
        };
        const refused = refusal();
        if (refused) {
          report({ refused: true });
          io.err(refused);
          code = EXIT.refused;
          return;
        }
        if (opts.dryRun) {
          report(plan.lock && plan.lock !== "damaged" && plan.lock.expiresAt > plan.serverNow ? { lockedBy: plan.lock.by } : {});
          return;
        }
        const nothing = plan.content.length + plan.hosts.length + plan.deletes.length === 0 && !plan.orphans;
        if (nothing) {
          if (opts.json) report({ result: { written: 0, deleted: 0, requests: 0 } });
          else io.out(`published build ${build.hash.slice(0, 16)}: 0 written, 0 deleted, ${plan.unchanged} unchanged, ${plan.deferred.length} kept for the grace period (0 request(s))\n`);
          return;
        }

        // The lease, then content (harmless: content-addressed, only adds keys) while the
        // lease settles, then a fresh plan: the namespace may have changed before we held it.
        const unchangedAtStart = plan.unchanged;
        const lease: Lease = await api("taking the publish lease", () => acquireLock(target, lockOpts));
        const bar = io.progress && !opts.json ? new SingleBar({ stream: process.stderr, format: "publishing [{bar}] {value}/{total} {phase}" }) : undefined;
        let released = false;
        const release = async () => {
          if (released) return;
          released = true;
          await releaseLock(target, lease).catch(() => false);
        };
        try {
          const early = await api("writing content", () => applyPlan(target, plan, { only: "content" }));
          const contentDoneAt = monotonic();
          await api("confirming the publish lease", () => confirmLock(target, lease, lockOpts));
          // A long content upload can outlast the lease's 2B: the content's B counts from its end.
          const more = early.written > 0 ? contentDoneAt + propagationMs - monotonic() : 0;
          if (more > 0) await sleep(more);
          ({ plan, changes } = await planAndJudge());
          const refusedNow = refusal();
          if (refusedNow) {
            report({ refused: true });
            io.err(refusedNow);
            code = EXIT.refused;
            return;
          }
          const total = plan.content.length + plan.hosts.length + plan.deletes.length;
          bar?.start(Math.max(total, 1), 0, { phase: "" });
          const result = await api("publishing", () =>
            applyPlan(target, plan, {
              onProgress: (p) => bar?.update(p.done, { phase: p.phase }),
              propagationMs,
              sleep,
              beforeLiveChange: () => checkLock(target, lease),
            }),
          );
          bar?.stop();
          result.written += early.written;
          result.requests += early.requests;
          await release();
          if (opts.json) report({ result });
          else io.out(`published build ${build.hash.slice(0, 16)}: ${result.written} written, ${result.deleted} deleted, ${unchangedAtStart} unchanged, ${plan.deferred.length} kept for the grace period (${result.requests} request(s))\n`);
        } finally {
          bar?.stop();
          await release();
        }
      },
    );

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof Exit) {
      if (e.message) io.err(e.message);
      return e.code;
    }
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    throw e;
  }
  return code;
}
