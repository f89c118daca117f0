// `npm run archive`: reads what the proxy archived for a tenant (docs/metering.md "The
// archive"), from the local state of `npm run dev:proxy` (--local, the default) or the
// deployed R2 bucket through the Cloudflare API (--remote).
//   list --tenant T [--day D | --days N]     the tenant's archived calls, newest day first
//   get <request-id> [--tenant T] [--day D]  one call's bodies: --part request|response to
//                                            standard output or --out FILE, or --json both
// A call is found under the UTC day it started; without --day, `get` looks back --days
// days from today (one list request a day). Without --tenant, `get` asks the usage ledger
// (its `calls` row: the tenant, and its ts) and looks on that day and the one before (a
// call is archived under the day it started; ts is when it started, but rows written
// before 2026-11-29 have when it ended).
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { archivePrefix, parseArchiveKey, PARTS, type Part } from "../../../workers/shared/archive-key.ts";
import { cloudflareCredentials, daysOption, ID, isUtcDay, MAX_DAYS, newCommand, outPath, parseArgs, UsageError, type CliOutput, cloudflareApiBase } from "../cli.ts";
import { describeError as describe } from "../cloudflare-error.ts";
import { DEFAULT_PERSIST } from "../tenants/local.ts";
import { archiveBucketName, NoArchiveError, openLocalArchive } from "./local.ts";
import { BUCKET_NAME_RULE, isBucketName, JURISDICTIONS, openRemoteArchive, type Jurisdiction } from "./remote.ts";
import { DEFAULT_PERSIST as LEDGER_PERSIST, NoLedgerError, openLocalSource } from "../usage/local.ts";
import { LEDGER_DATABASE_NEEDED, ledgerDatabaseId, openRemoteSource } from "../usage/remote.ts";
import type { UsageSource } from "../usage/report.ts";
import type { ArchivedObject, ArchiveSource } from "./source.ts";
import { escapeControls, safeJson } from "../../../workers/shared/printable.ts";

export const ARCHIVE_EXIT = {
  ok: 0,
  /** The archive could not be read (API error, unreachable, no local state), or --out not written. */
  failed: 1,
  /** Bad command line, missing credentials, or --out in a folder that does not exist. */
  usage: 2,
  /** `get`: no archived call with that request id in the days searched. */
  notFound: 3,
  /** `get --part` to a terminal: the body has control characters (or is not UTF-8), which
   *  the terminal would run; nothing printed. Not the shared `refused` (3): here 3 is
   *  "not found", and a script must tell the two apart. */
  refused: 4,
} as const;

export interface Io extends CliOutput {
  env: NodeJS.ProcessEnv;
  /** Where relative --persist paths start (the repository). */
  root: string;
  /** A body as stored, byte for byte (standard output). */
  outBytes?: (b: Uint8Array) => void;
  /** Standard output is a terminal: `get --part` refuses a body it would run as escape
   *  sequences (terminalSafe). */
  outIsTTY?: boolean;
}


const DAY_MS = 86_400_000;
// The proxy's request ids (index.ts): req_ef_ and 32 hex digits.
const REQUEST_ID = /^req_ef_[0-9a-f]{32}$/;

function dayArg(v: string): string {
  if (!isUtcDay(v)) throw new InvalidArgumentError(`must be a date YYYY-MM-DD, got '${v}'`);
  return v;
}
function tenantArg(v: string): string {
  if (!ID.test(v)) throw new InvalidArgumentError("must be a tenant id (letters, digits, '.', '_', ':', '-'; no '/')");
  return v;
}
// It goes into the API's path: `..` would normalise to another endpoint.
function bucketArg(v: string): string {
  if (!isBucketName(v)) throw new InvalidArgumentError(`must be an R2 bucket name (${BUCKET_NAME_RULE})`);
  return v;
}

