// Plain views of the resources policies look at, and the argument objects the
// policies receive, built the same way for `pulumi preview` (by Pulumi), for
// `npm run plan` (from the desired state) and for the tests.
import { PROXY_TARGET, UNKNOWN_SENTINELS, UNKNOWN_STRING } from "./unknown.ts";
import type { PolicyResource, ReportViolation, ResourceValidationArgs, StackValidationArgs } from "@pulumi/policy";
// The proxy module itself, not the package's index: that loads @pulumi/pulumi, which costs
// `npm run plan` ~0.7 s and ~65 MB (5,000 zones). The same module the index re-exports, so
// the classes are the policy server's own.
// Both are @internal there (not in its typings), hence the require and the types here.
import { createRequire } from "node:module";
const sdkProxy = createRequire(import.meta.url)("@pulumi/policy/proxy.js") as {
  UnknownValueError: new (sentinel: string, props: PropertyKey[]) => Error;
  unknownCheckingProxy: <T extends object>(o: T) => T;
};
const { UnknownValueError, unknownCheckingProxy } = sdkProxy;

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
  /** Where its inputs unknown in a preview are (fromDesired): reading one throws, as in
   *  the policy server. Absent: every input is known. */
  unknowns?: "top" | "nested";
  /** Its top-level inputs that reference another resource's output, with that resource's
   *  name (fromDesired): the engine's propertyDependencies, so a policy can follow a
   *  reference that is unknown in a preview (a consumer's queueId to its Queue). */
  refs?: Record<string, string>;
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
    // As the policy server does (@pulumi/policy server.js): reading an input that is unknown
    // in a preview throws UnknownValueError, and the engine then reports the whole policy as
    // an advisory "can't run during preview". Policies read such inputs through known().
    // The SDK's own proxy where unknowns are nested; where they are only top-level (the
    // stack's tens of thousands of DNS records: their zoneId), one shallow proxy with a
    // shared handler, which throws the same (the SDK's wraps every object it hands out
    // again on each read: +0.8 s and +90 MB for `npm run plan` of 5,000 zones).
    props: (r.unknowns === "nested" ? unknownCheckingProxy(r.props) : r.unknowns === "top" ? new Proxy(r.props, TOP_LEVEL_UNKNOWNS) : r.props) as Record<string, any>,
    opts: NO_OPTS,
    parent,
    dependencies: NO_DEPENDENCIES,
    propertyDependencies: NO_PROPERTY_DEPENDENCIES,
    isType,
    asType,
  };
}

const TOP_LEVEL_UNKNOWNS: ProxyHandler<Record<string, unknown>> = {
  get(target, key) {
    if (key === PROXY_TARGET) return target;
    const v = target[key as string];
    if (v === UNKNOWN_STRING) throw new UnknownValueError(v, [key]);
    return v;
  },
};

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
  const out = resources.map((r) => policyResource(r, parents));
  // propertyDependencies, as the engine gives them: each referenced resource, by name.
  const withRefs = resources.flatMap((r, i) => (r.refs === undefined ? [] : [i]));
  if (withRefs.length > 0) {
    const byName = new Map(out.map((r) => [r.name, r]));
    for (const i of withRefs) {
      const deps: Record<string, PolicyResource[]> = {};
      for (const [prop, name] of Object.entries(resources[i]!.refs!)) {
        const target = byName.get(name);
        if (target !== undefined) deps[prop] = [target];
      }
      // Each PolicyResource here is this call's own object (policyResource builds it).
      out[i]!.propertyDependencies = deps;
      out[i]!.dependencies = Object.values(deps).flat();
    }
  }
  return { resources: out, stackTags: NO_TAGS, getConfig, notApplicable };
}

/** A report function that collects violations for one policy. */
export function collector(policy: string, into: Violation[]): ReportViolation {
  return (message: string, urn?: string) => into.push({ policy, message, resource: urn?.split("::").pop() });
}

/**
 * An input as a preview knows it: undefined while it is unknown (an output of a resource
 * not created yet, e.g. a new zone's id or a new queue's id). Reading it directly would
 * throw UnknownValueError and stop the policy for the whole stack in a real preview.
 */
export function known(props: Record<string, unknown>, key: string): unknown {
  // Through the proxy's target, not a caught throw: a throw per record costs a stack
  // trace each, tens of thousands in a big stack's preview.
  const raw = (props[PROXY_TARGET] as Record<string, unknown> | undefined) ?? props;
  const v = raw[key];
  return UNKNOWN_SENTINELS.has(v) ? undefined : v;
}

/** A policy that stopped on an unknown input: the engine's advisory, as a violation here. */
export function isUnknownValue(e: unknown): e is Error {
  return e instanceof UnknownValueError;
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
      zone: ((z) => (typeof z === "string" ? z : (r.parent?.name ?? "(unknown zone)")))(known(r.props, "zoneId")),
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
