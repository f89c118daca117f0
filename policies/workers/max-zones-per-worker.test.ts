import { describe, expect, it } from "vitest";
import { TYPE, type PlainResource } from "../lib/resources.ts";
import { runPolicies } from "../run.ts";
import { maxZonesPerWorker } from "./max-zones-per-worker.ts";

const routes = (script: string, zones: number): PlainResource[] =>
  Array.from({ length: zones }, (_, i) => ({ type: TYPE.workersRoute, name: `${script}-${i}`, props: { script, zoneId: `zone-${i}`, pattern: `z${i}.example/*` } }));

describe("max-zones-per-worker", () => {
  it("passes 1,000 zones on one Worker, and routes spread over shards", async () => {
    expect(await runPolicies([...routes("router-0", 1000), ...routes("router-1", 600)], [maxZonesPerWorker])).toEqual([]);
  });
  it("flags a Worker on 1,001 zones", async () => {
    const v = await runPolicies(routes("router-0", 1001), [maxZonesPerWorker]);
    expect(v.map((x) => x.message)).toEqual(["Worker 'router-0' is attached to 1001 zones (at most 1000)"]);
  });
});
