// `npm run dev:proxy`: runs the LLM proxy Worker locally in workerd (Miniflare) with the
// whole metering pipeline beside it (usage Queue, usage-ledger consumer, D1 with its
// migrations applied, the archive's R2 bucket: workers/llm-proxy/local/pipeline.ts), its
// state persisted where `npm run tenants --local` and `npm run usage` find it, a seeded
// dev tenant, and each call's metrics data point printed. Never for production traffic.
import { Command, CommanderError } from "commander";
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { acquireLock, JournalError, type LockRelease } from "../rotate/journal.ts";
import { withWorkerdPid } from "../workerd-process.ts";
import { WORKER_DIR } from "../../../workers/llm-proxy/local/miniflare.ts";
import { startLocalPipeline } from "../../../workers/llm-proxy/local/pipeline.ts";
import { DEFAULT_PERSIST as USAGE_PERSIST } from "../usage/local.ts";
import { DEFAULT_PERSIST, openLocalStore } from "./local.ts";
import { createTenant } from "./store.ts";
import { kvKeyFor, sha256Hex } from "../../../workers/llm-proxy/src/tenant-record.ts";
import { CannedUpstream } from "../../../workers/llm-proxy/local/canned-upstream.ts";

export interface DevIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  root: string;
}

/**
 * KEY=VALUE lines of workers/llm-proxy/.dev.vars, read as wrangler reads them (dotenv's
 * rules, dotenv 16 `parse`, which wrangler bundles): `#` lines are comments, an optional
 * `export ` prefix, a value in single, double or back quotes is taken as quoted (double
 * quotes expand \n), an unquoted one ends at ` #` (an inline comment) and is trimmed.
 * Before, a quoted value kept its single quotes and an inline comment became part of
 * the key sent upstream.
 */
