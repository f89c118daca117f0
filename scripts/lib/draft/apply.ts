// Applies drafted edits to zones.yaml as surgical text splices at the positions the
// YAML parser reports, so every untouched line (comments, quoting, flow style,
// blank lines) stays byte-for-byte as the operator wrote it and the diff shows only
// the change. Refuses edits that name unknown zones or records, with reasons.
// Every value is written through the YAML library's own serialisation (never pasted in
// as text), and the result is parsed again: the zones that changed must be exactly the
// zones the edits name, or the whole draft is refused.
import { isMap, isScalar, isSeq, parse, parseDocument, stringify, type Pair, type YAMLMap, type YAMLSeq } from "yaml";
import type { IgnoreRule, Inventory, RecordSpec } from "../../../stacks/model/schema.ts";
import type { Edit } from "./edits.ts";

export type ApplyResult = { ok: true; text: string; touched: string[] } | { ok: false; problems: string[] };

interface ZoneChange {
  profile?: string;
  addTags: string[];
  removeTags: Set<string>;
  addRecords: RecordSpec[];
  removeRecords: { type: string; name: string; content?: string; edit: number }[];
  addIgnores: IgnoreRule[];
  remove: boolean;
}

interface NewZone {
  name: string;
  profile: string;
  tags: string[];
  change: ZoneChange;
}

interface Splice {
  at: number;
  end: number;
  text: string;
  seq: number;
}

const emptyChange = (): ZoneChange => ({ addTags: [], removeTags: new Set(), addRecords: [], removeRecords: [], addIgnores: [], remove: false });

function describeEdit(e: Edit, i: number): string {
  return `edit ${i + 1} (${e.op})`;
}

/** One line of YAML for a record or rule, in the inventory's flow style. */
function flow(value: object): string {
  return oneLine(stringify(value, { collectionStyle: "flow", flowCollectionPadding: true, lineWidth: 0, blockQuote: false }));
}

/** One scalar (a name, a profile), quoted by the YAML library when it needs to be. */
function scalar(value: string): string {
  return oneLine(stringify(value, { lineWidth: 0, blockQuote: false }));
}

/** A list of tags in the inventory's flow style: [a, b]. */
function flowList(values: string[]): string {
  return oneLine(stringify(values, { collectionStyle: "flow", flowCollectionPadding: false, lineWidth: 0, blockQuote: false }));
}

class UnsafeValue extends Error {}

/** The serialisers above must produce one line; the edit schemas make sure, this re-checks. */
function oneLine(yaml: string): string {
  const text = yaml.trimEnd();
  if (text.includes("\n")) throw new UnsafeValue(`a drafted value would span lines: ${JSON.stringify(text)}; refused`);
  return text;
}

function recordMatches(r: RecordSpec, q: { type: string; name: string; content?: string }): boolean {
  if (r.type !== q.type || r.name !== q.name) return false;
  if (q.content === undefined) return true;
  const value = "content" in r ? r.content : r.type === "CAA" ? r.value : r.type === "SRV" ? r.target : undefined;
  return value === q.content;
}

export function applyEdits(zonesText: string, inventory: Inventory, edits: Edit[]): ApplyResult {
  try {
    return applyUnchecked(zonesText, inventory, edits);
  } catch (e) {
    if (e instanceof UnsafeValue) return { ok: false, problems: [e.message] };
    throw e;
  }
}

