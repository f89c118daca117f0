// The MTA-STS reader of `npm run verify` as a sending MTA reads (RFC 8461): policy
// fields, mx patterns, the TXT id grammar, and a fetch that never follows redirects and
// stops at 64 KiB, against a loopback HTTP server.
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_POLICY_BYTES, mxMatches, parsePolicy, policyFetcher, stsRecordId } from "./mta-sts.ts";

describe("policy text (RFC 8461 3.2)", () => {
  it("reads key: value lines with LF or CRLF, mx repeated, first of the others kept", () => {
    const p = parsePolicy("version: STSv1\nmode: enforce\r\nmx: A.example\nmx:  *.b.example \nmax_age: 86400\nmode: none\nnot a field\n");
    expect(p).toEqual({ version: "STSv1", mode: "enforce", maxAge: "86400", mx: ["a.example", "*.b.example"], bad: ["not a field"] });
  });
});

describe("mx patterns (RFC 8461 4.1)", () => {
  it("match exactly, or '*.' one leftmost label only", () => {
    expect(mxMatches("mx.example", "MX.example.")).toBe(true);
    expect(mxMatches("*.example", "mx.example")).toBe(true);
    expect(mxMatches("*.example", "a.mx.example")).toBe(false);
    expect(mxMatches("*.example", "example")).toBe(false);
    expect(mxMatches("mx.example", "mx2.example")).toBe(false);
  });
});

describe("the _mta-sts record (RFC 8461 3.1)", () => {
  it("needs v=STSv1 first and an id of 1 to 32 letters and digits", () => {
    expect(stsRecordId("v=STSv1; id=20260101T000000Z")).toEqual({ id: "20260101T000000Z", valid: true });
    expect(stsRecordId("v=STSv1;id=abc;")).toEqual({ id: "abc", valid: true });
    expect(stsRecordId(`v=STSv1; id=${"a".repeat(33)}`).valid).toBe(false);
    expect(stsRecordId("v=STSv1; id=has-hyphen").valid).toBe(false);
    expect(stsRecordId("id=abc; v=STSv1").valid).toBe(false);
    expect(stsRecordId("v=STSv1;").valid).toBe(false);
  });
});

describe("fetching a policy", () => {
  let server: Server;
  let origin: string;
  const seen: { host?: string; path?: string }[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ host: req.headers.host, path: req.url });
      if (req.headers.host === "mta-sts.moved.example") {
        res.writeHead(302, { location: "https://elsewhere.example/policy" }).end();
      } else if (req.headers.host === "mta-sts.huge.example") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("x".repeat(MAX_POLICY_BYTES + 5000));
      } else if (req.headers.host === "mta-sts.slow.example") {
        // never answers
      } else {
        res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end("version: STSv1\r\n");
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const a = server.address() as { port: number };
    origin = `http://127.0.0.1:${a.port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it("asks the origin with Host: mta-sts.<zone> at the well-known path", async () => {
    const r = await policyFetcher({ timeoutMs: 2000, origin })("mta-sts.ok.example", "/.well-known/mta-sts.txt");
    expect(r).toMatchObject({ status: 200, contentType: "text/plain; charset=utf-8", body: "version: STSv1\r\n", truncated: false });
    expect(seen.at(-1)).toEqual({ host: "mta-sts.ok.example", path: "/.well-known/mta-sts.txt" });
  });

  it("reports a redirect without following it", async () => {
    const before = seen.length;
    const r = await policyFetcher({ timeoutMs: 2000, origin })("mta-sts.moved.example", "/.well-known/mta-sts.txt");
    expect(r).toMatchObject({ status: 302, location: "https://elsewhere.example/policy" });
    expect(seen.length).toBe(before + 1);
  });

  it("stops reading at 64 KiB", async () => {
    const r = await policyFetcher({ timeoutMs: 2000, origin })("mta-sts.huge.example", "/.well-known/mta-sts.txt");
    expect(r.truncated).toBe(true);
    expect(r.body.length).toBe(MAX_POLICY_BYTES);
  });

  it("rejects when no answer comes in time", async () => {
    await expect(policyFetcher({ timeoutMs: 200, origin })("mta-sts.slow.example", "/.well-known/mta-sts.txt")).rejects.toThrow(/no answer within 200 ms/);
  });
});
