// Policy step: who is calling. Reads the edgefleet key from `x-api-key` or
// `Authorization: Bearer`, looks its SHA-256 up and compares hashes in constant time.
// Runs before the body is read, so an unauthenticated caller costs no body transfer.
import { sha256Hex, type TenantRecord } from "../tenant-record.ts";

export type AuthVerdict =
  | { ok: true; tenant: TenantRecord }
  | { ok: false; message: string };

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

/** Constant-time equality of two equal-length hex digests (workerd's timingSafeEqual). */
export function sameDigest(a: string, b: string): boolean {
  const enc = new TextEncoder();
  const x = enc.encode(a);
  const y = enc.encode(b);
  if (x.byteLength !== y.byteLength) return false;
  return crypto.subtle.timingSafeEqual(x, y);
}

export async function authenticate(
  headers: Headers,
  lookup: (keyHash: string) => Promise<TenantRecord | undefined>,
): Promise<AuthVerdict> {
  const key = presentedKey(headers);
  // The messages never echo what was presented: it may be a real secret sent by mistake.
  if (key === undefined) return { ok: false, message: "missing API key: send it in x-api-key or Authorization: Bearer" };
  const hash = await sha256Hex(key);
  const tenant = await lookup(hash);
  if (tenant === undefined || !sameDigest(tenant.keyHash, hash)) return { ok: false, message: "invalid API key" };
  if (!tenant.enabled) return { ok: false, message: "API key is disabled" };
  return { ok: true, tenant };
}
