// Rotation against Worker versions and deployments (issue 13.3). Contract, enforced by
// test/fakes/cloudflare-workers-secrets-api.ts and cited there: a secret PUT creates a new
// version and deploys it at 100% (node_modules/cloudflare resources/workers/scripts/secrets.js);
// it fails with 10215 while the latest version is not deployed alone, which a gradual
// deployment, `wrangler versions upload` without a deploy, and a rollback all cause
// (workers-sdk #6763, #10585; wrangler cli.js VERSION_NOT_DEPLOYED_ERR_CODE);
// GET .../deployments answers result.deployments[0].versions[{version_id, percentage}]
// (resources/workers/scripts/deployments.d.ts, wrangler fetchLatestDeployment);
// `wrangler versions secret put` PATCHes .../workers/workers/{s}/versions/latest and
// creates a version without deploying it (cli.js patchLatestWorkerVersionWithSecrets).
import Cloudflare from "cloudflare";
import { afterEach, describe, expect, it } from "vitest";
import { resumeRotation, startRotation } from "./engine.ts";
import { ACCOUNT, Rig, SECRET } from "../../../test/support/rotation-rig.ts";
import { fingerprint } from "./workers.ts";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

const sdk = (r: Rig) => new Cloudflare({ apiToken: r.cfToken, baseURL: r.cf.url, maxRetries: 0 });
const deploymentsOf = async (r: Rig, script: string) =>
  ((await sdk(r).get(`/accounts/${ACCOUNT}/workers/scripts/${script}/deployments`)) as { result: { deployments: { id: string; versions: { version_id: string; percentage: number }[] }[] } }).result.deployments;
