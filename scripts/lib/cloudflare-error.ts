// How the command lines that call the Cloudflare API say why a call failed.
import { APIConnectionError, APIError } from "cloudflare";

/** Why a call failed, without anything secret (the SDK's errors carry the status and
 * Cloudflare's codes, never the token). */
export function describeError(e: unknown): string {
  if (e instanceof APIConnectionError) return `cannot reach the Cloudflare API (${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ""})`;
  if (e instanceof APIError) {
    const errors = (e.errors ?? []) as { code?: number; message?: string }[];
    const detail = errors.map((x) => `${x.code ?? "?"} ${x.message ?? ""}`.trim()).join("; ");
    return `the Cloudflare API answered ${e.status ?? "no response"}${detail ? `: ${detail}` : ""}`;
  }
  return e instanceof Error ? e.message : String(e);
}
