// `npm run sites`: build the router's content map from fleet/sites and publish it to
// the router's KV namespace. The entry point is scripts/sites.ts; this module holds
// the command line so tests can run it with a fake API and captured output.
import { writeFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import Cloudflare from "cloudflare";
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import { Command, CommanderError } from "commander";
import { InventoryError, loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { routerHosts } from "../../../stacks/model/router-shards.ts";
import { EXIT } from "../exit-codes.ts";
import { readStackSettings } from "../stack-config.ts";
import { buildSites, formatBuildProblem, SitesBuildError, type SitesBuild } from "./build.ts";
import { applyPlan, DEFAULT_GRACE_MS, describe, planFromRemote, PublishError, rateLimitedFetch, type PublishPlan } from "./publish.ts";

/** Exit codes of `sites`, beyond the shared ones (0 ok, 1 invalid, 2 usage, 3 refused). */
export const SITES_EXIT = { ...EXIT, api: 4 } as const;

/** Publishing is refused without --force when it would delete more than this share of the live hosts. */
export const MAX_HOSTS_REMOVED_SHARE = 0.2;

export interface SitesIo {
  out: (s: string) => void;
  err: (s: string) => void;
  root: string;
  env: Record<string, string | undefined>;
  /** Show a progress bar (a TTY on stderr). */
  progress?: boolean;
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

function planSummary(plan: PublishPlan) {
  return {
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
    .option("--force", `allow deleting more than ${MAX_HOSTS_REMOVED_SHARE * 100}% of the published hosts`)
    .option("--grace-minutes <n>", "keep content no host names any more this long before deleting it", String(DEFAULT_GRACE_MS / 60_000))
    .option("--api-base-url <url>", "Cloudflare API base URL (or CLOUDFLARE_BASE_URL)", io.env.CLOUDFLARE_BASE_URL ?? "https://api.cloudflare.com/client/v4")
    .addHelpText("after", "\nThe API token is read from CLOUDFLARE_API_TOKEN (Account: Workers KV Storage: Edit); it is never printed.\n")
    .action(async (opts: Common & { accountId?: string; namespaceId?: string; dryRun?: boolean; force?: boolean; apiBaseUrl: string; graceMinutes: string }) => {
      const graceMinutes = Number(opts.graceMinutes);
      if (!(graceMinutes >= 0)) throw new Exit(EXIT.usage, `sites publish: --grace-minutes must be a number of minutes, got '${opts.graceMinutes}'\n`);
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

      const { build } = doBuild(opts, io);
      const client = new Cloudflare({ apiToken: token!, baseURL: opts.apiBaseUrl, maxRetries: 5, fetch: rateLimitedFetch() });
      const target = { client, accountId: accountId!, namespaceId: namespaceId! };
      let plan: PublishPlan;
      try {
        plan = await planFromRemote(target, build, { graceMs: graceMinutes * 60_000 });
      } catch (e) {
        throw new Exit(SITES_EXIT.api, `sites publish: listing the namespace's keys failed: ${describe(e)}\n`);
      }
      const summary = planSummary(plan);
      const share = plan.hostsBefore > 0 ? plan.hostsRemoved.length / plan.hostsBefore : 0;
      const refused = share > MAX_HOSTS_REMOVED_SHARE && !opts.force;
      const report = (extra: Record<string, unknown>) => {
        if (opts.json) {
          io.out(`${JSON.stringify({ build: build.hash, dryRun: !!opts.dryRun, ...summary, ...extra }, null, 2)}\n`);
          return;
        }
        const lines = [
          ...summary.writeContent.map((k) => `  write  ${k}`),
          ...summary.writeHosts.map((k) => `  write  ${k}`),
          ...summary.delete.map((k) => `  delete ${k}`),
          ...summary.deleteLater.map((k) => `  keep   ${k} (unreferenced; deleted after the grace period)`),
        ];
        io.out(`${lines.join("\n")}${lines.length ? "\n" : ""}${summary.write} to write, ${summary.delete.length} to delete, ${summary.deleteLater.length} to delete later, ${summary.unchanged} unchanged\n`);
      };
      if (refused) {
        report({ refused: true });
        io.err(`sites publish: refused: it would delete ${plan.hostsRemoved.length} of ${plan.hostsBefore} published hosts (${plan.hostsRemoved.slice(0, 5).join(", ")}${plan.hostsRemoved.length > 5 ? ", ..." : ""}); re-run with --force if that is intended\n`);
        code = EXIT.refused;
        return;
      }
      if (opts.dryRun) {
        report({});
        return;
      }
      const total = summary.write + summary.delete.length;
      const bar = io.progress && total > 0 && !opts.json ? new SingleBar({ stream: process.stderr, format: "publishing [{bar}] {value}/{total} {phase}" }) : undefined;
      bar?.start(total, 0, { phase: "" });
      try {
        const result = await applyPlan(target, plan, { onProgress: (p) => bar?.update(p.done, { phase: p.phase }) });
        bar?.stop();
        if (opts.json) report({ result });
        else io.out(`published build ${build.hash.slice(0, 16)}: ${result.written} written, ${result.deleted} deleted, ${summary.unchanged} unchanged, ${plan.deferred.length} kept for the grace period (${result.requests} request(s))\n`);
      } catch (e) {
        bar?.stop();
        if (e instanceof PublishError) throw new Exit(SITES_EXIT.api, `sites publish: ${e.message}\n`);
        throw e;
      }
    });

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
