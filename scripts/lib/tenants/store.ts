// Tenant operations (create, list, disable) over a minimal KV interface, so the same
// code runs against the local Miniflare state and, through the Cloudflare API, against
// the deployed Worker's namespace. Used by `npm run tenants`, dev-proxy and the tests.
import {
  KV_PREFIX,
  kvKeyFor,
  parseTenantMarker,
  tenantMarkerKey,
  type TenantMarker,
  newTenantId,
  newTenantKey,
  parseTenantRecord,
  sha256Hex,
  type TenantRecord,
} from "../../../workers/llm-proxy/src/tenant-record.ts";
import { escapeControls } from "../../../workers/shared/printable.ts";
import { TENANT_ID } from "../../../workers/shared/archive-key.ts";

export type { TenantRecord };

/** The few KV operations tenants need; adapters in local.ts and remote.ts. */
export interface TenantKv {
  get(key: string): Promise<string | null>;
  put(key: string, value: string, metadata: unknown): Promise<void>;
  /** Every key under the prefix with its metadata (adapters follow the cursor). */
  list(prefix: string): Promise<{ name: string; metadata: unknown }[]>;
  /** Told of a key under the prefix that is skipped because its value is not a tenant
   *  record (the CLI prints it); without it the key is skipped silently. */
  warn?(message: string): void;
}

export interface Limits {
  ratePerMinute: number;
  burst: number;
  /** 0: no limit. */
  inputTokensPerMinute: number;
  outputTokensPerMinute: number;
  /** Spend budgets in micro-dollars per UTC day / month; 0: no budget. */
  dailyBudgetMicros: number;
  monthlyBudgetMicros: number;
}

export interface NewTenant {
  /** Required for a new tenant; with `id`, taken from the tenant unless given. */
  name?: string;
  /** Each limit: required-with-default for a new tenant (the CLI fills the defaults);
   *  with `id`, taken from the tenant's current keys unless given. */
  ratePerMinute?: number;
  burst?: number;
  inputTokensPerMinute?: number;
  outputTokensPerMinute?: number;
  dailyBudgetMicros?: number;
  monthlyBudgetMicros?: number;
  /** Add a key to an existing tenant (a second key, e.g. rotation). */
  id?: string;
  /** With `id`: allowed to add a key to a disabled (or unknown) tenant, enabling it again. */
  reenable?: boolean;
}

export const DEFAULT_LIMITS: Limits = { ratePerMinute: 60, burst: 10, inputTokensPerMinute: 0, outputTokensPerMinute: 0, dailyBudgetMicros: 0, monthlyBudgetMicros: 0 };

/** Every limit a record carries, in the order they are shown. */
const LIMIT_KEYS = ["ratePerMinute", "burst", "inputTokensPerMinute", "outputTokensPerMinute", "dailyBudgetMicros", "monthlyBudgetMicros"] as const;

export class TenantError extends Error {
  /** "notFound": no such tenant; "refused": the tenant's state forbids it; "input": bad input. */
  readonly kind: "notFound" | "refused" | "input";
  constructor(message: string, kind: "notFound" | "refused" | "input" = "input") {
    super(message);
    this.kind = kind;
  }
}

/**
 * A write to a tenant's keys that failed part-way: `cause` is the store's error. The keys
 * before it carry the new setting and the rest the old one, which the Worker applies per
 * key; every command that writes a tenant's keys writes each one's full setting, so
 * running it again finishes the job.
 */
export class PartialWriteError extends Error {
  readonly written: number;
  readonly total: number;
  constructor(written: number, total: number, cause: unknown) {
    super(`wrote ${written} of the tenant's ${total} key(s) before the store failed; the other ${total - written} keep their old setting: run the command again (it writes every key's full setting)`, { cause });
    this.written = written;
    this.total = total;
  }
}

/** Writes each record under its key, in order; a failure says how many were written. */
async function putEvery(kv: TenantKv, records: TenantRecord[]): Promise<void> {
  for (const [i, r] of records.entries()) {
    try {
      await kv.put(kvKeyFor(r.keyHash), JSON.stringify(r), r);
    } catch (e) {
      throw new PartialWriteError(i, records.length, e);
    }
  }
}