const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return "ok";
  } catch (e) {
    if (e instanceof Cloudflare.APIError) return e.errors.map((x) => x.code).join(",");
    throw e;
  }
};
/** What `wrangler versions secret put NAME --name script` sends (cli.js patchLatestWorkerVersionWithSecrets). */
async function versionsSecretPut(r: Rig, script: string, name: string, text: string): Promise<string> {
  const res = await fetch(`${r.cf.url}/accounts/${ACCOUNT}/workers/workers/${script}/versions/latest`, {
    method: "PATCH",
    headers: { authorization: `Bearer ${r.cfToken}`, "content-type": "application/merge-patch+json" },
    body: JSON.stringify({ env: { [name]: { type: "secret_text", text } }, annotations: { "workers/message": `Updated secret "${name}"` } }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { result: { id: string } }).result.id;
}

type Case = "gradual" | "upload" | "rollback";
/** Puts `script` in a state where its latest version is not deployed, the three ways Cloudflare knows. */
function breakDeployment(r: Rig, script: string, c: Case): void {
  if (c === "gradual") r.cf.startGradual(script, 10);
  if (c === "upload") r.cf.uploadVersion(script);
  if (c === "rollback") {
    r.cf.uploadVersion(script);
    r.cf.deployLatest(script);
    r.cf.rollback(script);
  }
}

describe("the fake enforces the versions contract (through the real SDK)", () => {
  it("a secret PUT creates a version and deploys it alone at 100%", async () => {
    rig = await new Rig({ workers: 1 }).start();
    const before = rig.fleet.get("llm-proxy-000").versions.length;
    await sdk(rig).workers.scripts.secrets.update("llm-proxy-000", { account_id: ACCOUNT, name: SECRET, text: rig.newKey, type: "secret_text" });
    const w = rig.fleet.get("llm-proxy-000");
    expect(w.versions.length).toBe(before + 1);
    expect((await deploymentsOf(rig, "llm-proxy-000"))[0]!.versions).toEqual([{ version_id: w.versions.at(-1)!.id, percentage: 100 }]);
  });

  for (const c of ["gradual", "upload", "rollback"] as const) {
    it(`refuses a secret PUT with 10215 after a ${c}, and takes it once the latest version is deployed`, async () => {
      rig = await new Rig({ workers: 1 }).start();
      breakDeployment(rig, "llm-proxy-000", c);
      const put = () => sdk(rig!).workers.scripts.secrets.update("llm-proxy-000", { account_id: ACCOUNT, name: SECRET, text: rig!.newKey, type: "secret_text" });
      expect(await codeOf(put())).toBe("10215");
      rig.cf.deployLatest("llm-proxy-000");
      expect(await codeOf(put())).toBe("ok");
    });
  }

  it("`versions secret put` creates a version without deploying it (so a secret PUT then fails)", async () => {
    rig = await new Rig({ workers: 1 }).start();
    const served = (await deploymentsOf(rig, "llm-proxy-000"))[0]!.versions;
    const id = await versionsSecretPut(rig, "llm-proxy-000", SECRET, rig.newKey);
    expect(rig.fleet.get("llm-proxy-000").versions.at(-1)!.id).toBe(id);
    expect((await deploymentsOf(rig, "llm-proxy-000"))[0]!.versions).toEqual(served);
    expect(await codeOf(sdk(rig).workers.scripts.secrets.update("llm-proxy-000", { account_id: ACCOUNT, name: SECRET, text: rig.newKey, type: "secret_text" }))).toBe("10215");
  });

  it("deployments: one or two versions totalling 100%, known ids; a rollback across a secret change needs force (10220)", async () => {
    rig = await new Rig({ workers: 1 }).start();
    const cf = sdk(rig);
    const w = rig.fleet.get("llm-proxy-000");
    const v1 = w.versions[0]!.id;
    const v2 = rig.cf.uploadVersion("llm-proxy-000").id;
    const v3 = rig.cf.uploadVersion("llm-proxy-000").id;
    const create = (versions: { version_id: string; percentage: number }[], force?: boolean) => cf.workers.scripts.deployments.create("llm-proxy-000", { account_id: ACCOUNT, strategy: "percentage", versions, ...(force ? { force } : {}) });
    expect(await codeOf(create([{ version_id: v1, percentage: 50 }, { version_id: v2, percentage: 30 }, { version_id: v3, percentage: 20 }]))).toBe("10021");
    expect(await codeOf(create([{ version_id: v2, percentage: 50 }, { version_id: v3, percentage: 40 }]))).toBe("10021");
    expect(await codeOf(create([{ version_id: "00000000-0000-4000-8000-000000000000", percentage: 100 }]))).toBe("10218");
    expect(await codeOf(create([{ version_id: v3, percentage: 10 }, { version_id: v1, percentage: 90 }]))).toBe("ok");
    await cf.workers.scripts.secrets.update("llm-proxy-000", { account_id: ACCOUNT, name: SECRET, text: rig.newKey, type: "secret_text" }).catch(() => undefined);
    rig.cf.deployLatest("llm-proxy-000");
    await cf.workers.scripts.secrets.update("llm-proxy-000", { account_id: ACCOUNT, name: SECRET, text: rig.newKey, type: "secret_text" });
    expect(await codeOf(create([{ version_id: v1, percentage: 100 }]))).toBe("10220");
    expect(await codeOf(create([{ version_id: v1, percentage: 100 }], true))).toBe("ok");
  });
});

describe("10215 during a rotation: the message's remedies work, the advice it forbids does not", () => {
  for (const c of ["gradual", "upload", "rollback"] as const) {
    const stopAt = async (r: Rig) => {
      breakDeployment(r, "llm-proxy-002", c);
      const out = await startRotation(r.request("r", { concurrency: 1 }), r.keys, r.deps());
      expect(out.result).toBe("stopped");
      return out.message;
    };

    it(`${c}: names the case, the latest version and the fixes; never suggests a rollback`, async () => {
      rig = await new Rig({ workers: 4 }).start();
      const msg = await stopAt(rig);
      const latest = rig.fleet.get("llm-proxy-002").versions.at(-1)!.id;
      expect(msg).toMatch({ gradual: /a gradual deployment is in progress \(serving .* at 10% and .* at 90%\)/, upload: /was uploaded .* and never deployed/, rollback: /it was rolled back: .* the latest version .* is no longer deployed/ }[c]);
      expect(msg).toContain("error 10215");
      expect(msg).toContain(`npx wrangler versions deploy ${latest}@100% --name llm-proxy-002`);
      expect(msg).toContain(`npx wrangler versions secret put ${SECRET} --name llm-proxy-002`);
      expect(msg).toMatch(/Do not roll back/);
      expect(msg).not.toMatch(/wrangler rollback|or roll (it )?back/);
      for (const s of rig.secretValues) expect(msg).not.toContain(s);
      // Nothing was written to the refused Worker; the journal says so.
      expect(rig.cf.puts.filter((p) => p.script === "llm-proxy-002")).toEqual([]);
      expect(rig.store().load("r").workers.find((w) => w.script === "llm-proxy-002")!.state).toBe("pending");
    });

    it(`${c}: remedy 1, the deploy command the message prints, then --resume completes`, async () => {
      rig = await new Rig({ workers: 4 }).start();
      const msg = await stopAt(rig);
      const [, version, script] = /npx wrangler versions deploy (\S+)@100% --name (\S+) --yes/.exec(msg)!;
      rig.cf.createDeployment(script!, [{ version_id: version!, percentage: 100 }]);
      const out = await resumeRotation(rig.store().load("r"), rig.keys, rig.deps());
      expect(out.result).toBe("done");
      expect(Object.values(rig.served())).toEqual(rig.workers.map(() => "new"));
    });

    it(`${c}: remedy 2, \`versions secret put\` + deploy of the version it created, then --resume completes`, async () => {
      rig = await new Rig({ workers: 4 }).start();
      await stopAt(rig);
      const id = await versionsSecretPut(rig, "llm-proxy-002", SECRET, rig.newKey);
      await sdk(rig).workers.scripts.deployments.create("llm-proxy-002", { account_id: ACCOUNT, strategy: "percentage", versions: [{ version_id: id, percentage: 100 }] });
      const out = await resumeRotation(rig.store().load("r"), rig.keys, rig.deps());
      expect(out.result).toBe("done");
      expect(rig.keyStatus(rig.oldKey)).toBe("inactive");
    });

    it(`${c}: what the message forbids (rolling back to the serving or an older version) keeps --resume failing`, async () => {
      rig = await new Rig({ workers: 4 }).start();
      await stopAt(rig);
      const w = rig.fleet.get("llm-proxy-002");
      const older = w.versions.find((v) => v.id !== w.versions.at(-1)!.id)!;
      rig.cf.createDeployment("llm-proxy-002", [{ version_id: older.id, percentage: 100 }], true);
      const again = await resumeRotation(rig.store().load("r"), rig.keys, rig.deps());
      expect(again.result).toBe("stopped");
      expect(again.message).toMatch(/llm-proxy-002 cannot take a secret now: .*error 10215/);
      expect(rig.anthropic.revoked).toEqual([]);
    });
  }

  it("upload: putting the intended code back as the latest version (`pulumi up`) also lets --resume complete", async () => {
    rig = await new Rig({ workers: 3 }).start();
    breakDeployment(rig, "llm-proxy-001", "upload");
    expect((await startRotation(rig.request(), rig.keys, rig.deps())).result).toBe("stopped");
    rig.fleet.write("llm-proxy-001", SECRET, rig.oldKey); // pulumi up: a new version, deployed at 100%
    expect((await resumeRotation(rig.store().load("rot-1"), rig.keys, rig.deps())).result).toBe("done");
  });
});

describe("confirmation counts only reads from the version the write deployed", () => {
  it("records the deployed version per Worker (from the deployments API) and confirms against it", async () => {
    rig = await new Rig({ workers: 3, fleet: { propagationMs: () => 5 } }).start();
    const out = await startRotation(rig.request(), rig.keys, rig.deps());
    expect(out.result).toBe("done");
    for (const w of out.journal!.workers) {
      const fw = rig.fleet.get(w.script);
      const ours = fw.versions.find((v) => v.secrets.get(SECRET) === rig!.newKey)!;
      expect(w.versionId).toBe(ours.id);
      expect(fw.deployments.at(-1)!.versions).toEqual([{ version_id: ours.id, percentage: 100 }]);
    }
  });

  it("the new fingerprint from another version does not count", async () => {
    // llm-proxy-001 already runs a version with the new key (V1, deployed earlier). The
    // rotation's PUT deploys V2; the first 3 reads after it still come from V1.
    rig = await new Rig({ workers: 2, canaries: 0, fleet: { readPattern: (s, n) => (s === "llm-proxy-001" && n <= 3 ? "previous" : undefined) } }).start();
    rig.fleet.write("llm-proxy-001", SECRET, rig.newKey);
    let readsAtConfirm = -1;
    const deps = rig.deps();
    const emit = deps.emit;
    deps.emit = (e) => {
      if (e.event === "confirm.done" && e.worker === "llm-proxy-001") readsAtConfirm = rig!.fleet.readsSinceWrite.get("llm-proxy-001")!;
      emit(e);
    };
    const out = await startRotation(rig.request("r", { confirmations: 3 }), rig.keys, deps);
    expect(out.result).toBe("done");
    // Counting the fingerprint alone would have confirmed at read 3 (all from V1).
    expect(readsAtConfirm).toBe(6);
  });

  it("a Worker whose status endpoint reports no version never confirms, and the report says why", async () => {
    rig = await new Rig({ workers: 2, canaries: 0 }).start();
    const deps = rig.deps({ timing: { confirmTimeoutMs: 2000 } });
    const read = deps.status.read.bind(deps.status);
    // A build of the Worker without the VERSION binding, once it runs the new key.
    deps.status = {
      read: async (url, b) => {
        const s = await read(url, b);
        return url.includes("api-1.") && s.fingerprint === fingerprint(rig!.newKey) ? { ...s, versionId: null } : s;
      },
    };
    const out = await startRotation(rig.request(), rig.keys, deps);
    expect(out.result).toBe("rolled-back");
    expect(out.workers).toEqual(["llm-proxy-001"]);
    const failed = rig.events.find((e) => e.event === "confirm.failed")!;
    expect((failed.lastSeen as Record<string, string>)["llm-proxy-001"]).toBe(`${fingerprint(rig.newKey)} (version unknown)`);
  });

  it("a gradual deployment started after confirmation, with the old key at 10%, stops the revoke", async () => {
    rig = await new Rig({ workers: 3 }).start();
    let done = false;
    const deps = rig.deps({
      afterStep: (_n, step) => {
        if (step.startsWith("persist:") && !done) {
          done = true;
          // Someone ships a version built with the old key to 10% of traffic.
          const v = rig!.fleet.newVersion("llm-proxy-001", { [SECRET]: rig!.oldKey }, "upload");
          const serving = rig!.fleet.get("llm-proxy-001").deployments.at(-1)!.versions[0]!.version_id;
          rig!.cf.createDeployment("llm-proxy-001", [{ version_id: v.id, percentage: 10 }, { version_id: serving, percentage: 90 }]);
        }
      },
    });
    const out = await startRotation(rig.request(), rig.keys, deps);
    expect(out.result).toBe("stopped");
    expect(out.workers).toEqual(["llm-proxy-001"]);
    expect(out.message).toMatch(/old key was NOT revoked/);
    expect(rig.anthropic.revoked).toEqual([]);
    expect(rig.keyStatus(rig.oldKey)).toBe("active");
  });
});
