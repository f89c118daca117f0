// repeatedKey (src/policy/json-keys.ts): the first key an object of a JSON text names
// twice, as JSON.parse reads keys, whatever the strings around it hold.
import { describe, expect, it } from "vitest";
import { MAX_PATH_CHARS, repeatedKey } from "../../src/policy/json-keys.ts";

describe("repeatedKey", () => {
  it("finds a top-level key named twice, and says where", () => {
    expect(repeatedKey('{"max_tokens":64000,"model":"m","max_tokens":1}')).toBe("max_tokens");
    expect(repeatedKey('{"model":"a", "messages":[], "model" : "b"}')).toBe("model");
  });

  it("compares keys as JSON.parse reads them: an escaped spelling is the same key", () => {
    const text = '{"max_tokens":64000,"max\\u005ftokens":1}';
    expect(Object.keys(JSON.parse(text) as object)).toEqual(["max_tokens"]);
    expect(repeatedKey(text)).toBe("max_tokens");
    expect(repeatedKey('{"a\\"b":1,"a\\u0022b":2}')).toBe('"a\\"b"');
  });

  it("finds one nested in lists and objects, with its path", () => {
    const text = JSON.stringify({ model: "m", max_tokens: 5, messages: [{ role: "user", content: [{ type: "text", text: "hi" }, { type: "text", text: "x" }] }] }).replace('{"type":"text","text":"x"}', '{"type":"text","text":"x","type":"image"}');
    expect(repeatedKey(text)).toBe("messages[0].content[1].type");
    expect(repeatedKey('{"a":{"b":[1,{"c":1,"d":{"e":1,"e":2}}]}}')).toBe("a.b[1].d.e");
  });

  it("allows the same key in sibling objects, and finds none in a body without repeats", () => {
    const body = { model: "m", max_tokens: 5, messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "user", content: [{ type: "text", text: "c" }] }], metadata: { user_id: "u" } };
    expect(repeatedKey(JSON.stringify(body))).toBeUndefined();
    expect(repeatedKey(JSON.stringify(body, null, 2))).toBeUndefined();
    expect(repeatedKey("{}")).toBeUndefined();
    expect(repeatedKey("[]")).toBeUndefined();
  });

  it("is not misled by strings that hold quotes, backslashes, braces, commas or key-like text", () => {
    const tricky = ['say "max_tokens": 1', "ends with a backslash \\", "\\\\", '{"max_tokens":1}', "a, b, c", "]}[{"];
    for (const t of tricky) {
      const text = JSON.stringify({ max_tokens: 5, messages: [{ role: "user", content: t }], system: t });
      expect(repeatedKey(text), t).toBeUndefined();
      expect(repeatedKey(text.replace(/}$/, ',"max_tokens":9}')), t).toBe("max_tokens");
    }
    // A key that itself ends with an escaped backslash.
    expect(repeatedKey('{"k\\\\":1,"k\\\\":2}')).toBe('"k\\\\"');
    expect(repeatedKey('{"k\\\\":1,"k":2}')).toBeUndefined();
  });

  it("quotes an odd key safely: printable, bounded", () => {
    const odd = "\u202e" + "x".repeat(100);
    const path = repeatedKey(JSON.stringify({ [odd]: 1 }).replace(/}$/, `,${JSON.stringify(odd)}:2}`))!;
    expect(path).toMatch(/^"[\x20-\x7e]+"$/);
    expect(path.length).toBeLessThanOrEqual(70);
    // Control characters are escaped by JSON (\u0001: six characters each): still bounded.
    const ctl = "\u0001".repeat(64);
    expect(repeatedKey(`{${JSON.stringify(ctl)}:1,${JSON.stringify(ctl)}:2}`)!.length).toBeLessThanOrEqual(MAX_PATH_CHARS);
  });

  it("bounds the path of a key repeated deep down: its start and its end", () => {
    const depth = 5000;
    const text = '{"x":' + '[{"k":'.repeat(depth) + '{"a":1,"a":2}' + "}]".repeat(depth) + "}";
    expect(JSON.parse(text)).toBeTypeOf("object");
    const path = repeatedKey(text)!;
    expect(path.length).toBeLessThanOrEqual(MAX_PATH_CHARS);
    expect(path.startsWith("x[0].k[0].k[0]")).toBe(true);
    expect(path.endsWith("k[0].k.a")).toBe(true);
    expect(path).toContain("...");
  });
});
