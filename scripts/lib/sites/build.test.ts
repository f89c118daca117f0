// The sites build: determinism, content addressing, the manifest and its errors.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { routerHosts } from "../../../stacks/model/router-shards.ts";
import { findRedirect, hostKey, matchPattern, withQuery, type HostTable } from "../../../workers/router/src/table.ts";
import { buildSites, SitesBuildError, type SitesBuild } from "./build.ts";
import { parseRedirects } from "./redirects.ts";

const allowedHosts = routerHosts(loadInventoryOrThrow("fleet"));
const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A copy of the example sites to change freely. */
function copySites(): string {
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-sites-"));
  tmp.push(dir);
  cpSync("fleet/sites", dir, { recursive: true });
  return dir;
}

const keyHashes = (b: SitesBuild) => new Map(b.entries.map((e) => [e.key, e.metadata.sha256]));
const table = (b: SitesBuild, host: string) =>
  JSON.parse(new TextDecoder().decode(b.entries.find((e) => e.key === hostKey(host))!.value)) as HostTable;

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof SitesBuildError) return e.problems.map((p) => `${p.file}${p.line ? `:${p.line}` : ""}: ${p.message}`);
    throw e;
  }
  throw new Error("expected the build to fail");
}

describe("the sites build", () => {
  it("builds the example sites into a manifest of host, path, hash, type and size", () => {
    const b = buildSites("fleet/sites", { allowedHosts });
    const gw = b.manifest.hosts.find((h) => h.host === "llm-gateway.example")!;
    expect(gw.files.map((f) => f.path)).toEqual([
      "/404.html",
      "/assets/logo.png",
      "/assets/site.css",
      "/docs/index.html",
      "/index.html",
      "/robots.txt",
    ]);
    const logo = gw.files.find((f) => f.path === "/assets/logo.png")!;
    expect(logo.type).toBe("image/png");
    expect(logo.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(logo.size).toBeGreaterThan(0);
    expect(gw.redirects).toBe(4);
    expect(gw.notFound).toBe("/404.html");
    // Every file's content is an entry, under its hash.
    const keys = new Set(b.entries.map((e) => e.key));
    for (const h of b.manifest.hosts) for (const f of h.files) expect(keys.has(`sha256:${f.hash}`)).toBe(true);
  });

  it("is deterministic: same tree, same entries, same hash, whatever the directory order", () => {
    const a = buildSites("fleet/sites", { allowedHosts });
    const copy = copySites();
    // Re-create one host's files in another order (readdir order follows creation on many file systems).
    const host = join(copy, "amber-home.example");
    const files = readdirSync(host, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    const saved = files.map((e) => [join(e.parentPath, e.name), readFileSync(join(e.parentPath, e.name))] as const);
    rmSync(host, { recursive: true });
    for (const [p, bytes] of saved.reverse()) {
      mkdirSync(join(p, ".."), { recursive: true });
      writeFileSync(p, bytes);
    }
    const b = buildSites(copy, { allowedHosts });
    expect(b.hash).toBe(a.hash);
    expect(b.entries.map((e) => e.key)).toEqual(a.entries.map((e) => e.key));
    expect(b.entries.map((e) => Buffer.from(e.value).toString("base64"))).toEqual(a.entries.map((e) => Buffer.from(e.value).toString("base64")));
    expect(JSON.stringify(b.manifest)).toBe(JSON.stringify(a.manifest));
  });

  it("is content-addressed: one changed file changes its content key and its host's table, nothing else", () => {
    const copy = copySites();
    const before = buildSites(copy, { allowedHosts });
    writeFileSync(join(copy, "arctic-music.example/tour/index.html"), "<h1>New tour dates</h1>\n");
    const after = buildSites(copy, { allowedHosts });
    const a = keyHashes(before);
    const b = keyHashes(after);
    const added = [...b.keys()].filter((k) => !a.has(k));
    const removed = [...a.keys()].filter((k) => !b.has(k));
    const changed = [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k));
    expect(added).toHaveLength(1);
    expect(added[0]).toMatch(/^sha256:/);
    expect(removed).toHaveLength(1);
    expect(changed).toEqual([hostKey("arctic-music.example")]);
    expect(after.hash).not.toBe(before.hash);
  });

  it("stores identical files once, whatever host has them", () => {
    const copy = copySites();
    writeFileSync(join(copy, "amber-home.example/assets/shared.css"), "body{}\n");
    writeFileSync(join(copy, "aurora-press.example/assets/shared.css"), "body{}\n");
    const b = buildSites(copy, { allowedHosts });
    const h1 = table(b, "amber-home.example").files["/assets/shared.css"]!.h;
    const h2 = table(b, "aurora-press.example").files["/assets/shared.css"]!.h;
    expect(h1).toBe(h2);
    expect(b.entries.filter((e) => e.key === `sha256:${h1}`)).toHaveLength(1);
  });

  it("publishes www. -> apex for zones without a www. site, and nothing for hosts with their own", () => {
    const b = buildSites("fleet/sites", { allowedHosts });
    expect(table(b, "www.amber-home.example").canonical).toBe("amber-home.example");
    expect(table(b, "www.llm-gateway.example").canonical).toBeUndefined();
    expect(table(b, "www.llm-gateway.example").files["/index.html"]).toBeDefined();
  });

  it("encodes paths as URL.pathname does", () => {
    const copy = copySites();
    writeFileSync(join(copy, "amber-home.example/price list.txt"), "x\n");
    const b = buildSites(copy, { allowedHosts });
    expect(table(b, "amber-home.example").files["/price%20list.txt"]).toBeDefined();
    expect(new URL("http://h/price list.txt").pathname).toBe("/price%20list.txt");
  });

  it("names a file over KV's value limit", () => {
    const copy = copySites();
    writeFileSync(join(copy, "amber-home.example/assets/big.bin"), Buffer.alloc(2049));
    const problems = problemsOf(() => buildSites(copy, { allowedHosts, valueLimit: 2048, base: copy }));
    expect(problems).toEqual(["amber-home.example/assets/big.bin: 2049 bytes is over KV's value limit of 2048 bytes"]);
  });

  it("names an unknown host's directory (not a proxied zone of the inventory)", () => {
    const copy = copySites();
    mkdirSync(join(copy, "not-in-fleet.example"));
    writeFileSync(join(copy, "not-in-fleet.example/index.html"), "hi");
    // ops-mail.example is a fleet zone, but its web posture is none.
    mkdirSync(join(copy, "ops-mail.example"));
    writeFileSync(join(copy, "ops-mail.example/index.html"), "hi");
    const problems = problemsOf(() => buildSites(copy, { allowedHosts, base: copy }));
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^not-in-fleet\.example: unknown host 'not-in-fleet\.example'/);
    expect(problems[1]).toMatch(/^ops-mail\.example: unknown host 'ops-mail\.example'/);
  });

  it("names a malformed _redirects file and each bad line, and reports every problem at once", () => {
    const copy = copySites();
    writeFileSync(join(copy, "amber-home.example/_redirects"), "/ok /fine 301\n/a\nnoslash /x\n/b /c 404\n/d /e 200\n");
    writeFileSync(join(copy, "aurora-press.example/_redirects"), "/x/* /y/:nope 301\n");
    const problems = problemsOf(() => buildSites(copy, { allowedHosts, base: copy }));
    expect(problems).toEqual([
      "amber-home.example/_redirects:2: expected 'FROM TO [STATUS]' (2 or 3 fields), got 1",
      "amber-home.example/_redirects:3: source 'noslash' must be a path starting with '/'",
      "amber-home.example/_redirects:4: status 404 is not a redirect; use 301, 302, 303, 307 or 308",
      "amber-home.example/_redirects:5: status 200 (rewrite/proxy) is not supported by the router; use 301, 302, 303, 307 or 308",
      "aurora-press.example/_redirects:1: target uses :nope, which the source does not capture",
    ]);
  });

  it("names a sites directory that cannot be read", () => {
    expect(problemsOf(() => buildSites("/nonexistent/sites", { allowedHosts }))[0]).toMatch(/^\/nonexistent\/sites: cannot read the sites directory \(ENOENT\)/);
  });
});

