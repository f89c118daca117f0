// `npm run dev:proxy`: runs the LLM proxy Worker locally in workerd (Miniflare) with the
// whole metering pipeline beside it (usage Queue, usage-ledger consumer, D1 with its
// migrations applied, the archive's R2 bucket: workers/llm-proxy/local/pipeline.ts), its
// state persisted where `npm run tenants --local` and `npm run usage` find it, a seeded
// dev tenant, and each call's metrics data point printed. Never for production traffic.
import { Command, CommanderError } from "commander";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { WORKER_DIR } from "../../../workers/llm-proxy/local/miniflare.ts";
import { startLocalPipeline } from "../../../workers/llm-proxy/local/pipeline.ts";
import { DEFAULT_PERSIST as USAGE_PERSIST } from "../usage/local.ts";
import { DEFAULT_PERSIST, openLocalStore } from "./local.ts";
import { createTenant } from "./store.ts";

export interface DevIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  root: string;
}

/** KEY=VALUE lines of workers/llm-proxy/.dev.vars (wrangler's format), if present. */
export function readDevVars(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
  }
  return out;
}

/**
 * The dev tenant's key lives in the (git-ignored) local state so each run can print
 * it again: only its hash is in KV, like any tenant's.
 */
async function devTenantKey(root: string, persist: string): Promise<string> {
  const file = resolve(root, persist, "dev-tenant-key");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const store = await openLocalStore(root, persist);
  try {
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
    .option("--upstream <url>", "upstream base URL (default: UPSTREAM_BASE_URL of wrangler.jsonc)")
    .option("--persist <dir>", "local state: tenants, rate limits, the archive (shared with `npm run tenants -- --local`)", DEFAULT_PERSIST)
    .option("--ledger-persist <dir>", "the usage ledger's D1 state (what `npm run usage` reads)", USAGE_PERSIST)
    .option("--quiet", "do not print log lines and metrics data points")
    .option("--json", "print the startup details as JSON")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  try {
    program.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.exitCode === 0 ? 0 : 2 };
    throw e;
  }
  const o = program.opts<{ port: string; host: string; upstream?: string; persist: string; ledgerPersist: string; quiet?: boolean; json?: boolean }>();
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
  const key = await devTenantKey(io.root, o.persist);
  const print = o.quiet ? () => {} : (s: string) => io.out(s + "\n");
  const { mf, url } = await startLocalPipeline({
    port,
    host: o.host,
    persistDir: resolve(io.root, o.persist),
    ledgerPersistDir: resolve(io.root, o.ledgerPersist),
    ledger: { inventoryDir: resolve(io.root, "fleet") },
    vars: o.upstream ? { UPSTREAM_BASE_URL: o.upstream } : {},
    secrets: { ANTHROPIC_API_KEY: providerKey ?? "sk-ant-dev-placeholder", OPERATOR_TOKEN: operatorToken },
    onLog: print,
    onDataPoint: (p) => print(`metric ${JSON.stringify(p)}`),
  });
  const base = url.origin;
  // How to see the usage of the calls made here: the ledger writes a batch within its
  // max_batch_timeout (wrangler.jsonc) of the calls.
  const local = o.persist === DEFAULT_PERSIST ? "" : ` --persist ${o.persist}`;
  const usage = `npm run usage${o.ledgerPersist === USAGE_PERSIST ? "" : ` -- --persist ${o.ledgerPersist}`}`;
  if (o.json) {
    io.out(JSON.stringify({ url: base, devTenantKey: key, upstream: o.upstream ?? "wrangler.jsonc UPSTREAM_BASE_URL", persist: o.persist, ledgerPersist: o.ledgerPersist, usage }) + "\n");
  } else {
    io.out(
      [
        `llm-proxy listening on ${base} (workerd via Miniflare; state in ${o.persist})`,
        `upstream: ${o.upstream ?? "UPSTREAM_BASE_URL from wrangler.jsonc"}${providerKey ? "" : "  (no ANTHROPIC_API_KEY set: a placeholder key is sent)"}`,
        ``,
        `dev tenant key: ${key}`,
        ``,
        `  curl -sN ${base}/v1/messages -H 'x-api-key: ${key}' -H 'anthropic-version: 2023-06-01' \\`,
        `    -H 'content-type: application/json' \\`,
        `    -d '{"model":"claude-sonnet-5-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}'`,
        ``,
        `  curl -s ${base}/_edgefleet/status -H 'authorization: Bearer <OPERATOR_TOKEN>'`,
        ``,
        `usage of the calls made here (the ledger writes them within seconds; state in ${o.ledgerPersist}):`,
        `  ${usage}`,
        `archive a tenant's bodies (R2, in ${o.persist}/r2): npm run tenants -- list --local${local}, then`,
        `  npm run tenants -- archive --local${local} <tenant id> on --yes`,
        `read what was archived: npm run archive -- list --tenant <tenant id>${local}`,
        `  or one call, its tenant found in the ledger: npm run archive -- get <edgefleet-request-id> --json${local}${o.ledgerPersist === USAGE_PERSIST ? "" : ` --ledger-persist ${o.ledgerPersist}`}`,
        `more tenants: npm run tenants -- create --local --name NAME   (Ctrl-C stops)`,
        ``,
      ].join("\n"),
    );
  }
  return { code: 0, stop: () => mf.dispose() };
}