function limitsOf(r: TenantRecord): Limits {
  return {
    ratePerMinute: r.ratePerMinute,
    burst: r.burst,
    inputTokensPerMinute: r.inputTokensPerMinute ?? 0,
    outputTokensPerMinute: r.outputTokensPerMinute ?? 0,
    dailyBudgetMicros: r.dailyBudgetMicros ?? 0,
    monthlyBudgetMicros: r.monthlyBudgetMicros ?? 0,
  };
}

/** A record with `l`'s optional limits (0: none, so the field is left out). */
function withLimits(r: TenantRecord, l: Limits): TenantRecord {
  const next: TenantRecord = { ...r, ratePerMinute: l.ratePerMinute, burst: l.burst };
  for (const k of ["inputTokensPerMinute", "outputTokensPerMinute", "dailyBudgetMicros", "monthlyBudgetMicros"] as const) {
    delete next[k];
    if (l[k] > 0) next[k] = l[k];
  }
  return next;
}

/** The tenant's marker (`tenant:<id>`), if any. */
export async function readMarker(kv: TenantKv, id: string): Promise<TenantMarker | undefined> {
  const raw = await kv.get(tenantMarkerKey(id));
  if (raw === null) return undefined;
  try {
    return parseTenantMarker(JSON.parse(raw));
  } catch {
    return undefined;
  }
}

async function writeMarker(kv: TenantKv, id: string, disabled: boolean, now: Date): Promise<void> {
  const m: TenantMarker = { id, disabled, at: now.toISOString() };
  await kv.put(tenantMarkerKey(id), JSON.stringify(m), m);
}

export function validateNewTenant(t: NewTenant): string[] {
  const errors: string[] = [];
  if (t.name !== undefined && (t.name.trim() === "" || t.name.length > 100)) errors.push("--name: must be 1 to 100 characters");
  // A name is printed by `tenants list` and `usage` (terminal, CSV, JSON): a control or
  // bidirectional character (an escape sequence, an override that reorders the row) has
  // no place in it. The set is the one escapeControls escapes.
  if (t.name !== undefined && escapeControls(t.name.trim()) !== t.name.trim()) errors.push("--name: must not contain control or bidirectional characters");
  if (t.name === undefined && t.id === undefined) errors.push("--name: required for a new tenant");
  errors.push(...validateLimits(t));
  if (t.id !== undefined && !TENANT_ID.test(t.id)) errors.push("--id: must look like t_0123456789abcdef");
  if (t.reenable && t.id === undefined) errors.push("--reenable: only with --id (a new tenant is enabled anyway)");
  return errors;
}

export function validateLimits(t: Partial<Limits>): string[] {
  const errors: string[] = [];
  if (t.ratePerMinute !== undefined && (!Number.isFinite(t.ratePerMinute) || t.ratePerMinute <= 0)) errors.push("--rate: must be a number of requests per minute > 0");
  if (t.burst !== undefined && (!Number.isInteger(t.burst) || t.burst < 1)) errors.push("--burst: must be an integer >= 1");
  for (const [k, flag] of [["inputTokensPerMinute", "--input-tokens-per-minute"], ["outputTokensPerMinute", "--output-tokens-per-minute"]] as const) {
    const v = t[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) errors.push(`${flag}: must be an integer >= 0 (0: no limit)`);
  }
  for (const [k, flag] of [["dailyBudgetMicros", "--daily-budget"], ["monthlyBudgetMicros", "--monthly-budget"]] as const) {
    const v = t[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) errors.push(`${flag}: must be whole micro-dollars >= 0 (0: no budget)`);
  }
  return errors;
}