/** The days to look in, newest first: --day, or the last `days` UTC days to `now`. */
export function daysToSearch(o: { day?: string; days: number }, now: Date): string[] {
  if (o.day !== undefined) return [o.day];
  const today = Date.parse(now.toISOString().slice(0, 10) + "T00:00:00Z");
  return Array.from({ length: o.days }, (_, i) => new Date(today - i * DAY_MS).toISOString().slice(0, 10));
}

interface Common {
  local?: boolean;
  remote?: boolean;
  persist: string;
  /** Required by `list`; `get` without it asks the usage ledger. */
  tenant?: string;
  day?: string;
  days: number;
  json?: boolean;
  bucket?: string;
  jurisdiction?: Jurisdiction;
  accountId?: string;
  apiBase?: string;
}

interface GetOptions {
  part?: Part;
  out?: string;
  /** The usage ledger, to find the tenant when --tenant is not given. */
  ledgerPersist: string;
  databaseId?: string;
}

/** --remote's credentials, or a UsageError naming what is missing (`ledger`: also the
 *  ledger's database, for a `get` without --tenant). */
function remoteCredentials(o: Common & Partial<GetOptions>, io: Io, ledger: boolean): { apiToken: string; accountId: string; databaseId?: string } {
  const databaseId = ledgerDatabaseId(o.databaseId, io.env);
  const c = cloudflareCredentials(o, io.env, {
    prefix: "--remote needs:",
    permission: `R2 read${ledger ? " and D1 read" : ""} permission`,
    more: [!ledger || databaseId ? undefined : `without --tenant, the usage ledger to find it in: ${LEDGER_DATABASE_NEEDED}`],
  });
  return { ...c, ...(ledger ? { databaseId: databaseId! } : {}) };
}

function openSource(o: Common, io: Io): Promise<ArchiveSource> {
  if (o.local && o.remote) throw new UsageError("choose one: --local or --remote");
  if (!o.remote) return openLocalArchive(io.root, o.persist);
  const { apiToken, accountId } = remoteCredentials(o, io, false);
  const baseURL = cloudflareApiBase(o.apiBase, io.env);
  return Promise.resolve(
    openRemoteArchive({ apiToken, accountId, bucket: o.bucket ?? archiveBucketName(), ...(o.jurisdiction ? { jurisdiction: o.jurisdiction } : {}), ...(baseURL ? { baseURL } : {}) }),
  );
}


/** The usage ledger `get` asks for a call's tenant: local state or the deployed D1. */
function openLedger(o: Common & GetOptions, io: Io): Promise<UsageSource> {
  if (!o.remote) return openLocalSource(resolve(io.root, o.ledgerPersist));
  const { apiToken, accountId, databaseId } = remoteCredentials(o, io, true);
  const baseURL = cloudflareApiBase(o.apiBase, io.env);
  return Promise.resolve(openRemoteSource({ apiToken, accountId, databaseId: databaseId!, ...(baseURL ? { baseURL } : {}) }));
}

/** Where the ledger says a call is: its tenant, and the days to look in (the UTC day of its
 *  ts, then the day before: it is archived under the day it started, which ts is, except in
 *  rows written before 2026-11-29, whose ts is when it ended). undefined: the ledger has no
 *  row for it. */
export async function callInLedger(ledger: UsageSource, requestId: string): Promise<{ tenant: string; days: string[] } | undefined> {
  const rows = (await ledger.query("SELECT tenant, ts FROM calls WHERE request_id = ?", [requestId])) as { tenant?: unknown; ts?: unknown }[];
  const row = rows[0];
  if (row === undefined) return undefined;
  if (typeof row.tenant !== "string" || !ID.test(row.tenant) || typeof row.ts !== "number" || !Number.isFinite(row.ts)) throw new Error(`the ledger's row for ${requestId} has no usable tenant and ts`);
  const day = new Date(row.ts).toISOString().slice(0, 10);
  const before = new Date(row.ts - DAY_MS).toISOString().slice(0, 10);
  return { tenant: row.tenant, days: [day, before] };
}

