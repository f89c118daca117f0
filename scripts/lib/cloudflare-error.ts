// How the command lines that call the Cloudflare API say why a call failed.
import { APIConnectionError, APIError } from "cloudflare";
import { escapeControls } from "../../workers/shared/printable.ts";

/** Why a call failed, without anything secret (the SDK's errors carry the status and
 * Cloudflare's codes; cloudflareClient replaces the token in an error answer's body), and
 * with control and bidirectional characters escaped: the API's text must not drive the
 * terminal or CI log that shows it. A 429 or 5xx says how long Cloudflare asked to wait
 * when that was longer than the client waits (MAX_RETRY_AFTER_MS). */
export function describeError(e: unknown): string {
  return escapeControls(describeRaw(e));
}

function describeRaw(e: unknown): string {
  if (e instanceof APIConnectionError) return `cannot reach the Cloudflare API (${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ""})`;
  if (e instanceof APIError) {
    const errors = (e.errors ?? []) as { code?: number; message?: string }[];
    const detail = errors.map((x) => `${x.code ?? "?"} ${x.message ?? ""}`.trim()).join("; ");
    const after = e.headers?.get("x-should-retry") === "false" ? e.headers.get("retry-after") : null;
    const wait = after !== null ? ` (it asked to wait ${after}${/^\d+(\.\d+)?$/.test(after.trim()) ? " s" : ""} before trying again${e.status === 429 ? ": the account's API rate limit" : ""})` : "";
    return `the Cloudflare API answered ${e.status ?? "no response"}${detail ? `: ${detail}` : ""}${wait}`;
  }
  return e instanceof Error ? e.message : String(e);
}
