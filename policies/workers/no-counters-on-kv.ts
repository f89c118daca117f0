// KV is eventually consistent and allows one write per second per key: a rate limiter
// or counter on it over-admits and loses updates. Durable Objects are the place.
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPE } from "../lib/resources.ts";

const COUNTER_NAME = /(rate|limit|throttl|counter|count|quota|budget|usage|tokens?_?bucket)/i;

export const noCountersOnKv: ResourceValidationPolicy = {
  name: "no-rate-limits-on-kv",
  description: "No rate limiter, counter or quota is kept in KV (eventually consistent, 1 write/s per key); use a Durable Object.",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== TYPE.workersScript) return;
    const bindings = Array.isArray(args.props.bindings) ? (args.props.bindings as Record<string, unknown>[]) : [];
    for (const b of bindings) {
      if (b.type === "kv_namespace" && COUNTER_NAME.test(String(b.name ?? ""))) {
        report(`${args.name}: KV binding '${b.name}' looks like a rate limiter or counter; keep it in a Durable Object`);
      }
    }
  },
};
