// Reads a Worker script's live Durable Object migration tag, the one thing the Pulumi
// program reads from the live account: the Worker component needs it to send
// `old_tag` and only the migrations after it (stacks/model/migrations.ts says why;
// docs/deploys.md says why at program time rather than from the stack's state).
//
// Same request as wrangler's getMigrationsToUpload (node_modules/wrangler/wrangler-dist/
// cli.js, 4.153.0): GET /accounts/{account}/workers/services/{script}, tag at
// result.default_environment.script.migration_tag; a missing script answers 404 with
// code 10090 "workers.api.error.service_not_found" (workers-sdk #3791), and wrangler
// treats 10007, 10090 and 10092 as "no script". Through the official `cloudflare` SDK
// (auth, retries on 429/5xx, a configurable base URL for the fakes).
import { cloudflareClient } from "./model/cloudflare-client.ts";
import Cloudflare, { APIError } from "cloudflare";

/** The live migration tag of a script, or null when the script or its tag does not exist. */
export type MigrationTagReader = (script: string) => Promise<string | null>;

const NOT_FOUND_CODES = new Set([10007, 10090, 10092]);

export interface MigrationTagOptions {
  accountId: string;
  /** Resolves to the API token (or undefined when none is configured). */
  apiToken: () => Promise<string | undefined>;
  /** The Cloudflare API base URL (default: the SDK's, https://api.cloudflare.com/client/v4). */
  baseURL?: string;
  maxRetries?: number;
  timeoutMs?: number;
}

interface ServiceEnvelope {
  result?: { default_environment?: { script?: { migration_tag?: string | null } } } | null;
}

export class MigrationTagError extends Error {}

/** A reader that asks the API once per script per program run (cached). */
export function cloudflareMigrationTags(o: MigrationTagOptions): MigrationTagReader {
  const cache = new Map<string, Promise<string | null>>();
  let client: Promise<Cloudflare> | undefined;
  const cf = () =>
    (client ??= o.apiToken().then((apiToken) => {
      if (!apiToken) {
        throw new MigrationTagError(
          "edgefleet reads each Durable Object Worker's live migration tag before it uploads the script (docs/deploys.md), and has no API token: set cloudflare:apiToken (pulumi config set --secret cloudflare:apiToken) or CLOUDFLARE_API_TOKEN",
        );
      }
      return cloudflareClient({ apiToken, maxRetries: o.maxRetries ?? 2, timeout: o.timeoutMs ?? 30_000, baseURL: o.baseURL });
    }));
  const read = async (script: string): Promise<string | null> => {
    const client = await cf();
    try {
      const body = (await client.get(`/accounts/${encodeURIComponent(o.accountId)}/workers/services/${encodeURIComponent(script)}`)) as ServiceEnvelope;
      return body.result?.default_environment?.script?.migration_tag || null;
    } catch (e) {
      if (e instanceof APIError) {
        const codes = (e.errors as { code?: number }[]).map((x) => x.code);
        if (e.status === 404 && (codes.length === 0 || codes.some((c) => c !== undefined && NOT_FOUND_CODES.has(c)))) return null;
        // The SDK's message is the status and the API's errors; it never holds the token.
        throw new MigrationTagError(`cannot read the live migration tag of Worker '${script}': ${e.message}`);
      }
      throw new MigrationTagError(`cannot read the live migration tag of Worker '${script}': ${(e as Error).message}`);
    }
  };
  return (script) => {
    let hit = cache.get(script);
    if (!hit) cache.set(script, (hit = read(script)));
    return hit;
  };
}
