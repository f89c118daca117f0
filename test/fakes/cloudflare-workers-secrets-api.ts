// A FAKE of Cloudflare's Workers secrets API on 127.0.0.1 (tests and benchmark only),
// speaking the real envelope {success, errors, messages, result}:
//   PUT /client/v4/accounts/{account}/workers/scripts/{script}/secrets
//       {"name","text","type":"secret_text"} -> deploys the secret to the fake fleet
// with injected failures: 5xx, dropped connections, 429 with retry-after, error 10215
// (gradual deployment in progress), and the account-wide rate limit enforced the way
// Cloudflare does (over the limit: 429 and every call blocked for a while). It keeps a
// log of every request and the most requests seen in any window, for assertions.
import type { IncomingMessage, ServerResponse } from "node:http";
import { fakeFingerprint, type FakeWorkerFleet } from "./worker-status-endpoints.ts";
import { json, LoopbackServer, seeded } from "../support/fake-http.ts";

export interface CloudflareFakeOptions {
  token: string;
  accountId: string;
  fleet: FakeWorkerFleet;
  /** Enforced account limit (default 1200 per 300 s) and the block that follows (default = window). */
  limit?: number;
  windowMs?: number;
  blockMs?: number;
  /** Probability that a PUT fails with 500 / has its connection dropped / gets a 429 (retry-after 1 s unless retryAfterS). */
  failRate?: number;
  dropRate?: number;
  /** Probability that a PUT is applied (the Worker gets the secret) but its answer is lost (connection dropped). */
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
}

const envelope = (result: unknown, errors: { code: number; message: string }[] = []) => ({ success: errors.length === 0, errors, messages: [], result });

export class FakeCloudflareSecretsApi {
  readonly o: CloudflareFakeOptions;
  readonly server: LoopbackServer;
  readonly requests: CfRequest[] = [];
  /** Scripts in the middle of a gradual deployment (PUT answers 10215). */
  readonly gradual = new Set<string>();
  /** Scripts whose next N PUTs fail with 500. */
  readonly failNext = new Map<string, number>();
  /** Scripts whose next N PUTs get 429 with retry-after. */
  readonly throttleNext = new Map<string, number>();
  private readonly arrivals: number[] = [];
  private blockedUntil = 0;
  /** The most requests that arrived within any one window. */
  maxInWindow = 0;
  /** 429s sent because the account limit was exceeded (not injected ones). */
  limitHits = 0;
  private readonly rand: () => number;
  private readonly now: () => number;

  constructor(o: CloudflareFakeOptions) {
    this.o = o;
    this.rand = seeded(o.seed ?? 7);
    this.now = o.now ?? Date.now;
    this.server = new LoopbackServer((req, body, res) => this.handle(req, body, res));
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  /** The base URL to give the SDK (…/client/v4). */
  get url(): string {
    return `${this.server.url}/client/v4`;
  }

  /** Successful secret writes, in order. */
  get puts(): CfRequest[] {
    return this.requests.filter((r) => r.method === "PUT" && r.status === 200);
  }

  private handle(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const now = this.now();
    const method = req.method ?? "";
    const path = new URL(req.url ?? "/", "http://fake").pathname;
    const rec: CfRequest = { method, path, status: 0, at: now };
    this.requests.push(rec);
    const reply = (status: number, b: unknown, headers: Record<string, string> = {}) => {
      rec.status = status;
      json(res, status, b, headers);
    };

    // The account-wide limit, counted on arrival like Cloudflare's.
    const windowMs = this.o.windowMs ?? 300_000;
    this.arrivals.push(now);
    while (this.arrivals.length > 0 && this.arrivals[0]! <= now - windowMs) this.arrivals.shift();
    this.maxInWindow = Math.max(this.maxInWindow, this.arrivals.length);
    if (now < this.blockedUntil || this.arrivals.length > (this.o.limit ?? 1200)) {
      if (now >= this.blockedUntil) {
        this.blockedUntil = now + (this.o.blockMs ?? windowMs);
        this.limitHits++;
      }
      return reply(429, envelope(null, [{ code: 10000, message: "Rate limited. Please wait and consider throttling your request speed" }]), { "retry-after": String(Math.ceil((this.blockedUntil - now) / 1000)) });
    }

    if (req.headers.authorization !== `Bearer ${this.o.token}`) return reply(403, envelope(null, [{ code: 10000, message: "Authentication error" }]));
    const m = /^\/client\/v4\/accounts\/([^/]+)\/workers\/scripts\/([^/]+)\/secrets$/.exec(path);
    if (!m || m[1] !== this.o.accountId) return reply(404, envelope(null, [{ code: 7003, message: "Could not route to " + path + ", perhaps your object identifier is invalid?" }]));
    if (method !== "PUT") return reply(405, envelope(null, [{ code: 10000, message: "method not allowed" }]));
    const script = decodeURIComponent(m[2]!);
    rec.script = script;
    if (!this.o.fleet.workers.has(script)) return reply(404, envelope(null, [{ code: 10007, message: "This Worker does not exist on your account." }]));

    const injected = (map: Map<string, number>) => {
      const n = map.get(script) ?? 0;
      if (n > 0) map.set(script, n - 1);
      return n > 0;
    };
    if (injected(this.throttleNext) || this.rand() < (this.o.throttleRate ?? 0)) {
      return reply(429, envelope(null, [{ code: 971, message: "Please wait and consider throttling your request speed" }]), { "retry-after": String(this.o.retryAfterS ?? 1) });
    }
    if (this.rand() < (this.o.dropRate ?? 0)) {
      rec.status = -1;
      req.socket.destroy();
      return;
    }
    if (injected(this.failNext) || this.rand() < (this.o.failRate ?? 0)) return reply(500, envelope(null, [{ code: 10013, message: "An unknown error has occurred" }]));
    if (this.gradual.has(script)) {
      return reply(400, envelope(null, [{ code: 10215, message: "Secret edit failed. Latest version isn't currently deployed. Please ensure that the latest version is deployed before editing secrets." }]));
    }

    let parsed: { name?: unknown; text?: unknown; type?: unknown };
    try {
      parsed = JSON.parse(body.toString("utf8")) as typeof parsed;
    } catch {
      return reply(400, envelope(null, [{ code: 10026, message: "could not parse request body" }]));
    }
    if (typeof parsed.name !== "string" || typeof parsed.text !== "string" || parsed.type !== "secret_text") {
      return reply(400, envelope(null, [{ code: 10021, message: "name, text and type secret_text are required" }]));
    }
    rec.fingerprint = fakeFingerprint(parsed.text);
    this.o.fleet.write(script, parsed.name, parsed.text);
    if (this.rand() < (this.o.lostAnswerRate ?? 0)) {
      // Applied, but the client never hears so: its outcome is unknown to the caller.
      rec.status = -2;
      req.socket.destroy();
      return;
    }
    reply(200, envelope({ name: parsed.name, type: "secret_text" }));
  }
}