/** One archived body, as the proxy described it in the object's custom metadata. */
export interface PartSummary {
  /** Bytes the body had (the object keeps at most ARCHIVE_MAX_BYTES of them); null when
   *  the object carries no such metadata (it was not written by the proxy). */
  bytes: number | null;
  stored: number;
  truncated: boolean | null;
  contentType?: string;
  status?: number;
  complete?: boolean;
  ended?: string;
}

export interface ArchivedCall {
  tenant: string;
  day: string;
  requestId: string;
  request?: PartSummary;
  response?: PartSummary;
}

function summary(o: ArchivedObject): PartSummary {
  const m = o.customMetadata;
  const n = m.bytes === undefined ? Number.NaN : Number(m.bytes);
  const truncated = m.truncated === "true" ? true : m.truncated === "false" ? false : null;
  const s: PartSummary = { bytes: Number.isInteger(n) && n >= 0 ? n : null, stored: o.size, truncated };
  if (m.status !== undefined && Number.isFinite(Number(m.status))) s.status = Number(m.status);
  if (m.complete !== undefined) s.complete = m.complete === "true";
  if (m.ended) s.ended = m.ended;
  return s;
}

/** Objects grouped into calls, in key order (keys the archive did not write are skipped). */
export function groupCalls(objects: ArchivedObject[]): ArchivedCall[] {
  const calls = new Map<string, ArchivedCall>();
  for (const o of objects) {
    const k = parseArchiveKey(o.key);
    if (k === undefined) continue;
    const id = `${k.day}/${k.requestId}`;
    let c = calls.get(id);
    if (c === undefined) calls.set(id, (c = { tenant: k.tenant, day: k.day, requestId: k.requestId }));
    c[k.part] = summary(o);
  }
  return [...calls.values()];
}

function sizeCell(p: PartSummary | undefined): string {
  if (p === undefined) return "-";
  if (p.bytes === null || p.truncated === null) return `${p.stored}/?`;
  return p.truncated ? `${p.stored}/${p.bytes} (cut)` : String(p.bytes);
}

function renderCalls(calls: ArchivedCall[]): string {
  if (calls.length === 0) return "no archived calls\n";
  const head = ["day", "request id", "request bytes", "response bytes", "status", "stream"];
  // The request id (from the object's key) and `ended` (its metadata) are what R2 holds:
  // escaped, so a bucket written by something else cannot drive the terminal.
  const rows = calls.map((c) => [c.day, escapeControls(c.requestId), sizeCell(c.request), sizeCell(c.response), c.response?.status !== undefined ? String(c.response.status) : "-", c.response?.complete === false ? `cut: ${escapeControls(c.response.ended ?? "?")}` : ""]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join("  ").trimEnd() + "\n";
  return line(head) + rows.map(line).join("") + `${calls.length} call(s)\n`;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** C0 controls but tab, newline and carriage return, and the C1 controls: what a terminal
 *  runs (ESC and CSI start escape sequences; OSC 52 writes the clipboard). */
const TERMINAL_CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u0080-\u009f]/;

/** Whether a body can be printed to a terminal as it is: valid UTF-8 (a terminal decodes
 *  the bytes of a broken one its own way) without TERMINAL_CONTROLS. */
export function terminalSafe(bytes: Uint8Array): boolean {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return false;
  }
  return !TERMINAL_CONTROLS.test(text);
}

function bodyJson(bytes: Uint8Array): { body: string } | { body_base64: string } {
  try {
    return { body: decoder.decode(bytes) };
  } catch {
    return { body_base64: Buffer.from(bytes).toString("base64") };
  }
}

