// A FAKE fleet of Workers on Cloudflare's edge, answering their operator status endpoints
// (workers/llm-proxy/src/status.ts) on 127.0.0.1, for tests and the benchmark. One server
// for every Worker, routed by path: GET /<hostname>/_edgefleet/status (the rotation's
// --status-via rewrites the real URL to that).
//
// It holds what Cloudflare holds per script, the way the real platform models it
// (contract: node_modules/cloudflare 7.3 resources/workers/scripts/{versions,deployments}.d.ts,
// wrangler 4.153 wrangler-dist/cli.js fetchLatestDeployment / createDeployment; checked
// 2026-11-27):
// - VERSIONS: immutable; each has an id (UUID), a number and its own secret values. A
//   new version copies the latest version's bindings (secrets included) unless it sets
//   them. The latest version is the newest one, deployed or not.
// - DEPLOYMENTS: which versions serve traffic, `versions: [{version_id, percentage}]`
//   summing to 100; the newest deployment is the one serving. Two versions = a gradual
//   deployment.
// - THE EDGE: a new deployment reaches the edge after a propagation delay; until then a
//   status read is answered by the previous deployment. A read picks a version of the
//   serving deployment by its percentage and reports that version's id (the Worker's
//   `version_metadata` binding, VERSION) and the fingerprints of that version's secrets.
// The Cloudflare API fake (cloudflare-workers-secrets-api.ts) enforces the API's rules
// (10215 and the rest) and changes this state; tests read it to assert on the world.
import { createHash, randomUUID } from "node:crypto";
import { json, LoopbackFake, LoopbackServer, seeded } from "../support/fake-http.ts";

export function fakeFingerprint(secret: string): string {
  return "sha256:" + createHash("sha256").update(secret).digest("hex").slice(0, 12);
}

export interface FakeVersion {
  id: string;
  number: number;
  createdAt: number;
  /** binding -> secret text. */
  secrets: Map<string, string>;
  /** How it was made: "upload" (code upload), "secret" (secrets API), "versions-secret" (versions API). */
  source: string;
}

export interface FakeDeployment {
  id: string;
  createdAt: number;
  /** When the edge starts serving it. */
  visibleAt: number;
  versions: { version_id: string; percentage: number }[];
  source: string;
}

export interface FakeWorker {
  script: string;
  hostname: string;
  /** Oldest first; the last is the latest version. */
  versions: FakeVersion[];
  /** Oldest first; the last is the one serving (once visible). */
  deployments: FakeDeployment[];
}

export interface FleetOptions {
  operatorToken: string;
  /** Propagation delay of a new deployment of `script` whose main version holds `secrets`, in ms (default 0). */
  propagationMs?: (script: string, secrets: ReadonlyMap<string, string>) => number;
  /** For this long after a deployment becomes visible, a read is still answered by the previous one with probability 1/2 (edges flip-flopping). */
  flapMs?: (script: string) => number;
  /**
   * Scripted flip-flops: called for the n-th read (1-based) of `script` since its last
   * deployment; "previous" makes that read come from the deployment before the newest visible one.
   */
  readPattern?: (script: string, n: number) => "previous" | undefined;
  /** Probability that a status read fails with 503. */
  failRate?: number;
  seed?: number;
  now?: () => number;
}

export class FakeWorkerFleet extends LoopbackFake {
  readonly workers = new Map<string, FakeWorker>();
  private readonly byHost = new Map<string, FakeWorker>();
  readonly o: FleetOptions;
  private readonly rand: () => number;
  readonly now: () => number;
  readonly server: LoopbackServer;
  /** Status reads answered (any status). */
  reads = 0;
  /** Reads per script since its last deployment. */
  readonly readsSinceWrite = new Map<string, number>();

  constructor(o: FleetOptions) {
    super();
    this.o = o;
    this.rand = seeded(o.seed ?? 1);
    this.now = o.now ?? Date.now;
    this.server = new LoopbackServer((req, _body, res) => {
      this.reads++;
      const url = new URL(req.url ?? "/", "http://fake");
      const m = /^\/([^/]+)(\/_edgefleet\/status)$/.exec(url.pathname);
      const w = m ? this.byHost.get(m[1]!) : undefined;
      if (!w) return json(res, 404, { error: "not found" });
      if (req.method !== "GET") return json(res, 405, { error: "method not allowed" });
      if (req.headers.authorization !== `Bearer ${o.operatorToken}`) return json(res, 401, { error: "unauthorized" });
      if ((o.failRate ?? 0) > 0 && this.rand() < o.failRate!) return json(res, 503, { error: "overloaded" });
      const n = (this.readsSinceWrite.get(w.script) ?? 0) + 1;
      this.readsSinceWrite.set(w.script, n);
      const previous = o.readPattern?.(w.script, n) === "previous";
      const d = this.serving(w, previous ? "previous" : "random");
      const v = this.pick(w, d);
      const secrets: Record<string, string | null> = {};
      for (const [b, value] of v.secrets) secrets[b] = fakeFingerprint(value);
      // The shape of workers/llm-proxy/src/status.ts statusBody().
      json(res, 200, { worker: "edgefleet-llm-proxy", version: { id: v.id, tag: null, timestamp: new Date(v.createdAt).toISOString() }, secrets });
    });
  }

  get url(): string {
    return this.server.url;
  }

