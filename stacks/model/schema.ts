// The inventory's zod schemas: the single source of truth for the three files in
// fleet/ (fleet.yaml, profiles.yaml, zones.yaml). Types come from z.infer; the JSON
// Schemas that editors use are generated from these (npm run schema).
// Checks that span several records or files live in validate.ts.
import type { Metering } from "./metering.ts";
import { z } from "zod";
import {
  CAA_TAGS,
  caaProblem,
  hostnameProblem,
  isIPv4,
  isIPv6,
  mailtoProblem,
  relativeNameProblem,
  spfTermProblem,
  zoneNameProblem,
} from "./dns.ts";

/** A string checked by one of the dns.ts predicates, which explain what is wrong. */
function checked(problem: (s: string) => string | undefined, description: string) {
  return z
    .string()
    .describe(description)
    .superRefine((s, ctx) => {
      const p = problem(s);
      if (p) ctx.addIssue({ code: "custom", message: p });
    });
}

const Key = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, { error: "use lowercase letters, digits and '-', starting with a letter" });

export const ZoneName = checked(zoneNameProblem, "Zone name, lowercase, no trailing dot (e.g. shop.example)");
export const Hostname = checked(hostnameProblem, "Fully qualified host name without trailing dot");
export const RelativeName = checked(relativeNameProblem, "Owner name relative to the zone; '@' is the apex");
export const Mailto = checked(mailtoProblem, "A mailto: URI");
export const Ttl = z
  .number()
  .int()
  .refine((n) => n === 1 || (n >= 60 && n <= 86400), { error: "ttl is 1 (automatic) or 60-86400 seconds" })
  .describe("Seconds; 1 means automatic");
const Priority = z.number().int().min(0).max(65535);
const SpfTerm = checked(spfTermProblem, "One SPF mechanism, e.g. include:_spf.google.com");
const CaaIssuer = checked(
  (s) => (hostnameProblem(s) ? `'${s}' is not a CA domain (e.g. 'letsencrypt.org')` : undefined),
  "A CA's issuer domain for CAA issue/issuewild",
);

// ---------------------------------------------------------------- fleet.yaml

const ScriptName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: "a Worker script name: lowercase letters, digits and '-', at most 63" });
const BindingName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: "a secret binding name: UPPER_SNAKE_CASE" });
const ConfigKey = z
  .string()
  .regex(/^[a-zA-Z][a-zA-Z0-9]*$/, { error: "a Pulumi config key (camelCase, read as edgefleet:<key>)" });

export const WorkerSpec = z
  .strictObject({
    script: ScriptName.describe("The deployed Worker's script name, unique in the account"),
    source: Key.describe("Folder under workers/ with the code and its wrangler.jsonc (e.g. llm-proxy)"),
    canary: z.boolean().default(false).describe("Changed first (key rotation stages and confirms it before the rest)"),
    domains: z
      .array(checked(hostnameProblem, "Hostname inside a zone of the inventory"))
      .default([])
      .describe("Hostnames this Worker serves as Workers custom domains (Cloudflare creates their DNS records and certificates)"),
    routes: z
      .array(
        z
          .string()
          .regex(/^[a-z0-9.-]+\/[^\s]*$/, { error: "a route pattern: host/path, e.g. api.example.com/*" })
          .describe("Route pattern host/path; the host needs a proxied record in its zone"),
      )
      .default([])
      .describe("Route patterns on proxied hostnames of the inventory's zones (e.g. api.shop.example/*)"),
    secrets: z
      .record(z.string(), ConfigKey)
      .superRefine((rec, ctx) => {
        for (const key of Object.keys(rec)) {
          const r = BindingName.safeParse(key);
          if (!r.success) ctx.addIssue({ code: "custom", path: [key], message: `'${key}': ${r.error.issues[0]!.message}` });
        }
      })
      .default({})
      .describe("secret_text bindings: binding name -> Pulumi secret config key (pulumi config set --secret edgefleet:<key>)"),
    vars: z.record(z.string(), z.string()).default({}).describe("Per-deployment values for vars declared in wrangler.jsonc"),
  })
  .describe("One deployed Worker");

