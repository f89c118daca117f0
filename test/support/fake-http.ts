// Shared plumbing of the rotation's loopback fakes (test and benchmark only): the
// loopback HTTP server every fake uses, a JSON answer, and a seeded random generator so
// failures are reproducible.
import type { ServerResponse } from "node:http";

export { LoopbackFake, LoopbackServer, type Handler } from "./loopback.ts";

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** A seeded PRNG, uniform in [0, 1) (the one verify's sampling uses). */
export { prng as seeded } from "../../scripts/lib/verify/sample.ts";
