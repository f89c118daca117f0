// A whole FAKE world for a rotation (tests and benchmark only): N Workers' status
// endpoints, the Cloudflare secrets API, the Anthropic API and a fake `pulumi`, all on
// 127.0.0.1, with realistic keys, plus engine dependencies wired to them through the
// real clients (the Cloudflare and Anthropic SDKs, fetch, a spawned CLI).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { anthropicProvider } from "../../scripts/lib/rotate/anthropic.ts";
import { cloudflareSecrets } from "../../scripts/lib/rotate/cloudflare.ts";
import type { EngineDeps, RotationEvent, Timing } from "../../scripts/lib/rotate/engine.ts";
import { JournalStore } from "../../scripts/lib/rotate/journal.ts";
import { pulumiConfigPersister } from "../../scripts/lib/rotate/persist.ts";
import { RateLimiter } from "../../scripts/lib/rotate/rate-limit.ts";
import { statusReader } from "../../scripts/lib/rotate/status.ts";
import type { DesiredWorker } from "../../scripts/lib/rotate/workers.ts";
import { FakeAnthropicApi } from "../fakes/anthropic-admin-api.ts";
import { FakeCloudflareSecretsApi, type CloudflareFakeOptions } from "../fakes/cloudflare-workers-secrets-api.ts";
import { installFakePulumi } from "../fakes/pulumi-cli.ts";
import { FakeWorkerFleet, type FleetOptions } from "../fakes/worker-status-endpoints.ts";

export const SECRET = "ANTHROPIC_API_KEY";
export const ACCOUNT = "0123456789abcdef0123456789abcdef";

/** A key shaped like Anthropic's: sk-ant-api03-<86 url-safe chars>AA. */
export function fakeAnthropicKey(): string {
  return `sk-ant-api03-${randomBytes(72).toString("base64url").slice(0, 86)}AA`;
}

export interface RigOptions {
  workers: number;
  canaries?: number;
  fleet?: Partial<Omit<FleetOptions, "operatorToken">>;
  cloudflare?: Partial<Omit<CloudflareFakeOptions, "token" | "accountId" | "fleet">>;
  /** Latency of every fake API answer (ms). */
  latencyMs?: () => number;
  /** Two config keys instead of one (half the Workers each). */
  twoConfigs?: boolean;
  /**
   * Workers that never (1 hour) serve a deployment carrying the NEW key: they fail to
   * confirm; their other deployments (the roll back's) propagate like the rest.
   */
  lagging?: string[];
}

export interface DepsOptions {
  afterStep?: (n: number, step: string) => void;
  signal?: AbortSignal;
  timing?: Partial<Timing>;
  rateLimit?: { limit: number; windowMs: number };
  pulumiBin?: string;
  backoffMs?: number;
}

export class Rig {
  readonly dir: string;
  readonly journalDir: string;
  readonly fleet: FakeWorkerFleet;
  readonly cf: FakeCloudflareSecretsApi;
  readonly anthropic: FakeAnthropicApi;
  readonly pulumi: ReturnType<typeof installFakePulumi>;
  readonly workers: DesiredWorker[];
  readonly newKey = fakeAnthropicKey();
  readonly oldKey = fakeAnthropicKey();
  readonly adminKey = `sk-ant-admin01-${randomBytes(48).toString("base64url")}`;
  readonly cfToken = randomBytes(30).toString("base64url");
  readonly operatorToken = randomBytes(24).toString("hex");
  readonly events: RotationEvent[] = [];
  readonly limiters: RateLimiter[] = [];

