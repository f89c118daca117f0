// GET /_edgefleet/status for operators: the running version id and a short SHA-256
// fingerprint of each provider secret. Key rotation polls it to see a new key is live.
// Authenticated with OPERATOR_TOKEN; never returns a secret.
import { PROVIDER_SECRETS, type Env } from "./env.ts";
import { sameDigest } from "./policy/auth.ts";
import { sha256Hex } from "./tenant-record.ts";

/** The first 12 hex digits of SHA-256: enough to tell keys apart, useless to an attacker. */
export async function fingerprint(secret: string): Promise<string> {
  return "sha256:" + (await sha256Hex(secret)).slice(0, 12);
}

export async function operatorAuthorized(headers: Headers, token: string | undefined): Promise<boolean> {
  if (token === undefined || token === "") return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(headers.get("authorization") ?? "");
  if (!m || m[1] === undefined) return false;
  // Compare digests so the comparison is constant-time whatever the lengths.
  return sameDigest(await sha256Hex(m[1]), await sha256Hex(token));
}

export async function statusBody(env: Env): Promise<unknown> {
  const secrets: Record<string, string | null> = {};
  for (const name of PROVIDER_SECRETS) {
    const v = env[name];
    secrets[name] = typeof v === "string" && v !== "" ? await fingerprint(v) : null;
  }
  return {
    worker: "edgefleet-llm-proxy",
    version: { id: env.VERSION?.id ?? null, tag: env.VERSION?.tag ?? null, timestamp: env.VERSION?.timestamp ?? null },
    secrets,
  };
}
