// Where the archive keeps a call's bodies in R2 (docs/metering.md "The archive"):
// `<tenant>/<YYYY-MM-DD>/<request id>/request` and `.../response`, the UTC day the call
// started. Type-free (no Workers types, no zod): the proxy writes with it, and
// `npm run archive` reads with it.

/** Which body of a call. */
export type Part = "request" | "response";
export const PARTS: readonly Part[] = ["request", "response"];

/** The form of a tenant id as `npm run tenants` makes it (tenant-record.ts newTenantId,
 *  and what store.ts accepts for --id): the archive writes only under such an id. A
 *  record's id is whatever KV holds, and a hand-edited one with '/' or '..' would put a
 *  tenant's bodies under another prefix, or past R2's 1,024-byte key limit. */
export const TENANT_ID = /^t_[0-9a-f]{16}$/;

export function archiveDay(startedMs: number): string {
  return new Date(startedMs).toISOString().slice(0, 10);
}

export function archiveKey(tenant: string, startedMs: number, requestId: string, part: Part): string {
  return `${tenant}/${archiveDay(startedMs)}/${requestId}/${part}`;
}

/** The prefix of one call's objects, or of a tenant's day when `requestId` is absent. */
export function archivePrefix(tenant: string, day: string, requestId?: string): string {
  return requestId === undefined ? `${tenant}/${day}/` : `${tenant}/${day}/${requestId}/`;
}

/** A key's parts, or undefined for a key the archive did not write. */
export function parseArchiveKey(key: string): { tenant: string; day: string; requestId: string; part: Part } | undefined {
  const m = /^([^/]+)\/(\d{4}-\d{2}-\d{2})\/([^/]+)\/(request|response)$/.exec(key);
  return m ? { tenant: m[1]!, day: m[2]!, requestId: m[3]!, part: m[4] as Part } : undefined;
}
