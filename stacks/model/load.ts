// Reads an inventory (fleet.yaml, profiles.yaml, zones.yaml) into plain data, or
// into every problem at once, each located by file, line, column and field path.
// parseInventory is pure (texts in, data out); loadInventory reads the files.
import { readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from "yaml";
import type { z } from "zod";
import { INVENTORY_FILES, type Inventory } from "./schema.ts";
import { validateInventory, type FileKey, type SemanticProblem } from "./validate.ts";
import { METERING_FILE, parseMetering, type Metering } from "./metering.ts";
import { validateWorkers } from "./workers.ts";
import { escapeControls } from "../../workers/shared/printable.ts";

export type PathSegment = string | number;

export interface Problem {
  file: string;
  line: number;
  column: number;
  /** Field path inside the file, e.g. zones[3].records[1].content */
  path: string;
  message: string;
}

/** The inventory's texts: the three required files, and metering.yaml when it has one. */
export type Sources = Record<FileKey, { path: string; text: string }> & { metering?: { path: string; text: string } };

/**
 * The largest inventory file read, in bytes. A generated 5,000-zone zones.yaml is about
 * 0.7 MB; 16 MiB leaves room for tens of thousands of zones while keeping a hostile or
 * accidental huge file from exhausting memory in the YAML parser.
 */
export const MAX_INVENTORY_FILE_BYTES = 16 * 1024 * 1024;
/** YAML aliases a document may expand (the yaml library's own guard, made explicit):
 * an alias bomb ("billion laughs") is refused with a located error, not a stack trace. */
export const MAX_ALIAS_COUNT = 100;

function tooLarge(path: string, bytes: number): Problem {
  return {
    file: path,
    line: 1,
    column: 1,
    path: "",
    message: `the file is ${bytes} bytes; inventory files are limited to ${MAX_INVENTORY_FILE_BYTES} bytes (split the inventory or raise MAX_INVENTORY_FILE_BYTES)`,
  };
}

/**
 * The first map key of a document (in document order) that the inventory refuses, with
 * its field path and why:
 * - "__proto__": toJS() keeps it as an own property, and then zod's records drop it
 *   without a word, so the setting written there would silently not exist;
 * - a key written as an alias (`*k: ...`): uniqueKeys compares keys as written, so an
 *   alias repeating an earlier key (a model of the price table) is not seen as a
 *   duplicate, and its value silently replaces the first;
 * - a merge key (`<<:`, live under a `%YAML 1.1` header): what it merges in can be
 *   overridden or duplicated by the keys beside it without an error;
 * - a collection as a key (`? [a, b]`): toJS() stringifies it.
 * Alias values are not followed: what they repeat was written, and is found, at its
 * anchor.
 */
function badKey(node: unknown, path: PathSegment[]): { path: PathSegment[]; offset: number; message: string } | undefined {
  if (isMap(node)) {
    for (const pair of node.items) {
      const at = (pair.key as Node | null)?.range?.[0] ?? 0;
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (isAlias(pair.key)) return { path: [...path, `*${pair.key.source}`], offset: at, message: "a key may not be an alias (*name): it would not count as a duplicate of the key it repeats, and its value would silently replace that key's" };
      if (typeof key === "symbol" || key === "<<") return { path: [...path, "<<"], offset: at, message: "a merge key (<<) is not allowed: write each key where it applies (merged keys can be overridden or repeated without an error)" };
      if (pair.key !== null && !isScalar(pair.key)) return { path: [...path, "?"], offset: at, message: "a key must be a plain value, not a list or a map" };
      if (key === "__proto__") return { path: [...path, key], offset: at, message: `a key may not be "__proto__" (it would be dropped without a word)` };
      const found = badKey(pair.value, [...path, String(key ?? "?")]);
      if (found) return found;
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const found = badKey(item, [...path, i]);
      if (found) return found;
    }
  }
  return undefined;
}

/** A parsed YAML document as plain data, or the located problem when it cannot be read
 *  as such: every inventory file is read through this, never through a bare toJS().
 *  - An alias bomb, or an alias that names no anchor: toJS() would throw with no file or
 *    line.
 *  - A key the inventory refuses, anywhere (badKey): "__proto__", an alias, a merge key,
 *    a collection. */
export function yamlData(path: string, doc: Document.Parsed, lines: LineCounter): { data: unknown } | { problem: Problem } {
  const bad = badKey(doc.contents, []);
  if (bad) {
    const pos = lines.linePos(bad.offset);
    return { problem: { file: path, line: pos.line, column: pos.col, path: formatPath(bad.path), message: bad.message } };
  }
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {} };
  } catch (e) {
    // yaml throws a ReferenceError from toJS for an alias bomb ("Excessive alias count
    // indicates a resource exhaustion attack") or an alias naming no anchor. Point at the
    // first alias naming no anchor, else at the first alias of the document.
    // One pass in document order: an alias may only name an anchor set before it.
    const anchors = new Set<string>();
    let offset: number | undefined;
    let first: number | undefined;
    visit(doc, {
      Node(_, node) {
        if (isAlias(node)) {
          first ??= node.range?.[0];
          if (!anchors.has(node.source)) {
            offset = node.range?.[0];
            return visit.BREAK;
          }
        } else if (node.anchor) {
          anchors.add(node.anchor);
        }
        return undefined;
      },
    });
    offset ??= first ?? 0;
    const pos = lines.linePos(offset);
    const message = e instanceof ReferenceError && /alias count/i.test(e.message) ? `too many YAML alias expansions (an alias bomb?); aliases may expand at most ${MAX_ALIAS_COUNT} times` : `cannot read the YAML: ${(e as Error).message.split("\n")[0]}`;
    return { problem: { file: path, line: pos.line, column: pos.col, path: "", message } };
  }
}