// ---------------------------------------------------------------- mail receipt (issue 15.6)
// MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) for zones that receive mail; see stacks/model/mail.ts.

/** RFC 8461 3.2: 'testing' reports failures, 'enforce' refuses delivery without valid TLS, 'none' withdraws a policy. */
export const MtaStsMode = z.enum(["testing", "enforce", "none"]).describe("MTA-STS policy mode (RFC 8461 3.2)");
/** RFC 8460 3: where sending MTAs post TLS reports: mailto: or https:. */
const TlsRptUri = z
  .string()
  .superRefine((s, ctx) => {
    const p = s.startsWith("https:") ? (/^https:\/\/[^\s,;!]+$/.test(s) ? undefined : `'${s}' is not an https: URL`) : mailtoProblem(s);
    if (p) ctx.addIssue({ code: "custom", message: p });
  })
  .describe("A mailto: or https: URI for TLS reports (RFC 8460 3)");
const MailSettings = z
  .strictObject({
    tlsrpt: z
      .strictObject({ rua: z.array(TlsRptUri).min(1).describe("Where TLS reports go") })
      .optional()
      .describe("TLS-RPT (RFC 8460) of zones that receive mail; default: the DMARC report mailbox"),
    mtaSts: z
      .strictObject({
        // RFC 8461 3.2: max_age is at most 31557600 s; senders cache the policy that long.
        maxAge: z.number().int().min(86400).max(31557600).default(604800).describe("max_age of the MTA-STS policies, seconds (1 day to 1 year)"),
      })
      .default({ maxAge: 604800 }),
  })
  .default({ mtaSts: { maxAge: 604800 } })
  .describe("Settings for the zones that receive mail: TLS reports and MTA-STS");

export const FleetFile = z
  .strictObject({
    dmarc: z
      .strictObject({
        rua: Mailto.describe("Fleet-wide mailbox for DMARC aggregate reports"),
        // validate (issue 15.1): report mailboxes must be in a zone of the fleet or here.
        reportAllowlist: z
          .array(Hostname)
          .optional()
          .describe("Domains outside the fleet that may receive DMARC reports (rua/ruf), e.g. a reporting vendor"),
      })
      .describe("DMARC settings shared by every zone"),
    caa: z
      .strictObject({
        iodef: z
          .string()
          .superRefine((s, ctx) => {
            const p = caaProblem("iodef", s);
            if (p) ctx.addIssue({ code: "custom", message: p });
          })
          .optional()
          .describe("Where CAs report refused certificate requests (mailto: or https:)"),
      })
      .default({}),
    mail: MailSettings,
    defaults: z
      .strictObject({
        ttl: Ttl.default(3600),
      })
      .default({ ttl: 3600 }),
    stacks: z
      .strictObject({
        shards: z
          .array(Key)
          .min(1)
          .refine((a) => new Set(a).size === a.length, { error: "shard names must be unique" })
          .describe("Split the DNS posture across one Pulumi stack per shard (set edgefleet:shard in each stack)"),
      })
      .optional()
      .describe("How the fleet's DNS posture is split across Pulumi stacks; absent: one stack holds it all"),
    workers: z
      .array(WorkerSpec)
      .default([])
      .describe("The Workers edgefleet deploys besides the router (e.g. the LLM proxy), each with its hostnames and secrets"),
    router: z
      .strictObject({
        source: Key.default("router").describe("Folder under workers/ of the router Worker"),
        namespaceTitle: z.string().min(1).default("edgefleet-sites").describe("Title of the content map's KV namespace"),
        shards: z.number().int().min(1).optional().describe("Fix the number of router Workers; default ceil(zones / 800)"),
      })
      .default({ source: "router", namespaceTitle: "edgefleet-sites" })
      .describe("The router Worker serves every zone whose web posture is proxied, from the KV content map"),
    guard: z
      .strictObject({
        maxZoneChangeShare: z
          .number()
          .min(0)
          .max(1)
          .default(0.3)
          .describe("Refuse a plan that changes or removes more than this share of any zone's managed records"),
        maxFleetShare: z
          .number()
          .min(0)
          .max(1)
          .default(0.2)
          .describe("Refuse a plan that touches more than this share of the fleet's zones"),
      })
      .default({ maxZoneChangeShare: 0.3, maxFleetShare: 0.2 }),
  })
  .describe("edgefleet fleet-wide settings");