  /** A Worker with one version holding `secrets`, deployed at 100% and already visible. */
  add(script: string, hostname: string, secrets: Record<string, string>): void {
    const v: FakeVersion = { id: randomUUID(), number: 1, createdAt: 0, secrets: new Map(Object.entries(secrets)), source: "upload" };
    const w: FakeWorker = { script, hostname, versions: [v], deployments: [{ id: randomUUID(), createdAt: 0, visibleAt: 0, versions: [{ version_id: v.id, percentage: 100 }], source: "upload" }] };
    this.workers.set(script, w);
    this.byHost.set(hostname, w);
  }

  get(script: string): FakeWorker {
    const w = this.workers.get(script);
    if (!w) throw new Error(`no script ${script}`);
    return w;
  }

  /** A new version: the latest version's secrets with `set` applied (Cloudflare's inheritance). Not deployed. */
  newVersion(script: string, set: Record<string, string>, source: string): FakeVersion {
    const w = this.get(script);
    const latest = w.versions.at(-1)!;
    const v: FakeVersion = { id: randomUUID(), number: latest.number + 1, createdAt: this.now(), secrets: new Map([...latest.secrets, ...Object.entries(set)]), source };
    w.versions.push(v);
    return v;
  }

  /** A new deployment (serving after the propagation delay). No checks: the API fake makes them. */
  deploy(script: string, versions: { version_id: string; percentage: number }[], source: string): FakeDeployment {
    const w = this.get(script);
    const now = this.now();
    const main = [...versions].sort((a, b) => b.percentage - a.percentage)[0]!;
    const secrets = w.versions.find((v) => v.id === main.version_id)?.secrets ?? new Map<string, string>();
    const d: FakeDeployment = { id: randomUUID(), createdAt: now, visibleAt: now + (this.o.propagationMs?.(script, secrets) ?? 0), versions, source };
    w.deployments.push(d);
    this.readsSinceWrite.set(script, 0);
    return d;
  }

  /**
   * Test shorthand for a deploy from elsewhere (a concurrent `pulumi up` or `wrangler
   * deploy`): a new version with `binding` = `value`, deployed at 100%, no precondition.
   */
  write(script: string, binding: string, value: string): FakeVersion {
    const v = this.newVersion(script, { [binding]: value }, "upload");
    this.deploy(script, [{ version_id: v.id, percentage: 100 }], "upload");
    return v;
  }

  /** The deployment the edge serves now: the newest visible one, or (flapping / "previous") the one before it. */
  private serving(w: FakeWorker, mode: "exact" | "random" | "previous"): FakeDeployment {
    const now = this.now();
    const visible = w.deployments.filter((d) => d.visibleAt <= now);
    const cur = visible.at(-1) ?? w.deployments[0]!;
    const prev = visible.at(-2);
    if (mode === "previous") return prev ?? cur;
    const flap = this.o.flapMs?.(w.script) ?? 0;
    if (mode === "random" && prev && flap > 0 && now < cur.visibleAt + flap && this.rand() < 0.5) return prev;
    return cur;
  }

  /** A version of deployment `d`, chosen by its traffic percentage. */
  private pick(w: FakeWorker, d: FakeDeployment): FakeVersion {
    let r = this.rand() * 100;
    let id = d.versions.at(-1)!.version_id;
    for (const x of d.versions) {
      if (r < x.percentage) {
        id = x.version_id;
        break;
      }
      r -= x.percentage;
    }
    return w.versions.find((v) => v.id === id)!;
  }

  private valuesOf(w: FakeWorker, d: FakeDeployment, binding: string): (string | null)[] {
    return d.versions.map((x) => w.versions.find((v) => v.id === x.version_id)!.secrets.get(binding) ?? null);
  }

  /**
   * Could a status read (or a request) of `script` meet `value` now, or later without a
   * new deployment? True when a version of the serving deployment holds it, or of the
   * previous one while the edge still flaps back, or of the newest (still propagating)
   * deployment. The property test's invariant reads this.
   */
  mayStillServe(script: string, binding: string, value: string): boolean {
    const w = this.get(script);
    const now = this.now();
    const cur = this.serving(w, "exact");
    const visible = w.deployments.filter((d) => d.visibleAt <= now);
    const prev = visible.at(-2);
    const flap = this.o.flapMs?.(script) ?? 0;
    if (this.valuesOf(w, cur, binding).includes(value)) return true;
    if (prev && flap > 0 && now < cur.visibleAt + flap && this.valuesOf(w, prev, binding).includes(value)) return true;
    return this.valuesOf(w, w.deployments.at(-1)!, binding).includes(value);
  }

  /** The value the newest deployment's main version holds (what the Worker serves once propagated). */
  latest(script: string, binding: string): string | null {
    const w = this.get(script);
    const d = w.deployments.at(-1)!;
    const main = [...d.versions].sort((a, b) => b.percentage - a.percentage)[0]!;
    return w.versions.find((v) => v.id === main.version_id)!.secrets.get(binding) ?? null;
  }

  /** The value served now by the serving deployment's main version, ignoring flapping. */
  served(script: string, binding: string): string | null {
    const w = this.get(script);
    const d = this.serving(w, "exact");
    const main = [...d.versions].sort((a, b) => b.percentage - a.percentage)[0]!;
    return w.versions.find((v) => v.id === main.version_id)!.secrets.get(binding) ?? null;
  }
}
