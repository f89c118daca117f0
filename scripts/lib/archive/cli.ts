// `npm run archive`: reads what the proxy archived for a tenant (docs/metering.md "The
// archive"), from the local state of `npm run dev:proxy` (--local, the default) or the
// deployed R2 bucket through the Cloudflare API (--remote).
//   list --tenant T [--day D | --days N]     the tenant's archived calls, newest day first
//   get <request-id> --tenant T [--day D]    one call's bodies: --part request|response to
//                                            standard output or --out FILE, or --json both
// A call is found under the UTC day it started; without --day, `get` looks back --days
// days from today (one list request a day).
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { archivePrefix, parseArchiveKey, PARTS, type Part } from "../../../workers/shared/archive-key.ts";
import { daysOption, ID, isUtcDay, MAX_DAYS, newCommand, outFileProblem, parseArgs, type CliOutput } from "../cli.ts";
import { describeError as describe } from "../cloudflare-error.ts";
import { DEFAULT_PERSIST } from "../tenants/local.ts";
import { archiveBucketName, NoArchiveError, openLocalArchive } from "./local.ts";
import { JURISDICTIONS, openRemoteArchive, type Jurisdiction } from "./remote.ts";
import type { ArchivedObject, ArchiveSource } from "./source.ts";

export const ARCHIVE_EXIT = {
  ok: 0,
  /** The archive could not be read (API error, unreachable, no local state), or --out not written. */
  failed: 1,
  /** Bad command line, missing credentials, or --out in a folder that does not exist. */
  usage: 2,
  /** `get`: no archived call with that request id in the days searched. */
  notFound: 3,
} as const;

export interface Io extends CliOutput {
  env: NodeJS.ProcessEnv;
  /** Where relative --persist paths start (the repository). */
  root: string;
  /** A body as stored, byte for byte (standard output). */
  outBytes?: (b: Uint8Array) => void;
}

class UsageError extends Error {}

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
  tenant: string;
  day?: string;
  days: number;
  json?: boolean;
  bucket?: string;
  jurisdiction?: Jurisdiction;
  accountId?: string;
  apiBase?: string;
}

