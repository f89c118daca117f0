// DNS queries for `npm run verify`: one Node resolver per run, pointed at the
// operator's resolvers, with per-query timeouts, a query counter, and answers that
// tell "the name has no such record" apart from "the resolver could not answer".
import { getServers } from "node:dns";
import { Resolver } from "node:dns/promises";

export const DEFAULT_MAX_IN_FLIGHT = 128;

/** A real answer (possibly empty: NXDOMAIN or NODATA), or a failure to get one. */
export type Answer<T> = { ok: true; records: T[]; empty?: "NXDOMAIN" | "NODATA" } | { ok: false; error: string };

/** Error codes that are answers: the name or the type does not exist (a finding, may be drift). */
const EMPTY_CODES: Record<string, "NXDOMAIN" | "NODATA"> = { ENOTFOUND: "NXDOMAIN", ENODATA: "NODATA" };

/** What a failed query means to a person; never drift, always "cannot verify". */
export function describeDnsError(code: string | undefined): string {
  switch (code) {
    case "ETIMEOUT":
      return "timeout: the resolver did not answer";
    case "ESERVFAIL":
      return "SERVFAIL: the resolver could not resolve the name";
    case "EREFUSED":
      return "REFUSED: the resolver refused the query";
    case "ECONNREFUSED":
      return "connection refused by the resolver";
    default:
      return `DNS error ${code ?? "unknown"}`;
  }
}

/**
 * c-ares hands TXT octets to JavaScript one octet per character (latin1). TXT is
 * bytes, and what people paste into it (a typographic dash in '-all') is UTF-8, so
 * decode it as UTF-8 to name the character that is really there.
 */
export function txtBytesAsUtf8(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[\x80-\xff]/.test(s) || /[^\x00-\xff]/.test(s)) return s;
  const utf8 = Buffer.from(s, "latin1").toString("utf8");
  return utf8.includes("\ufffd") ? s : utf8;
}

export interface DnsOptions {
  /** HOST:PORT (or HOST) of each resolver; empty means the system's. */
  servers: string[];
  /** Milliseconds per try. */
  timeoutMs: number;
  tries: number;
  /**
   * Queries in flight at once (default 128). Beyond a few hundred outstanding UDP
   * queries, answers overflow the sockets' receive buffers even on loopback; each lost
   * answer then costs a full --timeout before the retry (seen at 64 zones x 6 checks).
   */
  maxInFlight?: number;
}

export interface CaaAnswer {
  critical: number;
  issue?: string;
  issuewild?: string;
  iodef?: string;
  [tag: string]: string | number | undefined;
}

/** A counting DNS client; `resolve` has dns.promises.resolve's signature (mailauth uses it). */
export class Dns {
  readonly servers: string[];
  queries = 0;
  /** The most queries seen in flight at once (for tests and the benchmark). */
  peakInFlight = 0;
  private readonly resolver: Resolver;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(opts: DnsOptions) {
    this.resolver = new Resolver({ timeout: opts.timeoutMs, tries: opts.tries });
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.servers = opts.servers.length > 0 ? opts.servers : getServers();
    this.resolver.setServers(this.servers);
  }

  /** Runs one query when a slot is free: at most maxInFlight at once. */
  private async slot<T>(query: () => Promise<T>): Promise<T> {
    // A finished query hands its slot straight to the next waiter, so the cap is exact.
    if (this.inFlight < this.maxInFlight) this.inFlight++;
    else await new Promise<void>((r) => this.waiting.push(r));
    this.queries++;
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlight);
    try {
      return await query();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }

  /** Raw query that throws Node's DNS errors (for mailauth's resolver option). */
  resolve = (name: string, type: string): Promise<unknown> => this.slot(() => this.resolver.resolve(name, type));

  private async answer<T>(run: () => Promise<T[]>): Promise<Answer<T>> {
    try {
      return { ok: true, records: await this.slot(run) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const empty = code ? EMPTY_CODES[code] : undefined;
      if (empty) return { ok: true, records: [], empty };
      return { ok: false, error: describeDnsError(code) };
    }
  }

  /** TXT records, each joined from its character-strings. */
  txt(name: string): Promise<Answer<string>> {
    return this.answer(async () => (await this.resolver.resolveTxt(name)).map((chunks) => txtBytesAsUtf8(chunks.join(""))));
  }

  /** MX records; a null MX (RFC 7505) comes back as exchange "" (FINDINGS.md). */
  mx(name: string): Promise<Answer<{ exchange: string; priority: number }>> {
    return this.answer(async () => (await this.resolver.resolveMx(name)).map(({ exchange, priority }) => ({ exchange, priority })));
  }

  caa(name: string): Promise<Answer<CaaAnswer>> {
    return this.answer(async () => (await this.resolver.resolveCaa(name)) as CaaAnswer[]);
  }

  cname(name: string): Promise<Answer<string>> {
    return this.answer(() => this.resolver.resolveCname(name));
  }
}