export type LoadResult = { ok: true; inventory: Inventory } | { ok: false; problems: Problem[] };

/** Thrown by loadInventoryOrThrow; its message lists every problem, one per line. */
export class InventoryError extends Error {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super(`the inventory has ${problems.length} problem(s):\n${problems.map(formatProblem).join("\n")}`);
    this.name = "InventoryError";
    this.problems = problems;
  }
}

export function formatPath(path: readonly PathSegment[]): string {
  return path.map((seg, i) => (typeof seg === "number" ? `[${seg}]` : i === 0 ? seg : `.${seg}`)).join("");
}

/** One problem as one line. A key or value quoted from the file may hold control or
 *  bidirectional characters (an escape sequence would drive the terminal or CI log that
 *  shows it): they are printed as \uXXXX escapes. */
export function formatProblem(p: Problem): string {
  return escapeControls(`${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}`);
}

interface ParsedFile {
  path: string;
  doc: Document.Parsed;
  lines: LineCounter;
}

/** Where a field is in a parsed YAML document: the key of a map entry when asked for,
 * else the value. Shared by every YAML file edgefleet reads (metering.ts too). */
export function locateInDoc(doc: Document, lines: LineCounter, path: readonly PathSegment[], atKey = false): { line: number; column: number } {
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const [i, seg] of path.entries()) {
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      if (!pair) break;
      const key = pair.key as Node;
      const value = pair.value as Node | null;
      offset = (last && atKey) || !value?.range ? (key.range?.[0] ?? offset) : value.range[0];
      node = value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (!item?.range) break;
      offset = item.range[0];
      node = item;
    } else {
      break;
    }
  }
  const pos = lines.linePos(offset);
  return { line: pos.line, column: pos.col };
}

const locate = (file: ParsedFile, path: readonly PathSegment[], atKey = false) => locateInDoc(file.doc, file.lines, path, atKey);

function zodProblems(file: ParsedFile, error: z.ZodError): Problem[] {
  const problems: Problem[] = [];
  for (const issue of error.issues) {
    const path = issue.path as PathSegment[];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const at = locate(file, [...path, key], true);
        problems.push({ file: file.path, ...at, path: formatPath([...path, key]), message: `unknown key '${key}'` });
      }
      continue;
    }
    problems.push({ file: file.path, ...locate(file, path), path: formatPath(path), message: issue.message });
  }
  return problems;
}

