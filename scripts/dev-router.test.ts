// `npm run dev:router` as the operator runs it: a real process serving fleet/sites on
// 127.0.0.1 through the router in workerd, stopped with SIGINT.
import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";

let child: ChildProcess | undefined;
afterEach(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGINT");
    await exited;
  }
  child = undefined;
});

/** Starts dev:router and resolves with its origin once it says it is ready. */
function startDev(...args: string[]): Promise<string> {
  child = spawn(process.execPath, ["scripts/dev-router.ts", "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child!.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /router on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m && out.includes("Ctrl-C")) resolve(m[1]!);
    });
    child!.once("exit", (code) => reject(new Error(`dev:router exited with ${code} before it was ready: ${out}`)));
  });
}

function get(origin: string, path: string, host?: string): Promise<{ status: number; body: string; location?: string }> {
  const url = new URL(path, origin);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, headers: host ? { host } : {} }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers.location ? { location: res.headers.location } : {}) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("npm run dev:router", () => {
  it("serves the example sites by Host header, with the content map loaded", async () => {
    const origin = await startDev();
    const page = await get(origin, "/docs/", "llm-gateway.example");
    expect(page.status).toBe(200);
    expect(page.body).toContain("<h1>Documentation</h1>");
    const redirect = await get(origin, "/kitchen", "amber-home.example");
    expect(redirect).toMatchObject({ status: 307, location: "/rooms/" });
    expect((await get(origin, "/", "localhost")).status).toBe(404);
  });

  it("--host serves one site whatever the Host header", async () => {
    const origin = await startDev("--host", "arctic-music.example");
    const page = await get(origin, "/tour/");
    expect(page.status).toBe(200);
    expect(page.body).toContain("Tour dates");
  });

  it("exits 2 on a bad port", async () => {
    const p = spawn(process.execPath, ["scripts/dev-router.ts", "--port", "http"], { stdio: "ignore" });
    const code = await new Promise((r) => p.once("exit", r));
    expect(code).toBe(2);
  });
});