/** Creates a key for a tenant. The key is returned once; only its hash is stored. */
export async function createTenant(kv: TenantKv, t: NewTenant, now = new Date()): Promise<{ key: string; record: TenantRecord }> {
  const errors = validateNewTenant(t);
  if (errors.length > 0) throw new TenantError(errors.join("\n"));
  let name = t.name?.trim();
  let base: Limits = DEFAULT_LIMITS;
  let reenabled = false;
  // A new key of an existing tenant keeps its archive opt-in (set with setArchive).
  let archive = false;
  if (t.id !== undefined) {
    // A key for an existing tenant: it must exist and be enabled, unless --reenable. Its
    // name and limits are the tenant's (a disabled tenant never comes back silently
    // with another name or rate).
    const keys = await tenantKeys(kv, t.id);
    const marker = await readMarker(kv, t.id);
    const disabled = marker?.disabled === true || (keys.length > 0 && keys.every((r) => !r.enabled));
    if (keys.length === 0 && !t.reenable) throw new TenantError(`no tenant with id ${t.id} (pass --reenable, with --name and its limits, to recreate it)`, "notFound");
    if (disabled && !t.reenable) throw new TenantError(`tenant ${t.id} is disabled; pass --reenable to give it a new key and enable it again`, "refused");
    if (keys.length === 0 && name === undefined) throw new TenantError("--name: required to recreate an unknown tenant", "input");
    const current = keys.filter((r) => r.enabled).at(-1) ?? keys.at(-1);
    if (current !== undefined) {
      base = limitsOf(current);
      archive = current.archive === true;
      if (name === undefined) name = current.name;
      if (!t.reenable) {
        const differs = [
          name !== current.name ? "--name" : undefined,
          ...LIMIT_KEYS.map((k) => (t[k] !== undefined && t[k] !== base[k] ? k : undefined)),
        ].filter((x) => x !== undefined);
        if (differs.length > 0) throw new TenantError(`tenant ${t.id}'s keys share its name and limits; use \`tenants limits\` to change them (differs: ${differs.join(", ")})`, "input");
      }
    }
    reenabled = disabled || keys.length === 0;
  }
  const key = newTenantKey();
  const limits: Limits = { ...base };
  for (const k of LIMIT_KEYS) if (t[k] !== undefined) limits[k] = t[k];
  const record = withLimits(
    { id: t.id ?? newTenantId(), name: name!, ratePerMinute: 0, burst: 0, enabled: true, keyHash: await sha256Hex(key), createdAt: now.toISOString() },
    limits,
  );
  if (archive) record.archive = true;
  const value = JSON.stringify(record);
  await kv.put(kvKeyFor(record.keyHash), value, record);
  // The marker last: until it is cleared, the new key is refused like the old ones.
  if (reenabled) await writeMarker(kv, record.id, false, now);
  return { key, record };
}

/** Every tenant key's record (one row per key), from the listing's metadata: what
 *  `tenants list` shows. Cloudflare's KV list can be up to 60 s behind a write ("Changes
 *  may take up to 60 seconds to be visible when listing keys"), so a command that writes
 *  builds its write from tenantKeys instead. */
export async function listTenants(kv: TenantKv): Promise<TenantRecord[]> {
  const out: TenantRecord[] = [];
  for (const k of await kv.list(KV_PREFIX)) {
    const r = parseTenantRecord(k.metadata) ?? (await readRecord(kv, k.name));
    if (r !== undefined && r !== null) out.push(r);
  }
  return sortRecords(out);
}

/**
 * The record stored under `key`, read by its key: null when the key is gone (deleted
 * since the listing), undefined when its value is not a tenant record (not JSON, or not
 * the schema parseTenantRecord accepts), said through kv.warn. One bad value must not
 * stop a command for every tenant, least of all an emergency `disable`; the Worker
 * refuses such a key anyway (its record fails closed).
 */
async function readRecord(kv: TenantKv, key: string): Promise<TenantRecord | null | undefined> {
  const text = await kv.get(key);
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    kv.warn?.(`${key} skipped: its value is not JSON, so not a tenant record`);
    return undefined;
  }
  const r = parseTenantRecord(value);
  if (r === undefined) kv.warn?.(`${key} skipped: its value is not a valid tenant record`);
  return r;
}

const sortRecords = (rs: TenantRecord[]) => rs.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));

/**
 * A tenant's keys as a write must see them: found through the listing (which names its
 * keys; a key created in the last minute may be missing from it, said in
 * LIST_LAG_NOTE), each record then read by its key, never taken from the listing's
 * metadata, which can be a minute old: written back, a stale record would undo the
 * command before it (an archive opt-out, a budget just set).
 */
