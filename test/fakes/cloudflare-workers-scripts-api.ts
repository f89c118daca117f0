// A FAKE of Cloudflare's Workers script API on 127.0.0.1 (tests only): the script upload
// (PUT multipart) with its Durable Object migration precondition, and the service read
// wrangler and edgefleet take the live migration tag from. Plus what the Pulumi provider
// does around it: `providerUpload` turns a cloudflare.WorkersScript's inputs into the
// upload the provider sends, `readBack` gives the state the provider reads back.
//
// The contract it enforces, and where each part comes from (checked 2026-11-27):
// - Envelope {success, errors:[{code, message}], messages, result}; a bad token answers
//   403 with code 10000 "Authentication error" (the API's documented envelope; the
//   code is the one the API returns for an invalid token).
// - GET /accounts/{a}/workers/services/{name}: result.default_environment.script
//   .migration_tag (absent when the script has none); a missing script is 404 with code
//   10090 "workers.api.error.service_not_found" (workers-sdk #3791). wrangler reads the
//   tag here (getMigrationsToUpload, node_modules/wrangler/wrangler-dist/cli.js 4.153.0).
// - PUT /accounts/{a}/workers/scripts/{name}: multipart form, part "metadata" (JSON) and
//   one part per module named as main_module refers to (the SDK's ScriptUpdateParams,
//   node_modules/cloudflare/resources/workers/scripts/scripts.d.ts).
// - metadata.migrations is either the flat single-step form {old_tag?, new_tag,
//   new_classes, new_sqlite_classes, deleted_classes, renamed_classes,
//   transferred_classes} or {old_tag?, new_tag, steps:[...]} (SDK: SingleStepMigration |
//   WorkersMultipleStepMigrations). old_tag must equal the script's current tag; a
//   missing old_tag means "the script has none": otherwise 10079 "Migration tag
//   precondition failed; current tag is 'v1'" (workers-sdk #705, #6953; pulumi-cloudflare
//   #1215; wrangler-legacy #1992: "--old-tag can only be omitted if the script doesn't
//   have a migration tag already"). An upload without migrations keeps the tag.
// - A durable_object_namespace binding (no script_name) to a class no migration created
//   is refused with 10061 "Cannot create binding for class 'X' because it is not
//   currently configured to implement Durable Objects" (reports quoted in public repos).
// - A step that creates a class that exists, or deletes/renames one that does not, is
//   refused. Cloudflare refuses these too; the code it uses was not checked, so the
//   fake answers 10021 and tests assert only that the upload fails.
// - Read-back forms (for the no-endless-diff test): an empty compatibility_flags is not
//   returned; observability {enabled} comes back with its defaults filled in:
//   head_sampling_rate 1 (Cloudflare's Workers Logs docs: "default = 1"), logs
//   {enabled, invocation_logs: true (logs "include invocation logs", same page),
//   head_sampling_rate 1, persist: true (terraform-provider-cloudflare
//   workers_script/schema.go: persist default true)}.
import { LoopbackFake, LoopbackServer } from "../support/loopback.ts";

export const FAKE_TOKEN = "cf-fake-token-scripts-0001";

export interface StoredScript {
  name: string;
  migrationTag: string | null;
  /** Durable Object classes the script implements, and their storage. */
  classes: Map<string, "kv" | "sqlite">;
  metadata: Record<string, unknown>;
  mainModule: string;
  content: string;
  uploads: number;
}

export interface UploadRecord {
  script: string;
  migrations: unknown;
  status: number;
  code?: number;
}

type Json = Record<string, unknown>;

const envelope = (result: unknown) => ({ success: true, errors: [], messages: [], result });
const failure = (code: number, message: string) => ({ success: false, errors: [{ code, message }], messages: [], result: null });

