// Checks that no single field's schema can make: references between files, unique
// names, and DNS rules across the records of a name (CNAME beside other data, one
// SPF record, a null MX alone, no collision with the managed posture).
// Returns every problem with its file and field path; load.ts adds line and column.
import { fleetChecks } from "./checks/index.ts";
import { globMatch } from "./checks/glob.ts";
import { isSpf, spfLookupCount } from "./dns.ts";
import { mailProblems } from "./mail.ts";
import { fleetRecords, missingVars, rdata, unknownPlaceholders, type DnsRec } from "./posture.ts";
import type { IgnoreRule, Inventory } from "./schema.ts";

export type FileKey = "fleet" | "profiles" | "zones";

export interface SemanticProblem {
  file: FileKey;
  path: (string | number)[];
  message: string;
}

function describe(r: DnsRec): string {
  return `${r.type} ${r.name} (${r.what})`;
}

/** Whether an ignore rule covers a record. */
export function ignoreMatches(rule: IgnoreRule, r: Pick<DnsRec, "type" | "name"> & { value: string }): boolean {
  if (rule.type !== "*" && rule.type !== r.type) return false;
  if (rule.name !== r.name) return false;
  if (rule.content === undefined) return true;
  return globMatch(rule.content, r.value); // linear time: no RegExp backtracking
}

