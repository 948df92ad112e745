//! The web platform inside the sandbox, against known values: timers, URL, encodings,
//! structuredClone, abort, Headers/Request/Response, crypto.subtle and the random stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sigil_actions::{ActionError, HostOp, Limits};

use crate::host::{config, request, run, run_with, TestHost};

/// Runs `body` inside an async function and returns what it returned, as JSON.
fn eval(body: &str) -> Value {
    let code = format!(
        "(async () => {{ const out = await (async () => {{ {body} }})(); Lit.Actions.setResponse({{ response: JSON.stringify(out) }}); }})();"
    );
    let outcome = run(&code);
    outcome
        .result
        .unwrap_or_else(|e| panic!("{body}: {e} (logs {:?})", outcome.logs));
    serde_json::from_str(outcome.response.as_deref().unwrap_or("null")).unwrap()
}

#[test]
fn a_cleared_timer_keeps_nothing_waiting() {
    // ethers' pattern: a long request timer, cleared once the answer is in.
    let started = Instant::now();
    let out = eval(
        "const t = setTimeout(() => { throw new Error('fired'); }, 120000);
         await new Promise((r) => setTimeout(r, 10));
         clearTimeout(t);
         return 'done';",
    );
    assert_eq!(out, json!("done"));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn timers_fire_in_order_and_intervals_repeat_until_cleared() {
    let out = eval(
        "const seen = [];
         setTimeout(() => seen.push('b'), 20);
         setTimeout(() => seen.push('a'), 5);
         setTimeout((x, y) => seen.push(x + y), 0, 'c', 'd');
         let n = 0;
         await new Promise((resolve) => {
           const i = setInterval(() => { n++; if (n === 3) { clearInterval(i); resolve(); } }, 2);
         });
         await new Promise((r) => setTimeout(r, 30));
         return [seen, n, typeof setTimeout(() => {}, 0)];",
    );
    assert_eq!(out, json!([["cd", "a", "b"], 3, "number"]));
}

#[test]
fn a_timer_that_throws_fails_the_run_and_an_endless_interval_times_out() {
    let outcome = run("setTimeout(() => { throw new Error('late failure'); }, 1);");
    assert_eq!(outcome.result, Err(ActionError::Script("late failure".into())));
    let limits = Limits {
        wall_time: Duration::from_millis(500),
        ..Limits::default()
    };
    let (outcome, _) = run_with("setInterval(() => {}, 1);", json!({}), limits);
    assert_eq!(outcome.result, Err(ActionError::Timeout(Duration::from_millis(500))));
}

#[test]
fn urls_parse_resolve_and_update_like_the_whatwg_spec() {
    let out = eval(
        "const u = new URL('../b/c?x=1&y=two%20words#frag', 'https://user:pw@example.com:8443/a/z');
         const parts = [u.href, u.origin, u.protocol, u.username, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, u.searchParams.get('y')];
         u.searchParams.append('z', 'a b&c');
         u.pathname = '/new path';
         const q = new URLSearchParams({ a: '1', b: 'x y' });
         q.set('a', '2'); q.append('c', '~!');
         let bad = null;
         try { new URL('not a url'); } catch (e) { bad = e instanceof TypeError; }
         return [parts, u.href, q.toString(), [...new URLSearchParams('?k=v&k=w').getAll('k')], bad, URL.canParse('http://x'), String(new URL('HTTP://EXAMPLE.com'))];",
    );
    assert_eq!(
        out,
        json!([
            [
                "https://user:pw@example.com:8443/b/c?x=1&y=two%20words#frag",
                "https://example.com:8443",
                "https:",
                "user",
                "example.com:8443",
                "example.com",
                "8443",
                "/b/c",
                "?x=1&y=two%20words",
                "#frag",
                "two words"
            ],
            "https://user:pw@example.com:8443/new%20path?x=1&y=two+words&z=a+b%26c#frag",
            "a=2&b=x+y&c=%7E%21",
            ["v", "w"],
            true,
            true,
            "http://example.com/"
        ])
    );
}

#[test]
fn text_encodings_and_base64_round_trip() {
    let out = eval(
        "const b = new TextEncoder().encode('h€llo 🌍');
         return [Array.from(b), new TextDecoder().decode(b), new TextDecoder().decode(new Uint8Array([0xff, 0x61])), btoa('hello'), atob('aGVsbG8='), atob(btoa('\\u00ff\\u0000'))
           .split('').map((c) => c.charCodeAt(0))];",
    );
    assert_eq!(
        out,
        json!([
            [104, 226, 130, 172, 108, 108, 111, 32, 240, 159, 140, 141],
            "h€llo 🌍",
            "\u{fffd}a",
            "aGVsbG8=",
            "hello",
            [255, 0]
        ])
    );
}

#[test]
fn structured_clone_copies_deeply_and_refuses_functions() {
    let out = eval(
        "const a = { n: 1, d: new Date(5), m: new Map([[1, { x: [1, 2] }]]), s: new Set(['q']), u: new Uint8Array([1, 2]) };
         a.self = a;
         const b = structuredClone(a);
         b.m.get(1).x.push(3);
         let refused = null;
         try { structuredClone({ f() {} }); } catch (e) { refused = e.name; }
         return [b !== a, b.self === b, b.d.getTime(), a.m.get(1).x.length, b.m.get(1).x.length, b.s.has('q'), Array.from(b.u), refused];",
    );
    assert_eq!(out, json!([true, true, 5, 2, 3, true, [1, 2], "DataCloneError"]));
}

#[test]
fn an_aborted_fetch_rejects_at_once_and_the_run_does_not_wait_for_it() {
    let started = Instant::now();
    let out = eval(
        "const c = new AbortController();
         setTimeout(() => c.abort(), 10);
         let name = null;
         try { await fetch('http://127.0.0.1:9/hang', { signal: c.signal }); } catch (e) { name = e.name; }
         let early = null;
         try { await fetch('http://127.0.0.1:9/x', { signal: AbortSignal.abort() }); } catch (e) { early = e.name; }
         return [name, early, c.signal.aborted];",
    );
    assert_eq!(out, json!(["AbortError", "AbortError", true]));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn headers_requests_and_responses_behave_like_fetch_s() {
    let out = eval(
        "const h = new Headers({ 'Content-Type': 'a' });
         h.append('X-Many', '1'); h.append('x-many', '2');
         const r = await fetch(new Request('http://127.0.0.1:9/echo', { method: 'post', body: new Uint8Array([0, 255, 10]) }));
         const bytes = Array.from(new Uint8Array(await r.arrayBuffer()));
         let reread = null;
         try { await r.text(); } catch (e) { reread = e instanceof TypeError; }
         const made = new Response(JSON.stringify({ k: 1 }), { status: 404, headers: { 'x-a': 'b' } });
         return [h.get('content-type'), h.get('X-MANY'), [...h.keys()], r.status, r.ok, r.statusText, r.headers.get('X-Seen'), r.redirected, bytes, reread,
                 made.ok, made.status, await made.json(), made.headers.get('x-a'), (await Response.json([1]).json())[0]];",
    );
    assert_eq!(
        out,
        json!([
            "a",
            "1, 2",
            ["content-type", "x-many"],
            201,
            true,
            "Created",
            "1",
            true,
            [0, 255, 10],
            true,
            false,
            404,
            {"k": 1},
            "b",
            1
        ])
    );
}

/// Hex of an ArrayBuffer, inside the action.
const HEX: &str = "const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');
                   const enc = (s) => new TextEncoder().encode(s);";

#[test]
fn subtle_digests_match_the_fips_vectors() {
    let out = eval(&format!(
        "{HEX} return [hex(await crypto.subtle.digest('SHA-256', enc('abc'))), hex(await crypto.subtle.digest({{ name: 'SHA-384' }}, enc('abc'))), hex(await crypto.subtle.digest('SHA-512', enc('abc')))];"
    ));
    assert_eq!(
        out,
        json!([
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        ])
    );
}

#[test]
fn subtle_hmac_matches_rfc_4231_and_verifies() {
    let out = eval(&format!(
        "{HEX}
         const key = await crypto.subtle.importKey('raw', enc('Jefe'), {{ name: 'HMAC', hash: 'SHA-256' }}, true, ['sign', 'verify']);
         const data = enc('what do ya want for nothing?');
         const mac = await crypto.subtle.sign('HMAC', key, data);
         const k512 = await crypto.subtle.importKey('raw', enc('Jefe'), {{ name: 'HMAC', hash: {{ name: 'SHA-512' }} }}, false, ['sign']);
         let noExport = null;
         try {{ await crypto.subtle.exportKey('raw', k512); }} catch (e) {{ noExport = e.name; }}
         return [hex(mac), await crypto.subtle.verify('HMAC', key, mac, data), await crypto.subtle.verify('HMAC', key, mac, enc('other')),
                 hex(await crypto.subtle.sign('HMAC', k512, data)).slice(0, 32), hex(await crypto.subtle.exportKey('raw', key)), noExport, key.algorithm.hash.name, key.type];"
    ));
    assert_eq!(
        out,
        json!([
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            true,
            false,
            "164b7a7bfcf819e2e395fbe73b56e0a3",
            "4a656665",
            "InvalidAccessError",
            "SHA-256",
            "secret"
        ])
    );
}

#[test]
fn subtle_aes_gcm_matches_the_gcm_spec_vectors_and_refuses_tampering() {
    // McGrew–Viega test cases 1 and 2 (AES-128, zero key and iv) and a 256-bit round trip.
    let out = eval(&format!(
        "{HEX}
         const key = await crypto.subtle.importKey('raw', new Uint8Array(16), 'AES-GCM', true, ['encrypt', 'decrypt']);
         const iv = new Uint8Array(12);
         const empty = await crypto.subtle.encrypt({{ name: 'AES-GCM', iv }}, key, new Uint8Array(0));
         const block = await crypto.subtle.encrypt({{ name: 'AES-GCM', iv }}, key, new Uint8Array(16));
         const back = await crypto.subtle.decrypt({{ name: 'AES-GCM', iv }}, key, block);
         const tampered = new Uint8Array(block.slice(0)); tampered[0] ^= 1;
         let refused = null;
         try {{ await crypto.subtle.decrypt({{ name: 'AES-GCM', iv }}, key, tampered); }} catch (e) {{ refused = [e.name, e instanceof DOMException]; }}
         const k256 = await crypto.subtle.importKey('raw', new Uint8Array(32).fill(1), {{ name: 'AES-GCM' }}, false, ['encrypt', 'decrypt']);
         const sealed = await crypto.subtle.encrypt({{ name: 'AES-GCM', iv, additionalData: enc('aad') }}, k256, enc('secret'));
         const opened = new TextDecoder().decode(await crypto.subtle.decrypt({{ name: 'AES-GCM', iv, additionalData: enc('aad') }}, k256, sealed));
         let wrongAad = null;
         try {{ await crypto.subtle.decrypt({{ name: 'AES-GCM', iv }}, k256, sealed); }} catch (e) {{ wrongAad = e.name; }}
         let noUse = null;
         const signOnly = await crypto.subtle.importKey('raw', new Uint8Array(16), 'AES-GCM', false, ['decrypt']);
         try {{ await crypto.subtle.encrypt({{ name: 'AES-GCM', iv }}, signOnly, enc('x')); }} catch (e) {{ noUse = e.name; }}
         return [hex(empty), hex(block), hex(back), refused, opened, wrongAad, noUse];"
    ));
    assert_eq!(
        out,
        json!([
            "58e2fccefa7e3061367f1d57a4e7455a",
            "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf",
            "00000000000000000000000000000000",
            ["OperationError", true],
            "secret",
            "OperationError",
            "InvalidAccessError"
        ])
    );
}

#[test]
fn random_values_and_uuids_come_from_the_run_s_stream() {
    let code = "const a = crypto.getRandomValues(new Uint8Array(8));
                const b = crypto.getRandomValues(new Uint32Array(2));
                const id = crypto.randomUUID();
                let quota = null;
                try { crypto.getRandomValues(new Uint8Array(65537)); } catch (e) { quota = e.name; }
                Lit.Actions.setResponse({ response: JSON.stringify([Array.from(a), Array.from(b), id, quota]) });";
    let host = Arc::new(TestHost::default());
    let first = sigil_actions::run(&config(Limits::default()), request(code, json!({})), host.clone());
    let again = sigil_actions::run(&config(Limits::default()), request(code, json!({})), host.clone());
    *host.seed.lock().unwrap() = Some([9; 32]);
    let other = sigil_actions::run(&config(Limits::default()), request(code, json!({})), host.clone());
    first.result.unwrap();
    assert_eq!(first.response, again.response);
    assert_ne!(first.response, other.response);
    let out: Value = serde_json::from_str(first.response.as_deref().unwrap()).unwrap();
    let uuid = out[2].as_str().unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4");
    assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
    assert_eq!(out[3], json!("QuotaExceededError"));
    // Each run asked for its seed once, however much it drew.
    let asked = host.ops().iter().filter(|(op, _)| *op == HostOp::Randomness).count();
    assert_eq!(asked, 3);
}

#[test]
fn an_action_cannot_cancel_anything_but_its_own_fetch() {
    // The attack: a replaced array iterator once fed `cancel` the id of another operation, so a
    // pending broadcast (or signature) vanished and the run ended without it.
    let code = r#"(async () => {
        const slow = Lit.Actions.broadcastAndCollect({ name: "slow", value: "v" });
        const iterate = Array.prototype[Symbol.iterator];
        Array.prototype[Symbol.iterator] = function () {
            return this.length === 2 && this[0] instanceof Promise ? iterate.call([this[0], 0]) : iterate.call(this);
        };
        const c = new AbortController();
        const f = fetch("http://127.0.0.1:9/hang", { signal: c.signal }).catch((e) => e.name);
        c.abort();
        const aborted = await f;
        Lit.Actions.setResponse({ response: JSON.stringify([aborted, await slow]) });
    })();"#;
    let started = Instant::now();
    let (outcome, host) = run_with(code, json!({}), Limits::default());
    outcome.result.unwrap();
    assert_eq!(outcome.response.as_deref(), Some(r#"["AbortError",["v","other"]]"#));
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "the run did not wait for its broadcast"
    );
    // The host heard of the one aborted fetch (id 1: the broadcast is 0), and of the run's end.
    assert_eq!(*host.cancelled.lock().unwrap(), vec![1]);
    assert_eq!(host.finished.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_child_action_draws_the_same_bytes_whenever_its_parent_draws() {
    let host = Arc::new(TestHost::default());
    let child = host.with_action(
        "Lit.Actions.setResponse({ response: JSON.stringify(Array.from(crypto.getRandomValues(new Uint8Array(4)))) });",
    );
    let draw_then_call = format!(
        "(async () => {{ const mine = Array.from(crypto.getRandomValues(new Uint8Array(4))); const theirs = await Lit.Actions.call({{ ipfsId: {child:?} }}); Lit.Actions.setResponse({{ response: JSON.stringify([mine, JSON.parse(theirs)]) }}); }})();"
    );
    let call_then_draw = format!(
        "(async () => {{ const theirs = await Lit.Actions.call({{ ipfsId: {child:?} }}); const mine = Array.from(crypto.getRandomValues(new Uint8Array(4))); Lit.Actions.setResponse({{ response: JSON.stringify([mine, JSON.parse(theirs)]) }}); }})();"
    );
    let a = sigil_actions::run(
        &config(Limits::default()),
        request(&draw_then_call, json!({})),
        host.clone(),
    );
    let b = sigil_actions::run(
        &config(Limits::default()),
        request(&call_then_draw, json!({})),
        host.clone(),
    );
    a.result.unwrap();
    b.result.unwrap();
    let (a, b): (Value, Value) = (
        serde_json::from_str(a.response.as_deref().unwrap()).unwrap(),
        serde_json::from_str(b.response.as_deref().unwrap()).unwrap(),
    );
    assert_eq!(a, b, "each context's draws are its own, whatever the order");
    assert_ne!(a[0], a[1], "the child's stream is not the parent's");
}

#[test]
fn lit_s_byte_helpers_and_aes_decrypt_work_on_what_subtle_made() {
    let out = eval(
        "const key = new Uint8Array(32).fill(9);
         const iv = new Uint8Array(12).fill(3);
         const k = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
         const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, k, new TextEncoder().encode('gm')));
         const ciphertext = new Uint8Array(12 + sealed.length); ciphertext.set(iv); ciphertext.set(sealed, 12);
         const plain = await Lit.Actions.aesDecrypt({ symmetricKey: key, ciphertext });
         let wrong = null;
         try { await Lit.Actions.aesDecrypt({ symmetricKey: new Uint8Array(32), ciphertext }); } catch (e) { wrong = /does not decrypt/.test(e.message); }
         const A = Lit.Actions;
         return [plain, wrong, A.uint8arrayToString(A.uint8arrayFromString('hé'), 'base16'), A.uint8arrayToString(A.uint8arrayFromString('aGk=', 'base64')), A.uint8arrayToString(new Uint8Array([104, 105]), 'base64')];",
    );
    assert_eq!(out, json!(["gm", true, "68c3a9", "hi", "aGk="]));
}

/// The host operations a run of `code` started, in order (the run must succeed).
fn ops_of(code: &str) -> Vec<HostOp> {
    let (outcome, host) = run_with(code, json!({}), Limits::default());
    outcome.result.unwrap();
    host.ops().into_iter().map(|(op, _)| op).collect()
}

#[test]
fn chain_reads_reach_the_host_in_lit_s_shapes() {
    let code = r#"(async () => {
        await Lit.Actions.getLatestNonce({ address: "0x000000000000000000000000000000000000dEaD", chain: "sigil" });
        await Lit.Actions.callContract({ chain: "sigil", txn: "0xde80" });
        await Lit.Actions.getPermittedAuthMethodScopes({ tokenId: "12", authMethodType: 1, userId: new Uint8Array([1, 2]), maxScopeId: 3 });
    })();"#;
    let ops = ops_of(code);
    assert_eq!(
        ops,
        vec![
            HostOp::LatestNonce {
                address: "0x000000000000000000000000000000000000dEaD".into(),
                chain: "sigil".into()
            },
            HostOp::CallContract {
                chain: "sigil".into(),
                txn: "0xde80".into()
            },
            HostOp::PermittedAuthMethodScopes {
                token_id: "0xc".into(),
                auth_method_type: 1,
                user_id: "0102".into(),
                max_scope_id: 3
            },
        ]
    );
}

