// What the plan reports about a desired state: counts by profile and record type,
// and findings an operator should read before `pulumi up`.
import { mailtoDomain } from "./dns.ts";
import type { DesiredState } from "./desired.ts";
import { TYPES } from "./names.ts";
import { caaBlockedCnames } from "./mail.ts";
import { owningZone, ruaOf } from "./posture.ts";
import type { Inventory } from "./schema.ts";

export interface Finding {
  level: "info" | "warning" | "error";
  /** Stable identifier, e.g. zone-created. */
  code: string;
  message: string;
  zones?: string[];
}

export interface Summary {
  zones: number;
  zonesByProfile: Record<string, number>;
  recordsByType: Record<string, number>;
  records: number;
  resources: number;
  zonesToCreate: number;
  ignoreRules: number;
}

function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of items) out[key(t)] = (out[key(t)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function summarize(state: DesiredState): Summary {
  const records = state.resources.filter((r) => r.type === TYPES.dnsRecord);
  return {
    zones: state.zones.length,
    zonesByProfile: countBy(state.zones, (z) => z.profile),
    recordsByType: countBy(records, (r) => String(r.inputs.type)),
    records: records.length,
    resources: state.resources.length,
    zonesToCreate: state.resources.filter((r) => r.type === TYPES.zone).length,
    ignoreRules: state.zones.reduce((n, z) => n + z.ignore.length, 0),
  };
}

function list(zones: string[], max = 5): string {
  return zones.length <= max ? zones.join(", ") : `${zones.slice(0, max).join(", ")} and ${zones.length - max} more`;
}

export function findings(inv: Inventory, state: DesiredState): Finding[] {
  const out: Finding[] = [];
  const toCreate = state.resources.filter((r) => r.type === TYPES.zone).map((r) => r.zone);
  if (toCreate.length > 0) {
    out.push({
      level: "info",
      code: "zone-created",
      message: `${toCreate.length} zone(s) have no id: pulumi up creates them (${list(toCreate)}); import existing zones instead of re-creating them`,
      zones: toCreate,
    });
  }
  const ignoring = state.zones.filter((z) => z.ignore.length > 0).map((z) => z.name);
  if (ignoring.length > 0) {
    out.push({
      level: "info",
      code: "left-alone",
      message: `${ignoring.length} zone(s) have records edgefleet leaves alone (${list(ignoring)})`,
      zones: ignoring,
    });
  }
  // Reports to a domain outside the fleet need the authorisation published there by hand.
  const names = new Set(inv.zones.map((z) => z.name));
  const outside = new Map<string, string[]>();
  for (const zone of inv.zones) {
    for (const rua of ruaOf(inv.fleet, zone)) {
      const domain = mailtoDomain(rua);
      if (!owningZone(names, domain) && domain !== zone.name) outside.set(domain, [...(outside.get(domain) ?? []), zone.name]);
    }
  }
  for (const [domain, zones] of outside) {
    out.push({
      level: "warning",
      code: "dmarc-report-authorisation",
      message: `${zones.length} zone(s) send DMARC reports to ${domain}, which is not in this fleet: publish '*._report._dmarc.${domain} TXT "v=DMARC1"' there (${list(zones)})`,
      zones,
    });
  }
  // Issue 15.5: a CNAME to an outside service in a zone whose CAA lets no CA issue.
  for (const f of caaBlockedCnames(inv)) {
    const names = f.names.map((n) => `${n.name === "@" ? f.zone : `${n.name}.${f.zone}`} -> ${n.target}`);
    out.push({
      level: "warning",
      code: "caa-blocks-cname-target",
      message: `${f.zone}: CAA 'issue ";"' at the apex lets no CA issue for ${names.join(", ")}: a CA follows the CNAME and, finding no CAA at the target, climbs to the apex (RFC 8659 3). If the service needs a certificate for the name, add its CA to overrides.caa.issue of ${f.zone} (e.g. issue: [letsencrypt.org]).`,
      zones: [f.zone],
    });
  }
  return out;
}

/** One store or trigger the Workers need, as the plan lists it. */
export interface WorkerStore {
  /** What it is: "KV namespace", "R2 bucket", "D1 database", "Queue", "Queue consumer", "Cron trigger". */
  kind: string;
  /** Its Cloudflare name (for a consumer: "<queue> -> <script>"; a cron: the script). */
  name: string;
  /** Who binds it and how, its settings, its lifecycle. */
  detail: string;
}

type Bound = { type: string; name: string; bucketName?: string; queueName?: string; namespaceId?: { $ref?: string }; id?: { $ref?: string } };

/** Who a consumer delivers to: its script, or, for an HTTP pull consumer, the command that pulls. */
function consumerName(c: { inputs: Record<string, unknown> }): string {
  return c.inputs.type === "http_pull" ? "HTTP pull (npm run dead-letters)" : String(c.inputs.scriptName);
}

/**
 * The Workers' stores and triggers in a desired state: KV namespaces, R2 buckets (and
 * their retention), D1 databases, Queues (who produces, who consumes), consumers with
 * their settings and dead-letter queue, Cron Triggers. Linear in the Workers' resources;
 * no per-zone work.
 */
export function workerStores(state: DesiredState): WorkerStore[] {
  const scripts = state.resources.filter((r) => r.type === TYPES.workersScript);
  // Each store's name -> the "BINDING by script" that name it.
  const users = new Map<string, string[]>();
  const use = (key: string, who: string) => users.set(key, [...(users.get(key) ?? []), who]);
  for (const s of scripts) {
    for (const b of (s.inputs.bindings ?? []) as Bound[]) {
      const who = `${b.name} by ${String(s.inputs.scriptName)}`;
      if (b.type === "r2_bucket" && b.bucketName) use(`r2:${b.bucketName}`, who);
      if (b.type === "queue" && b.queueName) use(`queue:${b.queueName}`, who);
      if (b.type === "kv_namespace" && b.namespaceId?.$ref) use(`ref:${b.namespaceId.$ref}`, who);
      if (b.type === "d1" && b.id?.$ref) use(`ref:${b.id.$ref}`, who);
    }
  }
  const list = (key: string, verb: string) => {
    const u = users.get(key) ?? [];
    if (u.length === 0) return "";
    const kinds = [...new Set(u.map((x) => x.split(" by ")[0]))].join("/");
    return u.length > 2 ? `${verb} as ${kinds} by ${u.length} Workers` : `${verb} as ${u.join(", ")}`;
  };
  const consumers = state.resources.filter((r) => r.type === TYPES.queueConsumer);
  const out: WorkerStore[] = [];
  for (const r of state.resources) {
    const i = r.inputs as Record<string, unknown>;
    switch (r.type) {
      case TYPES.workersKvNamespace:
        out.push({ kind: "KV namespace", name: String(i.title), detail: list(`ref:${r.name}`, "bound") || "-" });
        break;
      case TYPES.r2Bucket: {
        const lifecycle = state.resources.find((l) => l.type === TYPES.r2BucketLifecycle && l.inputs.bucketName === i.name);
        const rule = (lifecycle?.inputs.rules as { deleteObjectsTransition?: { condition?: { maxAge?: number } } }[] | undefined)?.[0];
        const age = rule?.deleteObjectsTransition?.condition?.maxAge;
        const keep = age !== undefined ? `lifecycle: objects deleted after ${age / 86_400} days` : "no lifecycle: objects kept";
        out.push({ kind: "R2 bucket", name: String(i.name), detail: [list(`r2:${String(i.name)}`, "bound"), keep].filter(Boolean).join("; ") });
        break;
      }
      case TYPES.d1Database:
        out.push({ kind: "D1 database", name: String(i.name), detail: [list(`ref:${r.name}`, "bound"), "schema: npm run d1-migrations"].filter(Boolean).join("; ") });
        break;
      case TYPES.queue: {
        const q = String(i.queueName);
        const consumedBy = consumers.filter((c) => (c.inputs.queueId as { $ref?: string } | undefined)?.$ref === r.name).map(consumerName);
        const dlqOf = consumers.filter((c) => c.inputs.deadLetterQueue === q).map((c) => `dead-letter queue of ${String(c.inputs.scriptName)}`);
        const retention = (i.settings as { messageRetentionPeriod?: number } | undefined)?.messageRetentionPeriod;
        const kept = retention !== undefined ? `messages kept ${retention / 86_400} days` : "";
        const parts = [list(`queue:${q}`, "produced"), consumedBy.length ? `consumed by ${consumedBy.join(", ")}` : "", ...dlqOf, kept];
        out.push({ kind: "Queue", name: q, detail: parts.filter(Boolean).join("; ") || "-" });
        break;
      }
      case TYPES.queueConsumer: {
        const s = (i.settings ?? {}) as { batchSize?: number; maxWaitTimeMs?: number; maxRetries?: number; retryDelay?: number; maxConcurrency?: number; visibilityTimeoutMs?: number };
        const queue = String((i.queueId as { $ref?: string }).$ref ?? "").replace(/^queue\//, "");
        const parts = [
          s.batchSize !== undefined ? `batch ${s.batchSize}` : "",
          s.maxWaitTimeMs !== undefined ? `wait ${s.maxWaitTimeMs / 1000} s` : "",
          s.maxRetries !== undefined ? `${s.maxRetries} retries` : "",
          s.retryDelay !== undefined ? `retry delay ${s.retryDelay} s` : "",
          s.maxConcurrency !== undefined ? `concurrency ${s.maxConcurrency}` : "",
          s.visibilityTimeoutMs !== undefined ? `visibility timeout ${s.visibilityTimeoutMs / 1000} s` : "",
          i.deadLetterQueue ? `DLQ ${String(i.deadLetterQueue)}` : "no DLQ",
        ];
        out.push({ kind: "Queue consumer", name: `${queue} -> ${consumerName(r)}`, detail: parts.filter(Boolean).join(", ") });
        break;
      }
      case TYPES.workersCronTrigger:
        out.push({ kind: "Cron trigger", name: String(i.scriptName), detail: (i.schedules as { cron: string }[]).map((s) => s.cron).join(", ") });
        break;
    }
  }
  return out;
}
