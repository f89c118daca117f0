import { describe, expect, it } from "vitest";
import { changed, compliantMetering } from "../../test/fixtures/policies.ts";
import { TYPE, type PlainResource } from "../lib/resources.ts";
import { runPolicies } from "../run.ts";
import { r2ArchiveLifecycle } from "./r2-archive-lifecycle.ts";

const isLifecycle = (r: PlainResource) => r.type === TYPE.r2BucketLifecycle;
const run = (resources: PlainResource[]) => runPolicies(resources, [r2ArchiveLifecycle]).then((v) => v.map((x) => x.message));
type Rule = Record<string, unknown>;
const rule = (change: (r: Rule) => Rule) => (p: Record<string, unknown>) => ({ ...p, rules: (p.rules as Rule[]).map(change) });

describe("r2-archive-lifecycle", () => {
  it("passes the archive bucket with edgefleet's retention rule", async () => {
    const resources = compliantMetering();
    expect(resources.filter(isLifecycle).map((r) => r.props.bucketName)).toEqual(["edgefleet-archive"]);
    expect(await run(resources)).toEqual([]);
  });
  it("flags an archive bucket without a lifecycle", async () => {
    expect(await run(compliantMetering().filter((r) => !isLifecycle(r)))).toEqual([
      "R2 bucket 'edgefleet-archive' holds archives but has no lifecycle rule: its objects would be kept forever (set archive.retention_days in metering.yaml)",
    ]);
  });
  it("flags a lifecycle that does not delete every object by age: disabled, limited to a prefix, or without the delete transition", async () => {
    const why = "R2 bucket 'edgefleet-archive' holds archives but no enabled rule of its lifecycle deletes every object by age, within 3650 days (empty prefix, deleteObjectsTransition of type Age)";
    expect(await run(changed(compliantMetering(), isLifecycle, rule((r) => ({ ...r, enabled: false }))))).toEqual([why]);
    expect(await run(changed(compliantMetering(), isLifecycle, rule((r) => ({ ...r, conditions: { prefix: "t_acme/" } }))))).toEqual([why]);
    expect(await run(changed(compliantMetering(), isLifecycle, rule(({ deleteObjectsTransition: _, ...r }) => r)))).toEqual([why]);
    expect(await run(changed(compliantMetering(), isLifecycle, rule((r) => ({ ...r, deleteObjectsTransition: { condition: { type: "Age", maxAge: 0 } } }))))).toEqual([why]);
    // An age that never comes (1e12 seconds: 31,000 years) keeps everything.
    expect(await run(changed(compliantMetering(), isLifecycle, rule((r) => ({ ...r, deleteObjectsTransition: { condition: { type: "Age", maxAge: 1e12 } } }))))).toEqual([why]);
  });
  it("flags a second lifecycle of the bucket (each replaces the whole rule set), and does not count one of another jurisdiction", async () => {
    const base = compliantMetering();
    const mine = base.find(isLifecycle)!;
    const second: PlainResource = { ...mine, name: "r2/edgefleet-archive/other-lifecycle", props: { ...mine.props, rules: [] } };
    expect(await run([...base, second])).toEqual([expect.stringMatching(/^R2 bucket 'edgefleet-archive' has 2 lifecycle configurations \(r2\/edgefleet-archive\/lifecycle, r2\/edgefleet-archive\/other-lifecycle\); each replaces/)]);
    const eu = changed(base, isLifecycle, (p) => ({ ...p, jurisdiction: "eu" }));
    expect(await run(eu)).toEqual([expect.stringMatching(/^R2 bucket 'edgefleet-archive' holds archives but has no lifecycle rule/)]);
    // Two buckets of one name, one in each jurisdiction, and only the default one's
    // lifecycle: the eu bucket is flagged, whichever is listed first.
    const euBucket: PlainResource = { type: TYPE.r2Bucket, name: "r2/edgefleet-archive/eu", props: { name: "edgefleet-archive", jurisdiction: "eu" } };
    const want = ["R2 bucket 'edgefleet-archive' (jurisdiction eu) holds archives but has no lifecycle rule: its objects would be kept forever (set archive.retention_days in metering.yaml)"];
    expect(await run([euBucket, ...base])).toEqual(want);
    expect(await run([...base, euBucket])).toEqual(want);
  });
  it("knows a bucket holds archives by its binding (ARCHIVE, *_ARCHIVE) or its name, and leaves other buckets alone", async () => {
    const script = (binding: string, bucket: string): PlainResource => ({ type: TYPE.workersScript, name: "w/script", props: { scriptName: "w", bindings: [{ type: "r2_bucket", name: binding, bucketName: bucket }] } });
    expect(await run([script("BODIES_ARCHIVE", "bodies")])).toEqual([expect.stringMatching(/^R2 bucket 'bodies' holds archives but has no lifecycle rule/)]);
    expect(await run([{ type: TYPE.r2Bucket, name: "r2/logs-archive-eu", props: { name: "logs-archive-eu" } }])).toEqual([expect.stringMatching(/^R2 bucket 'logs-archive-eu' holds archives/)]);
    expect(await run([script("BLOBS", "blobs"), { type: TYPE.r2Bucket, name: "r2/blobs", props: { name: "blobs" } }, { type: TYPE.r2Bucket, name: "r2/archived-sites", props: { name: "archivedsites" } }])).toEqual([]);
  });
});