/// A warm runtime (ethers evaluated before the run is known) gives an action exactly what a cold
/// one does: the same ethers, drawing from the run's agreed stream (a random wallet is the same
/// wallet), the run's clock and globals; and a warm runtime serves one run only.
#[test]
fn a_warm_runtime_runs_ethers_actions_as_a_cold_one_does() {
    let code = r#"(async () => {
        const wallet = new ethers.Wallet(ethers.utils.randomBytes(32));
        const bytes = ethers.utils.randomBytes(8);
        const sig = await wallet.signMessage("hi");
        globalThis.leftBehind = "by run one";
        Lit.Actions.setResponse({ response: JSON.stringify([wallet.address, ethers.utils.hexlify(bytes), sig, Date.now(), typeof crypto.subtle, ethers.version]) });
    })();"#;
    let limits = Limits::default();
    let cold = sigil_actions::run(
        &config(limits.clone()),
        request(code, json!({})),
        Arc::new(TestHost::default()),
    );
    cold.result
        .clone()
        .unwrap_or_else(|e| panic!("cold: {e} {:?}", cold.logs));
    let warm = sigil_actions::Warm::new(&config(limits.clone())).unwrap();
    let hot = sigil_actions::run_warm(
        &config(limits.clone()),
        request(code, json!({})),
        Arc::new(TestHost::default()),
        warm,
    );
    hot.result
        .clone()
        .unwrap_or_else(|e| panic!("warm: {e} {:?}", hot.logs));
    assert_eq!(hot.response, cold.response);
    let v: Value = serde_json::from_str(hot.response.as_deref().unwrap()).unwrap();
    assert_eq!(v[3], 1_700_000_000_000u64);
    assert_eq!(v[4], "object");

    // Another seed, another wallet: the warm runtime's ethers draws from the run, not from the
    // runtime it was loaded in.
    let host = Arc::new(TestHost::default());
    *host.seed.lock().unwrap() = Some([9; 32]);
    let warm = sigil_actions::Warm::new(&config(limits.clone())).unwrap();
    let other = sigil_actions::run_warm(&config(limits.clone()), request(code, json!({})), host, warm);
    let w: Value = serde_json::from_str(other.response.as_deref().unwrap()).unwrap();
    assert_ne!(w[0], v[0]);

    // What one warm run left in its globals is not in the next.
    let probe = r#"(async () => { Lit.Actions.setResponse({ response: String(typeof leftBehind) + "," + ethers.utils.id("x") }); })();"#;
    let warm = sigil_actions::Warm::new(&config(limits.clone())).unwrap();
    let next = sigil_actions::run_warm(
        &config(limits),
        request(probe, json!({})),
        Arc::new(TestHost::default()),
        warm,
    );
    next.result.unwrap();
    assert_eq!(
        next.response.as_deref(),
        Some("undefined,0x7521d1cadbcfa91eec65aa16715b94ffc1c9654ba57ea2ef1a2127bca1127a83")
    );
}