function applyUnchecked(zonesText: string, inventory: Inventory, edits: Edit[]): ApplyResult {
  const problems: string[] = [];
  const existing = new Map(inventory.zones.map((z) => [z.name, z]));
  const changes = new Map<string, ZoneChange>();
  const added = new Map<string, NewZone>();
  const changeOf = (zone: string, e: Edit, i: number): ZoneChange | undefined => {
    const fresh = added.get(zone);
    if (fresh) return fresh.change;
    if (!existing.has(zone)) {
      problems.push(`${describeEdit(e, i)}: unknown zone '${zone}'`);
      return undefined;
    }
    let c = changes.get(zone);
    if (!c) changes.set(zone, (c = emptyChange()));
    return c;
  };

  edits.forEach((e, i) => {
    switch (e.op) {
      case "add_zone":
        if (existing.has(e.name) || added.has(e.name)) problems.push(`${describeEdit(e, i)}: zone '${e.name}' already exists`);
        else added.set(e.name, { name: e.name, profile: e.profile, tags: e.tags ?? [], change: emptyChange() });
        break;
      case "remove_zone":
        for (const z of e.zones) {
          if (added.has(z)) problems.push(`${describeEdit(e, i)}: zone '${z}' is added by this same draft`);
          const c = changeOf(z, e, i);
          if (c) c.remove = true;
        }
        break;
      case "set_profile":
        for (const z of e.zones) {
          const c = changeOf(z, e, i);
          if (c) c.profile = e.profile;
        }
        break;
      case "add_tags":
      case "remove_tags":
        for (const z of e.zones) {
          const c = changeOf(z, e, i);
          if (!c) continue;
          for (const t of e.tags) {
            if (e.op === "add_tags") {
              c.removeTags.delete(t);
              if (!c.addTags.includes(t)) c.addTags.push(t);
            } else {
              c.addTags = c.addTags.filter((x) => x !== t);
              c.removeTags.add(t);
            }
          }
        }
        break;
      case "add_record": {
        const c = changeOf(e.zone, e, i);
        if (c) c.addRecords.push(e.record);
        break;
      }
      case "remove_record": {
        const c = changeOf(e.zone, e, i);
        if (!c) break;
        const zone = existing.get(e.zone);
        const hits = zone?.records.filter((r) => recordMatches(r, e)) ?? [];
        const what = `${e.type} ${e.name}${e.content !== undefined ? ` '${e.content}'` : ""}`;
        if (hits.length === 0) problems.push(`${describeEdit(e, i)}: zone '${e.zone}' has no extra record ${what} (posture records change through its profile)`);
        else if (hits.length > 1) problems.push(`${describeEdit(e, i)}: ${hits.length} records of '${e.zone}' match ${what}; give its content`);
        else c.removeRecords.push({ type: e.type, name: e.name, content: e.content, edit: i });
        break;
      }
      case "ignore_record": {
        const c = changeOf(e.zone, e, i);
        if (c) c.addIgnores.push(e.rule);
        break;
      }
    }
  });
  for (const [zone, c] of changes) {
    if (c.remove && (c.profile || c.addTags.length || c.removeTags.size || c.addRecords.length || c.removeRecords.length || c.addIgnores.length)) {
      problems.push(`zone '${zone}' is both removed and edited by this draft`);
    }
  }
  if (problems.length > 0) return { ok: false, problems };

  const doc = parseDocument(zonesText);
  const seq = doc.get("zones", true);
  if (!isSeq(seq)) return { ok: false, problems: ["zones.yaml has no 'zones' list"] };
  const splices: Splice[] = [];
  let order = 0;
  const splice = (at: number, end: number, text: string) => splices.push({ at, end, text, seq: order++ });
  const lineStart = (offset: number) => zonesText.lastIndexOf("\n", offset - 1) + 1;
  const lineEnd = (offset: number) => {
    const nl = zonesText.indexOf("\n", offset);
    return nl === -1 ? zonesText.length : nl + 1;
  };
  const column = (offset: number) => offset - lineStart(offset);
  const contentEnd = (node: { range?: [number, number, number] | null }) => lineEnd(node.range![1] - 1);

  const items = seq.items as YAMLMap[];
  if (items.length === 0 || !items.every((it) => isMap(it) && !it.flow)) {
    return { ok: false, problems: ["zones.yaml must list zones as block maps ('- name: ...') for edits to keep its formatting"] };
  }
  const dash = column(items[0]!.range![0]) - 2;
  const keyIndent = " ".repeat(dash + 2);

  for (const item of items) {
    const name = String(item.get("name"));
    const c = changes.get(name);
    if (!c) continue;
    if (c.remove) {
      splice(lineStart(item.range![0]), contentEnd(item), "");
      continue;
    }
    const pair = (key: string) => item.items.find((p) => isScalar(p.key) && p.key.value === key) as Pair<{ range: [number, number, number] }, YAMLSeq | { range: [number, number, number] }> | undefined;
    const profilePair = pair("profile")!;
    if (c.profile) splice(profilePair.value!.range![0], profilePair.value!.range![1], scalar(c.profile));

    if (c.addTags.length > 0 || c.removeTags.size > 0) {
      const current = (inventory.zones.find((z) => z.name === name)?.tags ?? []).filter((t) => !c.removeTags.has(t));
      const tags = [...current, ...c.addTags.filter((t) => !current.includes(t))];
      const tagsPair = pair("tags");
      const rendered = flowList(tags);
      if (tagsPair) splice(tagsPair.value!.range![0], tagsPair.value!.range![1], rendered);
      else if (tags.length > 0) splice(lineEnd(profilePair.value!.range![1]), lineEnd(profilePair.value!.range![1]), `${keyIndent}tags: ${rendered}\n`);
    }

    const zoneEnd = contentEnd(item);
    const listEdit = (key: "records" | "ignore", adds: object[], removes: (it: unknown) => boolean) => {
      const p = pair(key);
      const list = p?.value;
      if (p && list && isSeq(list) && !list.flow && list.items.length > 0) {
        const listItems = list.items as YAMLMap[];
        const itemIndent = " ".repeat(column(listItems[0]!.range![0]) - 2);
        const kept = listItems.filter((it) => !removes(it.toJSON()));
        if (kept.length === 0 && adds.length === 0) {
          splice(lineStart(p.key.range[0]), contentEnd(list), "");
          return;
        }
        for (const it of listItems) if (removes(it.toJSON())) splice(lineStart(it.range![0]), contentEnd(it), "");
        const at = contentEnd(list);
        for (const a of adds) splice(at, at, `${itemIndent}- ${flow(a)}\n`);
      } else if (p && adds.length > 0) {
        // An empty or flow-style list: rewrite just this key in block style.
        splice(lineStart(p.key.range[0]), contentEnd(p.value as YAMLMap), `${keyIndent}${key}:\n${adds.map((a) => `${keyIndent}  - ${flow(a)}\n`).join("")}`);
      } else if (adds.length > 0) {
        splice(zoneEnd, zoneEnd, `${keyIndent}${key}:\n${adds.map((a) => `${keyIndent}  - ${flow(a)}\n`).join("")}`);
      }
    };
    listEdit("records", c.addRecords, (r) => c.removeRecords.some((q) => recordMatches(r as RecordSpec, q)));
    listEdit("ignore", c.addIgnores, () => false);
  }

  if (added.size > 0) {
    const at = contentEnd(items[items.length - 1]!);
    const pad = " ".repeat(dash);
    for (const z of added.values()) {
      const lines = [`${pad}- name: ${scalar(z.name)}`, `${keyIndent}profile: ${scalar(z.change.profile ?? z.profile)}`];
      const tags = [...new Set([...z.tags, ...z.change.addTags])].filter((t) => !z.change.removeTags.has(t));
      if (tags.length > 0) lines.push(`${keyIndent}tags: ${flowList(tags)}`);
      if (z.change.addRecords.length > 0) lines.push(`${keyIndent}records:`, ...z.change.addRecords.map((r) => `${keyIndent}  - ${flow(r)}`));
      if (z.change.addIgnores.length > 0) lines.push(`${keyIndent}ignore:`, ...z.change.addIgnores.map((r) => `${keyIndent}  - ${flow(r)}`));
      splice(at, at, `${lines.join("\n")}\n`);
    }
  }

  // Apply from the end so earlier offsets stay valid; inserts at one offset keep edit order.
  splices.sort((a, b) => b.at - a.at || b.seq - a.seq);
  let text = zonesText;
  for (const s of splices) text = text.slice(0, s.at) + s.text + text.slice(s.end);
  const touched = [...changes.keys(), ...added.keys()].sort();
  const unexpected = changedZones(zonesText, text, touched);
  if (unexpected.length > 0) return { ok: false, problems: unexpected };
  return { ok: true, text, touched };
}

