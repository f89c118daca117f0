// A FAKE of the parts of Cloudflare's Workers API a key rotation uses, on 127.0.0.1
// (tests and benchmark only), speaking the real envelope {success, errors, messages, result}:
//   PUT   /client/v4/accounts/{a}/workers/scripts/{s}/secrets   {"name","text","type":"secret_text"}
//         creates a new version (the latest version with the secret set) and deploys it
//         at 100% at once (node_modules/cloudflare 7.3 resources/workers/scripts/secrets.js:
//         "Add a secret to a Worker script by creating a new version with that secret";
//         FINDINGS.md). It fails with code 10215 "Latest version isn't currently deployed"
//         whenever the newest deployment is not the latest version alone at 100%: during a
//         gradual deployment, after `wrangler versions upload` without a deploy, and after a
//         rollback (workers-sdk #6763, #10585; wrangler 4.153 cli.js VERSION_NOT_DEPLOYED_ERR_CODE).
//   GET   /client/v4/accounts/{a}/workers/scripts/{s}/deployments
//         -> result.deployments, newest first ("The first deployment in the list is the
//         latest deployment actively serving traffic", deployments.d.ts), each
//         {id, created_on, source, strategy:"percentage", versions:[{version_id, percentage}]}
//         (wrangler's fetchLatestDeployments reads `{ deployments }` from the result).
//   POST  /client/v4/accounts/{a}/workers/scripts/{s}/deployments[?force=true]
//         {strategy:"percentage", versions:[{version_id, percentage}]}: one or two versions
//         (developers.cloudflare.com/workers/versions-and-deployments/, checked 2026-11-27),
//         percentages total 100 (deployments.d.ts); deploying an older version alone whose
//         secrets differ from the latest's needs force=true, else code 10220 (wrangler's
//         rollback, CANNOT_ROLLBACK_WITH_MODIFIED_SECERT_CODE).
//   GET   /client/v4/accounts/{a}/workers/scripts/{s}/versions -> result.items, newest first
//         (V4PagePagination; wrangler's fetchDeployableVersions reads `{ items }`).
//   PATCH /client/v4/accounts/{a}/workers/workers/{s}/versions/latest
//         (application/merge-patch+json) {env:{NAME:{type:"secret_text",text}}}: what
//         `wrangler versions secret put` sends (cli.js patchLatestWorkerVersionWithSecrets):
//         a new version copying the latest with the secret set, NOT deployed.
// `wrangler versions upload` (a multipart code upload) is modelled by uploadVersion().
// Injected failures: 5xx, dropped connections, 429 with retry-after, a PUT applied whose
// answer is lost; and the account-wide rate limit enforced the way Cloudflare does (over
// the limit: 429 and every call blocked for a while). It logs every request and the most
// requests seen in any window, for assertions. Versions, deployments and the edge live in
// the fleet (worker-status-endpoints.ts), which both fakes share.
import type { IncomingMessage, ServerResponse } from "node:http";
import { fakeFingerprint, type FakeDeployment, type FakeVersion, type FakeWorkerFleet } from "./worker-status-endpoints.ts";
import { AccountRateLimit, RATE_LIMITED } from "../support/account-rate-limit.ts";
import { json, LoopbackFake, LoopbackServer, seeded } from "../support/fake-http.ts";

export interface CloudflareFakeOptions {
  token: string;
  accountId: string;
  fleet: FakeWorkerFleet;
  /** Enforced account limit (default 1200 per 300 s) and the block that follows (default = window). */
  limit?: number;
  windowMs?: number;
  blockMs?: number;
  /** Probability that a call fails with 500 / has its connection dropped / gets a 429 (retry-after 1 s unless retryAfterS). */
  failRate?: number;
  dropRate?: number;
  /** Probability that a PUT is applied (a new version deployed) but its answer is lost (connection dropped). */
  lostAnswerRate?: number;
  throttleRate?: number;
  retryAfterS?: number;
  seed?: number;
  now?: () => number;
}

export interface CfRequest {
  method: string;
  path: string;
  script?: string;
  status: number;
  at: number;
  /** Fingerprint of the secret text written (never the text). */
  fingerprint?: string;
  /** Cloudflare error codes answered. */
  codes?: number[];
}