#[test]
fn a_warm_runtime_needs_an_ethers_bundle() {
    let mut config = config(Limits::default());
    config.ethers_bundle = None;
    let Err(e) = sigil_actions::Warm::new(&config) else {
        panic!("made a warm runtime without ethers")
    };
    assert!(e.to_string().contains("no ethers bundle"), "{e}");
    config.ethers_bundle = Some("/nonexistent/ethers.js".into());
    let Err(e) = sigil_actions::Warm::new(&config) else {
        panic!("made a warm runtime without ethers")
    };
    assert!(e.to_string().contains("/nonexistent/ethers.js"), "{e}");
}

/// `claimKey` reaches the host as one op per key, Lit's way (not awaited is fine), counts as a
/// signature against the run's limit, and refuses an empty or oversized keyId in the sandbox.
#[test]
fn claim_key_reaches_the_host_and_counts_as_a_signature() {
    let code = r#"Lit.Actions.claimKey({ keyId: "alice" }); Lit.Actions.claimKey({ keyId: "bob" });"#;
    let ops = ops_of(code);
    assert_eq!(
        ops,
        vec![
            HostOp::ClaimKey {
                key_id: "alice".into(),
                attempt: 0
            },
            HostOp::ClaimKey {
                key_id: "bob".into(),
                attempt: 0
            }
        ]
    );
    let limits = Limits {
        signatures: 1,
        ..Limits::default()
    };
    let (outcome, _) = run_with(code, json!({}), limits);
    assert!(
        matches!(outcome.result, Err(ActionError::Limit { .. })),
        "{:?}",
        outcome.result
    );
    for bad in ["\"\"", "\"x\".repeat(257)", "7"] {
        let (outcome, host) = run_with(
            &format!("Lit.Actions.claimKey({{ keyId: {bad} }});"),
            json!({}),
            Limits::default(),
        );
        let e = outcome.result.unwrap_err().to_string();
        assert!(e.contains("keyId"), "{bad}: {e}");
        assert!(host.ops().is_empty());
    }
}

