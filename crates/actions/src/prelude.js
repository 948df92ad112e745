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

  // ---- bytes and text (native: UTF-8 and base64 in Rust) ----
  // A binary string holds one byte per char: how bytes cross to the native half.
  const toU8 = (value, what) => {
    if (value instanceof Uint8Array) return value;
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    if (Array.isArray(value)) {
      for (const b of value) {
        if (!Number.isInteger(b) || b < 0 || b > 255) throw new TypeError(`${what}: array items must be bytes (0-255)`);
      }
      return Uint8Array.from(value);
    }
    throw new TypeError(`${what}: expected an ArrayBuffer, a typed array or an array of bytes`);
  };
  const toBytes = (value, what) => Array.from(toU8(value, what));
  const binary = (u8) => {
    let out = "";
    for (let i = 0; i < u8.length; i += 8192) out += String.fromCharCode.apply(null, u8.subarray(i, i + 8192));
    return out;
  };
  const utf8Encode = (text) => bridge.utf8Encode(String(text));
  const utf8Decode = (bytes) => bridge.utf8Decode(binary(toU8(bytes, "TextDecoder.decode")));
  const bufferOf = (u8) => (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength ? u8.buffer : u8.slice().buffer);
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (text, what) => {
    const s = String(text).replace(/^0x/i, "");
    if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new TypeError(`${what}: not hex`);
    const out = [];
    for (let i = 0; i < s.length; i += 2) out.push(parseInt(s.slice(i, i + 2), 16));
    return out;
  };
  // The run's agreed random stream (the first draw waits for the network's seed).
  const randomBytes = (n) => bridge.random(n);

  // ---- timers: native, so a cleared timer keeps nothing waiting (the clock seen by the action
  // does not move) ----
  const timers = new Map();
  let nextTimer = 1;
  bridge.onTimer((id) => {
    const t = timers.get(id);
    if (!t) return;
    if (t.interval) bridge.timer(id, t.ms); else timers.delete(id);
    if (typeof t.fn === "function") t.fn(...t.args);
  });
  const delayOf = (ms) => { const n = Number(ms); return Number.isFinite(n) && n > 0 ? n : 0; };
  const arm = (interval) => (fn, ms, ...args) => {
    const id = nextTimer++;
    const delay = interval ? Math.max(1, delayOf(ms)) : delayOf(ms);
    timers.set(id, { fn: typeof fn === "function" ? fn : () => { throw new TypeError("timers: a string callback is not supported; pass a function"); }, args, ms: delay, interval });
    bridge.timer(id, delay);
    return id;
  };
  const disarm = (id) => {
    const n = Number(id);
    if (timers.delete(n)) bridge.clearTimer(n);
  };
  g.setTimeout = arm(false);
  g.setInterval = arm(true);
  g.clearTimeout = disarm;
  g.clearInterval = disarm;
  g.queueMicrotask = (fn) => { Promise.resolve().then(() => fn()); };

  // ---- the web platform (platform.js), evaluated when an action first touches it ----
  const NativeDate = g.Date;
  let platform = null;
  const loadPlatform = () => platform || (platform = bridge.platform()(bridge, { stringify, parse, toU8, binary, utf8Encode, utf8Decode, bufferOf, hex, randomBytes, NativeDate }));
  for (const name of ["TextEncoder", "TextDecoder", "btoa", "atob", "DOMException", "Event", "EventTarget", "AbortSignal", "AbortController", "structuredClone", "URL", "URLSearchParams", "crypto", "CryptoKey", "Headers", "Request", "Response", "fetch"]) {
    Object.defineProperty(g, name, {
      configurable: true,
      enumerable: false,
      get() {
        const value = loadPlatform()[name];
        Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
        return value;
      },
      set(value) {
        Object.defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
      },
    });
  }

  // ---- determinism: one clock per request, one random stream per run, the same on every node ----
  // Math.random is sfc32 keyed, at its first call, by 16 bytes of the run's agreed stream.
  let s0, s1, s2, s3;
  const seedMath = () => {
    const b = new Uint32Array(randomBytes(16).buffer);
    s0 = b[0] >>> 0; s1 = b[1] >>> 0; s2 = b[2] >>> 0; s3 = b[3] >>> 0;
  };
  Math.random = function random() {
    if (s0 === undefined) seedMath();
    // sfc32: 32-bit state words, 2^-32 resolution per draw.
    const t = (((s0 + s1) >>> 0) + s3) >>> 0;
    s3 = (s3 + 1) >>> 0;
    s0 = s1 ^ (s1 >>> 9);
    s1 = (s2 + (s2 << 3)) >>> 0;
    s2 = (s2 << 21) | (s2 >>> 11);
    s2 = (s2 + t) >>> 0;
    return t / 4294967296;
  };
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
  if (g.performance === undefined) g.performance = { now: () => 0, timeOrigin: now };

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
  g.console = Object.freeze({ log: log("log"), info: log("info"), warn: log("warn"), error: log("error"), debug: log("debug"), trace: log("debug") });

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
    // One call for every scheme (Lit's `signingScheme`): EcdsaK256Sha256 or SchnorrK256Taproot.
    sign: async ({ toSign, publicKey, sigName: name, signingScheme = "EcdsaK256Sha256" }) =>
      op("sign", { toSign: digest(toSign), publicKey: pubkey(publicKey), sigName: sigName(name), combine: false, signingScheme: String(signingScheme) }),
    signAndCombine: async ({ toSign, publicKey, sigName: name, signingScheme = "EcdsaK256Sha256" }) =>
      op("sign", { toSign: digest(toSign), publicKey: pubkey(publicKey), sigName: sigName(name), combine: true, signingScheme: String(signingScheme) }),
    ethPersonalSignMessageEcdsa: async ({ message, publicKey, sigName: name }) => {
      const bytes = typeof message === "string" ? Array.from(utf8Encode(message)) : toBytes(message, "message");
      return op("signMessage", { message: hex(bytes), publicKey: pubkey(publicKey), sigName: sigName(name) });
    },
    // The action's own key, derived from its CID (no mint): only this code can sign with it.
    signAsAction: async ({ toSign, sigName: name, signingScheme = "EcdsaK256Sha256" }) => {
      const bytes = typeof toSign === "string" ? Array.from(utf8Encode(toSign)) : toBytes(toSign, "toSign");
      return op("signAsAction", { message: hex(bytes), sigName: sigName(name), signingScheme: String(signingScheme) });
    },
    // A key for `keyId` that only this action can claim, minted by anyone with the attestation
    // the client gets (`claims[keyId]`); resolves to its derivedKeyId.
    claimKey: ({ keyId, attempt = 0 }) => {
      if (typeof keyId !== "string" || keyId === "") throw new TypeError("claimKey: keyId: expected a non-empty string");
      if (!Number.isInteger(attempt) || attempt < 0 || attempt > 2) throw new TypeError("claimKey: attempt: expected 0, 1 or 2");
      return op("claimKey", { keyId, attempt });
    },
    getActionPublicKey: async ({ signingScheme = "EcdsaK256Sha256", actionIpfsCid }) =>
      op("actionPublicKey", { cid: String(actionIpfsCid), signingScheme: String(signingScheme) }),
    verifyActionSignature: async ({ signingScheme = "EcdsaK256Sha256", actionIpfsCid, toSign, signOutput }) => {
      const bytes = typeof toSign === "string" ? Array.from(utf8Encode(toSign)) : toBytes(toSign, "toSign");
      return op("verifyActionSignature", { cid: String(actionIpfsCid), signingScheme: String(signingScheme), message: hex(bytes), signature: typeof signOutput === "string" ? signOutput : stringify(signOutput) });
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
    getPermittedAuthMethodScopes: async ({ tokenId, authMethodType, userId, maxScopeId = 100 }) =>
      op("permittedAuthMethodScopes", { tokenId: tokenIdArg(tokenId), authMethodType: Number(authMethodType), userId: hex(typeof userId === "string" ? unhex(userId, "userId") : toBytes(userId, "userId")), maxScopeId: Number(maxScopeId) }),
    getLatestNonce: async ({ address, chain } = {}) => op("latestNonce", { address: String(address), chain: String(chain || "") }),
    callContract: async ({ chain, txn } = {}) => op("callContract", { chain: String(chain || ""), txn: String(txn) }),
    // AES-256-GCM, the 12-byte nonce first (as Lit's nodes encrypt); resolves to the text.
    aesDecrypt: async ({ symmetricKey, ciphertext }) => {
      const key = toU8(symmetricKey, "symmetricKey");
      const data = toU8(ciphertext, "ciphertext");
      if (key.length !== 32) throw new TypeError(`aesDecrypt: a ${key.length}-byte key; expected 32 (AES-256)`);
      if (data.length < 28) throw new TypeError("aesDecrypt: the ciphertext is shorter than its nonce and tag");
      let plain;
      try { plain = bridge.aesGcm(false, binary(key), binary(data.subarray(0, 12)), binary(data.subarray(12)), ""); } catch (e) { throw new Error(`aesDecrypt: ${e.message}`); }
      return utf8Decode(plain);
    },
    uint8arrayToString: (array, encoding = "utf8") => {
      const b = toU8(array, "uint8arrayToString");
      if (encoding === "utf8" || encoding === "utf-8") return utf8Decode(b);
      if (encoding === "base16" || encoding === "hex") return hex(b);
      if (encoding === "base64") return bridge.b64Encode(binary(b));
      throw new TypeError(`uint8arrayToString: encoding ${encoding} is not supported (utf8, base16, base64)`);
    },
    uint8arrayFromString: (text, encoding = "utf8") => {
      if (encoding === "utf8" || encoding === "utf-8") return utf8Encode(text);
      if (encoding === "base16" || encoding === "hex") return Uint8Array.from(unhex(text, "uint8arrayFromString"));
      if (encoding === "base64") { try { return bridge.b64Decode(String(text)); } catch (e) { throw new TypeError("uint8arrayFromString: not base64"); } }
      throw new TypeError(`uint8arrayFromString: encoding ${encoding} is not supported (utf8, base16, base64)`);
    },
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
      // ethers reads some globals while it loads (`self`, `crypto`, `__awaiter`, `process`…):
      // those the caller's jsParams set are hidden from it meanwhile.
      const hidden = [];
      for (const key of Object.keys(run.jsParams)) {
        const d = Object.getOwnPropertyDescriptor(g, key);
        if (d && d.configurable) { hidden.push([key, d]); delete g[key]; }
      }
      let ethers;
      try { ethers = bridge.ethers(); } finally { for (const [key, d] of hidden) Object.defineProperty(g, key, d); }
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