type CfError = { code: number; message: string };
const envelope = (result: unknown, errors: CfError[] = []) => ({ success: errors.length === 0, errors, messages: [], result });

/** Refusals of the API, with the HTTP status and error Cloudflare answers. */
export class CfRefusal extends Error {
  readonly status: number;
  readonly error: CfError;
  constructor(status: number, error: CfError) {
    super(`${error.code}: ${error.message}`);
    this.status = status;
    this.error = error;
  }
}

export const NOT_DEPLOYED_10215: CfError = { code: 10215, message: "Secret edit failed. Latest version isn't currently deployed. Please ensure that the latest version is deployed before editing secrets." };

export class FakeCloudflareSecretsApi extends LoopbackFake {
  readonly o: CloudflareFakeOptions;
  readonly server: LoopbackServer;
  readonly requests: CfRequest[] = [];
  /** Scripts whose next N secret PUTs fail with 500. */
  readonly failNext = new Map<string, number>();
  /** Scripts whose next N secret PUTs get 429 with retry-after. */
  readonly throttleNext = new Map<string, number>();
  private readonly account: AccountRateLimit;
  /** The most requests that arrived within any one window. */
  get maxInWindow(): number {
    return this.account.maxInWindow;
  }
  /** Times the account limit was exceeded (each starts a block; not injected 429s). */
  get limitHits(): number {
    return this.account.hits;
  }
  private readonly rand: () => number;
  private readonly now: () => number;

  constructor(o: CloudflareFakeOptions) {
    super();
    this.o = o;
    this.rand = seeded(o.seed ?? 7);
    this.now = o.now ?? Date.now;
    this.account = new AccountRateLimit({ ...(o.limit !== undefined ? { limit: o.limit } : {}), ...(o.windowMs !== undefined ? { windowMs: o.windowMs } : {}), ...(o.blockMs !== undefined ? { blockMs: o.blockMs } : {}) });
    this.server = new LoopbackServer((req, body, res) => this.handle(req, body, res));
  }

  /** The base URL to give the SDK (…/client/v4). */
  get url(): string {
    return `${this.server.url}/client/v4`;
  }

  /** Successful secret writes, in order. */
  get puts(): CfRequest[] {
    return this.requests.filter((r) => r.method === "PUT" && r.status === 200);
  }

  // ---- The operations, with Cloudflare's rules (used by the HTTP handler and by tests
  // ---- playing the operator: `wrangler versions upload`, `versions deploy`, `rollback`).

  /** PUT .../secrets: a new version with the secret, deployed at 100%; 10215 unless the latest version alone is deployed. */
  putSecret(script: string, name: string, text: string): FakeVersion {
    const w = this.o.fleet.get(script);
    const current = w.deployments.at(-1)!;
    const latest = w.versions.at(-1)!;
    if (current.versions.length !== 1 || current.versions[0]!.version_id !== latest.id) throw new CfRefusal(400, NOT_DEPLOYED_10215);
    const v = this.o.fleet.newVersion(script, { [name]: text }, "secret");
    this.o.fleet.deploy(script, [{ version_id: v.id, percentage: 100 }], "secret");
    return v;
  }

  /** `wrangler versions upload`: a new version of the code (inheriting the latest's secrets), not deployed. */
  uploadVersion(script: string): FakeVersion {
    return this.o.fleet.newVersion(script, {}, "upload");
  }

  /** PATCH .../workers/workers/{s}/versions/latest (`wrangler versions secret put`): the latest version with the secret set, not deployed. */
  patchLatest(script: string, name: string, text: string): FakeVersion {
    return this.o.fleet.newVersion(script, { [name]: text }, "versions-secret");
  }

