// Publishes a sites build to the router's KV namespace through Cloudflare's KV bulk
// API (official `cloudflare` SDK): lists what is there, writes only new or changed
// keys and deletes removed ones. Used by `npm run sites publish`.
//
// Resumable by design: the diff is recomputed from the namespace's key listing on
// every run, so a run that fails halfway is finished by running it again. The write
// order keeps the live site whole at every step, in every location: content first, then
// a wait of KV's propagation bound (content must be visible everywhere before any table
// names it: KV caches misses too, kv/concepts/how-kv-works.mdx), then host tables, then
// deletions of what no table names. Content no table names any more is deleted only after
// a grace period (default 10 minutes, recorded in the `publish:orphans` key, timed by the
// API server's Date header, never this machine's clock): an edge may still hold an older
// table for a minute or so (KV's cache, the Worker's TTL) and must find its content.
import Cloudflare from "cloudflare";
import { CONTENT_PREFIX, HOST_PREFIX, type HostTable } from "../../../workers/router/src/table.ts";
import { MTA_STS_LABEL } from "../../../stacks/model/mail.ts";
import type { KvEntry, SitesBuild } from "./build.ts";
import { batches } from "../batches.ts";
import { readLock, type LockRecord } from "./lock.ts";

/** Cloudflare's bulk limits (last verified 2026-11): 10,000 pairs and 100 MB a request. */
export const BULK_MAX_PAIRS = 10_000;
/** Below the 100 MB request limit, leaving room for JSON framing. */
export const BULK_MAX_BODY_BYTES = 90 * 1024 * 1024;

/** The key that records since when each unreferenced content key has been unreferenced. */
export const ORPHANS_KEY = "publish:orphans";
/** How long unreferenced content stays before it is deleted (KV's ~60 s edge cache, and more). */
export const DEFAULT_GRACE_MS = 10 * 60 * 1000;
/**
 * KV's propagation bound B: "Changes may take up to 60 seconds or more to be visible in
 * other global network locations" (kv/concepts/how-kv-works.mdx, checked 2026-11-27).
 * The publish waits this long between writing content and writing the tables that name
 * it, and the lease waits twice this long (lock.ts). 90 s leaves a margin over the 60 s.
 */
export const DEFAULT_PROPAGATION_MS = 90 * 1000;

/** Content key -> when a publish first found no table naming it (epoch ms). */
export type Orphans = Record<string, number>;

export interface PublishPlan {
  /** Content entries to write (new hashes). */
  content: KvEntry[];
  /** Host tables to write (new or changed). */
  hosts: KvEntry[];
  /** Keys to delete: removed hosts' tables, and content unreferenced for the grace period. */
  deletes: string[];
  /** Unreferenced content kept until its grace period is over. */
  deferred: string[];
  /** The orphans record to write after the deletes, or undefined when it is unchanged. */
  orphans: Orphans | undefined;
  unchanged: number;
  /** Host tables that exist now and would be deleted. */
  hostsRemoved: string[];
  /** Host tables that exist now (for the safety guard). */
  hostsBefore: number;
  /** The keys of ours that exist now. */
  existing?: ReadonlySet<string>;
  /** The API server's time when the plan was made (ms; from its Date header). */
  serverNow: number;
  /** The publish lease as the plan found it (lock.ts); "damaged" if unreadable. */
  lock?: LockRecord | "damaged" | undefined;
}

/** Keys the publisher owns; anything else in the namespace is left alone. */
export const isOurs = (key: string) => key.startsWith(HOST_PREFIX) || key.startsWith(CONTENT_PREFIX);

export interface PlanOptions {
  /** The orphans record read from the namespace (default none). */
  orphans?: Orphans;
  /** The API server's time (ms); planFromRemote takes it from the server's Date header. */
  now: number;
  graceMs?: number;
}