function openSource(o: Common, io: Io): Promise<ArchiveSource> {
  if (o.local && o.remote) throw new UsageError("choose one: --local or --remote");
  if (!o.remote) return openLocalArchive(io.root, o.persist);
  const apiToken = io.env.CLOUDFLARE_API_TOKEN;
  const accountId = o.accountId ?? io.env.CLOUDFLARE_ACCOUNT_ID;
  const missing = [
    apiToken ? undefined : "CLOUDFLARE_API_TOKEN (environment only, never a flag; R2 read permission)",
    accountId ? undefined : "--account-id or CLOUDFLARE_ACCOUNT_ID",
  ].filter((m) => m !== undefined);
  if (missing.length > 0) throw new UsageError(`--remote needs: ${missing.join("; ")}`);
  const baseURL = o.apiBase ?? io.env.CLOUDFLARE_API_BASE_URL;
  return Promise.resolve(
    openRemoteArchive({ apiToken: apiToken!, accountId: accountId!, bucket: o.bucket ?? archiveBucketName(), ...(o.jurisdiction ? { jurisdiction: o.jurisdiction } : {}), ...(baseURL ? { baseURL } : {}) }),
  );
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
  const rows = calls.map((c) => [c.day, c.requestId, sizeCell(c.request), sizeCell(c.response), c.response?.status !== undefined ? String(c.response.status) : "-", c.response?.complete === false ? `cut: ${c.response.ended ?? "?"}` : ""]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join("  ").trimEnd() + "\n";
  return line(head) + rows.map(line).join("") + `${calls.length} call(s)\n`;
}

const decoder = new TextDecoder("utf-8", { fatal: true });
function bodyJson(bytes: Uint8Array): { body: string } | { body_base64: string } {
  try {
    return { body: decoder.decode(bytes) };
  } catch {
    return { body_base64: Buffer.from(bytes).toString("base64") };
  }
}

/** --out, relative to where the user ran the command (npm runs scripts from the package
 *  root and says where it was started in INIT_CWD); its folder must exist. */
function outPath(file: string, env: NodeJS.ProcessEnv): string {
  const path = resolve(env.INIT_CWD ?? process.cwd(), file);
  const problem = outFileProblem(file, path);
  if (problem !== undefined) throw new UsageError(problem);
  return path;
}

function commonOptions(c: Command): Command {
  return c
    .option("--local", "read the local archive of `npm run dev:proxy` (the default)")
    .option("--remote", "read the deployed R2 bucket through the Cloudflare API")
    .option("--persist <dir>", "the proxy's local state folder (dev:proxy --persist)", DEFAULT_PERSIST)
    .requiredOption("--tenant <id>", "the tenant (npm run tenants -- list)", tenantArg)
    .option("--day <day>", "the UTC day the call started, YYYY-MM-DD", dayArg)
    .option("--days <n>", `without --day: the last n UTC days, newest first (at most ${MAX_DAYS})`, daysOption, 7)
    .option("--json", "print JSON")
    .option("--bucket <name>", "the archive bucket (--remote; default: wrangler.jsonc's ARCHIVE binding)")
    .addOption(new Option("--jurisdiction <j>", "the bucket's jurisdiction (--remote; an EU bucket is not found without it)").choices([...JURISDICTIONS]))
    .option("--account-id <id>", "Cloudflare account (--remote; or CLOUDFLARE_ACCOUNT_ID)")
    .option("--api-base <url>", "Cloudflare API base URL (or CLOUDFLARE_API_BASE_URL)");
}

const HELP_AFTER =
  "\nThe token is read from CLOUDFLARE_API_TOKEN only (R2 read). A call is archived under the UTC day it started.\n" +
  "--remote makes one list request per day (more for a day of over 1,000 objects), paced at 1,000 per 5 minutes.\n" +
  "To pipe a body, use `npm run -s archive` (npm's banner goes to standard output) or --out.\n" +
  "Bodies are kept up to ARCHIVE_MAX_BYTES each: `(cut)` shows stored/total bytes. A stream the client left or the\n" +
  "upstream broke is archived as far as it went: `cut: <why>`.\n" +
  "Exit codes: 0 ok, 1 the archive could not be read or --out not written, 2 bad command line or missing\n" +
  "credentials, 3 (get) no archived call with that request id in the days searched.\n";

type Run = { kind: "list"; o: Common } | { kind: "get"; o: Common & { part?: Part; out?: string }; requestId: string };

export async function runArchive(argv: string[], io: Io, now = new Date()): Promise<number> {
  let run: Run | undefined;
  const program = newCommand("archive", io).description("Read what the LLM proxy archived for a tenant (request and response bodies in R2).").addHelpText("after", HELP_AFTER);
  commonOptions(program.command("list").description("the tenant's archived calls: request id, sizes, status, newest day first"))
    .helpOption("-h, --help", "show this help")
    .action((o: Common) => {
      run = { kind: "list", o };
    });
  commonOptions(program.command("get").description("one call's bodies").argument("<request-id>", "the call's edgefleet-request-id (req_ef_...)"))
    .helpOption("-h, --help", "show this help")
    .addOption(new Option("--part <part>", "which body to print as it was stored").choices([...PARTS]).conflicts("json"))
    .option("--out <file>", "write the body (or the JSON) to this file instead of standard output")
    .action((requestId: string, o: Common & { part?: Part; out?: string }) => {
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
    const days = daysToSearch(r.o, now);
    if (r.o.remote && days.length > 31) io.err(`archive: looking at ${days.length} days: at least ${days.length} API requests, paced at 1,000 per 5 minutes\n`);
    if (r.kind === "list") {
      const calls: ArchivedCall[] = [];
      for (const day of days) calls.push(...groupCalls(await source.list(archivePrefix(r.o.tenant, day))));
      io.out(r.o.json ? JSON.stringify({ source: source.where, tenant: r.o.tenant, days: { from: days[days.length - 1], to: days[0] }, calls }, null, 2) + "\n" : renderCalls(calls));
      return ARCHIVE_EXIT.ok;
    }
    let found: ArchivedCall | undefined;
    for (const day of days) {
      found = groupCalls(await source.list(archivePrefix(r.o.tenant, day, r.requestId)))[0];
      if (found !== undefined) break;
    }
    if (found === undefined) {
      const span = days.length === 1 ? `on ${days[0]}` : `from ${days[days.length - 1]} to ${days[0]}`;
      io.err(`archive: no archived call ${r.requestId} of tenant ${r.o.tenant} ${span} in ${source.where} (a call is filed under the UTC day it started; try --day or --days)\n`);
      return ARCHIVE_EXIT.notFound;
    }
    const key = (part: Part) => `${archivePrefix(found!.tenant, found!.day, found!.requestId)}${part}`;
    let text: string | Uint8Array;
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
      }
      text = JSON.stringify({ tenant: found.tenant, day: found.day, requestId: found.requestId, ...parts }, null, 2) + "\n";
    }
    if (out === undefined) {
      if (typeof text === "string") io.out(text);
      else (io.outBytes ?? ((b: Uint8Array) => io.out(Buffer.from(b).toString("utf8"))))(text);
      return ARCHIVE_EXIT.ok;
    }
    try {
      writeFileSync(out, text);
    } catch (e) {
      io.err(`archive: cannot write --out ${r.o.out}: ${e instanceof Error ? e.message : String(e)}\n`);
      return ARCHIVE_EXIT.failed;
    }
    io.err(`wrote ${out}\n`);
    return ARCHIVE_EXIT.ok;
  } catch (e) {
    io.err(`archive: cannot read ${source.where}: ${describe(e)}\n`);
    return ARCHIVE_EXIT.failed;
  } finally {
    await source.close();
  }
}