  /** POST .../deployments: validates like Cloudflare, then deploys. */
  createDeployment(script: string, versions: { version_id: string; percentage: number }[], force = false): FakeDeployment {
    const w = this.o.fleet.get(script);
    if (!Array.isArray(versions) || versions.length < 1 || versions.length > 2) throw new CfRefusal(400, { code: 10021, message: "a deployment has one or two versions" });
    for (const x of versions) {
      if (!w.versions.some((v) => v.id === x.version_id)) throw new CfRefusal(404, { code: 10218, message: `version ${String(x.version_id)} not found` });
      if (!Number.isFinite(x.percentage) || x.percentage < 0 || x.percentage > 100) throw new CfRefusal(400, { code: 10021, message: "percentage must be between 0 and 100" });
    }
    if (versions.reduce((a, x) => a + x.percentage, 0) !== 100) throw new CfRefusal(400, { code: 10021, message: "percentages must total 100" });
    if (new Set(versions.map((x) => x.version_id)).size !== versions.length) throw new CfRefusal(400, { code: 10021, message: "a version appears twice" });
    const latest = w.versions.at(-1)!;
    if (!force && versions.length === 1 && versions[0]!.version_id !== latest.id) {
      const target = w.versions.find((v) => v.id === versions[0]!.version_id)!;
      const changed = [...latest.secrets.keys()].filter((k) => latest.secrets.get(k) !== target.secrets.get(k));
      if (changed.length > 0) throw new CfRefusal(400, { code: 10220, message: `Cannot rollback to a version with different secrets. The following secrets have changed: ${changed.join(", ")}` });
    }
    return this.o.fleet.deploy(script, versions.map((x) => ({ version_id: x.version_id, percentage: x.percentage })), "api");
  }

  /** A gradual deployment: a new version uploaded and deployed at `percent`, the serving one keeps the rest. */
  startGradual(script: string, percent = 10): FakeVersion {
    const w = this.o.fleet.get(script);
    const serving = [...w.deployments.at(-1)!.versions].sort((a, b) => b.percentage - a.percentage)[0]!;
    const v = this.uploadVersion(script);
    this.createDeployment(script, [{ version_id: v.id, percentage: percent }, { version_id: serving.version_id, percentage: 100 - percent }]);
    return v;
  }

  /** `wrangler versions deploy <latest>@100%`. */
  deployLatest(script: string): FakeDeployment {
    return this.createDeployment(script, [{ version_id: this.o.fleet.get(script).versions.at(-1)!.id, percentage: 100 }]);
  }

  /** `wrangler rollback`: the previous version at 100% (forced, as wrangler does after asking). */
  rollback(script: string): FakeDeployment {
    const w = this.o.fleet.get(script);
    const current = w.deployments.at(-1)!.versions.map((x) => x.version_id);
    const target = [...w.versions].reverse().find((v) => !current.includes(v.id));
    if (!target) throw new Error(`${script}: no version to roll back to`);
    return this.createDeployment(script, [{ version_id: target.id, percentage: 100 }], true);
  }

  private handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const now = this.now();
    const method = req.method ?? "";
    const url = new URL(req.url ?? "/", "http://fake");
    const path = url.pathname;
    const rec: CfRequest = { method, path, status: 0, at: now };
    this.requests.push(rec);
    const reply = (status: number, b: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      json(res, status, b, headers);
    };
    const fail = (status: number, errors: CfError[], headers: Record<string, string> = {}) => {
      rec.codes = errors.map((e) => e.code);
      reply(status, envelope(null, errors), headers);
    };

    // The account-wide limit, counted on arrival like Cloudflare's.
    const blocked = this.account.arrive(now);
    if (blocked !== undefined) return fail(429, [RATE_LIMITED], { "retry-after": String(blocked) });

    if (req.headers.authorization !== `Bearer ${this.o.token}`) return fail(403, [{ code: 10000, message: "Authentication error" }]);
    const m = /^\/client\/v4\/accounts\/([^/]+)\/workers\/(scripts|workers)\/([^/]+)\/(secrets|deployments|versions|versions\/latest)$/.exec(path);
    if (!m || m[1] !== this.o.accountId) return fail(404, [{ code: 7003, message: "Could not route to " + path + ", perhaps your object identifier is invalid?" }]);
    const [, , family, rawScript, what] = m;
    const script = decodeURIComponent(rawScript!);
    rec.script = script;
    const route = `${method} ${family}/${what}`;
    const known = ["PUT scripts/secrets", "GET scripts/deployments", "POST scripts/deployments", "GET scripts/versions", "PATCH workers/versions/latest"];
    if (!known.includes(route)) return fail(405, [{ code: 10000, message: "method not allowed" }]);
    if (!this.o.fleet.workers.has(script)) return fail(404, [{ code: 10007, message: "This Worker does not exist on your account." }]);

