// The web platform of an action run: what Deno gives Lit's actions and this runtime evaluates
// only when an action first touches one of its globals (the prelude's getters), so a run that
// never does pays nothing for it. An expression: a function of the native bridge and the
// prelude's helpers, returning the globals.
(function (bridge, h) {
  "use strict";
  const g = globalThis;
  const { stringify, parse, toU8, binary, utf8Encode, utf8Decode, bufferOf, hex, randomBytes, NativeDate } = h;

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
  const btoa = (text) => {
    const s = String(text);
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 255) throw new DOMException("btoa: the string has characters outside Latin-1", "InvalidCharacterError");
    return bridge.b64Encode(s);
  };
  const atob = (text) => {
    try { return binary(bridge.b64Decode(String(text))); } catch (e) { throw new DOMException("atob: not base64", "InvalidCharacterError"); }
  };

  // ---- errors and events ----
  const DOM_CODES = { IndexSizeError: 1, InvalidCharacterError: 5, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12, InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, QuotaExceededError: 22, TimeoutError: 23, DataCloneError: 25, DataError: 0, OperationError: 0 };
  class DOMException extends Error {
    constructor(message = "", name = "Error") { super(String(message)); this.name = String(name); }
    get code() { return DOM_CODES[this.name] || 0; }
  }
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

  // ---- structuredClone ----
  const structuredClone = (value) => {
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
  const cryptoGlobal = Object.freeze(crypto);

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
  const fetch = (resource, init = {}) => {
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

  return {
    TextEncoder, TextDecoder, btoa, atob, DOMException, Event, EventTarget,
    AbortSignal, AbortController, structuredClone, URL, URLSearchParams,
    crypto: cryptoGlobal, CryptoKey, Headers, Request, Response, fetch,
  };
})
