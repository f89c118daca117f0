// A FAKE fleet of Workers' operator status endpoints (workers/llm-proxy/src/status.ts) on
// 127.0.0.1, for tests and the benchmark. One server for every Worker, routed by path:
// GET /<hostname>/_edgefleet/status (the rotation's --status-via rewrites the real URL
// to that). Stateful: the fake Cloudflare API writes a secret here with a propagation
// delay, and a Worker reports the new fingerprint only once that delay has passed, the
// way a new version reaches Cloudflare's edge after a few seconds.
import { createHash } from "node:crypto";
import { json, LoopbackServer, seeded } from "../support/fake-http.ts";

export function fakeFingerprint(secret: string): string {
  return "sha256:" + createHash("sha256").update(secret).digest("hex").slice(0, 12);
}

interface Write {
  value: string;
  /** When the write happened (orders versions) and when the edge serves it. */
  at: number;
  visibleAt: number;
}

export interface FakeWorker {
  script: string;
  hostname: string;
  /** binding -> writes, oldest first. */
  secrets: Map<string, Write[]>;
  versions: number;
}

export interface FleetOptions {
  operatorToken: string;
  /** Propagation delay of a write to `script`, in ms (default 0). */
  propagationMs?: (script: string) => number;
  /** For this long after a write becomes visible, a read still returns the previous value with probability 1/2 (edges flip-flopping). */
  flapMs?: (script: string) => number;
  /**
   * Scripted flip-flops: called for the n-th read (1-based) of `script` since its last
   * write; "previous" makes that read return the value before the newest visible one.
   */
  readPattern?: (script: string, n: number) => "previous" | undefined;
  /** Probability that a status read fails with 503. */
  failRate?: number;
  seed?: number;
  now?: () => number;
}

export class FakeWorkerFleet {
  readonly workers = new Map<string, FakeWorker>();
  private readonly byHost = new Map<string, FakeWorker>();
  readonly o: FleetOptions;
  private readonly rand: () => number;
  private readonly now: () => number;
  readonly server: LoopbackServer;
  /** Status reads answered (any status). */
  reads = 0;
  /** Reads per script since its last write. */
  readonly readsSinceWrite = new Map<string, number>();

  constructor(o: FleetOptions) {
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
      const secrets: Record<string, string | null> = {};
      for (const [b] of w.secrets) {
        if (previous) {
          const visible = (w.secrets.get(b) ?? []).filter((x) => x.visibleAt <= this.now()).sort((a, b2) => a.at - b2.at);
          const v = visible.at(-2)?.value ?? null;
          secrets[b] = v === null ? null : fakeFingerprint(v);
          continue;
        }
        const v = this.read(w, b, true);
        secrets[b] = v === null ? null : fakeFingerprint(v);
      }
      json(res, 200, { worker: "edgefleet-llm-proxy", version: { id: `00000000-0000-4000-8000-${String(w.versions).padStart(12, "0")}`, tag: "", timestamp: new Date(this.now()).toISOString() }, secrets });
    });
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  get url(): string {
    return this.server.url;
  }

  add(script: string, hostname: string, secrets: Record<string, string | null>): void {
    const w: FakeWorker = { script, hostname, secrets: new Map(), versions: 1 };
    for (const [b, v] of Object.entries(secrets)) w.secrets.set(b, v === null ? [] : [{ value: v, at: 0, visibleAt: 0 }]);
    this.workers.set(script, w);
    this.byHost.set(hostname, w);
  }

  /** What Cloudflare does on a secret PUT: a new version, served after the propagation delay. */
  write(script: string, binding: string, value: string): void {
    const w = this.workers.get(script);
    if (!w) throw new Error(`no script ${script}`);
    const now = this.now();
    const list = w.secrets.get(binding) ?? [];
    list.push({ value, at: now, visibleAt: now + (this.o.propagationMs?.(script) ?? 0) });
    w.secrets.set(binding, list);
    this.readsSinceWrite.set(script, 0);
    w.versions++;
  }

  /** The value a read returns now (random within a flap window unless `exact`). */
  private read(w: FakeWorker, binding: string, random: boolean): string | null {
    const now = this.now();
    const list = w.secrets.get(binding) ?? [];
    const visible = list.filter((x) => x.visibleAt <= now).sort((a, b) => a.at - b.at);
    const cur = visible.at(-1);
    if (!cur) return null;
    const flap = this.o.flapMs?.(w.script) ?? 0;
    if (random && flap > 0 && now < cur.visibleAt + flap && visible.length > 1 && this.rand() < 0.5) return visible.at(-2)!.value;
    return cur.value;
  }

  /**
   * Could a status read of `script` return `value` now, or later without a new write?
   * True when it is the value served now, the previous one still flapping back, or the
   * newest write (still propagating). The property test's invariant reads this.
   */
  mayStillServe(script: string, binding: string, value: string): boolean {
    const w = this.workers.get(script)!;
    const now = this.now();
    const visible = (w.secrets.get(binding) ?? []).filter((x) => x.visibleAt <= now).sort((a, b) => a.at - b.at);
    const cur = visible.at(-1);
    const flap = this.o.flapMs?.(script) ?? 0;
    if (cur?.value === value) return true;
    if (cur && flap > 0 && now < cur.visibleAt + flap && visible.at(-2)?.value === value) return true;
    return this.latest(script, binding) === value;
  }

  /** The newest value written (what the Worker will serve once propagated). */
  latest(script: string, binding: string): string | null {
    const list = this.workers.get(script)?.secrets.get(binding) ?? [];
    return [...list].sort((a, b) => a.at - b.at).at(-1)?.value ?? null;
  }

  /** The value served now, ignoring flapping. */
  served(script: string, binding: string): string | null {
    return this.read(this.workers.get(script)!, binding, false);
  }
}