export function readDevVars(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    const raw = m[2]!;
    const q = /^(['"`])([\s\S]*?)\1/.exec(raw);
    if (q) out[m[1]!] = q[1] === '"' ? q[2]!.replace(/\\n/g, "\n") : q[2]!;
    else out[m[1]!] = raw.replace(/\s+#.*$/, "").trim();
  }
  return out;
}

/**
 * The dev tenant's key lives in the (git-ignored) local state so each run can print
 * it again: only its hash is in KV, like any tenant's.
 */
async function devTenantKey(root: string, persist: string): Promise<string> {
  const file = resolve(root, persist, "dev-tenant-key");
  const store = await openLocalStore(root, persist);
  try {
    // The key file is kept only while KV still has its record, enabled: a state whose kv/
    // was deleted, or a dev tenant disabled, gets a new dev tenant, not a key that 401s.
    if (existsSync(file)) {
      const kept = readFileSync(file, "utf8").trim();
      const record = await store.kv.get(kvKeyFor(await sha256Hex(kept)));
      if (record !== null && (JSON.parse(record) as { enabled?: unknown }).enabled === true) return kept;
    }
    const { key } = await createTenant(store.kv, { name: "dev", ratePerMinute: 600, burst: 60 });
    mkdirSync(resolve(root, persist), { recursive: true });
    writeFileSync(file, key + "\n", { mode: 0o600 });
    return key;
  } finally {
    await store.close();
  }
}

/** Starts the Worker; resolves with a stop function once it is listening. */
export async function runDevProxy(argv: string[], io: DevIo): Promise<{ code: number; stop?: () => Promise<void> }> {
  const program = new Command("dev-proxy")
    .description("Run the LLM proxy Worker locally (workerd via Miniflare) against an upstream")
    .option("--port <port>", "port to listen on", "8788")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--upstream <url>", "upstream base URL (default: UPSTREAM_BASE_URL of wrangler.jsonc, https://api.anthropic.com)")
    .option("--fake-upstream", "answer from a canned stand-in of Anthropic's Messages API on 127.0.0.1 (workers/llm-proxy/local/canned-upstream.ts: every call gets the same short answer, usage from its size), no key needed")
    .option("--persist <dir>", "local state: tenants, rate limits, the archive (shared with `npm run tenants -- --local`)", DEFAULT_PERSIST)
    .option("--ledger-persist <dir>", "the usage ledger's D1 state (what `npm run usage` reads)", USAGE_PERSIST)
    .option("--quiet", "do not print log lines and metrics data points")
    .option("--json", "print JSON lines: the startup details, then {\"log\": line} and {\"metric\": data point}")
    .addHelpText(
      "after",
      "\nSecrets: ANTHROPIC_API_KEY (the upstream's key) and OPERATOR_TOKEN (the status endpoint's; default\n" +
        "dev-operator-token) from the environment, else from workers/llm-proxy/.dev.vars (KEY=VALUE lines).\n" +
        "Without a key, a placeholder is sent: fine for --fake-upstream, refused by Anthropic.\n" +
        "Stopping (Ctrl-C, SIGTERM, SIGHUP) waits for the usage queue's batch window so the last calls reach the ledger.\n",
    )
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  try {
    program.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.exitCode === 0 ? 0 : 2 };
    throw e;
  }
  const o = program.opts<{ port: string; host: string; upstream?: string; fakeUpstream?: boolean; persist: string; ledgerPersist: string; quiet?: boolean; json?: boolean }>();
  if (o.fakeUpstream && o.upstream !== undefined) {
    io.err("dev-proxy: --fake-upstream and --upstream: give one\n");
    return { code: 2 };
  }
  const port = Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.err(`dev-proxy: --port: not a port number: ${o.port}\n`);
    return { code: 2 };
  }
  if (o.upstream !== undefined && !/^https?:\/\/[^/]+/.test(o.upstream)) {
    io.err(`dev-proxy: --upstream: not an http(s) URL: ${o.upstream}\n`);
    return { code: 2 };
  }
  // Secrets: the environment first, then .dev.vars; a placeholder provider key is fine
  // against a local fake upstream.
  const devVars = readDevVars(resolve(WORKER_DIR, ".dev.vars"));
  const providerKey = io.env.ANTHROPIC_API_KEY ?? devVars.ANTHROPIC_API_KEY;
  const operatorToken = io.env.OPERATOR_TOKEN ?? devVars.OPERATOR_TOKEN ?? "dev-operator-token";
  const print = o.quiet ? () => {} : o.json ? (s: string) => io.out(JSON.stringify({ log: s }) + "\n") : (s: string) => io.out(s + "\n");
  // One dev:proxy per state: two workerd processes on one Miniflare state (its SQLite
  // files: the tenants' KV, the limiter's objects, the ledger's D1) would each write it
  // as if alone. A lock per directory, taken over when its process is gone; `npm run
  // tenants -- <command> --local`, `npm run usage` and `npm run archive` still read the
  // state while this one runs. By real path (a symlink or another spelling names the same folder), in one order (two
  // runs that name the same two folders the other way round cannot each hold one).
  const release: LockRelease[] = [];
  const unlock = () => {
    for (const r of release.splice(0)) r();
  };
  const dirs = new Map<string, string>();
  for (const given of [resolve(io.root, o.persist), resolve(io.root, o.ledgerPersist)]) {
    mkdirSync(given, { recursive: true });
    const real = realpathSync(given);
    if (!dirs.has(real)) dirs.set(real, given);
  }
  for (const [real, given] of [...dirs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const file = join(real, LOCK_FILE);
    try {
      release.push(acquireLock(file, undefined, 0, `the state in ${given}`));
    } catch (e) {
      unlock();
      if (!(e instanceof JournalError)) throw e;
      const pid = / by process (\d+)/.exec(e.message)?.[1];
      io.err(
        pid
          ? `dev-proxy: another dev:proxy (or the workerd it started: process ${pid}) is using the state in ${given}: stop it, or give this one another --persist / --ledger-persist (if no such process runs, remove ${file})\n`
          : `dev-proxy: ${e.message}\n`,
      );
      return { code: 2 };
    }
  }
  let fake: CannedUpstream | undefined;
  let started: Awaited<ReturnType<typeof startLocalPipeline>>;
  let workerd: string | undefined;
  let key: string;
  try {
    key = await devTenantKey(io.root, o.persist);
    fake = o.fakeUpstream ? await new CannedUpstream().start() : undefined;
    const upstream = fake?.url ?? o.upstream;
    ({ value: started, pid: workerd } = await withWorkerdPid(() =>
      startLocalPipeline({
        port,
        host: o.host,
        persistDir: resolve(io.root, o.persist),
        ledgerPersistDir: resolve(io.root, o.ledgerPersist),
        ledger: { inventoryDir: resolve(io.root, "fleet") },
        vars: upstream ? { UPSTREAM_BASE_URL: upstream } : {},
        secrets: { ANTHROPIC_API_KEY: providerKey || "sk-ant-dev-placeholder", OPERATOR_TOKEN: operatorToken },
        onLog: print,
        onDataPoint: o.quiet ? () => {} : o.json ? (p) => io.out(JSON.stringify({ metric: p }) + "\n") : (p) => print(`metric ${JSON.stringify(p)}`),
      }),
    ));
  } catch (e) {
    unlock();
    await fake?.stop();
    if (/ADDRESS_IN_USE|address already in use/i.test(`${(e as { code?: string }).code ?? ""} ${(e as Error).message}`)) {
      io.err(`dev-proxy: ${o.host}:${port} is in use (another dev:proxy?): stop it, or pick another --port\n`);
      return { code: 2 };
    }
    throw e;
  }
  // workerd outlives a Node process killed with SIGKILL and goes on serving the state: the
  // locks name it too, so the next dev:proxy waits for it as for a live holder.
  if (workerd !== undefined) for (const r of release) r.also([Number(workerd)]);
  const { mf, url } = started;
  const base = url.origin;
  // How to see the usage of the calls made here: the ledger writes a batch within its
  // max_batch_timeout (wrangler.jsonc) of the calls.
  // Printed as ./edgefleet commands: they provision the Node the scripts need, where
  // `npm run` under a fresh machine's system Node 20 cannot run them.
  const q = shellQuote;
  const local = o.persist === DEFAULT_PERSIST ? "" : ` --persist ${q(o.persist)}`;
  const usage = `./edgefleet usage${o.ledgerPersist === USAGE_PERSIST ? "" : ` --persist ${q(o.ledgerPersist)}`}${o.persist === DEFAULT_PERSIST ? "" : ` --tenants-persist ${q(o.persist)}`}`;
  const upstreamSays = fake ? `a canned stand-in of Anthropic's Messages API at ${fake.url} (workers/llm-proxy/local/canned-upstream.ts)` : (o.upstream ?? "UPSTREAM_BASE_URL from wrangler.jsonc");
  if (o.json) {
    io.out(JSON.stringify({ url: base, devTenantKey: key, upstream: fake ? fake.url : (o.upstream ?? "wrangler.jsonc UPSTREAM_BASE_URL"), persist: o.persist, ledgerPersist: o.ledgerPersist, usage }) + "\n");
  } else {
    io.out(
      [
        `llm-proxy listening on ${base} (workerd via Miniflare; state in ${o.persist})`,
        `upstream: ${upstreamSays}${providerKey || fake ? "" : "  (no ANTHROPIC_API_KEY set: a placeholder key is sent, which Anthropic refuses; --fake-upstream needs none)"}`,
        ``,
        `dev tenant key: ${key}`,
        ``,
        `  curl -sN ${base}/v1/messages -H 'x-api-key: ${key}' -H 'anthropic-version: 2023-06-01' \\`,
        `    -H 'content-type: application/json' \\`,
        `    -d '{"model":"claude-sonnet-4-6","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}'`,
        ``,
        `  curl -s ${base}/_edgefleet/status -H 'authorization: Bearer <OPERATOR_TOKEN>'   (default: dev-operator-token)`,
        ``,
        `usage of the calls made here (the ledger writes them within seconds; state in ${o.ledgerPersist}):`,
        `  ${usage}`,
        `archive a tenant's bodies (R2, in ${o.persist}/r2): ./edgefleet tenants list --local${local}, then`,
        `  ./edgefleet tenants archive --local${local} <tenant id> on --yes`,
        `read what was archived: ./edgefleet archive list --tenant <tenant id>${local}`,
        `  or one call, its tenant found in the ledger: ./edgefleet archive get <edgefleet-request-id> --json${local}${o.ledgerPersist === USAGE_PERSIST ? "" : ` --ledger-persist ${q(o.ledgerPersist)}`}`,
        `more tenants: ./edgefleet tenants create --local${local} --name NAME   (Ctrl-C stops)`,
        ``,
      ].join("\n"),
    );
  }
  return {
    code: 0,
    stop: async () => {
      // The usage queue hands the ledger a batch at most DRAIN_MS after a call's event:
      // disposing before then lost the last calls' events (Miniflare keeps no queue
      // across runs). A write the ledger is retrying (D1 busy: 30 s and more) can still
      // be lost; nothing else is.
      io.err(`dev-proxy: stopping: waiting ${DRAIN_MS / 1000} s for the usage queue to hand the ledger the last calls\n`);
      await new Promise((r) => setTimeout(r, DRAIN_MS));
      try {
        await mf.dispose();
        await fake?.stop();
      } finally {
        unlock();
      }
    },
  };
}

/** In each state directory while a dev:proxy runs on it: `{pid, nonce}` (rotate/journal.ts acquireLock). */
export const LOCK_FILE = "dev-proxy.lock";

/** The ledger consumer's max_batch_timeout (workers/usage-ledger/wrangler.jsonc, 5 s) and a second. */
const DRAIN_MS = 6_000;

/** A path as a shell word: as it is when plain, else single-quoted. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}
