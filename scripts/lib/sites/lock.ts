// The publish lease: keeps two `npm run sites publish` runs (CI and an operator, two CI
// jobs, two laptops) from interleaving their table writes and deletions. Used by cli.ts.
//
// Workers KV has no compare-and-set: two writers of one key both "succeed" and the last
// write wins at the central store, while each location may keep showing an older value for
// up to the propagation bound B (about 60 s, kv/concepts/how-kv-works.mdx, checked
// 2026-11-27). A lease in KV is still exact IF every write is visible everywhere within B:
//   1. read the lease; a live one (expiry judged by the API server's Date, not this
//      machine's clock) held by someone else refuses the publish;
//   2. write our own token;
//   3. wait 2B, then read the lease back: only the holder of the last write proceeds.
// Why 2B: every contender wrote within B of the first write (anyone who started later saw
// a live lease in step 1 and stopped); so every read-back, made 2B after its own write,
// comes after the last write has reached every location, and all contenders read the same
// winner. If KV ever takes longer than B, two publishes may both proceed: the lease is a
// guard, not a proof. CI therefore also runs publish in one concurrency group (docs/router.md).
// Content writes may happen during the wait: they are content-addressed and only add keys.
import { hostname, userInfo } from "node:os";
import { randomUUID } from "node:crypto";
import Cloudflare from "cloudflare";
import type { KvTarget } from "./publish.ts";

/** The lease's key. Not a key the publisher owns as content: the diff never touches it. */
export const LOCK_KEY = "publish:lock";
/** How long a lease lives without being released (a crashed publish frees it after this). */
export const DEFAULT_LEASE_MS = 30 * 60 * 1000;

export interface LockRecord {
  /** A random token: the holder's identity. */
  owner: string;
  /** Who holds it, for the error message: user@host or the CI run. */
  by: string;
  /** API server time (ms) when it was taken and when it lapses. */
  acquiredAt: number;
  expiresAt: number;
}

export interface Lease {
  token: string;
  record: LockRecord;
  /** This process's monotonic clock when the lease was written (a duration, not a date). */
  writtenAt: number;
}

export class LockedError extends Error {
  readonly holder: LockRecord | undefined;
  constructor(message: string, holder: LockRecord | undefined) {
    super(message);
    this.name = "LockedError";
    this.holder = holder;
  }
}

export interface LockOptions {
  /** KV's propagation bound B (ms). */
  propagationMs: number;
  leaseMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Monotonic clock (ms), for waiting out durations. */
  monotonic?: () => number;
  by?: string;
}

const sleeper = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function describeHolder(env: Record<string, string | undefined> = process.env): string {
  if (env.GITHUB_RUN_ID) return `GitHub Actions run ${env.GITHUB_RUN_ID} (${env.GITHUB_REPOSITORY ?? "?"})`;
  let user = "?";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container): the host name still tells who
  }
  return `${user}@${hostname()} pid ${process.pid}`;
}

/** Reads the lease and the API server's time from the same answer. */
export async function readLock(t: KvTarget): Promise<{ record: LockRecord | undefined | "damaged"; serverNow: number }> {
  try {
    const { data, response } = await t.client.kv.namespaces.values
      .get(LOCK_KEY, { account_id: t.accountId, namespace_id: t.namespaceId })
      .withResponse();
    const serverNow = serverTime(response.headers);
    const text = await data.text();
    try {
      const r = JSON.parse(text) as Partial<LockRecord>;
      if (typeof r.owner === "string" && typeof r.expiresAt === "number" && typeof r.acquiredAt === "number") {
        return { record: { owner: r.owner, by: String(r.by ?? "?"), acquiredAt: r.acquiredAt, expiresAt: r.expiresAt }, serverNow };
      }
    } catch {
      // fall through: a lease we cannot read is treated as held
    }
    return { record: "damaged", serverNow };
  } catch (e) {
    if (e instanceof Cloudflare.NotFoundError) return { record: undefined, serverNow: serverTime(e.headers) };
    throw e;
  }
}

/** The API server's clock from a response's Date header; never this machine's clock. */
export function serverTime(headers: Headers | Record<string, string | null | undefined> | undefined): number {
  const raw = headers instanceof Headers ? headers.get("date") : headers?.date;
  const t = raw ? Date.parse(raw) : Number.NaN;
  if (!Number.isFinite(t)) throw new Error("the API's answer has no usable Date header; the publish judges time by the server's clock only");
  return t;
}

function heldMessage(r: LockRecord | "damaged"): string {
  if (r === "damaged") return `the lease key '${LOCK_KEY}' holds something unreadable; if no publish is running, delete that key and retry`;
  return `another publish holds the lease: ${r.by}, since ${new Date(r.acquiredAt).toISOString()}, until ${new Date(r.expiresAt).toISOString()} (server time)`;
}

/** Steps 1 and 2: refuse a live lease, else write ours. */
export async function acquireLock(t: KvTarget, opts: LockOptions): Promise<Lease> {
  const monotonic = opts.monotonic ?? (() => performance.now());
  const { record, serverNow } = await readLock(t);
  if (record === "damaged" || (record && record.expiresAt > serverNow)) throw new LockedError(heldMessage(record), record === "damaged" ? undefined : record);
  const token = randomUUID();
  const mine: LockRecord = { owner: token, by: opts.by ?? describeHolder(), acquiredAt: serverNow, expiresAt: serverNow + (opts.leaseMs ?? DEFAULT_LEASE_MS) };
  await t.client.kv.namespaces.bulkUpdate(t.namespaceId, { account_id: t.accountId, body: [{ key: LOCK_KEY, value: JSON.stringify(mine) }] });
  return { token, record: mine, writtenAt: monotonic() };
}

/** Step 3: wait 2B after our write, then read the lease back; throws if another publish won. */
export async function confirmLock(t: KvTarget, lease: Lease, opts: LockOptions): Promise<void> {
  const monotonic = opts.monotonic ?? (() => performance.now());
  const wait = lease.writtenAt + 2 * opts.propagationMs - monotonic();
  if (wait > 0) await (opts.sleep ?? sleeper)(wait);
  await checkLock(t, lease);
}

/** Throws unless the lease is still ours and unexpired (by server time). */
export async function checkLock(t: KvTarget, lease: Lease): Promise<void> {
  const { record, serverNow } = await readLock(t);
  if (record === undefined) throw new LockedError("the publish lease disappeared (deleted by someone else?); stopping before anything else is changed", undefined);
  if (record === "damaged" || record.owner !== lease.token) {
    throw new LockedError(`lost the publish lease: ${record === "damaged" ? "the lease key was overwritten" : heldMessage(record)}; stopping before anything else is changed`, record === "damaged" ? undefined : record);
  }
  if (record.expiresAt <= serverNow) throw new LockedError("the publish lease expired (the publish ran longer than --lease-minutes); stopping", record);
}

/** Deletes the lease if it is still ours. Best effort: a lease left behind lapses on its own. */
export async function releaseLock(t: KvTarget, lease: Lease): Promise<boolean> {
  const { record } = await readLock(t);
  if (record === undefined || record === "damaged" || record.owner !== lease.token) return false;
  await t.client.kv.namespaces.bulkDelete(t.namespaceId, { account_id: t.accountId, body: [LOCK_KEY] });
  return true;
}