/** The diff between a build and the namespace's keys (name -> metadata.sha256). */
export function planPublish(build: SitesBuild, remote: ReadonlyMap<string, string | undefined>, opts: PlanOptions): PublishPlan {
  // Never this machine's clock: the grace period is judged by the API server's.
  const now = opts.now;
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const before = opts.orphans ?? {};
  const orphans: Orphans = {};
  const plan: PublishPlan = {
    content: [],
    hosts: [],
    deletes: [],
    deferred: [],
    orphans: undefined,
    unchanged: 0,
    hostsRemoved: [],
    hostsBefore: 0,
    existing: new Set(remote.keys()),
    serverNow: now,
  };
  const wanted = new Set<string>();
  for (const e of build.entries) {
    wanted.add(e.key);
    // Content is addressed by its hash, so a present key is current; the metadata check
    // catches a key written by something else under our prefix.
    if (remote.get(e.key) === e.metadata.sha256) plan.unchanged++;
    else if (e.key.startsWith(CONTENT_PREFIX)) plan.content.push(e);
    else plan.hosts.push(e);
  }
  for (const key of [...remote.keys()].sort()) {
    if (key.startsWith(HOST_PREFIX)) plan.hostsBefore++;
    if (!isOurs(key) || wanted.has(key)) continue;
    if (key.startsWith(HOST_PREFIX)) {
      plan.deletes.push(key);
      plan.hostsRemoved.push(key.slice(HOST_PREFIX.length));
      continue;
    }
    // A record from the future (a damaged record) restarts the grace period rather than
    // shortening it.
    const recorded = before[key];
    const since = recorded !== undefined && recorded <= now ? recorded : now;
    if (now - since >= graceMs) {
      plan.deletes.push(key);
    } else {
      plan.deferred.push(key);
      orphans[key] = since;
    }
  }
  // Written only when it changes, so a publish with nothing to do makes no request.
  const same = JSON.stringify(Object.entries(orphans).sort()) === JSON.stringify(Object.entries(before).sort());
  if (!same) plan.orphans = orphans;
  return plan;
}

/** Reads the orphans record, if the listing shows there is one. */
export async function readOrphans(t: KvTarget, keys: ReadonlySet<string>): Promise<Orphans> {
  if (!keys.has(ORPHANS_KEY)) return {};
  const res = await t.client.kv.namespaces.values.get(ORPHANS_KEY, { account_id: t.accountId, namespace_id: t.namespaceId });
  try {
    const parsed = JSON.parse(await res.text()) as unknown;
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === "number"));
  } catch {
    // A damaged record only restarts the grace period; it never deletes anything early.
    return {};
  }
}

export interface KvTarget {
  client: Cloudflare;
  accountId: string;
  namespaceId: string;
}

/** Lists the namespace's keys of ours (and the orphans record) with their metadata.sha256 (1,000 a request). */
export async function listRemote(t: KvTarget): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for await (const key of t.client.kv.namespaces.keys.list(t.namespaceId, { account_id: t.accountId, limit: 1000 })) {
    if (!isOurs(key.name) && key.name !== ORPHANS_KEY) continue;
    const meta = key.metadata as { sha256?: unknown } | undefined;
    out.set(key.name, typeof meta?.sha256 === "string" ? meta.sha256 : undefined);
  }
  return out;
}

type BulkPair = Cloudflare.KV.Namespaces.NamespaceBulkUpdateParams.Body;

function toPair(e: KvEntry): BulkPair {
  // Host tables are JSON text; content may be binary, so it travels base64-encoded.
  if (e.key.startsWith(HOST_PREFIX)) return { key: e.key, value: new TextDecoder().decode(e.value), metadata: e.metadata };
  return { key: e.key, value: Buffer.from(e.value).toString("base64"), base64: true, metadata: e.metadata };
}

export interface PublishProgress {
  phase: "content" | "hosts" | "delete";
  done: number;
  total: number;
}

export interface PublishResult {
  written: number;
  deleted: number;
  requests: number;
}

export class PublishError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PublishError";
  }
}

export interface ApplyOptions {
  onProgress?: (p: PublishProgress) => void;
  maxPairs?: number;
  /**
   * KV's propagation bound (ms), waited out between writing content and writing the
   * tables that name it (default DEFAULT_PROPAGATION_MS). Only waited when this run
   * wrote content and has tables to write.
   */
  propagationMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Called before the first table is written and before any deletion (the lease check). */
  beforeLiveChange?: () => Promise<void>;
  /** Which phases to run (default all); the CLI writes content while the lease settles. */
  only?: "content";
}

