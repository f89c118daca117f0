// Compliant resources for the policy tests: each test changes one thing of these.
import { deriveDesiredState } from "../../stacks/model/desired.ts";
import { inventory } from "../../test/support/inventory.ts";
import { fromDesired } from "./from-desired.ts";
import { TYPE, type PlainResource } from "./resources.ts";

/** The records of a parked zone and a proxied web zone, exactly as edgefleet derives them. */
export function compliantZones(): PlainResource[] {
  const state = deriveDesiredState(inventory(), { accountId: "acct" });
  return fromDesired(state).filter((r) => r.type === TYPE.dnsRecord && (r.parent === "parked-one.example" || r.parent === "site.example"));
}

export function compliantWorker(): PlainResource {
  return {
    type: TYPE.workersScript,
    name: "llm-proxy",
    props: {
      scriptName: "edgefleet-llm-proxy",
      compatibilityDate: "2026-11-01",
      compatibilityFlags: ["nodejs_compat"],
      bindings: [
        { type: "secret_text", name: "ANTHROPIC_API_KEY", text: "sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
        { type: "plain_text", name: "UPSTREAM_URL", text: "https://api.anthropic.com" },
        { type: "kv_namespace", name: "TENANTS", namespaceId: "ns1" },
        { type: "durable_object_namespace", name: "RATE_LIMITER", className: "RateLimiter" },
        { type: "durable_object_namespace", name: "OTHER", className: "Elsewhere", scriptName: "other-worker" },
      ],
      migrations: { newTag: "v1", newSqliteClasses: ["RateLimiter"] },
    },
  };
}

/** A copy of the list with the matching resources' props changed. */
export function changed(resources: PlainResource[], match: (r: PlainResource) => boolean, change: (props: Record<string, unknown>) => Record<string, unknown>): PlainResource[] {
  return resources.map((r) => (match(r) ? { ...r, props: change(structuredClone(r.props)) } : r));
}

export const named = (suffix: string) => (r: PlainResource) => r.name.endsWith(suffix);