  constructor(o: RigOptions) {
    this.dir = mkdtempSync(join(tmpdir(), "edgefleet-rotate-"));
    this.journalDir = join(this.dir, "journal");
    const base = o.fleet?.propagationMs;
    const lagging = new Set(o.lagging ?? []);
    this.fleet = new FakeWorkerFleet({
      operatorToken: this.operatorToken,
      ...o.fleet,
      propagationMs: (script, secrets) => (lagging.has(script) && secrets.get(SECRET) === this.newKey ? 3_600_000 : (base?.(script, secrets) ?? 0)),
    });
    this.cf = new FakeCloudflareSecretsApi({ token: this.cfToken, accountId: ACCOUNT, fleet: this.fleet, ...o.cloudflare });
    this.anthropic = new FakeAnthropicApi();
    if (o.latencyMs) {
      this.cf.server.latency = o.latencyMs;
      this.anthropic.server.latency = o.latencyMs;
    }
    this.anthropic.adminKeys.add(this.adminKey);
    this.anthropic.addKey(fakeAnthropicKey(), "unrelated");
    this.anthropic.addKey(this.oldKey, "prod-2026-01");
    this.anthropic.addKey(this.newKey, "prod-2026-11");
    this.anthropic.addKey(fakeAnthropicKey(), "staging");
    this.pulumi = installFakePulumi(this.dir);
    const canaries = o.canaries ?? 1;
    this.workers = Array.from({ length: o.workers }, (_, i) => {
      const script = `llm-proxy-${String(i).padStart(3, "0")}`;
      const host = `api-${i}.llm.example`;
      this.fleet.add(script, host, { [SECRET]: this.oldKey });
      return {
        script,
        source: "llm-proxy",
        canary: i < canaries,
        secrets: [{ binding: SECRET, config: o.twoConfigs && i % 2 === 1 ? "anthropicApiKeyEu" : "anthropicApiKey" }],
        hostnames: [host],
        statusUrl: `https://${host}/_edgefleet/status`,
      };
    });
  }

  async start(): Promise<this> {
    await Promise.all([this.fleet.start(), this.cf.start(), this.anthropic.start()]);
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([this.fleet.stop(), this.cf.stop(), this.anthropic.stop()]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  get keys() {
    return { newKey: this.newKey, oldKey: this.oldKey };
  }

  /** Every secret value of this world (for scans). */
  get secretValues(): string[] {
    return [this.newKey, this.oldKey, this.adminKey, this.cfToken, this.operatorToken];
  }

  store(afterStep?: (n: number, step: string) => void): JournalStore {
    return new JournalStore({ dir: this.journalDir, secrets: () => [this.newKey, this.oldKey], afterStep });
  }

  deps(o: DepsOptions = {}): EngineDeps {
    const limiter = new RateLimiter(o.rateLimit ?? { limit: 1200, windowMs: 300_000 });
    this.limiters.push(limiter);
    return {
      secrets: cloudflareSecrets({ apiToken: this.cfToken, accountId: ACCOUNT, baseURL: this.cf.url, limiter, backoffMs: o.backoffMs ?? 5 }),
      status: statusReader({ operatorToken: this.operatorToken, via: this.fleet.url }),
      provider: anthropicProvider({ adminKey: this.adminKey, baseURL: this.anthropic.url, maxRetries: 0 }),
      persister: pulumiConfigPersister({ bin: o.pulumiBin ?? this.pulumi.bin, stack: "test", cwd: this.dir }),
      store: this.store(o.afterStep),
      emit: (e) => this.events.push(e),
      signal: o.signal,
      timing: { pollIntervalMs: 5, confirmTimeoutMs: 5000, statusConcurrency: 16, settleMs: 0, ...o.timing },
    };
  }

  request(id = "rot-1", o: { keepOld?: boolean; confirmations?: number; concurrency?: number } = {}) {
    return { id, secret: SECRET, stack: "test", accountId: ACCOUNT, workers: this.workers, keepOld: o.keepOld ?? false, confirmations: o.confirmations ?? 3, concurrency: o.concurrency ?? 4 };
  }

  /** What each Worker serves now, as "new" / "old" / other. */
  served(): Record<string, "new" | "old" | string | null> {
    return Object.fromEntries(this.workers.map((w) => {
      const v = this.fleet.served(w.script, SECRET);
      return [w.script, v === this.newKey ? "new" : v === this.oldKey ? "old" : v];
    }));
  }

  /** The operator finishes whatever keeps a latest version undeployed: `wrangler versions deploy <latest>@100%` on each such Worker. */
  deployLatestEverywhere(): void {
    for (const w of this.workers) {
      const fw = this.fleet.get(w.script);
      const d = fw.deployments.at(-1)!;
      if (d.versions.length !== 1 || d.versions[0]!.version_id !== fw.versions.at(-1)!.id) this.cf.deployLatest(w.script);
    }
  }

  keyStatus(value: string): string | undefined {
    return this.anthropic.keys.find((k) => k.value === value)?.status;
  }
}
