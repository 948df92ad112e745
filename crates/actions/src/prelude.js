// The globals of one action run. Evaluated in a fresh context before the action's code, with
// `__sigil` (the native bridge) and `__sigilRun` (this run's parameters) defined; both are removed
// from the global scope here, and everything an action can reach is built on the closures below.
(function () {
  "use strict";
  const bridge = globalThis.__sigil;
  const run = globalThis.__sigilRun;
  delete globalThis.__sigil;
  delete globalThis.__sigilRun;
  const g = globalThis;
  const stringify = JSON.stringify;
  const parse = JSON.parse;

  // Host operations resolve to JSON text; errors arrive as rejected promises with a message.
  const op = (name, args) => bridge.op(stringify(Object.assign({ op: name }, args))).then(parse);

  // ---- determinism: one seed and one clock per request, the same on every node ----
  let s0 = run.seed[0] >>> 0, s1 = run.seed[1] >>> 0, s2 = run.seed[2] >>> 0, s3 = run.seed[3] >>> 0;
  Math.random = function random() {
    // sfc32: 32-bit state words, 2^-32 resolution per draw.
    const t = (((s0 + s1) >>> 0) + s3) >>> 0;
    s3 = (s3 + 1) >>> 0;
    s0 = s1 ^ (s1 >>> 9);
    s1 = (s2 + (s2 << 3)) >>> 0;
    s2 = (s2 << 21) | (s2 >>> 11);
    s2 = (s2 + t) >>> 0;
    return t / 4294967296;
  };
  const NativeDate = g.Date;
  const now = run.now;
  function Date(...args) {
    if (!new.target) return new NativeDate(now).toString();
    return args.length === 0 ? new NativeDate(now) : new NativeDate(...args);
  }
  Date.prototype = NativeDate.prototype;
  Date.now = () => now;
  Date.UTC = NativeDate.UTC;
  Date.parse = NativeDate.parse;
  g.Date = Date;
  if (g.performance === undefined) g.performance = { now: () => 0 };

  // ---- bytes and text ----
  const toBytes = (value, what) => {
    if (value instanceof Uint8Array) return Array.from(value);
    if (ArrayBuffer.isView(value)) return Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
    if (Array.isArray(value)) {
      for (const b of value) {
        if (!Number.isInteger(b) || b < 0 || b > 255) throw new TypeError(`${what}: array items must be bytes (0-255)`);
      }
      return value.slice();
    }
    throw new TypeError(`${what}: expected a Uint8Array or an array of bytes`);
  };
  const utf8Encode = (text) => {
    const out = [];
    const s = String(text);
    for (let i = 0; i < s.length; i++) {
      let c = s.codePointAt(i);
      if (c > 0xffff) i++;
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return new Uint8Array(out);
  };
  const utf8Decode = (bytes) => {
    const b = toBytes(bytes, "TextDecoder.decode");
    let s = "";
    for (let i = 0; i < b.length; ) {
      const c = b[i++];
      let cp = 0xfffd;
      if (c < 0x80) cp = c;
      else if (c >= 0xc0 && c < 0xe0 && i < b.length) cp = ((c & 31) << 6) | (b[i++] & 63);
      else if (c >= 0xe0 && c < 0xf0 && i + 1 < b.length) { cp = ((c & 15) << 12) | ((b[i] & 63) << 6) | (b[i + 1] & 63); i += 2; }
      else if (c >= 0xf0 && i + 2 < b.length) { cp = ((c & 7) << 18) | ((b[i] & 63) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63); i += 3; }
      s += String.fromCodePoint(cp);
    }
    return s;
  };
  class TextEncoder { get encoding() { return "utf-8"; } encode(text = "") { return utf8Encode(text); } }
  class TextDecoder { get encoding() { return "utf-8"; } decode(bytes) { return bytes === undefined ? "" : utf8Decode(bytes); } }
  g.TextEncoder = TextEncoder;
  g.TextDecoder = TextDecoder;
  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  g.btoa = (text) => {
    const s = String(text);
    let out = "";
    for (let i = 0; i < s.length; i += 3) {
      const a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
      if (a > 255 || b > 255 || c > 255) throw new Error("btoa: the string has characters outside Latin-1");
      const n = (a << 16) | ((b || 0) << 8) | (c || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < s.length ? B64[n & 63] : "=");
    }
    return out;
  };
  g.atob = (text) => {
    const s = String(text).replace(/[\s=]+/g, "");
    let out = "", bits = 0, acc = 0;
    for (const ch of s) {
      const v = B64.indexOf(ch);
      if (v < 0) throw new Error("atob: not base64");
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) { bits -= 8; out += String.fromCharCode((acc >> bits) & 255); }
    }
    return out;
  };
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (text, what) => {
    const s = String(text).replace(/^0x/i, "");
    if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new TypeError(`${what}: not hex`);
    const out = [];
    for (let i = 0; i < s.length; i += 2) out.push(parseInt(s.slice(i, i + 2), 16));
    return out;
  };

  // ---- console: captured as the run's logs ----
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof Error) return `${v.name}: ${v.message}`;
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "function") return `[Function ${v.name || "anonymous"}]`;
    if (v instanceof Uint8Array) return `Uint8Array(${v.length}) [ ${Array.from(v).join(", ")} ]`;
    try {
      const text = stringify(v, (_, x) => (typeof x === "bigint" ? `${x}n` : x));
      return text === undefined ? String(v) : text;
    } catch (_) {
      return String(v);
    }
  };
  const log = (level) => (...args) => bridge.log(level, args.map(show).join(" "));
  g.console = Object.freeze({ log: log("log"), info: log("info"), warn: log("warn"), error: log("error"), debug: log("debug") });

  // ---- timers (resolved by the host; the clock seen by the action does not move) ----
  g.setTimeout = (fn, ms = 0, ...args) => {
    op("sleep", { ms: Math.max(0, Number(ms) || 0) }).then(() => fn(...args));
    return 0;
  };
  g.clearTimeout = () => {};

  // ---- fetch ----
  class Headers {
    constructor(init) {
      this._h = {};
      if (init) for (const [k, v] of init instanceof Headers ? Object.entries(init._h) : Array.isArray(init) ? init : Object.entries(init)) this._h[String(k).toLowerCase()] = String(v);
    }
    get(name) { const v = this._h[String(name).toLowerCase()]; return v === undefined ? null : v; }
    has(name) { return String(name).toLowerCase() in this._h; }
    set(name, value) { this._h[String(name).toLowerCase()] = String(value); }
    entries() { return Object.entries(this._h)[Symbol.iterator](); }
    forEach(fn) { for (const [k, v] of Object.entries(this._h)) fn(v, k, this); }
  }
  class Response {
    constructor(r) { this.status = r.status; this.statusText = r.statusText; this.ok = r.status >= 200 && r.status < 300; this.headers = new Headers(r.headers); this.url = r.url; this._body = r.body; }
    async text() { return this._body; }
    async json() { return parse(this._body); }
    async arrayBuffer() { return utf8Encode(this._body).buffer; }
  }
  g.Headers = Headers;
  g.Response = Response;
  g.fetch = async (resource, init = {}) => {
    const url = typeof resource === "string" ? resource : resource && resource.url ? resource.url : String(resource);
    const headers = init.headers ? Object.fromEntries(new Headers(init.headers).entries()) : {};
    let body = init.body;
    if (body !== undefined && body !== null && typeof body !== "string") body = ArrayBuffer.isView(body) ? utf8Decode(body) : stringify(body);
    const r = await op("fetch", { url, method: String(init.method || "GET").toUpperCase(), headers, body: body === undefined ? null : body });
    return new Response(r);
  };

  // ---- Lit.Actions ----
  const pubkey = (value) => {
    if (typeof value !== "string") throw new TypeError("publicKey: expected a hex string");
    const b = unhex(value, "publicKey");
    if (b.length !== 65 && b.length !== 33 && b.length !== 64) throw new TypeError(`publicKey: ${b.length} bytes, expected 65 (uncompressed) or 33 (compressed)`);
    return hex(b.length === 64 ? [4, ...b] : b);
  };
  const tokenIdArg = (value) => {
    if (typeof value === "bigint") return "0x" + value.toString(16);
    if (typeof value === "number") return "0x" + BigInt(value).toString(16);
    if (value && typeof value.toHexString === "function") return value.toHexString();
    if (typeof value !== "string" || value === "") throw new TypeError("tokenId: expected a decimal or 0x-hex string");
    return /^0x/i.test(value) ? value : "0x" + BigInt(value).toString(16);
  };
  const sigName = (name) => {
    if (typeof name !== "string" || name === "") throw new TypeError("sigName: expected a non-empty string");
    return name;
  };
  const digest = (toSign) => {
    const b = toBytes(toSign, "toSign");
    if (b.length !== 32) throw new TypeError(`toSign: ${b.length} bytes, expected exactly 32 (a hash)`);
    return hex(b);
  };
  // Lit's three names for conditions; exactly one must be given.
  const conditionsArg = (args) => {
    const out = {};
    for (const field of ["accessControlConditions", "evmContractConditions", "unifiedAccessControlConditions"]) {
      if (args[field] !== undefined && args[field] !== null) out[field] = args[field];
    }
    if (Object.keys(out).length !== 1) throw new TypeError("give exactly one of accessControlConditions, evmContractConditions, unifiedAccessControlConditions");
    return out;
  };
  const authSigArg = (authSig) => (authSig === undefined || authSig === null ? null : authSig);
  const decrypt = (singleNode) => async (args = {}) => {
    const { ciphertext, dataToEncryptHash, authSig } = args;
    if (typeof ciphertext !== "string") throw new TypeError("ciphertext: expected a base64 string");
    if (typeof dataToEncryptHash !== "string") throw new TypeError("dataToEncryptHash: expected a hex string");
    return op("decrypt", { conditions: conditionsArg(args), ciphertext, dataToEncryptHash, authSig: authSigArg(authSig), singleNode });
  };
  let encryptions = 0;
  const Actions = {
    signEcdsa: async ({ toSign, publicKey, sigName: name }) =>
      op("sign", { toSign: digest(toSign), publicKey: pubkey(publicKey), sigName: sigName(name), combine: false }),
    signAndCombineEcdsa: async ({ toSign, publicKey, sigName: name }) =>
      op("sign", { toSign: digest(toSign), publicKey: pubkey(publicKey), sigName: sigName(name), combine: true }),
    ethPersonalSignMessageEcdsa: async ({ message, publicKey, sigName: name }) => {
      const bytes = typeof message === "string" ? Array.from(utf8Encode(message)) : toBytes(message, "message");
      return op("signMessage", { message: hex(bytes), publicKey: pubkey(publicKey), sigName: sigName(name) });
    },
    setResponse: ({ response }) => {
      bridge.setResponse(typeof response === "string" ? response : String(response));
    },
    runOnce: async ({ waitForResponse = true, name = "default" } = {}, fn) => {
      if (typeof fn !== "function") throw new TypeError("runOnce: the second argument must be a function");
      const leader = await op("runOnceLeader", { name: String(name) });
      if (leader) {
        let result;
        try { result = String(await fn()); } catch (e) { console.error(`runOnce ${name}: ${e && e.message ? e.message : e}`); result = "[ERROR]"; }
        await op("runOncePublish", { name: String(name), value: result });
        return result;
      }
      if (!waitForResponse) return "";
      return op("runOnceWait", { name: String(name) });
    },
    broadcastAndCollect: async ({ name = "default", value }) => op("broadcast", { name: String(name), value: String(value) }),
    call: async ({ ipfsId, params = {} }) => {
      if (typeof ipfsId !== "string") throw new TypeError("call: ipfsId must be a CID string");
      return bridge.call(ipfsId, stringify(params || {})).then(parse);
    },
    getRpcUrl: async ({ chain } = {}) => op("rpcUrl", { chain: String(chain || "") }),
    pubkeyToTokenId: ({ publicKey }) => "0x" + bridge.keccak(pubkey(publicKey)),
    isPermittedAction: async ({ tokenId, ipfsId }) => op("isPermittedAction", { tokenId: tokenIdArg(tokenId), ipfsId: String(ipfsId) }),
    isPermittedAddress: async ({ tokenId, address }) => op("isPermittedAddress", { tokenId: tokenIdArg(tokenId), address: String(address) }),
    isPermittedAuthMethod: async ({ tokenId, authMethodType, userId }) =>
      op("isPermittedAuthMethod", { tokenId: tokenIdArg(tokenId), authMethodType: Number(authMethodType), userId: hex(typeof userId === "string" ? unhex(userId, "userId") : toBytes(userId, "userId")) }),
    getPermittedActions: async ({ tokenId }) => op("permittedActions", { tokenId: tokenIdArg(tokenId) }),
    getPermittedAddresses: async ({ tokenId }) => op("permittedAddresses", { tokenId: tokenIdArg(tokenId) }),
    getPermittedAuthMethods: async ({ tokenId }) => op("permittedAuthMethods", { tokenId: tokenIdArg(tokenId) }),
    checkConditions: async (args = {}) => {
      const { conditions, authSig } = args;
      const given = conditions !== undefined ? { unifiedAccessControlConditions: conditions } : conditionsArg(args);
      return op("checkConditions", { conditions: given, authSig: authSigArg(authSig) });
    },
    // One node encrypts (a ciphertext is randomised) and the others take its ciphertext, so
    // every node returns the same one.
    encrypt: async (args = {}) => {
      const conditions = conditionsArg(args);
      const plain = args.to_encrypt !== undefined ? args.to_encrypt : args.dataToEncrypt;
      const data = hex(typeof plain === "string" ? utf8Encode(plain) : toBytes(plain, "to_encrypt"));
      const name = `__sigil_encrypt_${encryptions++}`;
      const out = parse(await Actions.runOnce({ name }, async () => {
        try { return stringify(await op("encrypt", { conditions, data })); } catch (e) { return stringify({ error: String(e && e.message ? e.message : e) }); }
      }));
      if (out.error) throw new Error(`encrypt: ${out.error}`);
      return { ciphertext: out.ciphertext, dataToEncryptHash: out.dataToEncryptHash };
    },
    decryptAndCombine: decrypt(false),
    decryptToSingleNode: decrypt(true),
  };
  const Auth = {
    actionIpfsIdStack: run.actionIpfsIdStack.slice(),
    authSigAddress: run.authSigAddress,
    authMethodContexts: run.authMethodContexts,
    resources: [],
    customAuthResource: "",
  };
  // The node may fill Lit's empty `resources` (a custom auth action: what it is asked to grant)
  // and add fields of its own; it never replaces who the caller is.
  for (const [key, value] of Object.entries(run.authExtra || {})) {
    if (!(key in Auth) || key === "resources") Auth[key] = value;
  }
  Object.freeze(Auth.resources);
  Object.freeze(Auth.actionIpfsIdStack);
  Object.freeze(Auth.authMethodContexts);
  const Lit = { Actions: Object.freeze(Actions), Auth: Object.freeze(Auth) };
  Object.freeze(Lit);
  const fixed = (name, value) => Object.defineProperty(g, name, { value, writable: false, enumerable: false, configurable: false });
  fixed("Lit", Lit);
  fixed("LitActions", Lit.Actions);
  fixed("LitAuth", Lit.Auth);

  // ---- ethers v5, evaluated on first use ----
  Object.defineProperty(g, "ethers", {
    configurable: true,
    enumerable: false,
    get() {
      const ethers = bridge.ethers();
      Object.defineProperty(g, "ethers", { value: ethers, writable: false, configurable: false });
      return ethers;
    },
  });

  // ---- parameters: each field a global, and the whole object as jsParams ----
  const params = run.jsParams;
  for (const key of Object.keys(params)) {
    if (key === "Lit" || key === "LitActions" || key === "LitAuth") continue;
    g[key] = params[key];
  }
  g.jsParams = params;
})();
