import { describe, expect, it } from "vitest";
import { compliantWorker } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { noSecretsInPlainText } from "./no-secrets-in-plain-text.ts";

function withPlain(name: string, text: string) {
  const w = compliantWorker();
  (w.props.bindings as unknown[]).push({ type: "plain_text", name, text });
  return w;
}

describe("no-secrets-in-plain-text", () => {
  it("passes secrets in secret_text and ordinary settings in plain_text", async () => {
    expect(await runPolicies([compliantWorker()], [noSecretsInPlainText])).toEqual([]);
  });
  it.each([
    ["a secret-looking name", "OPERATOR_TOKEN", "hello"],
    ["an Anthropic key", "UPSTREAM_NOTE", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"],
    ["a PEM private key", "CERT", "-----BEGIN PRIVATE KEY-----\nMIIE"],
    ["a long random string", "BLOB", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A"],
  ])("flags %s in a plain_text binding, without echoing the value", async (_what, name, text) => {
    const v = await runPolicies([withPlain(name, text)], [noSecretsInPlainText]);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain(`'${name}'`);
    expect(v[0]!.message).not.toContain(text);
  });
  it("does not flag a URL or a short word", async () => {
    expect(await runPolicies([withPlain("ALLOWED_ORIGINS", "https://app.example,https://admin.example")], [noSecretsInPlainText])).toEqual([]);
  });
});