/** Applies a plan. Throws PublishError on the first failed request; re-running resumes. */
export async function applyPlan(t: KvTarget, plan: PublishPlan, opts: ApplyOptions = {}): Promise<PublishResult> {
  const { onProgress, maxPairs = BULK_MAX_PAIRS } = opts;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const result: PublishResult = { written: 0, deleted: 0, requests: 0 };
  const total = plan.content.length + plan.hosts.length + plan.deletes.length;
  let done = 0;
  const write = async (phase: "content" | "hosts", entries: KvEntry[]) => {
    const pairs = entries.map(toPair);
    for (const batch of batches(pairs, (p) => p.key.length + p.value.length + 128, maxPairs, BULK_MAX_BODY_BYTES)) {
      result.requests++;
      let res;
      try {
        res = await t.client.kv.namespaces.bulkUpdate(t.namespaceId, { account_id: t.accountId, body: batch });
      } catch (e) {
        throw new PublishError(`writing ${batch.length} ${phase} key(s) failed after ${result.written} written: ${describe(e)}; run publish again to resume`, { cause: e });
      }
      const failed = res?.unsuccessful_keys ?? [];
      if (failed.length > 0) {
        throw new PublishError(`Cloudflare did not write ${failed.length} of ${batch.length} ${phase} key(s) (first: ${failed[0]}); run publish again to resume`);
      }
      result.written += batch.length;
      done += batch.length;
      onProgress?.({ phase, done, total });
    }
  };
  await write("content", plan.content);
  if (opts.only === "content") return result;
  const liveChange = plan.hosts.length > 0 || plan.deletes.length > 0 || plan.orphans !== undefined;
  if (liveChange) await opts.beforeLiveChange?.();
  // A location that reads a key before it is visible there caches the miss (for the
  // read's cacheTtl), so no table may name content before every location can see it.
  if (plan.content.length > 0 && plan.hosts.length > 0) await sleep(opts.propagationMs ?? DEFAULT_PROPAGATION_MS);
  await write("hosts", plan.hosts);
  if (plan.deletes.length > 0 && plan.hosts.length > 0) await opts.beforeLiveChange?.();
  for (const batch of batches(plan.deletes, (k) => k.length + 3, maxPairs, BULK_MAX_BODY_BYTES)) {
    result.requests++;
    try {
      await t.client.kv.namespaces.bulkDelete(t.namespaceId, { account_id: t.accountId, body: batch });
    } catch (e) {
      throw new PublishError(`deleting ${batch.length} key(s) failed after ${result.deleted} deleted: ${describe(e)}; run publish again to resume`, { cause: e });
    }
    result.deleted += batch.length;
    done += batch.length;
    onProgress?.({ phase: "delete", done, total });
  }
  if (plan.orphans) {
    result.requests++;
    try {
      await t.client.kv.namespaces.bulkUpdate(t.namespaceId, {
        account_id: t.accountId,
        body: [{ key: ORPHANS_KEY, value: JSON.stringify(plan.orphans) }],
      });
    } catch (e) {
      throw new PublishError(`recording unreferenced content failed: ${describe(e)}; run publish again to resume`, { cause: e });
    }
  }
  return result;
}

/**
 * Reads the lease (and with it the API server's time), lists, reads the orphans record and
 * plans: everything a publish needs to know. Time comes from the server's Date header, so
 * the grace period means the same whichever machine (CI, a laptop with a wrong clock) runs
 * the publish.
 */
export async function planFromRemote(t: KvTarget, build: SitesBuild, opts: Omit<PlanOptions, "orphans" | "now"> = {}): Promise<PublishPlan> {
  const { record, serverNow } = await readLock(t);
  const remote = await listRemote(t);
  const orphans = await readOrphans(t, new Set(remote.keys()));
  return { ...planPublish(build, remote, { ...opts, orphans, now: serverNow }), lock: record };
}

/** Share of a host's published paths that must be removed or changed for it to count as rewritten. */
export const REWRITTEN_SHARE = 0.5;

export interface HostChanges {
  /** Hosts published now whose table the plan deletes. */
  removed: string[];
  /** Hosts that served files and would serve none. */
  emptied: string[];
  /** Hosts of which at least REWRITTEN_SHARE of the published paths are removed or get other content, or that switch between a site and a www redirect. */
  rewritten: string[];
  /** Host tables published now. */
  before: number;
  /** Their hosts. */
  beforeHosts: string[];
}

/**
 * The hosts the publish guard judges, in two groups with a share each: the operator's
 * sites (directories of --sites and their www. redirects), and the MTA-STS policy hosts
 * the inventory generates (one per zone that receives mail, stacks/model/mail.ts). A
 * wrong --sites directory rewrites the sites and leaves the policies alone, so counting
 * the policies in its share would dilute it (17 policy hosts beside 12 site hosts let a
 * publish empty a quarter of the sites unrefused); the policies, in turn, change only with
 * the inventory, and losing many at once (a wrong --inventory) is refused on its own.
 */
export interface HostGroup {
  group: "sites" | "mta-sts";
  before: number;
  removed: string[];
  emptied: string[];
  rewritten: string[];
}

/**
 * Splits the guard's figures by group. A host the build holds is classed by the build
 * (the manifest marks generated hosts); a published host the build drops is classed by
 * its name (`mta-sts.<zone>`, a name the sites directory may not use: build.ts only
 * accepts the router's zones and their www. hosts).
 */
