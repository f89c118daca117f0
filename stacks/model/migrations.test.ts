// migrationsToUpload against wrangler's getMigrationsToUpload, case by case.
import { describe, expect, it } from "vitest";
import { migrationsToUpload, type MigrationStep } from "./migrations.ts";

const step = (tag: string, m: Partial<MigrationStep> = {}): MigrationStep => ({ tag, newClasses: [], newSqliteClasses: [], deletedClasses: [], renamedClasses: [], ...m });
const V1 = step("v1", { newSqliteClasses: ["RateLimiter"] });
const V2 = step("v2", { newSqliteClasses: ["Tenant"] });
const V3 = step("v3", { renamedClasses: [{ from: "Tenant", to: "TenantRecord" }] });

describe("migrationsToUpload (wrangler's getMigrationsToUpload)", () => {
  it("sends nothing for a Worker without migrations", () => {
    expect(migrationsToUpload("w", [], null)).toEqual({ status: "none", upload: undefined, tags: [] });
    expect(migrationsToUpload("w", [], "v1").upload).toBeUndefined();
  });

  it("sends every step and no old_tag to a script without a tag (first create)", () => {
    expect(migrationsToUpload("w", [V1, V2], null)).toMatchObject({
      status: "apply",
      upload: { newTag: "v2", steps: [{ newSqliteClasses: ["RateLimiter"] }, { newSqliteClasses: ["Tenant"] }] },
    });
    expect(migrationsToUpload("w", [V1], null).upload).not.toHaveProperty("oldTag");
  });

  it("sends nothing to a script already at the last tag (a code-only change, an adopted script)", () => {
    expect(migrationsToUpload("w", [V1], "v1")).toEqual({ status: "current", upload: undefined, tags: ["v1"], live: "v1" });
    expect(migrationsToUpload("w", [V1, V2, V3], "v3").upload).toBeUndefined();
  });

  it("sends only the steps after the live tag, with old_tag = the live tag", () => {
    expect(migrationsToUpload("w", [V1, V2, V3], "v1").upload).toEqual({
      oldTag: "v1",
      newTag: "v3",
      steps: [{ newSqliteClasses: ["Tenant"] }, { renamedClasses: [{ from: "Tenant", to: "TenantRecord" }] }],
    });
    expect(migrationsToUpload("w", [V1, V2, V3], "v2").upload).toEqual({ oldTag: "v2", newTag: "v3", steps: [{ renamedClasses: [{ from: "Tenant", to: "TenantRecord" }] }] });
  });

  it("warns about a live tag the config does not list and sends every step with old_tag = that tag", () => {
    const plan = migrationsToUpload("edgefleet-llm-proxy", [V1, V2], "v0-manual");
    expect(plan.status).toBe("apply");
    expect(plan.upload).toEqual({ oldTag: "v0-manual", newTag: "v2", steps: [{ newSqliteClasses: ["RateLimiter"] }, { newSqliteClasses: ["Tenant"] }] });
    expect(plan.status === "apply" && plan.warning).toMatch(/edgefleet-llm-proxy has migration tag 'v0-manual', which its wrangler.jsonc does not list \(v1, v2\)/);
  });

  it("does not share arrays with the config (the engine may hold on to them)", () => {
    const plan = migrationsToUpload("w", [V1], null);
    plan.upload!.steps[0]!.newSqliteClasses!.push("X");
    expect(V1.newSqliteClasses).toEqual(["RateLimiter"]);
  });
});
