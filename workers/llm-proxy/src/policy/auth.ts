// Policy step: who is calling. Reads the edgefleet key from `x-api-key` or
// `Authorization: Bearer`, looks its SHA-256 up and compares hashes in constant time.
// Runs before the body is read, so an unauthenticated caller costs no body transfer.
import { sha256Hex, type TenantRecord } from "../tenant-record.ts";

export type AuthVerdict =
  | { ok: true; tenant: TenantRecord }
  | { ok: false; message: string; /** A key was presented (and looked up): counts as a failed attempt. */ presented: boolean };

export function presentedKey(headers: Headers): string | undefined {
  const x = headers.get("x-api-key");
  if (x !== null && x.trim() !== "") return x.trim();
  const auth = headers.get("authorization");
  if (auth !== null) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * Equality of two hex digests in time independent of where they differ: every character
 * is compared, with no early exit (only the length, which is public, can end it early).
 * Done in JavaScript: encoding both strings for workerd's timingSafeEqual cost ~10 µs per
 * call (`npm run bench:proxy-profile`), this ~0.1.
 */
export function sameDigest(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export async function authenticate(
  headers: Headers,
  lookup: (keyHash: string) => Promise<TenantRecord | undefined>,
): Promise<AuthVerdict> {
  const key = presentedKey(headers);
  // The messages never echo what was presented: it may be a real secret sent by mistake.
  if (key === undefined) return { ok: false, presented: false, message: "missing API key: send it in x-api-key or Authorization: Bearer" };
  const hash = await sha256Hex(key);
  const tenant = await lookup(hash);
  if (tenant === undefined || !sameDigest(tenant.keyHash, hash)) return { ok: false, presented: true, message: "invalid API key" };
  if (!tenant.enabled) return { ok: false, presented: true, message: "API key is disabled" };
  return { ok: true, tenant };
}

/**
 * Whom failed authentications are counted against: the client address Cloudflare puts in
 * CF-Connecting-IP (set by the edge, not by the client; Miniflare sets it too), an IPv6
 * address by its /64 (one subscriber's usual allocation, so rotating the low bits does
 * not escape the count). "unknown" when absent.
 */
export function clientAddress(headers: Headers): string {
  const ip = (headers.get("cf-connecting-ip") ?? "").trim().toLowerCase();
  if (ip === "") return "unknown";
  if (!ip.includes(":")) return ip;
  // An IPv4-mapped IPv6 address is its IPv4 address (else all of them would share a /64).
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped) return mapped[1]!;
  // Expand "::" and keep the first four groups.
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") + "::/64";
}
