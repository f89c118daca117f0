// The deployed archive bucket through the Cloudflare API (official `cloudflare` SDK:
// r2.buckets.objects.list, GET /accounts/{a}/r2/buckets/{bucket}/objects with prefix and
// cursor pages; r2.buckets.objects.get, GET .../objects/{key}, the raw bytes). The base
// URL is configurable so tests can point it at a loopback fake. The token needs R2 read.
import Cloudflare from "cloudflare";
import { cloudflareClient } from "../../../stacks/model/cloudflare-client.ts";
import type { ArchivedObject, ArchiveSource } from "./source.ts";

export interface RemoteArchiveOptions {
  apiToken: string;
  accountId: string;
  bucket: string;
  baseURL?: string;
}

/** Objects per list page: R2 lists at most 1,000 keys a call. */
export const LIST_PAGE = 1000;

export function openRemoteArchive(o: RemoteArchiveOptions): ArchiveSource {
  // The SDK retries 429 and 5xx twice with backoff by default.
  const cf = cloudflareClient({ apiToken: o.apiToken, timeout: 60_000, baseURL: o.baseURL });
  return {
    where: `R2 bucket ${o.bucket} (account ${o.accountId})`,
    async list(prefix) {
      const out: ArchivedObject[] = [];
      for await (const x of cf.r2.buckets.objects.list(o.bucket, { account_id: o.accountId, prefix, per_page: LIST_PAGE })) {
        if (typeof x.key !== "string") continue;
        out.push({ key: x.key, size: x.size ?? 0, customMetadata: x.custom_metadata ?? {} });
      }
      return out;
    },
    async get(key) {
      try {
        const res = await cf.r2.buckets.objects.get(key, { account_id: o.accountId, bucket_name: o.bucket });
        return { bytes: new Uint8Array(await res.arrayBuffer()), contentType: res.headers.get("content-type") };
      } catch (e) {
        if (e instanceof Cloudflare.NotFoundError) return undefined;
        throw e;
      }
    },
    close: async () => {},
  };
}