function commonOptions(c: Command, tenant: "required" | "or ledger"): Command {
  c.option("--local", "read the local archive of `npm run dev:proxy` (the default)")
    .option("--remote", "read the deployed R2 bucket through the Cloudflare API")
    .option("--persist <dir>", "the proxy's local state folder (dev:proxy --persist)", DEFAULT_PERSIST);
  if (tenant === "required") c.requiredOption("--tenant <id>", "the tenant (npm run tenants -- list)", tenantArg);
  else c.option("--tenant <id>", "the tenant (npm run tenants -- list); without it, the usage ledger's row of the call says", tenantArg);
  return c
    .option("--day <day>", "the UTC day the call started, YYYY-MM-DD", dayArg)
    .option("--days <n>", `without --day: the last n UTC days, newest first (at most ${MAX_DAYS})`, daysOption, 7)
    .option("--json", "print JSON")
    .option("--bucket <name>", "the archive bucket (--remote; default: wrangler.jsonc's ARCHIVE binding)", bucketArg)
    .addOption(new Option("--jurisdiction <j>", "the bucket's jurisdiction (--remote; an EU bucket is not found without it)").choices([...JURISDICTIONS]))
    .option("--account-id <id>", "Cloudflare account (--remote; or CLOUDFLARE_ACCOUNT_ID)")
    .option("--api-base <url>", "Cloudflare API base URL (or CLOUDFLARE_API_BASE_URL)");
}

const HELP_AFTER =
  "\nThe token is read from CLOUDFLARE_API_TOKEN only (R2 read). A call is archived under the UTC day it started.\n" +
  "`get` without --tenant finds the call's tenant and day in the usage ledger (--ledger-persist, or --remote with\n" +
  "--database-id: D1 read too); the ledger has the calls that reported usage or got no answer, not refusals or error\n" +
  "answers, and not calls older than its call_retention_days: for those, give --tenant. Without --tenant, --days is\n" +
  "not used: the ledger's row gives the day (the day the call started, and the day before).\n" +
  "--remote makes one list request per day (more for a day of over 1,000 objects), paced at 1,000 per 5 minutes.\n" +
  "To pipe a body, use `npm run -s archive` (npm's banner goes to standard output) or --out.\n" +
  "Bodies are kept up to ARCHIVE_MAX_BYTES each: `(cut)` shows stored/total bytes. A stream the client left or the\n" +
  "upstream broke is archived as far as it went: `cut: <why>`.\n" +
  "Exit codes: 0 ok, 1 the archive (or, without --tenant, the ledger) could not be read or --out not written, 2 bad\n" +
  "command line or missing credentials, 3 (get) no archived call with that request id in the days searched,\n" +
  "(without --tenant) no call with that id in the ledger, or a body listed and then gone (printed as `gone`),\n" +
  "4 (get --part to a terminal) a body with control characters or not UTF-8, not printed: use --out or a pipe.\n";

type Run = { kind: "list"; o: Common & { tenant: string } } | { kind: "get"; o: Common & GetOptions; requestId: string };

function warnDays(o: Common, days: string[], io: Io): void {
  if (o.remote && days.length > 31) io.err(`archive: looking at ${days.length} days: at least ${days.length} API requests, paced at 1,000 per 5 minutes\n`);
}

/** The call's tenant and days from the usage ledger, or the exit code when it cannot say. */
async function findInLedger(o: Common & GetOptions, requestId: string, io: Io): Promise<{ tenant: string; days: string[] } | number> {
  let ledger: UsageSource;
  try {
    ledger = await openLedger(o, io);
  } catch (e) {
    // The ledger's own message names `npm run usage`'s --persist: here it is --ledger-persist.
    const why = e instanceof NoLedgerError ? e.message.replace(/give --persist\b/, "give --ledger-persist") : describe(e);
    io.err(`archive: without --tenant the usage ledger says whose call it is, and it cannot be read: ${why} (or give --tenant)\n`);
    return ARCHIVE_EXIT.failed;
  }
  try {
    const at = await callInLedger(ledger, requestId);
    if (at === undefined) {
      io.err(
        `archive: the usage ledger (${ledger.where}) has no call ${requestId}: it keeps the calls that reported usage or got no answer, not refusals or error answers, and not calls older than its call_retention_days; give --tenant (and --day or --days) to look in the archive directly\n`,
      );
      return ARCHIVE_EXIT.notFound;
    }
    return at;
  } catch (e) {
    io.err(`archive: cannot read ${ledger.where}: ${describe(e)}\n`);
    return ARCHIVE_EXIT.failed;
  } finally {
    await ledger.close();
  }
}

