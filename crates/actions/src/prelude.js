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
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(text = "") { return utf8Encode(text); }
    encodeInto(text, dest) { const b = utf8Encode(text); const n = Math.min(b.length, dest.length); dest.set(b.subarray(0, n)); return { read: String(text).length, written: n }; }
  }
  class TextDecoder {
    constructor(label = "utf-8") { if (!/^utf-?8$/i.test(String(label))) throw new RangeError(`TextDecoder: only utf-8 is supported, not ${label}`); }
    get encoding() { return "utf-8"; }
    decode(bytes) { return bytes === undefined ? "" : utf8Decode(bytes); }
  }
  g.TextEncoder = TextEncoder;
  g.TextDecoder = TextDecoder;
  g.btoa = (text) => {
    const s = String(text);
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 255) throw new DOMException("btoa: the string has characters outside Latin-1", "InvalidCharacterError");
    return bridge.b64Encode(s);
  };
  g.atob = (text) => {
    try { return binary(bridge.b64Decode(String(text))); } catch (e) { throw new DOMException("atob: not base64", "InvalidCharacterError"); }
  };
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (text, what) => {
    const s = String(text).replace(/^0x/i, "");
    if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new TypeError(`${what}: not hex`);
    const out = [];
    for (let i = 0; i < s.length; i += 2) out.push(parseInt(s.slice(i, i + 2), 16));
    return out;
  };

  // ---- errors and events ----
  const DOM_CODES = { IndexSizeError: 1, InvalidCharacterError: 5, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12, InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, QuotaExceededError: 22, TimeoutError: 23, DataCloneError: 25, DataError: 0, OperationError: 0 };
  class DOMException extends Error {
    constructor(message = "", name = "Error") { super(String(message)); this.name = String(name); }
    get code() { return DOM_CODES[this.name] || 0; }
  }
  g.DOMException = DOMException;
  // A native error named like a DOMException becomes one.
  const domError = (e) => {
    if (!e || typeof e.name !== "string" || e instanceof DOMException) return e;
    if (e.name in DOM_CODES) return new DOMException(e.message, e.name);
    if (e.name === "TypeError" && !(e instanceof TypeError)) return new TypeError(e.message);
    return e;
  };
  // Calls the native half, turning its named errors into the platform's classes.
  const native = (fn, ...args) => { try { return fn(...args); } catch (e) { throw domError(e); } };
  class Event {
    constructor(type, init = {}) { this.type = String(type); this.bubbles = !!init.bubbles; this.cancelable = !!init.cancelable; this.defaultPrevented = false; this.target = null; this.currentTarget = null; this.timeStamp = 0; }
    preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
    stopPropagation() {}
    stopImmediatePropagation() {}
  }
  class EventTarget {
    constructor() { Object.defineProperty(this, "_listeners", { value: new Map() }); }
    addEventListener(type, fn, options = {}) {
      if (typeof fn !== "function" && !(fn && typeof fn.handleEvent === "function")) return;
      if (!this._listeners.has(type)) this._listeners.set(type, []);
      const list = this._listeners.get(type);
      if (!list.some((l) => l.fn === fn)) list.push({ fn, once: typeof options === "object" && !!options.once });
    }
    removeEventListener(type, fn) {
      const list = this._listeners.get(type);
      if (list) this._listeners.set(type, list.filter((l) => l.fn !== fn));
    }
    dispatchEvent(event) {
      event.target = this;
      event.currentTarget = this;
      const handler = this["on" + event.type];
      if (typeof handler === "function") handler.call(this, event);
      const list = (this._listeners.get(event.type) || []).slice();
      for (let i = 0; i < list.length; i++) {
        const l = list[i];
        if (l.once) this.removeEventListener(event.type, l.fn);
        if (typeof l.fn === "function") l.fn.call(this, event); else l.fn.handleEvent(event);
      }
      return !event.defaultPrevented;
    }
  }
  g.Event = Event;
  g.EventTarget = EventTarget;

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

  // ---- abort ----
  class AbortSignal extends EventTarget {
    constructor(key) {
      if (key !== abortKey) throw new TypeError("AbortSignal: use new AbortController().signal");
      super();
      this.aborted = false;
      this.reason = undefined;
      this.onabort = null;
    }
    throwIfAborted() { if (this.aborted) throw this.reason; }
    static abort(reason) { const c = new AbortController(); c.abort(reason); return c.signal; }
    static timeout(ms) {
      const c = new AbortController();
      // A timeout signal does not keep the run alive on its own in Deno either; here it does until
      // it fires or the run ends, bounded by the run's time limit.
      setTimeout(() => c.abort(new DOMException("The operation timed out.", "TimeoutError")), ms);
      return c.signal;
    }
    static any(signals) {
      const c = new AbortController();
      for (const s of signals) {
        if (s.aborted) { c.abort(s.reason); break; }
        s.addEventListener("abort", () => c.abort(s.reason), { once: true });
      }
      return c.signal;
    }
  }
  const abortKey = {};
  class AbortController {
    constructor() { this.signal = new AbortSignal(abortKey); }
    abort(reason) {
      const s = this.signal;
      if (s.aborted) return;
      s.aborted = true;
      s.reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
      s.dispatchEvent(new Event("abort"));
    }
  }
  g.AbortSignal = AbortSignal;
  g.AbortController = AbortController;

  // ---- structuredClone ----
  g.structuredClone = (value) => {
    const seen = new Map();
    const clone = (v) => {
      if (v === null || (typeof v !== "object" && typeof v !== "function" && typeof v !== "symbol")) return v;
      if (typeof v === "function" || typeof v === "symbol") throw new DOMException(`${typeof v === "function" ? "a function" : "a symbol"} could not be cloned`, "DataCloneError");
      if (seen.has(v)) return seen.get(v);
      let out;
      if (v instanceof NativeDate) out = new NativeDate(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) out = new v.constructor(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
      else if (v instanceof Map) { out = new Map(); seen.set(v, out); for (const [k, x] of v) out.set(clone(k), clone(x)); return out; }
      else if (v instanceof Set) { out = new Set(); seen.set(v, out); for (const x of v) out.add(clone(x)); return out; }
      else if (v instanceof Error) { out = new (g[v.name] || Error)(v.message); if (v.stack) out.stack = v.stack; }
      else if (v instanceof Boolean || v instanceof Number || v instanceof String) out = Object(v.valueOf());
      else if (Array.isArray(v)) { out = new Array(v.length); seen.set(v, out); for (const k of Object.keys(v)) out[k] = clone(v[k]); return out; }
      else if (Object.prototype.toString.call(v) === "[object Object]") { out = {}; seen.set(v, out); for (const k of Object.keys(v)) out[k] = clone(v[k]); return out; }
      else throw new DOMException(`${Object.prototype.toString.call(v)} could not be cloned`, "DataCloneError");
      seen.set(v, out);
      return out;
    };
    return clone(value);
  };

  // ---- URL (native WHATWG parsing) ----
  const formEncode = (s) => encodeURIComponent(s).replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase()).replace(/%20/g, "+");
  const formDecode = (s) => { const t = s.replace(/\+/g, " "); try { return decodeURIComponent(t); } catch (_) { return t; } };
  class URLSearchParams {
    constructor(init = "") {
      this._list = [];
      this._url = null;
      if (init instanceof URLSearchParams) this._list = init._list.map((p) => p.slice());
      else if (typeof init === "object" && init !== null) {
        const pairs = typeof init[Symbol.iterator] === "function" ? Array.from(init) : Object.entries(init);
        for (const pair of pairs) {
          if (!pair || pair.length !== 2) throw new TypeError("URLSearchParams: each pair needs a name and a value");
          this._list.push([String(pair[0]), String(pair[1])]);
        }
      } else this._parse(String(init));
    }
    _parse(text) {
      this._list = [];
      for (const part of text.replace(/^\?/, "").split("&")) {
        if (part === "") continue;
        const at = part.indexOf("=");
        this._list.push(at < 0 ? [formDecode(part), ""] : [formDecode(part.slice(0, at)), formDecode(part.slice(at + 1))]);
      }
    }
    _update() { if (this._url) this._url._setSearch(this.toString()); }
    get size() { return this._list.length; }
    append(name, value) { this._list.push([String(name), String(value)]); this._update(); }
    delete(name, value) { this._list = this._list.filter(([k, v]) => k !== String(name) || (value !== undefined && v !== String(value))); this._update(); }
    get(name) { const p = this._list.find(([k]) => k === String(name)); return p ? p[1] : null; }
    getAll(name) { return this._list.filter(([k]) => k === String(name)).map(([, v]) => v); }
    has(name, value) { return this._list.some(([k, v]) => k === String(name) && (value === undefined || v === String(value))); }
    set(name, value) {
      const n = String(name);
      const i = this._list.findIndex(([k]) => k === n);
      if (i < 0) this._list.push([n, String(value)]);
      else { this._list[i] = [n, String(value)]; this._list = this._list.filter(([k], j) => k !== n || j === i); }
      this._update();
    }
    sort() { this._list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this._update(); }
    forEach(fn, self) { for (const [k, v] of this._list) fn.call(self, v, k, this); }
    keys() { return this._list.map(([k]) => k)[Symbol.iterator](); }
    values() { return this._list.map(([, v]) => v)[Symbol.iterator](); }
    entries() { return this._list.map((p) => p.slice())[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._list.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join("&"); }
  }
  const URL_PARTS = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"];
  class URL {
    constructor(input, base) {
      const parts = parse(native(bridge.urlParse, String(input instanceof URL ? input.href : input), base === undefined ? undefined : String(base instanceof URL ? base.href : base)));
      Object.defineProperty(this, "_parts", { value: parts, writable: true });
      Object.defineProperty(this, "_params", { value: new URLSearchParams(parts.search), writable: true });
      this._params._url = this;
    }
    static canParse(input, base) { try { new URL(input, base); return true; } catch (_) { return false; } }
    static parse(input, base) { try { return new URL(input, base); } catch (_) { return null; } }
    _set(part, value) {
      this._parts = parse(native(bridge.urlSet, this._parts.href, part, String(value)));
      if (part === "search" || part === "href") this._params._parse(this._parts.search);
    }
    _setSearch(text) { this._parts = parse(bridge.urlSet(this._parts.href, "search", text)); }
    get searchParams() { return this._params; }
    toString() { return this._parts.href; }
    toJSON() { return this._parts.href; }
  }
  for (const part of URL_PARTS) {
    Object.defineProperty(URL.prototype, part, {
      get() { return this._parts[part]; },
      set: part === "origin" ? undefined : function (value) { this._set(part, value); },
      enumerable: true,
    });
  }
  g.URL = URL;
  g.URLSearchParams = URLSearchParams;

  // ---- crypto: subtle by RustCrypto; random values from the network's agreed seed ----
  const ALGORITHMS = { "SHA-256": "SHA-256", "SHA-384": "SHA-384", "SHA-512": "SHA-512", HMAC: "HMAC", "AES-GCM": "AES-GCM" };
  const algorithmName = (alg) => {
    const name = typeof alg === "string" ? alg : alg && alg.name;
    const known = ALGORITHMS[String(name).toUpperCase()];
    if (!known) throw new DOMException(`algorithm ${stringify(name)} is not supported (SHA-256/384/512, HMAC, AES-GCM)`, "NotSupportedError");
    return known;
  };
  const hashName = (hash) => {
    const name = algorithmName(hash);
    if (!/^SHA-/.test(name)) throw new DOMException(`hash ${name} is not a hash`, "NotSupportedError");
    return name;
  };
  const keyBytes = new WeakMap();
  const cryptoKeyTag = {};
  class CryptoKey {
    constructor(tag) { if (tag !== cryptoKeyTag) throw new TypeError("Illegal constructor"); }
  }
  const makeKey = (raw, algorithm, extractable, usages) => {
    const key = new CryptoKey(cryptoKeyTag);
    Object.defineProperties(key, {
      type: { value: "secret", enumerable: true },
      extractable: { value: !!extractable, enumerable: true },
      algorithm: { value: Object.freeze(algorithm), enumerable: true },
      usages: { value: Object.freeze(Array.from(usages || [])), enumerable: true },
    });
    keyBytes.set(key, raw.slice());
    return key;
  };
  const useKey = (key, name, usage) => {
    const raw = keyBytes.get(key);
    if (!raw) throw new TypeError("expected a CryptoKey");
    if (key.algorithm.name !== name) throw new DOMException(`the key is for ${key.algorithm.name}, not ${name}`, "InvalidAccessError");
    if (!key.usages.includes(usage)) throw new DOMException(`the key may not be used to ${usage}`, "InvalidAccessError");
    return binary(raw);
  };
  const subtleCall = (fn) => new Promise((resolve, reject) => { try { resolve(fn()); } catch (e) { reject(domError(e)); } });
  const randomBytes = (n) => bridge.random(n);
  const subtle = {
    digest: (algorithm, data) => subtleCall(() => bufferOf(bridge.digest(hashName(algorithm), binary(toU8(data, "digest")))) ),
    importKey: (format, keyData, algorithm, extractable, usages) => subtleCall(() => {
      if (format !== "raw") throw new DOMException(`importKey: format ${stringify(format)} is not supported (use "raw")`, "NotSupportedError");
      const name = algorithmName(algorithm);
      const raw = Uint8Array.from(toU8(keyData, "importKey"));
      if (name === "HMAC") {
        const hash = hashName(algorithm.hash);
        return makeKey(raw, { name, hash: { name: hash }, length: raw.length * 8 }, extractable, usages);
      }
      if (name === "AES-GCM") {
        if (raw.length !== 16 && raw.length !== 32) throw new DOMException(`AES-GCM: a ${raw.length}-byte key; use 16 or 32`, "DataError");
        return makeKey(raw, { name, length: raw.length * 8 }, extractable, usages);
      }
      throw new DOMException(`importKey: ${name} keys are not supported`, "NotSupportedError");
    }),
    exportKey: (format, key) => subtleCall(() => {
      if (format !== "raw") throw new DOMException(`exportKey: format ${stringify(format)} is not supported (use "raw")`, "NotSupportedError");
      const raw = keyBytes.get(key);
      if (!raw) throw new TypeError("exportKey: expected a CryptoKey");
      if (!key.extractable) throw new DOMException("exportKey: the key is not extractable", "InvalidAccessError");
      return raw.slice().buffer;
    }),
    generateKey: (algorithm, extractable, usages) => subtleCall(() => {
      const name = algorithmName(algorithm);
      if (name === "AES-GCM") {
        const length = Number(algorithm.length);
        if (length !== 128 && length !== 256) throw new DOMException("AES-GCM: length must be 128 or 256", "OperationError");
        return makeKey(randomBytes(length / 8), { name, length }, extractable, usages);
      }
      if (name === "HMAC") {
        const hash = hashName(algorithm.hash);
        const length = algorithm.length ? Number(algorithm.length) : hash === "SHA-256" ? 512 : 1024;
        return makeKey(randomBytes(Math.ceil(length / 8)), { name, hash: { name: hash }, length }, extractable, usages);
      }
      throw new DOMException(`generateKey: ${name} keys are not supported`, "NotSupportedError");
    }),
    sign: (algorithm, key, data) => subtleCall(() => {
      if (algorithmName(algorithm) !== "HMAC") throw new DOMException("sign: only HMAC is supported", "NotSupportedError");
      return bufferOf(bridge.hmac(key.algorithm.hash.name, useKey(key, "HMAC", "sign"), binary(toU8(data, "sign"))));
    }),
    verify: (algorithm, key, signature, data) => subtleCall(() => {
      if (algorithmName(algorithm) !== "HMAC") throw new DOMException("verify: only HMAC is supported", "NotSupportedError");
      const mac = bridge.hmac(key.algorithm.hash.name, useKey(key, "HMAC", "verify"), binary(toU8(data, "verify")));
      const sig = toU8(signature, "verify");
      let diff = mac.length ^ sig.length;
      for (let i = 0; i < mac.length && i < sig.length; i++) diff |= mac[i] ^ sig[i];
      return diff === 0;
    }),
    encrypt: (algorithm, key, data) => subtleCall(() => aesGcm(true, algorithm, key, data)),
    decrypt: (algorithm, key, data) => subtleCall(() => aesGcm(false, algorithm, key, data)),
  };
  const aesGcm = (encrypt, algorithm, key, data) => {
    if (algorithmName(algorithm) !== "AES-GCM") throw new DOMException(`${encrypt ? "encrypt" : "decrypt"}: only AES-GCM is supported`, "NotSupportedError");
    if (algorithm.tagLength !== undefined && Number(algorithm.tagLength) !== 128) throw new DOMException("AES-GCM: only 128-bit tags are supported", "NotSupportedError");
    const raw = useKey(key, "AES-GCM", encrypt ? "encrypt" : "decrypt");
    const aad = algorithm.additionalData === undefined ? "" : binary(toU8(algorithm.additionalData, "additionalData"));
    return bufferOf(bridge.aesGcm(encrypt, raw, binary(toU8(algorithm.iv, "iv")), binary(toU8(data, "data")), aad));
  };
  const crypto = {
    subtle: Object.freeze(subtle),
    getRandomValues: (array) => {
      if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array || array instanceof DataView) throw new DOMException("getRandomValues: expected an integer typed array", "TypeMismatchError");
      const view = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      try { view.set(randomBytes(view.length)); } catch (e) { throw domError(e); }
      return array;
    },
    randomUUID: () => {
      const b = randomBytes(16);
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = hex(b);
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  };
  g.crypto = Object.freeze(crypto);
  g.CryptoKey = CryptoKey;

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
  if (g.performance === undefined) g.performance = { now: () => 0, timeOrigin: now };

  // ---- console: captured as the run's logs ----
  const show = (v) => {
    if (typeof v === "string") return v;
    if (v instanceof Error) return `${v.name}: ${v.message}`;
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "function") return `[Function ${v.name || "anonymous"}]`;
    if (v instanceof Uint8Array) return `Uint8Array(${v.length}) [ ${Array.from(v).join(", ")} ]`;
    if (v instanceof URL) return v.href;
    try {
      const text = stringify(v, (_, x) => (typeof x === "bigint" ? `${x}n` : x));
      return text === undefined ? String(v) : text;
    } catch (_) {
      return String(v);
    }
  };
  const log = (level) => (...args) => bridge.log(level, args.map(show).join(" "));
  g.console = Object.freeze({ log: log("log"), info: log("info"), warn: log("warn"), error: log("error"), debug: log("debug"), trace: log("debug") });

  // ---- fetch: Headers, Request, Response ----
  const headerName = (name) => {
    const n = String(name);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(n)) throw new TypeError(`Headers: ${stringify(n)} is not a valid header name`);
    return n.toLowerCase();
  };
  class Headers {
    constructor(init) {
      Object.defineProperty(this, "_h", { value: new Map() });
      if (init === undefined || init === null) return;
      const pairs = init instanceof Headers ? Array.from(init.entries()) : typeof init[Symbol.iterator] === "function" ? Array.from(init) : Object.entries(init);
      for (const pair of pairs) this.append(pair[0], pair[1]);
    }
    append(name, value) { const n = headerName(name); const v = String(value).trim(); this._h.set(n, this._h.has(n) ? `${this._h.get(n)}, ${v}` : v); }
    delete(name) { this._h.delete(headerName(name)); }
    get(name) { const v = this._h.get(headerName(name)); return v === undefined ? null : v; }
    has(name) { return this._h.has(headerName(name)); }
    set(name, value) { this._h.set(headerName(name), String(value).trim()); }
    forEach(fn, self) { for (const [k, v] of this.entries()) fn.call(self, v, k, this); }
    entries() { return Array.from(this._h.entries()).sort((a, b) => (a[0] < b[0] ? -1 : 1))[Symbol.iterator](); }
    keys() { return Array.from(this.entries(), ([k]) => k)[Symbol.iterator](); }
    values() { return Array.from(this.entries(), ([, v]) => v)[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
  }
  // A body as bytes, and the content type it implies.
  const bodyOf = (body) => {
    if (body === undefined || body === null) return [null, null];
    if (typeof body === "string") return [utf8Encode(body), "text/plain;charset=UTF-8"];
    if (body instanceof URLSearchParams) return [utf8Encode(body.toString()), "application/x-www-form-urlencoded;charset=UTF-8"];
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return [Uint8Array.from(toU8(body, "body")), null];
    // Not the platform's rule (it would send "[object Object]"), but what an action meant.
    return [utf8Encode(stringify(body)), "application/json"];
  };
  class Body {
    _initBody(bytes) { Object.defineProperty(this, "_bytes", { value: bytes, writable: true }); this.bodyUsed = false; }
    _consume() {
      if (this.bodyUsed) return Promise.reject(new TypeError("the body has already been read"));
      this.bodyUsed = true;
      return Promise.resolve(this._bytes || new Uint8Array(0));
    }
    get body() { return this._bytes === null ? null : {}; }
    async arrayBuffer() { return (await this._consume()).slice().buffer; }
    async bytes() { return (await this._consume()).slice(); }
    async text() { return utf8Decode(await this._consume()); }
    async json() { return parse(await this.text()); }
  }
  class Request extends Body {
    constructor(input, init = {}) {
      super();
      const from = input instanceof Request ? input : null;
      this.url = from ? from.url : new URL(String(input)).href;
      this.method = String(init.method || (from ? from.method : "GET")).toUpperCase();
      this.headers = new Headers(init.headers || (from ? from.headers : undefined));
      this.signal = init.signal || (from ? from.signal : new AbortController().signal);
      this.redirect = init.redirect || (from ? from.redirect : "follow");
      let bytes = from ? from._bytes : null;
      if (init.body !== undefined && init.body !== null) {
        const [b, type] = bodyOf(init.body);
        bytes = b;
        if (type && !this.headers.has("content-type")) this.headers.set("content-type", type);
      }
      if (bytes && (this.method === "GET" || this.method === "HEAD")) throw new TypeError(`Request: a ${this.method} request cannot have a body`);
      this._initBody(bytes);
    }
    clone() { return new Request(this); }
  }
  const STATUS_TEXT = { 200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error" };
  class Response extends Body {
    constructor(body = null, init = {}) {
      super();
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`Response: status ${init.status} is not in 200-599`);
      this.status = status;
      this.statusText = init.statusText === undefined ? STATUS_TEXT[status] || "" : String(init.statusText);
      this.ok = status >= 200 && status < 300;
      this.headers = new Headers(init.headers);
      this.url = "";
      this.redirected = false;
      this.type = "default";
      const [bytes, type] = bodyOf(body);
      if (type && !this.headers.has("content-type")) this.headers.set("content-type", type);
      this._initBody(bytes);
    }
    static json(data, init = {}) { const r = new Response(stringify(data), init); r.headers.set("content-type", "application/json"); return r; }
    static error() { const r = new Response(null, { status: 200 }); r.status = 0; r.ok = false; r.type = "error"; return r; }
    clone() { const r = new Response(this._bytes, { status: this.status, statusText: this.statusText, headers: this.headers }); r.url = this.url; r.redirected = this.redirected; return r; }
  }
  // What the node fetched, as a Response (its status may be anything: 1xx-5xx).
  const fetched = (r) => {
    const out = new Response(null, { status: 200, headers: r.headers });
    out.status = r.status;
    out.ok = r.status >= 200 && r.status < 300;
    out.statusText = r.statusText;
    out.url = r.url;
    out.redirected = !!r.redirected;
    out._bytes = bridge.b64Decode(r.body);
    return out;
  };
  g.Headers = Headers;
  g.Request = Request;
  g.Response = Response;
  g.fetch = (resource, init = {}) => {
    let request;
    try { request = new Request(resource instanceof URL ? resource.href : resource, init); } catch (e) { return Promise.reject(e); }
    const signal = request.signal;
    if (signal && signal.aborted) return Promise.reject(signal.reason);
    const headers = {};
    for (const [k, v] of request.headers) headers[k] = v;
    const body = request._bytes ? bridge.b64Encode(binary(request._bytes)) : null;
    let started;
    try {
      started = bridge.fetch(stringify({ op: "fetch", url: request.url, method: request.method, headers, body }));
    } catch (e) {
      return Promise.reject(e);
    }
    // Own elements of a native array: no iterator an action could have replaced.
    const promise = started[0], id = started[1];
    return new Promise((resolve, reject) => {
      let done = false;
      const onAbort = () => { if (done) return; done = true; bridge.cancel(id); reject(signal.reason); };
      if (signal) signal.addEventListener("abort", onAbort, { once: true });
      promise.then(parse).then(
        (r) => { if (done) return; done = true; if (signal) signal.removeEventListener("abort", onAbort); resolve(fetched(r)); },
        // The node's error as it is, so an uncaught one keeps its code (FETCH_BLOCKED, FETCH_FAILED).
        (e) => { if (done) return; done = true; if (signal) signal.removeEventListener("abort", onAbort); reject(e); },
      );
    });
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