/** Parses and validates the three inventory texts; reports every problem found. */
export function parseInventory(dir: string, sources: Sources): LoadResult {
  const problems: Problem[] = [];
  const data: Partial<Record<FileKey, unknown>> = {};
  const parse = (key: FileKey): ParsedFile => {
    const { path, text } = sources[key];
    const lines = new LineCounter();
    return { path, doc: parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true }), lines };
  };

  for (const key of Object.keys(INVENTORY_FILES) as FileKey[]) {
    // The document (with its source positions) is dropped once read: a 5,000-zone
    // inventory's nodes would otherwise stay alive through the whole plan. It is
    // parsed again only to locate problems found later.
    const bytes = Buffer.byteLength(sources[key].text, "utf8");
    if (bytes > MAX_INVENTORY_FILE_BYTES) {
      problems.push(tooLarge(sources[key].path, bytes));
      continue;
    }
    const file = parse(key);
    const { path, doc } = file;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = e.linePos?.[0] ?? { line: 1, col: 1 };
        problems.push({ file: path, line: pos.line, column: pos.col, path: "", message: `YAML: ${e.message.split("\n")[0]}` });
      }
      continue;
    }
    const js = yamlData(file.path, file.doc, file.lines);
    if ("problem" in js) {
      problems.push(js.problem);
      continue;
    }
    const result = INVENTORY_FILES[key].schema.safeParse(js.data);
    if (result.success) data[key] = result.data;
    else problems.push(...zodProblems(file, result.error));
  }

  // metering.yaml is optional: an inventory without it deploys no Worker that needs it
  // (validateWorkers says which do).
  let metering: Metering | undefined;
  if (sources.metering) {
    const bytes = Buffer.byteLength(sources.metering.text, "utf8");
    const read = bytes > MAX_INVENTORY_FILE_BYTES ? { ok: false as const, problems: [tooLarge(sources.metering.path, bytes)] } : parseMetering(sources.metering.path, sources.metering.text);
    if (read.ok) metering = read.metering;
    else problems.push(...read.problems);
  }

  if (data.fleet && data.profiles && data.zones) {
    const inventory: Inventory = {
      dir,
      fleet: data.fleet as Inventory["fleet"],
      profiles: data.profiles as Inventory["profiles"],
      zones: (data.zones as { zones: Inventory["zones"] }).zones,
      ...(metering ? { metering } : {}),
    };
    const workers = validateWorkers(inventory, sources.metering ? { meteringFile: sources.metering.path } : {});
    const semantic: SemanticProblem[] = [...validateInventory(inventory), ...workers.problems];
    problems.push(...workers.configProblems);
    const reparsed = new Map<FileKey, ParsedFile>();
    for (const p of semantic) {
      const file = reparsed.get(p.file) ?? parse(p.file);
      reparsed.set(p.file, file);
      problems.push({ file: file.path, ...locate(file, p.path), path: formatPath(p.path), message: p.message });
    }
    if (problems.length === 0) return { ok: true, inventory };
  }
  problems.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
  return { ok: false, problems };
}

/** Reads the inventory directory's files; file names in problems are relative to `base`. */
export function readSources(dir: string, base = process.cwd()): Sources {
  const sources = {} as Sources;
  for (const [key, { file }] of Object.entries(INVENTORY_FILES) as [FileKey, { file: string }][]) {
    const path = join(dir, file);
    let text: string;
    try {
      // Refuse a huge file before reading it into memory.
      const size = statSync(path).size;
      if (size > MAX_INVENTORY_FILE_BYTES) throw new InventoryError([tooLarge(relative(base, path) || path, size)]);
      text = readFileSync(path, "utf8");
    } catch (e) {
      if (e instanceof InventoryError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw new InventoryError([
        { file: relative(base, path) || path, line: 1, column: 1, path: "", message: `cannot read the file (${code})` },
      ]);
    }
    sources[key] = { path: relative(base, path) || path, text };
  }
  const metering = join(dir, METERING_FILE);
  let size: number | undefined;
  try {
    size = statSync(metering).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new InventoryError([{ file: relative(base, metering) || metering, line: 1, column: 1, path: "", message: `cannot read the file (${(e as NodeJS.ErrnoException).code})` }]);
  }
  if (size !== undefined) {
    if (size > MAX_INVENTORY_FILE_BYTES) throw new InventoryError([tooLarge(relative(base, metering) || metering, size)]);
    sources.metering = { path: relative(base, metering) || metering, text: readFileSync(metering, "utf8") };
  }
  return sources;
}

/** Reads and checks an inventory; an unreadable file is a located problem too. File
 * names in problems are relative to `base`. */
export function loadInventory(dir: string, base = process.cwd()): LoadResult {
  let sources: Sources;
  try {
    sources = readSources(dir, base);
  } catch (e) {
    if (e instanceof InventoryError) return { ok: false, problems: e.problems };
    throw e;
  }
  return parseInventory(dir, sources);
}

export function loadInventoryOrThrow(dir: string): Inventory {
  const result = loadInventory(dir);
  if (!result.ok) throw new InventoryError(result.problems);
  return result.inventory;
}
