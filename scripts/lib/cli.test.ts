// The shared command-line pieces whose mistakes would reach every remote command.
import { describe, expect, it } from "vitest";
import { cloudflareApiBase, UsageError } from "./cli.ts";

describe("cloudflareApiBase", () => {
  const refused = (flag: string | undefined, env: NodeJS.ProcessEnv = {}) => {
    try {
      cloudflareApiBase(flag, env);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error("expected a UsageError");
  };

  it("takes --api-base, else CLOUDFLARE_API_BASE_URL, else none (Cloudflare's API); an empty variable is unset", () => {
    expect(cloudflareApiBase(undefined, {})).toBeUndefined();
    expect(cloudflareApiBase(undefined, { CLOUDFLARE_API_BASE_URL: "" })).toBeUndefined();
    expect(cloudflareApiBase(undefined, { CLOUDFLARE_API_BASE_URL: "https://api.example/client/v4" })).toBe("https://api.example/client/v4");
    expect(cloudflareApiBase("http://127.0.0.1:9/client/v4", { CLOUDFLARE_API_BASE_URL: "https://api.example" })).toBe("http://127.0.0.1:9/client/v4");
    expect(cloudflareApiBase("http://localhost:9", {})).toBe("http://localhost:9");
    expect(cloudflareApiBase("http://[::1]:9", {})).toBe("http://[::1]:9");
  });

  it("refuses an empty flag (it would send the call to the real API past the variable), a non-URL, credentials, and plain http:// off this machine", () => {
    expect(refused("", { CLOUDFLARE_API_BASE_URL: "http://127.0.0.1:9" })).toBe("--api-base is empty (leave it out for the real API)");
    expect(refused("not a url")).toBe("--api-base: not a URL: not a url");
    expect(refused(undefined, { CLOUDFLARE_API_BASE_URL: "x\u001b[2J" })).toBe("CLOUDFLARE_API_BASE_URL: not a URL: x\\u001b[2J");
    expect(refused("https://user:pw@api.example")).toMatch(/credentials/);
    expect(refused("http://192.0.2.2:18475/client/v4")).toMatch(/^--api-base: http:\/\/ is refused: https:\/\/ only/);
    expect(refused("http://127.0.0.1.example.net/")).toMatch(/http:\/\/ is refused/);
    expect(refused("ftp://127.0.0.1/")).toMatch(/ftp:\/\/ is refused/);
  });
});