async function tenantKeys(kv: TenantKv, id: string): Promise<TenantRecord[]> {
  const out: TenantRecord[] = [];
  for (const k of await kv.list(KV_PREFIX)) {
    const listed = parseTenantRecord(k.metadata);
    if (listed !== undefined && listed.id !== id) continue;
    // A key gone since the listing keeps the listing's record (as before); one whose
    // value is not a record is skipped, never rebuilt from the listing: written back, it
    // would bring a key the Worker refuses back to life.
    const read = await readRecord(kv, k.name);
    const r = read === null ? listed : read;
    if (r !== undefined && r.id === id) out.push(r);
  }
  return sortRecords(out);
}

/** What a command that changes a tenant tells the operator about the listing's lag. */
export const LIST_LAG_NOTE = "Cloudflare's KV listing can be up to 60 s behind: a key created in the last minute may be missing above; if so, run the command again in a minute (it writes every key's full setting, so a rerun is safe).";

/**
 * Disables every key of a tenant. With dryRun, reports what it would change and writes
 * nothing. Idempotent: re-running after an interruption finishes the job.
 */
export async function disableTenant(kv: TenantKv, id: string, dryRun: boolean, now = new Date()): Promise<{ changed: TenantRecord[]; alreadyDisabled: number }> {
  const all = await tenantKeys(kv, id);
  if (all.length === 0) throw new TenantError(`no tenant with id ${id}`, "notFound");
  const changed = all.filter((r) => r.enabled);
  if (!dryRun) {
    // The tenant-level marker first: auth refuses every key of the tenant while it is
    // set, also one created after the listing above.
    await writeMarker(kv, id, true, now);
    await putEvery(kv, changed.map((r) => ({ ...r, enabled: false })));
  }
  return { changed, alreadyDisabled: all.length - changed.length };
}

/**
 * Sets a tenant's limits on every one of its keys (the limits travel in each key's
 * record; the Worker reads them per call). Dry run unless told otherwise.
 */
export async function setLimits(kv: TenantKv, id: string, patch: Partial<Limits>, dryRun: boolean): Promise<{ before: Limits; after: Limits; keys: number }> {
  const errors = validateLimits(patch);
  if (Object.values(patch).every((v) => v === undefined)) errors.push("give at least one of --rate, --burst, --input-tokens-per-minute, --output-tokens-per-minute, --daily-budget, --monthly-budget");
  if (errors.length > 0) throw new TenantError(errors.join("\n"));
  const keys = await tenantKeys(kv, id);
  if (keys.length === 0) throw new TenantError(`no tenant with id ${id}`, "notFound");
  const before = limitsOf(keys.filter((r) => r.enabled).at(-1) ?? keys.at(-1)!);
  const after: Limits = { ...before };
  for (const k of Object.keys(patch) as (keyof Limits)[]) if (patch[k] !== undefined) after[k] = patch[k]!;
  if (!dryRun) await putEvery(kv, keys.map((r) => withLimits(r, after)));
  return { before, after, keys: keys.length };
}

/**
 * Opts a tenant in to the archive (`on`) or out, on every one of its keys (the flag
 * travels in each key's record, like the limits). Dry run unless told otherwise.
 * Returns the keys whose record would change and the tenant's setting before.
 */
export async function setArchive(kv: TenantKv, id: string, on: boolean, dryRun: boolean): Promise<{ before: boolean; changed: number; keys: number }> {
  const keys = await tenantKeys(kv, id);
  if (keys.length === 0) throw new TenantError(`no tenant with id ${id}`, "notFound");
  const before = (keys.filter((r) => r.enabled).at(-1) ?? keys.at(-1)!).archive === true;
  const changing = keys.filter((r) => (r.archive === true) !== on);
  if (!dryRun) {
    // Every key, not only those that look changed: what was read may be a write behind.
    await putEvery(
      kv,
      keys.map((r) => {
        const next: TenantRecord = { ...r };
        if (on) next.archive = true;
        else delete next.archive;
        return next;
      }),
    );
  }
  return { before, changed: changing.length, keys: keys.length };
}