describe("the _redirects parser", () => {
  it("reads exact rules, splats and placeholders, defaulting to 302, skipping comment lines", () => {
    const r = parseRedirects("# c\n\n/a /b\n  # indented comment\n/c https://x.example/ 301\n/blog/* /posts/:splat 308\n/u/:id/p /users/:id 307\n");
    expect(r.problems).toEqual([]);
    expect(r.exact).toEqual({ "/a": { to: "/b", status: 302 }, "/c": { to: "https://x.example/", status: 301 } });
    expect(r.patterns).toEqual([
      { from: "/blog/*", to: "/posts/:splat", status: 308 },
      { from: "/u/:id/p", to: "/users/:id", status: 307 },
    ]);
  });

  it("keeps a plain rule below a pattern rule in file order, as Cloudflare does", () => {
    const r = parseRedirects("/top /t 301\n/blog/* /news/:splat 301\n/blog/special /special 301\n");
    expect(r.problems).toEqual([]);
    expect(r.exact).toEqual({ "/top": { to: "/t", status: 301 } });
    expect(r.patterns.map((p) => p.from)).toEqual(["/blog/*", "/blog/special"]);
    // First match wins: the splat above shadows the plain rule, on Cloudflare and here.
    const table: HostTable = { v: 1, files: {}, redirects: r.exact, patterns: r.patterns };
    expect(findRedirect(table, "/blog/special")).toEqual({ to: "/news/special", status: 301 });
    expect(findRedirect(table, "/top")).toEqual({ to: "/t", status: 301 });
  });

  it("spells sources as a request's URL.pathname does (percent-encoded)", () => {
    const r = parseRedirects("/café /cafe 301\n/a/./b/../c /d\n");
    expect(r.problems).toEqual([]);
    expect(Object.keys(r.exact)).toEqual(["/caf%C3%A9", "/a/c"]);
    expect(new URL("http://h/café").pathname).toBe("/caf%C3%A9");
  });

  it("rejects duplicates, self-redirects, two splats and queries", () => {
    const r = parseRedirects("/a /b\n/a /c\n/s /s\n/x/*/y/* /z\n/q?x=1 /r\n");
    expect(r.problems.map((p) => p.line)).toEqual([2, 3, 4, 5]);
  });

  it("rejects what Cloudflare's parser would skip or read differently, naming the line", () => {
    const r = parseRedirects(
      [
        "/ok /fine 301 # trailing comment", // Cloudflare: 5 fields, line skipped
        "/h http://x.example/", // Cloudflare: absolute targets must be https
        "/p-:id /x", // a placeholder inside a segment
        "/a/:b/:b /c", // the same placeholder twice
        "/mid*/x /y", // a '*' that is not the last segment
      ].join("\n"),
    );
    expect(r.problems).toEqual([
      { line: 1, message: "a comment must be a line of its own, starting with '#' (Cloudflare reads a trailing '# ...' as more fields)" },
      { line: 2, message: "target 'http://x.example/' must be a path starting with '/' or an https:// URL" },
      { line: 3, message: "source '/p-:id': a placeholder must be a whole path segment, ':name' (letters, digits, '_')" },
      { line: 4, message: "source '/a/:b/:b': each placeholder name may appear once (and ':splat' is the '*')" },
      { line: 5, message: "source '/mid*/x': only one '*', as the last path segment ('/path/*'), is supported" },
    ]);
  });

  it("rejects rules that would redirect to themselves forever", () => {
    const r = parseRedirects("/a /a?x=1\n/* /index.html\n/blog/* /blog/new/:splat\n/v0/:page /docs/:page\n/x/:id /:id/foo\n");
    expect(r.problems.map((p) => p.line)).toEqual([1, 2, 3]);
    expect(r.problems[1]!.message).toBe("'/*' redirects to '/index.html', which it matches itself (a redirect loop)");
    expect(r.patterns.map((p) => p.from)).toEqual(["/v0/:page", "/x/:id"]);
  });

  it("counts every rule from the first pattern rule on against the 100 dynamic rules", () => {
    const plain = Array.from({ length: 100 }, (_, i) => `/p${i} /q${i}`);
    expect(parseRedirects(["/d/* /e", ...plain].join("\n")).problems).toEqual([
      { line: 101, message: "more than 100 rules from the first rule with '*' or ':placeholder' on (Cloudflare counts every rule below it as dynamic; move plain rules above it)" },
    ]);
    expect(parseRedirects([...plain, "/d/* /e"].join("\n")).problems).toEqual([]);
  });
});

