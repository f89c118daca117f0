import { describe, expect, it } from "vitest";
import { compliantWorker } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { noCountersOnKv } from "./no-counters-on-kv.ts";

describe("no-rate-limits-on-kv", () => {
  it("passes a KV namespace used as a store", async () => {
    expect(await runPolicies([compliantWorker()], [noCountersOnKv])).toEqual([]);
  });
  it("flags a KV binding that is a rate limiter", async () => {
    const w = compliantWorker();
    (w.props.bindings as unknown[]).push({ type: "kv_namespace", name: "RATE_LIMITS", namespaceId: "ns2" });
    const v = await runPolicies([w], [noCountersOnKv]);
    expect(v.map((x) => x.message)).toEqual(["llm-proxy: KV binding 'RATE_LIMITS' looks like a rate limiter or counter; keep it in a Durable Object"]);
  });
});
