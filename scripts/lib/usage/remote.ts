// The deployed ledger's D1 through the Cloudflare API (official `cloudflare` SDK,
// d1.database.query: POST /accounts/{a}/d1/database/{id}/query) as a UsageSource. The base
// URL is configurable so tests can point it at a loopback fake.
import { cloudflareClient, MAX_RETRY_AFTER_MS } from "../../../stacks/model/cloudflare-client.ts";
import Cloudflare from "cloudflare";
import type { UsageSource } from "./report.ts";

/** What --remote needs to find the ledger's database, as a missing-credential message says it. */
export const LEDGER_DATABASE_NEEDED = "--database-id or EDGEFLEET_USAGE_DATABASE_ID (the edgefleet-usage D1 database's uuid)";

/** The ledger's D1 database id: the flag, else EDGEFLEET_USAGE_DATABASE_ID. */
export function ledgerDatabaseId(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return flag ?? env.EDGEFLEET_USAGE_DATABASE_ID;
}

export interface RemoteOptions {
  apiToken: string;
  accountId: string;
  databaseId: string;
  baseURL?: string;
}

export function openRemoteSource(o: RemoteOptions): UsageSource {
  // The SDK retries 429 and 5xx twice with backoff by default; a report can wait for it.
  const cf = cloudflareClient({ apiToken: o.apiToken, maxRetryAfterMs: MAX_RETRY_AFTER_MS, timeout: 60_000, baseURL: o.baseURL });
  return {
    where: `D1 database ${o.databaseId} (account ${o.accountId})`,
    async query(sql, params) {
      const page = await cf.d1.database.query(o.databaseId, { account_id: o.accountId, sql, params });
      const results = page.result;
      // One statement, one result: its rows.
      if (results.length !== 1) throw new Error(`the D1 API answered ${results.length} result(s) for one statement`);
      // A failed statement normally fails the whole request (an error envelope, which the
      // SDK throws with D1's message); a result marked failed without one says only that.
      if (results[0]!.success === false) throw new Error(`the D1 API marked the statement as failed (success: false) without an error; SQL: ${sql.slice(0, 80)}`);
      return results[0]!.results ?? [];
    },
    close: async () => {},
  };
}