// ---------------------------------------------------------------- profiles.yaml

/** Text with ${zone}, ${zoneDashed} or ${vars.NAME} placeholders filled per zone. */
const Template = z.string().min(1).describe("Text; may use ${zone}, ${zoneDashed} and ${vars.NAME}");

export const Provider = z.strictObject({
  name: z.string().min(1).describe("The provider's name, for people"),
  mx: z
    .array(z.strictObject({ priority: Priority, host: Template }))
    .min(1, { error: "a mail provider has at least one MX" }),
  spf: z.array(SpfTerm).describe("SPF terms the provider needs (the record ends with -all)"),
  dkim: z
    .array(
      z.strictObject({
        selector: Key.describe("DKIM selector (the label before ._domainkey)"),
        type: z.enum(["TXT", "CNAME"]),
        value: Template,
      }),
    )
    .describe("DKIM selectors the provider signs with"),
});

export const Profile = z.strictObject({
  description: z.string().min(1),
  mail: z
    .union([z.literal("none"), Key])
    .describe("'none' for a zone that sends no mail, else the key of a provider in this file"),
  web: z.enum(["none", "proxied"]).describe("'proxied': served through Cloudflare (router or proxy Worker)"),
  mtaSts: MtaStsMode.optional().describe("MTA-STS mode of the profile's zones when they receive mail (default testing)"),
});

export const ProfilesFile = z.strictObject({
  providers: z.record(Key, Provider).default({}),
  profiles: z.record(Key, Profile),
});

// ---------------------------------------------------------------- zones.yaml

const base = {
  name: RelativeName,
  ttl: Ttl.optional(),
  comment: z.string().max(100).optional(),
};
const proxiable = { proxied: z.boolean().optional() };

export const RecordSpec = z.discriminatedUnion(
  "type",
  [
    z.strictObject({
      type: z.literal("A"),
      ...base,
      ...proxiable,
      content: z.string().refine(isIPv4, { error: "not an IPv4 address" }),
    }),
    z.strictObject({
      type: z.literal("AAAA"),
      ...base,
      ...proxiable,
      content: z.string().refine(isIPv6, { error: "not an IPv6 address" }),
    }),
    z.strictObject({ type: z.literal("CNAME"), ...base, ...proxiable, content: Hostname }),
    z.strictObject({
      type: z.literal("MX"),
      ...base,
      priority: Priority,
      content: z
        .string()
        .superRefine((s, ctx) => {
          const p = s === "." ? undefined : hostnameProblem(s);
          if (p) ctx.addIssue({ code: "custom", message: p });
        })
        .describe("Mail exchanger host, or '.' for a null MX (RFC 7505)"),
    }),
    z.strictObject({ type: z.literal("TXT"), ...base, content: z.string().min(1).max(4096) }),
    z
      .strictObject({
        type: z.literal("CAA"),
        ...base,
        flags: z.union([z.literal(0), z.literal(128)]).default(0),
        tag: z.string(),
        value: z.string(),
      })
      .superRefine((r, ctx) => {
        const p = caaProblem(r.tag, r.value);
        const field = (CAA_TAGS as readonly string[]).includes(r.tag) ? "value" : "tag";
        if (p) ctx.addIssue({ code: "custom", message: p, path: [field] });
      }),
    z.strictObject({
      type: z.literal("SRV"),
      ...base,
      priority: Priority,
      weight: Priority,
      port: Priority,
      // validate (issue 15.3): '.' means "service not available" (RFC 2782).
      target: z
        .string()
        .superRefine((s, ctx) => {
          const p = s === "." ? undefined : hostnameProblem(s);
          if (p) ctx.addIssue({ code: "custom", message: p });
        })
        .describe("Target host, or '.' when the service is not available (RFC 2782)"),
    }),
  ],
  { error: "type must be one of A, AAAA, CNAME, MX, TXT, CAA, SRV" },
);