/**
 * Parses the file before and after and compares it zone by zone: the zones that
 * changed (added, removed or edited) must be exactly `named`, nothing outside `zones:`
 * may change, and no zone may appear twice. Returns the problems (none: it holds).
 */
export function changedZones(before: string, after: string, named: string[]): string[] {
  const read = (text: string) => {
    let doc: unknown;
    try {
      doc = parse(text, { uniqueKeys: true, maxAliasCount: 0 });
    } catch (e) {
      return { error: (e as Error).message.split("\n")[0]! };
    }
    const zones = (doc as { zones?: unknown })?.zones;
    if (!Array.isArray(zones)) return { error: "no 'zones' list" };
    const byName = new Map<string, string>();
    const duplicates: string[] = [];
    for (const z of zones) {
      const name = String((z as { name?: unknown })?.name);
      if (byName.has(name)) duplicates.push(name);
      byName.set(name, JSON.stringify(z));
    }
    const { zones: _z, ...rest } = doc as Record<string, unknown>;
    return { byName, duplicates, rest: JSON.stringify(rest) };
  };
  const a = read(before);
  const b = read(after);
  if ("error" in b) return [`the drafted zones.yaml does not parse back (${b.error}); nothing was written`];
  if ("error" in a) return [`zones.yaml does not parse (${a.error})`];
  const problems: string[] = [];
  if (b.duplicates.length > 0) problems.push(`the drafted zones.yaml lists ${b.duplicates.join(", ")} more than once`);
  if (a.rest !== b.rest) problems.push("the edits changed zones.yaml outside its 'zones' list");
  const changed = new Set<string>();
  for (const [name, json] of b.byName) if (a.byName.get(name) !== json) changed.add(name);
  for (const name of a.byName.keys()) if (!b.byName.has(name)) changed.add(name);
  const wanted = new Set(named);
  const extra = [...changed].filter((n) => !wanted.has(n)).sort();
  const unchanged = named.filter((n) => !changed.has(n));
  if (extra.length > 0) problems.push(`the edits would change zone(s) no edit names: ${extra.join(", ")}; refused`);
  if (unchanged.length > 0) problems.push(`the edits name zone(s) they leave unchanged (already so?): ${unchanged.join(", ")}`);
  return problems;
}