    const injected = (map: Map<string, number>) => {
      if (route !== "PUT scripts/secrets") return false;
      const n = map.get(script) ?? 0;
      if (n > 0) map.set(script, n - 1);
      return n > 0;
    };
    if (injected(this.throttleNext) || this.rand() < (this.o.throttleRate ?? 0)) {
      return fail(429, [{ code: 971, message: "Please wait and consider throttling your request speed" }], { "retry-after": String(this.o.retryAfterS ?? 1) });
    }
    if (this.rand() < (this.o.dropRate ?? 0)) {
      rec.status = -1;
      req.socket.destroy();
      return;
    }
    if (injected(this.failNext) || this.rand() < (this.o.failRate ?? 0)) return fail(500, [{ code: 10013, message: "An unknown error has occurred" }]);

    const parse = (): Record<string, unknown> | undefined => {
      try {
        const p = JSON.parse(body.toString("utf8")) as unknown;
        return p && typeof p === "object" && !Array.isArray(p) ? (p as Record<string, unknown>) : undefined;
      } catch {
        return undefined;
      }
    };
    const w = this.o.fleet.get(script);
    try {
      switch (route) {
        case "PUT scripts/secrets": {
          const p = parse();
          if (!p) return fail(400, [{ code: 10026, message: "could not parse request body" }]);
          if (typeof p.name !== "string" || typeof p.text !== "string" || p.type !== "secret_text") return fail(400, [{ code: 10021, message: "name, text and type secret_text are required" }]);
          rec.fingerprint = fakeFingerprint(p.text);
          this.putSecret(script, p.name, p.text);
          if (this.rand() < (this.o.lostAnswerRate ?? 0)) {
            // Applied, but the client never hears so: its outcome is unknown to the caller.
            rec.status = -2;
            req.socket.destroy();
            return;
          }
          return reply(200, envelope({ name: p.name, type: "secret_text" }));
        }
        case "GET scripts/deployments":
          return reply(200, envelope({ deployments: [...w.deployments].reverse().map((d) => ({ id: d.id, created_on: new Date(d.createdAt).toISOString(), source: d.source, strategy: "percentage", versions: d.versions, author_email: "operator@example.com", annotations: d.source === "secret" ? { "workers/triggered_by": "secret" } : {} })) }));
        case "POST scripts/deployments": {
          const p = parse();
          if (!p || p.strategy !== "percentage" || !Array.isArray(p.versions)) return fail(400, [{ code: 10021, message: "strategy percentage and versions are required" }]);
          const d = this.createDeployment(script, p.versions as { version_id: string; percentage: number }[], url.searchParams.get("force") === "true");
          return reply(200, envelope({ id: d.id, created_on: new Date(d.createdAt).toISOString(), source: d.source, strategy: "percentage", versions: d.versions }));
        }
        case "GET scripts/versions":
          return reply(200, { ...envelope({ items: [...w.versions].reverse().map((v) => ({ id: v.id, number: v.number, metadata: { created_on: new Date(v.createdAt).toISOString(), modified_on: new Date(v.createdAt).toISOString(), source: v.source === "upload" ? "wrangler" : "api" } })) }), result_info: { page: 1, per_page: 100, count: w.versions.length, total_count: w.versions.length } });
        case "PATCH workers/versions/latest": {
          if (!/^application\/merge-patch\+json/.test(req.headers["content-type"] ?? "")) return fail(415, [{ code: 10000, message: "expected application/merge-patch+json" }]);
          const p = parse();
          const env = p?.env as Record<string, { type?: unknown; text?: unknown } | null> | undefined;
          if (!env || typeof env !== "object") return fail(400, [{ code: 10021, message: "env is required" }]);
          const set: Record<string, string> = {};
          for (const [k, x] of Object.entries(env)) {
            if (!x || x.type !== "secret_text" || typeof x.text !== "string") return fail(400, [{ code: 10021, message: `env.${k}: type secret_text and text are required` }]);
            set[k] = x.text;
          }
          const v = this.o.fleet.newVersion(script, set, "versions-secret"); // = patchLatest, several at once
          return reply(200, envelope({ id: v.id, number: v.number }));
        }
      }
    } catch (e) {
      if (e instanceof CfRefusal) return fail(e.status, [e.error]);
      throw e;
    }
    return fail(405, [{ code: 10000, message: "method not allowed" }]);
  }
}
