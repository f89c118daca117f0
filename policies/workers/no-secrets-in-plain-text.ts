// Secrets belong in secret_text bindings (encrypted, never shown); a plain_text
// binding is readable by anyone with dashboard or API access, and in Pulumi state.
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPE } from "../lib/resources.ts";

/** Binding names that say "secret". */
const SECRET_NAME = /(secret|token|passw(or)?d|api[_-]?key|private[_-]?key|credential|auth|bearer|signing[_-]?key|session[_-]?key)/i;
/** Values that look like credentials: known prefixes, PEM blocks, long random strings. */
const SECRET_VALUE = [
  /^sk-ant-/, // Anthropic
  /^sk-[A-Za-z0-9_-]{20,}/, // OpenAI-style
  /^(gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}/, // GitHub
  /^(AKIA|ASIA)[A-Z0-9]{16}$/, // AWS access key id
  /^xox[abpors]-/, // Slack
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /^efk_[A-Za-z0-9_-]{16,}/, // edgefleet tenant keys
];

function looksRandom(v: string): boolean {
  // 32+ characters of base64/hex alphabet without spaces, mixing classes: a key, not prose.
  if (v.length < 32 || /\s/.test(v) || !/^[A-Za-z0-9+/=_-]+$/.test(v)) return false;
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/].filter((re) => re.test(v)).length;
  return classes >= 2 && new Set(v).size >= 16;
}

export const noSecretsInPlainText: ResourceValidationPolicy = {
  name: "no-secrets-in-plain-text",
  description: "Secrets (or secret-looking names or values) are bound as secret_text, never plain_text.",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== TYPE.workersScript) return;
    const bindings = Array.isArray(args.props.bindings) ? (args.props.bindings as Record<string, unknown>[]) : [];
    for (const b of bindings) {
      if (b.type !== "plain_text") continue;
      const name = String(b.name ?? "");
      const text = typeof b.text === "string" ? b.text : "";
      // Never echo the value itself: the report would leak it.
      if (SECRET_NAME.test(name)) report(`${args.name}: plain_text binding '${name}' is named like a secret; bind it as secret_text`);
      else if (SECRET_VALUE.some((re) => re.test(text)) || looksRandom(text)) {
        report(`${args.name}: plain_text binding '${name}' holds a secret-looking value; bind it as secret_text`);
      }
    }
  },
};