export function groupHostChanges(changes: HostChanges, build: SitesBuild): HostGroup[] {
  const inBuild = new Map(build.manifest.hosts.map((h) => [h.host, h.generated === "mta-sts"]));
  const generated = (host: string) => inBuild.get(host) ?? host.startsWith(`${MTA_STS_LABEL}.`);
  return (["sites", "mta-sts"] as const).map((group) => {
    const mine = (host: string) => generated(host) === (group === "mta-sts");
    return {
      group,
      before: changes.beforeHosts.filter(mine).length,
      removed: changes.removed.filter(mine),
      emptied: changes.emptied.filter(mine),
      rewritten: changes.rewritten.filter(mine),
    };
  });
}

/** How one published table compares with its replacement, for the guard. */
export function compareTables(old: HostTable, next: HostTable): "emptied" | "rewritten" | undefined {
  const oldPaths = Object.keys(old.files ?? {});
  const served = (t: HostTable) => Object.keys(t.files ?? {}).length > 0 || !!t.canonical;
  if (served(old) && !served(next)) return "emptied";
  if ((old.canonical ?? "") !== (next.canonical ?? "")) return "rewritten";
  if (oldPaths.length === 0) return undefined;
  const changed = oldPaths.filter((p) => next.files?.[p]?.h !== old.files[p]!.h).length;
  return changed / oldPaths.length >= REWRITTEN_SHARE ? "rewritten" : undefined;
}

/**
 * What the plan does to the published hosts: removed, emptied, rewritten. Reads the current
 * tables of the hosts whose table changes (bulk get, 100 keys a request).
 */
export async function hostChanges(t: KvTarget, plan: PublishPlan): Promise<HostChanges> {
  const beforeHosts = [...(plan.existing ?? [])].filter((k) => k.startsWith(HOST_PREFIX)).map((k) => k.slice(HOST_PREFIX.length)).sort();
  const out: HostChanges = { removed: [...plan.hostsRemoved], emptied: [], rewritten: [], before: plan.hostsBefore, beforeHosts };
  const changed = plan.hosts.filter((e) => plan.existing?.has(e.key));
  for (let i = 0; i < changed.length; i += 100) {
    const batch = changed.slice(i, i + 100);
    // As text: a value under our prefix that is not a table (written by something else) is
    // replaced without counting, rather than failing the whole read.
    const res = await t.client.kv.namespaces.bulkGet(t.namespaceId, { account_id: t.accountId, keys: batch.map((e) => e.key), type: "text" });
    const values = (res as { values?: Record<string, unknown> } | null)?.values ?? {};
    for (const e of batch) {
      let old: HostTable | undefined;
      try {
        const raw = values[e.key];
        old = typeof raw === "string" ? (JSON.parse(raw) as HostTable) : undefined;
      } catch {
        old = undefined;
      }
      if (!old || typeof old !== "object" || typeof old.files !== "object") continue;
      const next = JSON.parse(new TextDecoder().decode(e.value)) as HostTable;
      const verdict = compareTables(old, next);
      if (verdict) out[verdict].push(e.key.slice(HOST_PREFIX.length));
    }
  }
  return out;
}

/** An API error in words, without request headers (which carry the token). */
export function describe(e: unknown): string {
  if (e instanceof Cloudflare.APIError) {
    const errors = (e.errors ?? []).map((x: { code?: number; message?: string }) => `${x.code ?? "?"} ${x.message ?? ""}`.trim());
    return `HTTP ${e.status ?? "error"}${errors.length ? ` (${errors.join("; ")})` : ""}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * A fetch for the SDK that keeps this process under Cloudflare's account-wide limit
 * of 1,200 requests per 5 minutes (FINDINGS.md): past `limit` requests in `windowMs`
 * it waits until the oldest leaves the window. Retries made by the SDK (on 429 it
 * honours retry-after) pass through here and are counted too.
 */
export function rateLimitedFetch(
  opts: { limit?: number; windowMs?: number; now?: () => number; sleep?: (ms: number) => Promise<void>; fetch?: typeof fetch } = {},
): typeof fetch {
  const limit = opts.limit ?? 1000; // leave 200 of the 1,200 for the dashboard and other tools
  const windowMs = opts.windowMs ?? 5 * 60 * 1000;
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const inner = opts.fetch ?? fetch;
  const sent: number[] = [];
  return (async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    for (;;) {
      const t = now();
      while (sent.length > 0 && sent[0]! <= t - windowMs) sent.shift();
      if (sent.length < limit) break;
      await sleep(sent[0]! + windowMs - t);
    }
    sent.push(now());
    return inner(input, init);
  }) as typeof fetch;
}