class Refusal extends Error {
  readonly status: number;
  readonly code: number;
  constructor(status: number, code: number, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class FakeWorkersScriptsApi extends LoopbackFake {
  readonly scripts = new Map<string, StoredScript>();
  readonly uploads: UploadRecord[] = [];
  /** GETs of the service endpoint, by script. */
  readonly tagReads: string[] = [];
  protected readonly server: LoopbackServer;

  readonly accountId: string;
  readonly token: string;

  constructor(accountId: string, token = FAKE_TOKEN) {
    super();
    this.accountId = accountId;
    this.token = token;
    this.server = new LoopbackServer(async (req, body, res) => {
      const send = (status: number, payload: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(payload));
      };
      if (req.headers.authorization !== `Bearer ${this.token}`) return send(403, failure(10000, "Authentication error"));
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const m = /^\/client\/v4\/accounts\/([^/]+)\/workers\/(services|scripts)\/([^/]+)$/.exec(url.pathname);
      if (!m || decodeURIComponent(m[1]!) !== this.accountId) return send(404, failure(7003, "Could not route to " + url.pathname + ", perhaps your object identifier is invalid?"));
      const name = decodeURIComponent(m[3]!);
      if (m[2] === "services" && req.method === "GET") {
        this.tagReads.push(name);
        const s = this.scripts.get(name);
        if (!s) return send(404, failure(10090, "workers.api.error.service_not_found"));
        return send(200, envelope({ id: name, default_environment: { environment: "production", script: { id: name, ...(s.migrationTag ? { migration_tag: s.migrationTag } : {}) } } }));
      }
      if (m[2] === "scripts" && req.method === "PUT") {
        const form = await new Request("http://fake/", { method: "PUT", headers: { "content-type": String(req.headers["content-type"]) }, body }).formData();
        const result = await this.upload(name, form);
        return send(result.status, result.body);
      }
      return send(405, failure(10000, `method ${req.method} not allowed`));
    });
  }

  get url(): string {
    return `${this.server.url}/client/v4`;
  }

  /** A script deployed by someone else (wrangler, the dashboard) before edgefleet. */
  seed(name: string, migrationTag: string | null, classes: Record<string, "kv" | "sqlite">): void {
    this.scripts.set(name, { name, migrationTag, classes: new Map(Object.entries(classes)), metadata: {}, mainModule: "index.js", content: "export default {}", uploads: 0 });
  }

  private async upload(name: string, form: FormData): Promise<{ status: number; body: unknown }> {
    const record: UploadRecord = { script: name, migrations: undefined, status: 200 };
    this.uploads.push(record);
    try {
      const metaPart = form.get("metadata");
      if (metaPart === null) throw new Refusal(400, 10021, "metadata part is required");
      const metadata = JSON.parse(typeof metaPart === "string" ? metaPart : await metaPart.text()) as Json;
      record.migrations = metadata.migrations;
      const mainModule = metadata.main_module;
      if (typeof mainModule !== "string") throw new Refusal(400, 10021, "main_module is required for a module Worker");
      const main = form.get(mainModule);
      if (main === null) throw new Refusal(400, 10021, `No such module "${mainModule}"`);
      const prev = this.scripts.get(name);
      const classes = new Map(prev?.classes ?? []);
      let tag = prev?.migrationTag ?? null;
      const migrations = metadata.migrations as Json | undefined;
      if (migrations) {
        const oldTag = (migrations.old_tag as string | undefined) ?? null;
        if (oldTag !== tag) throw new Refusal(400, 10079, `Migration tag precondition failed; current tag is '${tag ?? ""}'`);
        const steps = Array.isArray(migrations.steps) ? (migrations.steps as Json[]) : [migrations];
        for (const step of steps) applyStep(classes, step);
        if (typeof migrations.new_tag === "string") tag = migrations.new_tag;
      }
      for (const b of (metadata.bindings as Json[] | undefined) ?? []) {
        if (b.type !== "durable_object_namespace" || b.script_name) continue;
        if (!classes.has(String(b.class_name))) {
          throw new Refusal(400, 10061, `Cannot create binding for class '${String(b.class_name)}' because it is not currently configured to implement Durable Objects. Configure a migration in your Wrangler configuration to add this class.`);
        }
      }
      const content = typeof main === "string" ? main : await main.text();
      this.scripts.set(name, { name, migrationTag: tag, classes, metadata, mainModule, content, uploads: (prev?.uploads ?? 0) + 1 });
      return { status: 200, body: envelope({ id: name, ...(tag ? { migration_tag: tag } : {}), modified_on: new Date(0).toISOString() }) };
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      record.status = e.status;
      record.code = e.code;
      return { status: e.status, body: failure(e.code, e.message) };
    }
  }
}

function applyStep(classes: Map<string, "kv" | "sqlite">, step: Json): void {
  const list = (k: string) => ((step[k] as unknown[] | undefined) ?? []) as unknown[];
  const create = (c: string, storage: "kv" | "sqlite") => {
    if (classes.has(c)) throw new Refusal(400, 10021, `Cannot apply new-class migration to class '${c}', which already exists`);
    classes.set(c, storage);
  };
  for (const c of list("new_classes")) create(String(c), "kv");
  for (const c of list("new_sqlite_classes")) create(String(c), "sqlite");
  for (const r of list("renamed_classes") as { from: string; to: string }[]) {
    const storage = classes.get(r.from);
    if (!storage) throw new Refusal(400, 10021, `Cannot apply rename migration from '${r.from}', which does not exist`);
    classes.delete(r.from);
    create(r.to, storage);
  }
  for (const c of list("deleted_classes")) {
    if (!classes.delete(String(c))) throw new Refusal(400, 10021, `Cannot apply deleted_classes migration to class '${String(c)}', which does not exist`);
  }
}

// ------------------------------------------------------------- the provider's side

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
function toSnake(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toSnake);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [snake(k), toSnake(x)]));
  return v;
}