export function validateInventory(inv: Inventory): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  const add = (file: FileKey, path: (string | number)[], message: string) => problems.push({ file, path, message });

  // profiles.yaml: providers' templates and profiles' provider references.
  for (const [key, provider] of Object.entries(inv.profiles.providers)) {
    const templates: [(string | number)[], string][] = [
      ...provider.mx.map((m, i): [(string | number)[], string] => [["mx", i, "host"], m.host]),
      ...provider.dkim.map((d, i): [(string | number)[], string] => [["dkim", i, "value"], d.value]),
    ];
    for (const [path, t] of templates) {
      for (const u of unknownPlaceholders(t)) add("profiles", ["providers", key, ...path], `unknown placeholder \${${u}} (use \${zone}, \${zoneDashed} or \${vars.NAME})`);
    }
    const lookups = spfLookupCount(["v=spf1", ...provider.spf].join(" "));
    if (lookups > 10) add("profiles", ["providers", key, "spf"], `SPF has ${lookups} DNS-lookup terms; RFC 7208 allows at most 10`);
  }
  for (const [key, profile] of Object.entries(inv.profiles.profiles)) {
    if (profile.mail !== "none" && !inv.profiles.providers[profile.mail]) {
      const known = Object.keys(inv.profiles.providers).join(", ") || "none defined";
      add("profiles", ["profiles", key, "mail"], `unknown mail provider '${profile.mail}' (providers: ${known})`);
    }
  }

  // zones.yaml: names, references, variables.
  const firstIndex = new Map<string, number>();
  inv.zones.forEach((zone, i) => {
    const first = firstIndex.get(zone.name);
    if (first !== undefined) add("zones", ["zones", i, "name"], `duplicate zone '${zone.name}' (first at zones[${first}])`);
    else firstIndex.set(zone.name, i);

    const shards = inv.fleet.stacks?.shards;
    if (zone.shard !== undefined && !shards?.includes(zone.shard)) {
      add("zones", ["zones", i, "shard"], shards ? `unknown shard '${zone.shard}' (fleet.yaml stacks.shards: ${shards.join(", ")})` : "the fleet is not split into shards (fleet.yaml has no stacks.shards)");
    }
    const profile = inv.profiles.profiles[zone.profile];
    if (!profile) {
      add("zones", ["zones", i, "profile"], `unknown profile '${zone.profile}' (profiles: ${Object.keys(inv.profiles.profiles).join(", ")})`);
      return;
    }
    const provider = profile.mail === "none" ? undefined : inv.profiles.providers[profile.mail];
    const missing = missingVars(zone, provider);
    if (missing.length > 0) add("zones", ["zones", i, "vars"], `profile '${zone.profile}' needs vars: ${missing.join(", ")}`);
    if (profile.mail === "none" && zone.overrides.spf?.include?.length) {
      add("zones", ["zones", i, "overrides", "spf", "include"], `profile '${zone.profile}' sends no mail: its SPF is 'v=spf1 -all' and takes no includes`);
    }
    // The zone's SPF (lookups followed through the fleet) is checked in checks/email.ts.
  });

  // Records: per zone, the managed posture plus extra records, name by name.
  const records = fleetRecords(inv);
  inv.zones.forEach((zone, i) => {
    if (firstIndex.get(zone.name) !== i) return;
    const recs = records.get(zone.name) ?? [];
    const at = (r: DnsRec, field?: string) => (r.index === undefined ? ["zones", i] : ["zones", i, "records", r.index, ...(field ? [field] : [])]);
    const managed = recs.filter((r) => r.source !== "extra");
    const extras = recs.filter((r) => r.source === "extra");

    // An extra record may not stand where the posture manages that type and name,
    // except a non-SPF TXT beside a managed SPF (verification tokens live at the apex,
    // and since issue 15.5 names with address records carry SPF -all too).
    for (const r of extras) {
      const clash = managed.find(
        (m) => m.type === r.type && m.name === r.name && !(r.type === "TXT" && m.key === "spf" && !isSpf(r.content ?? "")),
      );
      if (clash) {
        add("zones", at(r), `${r.type} ${r.name} collides with the managed posture record ${describe(clash)}; change the profile or overrides instead`);
      }
    }

    const byName = new Map<string, DnsRec[]>();
    for (const r of recs) {
      const group = byName.get(r.name);
      if (group) group.push(r);
      else byName.set(r.name, [r]);
    }
    for (const [name, group] of byName) {
      const cname = group.find((r) => r.type === "CNAME");
      const others = group.filter((r) => r !== cname);
      if (cname && others.length > 0) {
        const culprit = cname.source === "extra" ? cname : others.find((r) => r.source === "extra") ?? cname;
        add("zones", at(culprit), `a CNAME cannot stand beside other data at '${name}' (RFC 1034 3.6.2): ${describe(cname)} and ${describe(others[0]!)}`);
      }
      const mx = group.filter((r) => r.type === "MX");
      const nullMx = mx.find((r) => r.content === ".");
      if (nullMx && mx.length > 1) {
        const culprit = mx.find((r) => r !== nullMx && r.source === "extra") ?? nullMx;
        add("zones", at(culprit), `a null MX must be the only MX at '${name}' (RFC 7505)`);
      }
      const spf = group.filter((r) => r.type === "TXT" && isSpf(r.content ?? ""));
      // (A second SPF beside the managed one is already reported as a collision.)
      if (spf.every((r) => r.source === "extra")) {
        for (const extra of spf.slice(1)) add("zones", at(extra, "content"), `two SPF records at '${name}': RFC 7208 allows exactly one`);
      }
      const seen = new Map<string, DnsRec>();
      for (const r of group) {
        const k = `${r.type} ${rdata(r)}`;
        if (seen.has(k) && r.source === "extra") add("zones", at(r), `duplicate record ${r.type} ${name} ${rdata(r)}`);
        seen.set(k, r);
      }
    }

    for (const r of extras) {
      if (r.type === "MX" && r.content === "." && r.priority !== 0) add("zones", at(r, "priority"), "a null MX has priority 0 (RFC 7505)");
    }

    // Ignore rules are checked in checks/email.ts: none may cover a managed name.
  });
  problems.push(...fleetChecks(inv));
  // Mail: provider values from vars, names the mail posture owns (stacks/model/mail.ts).
  for (const p of mailProblems(inv)) add(p.file, p.path, p.message);
  return problems;
}
