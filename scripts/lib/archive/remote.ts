// The deployed archive bucket through the Cloudflare API (official `cloudflare` SDK):
// the list is r2.buckets.objects.list (GET /accounts/{a}/r2/buckets/{bucket}/objects with
// prefix and cursor pages); an object is GET .../objects/{key} with the key's slashes as
// they are, as wrangler 4.153 sends it (wrangler-dist/cli.js getR2Object) and as the API
// reference for that GET requires: "Slashes (/) within the key MUST be sent literally and
// MUST NOT be percent-encoded (i.e. %2F); other reserved characters should be
// percent-encoded as usual" (developers.cloudflare.com/api/resources/r2/subresources/
// buckets/subresources/objects/methods/get). The SDK's own objects.get encodes them as %2F
// (encodeURIPath, internal/utils/path.js), so the path is built here instead. The base URL
// is configurable so tests can point it at a loopback fake. The token needs R2 read.
// Requests are paced like `npm run import` (the account's 1,200 per 5 minutes is shared by
// every token and the dashboard, and going over blocks them all for 5 minutes).
import Cloudflare from "cloudflare";
import { cloudflareClient, MAX_RETRY_AFTER_MS } from "../../../stacks/model/cloudflare-client.ts";
import { UsageError } from "../cli.ts";
import { CLOUDFLARE_LIMIT, DEFAULT_IMPORT_BUDGET, limitedFetch, SlidingWindowLimiter } from "../import/rate-limit.ts";
import type { ArchivedObject, ArchiveSource } from "./source.ts";

export const JURISDICTIONS = ["default", "eu", "fedramp", "fedramp-high"] as const;
export type Jurisdiction = (typeof JURISDICTIONS)[number];

export interface RemoteArchiveOptions {
  apiToken: string;
  accountId: string;
  bucket: string;
  /** The bucket's jurisdiction (`cf-r2-jurisdiction`); an EU bucket is not found without it. */
  jurisdiction?: Jurisdiction;
  baseURL?: string;
}

/** R2's bucket-name rule, checked before any request: the name goes into the API's path,
 *  where `..` would normalise to another endpoint (the SDK's list leaves dots as they are). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
export const BUCKET_NAME_RULE = "3 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
export function isBucketName(name: string): boolean {
  return BUCKET_NAME.test(name);
}

/** Objects per list page: R2 lists at most 1,000 keys a call. */
export const LIST_PAGE = 1000;

/** 404s that are not "no such object": the bucket does not exist (10006,
 *  developers.cloudflare.com/r2/api/error-codes/), or the API routes no such path (7003). */
const NOT_THE_OBJECT = new Set([10006, 7003]);

export function openRemoteArchive(o: RemoteArchiveOptions): ArchiveSource {
  if (!isBucketName(o.bucket)) throw new UsageError(`the bucket's name is not an R2 bucket name (${BUCKET_NAME_RULE})`);
  const limiter = new SlidingWindowLimiter(DEFAULT_IMPORT_BUDGET, CLOUDFLARE_LIMIT.windowMs);
  // The SDK retries 429 and 5xx twice with backoff by default; a 429's retry-after also
  // pauses the limiter.
  const cf = cloudflareClient({ apiToken: o.apiToken, maxRetryAfterMs: MAX_RETRY_AFTER_MS, timeout: 60_000, baseURL: o.baseURL, fetch: limitedFetch(limiter) });
  const jurisdiction: Record<string, string> = o.jurisdiction !== undefined && o.jurisdiction !== "default" ? { "cf-r2-jurisdiction": o.jurisdiction } : {};
  const objectPath = (key: string) =>
    `/accounts/${encodeURIComponent(o.accountId)}/r2/buckets/${encodeURIComponent(o.bucket)}/objects/${key.split("/").map(encodeURIComponent).join("/")}`;
  return {
    where: `R2 bucket ${o.bucket}${o.jurisdiction && o.jurisdiction !== "default" ? ` (${o.jurisdiction})` : ""} (account ${o.accountId})`,
    async list(prefix) {
      const out: ArchivedObject[] = [];
      const params = { account_id: o.accountId, prefix, per_page: LIST_PAGE, ...(o.jurisdiction !== undefined && o.jurisdiction !== "default" ? { "cf-r2-jurisdiction": o.jurisdiction } : {}) };
      for await (const x of cf.r2.buckets.objects.list(o.bucket, params)) {
        if (typeof x.key !== "string") continue;
        out.push({ key: x.key, size: x.size ?? 0, customMetadata: x.custom_metadata ?? {} });
      }
      return out;
    },
    async get(key) {
      try {
        const res = await cf.get<Response>(objectPath(key), { __binaryResponse: true, headers: { Accept: "application/octet-stream", ...jurisdiction } });
        return { bytes: new Uint8Array(await res.arrayBuffer()), contentType: res.headers.get("content-type") };
      } catch (e) {
        // A 404 means the object is not there, as wrangler reads it (fetchR2Objects: any
        // 404 is "not found"): R2 documents NoSuchKey (10007) for the Workers and S3 APIs,
        // not for this REST endpoint, so its body is not relied on. A 404 that names the
        // bucket or an unrouted path is an error to report.
        if (e instanceof Cloudflare.NotFoundError && !((e.errors ?? []) as { code?: number }[]).some((x) => x.code !== undefined && NOT_THE_OBJECT.has(x.code))) return undefined;
        throw e;
      }
    },
    close: async () => {},
  };
}