/**
 * The multipart upload the provider sends for a WorkersScript's inputs: every metadata
 * input in snake_case (terraform-provider-cloudflare workers_script MarshalMultipart,
 * which the bridged @pulumi/cloudflare runs), the content as the main module's part.
 */
export function providerUpload(inputs: Json): FormData {
  const { accountId: _a, scriptName: _s, content, ...meta } = inputs;
  const form = new FormData();
  form.set("metadata", new Blob([JSON.stringify(toSnake(meta))], { type: "application/json" }), "metadata.json");
  const main = String(inputs.mainModule);
  form.set(main, new Blob([String(content)], { type: "application/javascript+module" }), main);
  return form;
}

/** PUTs a WorkersScript's inputs to the fake as the provider would; the API's answer. */
export async function uploadAsProvider(api: FakeWorkersScriptsApi, inputs: Json, token = api.token): Promise<{ status: number; body: { success: boolean; errors: { code: number; message: string }[] } }> {
  const res = await fetch(`${api.url}/accounts/${api.accountId}/workers/scripts/${encodeURIComponent(String(inputs.scriptName))}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}` },
    body: providerUpload(inputs),
  });
  return { status: res.status, body: (await res.json()) as never };
}

/**
 * The provider's state for a WorkersScript after it uploaded `inputs` and read the script
 * back (Read: the service's script, its settings and its content): inputs as sent, with
 * the read-back forms above, the computed attributes and `migrationTag`.
 */
export function readBack(api: FakeWorkersScriptsApi, inputs: Json): Json {
  const s = api.scripts.get(String(inputs.scriptName));
  if (!s) throw new Error(`fake: ${String(inputs.scriptName)} was never uploaded`);
  const state: Json = { ...inputs, logpush: false, migrationTag: s.migrationTag ?? "" };
  const flags = s.metadata.compatibility_flags as string[] | undefined;
  if (flags && flags.length > 0) state.compatibilityFlags = [...flags];
  else delete state.compatibilityFlags;
  const o = s.metadata.observability as Json | undefined;
  if (o) {
    const rate = (o.head_sampling_rate as number | undefined) ?? 1;
    const logs = (o.logs as Json | undefined) ?? {};
    state.observability = {
      enabled: o.enabled,
      headSamplingRate: rate,
      logs: {
        enabled: logs.enabled ?? o.enabled,
        invocationLogs: logs.invocation_logs ?? true,
        headSamplingRate: logs.head_sampling_rate ?? rate,
        persist: logs.persist ?? true,
      },
    };
  }
  return state;
}

/** WorkersScript attributes the provider computes when they are not configured
 * (terraform-provider-cloudflare workers_script/schema.go: Optional + Computed). */
const COMPUTED = new Set(["compatibilityDate", "compatibilityFlags", "logpush", "bindings", "migrationTag", "placement"]);

/**
 * The properties a preview would show as changed for a WorkersScript: a configured
 * input that differs from the state, or a state value the config drops (unless the
 * provider computes it).
 */
export function scriptDiff(inputs: Json, state: Json): string[] {
  const changed: string[] = [];
  const keys = new Set([...Object.keys(inputs), ...Object.keys(state)]);
  for (const k of [...keys].sort()) {
    const want = inputs[k];
    const have = state[k];
    if (want === undefined) {
      if (have !== undefined && !COMPUTED.has(k)) changed.push(k);
      continue;
    }
    if (JSON.stringify(sorted(want)) !== JSON.stringify(sorted(have))) changed.push(k);
  }
  return changed;
}

function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sorted(x)]));
  return v;
}
