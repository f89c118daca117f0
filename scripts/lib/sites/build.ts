// The sites build: turns fleet/sites/<host>/... into a manifest and the KV entries of
// the router's content map (format: workers/router/src/table.ts). Deterministic (same
// tree -> same bytes) and content-addressed, so a re-publish writes only what changed.
// Used by `npm run sites`, `npm run dev:router`, the router's tests and its benchmark.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { contentKey, hostKey, TABLE_VERSION, type FileEntry, type HostTable } from "../../../workers/router/src/table.ts";
import { parseRedirects } from "./redirects.ts";
import { mtaStsSiteFiles } from "../../../stacks/model/mail.ts";
import type { Inventory } from "../../../stacks/model/schema.ts";

/** Cloudflare KV's value limit (25 MiB), last verified 2026-11. */
export const KV_VALUE_LIMIT = 25 * 1024 * 1024;
export const REDIRECTS_FILE = "_redirects";
export const NOT_FOUND_FILE = "404.html";

export interface BuildProblem {
  /** The file or directory at fault, relative to the build's `base`. */
  file: string;
  line?: number;
  message: string;
}

export class SitesBuildError extends Error {
  readonly problems: BuildProblem[];
  constructor(problems: BuildProblem[]) {
    super(`the sites build found ${problems.length} problem(s):\n${problems.map(formatBuildProblem).join("\n")}`);
    this.name = "SitesBuildError";
    this.problems = problems;
  }
}

export function formatBuildProblem(p: BuildProblem): string {
  return `${p.file}${p.line ? `:${p.line}` : ""}: ${p.message}`;
}

export interface ManifestFile {
  path: string;
  hash: string;
  type: string;
  size: number;
}

export interface ManifestHost {
  host: string;
  /** Set for a host with no directory of its own that redirects to its apex (www.<zone>). */
  canonical?: string;
  files: ManifestFile[];
  redirects: number;
  notFound?: string;
  /**
   * Set for a host the inventory generates rather than a directory of --sites: the
   * MTA-STS policy host of a zone that receives mail. The publish guard judges these apart.
   */
  generated?: "mta-sts";
}

export interface Manifest {
  version: typeof TABLE_VERSION;
  hosts: ManifestHost[];
}

/** One KV pair to publish. `metadata.sha256` lets the publisher diff without reading values. */
export interface KvEntry {
  key: string;
  value: Uint8Array;
  metadata: { sha256: string };
}

export interface SitesBuild {
  manifest: Manifest;
  /** Sorted by key; content first is not implied, see publish.ts for the write order. */
  entries: KvEntry[];
  /** sha256 over every key and value hash: equal builds have equal hashes. */
  hash: string;
}

export interface BuildOptions {
  /** Hostnames allowed to have a site: the router's zones and their www. hosts. */
  allowedHosts: ReadonlySet<string>;
  /** For a zone with a site but no `www.` directory, publish www.<zone> -> <zone> (default true). */
  wwwToApex?: boolean;
  /** Paths in problems are relative to this (default: the working directory). */
  base?: string;
  /** Test hook: the KV value limit. */
  valueLimit?: number;
  /** The inventory: files it generates (MTA-STS policies, stacks/model/mail.ts) join the content map. */
  inventory?: Inventory;
}

// Content types by extension. A short table instead of a dependency: the router only
// serves what fleet/sites holds, and an unknown extension is served as octet-stream.
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  map: "application/json",
  txt: "text/plain; charset=utf-8",
  xml: "application/xml",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  ico: "image/x-icon",
  woff: "font/woff",
  woff2: "font/woff2",
  pdf: "application/pdf",
  webmanifest: "application/manifest+json",
};

export function contentTypeOf(path: string): string {
  const dot = path.lastIndexOf(".");
  const ext = dot > path.lastIndexOf("/") ? path.slice(dot + 1).toLowerCase() : "";
  return TYPES[ext] ?? "application/octet-stream";
}

// HTML (and other documents) at stable URLs must be revalidated so a publish shows up
// at once (the ETag makes that a cheap 304); assets keep a day in browser and edge
// caches, since their URLs are not fingerprinted; text files an hour.
export function cacheControlOf(type: string): string {
  if (type.startsWith("text/html")) return "public, max-age=0, must-revalidate";
  if (/^(text\/css|text\/javascript|image\/|font\/)/.test(type)) return "public, max-age=86400";
  return "public, max-age=3600";
}

const sha256 = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex");