/// ethers captures `self` and `crypto` when it loads: in a warm runtime it has loaded before the
/// run's jsParams become globals, so a caller's `self` param cannot change what ethers draws from
/// (the node runs every action that names ethers in a warm runtime, spare or not).
#[test]
fn a_warm_runtime_s_ethers_ignores_globals_the_params_set() {
    let code = r#"(async () => { Lit.Actions.setResponse({ response: ethers.utils.hexlify(ethers.utils.randomBytes(4)) }); })();"#;
    let limits = Limits::default();
    let run = |params: Value| {
        let warm = sigil_actions::Warm::new(&config(limits.clone())).unwrap();
        sigil_actions::run_warm(
            &config(limits.clone()),
            request(code, params),
            Arc::new(TestHost::default()),
            warm,
        )
    };
    let plain = run(json!({}));
    let shadowed = run(json!({ "self": {}, "window": {} }));
    plain.result.unwrap();
    shadowed
        .result
        .clone()
        .unwrap_or_else(|e| panic!("{e} {:?}", shadowed.logs));
    assert_eq!(plain.response, shadowed.response);
    // Loaded lazily, after the params (a child's ethers, or code that builds the name), ethers
    // does not see them either, and the params are back afterwards.
    let lazy = r#"(async () => { const e = globalThis["eth" + "ers"]; Lit.Actions.setResponse({ response: e.utils.hexlify(e.utils.randomBytes(4)) + typeof self + typeof __awaiter }); })();"#;
    let cold = sigil_actions::run(
        &config(limits.clone()),
        request(
            lazy,
            json!({ "self": {}, "__awaiter": 1, "process": { "versions": { "node": "1" } } }),
        ),
        Arc::new(TestHost::default()),
    );
    cold.result.clone().unwrap_or_else(|e| panic!("{e} {:?}", cold.logs));
    assert_eq!(cold.response, plain.response.map(|r| format!("{r}objectnumber")));
}
