// A loopback HTTP server for the fakes of the services edgefleet talks to (tests and
// benchmarks only): listens on 127.0.0.1 on a free port, reads each request's body whole
// and hands it to the fake's handler (a handler that throws answers 500), with an
// optional latency per request; stop() closes kept-alive connections too.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => Promise<void> | void;

export class LoopbackServer {
  private server: Server | undefined;
  url = "";
  /** Delay before each answer, in ms (a function so it can be random). */
  latency: () => number = () => 0;
  private readonly handler: Handler;
  private readonly keepAliveMs: number;

  /** `keepAliveMs`: how long an idle client connection stays open. */
  constructor(handler: Handler, opts: { keepAliveMs?: number } = {}) {
    this.handler = handler;
    this.keepAliveMs = opts.keepAliveMs ?? 30_000;
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
    this.server.keepAliveTimeout = this.keepAliveMs;
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** A fake served by a LoopbackServer: `start()` listens and resolves to the fake (so
 *  `await new Fake(...).start()` reads as one step), `stop()` closes it. */
export abstract class LoopbackFake {
  protected abstract readonly server: LoopbackServer;

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}