describe("redirect matching", () => {
  const rule = (from: string, to: string) => ({ from, to, status: 301 as const });
  it("matches a final /* with the slash required and the rest captured as :splat", () => {
    expect(matchPattern(rule("/api/*", "/docs/:splat"), "/api/v1/messages")).toBe("/docs/v1/messages");
    expect(matchPattern(rule("/api/*", "/docs/:splat"), "/api/")).toBe("/docs/");
    expect(matchPattern(rule("/api/*", "/docs/:splat"), "/api")).toBeUndefined();
    expect(matchPattern(rule("/api/*", "/docs/:splat"), "/apis/x")).toBeUndefined();
  });
  it("matches :name against exactly one non-empty segment", () => {
    expect(matchPattern(rule("/u/:id/p", "/users/:id"), "/u/42/p")).toBe("/users/42");
    expect(matchPattern(rule("/u/:id/p", "/users/:id"), "/u//p")).toBeUndefined();
    expect(matchPattern(rule("/u/:id/p", "/users/:id"), "/u/4/2/p")).toBeUndefined();
    expect(matchPattern(rule("/:a/:ab", "/x/:ab/:a"), "/1/2")).toBe("/x/2/1");
  });
  it("keeps the request's query unless the target has its own", () => {
    expect(withQuery("/new", "?a=1")).toBe("/new?a=1");
    expect(withQuery("/new#top", "?a=1")).toBe("/new?a=1#top");
    expect(withQuery("/new?b=2", "?a=1")).toBe("/new?b=2");
    expect(withQuery("https://x.example/", "")).toBe("https://x.example/");
  });
});
