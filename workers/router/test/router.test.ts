// The router Worker in workerd (Miniflare), serving the example sites in fleet/sites
// built by the real sites build and loaded into its KV namespace as publish would.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Miniflare, RequestInit } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSites, type SitesBuild } from "../../../scripts/lib/sites/build.ts";
import { loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { routerHosts } from "../../../stacks/model/router-shards.ts";
import { contentKey, hostKey, type HostTable } from "../src/table.ts";
import { loadEntries, routerKvBinding, startRouter } from "../local/miniflare.ts";

const SITES = "fleet/sites";
const allowedHosts = routerHosts(loadInventoryOrThrow("fleet"));
const site = (host: string, path: string) => readFileSync(join(SITES, host, path));

let build: SitesBuild;
let mf: Miniflare;

beforeAll(async () => {
  build = buildSites(SITES, { allowedHosts });
  mf = await startRouter();
  await loadEntries(mf, build.entries);
});
afterAll(async () => {
  await mf?.dispose();
});

const get = (url: string, init?: RequestInit) => mf.dispatchFetch(url, { redirect: "manual", ...init });

describe("serving files", () => {
  it("serves a host's index.html at / with its type, cache-control and ETag", async () => {
    const res = await get("http://llm-gateway.example/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=0, must-revalidate");
    expect(res.headers.get("etag")).toMatch(/^"[0-9a-f]{32}"$/);
    expect(await res.text()).toBe(site("llm-gateway.example", "index.html").toString());
  });

  it("serves each host its own content", async () => {
    const a = await (await get("http://arctic-music.example/")).text();
    const b = await (await get("http://amber-home.example/")).text();
    expect(a).toContain("Arctic Music");
    expect(b).toContain("Amber Home");
  });

  it("serves binary files byte for byte with their content type", async () => {
    const res = await get("http://northwind-traders.example/assets/logo.png");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("cache-control")).toBe("public, max-age=86400");
    expect(Buffer.from(await res.arrayBuffer()).equals(site("northwind-traders.example", "assets/logo.png"))).toBe(true);
  });

  it("sets cache-control by content type", async () => {
    const css = await get("http://amber-home.example/assets/site.css");
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect(css.headers.get("cache-control")).toBe("public, max-age=86400");
    const txt = await get("http://llm-gateway.example/robots.txt");
    expect(txt.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(txt.headers.get("cache-control")).toBe("public, max-age=3600");
    await css.arrayBuffer();
    await txt.arrayBuffer();
  });

  it("serves index.html for a directory and redirects the slash-less directory path", async () => {
    const dir = await get("http://llm-gateway.example/docs/");
    expect(dir.status).toBe(200);
    expect(await dir.text()).toBe(site("llm-gateway.example", "docs/index.html").toString());
    const bare = await get("http://llm-gateway.example/docs?x=1");
    expect(bare.status).toBe(301);
    expect(bare.headers.get("location")).toBe("/docs/?x=1");
  });

  it("answers HEAD with the headers of GET and no body", async () => {
    const res = await get("http://fabrikam-studio.example/portfolio/", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-length")).toBe(String(site("fabrikam-studio.example", "portfolio/index.html").length));
    expect(res.headers.get("etag")).toMatch(/^"[0-9a-f]{32}"$/);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it("serves the same cached page many times over (the cached bytes are not consumed)", async () => {
    const want = site("aurora-press.example", "index.html").toString();
    for (let i = 0; i < 5; i++) expect(await (await get("http://aurora-press.example/")).text()).toBe(want);
  });
});

describe("ETag and If-None-Match", () => {
  it("answers 304 with no body when the ETag matches, 200 when it does not", async () => {
    const first = await get("http://arctic-music.example/tour/");
    const etag = first.headers.get("etag")!;
    await first.arrayBuffer();
    const same = await get("http://arctic-music.example/tour/", { headers: { "if-none-match": etag } });
    expect(same.status).toBe(304);
    expect(same.headers.get("etag")).toBe(etag);
    expect(same.headers.get("cache-control")).toBe("public, max-age=0, must-revalidate");
    expect((await same.arrayBuffer()).byteLength).toBe(0);
    const weakInList = await get("http://arctic-music.example/tour/", { headers: { "if-none-match": `"nope", W/${etag}` } });
    expect(weakInList.status).toBe(304);
    await weakInList.arrayBuffer();
    const other = await get("http://arctic-music.example/tour/", { headers: { "if-none-match": '"0000"' } });
    expect(other.status).toBe(200);
    expect(await other.text()).toContain("Tour dates");
  });

  it("gives different files different ETags", async () => {
    const a = await get("http://arctic-music.example/");
    const b = await get("http://arctic-music.example/tour/");
    expect(a.headers.get("etag")).not.toBe(b.headers.get("etag"));
    await a.arrayBuffer();
    await b.arrayBuffer();
  });
});

describe("redirects from _redirects", () => {
  it.each([
    ["http://llm-gateway.example/docs/quickstart", 301, "/docs/"],
    ["http://llm-gateway.example/status", 302, "https://status.ops-mail.example/"],
    ["http://llm-gateway.example/api/v1/messages", 308, "/docs/v1/messages"],
    ["http://llm-gateway.example/v0/limits", 301, "/docs/limits"],
    ["http://amber-home.example/kitchen", 307, "/rooms/"],
    ["http://northwind-traders.example/shop/anything/here", 302, "/catalog/"],
    ["http://aurora-press.example/catalog/poetry", 301, "/books/poetry"],
  ])("%s -> %i %s", async (url, status, location) => {
    const res = await get(url);
    expect(res.status).toBe(status);
    expect(res.headers.get("location")).toBe(location);
  });

  it("keeps the request's query on a redirect, unless the target has its own", async () => {
    const exact = await get("http://llm-gateway.example/docs/quickstart?utm=x&y=1");
    expect(exact.status).toBe(301);
    expect(exact.headers.get("location")).toBe("/docs/?utm=x&y=1");
    const splat = await get("http://llm-gateway.example/api/v1/messages?beta=1");
    expect(splat.headers.get("location")).toBe("/docs/v1/messages?beta=1");
    const external = await get("http://llm-gateway.example/status?from=footer");
    expect(external.headers.get("location")).toBe("https://status.ops-mail.example/?from=footer");
  });

  it("needs the slash before a final '*': /api/* does not match /api", async () => {
    const bare = await get("http://llm-gateway.example/api");
    expect(bare.status).toBe(404);
    expect(await bare.text()).toBe(site("llm-gateway.example", "404.html").toString());
    const slash = await get("http://llm-gateway.example/api/");
    expect(slash.status).toBe(308);
    expect(slash.headers.get("location")).toBe("/docs/");
  });

  it("applies redirects before files, and gives a redirect no body and no ETag", async () => {
    // amber-home has /kitchen -> /rooms/; a redirect answers with headers only.
    const res = await get("http://amber-home.example/kitchen", { method: "HEAD" });
    expect(res.status).toBe(307);
    expect(res.headers.get("etag")).toBeNull();
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it("does not apply a host's rules to another host", async () => {
    const res = await get("http://arctic-music.example/docs/quickstart");
    expect(res.status).toBe(404);
    await res.arrayBuffer();
  });

  it("redirects a www. host without its own site to the apex, keeping path and query", async () => {
    const res = await get("http://www.amber-home.example/rooms/?a=b");
    expect(res.status).toBe(301);
    expect(res.headers.get("location")).toBe("https://amber-home.example/rooms/?a=b");
  });

  it("serves a www. host that has its own site", async () => {
    const res = await get("http://www.llm-gateway.example/");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(site("www.llm-gateway.example", "index.html").toString());
  });
});

describe("not found, unknown hosts and methods", () => {
  it("serves the host's 404 page with status 404", async () => {
    const res = await get("http://fabrikam-studio.example/no/such/page");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await res.text()).toBe(site("fabrikam-studio.example", "404.html").toString());
  });

  it("answers HEAD of a missing path with the 404 page's headers and no body", async () => {
    const res = await get("http://fabrikam-studio.example/no/such/page", { method: "HEAD" });
    expect(res.status).toBe(404);
    expect(res.headers.get("content-length")).toBe(String(site("fabrikam-studio.example", "404.html").length));
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it("answers a plain 404 on a host without a 404 page", async () => {
    const res = await get("http://aurora-press.example/nothing");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await res.text()).toBe("Not Found\n");
  });

  it("answers an unknown host with a plain 404 that reveals nothing", async () => {
    for (const host of ["unknown.example", "parked-zone.example", "sha256"]) {
      const res = await get(`http://${host}/index.html`);
      expect(res.status).toBe(404);
      expect(await res.text()).toBe("Not Found\n");
      const headerText = [...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
      expect(headerText).not.toMatch(/example|etag|location|server-timing/i);
    }
  });

  it("answers 405 with Allow for other methods and reads nothing", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const res = await get("http://llm-gateway.example/", { method });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, HEAD");
      expect(await res.text()).toBe("Method Not Allowed\n");
    }
  });
});

describe("redirect order, as Cloudflare applies _redirects", () => {
  it("tries a plain rule below a pattern rule in file order, so the pattern above it wins", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-router-"));
    try {
      cpSync(SITES, dir, { recursive: true });
      writeFileSync(join(dir, "aurora-press.example/_redirects"), "/first /one 301\n/catalog/* /books/:splat 301\n/catalog/poetry /poems/ 302\n/later /two 307\n");
      const router = await startRouter();
      try {
        await loadEntries(router, buildSites(dir, { allowedHosts }).entries);
        const expectRedirect = async (path: string, status: number, location: string) => {
          const res = await router.dispatchFetch(`http://aurora-press.example${path}`, { redirect: "manual" });
          expect([res.status, res.headers.get("location")]).toEqual([status, location]);
        };
        await expectRedirect("/first", 301, "/one");
        await expectRedirect("/catalog/poetry", 301, "/books/poetry");
        await expectRedirect("/later", 307, "/two");
      } finally {
        await router.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the in-isolate cache", () => {
  const HOST = "arctic-music.example";
  // A table for HOST whose "/" is the given bytes; written straight into KV.
  async function publishIndex(router: Miniflare, html: string): Promise<void> {
    const kv = await router.getKVNamespace(routerKvBinding());
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256").update(html).digest("hex");
    await kv.put(contentKey(hash), html);
    const table = (await kv.get(hostKey(HOST), "json")) as HostTable;
    const entry = { h: hash, t: "text/html; charset=utf-8", c: "public, max-age=0, must-revalidate", s: html.length };
    table.files["/index.html"] = entry;
    await kv.put(hostKey(HOST), JSON.stringify(table));
  }

  // Long enough that "within the TTL" holds on a loaded machine (the KV writes between
  // the two requests go through Miniflare), short enough to wait out.
  const TTL_MS = 2500;

  it("keeps a host's table for the TTL, then reads KV again", async () => {
    const router = await startRouter({ vars: { ROUTER_CACHE_TTL_MS: String(TTL_MS) } });
    try {
      await loadEntries(router, build.entries);
      const url = `http://${HOST}/`;
      expect(await (await router.dispatchFetch(url)).text()).toContain("Arctic Music");
      await publishIndex(router, "<p>version two</p>");
      // Within the TTL the isolate still answers from its cached table.
      expect(await (await router.dispatchFetch(url)).text()).toContain("Arctic Music");
      await new Promise((r) => setTimeout(r, TTL_MS + 300));
      expect(await (await router.dispatchFetch(url)).text()).toBe("<p>version two</p>");
    } finally {
      await router.dispose();
    }
  });

  it("caches an unknown host too (one KV read per TTL), and serves it once the TTL is over", async () => {
    const router = await startRouter({ vars: { ROUTER_CACHE_TTL_MS: String(TTL_MS) } });
    try {
      await loadEntries(router, build.entries);
      const url = "http://late-site.example/";
      expect((await router.dispatchFetch(url)).status).toBe(404);
      // The host appears in KV (a publish); this isolate still has it as unknown.
      const kv = await router.getKVNamespace(routerKvBinding());
      await kv.put(hostKey("late-site.example"), (await kv.get(hostKey(HOST)))!);
      const cached = await router.dispatchFetch(url);
      expect([cached.status, await cached.text()]).toEqual([404, "Not Found\n"]);
      await new Promise((r) => setTimeout(r, TTL_MS + 300));
      const after = await router.dispatchFetch(url);
      expect(after.status).toBe(200);
      expect(await after.text()).toContain("Arctic Music");
    } finally {
      await router.dispose();
    }
  });

  it("keeps small content in the isolate, evicts the least recently used past ROUTER_CACHE_MAX_BYTES", async () => {
    // 600 bytes of content cache: files up to 150 bytes are kept (the 140-141-byte logos),
    // the 423-byte index pages never are. The tables stay cached for the test's length.
    const router = await startRouter({ vars: { ROUTER_CACHE_TTL_MS: "600000", ROUTER_CACHE_MAX_BYTES: "600" } });
    try {
      await loadEntries(router, build.entries);
      const logo = (host: string) => `http://${host}/assets/logo.png`;
      const fetchAll = async (url: string) => {
        const res = await router.dispatchFetch(url);
        return { status: res.status, bytes: (await res.arrayBuffer()).byteLength };
      };
      const [a, b, c, d, e] = ["amber-home.example", "arctic-music.example", "aurora-press.example", "fabrikam-studio.example", "llm-gateway.example"];
      for (const host of [a, b, c, d]) expect((await fetchAll(logo(host!))).status).toBe(200); // 561 bytes kept
      await fetchAll(logo(a!)); // a becomes the most recently used
      await fetchAll(`http://${HOST}/`); // too large to keep
      await fetchAll(logo(e!)); // 701 > 600: b, the least recently used, is evicted
      // Now KV loses every content key: only what the isolate kept can still be served.
      const kv = await router.getKVNamespace(routerKvBinding());
      for (const entry of build.entries) if (entry.key.startsWith("sha256:")) await kv.delete(entry.key);
      for (const host of [a, c, d, e]) expect(await fetchAll(logo(host!))).toEqual({ status: 200, bytes: site(host!, "assets/logo.png").length });
      // b was evicted and the index was never kept: the Worker re-reads the table once,
      // which still names the missing content, and answers 503 with retry-after.
      const gone = await router.dispatchFetch(logo(b!));
      expect(gone.status).toBe(503);
      expect(gone.headers.get("retry-after")).toBe("5");
      await gone.arrayBuffer();
      expect((await fetchAll(`http://${HOST}/`)).status).toBe(503);
    } finally {
      await router.dispose();
    }
  });

  it("reads KV on every request when the cache is off (TTL 0)", async () => {
    const router = await startRouter({ vars: { ROUTER_CACHE_TTL_MS: "0" } });
    try {
      await loadEntries(router, build.entries);
      const url = `http://${HOST}/`;
      expect(await (await router.dispatchFetch(url)).text()).toContain("Arctic Music");
      await publishIndex(router, "<p>version three</p>");
      expect(await (await router.dispatchFetch(url)).text()).toBe("<p>version three</p>");
    } finally {
      await router.dispose();
    }
  });

  it("re-reads a cached table whose content a publish has deleted", async () => {
    const router = await startRouter({ vars: { ROUTER_CACHE_TTL_MS: "600000" } });
    try {
      await loadEntries(router, build.entries);
      const kv = await router.getKVNamespace(routerKvBinding());
      // Prime the table cache through another page, so "/" has never been read.
      await (await router.dispatchFetch(`http://${HOST}/tour/`)).arrayBuffer();
      const old = build.entries.find((e) => e.key === hostKey(HOST))!;
      const oldIndex = (JSON.parse(new TextDecoder().decode(old.value)) as HostTable).files["/index.html"]!;
      // A publish replaces the page and deletes the old content; this isolate's cached
      // table still names the old hash, which KV no longer has.
      await publishIndex(router, "<p>version four</p>");
      await kv.delete(contentKey(oldIndex.h));
      const res = await router.dispatchFetch(`http://${HOST}/`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("<p>version four</p>");
    } finally {
      await router.dispose();
    }
  });
});
