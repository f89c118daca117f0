// The deployed tenant store: the Worker's TENANTS KV namespace through the Cloudflare
// API, with the official `cloudflare` SDK. The base URL is configurable so tests can
// point it at a loopback fake.
import { cloudflareClient, MAX_RETRY_AFTER_MS } from "../../../stacks/model/cloudflare-client.ts";
import Cloudflare from "cloudflare";
import type { TenantKv } from "./store.ts";

export interface RemoteOptions {
  apiToken: string;
  accountId: string;
  namespaceId: string;
  baseURL?: string;
}

export function openRemoteStore(o: RemoteOptions): TenantKv {
  const cf = cloudflareClient({ apiToken: o.apiToken, maxRetryAfterMs: MAX_RETRY_AFTER_MS, baseURL: o.baseURL });
  const account_id = o.accountId;
  const namespace_id = o.namespaceId;
  return {
    async get(key) {
      try {
        const res = await cf.kv.namespaces.values.get(key, { account_id, namespace_id });
        return await res.text();
      } catch (e) {
        if (e instanceof Cloudflare.NotFoundError) return null;
        throw e;
      }
    },
    async put(key, value, metadata) {
      // The API takes metadata as a JSON text field of the multipart body.
      await cf.kv.namespaces.values.update(key, { account_id, namespace_id, value, metadata: JSON.stringify(metadata) });
    },
    async list(prefix) {
      const out: { name: string; metadata: unknown }[] = [];
      for await (const k of cf.kv.namespaces.keys.list(namespace_id, { account_id, prefix })) {
        out.push({ name: k.name, metadata: k.metadata });
      }
      return out;
    },
  };
}