/** A file's URL path as `new URL(...).pathname` spells it (each segment percent-encoded). */
export function urlPath(relPath: string): string {
  return "/" + relPath.split(sep).join("/").split("/").map((s) => encodeURIComponent(s)).join("/");
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    // Dotfiles (.DS_Store, .gitkeep, editors' swap files) are never published.
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Builds the content map of every site under `sitesDir`; throws SitesBuildError listing every problem. */
export function buildSites(sitesDir: string, opts: BuildOptions): SitesBuild {
  const base = opts.base ?? process.cwd();
  const limit = opts.valueLimit ?? KV_VALUE_LIMIT;
  // Paths inside `base` are shown relative to it, others as given.
  const show = (p: string) => {
    const rel = relative(base, p);
    return rel === "" || rel.startsWith("..") ? p : rel;
  };
  const problems: BuildProblem[] = [];
  const hosts: ManifestHost[] = [];
  const tables = new Map<string, HostTable>();
  const contents = new Map<string, Uint8Array>();

  let dirs: string[];
  try {
    dirs = readdirSync(sitesDir, { withFileTypes: true })
      .filter((e) => !e.name.startsWith("."))
      .map((e) => {
        if (!e.isDirectory()) problems.push({ file: show(join(sitesDir, e.name)), message: "expected a directory named after a host" });
        return e.name;
      })
      .filter((name) => statSync(join(sitesDir, name)).isDirectory())
      .sort(byCodePoint);
  } catch (e) {
    throw new SitesBuildError([{ file: show(sitesDir), message: `cannot read the sites directory (${(e as NodeJS.ErrnoException).code})` }]);
  }

  for (const host of dirs) {
    const dir = join(sitesDir, host);
    if (host !== host.toLowerCase()) {
      problems.push({ file: show(dir), message: `host directory names are lowercase (did you mean ${host.toLowerCase()}?)` });
      continue;
    }
    if (!opts.allowedHosts.has(host)) {
      problems.push({
        file: show(dir),
        message: `unknown host '${host}': not a zone of the inventory whose web posture is proxied, nor its www. host`,
      });
      continue;
    }
    const files: Record<string, FileEntry> = {};
    const list: ManifestFile[] = [];
    let table: HostTable = { v: TABLE_VERSION, files, redirects: {}, patterns: [] };
    for (const file of walk(dir).sort(byCodePoint)) {
      const rel = relative(dir, file);
      if (rel === REDIRECTS_FILE) {
        const parsed = parseRedirects(readFileSync(file, "utf8"));
        for (const p of parsed.problems) problems.push({ file: show(file), line: p.line, message: p.message });
        table = { ...table, redirects: parsed.exact, patterns: parsed.patterns };
        continue;
      }
      const size = statSync(file).size;
      if (size > limit) {
        problems.push({ file: show(file), message: `${size} bytes is over KV's value limit of ${limit} bytes` });
        continue;
      }
      const bytes = readFileSync(file);
      const hash = sha256(bytes);
      const path = urlPath(rel);
      const type = contentTypeOf(path);
      files[path] = { h: hash, t: type, c: cacheControlOf(type), s: size };
      list.push({ path, hash, type, size });
      contents.set(hash, bytes);
    }
    if (files[`/${NOT_FOUND_FILE}`]) table.notFound = `/${NOT_FOUND_FILE}`;
    tables.set(host, table);
    const redirects = Object.keys(table.redirects).length + table.patterns.length;
    hosts.push({ host, files: list, redirects, ...(table.notFound ? { notFound: table.notFound } : {}) });
  }

  // Files the inventory generates: the MTA-STS policy of every zone that receives mail
  // (issue 15.6), served by the router on mta-sts.<zone>. Those hosts are not in
  // allowedHosts, so a fleet/sites directory can never shadow one.
  for (const g of opts.inventory ? mtaStsSiteFiles(opts.inventory) : []) {
    const bytes = new TextEncoder().encode(g.body);
    const hash = sha256(bytes);
    contents.set(hash, bytes);
    tables.set(g.host, { v: TABLE_VERSION, files: { [g.path]: { h: hash, t: g.contentType, c: g.cacheControl, s: bytes.length } }, redirects: {}, patterns: [] });
    hosts.push({ host: g.host, files: [{ path: g.path, hash, type: g.contentType, size: bytes.length }], redirects: 0, generated: "mta-sts" });
  }

  if (opts.wwwToApex ?? true) {
    for (const h of [...hosts]) {
      const www = `www.${h.host}`;
      if (h.canonical || h.host.startsWith("www.") || tables.has(www) || !opts.allowedHosts.has(www)) continue;
      tables.set(www, { v: TABLE_VERSION, canonical: h.host, files: {}, redirects: {}, patterns: [] });
      hosts.push({ host: www, canonical: h.host, files: [], redirects: 0 });
    }
    hosts.sort((a, b) => byCodePoint(a.host, b.host));
  }

  if (problems.length > 0) throw new SitesBuildError(problems);

  const entries: KvEntry[] = [];
  for (const [hash, bytes] of contents) entries.push({ key: contentKey(hash), value: bytes, metadata: { sha256: hash } });
  for (const [host, table] of tables) {
    const value = new TextEncoder().encode(JSON.stringify(table));
    entries.push({ key: hostKey(host), value, metadata: { sha256: sha256(value) } });
  }
  entries.sort((a, b) => byCodePoint(a.key, b.key));
  const hash = sha256(entries.map((e) => `${e.key} ${e.metadata.sha256}`).join("\n"));
  return { manifest: { version: TABLE_VERSION, hosts }, entries, hash };
}
