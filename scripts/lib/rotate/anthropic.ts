// The provider side of an Anthropic key rotation, through `@anthropic-ai/sdk`:
// - verify: the new key works, with GET /v1/models (costs nothing: no tokens);
// - find: the old key's id in the Admin API's key list (GET /v1/organizations/api_keys,
//   paginated), matched by its `partial_key_hint` ("sk-ant-api03-R2D...igAA");
// - revoke: POST /v1/organizations/api_keys/{id} {"status":"inactive"}.
// Every request carries the key in `x-api-key`, the header Anthropic's API reference
// documents (last verified November 2026); SDK 1.12 would otherwise send the key as
// `Authorization: Bearer`, so that header is removed explicitly.
import Anthropic from "@anthropic-ai/sdk";

/**
 * A key at the provider, as the rotation keeps it: the id and name only. The Admin API's
 * `partial_key_hint` (the first 16 and last 4 characters of the key, e.g.
 * "sk-ant-api03-R2D...igAA"; @anthropic-ai/sdk resources/admin/organizations/api-keys.d.ts)
 * is used to find the key and then dropped: it never reaches output, events or the journal,
 * which name keys by id and by the fingerprint of the key the operator gave.
 */
export interface ProviderKey {
  id: string;
  status: string;
  name: string;
}

export interface KeyProvider {
  /** Throws ProviderError when the key does not work. */
  verify(key: string): Promise<void>;
  /** The one active key whose hint matches `oldKey` and not `newKey`. */
  findKey(oldKey: string, newKey: string): Promise<ProviderKey>;
  status(id: string): Promise<string>;
  revoke(id: string): Promise<void>;
}

export class ProviderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProviderError";
  }
}

export interface AnthropicOptions {
  /** Admin key (ANTHROPIC_ADMIN_KEY); needed for findKey/status/revoke only. */
  adminKey?: string;
  baseURL?: string;
  maxRetries?: number;
  timeoutMs?: number;
}

function client(key: string, o: AnthropicOptions): Anthropic {
  return new Anthropic({
    apiKey: key,
    // x-api-key is the documented header; null removes the Bearer header the SDK adds.
    defaultHeaders: { "x-api-key": key, authorization: null },
    baseURL: o.baseURL ?? "https://api.anthropic.com",
    maxRetries: o.maxRetries ?? 3,
    timeout: o.timeoutMs ?? 30_000,
    logLevel: "off",
  });
}

/** Does `key` fit the hint "prefix...suffix" the Admin API shows for a key? */
export function matchesHint(key: string, hint: string): boolean {
  const i = hint.indexOf("...");
  if (i < 0) return false;
  const prefix = hint.slice(0, i);
  const suffix = hint.slice(i + 3);
  return key.length >= prefix.length + suffix.length && key.startsWith(prefix) && key.endsWith(suffix);
}

function explain(e: unknown, what: string): ProviderError {
  if (e instanceof Anthropic.APIError) {
    const status = e.status;
    if (status === 401) return new ProviderError(`${what}: Anthropic rejected the key (HTTP 401)`);
    if (status === 403) return new ProviderError(`${what}: the key lacks permission (HTTP 403)`);
    if (status === undefined) return new ProviderError(`${what}: no answer from Anthropic (${e.message})`);
    return new ProviderError(`${what}: HTTP ${status}`);
  }
  return new ProviderError(`${what}: ${(e as Error).message}`);
}

export function anthropicProvider(o: AnthropicOptions): KeyProvider {
  const admin = () => {
    if (!o.adminKey) throw new ProviderError("no Anthropic admin key (set ANTHROPIC_ADMIN_KEY) to find and revoke the old key; or pass --keep-old");
    return client(o.adminKey, o);
  };
  return {
    async verify(key) {
      try {
        await client(key, o).models.list({ limit: 1 });
      } catch (e) {
        throw explain(e, "the new key does not work");
      }
    },
    async findKey(oldKey, newKey) {
      const found: ProviderKey[] = [];
      let newMatches = 0;
      try {
        for await (const k of admin().organization.apiKeys.list({ limit: 100 })) {
          if (!k.partial_key_hint) continue;
          const o = matchesHint(oldKey, k.partial_key_hint);
          const n = matchesHint(newKey, k.partial_key_hint);
          if (o && n) newMatches++;
          if (o && !n && k.status === "active") found.push({ id: k.id, status: k.status, name: k.name });
        }
      } catch (e) {
        if (e instanceof ProviderError) throw e;
        throw explain(e, "listing the organization's API keys");
      }
      if (found.length === 1) return found[0]!;
      if (found.length === 0) {
        throw new ProviderError(
          newMatches > 0
            ? "the old and the new key share one key hint: the Admin API cannot tell them apart, so the old key cannot be revoked safely (use --keep-old and disable it in the Console)"
            : "no active key of the organization matches the old key (is it already disabled, or from another organization?)",
        );
      }
      throw new ProviderError(`${found.length} active keys match the old key's hint (${found.map((k) => k.id).join(", ")}): refusing to guess which to revoke`);
    },
    async status(id) {
      try {
        return (await admin().organization.apiKeys.retrieve(id)).status;
      } catch (e) {
        if (e instanceof ProviderError) throw e;
        throw explain(e, `reading key ${id}`);
      }
    },
    async revoke(id) {
      try {
        const k = await admin().organization.apiKeys.update(id, { status: "inactive" });
        if (k.status !== "inactive") throw new ProviderError(`key ${id} is ${k.status} after the update, not inactive`);
      } catch (e) {
        if (e instanceof ProviderError) throw e;
        throw explain(e, `disabling key ${id}`);
      }
    },
  };
}