export const IgnoreRule = z
  .strictObject({
    type: z.string().regex(/^([A-Z]+|\*)$/, { error: "a record type such as TXT, or '*'" }),
    name: RelativeName,
    content: z.string().optional().describe("Only records whose content matches; '*' is a wildcard"),
  })
  .describe("Records edgefleet leaves alone: never created, changed or deleted");

export const Overrides = z.strictObject({
  ttl: Ttl.optional().describe("TTL of this zone's unproxied posture records"),
  web: z.enum(["none", "proxied"]).optional(),
  caa: z
    .strictObject({
      issue: z.array(CaaIssuer).optional().describe("CAs allowed besides the profile's"),
    })
    .optional(),
  spf: z.strictObject({ include: z.array(SpfTerm).optional() }).optional(),
  dmarc: z
    .strictObject({ rua: z.array(Mailto).optional().describe("Report mailboxes besides the fleet's") })
    .optional(),
  mtaSts: MtaStsMode.optional().describe("This zone's MTA-STS mode (testing first, enforce once the TLS reports are clean)"),
});

export const ZoneSpec = z.strictObject({
  name: ZoneName,
  id: z
    .string({
      // YAML reads an all-digit (or digits-e-digits) id as a number: say so.
      error: (iss) => (typeof iss.input === "number" ? "quote the zone id: YAML read it as a number" : undefined),
    })
    .regex(/^[0-9a-f]{32}$/, { error: "a Cloudflare zone id is 32 lowercase hex digits" })
    .optional()
    .describe("Cloudflare zone id of an existing zone; omit it and edgefleet creates the zone"),
  profile: Key,
  shard: Key.optional().describe("Pin the zone to this shard (fleet.yaml stacks.shards); default: assigned by hashing its name"),
  tags: z.array(Key).default([]),
  vars: z.record(z.string().regex(/^[a-zA-Z][a-zA-Z0-9]*$/), z.string()).default({}),
  overrides: Overrides.default({}),
  records: z.array(RecordSpec).default([]),
  ignore: z.array(IgnoreRule).default([]),
});

export const ZonesFile = z.strictObject({
  zones: z.array(ZoneSpec),
});

export type FleetFile = z.infer<typeof FleetFile>;
export type WorkerSpec = z.infer<typeof WorkerSpec>;
export type ProfilesFile = z.infer<typeof ProfilesFile>;
export type Provider = z.infer<typeof Provider>;
export type Profile = z.infer<typeof Profile>;
export type RecordSpec = z.infer<typeof RecordSpec>;
export type IgnoreRule = z.infer<typeof IgnoreRule>;
export type ZoneSpec = z.infer<typeof ZoneSpec>;
export type ZonesFile = z.infer<typeof ZonesFile>;

/** The three files of an inventory, in the order they are read. */
export const INVENTORY_FILES = {
  fleet: { file: "fleet.yaml", schema: FleetFile },
  profiles: { file: "profiles.yaml", schema: ProfilesFile },
  zones: { file: "zones.yaml", schema: ZonesFile },
} as const;

export interface Inventory {
  /** The directory the files came from, as given. */
  dir: string;
  fleet: FleetFile;
  profiles: ProfilesFile;
  zones: ZoneSpec[];
  /** metering.yaml (prices, the ledger's and the archive's retention), when the inventory has one. */
  metering?: Metering;
}
