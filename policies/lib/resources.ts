// Plain views of the resources policies look at, and the argument objects the
// policies receive, built the same way for `pulumi preview` (by Pulumi), for
// `npm run plan` (from the desired state) and for the tests.
import type { PolicyResource, ReportViolation, ResourceValidationArgs, StackValidationArgs } from "@pulumi/policy";

export const TYPE = {
  dnsRecord: "cloudflare:index/dnsRecord:DnsRecord",
  workersScript: "cloudflare:index/workersScript:WorkersScript",
  workersRoute: "cloudflare:index/workersRoute:WorkersRoute",
  workersCustomDomain: "cloudflare:index/workersCustomDomain:WorkersCustomDomain",
  queue: "cloudflare:index/queue:Queue",
  queueConsumer: "cloudflare:index/queueConsumer:QueueConsumer",
  r2Bucket: "cloudflare:index/r2Bucket:R2Bucket",
  r2BucketLifecycle: "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle",
} as const;

/** What a policy needs of a resource: its type token, logical name, inputs and parent. */
export interface PlainResource {
  type: string;
  name: string;
  props: Record<string, unknown>;
  parent?: string;
  urn?: string;
}

export interface Violation {
  policy: string;
  message: string;
  resource?: string;
}

function urnOf(r: PlainResource): string {
  return r.urn ?? `urn:pulumi:plan::edgefleet::${r.type}::${r.name}`;
}


// Shared, frozen parts: a stack of 50,000 records must not carry 50,000 copies.
const NO_OPTS = Object.freeze({}) as PolicyResource["opts"];
const NO_DEPENDENCIES: PolicyResource[] = Object.freeze([]) as unknown as PolicyResource[];
const NO_PROPERTY_DEPENDENCIES = Object.freeze({}) as Record<string, PolicyResource[]>;
const isType = () => false;
const asType = () => undefined;

function policyResource(r: PlainResource, parents?: Map<string, PolicyResource>): PolicyResource {
  let parent: PolicyResource | undefined;
  if (r.parent) {
    parent = parents?.get(r.parent);
    if (!parent) {
      parent = { name: r.parent } as PolicyResource;
      parents?.set(r.parent, parent);
    }
  }
  return {
    type: r.type,
    name: r.name,
    urn: urnOf(r),
    props: r.props as Record<string, any>,
    opts: NO_OPTS,
    parent,
    dependencies: NO_DEPENDENCIES,
    propertyDependencies: NO_PROPERTY_DEPENDENCIES,
    isType,
    asType,
  };
}

const notApplicable = (reason?: string): never => {
  throw new NotApplicable(reason);
};
class NotApplicable extends Error {}

const NO_TAGS: ReadonlyMap<string, string> = new Map();
const getConfig = <T extends object>() => ({}) as T;

export function resourceArgs(r: PlainResource): ResourceValidationArgs {
  const { type, name, urn, props, opts } = policyResource(r);
  return { type, name, urn, props, opts, stackTags: NO_TAGS, isType, asType, getConfig, notApplicable };
}

export function stackArgs(resources: PlainResource[]): StackValidationArgs {
  const parents = new Map<string, PolicyResource>();
  return { resources: resources.map((r) => policyResource(r, parents)), stackTags: NO_TAGS, getConfig, notApplicable };
}

/** A report function that collects violations for one policy. */
export function collector(policy: string, into: Violation[]): ReportViolation {
  return (message: string, urn?: string) => into.push({ policy, message, resource: urn?.split("::").pop() });
}

export function isNotApplicable(e: unknown): boolean {
  return e instanceof NotApplicable;
}

// ---------------------------------------------------------------- DNS helpers

export interface RecordView {
  /** The zone this record belongs to (its zone id when known, else its ZonePosture parent). */
  zone: string;
  name: string;
  type: string;
  content: string;
  proxied: boolean;
  data?: { flags?: number; tag?: string; value?: string };
  urn: string;
}

/** The DNS records of a stack, computed once per resource list (several policies read them). */
export function dnsRecords(resources: PolicyResource[]): RecordView[] {
  let views = recordViews.get(resources);
  if (!views) recordViews.set(resources, (views = toRecordViews(resources)));
  return views;
}
const recordViews = new WeakMap<PolicyResource[], RecordView[]>();

function toRecordViews(resources: PolicyResource[]): RecordView[] {
  return resources
    .filter((r) => r.type === TYPE.dnsRecord)
    .map((r) => ({
      zone: typeof r.props.zoneId === "string" ? r.props.zoneId : (r.parent?.name ?? "(unknown zone)"),
      name: String(r.props.name ?? ""),
      type: String(r.props.type ?? ""),
      content: typeof r.props.content === "string" ? r.props.content : "",
      proxied: r.props.proxied === true,
      data: r.props.data as RecordView["data"],
      urn: r.urn,
    }));
}

export function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const g = out.get(k);
    if (g) g.push(t);
    else out.set(k, [t]);
  }
  return out;
}

export const isSpf = (r: RecordView) => r.type === "TXT" && /^"?v=spf1(\s|"|$)/i.test(r.content);
/** TXT content may be sent quoted; compare values without the quotes. */
export const unquote = (s: string) => s.replace(/^"(.*)"$/s, "$1");