export async function runArchive(argv: string[], io: Io, now = new Date()): Promise<number> {
  let run: Run | undefined;
  const program = newCommand("archive", io).description("Read what the LLM proxy archived for a tenant (request and response bodies in R2).").addHelpText("after", HELP_AFTER);
  commonOptions(program.command("list").description("the tenant's archived calls: request id, sizes, status, newest day first"), "required")
    .helpOption("-h, --help", "show this help")
    .action((o: Common & { tenant: string }) => {
      run = { kind: "list", o };
    });
  commonOptions(program.command("get").description("one call's bodies").argument("<request-id>", "the call's edgefleet-request-id (req_ef_...)"), "or ledger")
    .helpOption("-h, --help", "show this help")
    .addOption(new Option("--part <part>", "which body to print as it was stored").choices([...PARTS]).conflicts("json"))
    .option("--out <file>", "write the body (or the JSON) to this file instead of standard output")
    .option("--ledger-persist <dir>", "without --tenant: the usage ledger's local state folder", LEDGER_PERSIST)
    .option("--database-id <uuid>", "without --tenant, with --remote: the usage ledger's D1 database (or EDGEFLEET_USAGE_DATABASE_ID)")
    .action((requestId: string, o: Common & GetOptions) => {
      run = { kind: "get", o, requestId };
    });
  for (const c of program.commands) c.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err }).allowExcessArguments(false);
  const early = parseArgs(program, argv, ARCHIVE_EXIT);
  if (early !== undefined) return early;
  if (run === undefined) {
    io.err(program.helpInformation());
    return ARCHIVE_EXIT.usage;
  }
  const r = run;
  let source: ArchiveSource;
  let out: string | undefined;
  try {
    if (r.kind === "get") {
      if (!REQUEST_ID.test(r.requestId)) throw new UsageError(`'${r.requestId}' is not a request id of the proxy (req_ef_ and 32 hex digits: the edgefleet-request-id header)`);
      if (r.o.part === undefined && !r.o.json) throw new UsageError("say which body: --part request or --part response (or --json for both)");
      if (r.o.out !== undefined) out = outPath(r.o.out, io.env);
      if (r.o.tenant === undefined && r.o.remote) remoteCredentials(r.o, io, true);
    }
    source = await openSource(r.o, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`archive: ${e.message}\n`);
      return ARCHIVE_EXIT.usage;
    }
    io.err(`archive: ${e instanceof NoArchiveError ? e.message : describe(e)}\n`);
    return ARCHIVE_EXIT.failed;
  }
  try {
    if (r.kind === "list") {
      const days = daysToSearch(r.o, now);
      warnDays(r.o, days, io);
      const calls: ArchivedCall[] = [];
      for (const day of days) calls.push(...groupCalls(await source.list(archivePrefix(r.o.tenant, day))));
      io.out(r.o.json ? safeJson({ source: source.where, tenant: r.o.tenant, days: { from: days[days.length - 1], to: days[0] }, calls }, 2) + "\n" : renderCalls(calls));
      return ARCHIVE_EXIT.ok;
    }
    // Without --tenant: the ledger says whose call it is and when.
    let tenant = r.o.tenant;
    let days: string[];
    if (tenant === undefined) {
      const where = await findInLedger(r.o, r.requestId, io);
      if (typeof where === "number") return where;
      tenant = where.tenant;
      days = r.o.day !== undefined ? [r.o.day] : where.days;
    } else {
      days = daysToSearch(r.o, now);
      warnDays(r.o, days, io);
    }
    let found: ArchivedCall | undefined;
    for (const day of days) {
      found = groupCalls(await source.list(archivePrefix(tenant, day, r.requestId)))[0];
      if (found !== undefined) break;
    }
    if (found === undefined) {
      const span = days.length === 1 ? `on ${days[0]}` : days.length === 2 && r.o.tenant === undefined ? `on ${days[1]} or ${days[0]} (the ledger's row of the call)` : `from ${days[days.length - 1]} to ${days[0]}`;
      io.err(`archive: no archived call ${r.requestId} of tenant ${tenant} ${span} in ${source.where} (a call is filed under the UTC day it started; try --day or --days; a tenant that did not opt in has no archive)\n`);
      return ARCHIVE_EXIT.notFound;
    }
    const key = (part: Part) => `${archivePrefix(found!.tenant, found!.day, found!.requestId)}${part}`;
    let text: string | Uint8Array;
    // Parts the list named that were gone when read: shown as gone, and exit 3, never a
    // whole-looking call without its response.
    const gone: Part[] = [];
    if (r.o.part !== undefined) {
      if (found[r.o.part] === undefined) {
        io.err(`archive: call ${r.requestId} has no archived ${r.o.part} body\n`);
        return ARCHIVE_EXIT.notFound;
      }
      const got = await source.get(key(r.o.part));
      if (got === undefined) {
        io.err(`archive: the ${r.o.part} body of ${r.requestId} is gone (deleted by the bucket's lifecycle rule meanwhile?)\n`);
        return ARCHIVE_EXIT.notFound;
      }
      text = got.bytes;
    } else {
      const parts: Record<string, unknown> = {};
      for (const part of PARTS) {
        if (found[part] === undefined) continue;
        const got = await source.get(key(part));
        if (got !== undefined) parts[part] = { ...found[part], contentType: got.contentType, ...bodyJson(got.bytes) };
        else gone.push(part);
      }
      // The bodies' C1 and bidirectional characters escaped too (JSON.stringify leaves them
      // raw, and a terminal runs C1 controls): still the same JSON.
      text = safeJson({ tenant: found.tenant, day: found.day, requestId: found.requestId, ...parts, ...(gone.length > 0 ? { gone } : {}) }, 2) + "\n";
    }
    const goneExit = (): number => {
      if (gone.length === 0) return ARCHIVE_EXIT.ok;
      io.err(`archive: the ${gone.join(" and ")} body of ${r.requestId} is gone (listed, then not found: deleted by the bucket's lifecycle rule meanwhile?)\n`);
      return ARCHIVE_EXIT.notFound;
    };
    if (out === undefined) {
      // A tenant's bytes are not run by the operator's terminal: to one, a body that is not
      // plain text is refused (to a pipe or --out it goes byte for byte).
      if (io.outIsTTY === true && typeof text !== "string" && !terminalSafe(text)) {
        io.err(`archive: the ${r.o.part} body of ${r.requestId} has control characters or is not UTF-8, which a terminal would run as escape sequences: not printed; use --out <file>, or a pipe (e.g. | xxd, | cat -v)\n`);
        return ARCHIVE_EXIT.refused;
      }
      if (typeof text === "string") io.out(text);
      else (io.outBytes ?? ((b: Uint8Array) => io.out(Buffer.from(b).toString("utf8"))))(text);
      return goneExit();
    }
    try {
      writeFileSync(out, text);
    } catch (e) {
      io.err(`archive: cannot write --out ${r.o.out}: ${e instanceof Error ? e.message : String(e)}\n`);
      return ARCHIVE_EXIT.failed;
    }
    io.err(`wrote ${out}\n`);
    return goneExit();
  } catch (e) {
    io.err(`archive: cannot read ${source.where}: ${describe(e)}\n`);
    return ARCHIVE_EXIT.failed;
  } finally {
    await source.close();
  }
}
