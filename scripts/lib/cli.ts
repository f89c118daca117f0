// What edgefleet's single-command command lines share (commander): help as -h/--help,
// output through the caller's io (tests capture it), errors handed back instead of
// exiting the process, and how --help or a usage error becomes the exit code.
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { escapeControls } from "../../workers/shared/printable.ts";
import { ID_MAX, idPattern } from "../../workers/shared/ids.ts";

export interface CliOutput {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** A command that writes through `io`, throws instead of exiting, and refuses stray arguments. */
export function newCommand(name: string, io: CliOutput): Command {
  return new Command(name)
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .allowExcessArguments(false);
}

/**
 * Parses `argv` (the user's arguments only). Returns the exit code to end with when it
 * was --help (`exit.ok`) or a usage error commander already reported (`exit.usage`),
 * and undefined when the command should run.
 */
export function parseArgs(cmd: Command, argv: string[], exit: { ok: number; usage: number }): number | undefined {
  try {
    cmd.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? exit.ok : exit.usage;
    throw e;
  }
  return undefined;
}

/** An option parser for a whole number of at least `min`; `name` is the option, for the message. */
export function intAtLeast(name: string, min: number): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return Number(v);
  };
}

/** The most days a --days option takes: ten years, more than any ledger or archive keeps,
 *  and far inside Date's range. */
export const MAX_DAYS = 3660;

const atLeastOneDay = intAtLeast("--days", 1);
/** An option parser for --days: a whole number from 1 to MAX_DAYS. */
export function daysOption(v: string): number {
  const n = atLeastOneDay(v);
  if (n > MAX_DAYS) throw new InvalidArgumentError(`--days must be at most ${MAX_DAYS}`);
  return n;
}

/**
 * Whether `v` is a UTC day written YYYY-MM-DD that exists (2026-02-30 does not).
 * Date.parse, not toISOString alone: an impossible month ('2026-13-01') makes
 * toISOString throw a RangeError, which would end a command with 1 instead of a bad
 * command line's 2.
 */
export function isUtcDay(v: string): boolean {
  const t = /^\d{4}-\d{2}-\d{2}$/.test(v) ? Date.parse(`${v}T00:00:00Z`) : Number.NaN;
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === v;
}

/** An id a command takes (a tenant, a model): letters, digits, '.', '_', ':', '-', at
 *  most 128; never a '/' or a space, so it is safe in a key prefix or a query. */
export const ID = idPattern(ID_MAX);

/** Why --out cannot be written to `path` (`file` as the user gave it), or undefined: its
 *  folder must exist, and it must not be a folder itself. Checked before anything is read. */
export function outFileProblem(file: string, path: string): string | undefined {
  const dir = dirname(path);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return `--out ${file}: folder ${dir} does not exist`;
  if (existsSync(path) && statSync(path).isDirectory()) return `--out ${file} is a folder`;
  return undefined;
}

/** A bad command line or set-up (a flag, missing credentials): the command reports its
 *  message and exits with its usage code, before anything is read or changed. */
export class UsageError extends Error {}

/** --out as a path: relative to where the user ran the command (npm runs scripts from the
 *  package root and says where it was started in INIT_CWD); its folder must exist
 *  (outFileProblem, thrown as a UsageError). */
export function outPath(file: string, env: NodeJS.ProcessEnv): string {
  const path = resolve(env.INIT_CWD ?? process.cwd(), file);
  const problem = outFileProblem(file, path);
  if (problem !== undefined) throw new UsageError(problem);
  return path;
}

/**
 * The Cloudflare API credentials of a command that reads or writes a deployed fleet: the
 * token from CLOUDFLARE_API_TOKEN only (never a flag: it would land in shell history and
 * process lists), the account from `--account-id` or CLOUDFLARE_ACCOUNT_ID. `permission`
 * names what the token needs; `more` lists the command's other needs, each undefined
 * when met or the text that names it. Throws a UsageError `<prefix> a; b; c` naming
 * everything missing at once.
 */
export function cloudflareCredentials(
  o: { accountId?: string | undefined },
  env: NodeJS.ProcessEnv,
  need: { prefix: string; permission?: string; more?: (string | undefined)[] },
): { apiToken: string; accountId: string } {
  const apiToken = env.CLOUDFLARE_API_TOKEN;
  const accountId = o.accountId ?? env.CLOUDFLARE_ACCOUNT_ID;
  const missing = [
    apiToken ? undefined : `CLOUDFLARE_API_TOKEN (environment only, never a flag${need.permission ? `; ${need.permission}` : ""})`,
    accountId ? undefined : "--account-id or CLOUDFLARE_ACCOUNT_ID",
    ...(need.more ?? []),
  ].filter((m) => m !== undefined);
  if (missing.length > 0) throw new UsageError(`${need.prefix} ${missing.join("; ")}`);
  return { apiToken: apiToken!, accountId: accountId! };
}

/** Hosts a plain http:// API base may name: this machine (a local fake in tests). */
function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * An API base URL a command sends credentials to: the flag, else the variable (unset or
 * empty: the API's own). Refused (UsageError, exit 2, before any request): an empty flag
 * (a script's unset variable would otherwise send the call to the real API, past the
 * variable the operator set), a value that is not a URL, credentials in it, and anything
 * but https:// except plain http:// to a loopback address: the credentials would cross
 * the network in the clear.
 */
export function apiBaseUrl(flag: string | undefined, variable: string | undefined, names: { flag: string; env?: string }): string | undefined {
  const from = flag !== undefined ? names.flag : (names.env ?? "the variable");
  const value = flag ?? variable;
  if (value === undefined || (flag === undefined && value === "")) return undefined;
  if (value.trim() === "") throw new UsageError(`${from} is empty (leave it out for the real API)`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${from}: not a URL: ${escapeControls(value.slice(0, 200))}`);
  }
  if (url.username !== "" || url.password !== "") throw new UsageError(`${from}: a URL with credentials in it is refused (credentials are sent as headers)`);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    throw new UsageError(`${from}: ${url.protocol}// is refused: https:// only (plain http:// only to a loopback address, for a local fake), or the credentials would cross the network in the clear`);
  }
  return value;
}

/** The Cloudflare API base of the remote commands (usage, archive, tenants,
 *  dead-letters): `--api-base`, else CLOUDFLARE_API_BASE_URL (apiBaseUrl). */
export function cloudflareApiBase(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return apiBaseUrl(flag, env.CLOUDFLARE_API_BASE_URL, { flag: "--api-base", env: "CLOUDFLARE_API_BASE_URL" });
}
