// Shared plumbing of the rotation's loopback fakes (test and benchmark only): a tiny
// HTTP server on 127.0.0.1 with a body reader, an optional latency per request, and a
// seeded random generator so failures are reproducible.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => Promise<void> | void;

export class LoopbackServer {
  private server: Server | undefined;
  url = "";
  /** Delay before each answer, in ms (a function so it can be random). */
  latency: () => number = () => 0;
  private readonly handler: Handler;

  constructor(handler: Handler) {
    this.handler = handler;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const go = () =>
          Promise.resolve(this.handler(req, body, res)).catch((e: unknown) => {
            if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
            res.end(JSON.stringify({ error: String(e) }));
          });
        const ms = this.latency();
        if (ms > 0) setTimeout(go, ms);
        else void go();
      });
    });
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** A seeded PRNG, uniform in [0, 1) (the one verify's sampling uses). */
export { prng as seeded } from "../../verify/sample.ts";
