// How long an HTTP answer asks its client to wait before trying again, read one way for
// every client edgefleet writes: the proxy's retries of Anthropic, key rotation's and
// import's calls of the Cloudflare API. `retry-after-ms` (Anthropic sends it beside
// `retry-after`; the official SDKs read it first) when it is a number >= 0, else
// `retry-after` as delay-seconds or an HTTP-date (RFC 9110 section 10.2.3; a date in the
// past is 0). Pure and dependency-free, so the proxy Worker and the scripts share it.
// (stacks/model/cloudflare-client.ts keeps its own reading on purpose: it predicts what the
// `cloudflare` SDK will wait, and so copies the SDK's looser parseFloat.)

/** The headers of an answer, or anything with their get(). */
export interface HeaderLookup {
  get(name: string): string | null;
}

/** The wait an answer asks for, in ms; undefined when it asks for none or it cannot be read. */
export function retryAfterMs(headers: HeaderLookup | undefined, nowMs: number): number | undefined {
  if (headers === undefined) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const ra = headers.get("retry-after");
  if (ra === null) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra.trim())) return Math.ceil(Number(ra) * 1000);
  // An HTTP-date names its day and month ("Sun, 06 Nov 1994 08:49:37 GMT"): without a
  // letter, Date.parse would read "-3" as the year -3 and wait 0 ms.
  const t = /[a-z]/i.test(ra) ? Date.parse(ra) : Number.NaN;
  return Number.isNaN(t) ? undefined : Math.max(0, t - nowMs);
}
