// The mail-receipt checks of `npm run verify` (issue 15.6): MTA-STS (RFC 8461) and
// TLS-RPT (RFC 8460), read as a sending MTA reads them: the _mta-sts TXT record, the
// policy fetched over HTTPS from mta-sts.<zone> without following redirects, the live
// MX hosts against the policy's mx patterns, and the _smtp._tls TXT record.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { MTA_STS_PATH } from "../../../stacks/model/mail.ts";
import type { Dns } from "./dns.ts";

/** What a policy fetch saw. */
export interface PolicyResponse {
  status: number;
  contentType: string;
  location?: string;
  body: string;
  /** The body was longer than MAX_POLICY_BYTES and was cut there. */
  truncated: boolean;
}

/** Fetches https://<host><path>; rejects when no answer came (a network or TLS failure). */
export type PolicyFetcher = (host: string, path: string) => Promise<PolicyResponse>;

/** RFC 8461 3.3 lets senders cap the policy body; 64 KiB is the limit senders use. */
export const MAX_POLICY_BYTES = 64 * 1024;

export interface FetcherOptions {
  timeoutMs: number;
  /**
   * Fetch from this origin instead of https://<host> (the Host header still names the
   * policy host): `npm run dev:router`, a staging router, the tests. Production leaves it
   * unset, so the certificate is checked against mta-sts.<zone> as senders check it.
   */
  origin?: string;
}

export function policyFetcher(opts: FetcherOptions): PolicyFetcher {
  return (host, path) =>
    new Promise<PolicyResponse>((resolve, reject) => {
      const url = opts.origin ? new URL(path, opts.origin) : new URL(`https://${host}${path}`);
      const request = url.protocol === "http:" ? httpRequest : httpsRequest;
      // Node's https checks the certificate (rejectUnauthorized is on) and never follows redirects.
      const req = request(url, { method: "GET", headers: { host, accept: "text/plain", "user-agent": "edgefleet-verify" }, timeout: opts.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let truncated = false;
        res.on("data", (c: Buffer) => {
          if (size + c.length > MAX_POLICY_BYTES) {
            truncated = true;
            chunks.push(c.subarray(0, MAX_POLICY_BYTES - size));
            size = MAX_POLICY_BYTES;
            res.destroy();
            finish();
            return;
          }
          size += c.length;
          chunks.push(c);
        });
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers["content-type"] ?? ""), location: res.headers.location, body: Buffer.concat(chunks).toString("utf8"), truncated });
        };
        res.on("end", finish);
        res.on("error", (e) => (done ? undefined : reject(e)));
      });
      req.on("timeout", () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
      req.on("error", reject);
      req.end();
    });
}

/** The fields of a policy (RFC 8461 3.2): key: value lines, LF or CRLF; mx may repeat. */
export interface ParsedPolicy {
  version?: string;
  mode?: string;
  maxAge?: string;
  mx: string[];
  /** Lines that are not key: value. */
  bad: string[];
}

export function parsePolicy(text: string): ParsedPolicy {
  const out: ParsedPolicy = { mx: [], bad: [] };
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const m = /^([A-Za-z0-9_.-]{1,32}):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!m) {
      out.bad.push(line);
      continue;
    }
    const [, key, value] = m as unknown as [string, string, string];
    if (key === "mx") out.mx.push(value.toLowerCase());
    else if (key === "version") out.version ??= value;
    else if (key === "mode") out.mode ??= value;
    else if (key === "max_age") out.maxAge ??= value;
  }
  return out;
}

/** RFC 8461 4.1: an mx pattern matches an MX host exactly, or '*.' matches one leftmost label. */
export function mxMatches(pattern: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  const p = pattern.toLowerCase().replace(/\.$/, "");
  if (p.startsWith("*.")) {
    const rest = p.slice(2);
    const dot = h.indexOf(".");
    return dot > 0 && h.slice(dot + 1) === rest;
  }
  return h === p;
}

/** The id of an RFC 8461 3.1 record, if the record is one: `v=STSv1;` first, then fields. */
export function stsRecordId(txt: string): { id?: string; valid: boolean } {
  if (!/^v=STSv1\s*;/.test(txt)) return { valid: false };
  const fields = txt.split(";").slice(1).map((f) => f.trim()).filter(Boolean);
  const id = fields.find((f) => f.startsWith("id="))?.slice(3);
  return { id, valid: id !== undefined && /^[A-Za-z0-9]{1,32}$/.test(id) };
}

export interface MtaStsExpectation {
  host: string;
  id: string;
  /** The exact policy text the router should serve. */
  policy: string;
}

export interface MailCheck {
  status: "pass" | "drift" | "error" | "skip";
  problems: string[];
  details: string[];
}

const result = (problems: string[], details: string[], errors: string[]): MailCheck => ({
  status: problems.length > 0 ? "drift" : errors.length > 0 ? "error" : "pass",
  problems: problems.length > 0 ? problems : errors,
  details,
});

