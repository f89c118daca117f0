// What the proxy benchmarks send (run.ts, profile.ts): one bench tenant
// whose limits are never reached, the Messages request of each mode, and the check that
// counts an answer as complete.
import type { Miniflare } from "miniflare";
import { miniflareKv } from "../../../scripts/lib/tenants/local.ts";
import { createTenant } from "../../../scripts/lib/tenants/store.ts";

export type Mode = "json" | "sse";

/** Creates the bench tenant in the proxy's KV (only the key's hash is stored; every proxy
 *  Worker of the Miniflare shares the TENANTS namespace); returns the tenant key. */
export async function benchTenant(mf: Miniflare): Promise<string> {
  const { key } = await createTenant(miniflareKv(await mf.getKVNamespace("TENANTS")), { name: "bench", ratePerMinute: 10_000_000, burst: 1_000_000 });
  return key;
}

/** The request body of a call: a short Messages request, streamed for SSE. */
export function messagesBody(mode: Mode): Buffer {
  return Buffer.from(JSON.stringify({ model: "claude-sonnet-5-5", max_tokens: 64, ...(mode === "sse" ? { stream: true } : {}), messages: [{ role: "user", content: "Say hello" }] }));
}

/** A call's headers (the tenant key; a Host that Miniflare routes by, when given). */
export function messagesHeaders(key: string, host?: string): Record<string, string> {
  return { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": key, ...(host !== undefined ? { host } : {}) };
}

/** An answer counts when it is a 200 and complete: a Message, or a stream to message_stop. */
export function completeAnswer(mode: Mode): (status: number, body: string) => boolean {
  return mode === "json" ? (s, b) => s === 200 && b.includes('"type":"message"') : (s, b) => s === 200 && b.includes("event: message_stop");
}