export async function checkMtaSts(dns: Dns, zone: string, want: MtaStsExpectation | undefined, fetch: PolicyFetcher): Promise<MailCheck> {
  if (!want) return { status: "skip", problems: [], details: ["receives no mail: no MTA-STS"] };
  const problems: string[] = [];
  const errors: string[] = [];
  const details: string[] = [];
  const name = `_mta-sts.${zone}`;
  const [txt, mx] = await Promise.all([dns.txt(name), dns.mx(zone)]);
  if (!txt.ok) errors.push(`TXT ${name}: ${txt.error}`);
  else {
    // RFC 8461 3.1: records not starting with v=STSv1; are discarded; not exactly one left means no MTA-STS.
    const sts = txt.records.filter((r) => /^v=STSv1\s*;/.test(r));
    details.push(...sts.map((r) => `${name}: ${r}`));
    if (sts.length === 0) problems.push(`no MTA-STS record at ${name} (${txt.empty ?? "no v=STSv1 TXT"}): senders see no policy; declared 'v=STSv1; id=${want.id}'`);
    else if (sts.length > 1) problems.push(`${sts.length} MTA-STS records at ${name}: senders must then assume no MTA-STS (RFC 8461 3.1)`);
    else {
      const { id, valid } = stsRecordId(sts[0]!);
      if (!valid) problems.push(`'${sts[0]}' has no valid id (RFC 8461 3.1: id= 1 to 32 letters and digits): senders ignore it`);
      else if (id !== want.id) problems.push(`id=${id}; declared id=${want.id}: the policy changed without its id (or the other way round), so senders keep a stale policy`);
    }
  }
  let res: PolicyResponse | undefined;
  const url = `https://${want.host}${MTA_STS_PATH}`;
  try {
    res = await fetch(want.host, MTA_STS_PATH);
  } catch (e) {
    errors.push(`GET ${url}: ${(e as Error).message}`);
  }
  if (res) {
    details.push(`GET ${url}: ${res.status} ${res.contentType || "(no content type)"}`);
    if (res.status >= 300 && res.status < 400) problems.push(`GET ${url} redirects (${res.status} to ${res.location ?? "?"}): senders never follow redirects (RFC 8461 3.3), so they find no policy`);
    else if (res.status !== 200) problems.push(`GET ${url} answers ${res.status}: senders find no policy (RFC 8461 3.3)`);
    else {
      if (!/^text\/plain\s*(;|$)/i.test(res.contentType)) problems.push(`the policy is served as '${res.contentType || "(none)"}'; RFC 8461 3.2 requires text/plain`);
      if (res.truncated) problems.push(`the policy is larger than ${MAX_POLICY_BYTES} bytes: senders stop reading it`);
      const got = parsePolicy(res.body);
      const declared = parsePolicy(want.policy);
      if (got.version !== "STSv1") problems.push(`the policy's version is '${got.version ?? "(absent)"}', not STSv1 (RFC 8461 3.2)`);
      if (got.mode !== declared.mode) problems.push(`the policy's mode is '${got.mode ?? "(absent)"}'; declared '${declared.mode}'`);
      if (got.maxAge !== declared.maxAge) problems.push(`the policy's max_age is ${got.maxAge ?? "(absent)"}; declared ${declared.maxAge}`);
      const missing = declared.mx.filter((m) => !got.mx.includes(m));
      const extra = got.mx.filter((m) => !declared.mx.includes(m));
      if (missing.length > 0) problems.push(`the policy lacks mx: ${missing.join(", ")}`);
      if (extra.length > 0) problems.push(`the policy allows undeclared mx: ${extra.join(", ")}`);
      if (got.bad.length > 0) problems.push(`the policy has lines that are not 'key: value': ${got.bad.slice(0, 3).map((l) => `'${l.slice(0, 40)}'`).join(", ")}`);
      if (problems.length === 0 && res.body !== want.policy) problems.push("the served policy's text differs from the declared one (its id then names another policy)");
      // RFC 8461 4.1: in enforce mode a sender delivers only to MX hosts a pattern matches.
      if (mx.ok && got.mx.length > 0) {
        const unmatched = mx.records.filter((r) => r.exchange !== "" && !got.mx.some((p) => mxMatches(p, r.exchange))).map((r) => r.exchange);
        if (unmatched.length > 0) problems.push(`live MX ${unmatched.join(", ")} matches no mx of the policy: in enforce mode senders refuse to deliver there (RFC 8461 4.1)`);
      } else if (!mx.ok) errors.push(`MX ${zone}: ${mx.error}`);
    }
  }
  return result(problems, details, errors);
}

export async function checkTlsRpt(dns: Dns, zone: string, want: string | undefined): Promise<MailCheck> {
  if (!want) return { status: "skip", problems: [], details: ["receives no mail: no TLS-RPT"] };
  const name = `_smtp._tls.${zone}`;
  const a = await dns.txt(name);
  if (!a.ok) return { status: "error", problems: [`TXT ${name}: ${a.error}`], details: [] };
  // RFC 8460 3: records not starting with v=TLSRPTv1; are discarded; not exactly one left means no reporting.
  const records = a.records.filter((r) => /^v=TLSRPTv1\s*;/.test(r));
  const problems: string[] = [];
  if (records.length === 0) problems.push(`no TLS-RPT record at ${name} (${a.empty ?? "no v=TLSRPTv1 TXT"}): senders send no TLS reports`);
  else if (records.length > 1) problems.push(`${records.length} TLS-RPT records at ${name}: senders then send no reports (RFC 8460 3)`);
  else {
    const rua = (r: string) => (/(?:^|;)\s*rua=([^;]*)/.exec(r)?.[1] ?? "").split(",").map((u) => u.trim().toLowerCase()).filter(Boolean).sort().join(",");
    if (rua(records[0]!) !== rua(want)) problems.push(`rua=${rua(records[0]!) || "(absent)"}; declared rua=${rua(want)}`);
  }
  return result(problems, records.map((r) => `${name}: ${r}`), []);
}
