//! The sandbox: globals, the Lit.Actions surface, limits and determinism.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sigil_actions::{ActionError, HostOp, Limit, Limits};

use crate::host::{config, request, run, run_with, TestHost};

fn short() -> Limits {
    Limits {
        wall_time: Duration::from_millis(1500),
        ..Limits::default()
    }
}

#[test]
fn params_are_globals_and_response_and_logs_come_back() {
    let code = r#"(async () => {
        console.log("celsius", celsius, jsParams.celsius, typeof Lit.Actions.signEcdsa);
        Lit.Actions.setResponse({ response: JSON.stringify({ f: celsius * 9 / 5 + 32 }) });
    })();"#;
    let (outcome, _) = run_with(code, json!({"celsius": 20}), Limits::default());
    outcome.result.unwrap();
    assert_eq!(outcome.response.as_deref(), Some(r#"{"f":68}"#));
    assert_eq!(outcome.logs, vec!["celsius 20 20 function"]);
}

#[test]
fn uncaught_errors_fail_the_run_with_their_message() {
    let outcome = run(r#"(async () => { throw new Error("no weather today"); })();"#);
    assert_eq!(outcome.result, Err(ActionError::Script("no weather today".into())));
    let outcome = run("nonsense(");
    assert!(matches!(outcome.result, Err(ActionError::Script(m)) if m.starts_with("SyntaxError")));
    // An awaited rejection that is caught is not an error.
    let outcome = run(r#"(async () => {
        const f = async () => { throw new Error("inner"); };
        try { await f(); } catch (e) { Lit.Actions.setResponse({ response: "caught " + e.message }); }
    })();"#);
    outcome.result.unwrap();
    assert_eq!(outcome.response.as_deref(), Some("caught inner"));
}

fn assert_timeout(code: &str) {
    let started = Instant::now();
    let (outcome, _) = run_with(code, json!({}), short());
    let took = started.elapsed();
    assert_eq!(
        outcome.result,
        Err(ActionError::Timeout(Duration::from_millis(1500))),
        "{code}"
    );
    assert!(took < Duration::from_secs(5), "{code} took {took:?}");
}

#[test]
fn infinite_loops_and_regexes_stop_at_the_deadline() {
    assert_timeout("while (true) {}");
    assert_timeout("(async () => { await Promise.resolve(); while (true) {} })();");
    assert_timeout("(async () => { await fetch('http://127.0.0.1:1/'); for (;;) {} })();");
    assert_timeout("/^(a+)+$/.test('a'.repeat(40) + 'b');");
    assert_timeout("(async () => { await new Promise(() => {}); })(); Lit.Actions.runOnce({name: 'x'}, () => new Promise(() => setTimeout(() => {}, 60000)));");
}

#[test]
fn memory_bombs_stop_with_a_memory_error() {
    let limits = Limits {
        memory_bytes: 32 * 1024 * 1024,
        ..short()
    };
    let (outcome, _) = run_with(
        "const a = []; while (true) a.push(new Array(100000).fill(1.5));",
        json!({}),
        limits.clone(),
    );
    assert_eq!(outcome.result, Err(ActionError::OutOfMemory(32 * 1024 * 1024)));
    let (outcome, _) = run_with(
        "const s = 'x'.repeat(1 << 20); const a = []; while (true) a.push(s + a.length);",
        json!({}),
        limits,
    );
    assert_eq!(outcome.result, Err(ActionError::OutOfMemory(32 * 1024 * 1024)));
}

#[test]
fn fetch_is_limited_and_http_only() {
    let code = r#"(async () => {
        const r = await fetch("http://127.0.0.1:9/x");
        Lit.Actions.setResponse({ response: await r.text() });
        for (let i = 0; i < 60; i++) await fetch("http://127.0.0.1:9/" + i);
    })();"#;
    let (outcome, host) = run_with(code, json!({}), Limits::default());
    assert_eq!(
        outcome.result,
        Err(ActionError::Limit {
            limit: Limit::Fetches,
            max: 50
        })
    );
    assert_eq!(outcome.response.as_deref(), Some("hello"));
    assert_eq!(host.ops().len(), 50);
    for url in ["file:///etc/passwd", "ftp://127.0.0.1/", "data:text/plain,hi"] {
        let outcome = run(&format!("(async () => {{ await fetch({url:?}); }})();"));
        assert!(
            matches!(&outcome.result, Err(ActionError::Script(m)) if m.contains("only http and https")),
            "{url}: {:?}",
            outcome.result
        );
    }
}

#[test]
fn signatures_are_counted_and_to_sign_checked() {
    let code = r#"(async () => {
        const publicKey = "04" + "11".repeat(64);
        try { await Lit.Actions.signEcdsa({ toSign: [1, 2, 3], publicKey, sigName: "short" }); }
        catch (e) { console.log(e.message); }
        for (let i = 0; i < 11; i++) {
            await Lit.Actions.signEcdsa({ toSign: new Uint8Array(32).fill(i), publicKey, sigName: "s" + i });
        }
    })();"#;
    let (outcome, host) = run_with(code, json!({}), Limits::default());
    assert_eq!(outcome.logs, vec!["toSign: 3 bytes, expected exactly 32 (a hash)"]);
    assert_eq!(
        outcome.result,
        Err(ActionError::Limit {
            limit: Limit::Signatures,
            max: 10
        })
    );
    let ops = host.ops();
    assert_eq!(ops.len(), 10);
    let (
        HostOp::Sign {
            to_sign,
            sig_name,
            combine,
            ..
        },
        action,
    ) = &ops[3]
    else {
        panic!("{:?}", ops[3])
    };
    assert_eq!(to_sign, &"03".repeat(32));
    assert_eq!(sig_name, "s3");
    assert!(!combine);
    assert_eq!(action, &request(code, json!({})).cid);
}

#[test]
fn responses_are_limited() {
    let outcome = run("Lit.Actions.setResponse({ response: 'x'.repeat(200 * 1024) });");
    assert_eq!(
        outcome.result,
        Err(ActionError::Limit {
            limit: Limit::ResponseSize,
            max: 100 * 1024
        })
    );
}

#[test]
fn random_comes_from_the_host_s_seed_and_time_from_the_request() {
    let code = "Lit.Actions.setResponse({ response: JSON.stringify([Math.random(), Math.random(), Date.now(), new Date().getTime()]) });";
    let host = Arc::new(TestHost::default());
    let a = sigil_actions::run(&config(Limits::default()), request(code, json!({})), host.clone());
    let b = sigil_actions::run(&config(Limits::default()), request(code, json!({})), host.clone());
    *host.seed.lock().unwrap() = Some([8; 32]);
    let c = sigil_actions::run(&config(Limits::default()), request(code, json!({})), host.clone());
    assert_eq!(a.response, b.response);
    assert_ne!(a.response, c.response);
    // One seed per run, asked for when the run first draws, and never by a run that does not.
    let asked = |host: &TestHost| host.ops().iter().filter(|(op, _)| *op == HostOp::Randomness).count();
    assert_eq!(asked(&host), 3);
    let quiet = Arc::new(TestHost::default());
    sigil_actions::run(
        &config(Limits::default()),
        request("Lit.Actions.setResponse({response: 'x'})", json!({})),
        quiet.clone(),
    )
    .result
    .unwrap();
    assert_eq!(asked(&quiet), 0);
    let values: Vec<f64> = serde_json::from_str(a.response.as_deref().unwrap()).unwrap();
    assert!(values[0] >= 0.0 && values[0] < 1.0 && values[0] != values[1]);
    assert_eq!(values[2], 1_700_000_000_000.0);
    assert_eq!(values[3], 1_700_000_000_000.0);
}

#[test]
fn lit_globals_are_frozen_and_auth_is_filled() {
    let code = r#"
        Lit.Actions.signEcdsa = null; LitActions.foo = 1;
        try { Lit = 5; } catch (e) {}
        Lit.Actions.setResponse({ response: JSON.stringify([typeof Lit.Actions.signEcdsa, LitActions.foo, Lit.Auth.authSigAddress, Lit.Auth.actionIpfsIdStack.length, LitAuth === Lit.Auth, Lit.Auth.authMethodContexts[0].context.sub]) });
    "#;
    let outcome = run(code);
    outcome.result.unwrap();
    assert_eq!(
        outcome.response.as_deref(),
        Some(r#"["function",null,"0x70997970C51812dc3A010C7d01b50e0d17dc79C8",1,true,"u"]"#)
    );
}

#[test]
fn extra_auth_fields_are_added_but_never_replace_lit_s_own() {
    let code = r#"Lit.Actions.setResponse({ response: JSON.stringify([Lit.Auth.sessionKey, Lit.Auth.authSigAddress, Object.isFrozen(Lit.Auth)]) });"#;
    let mut request = request(code, json!({}));
    request.auth_extra.insert("sessionKey".into(), json!("ab12"));
    request.auth_extra.insert("authSigAddress".into(), json!("0xforged"));
    let outcome = sigil_actions::run(&config(Limits::default()), request, Arc::new(TestHost::default()));
    outcome.result.unwrap();
    assert_eq!(
        outcome.response.as_deref(),
        Some(r#"["ab12","0x70997970C51812dc3A010C7d01b50e0d17dc79C8",true]"#)
    );
}

#[test]
fn the_root_response_is_only_what_the_top_level_action_set() {
    let host = Arc::new(TestHost::default());
    let child = host.with_action(r#"Lit.Actions.setResponse({ response: "true" });"#);
    let code = format!(
        r#"(async () => {{ Lit.Actions.setResponse({{ response: "mine" }}); await Lit.Actions.call({{ ipfsId: "{child}", params: {{}} }}); }})();"#
    );
    let outcome = sigil_actions::run(&config(Limits::default()), request(&code, json!({})), host);
    outcome.result.unwrap();
    assert_eq!(outcome.response.as_deref(), Some("true"), "the child's came last");
    assert_eq!(outcome.root_response.as_deref(), Some("mine"));
}

#[test]
fn child_actions_share_the_response_and_stop_at_depth_five() {
    let host = Arc::new(TestHost::default());
    // A chain of children, each calling the next; the deepest sets the response.
    let mut cid = host.with_action(r#"(async () => { Lit.Actions.setResponse({ response: "leaf " + Lit.Auth.actionIpfsIdStack.length + " " + level }); })();"#);
    for _ in 0..4 {
        cid = host.with_action(&format!(
            r#"(async () => {{ await Lit.Actions.call({{ ipfsId: "{cid}", params: {{ level: level + 1 }} }}); }})();"#
        ));
    }
    let code = format!(
        r#"(async () => {{ const r = await Lit.Actions.call({{ ipfsId: "{cid}", params: {{ level: 1 }} }}); console.log("child said", r); }})();"#
    );
    let outcome = sigil_actions::run(&config(Limits::default()), request(&code, json!({})), host.clone());
    outcome.result.unwrap();
    assert_eq!(outcome.response.as_deref(), Some("leaf 6 5"));
    assert_eq!(outcome.logs, vec!["child said leaf 6 5"]);
    assert_eq!(outcome.root_response, None, "the top-level action set nothing itself");

    // One more level is refused.
    let deeper =
        format!(r#"(async () => {{ await Lit.Actions.call({{ ipfsId: "{cid}", params: {{ level: 2 }} }}); }})();"#);
    let deeper = host.with_action(&deeper);
    let code =
        format!(r#"(async () => {{ await Lit.Actions.call({{ ipfsId: "{deeper}", params: {{ level: 1 }} }}); }})();"#);
    let outcome = sigil_actions::run(&config(Limits::default()), request(&code, json!({})), host);
    assert_eq!(
        outcome.result,
        Err(ActionError::Limit {
            limit: Limit::CallDepth,
            max: 5
        })
    );
}

#[test]
fn host_errors_keep_their_code() {
    let outcome = run(r#"(async () => { await Lit.Actions.isPermittedAction({ tokenId: "1", ipfsId: "Qm" }); })();"#);
    assert_eq!(
        outcome.result,
        Err(ActionError::Host {
            code: "NOT_PERMITTED".into(),
            message: "nope".into()
        })
    );
}

#[test]
fn helpers_work() {
    let code = r#"(async () => {
        const bytes = new TextEncoder().encode("héllo ✓");
        const text = new TextDecoder().decode(bytes);
        const token = Lit.Actions.pubkeyToTokenId({ publicKey: "0x04" + "11".repeat(64) });
        const hash = ethers.utils.keccak256(ethers.utils.toUtf8Bytes("abc"));
        const rnd = await Lit.Actions.broadcastAndCollect({ name: "n", value: "mine" });
        const once = await Lit.Actions.runOnce({ name: "o" }, async () => 42);
        Lit.Actions.setResponse({ response: JSON.stringify([bytes.length, text, token, hash, rnd, once, btoa("hi"), atob("aGk=")]) });
    })();"#;
    let outcome = run(code);
    outcome.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(outcome.response.as_deref().unwrap()).unwrap();
    assert_eq!(v[0], 10);
    assert_eq!(v[1], "héllo ✓");
    assert_eq!(v[2].as_str().unwrap().len(), 66);
    assert_eq!(
        v[3],
        "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    );
    assert_eq!(v[4], json!(["mine", "other"]));
    assert_eq!(v[5], "42");
    assert_eq!(v[6], "aGk=");
    assert_eq!(v[7], "hi");
}

#[test]
fn oversized_code_is_refused() {
    let limits = Limits {
        code_bytes: 10,
        ..Limits::default()
    };
    let (outcome, _) = run_with("console.log('this is longer than ten bytes')", json!({}), limits);
    assert_eq!(
        outcome.result,
        Err(ActionError::Limit {
            limit: Limit::CodeSize,
            max: 10
        })
    );
}

#[test]
fn hostile_errors_and_call_floods_end_cleanly() {
    // A rejection whose message getter calls back into the bridge, and a huge message.
    let outcome = run(r#"
        Promise.reject({ get message() { console.log("getter ran"); return "x".repeat(5000000); } });
    "#);
    match outcome.result {
        Err(ActionError::Script(m)) => assert!(m.len() <= 1100, "{} bytes", m.len()),
        other => panic!("{other:?}"),
    }
    // Host operations are counted per run.
    let limits = Limits {
        host_calls: 20,
        ..Limits::default()
    };
    let (outcome, host) = run_with(
        "(async () => { for (let i = 0; i < 100; i++) await Lit.Actions.getRpcUrl({ chain: 'x' + i }); })();",
        json!({}),
        limits,
    );
    assert_eq!(
        outcome.result,
        Err(ActionError::Limit {
            limit: Limit::HostCalls,
            max: 20
        })
    );
    assert_eq!(host.ops().len(), 20);
    // Values shared with other nodes are bounded.
    let outcome =
        run("(async () => { await Lit.Actions.broadcastAndCollect({ name: 'n', value: 'x'.repeat(100000) }); })();");
    assert_eq!(
        outcome.result,
        Err(ActionError::Limit {
            limit: Limit::SharedValueSize,
            max: 64 * 1024
        })
    );
    // A CID far too long to be one is refused at once (base58 decoding is quadratic).
    let outcome = run(&format!(
        "(async () => {{ await Lit.Actions.call({{ ipfsId: '{}' }}); }})();",
        "2".repeat(100_000)
    ));
    assert!(
        matches!(&outcome.result, Err(ActionError::Script(m)) if m.contains("CID")),
        "{:?}",
        outcome.result
    );
}

/// A parent that pads its child's CID (whitespace the CID parser trims) does not make the child
/// run under another name: its stack, its claims and its key use the canonical CID.
#[test]
fn a_child_runs_under_its_canonical_cid_however_the_parent_spells_it() {
    let host = Arc::new(TestHost::default());
    let child = host.with_action(
        r#"(async () => { Lit.Actions.claimKey({ keyId: "alice" }); Lit.Actions.setResponse({ response: Lit.Auth.actionIpfsIdStack[1] }); })();"#,
    );
    let code =
        format!(r#"(async () => {{ await Lit.Actions.call({{ ipfsId: " {child}\u00a0", params: {{}} }}); }})();"#);
    let outcome = sigil_actions::run(&config(Limits::default()), request(&code, json!({})), host.clone());
    outcome.result.unwrap();
    assert_eq!(outcome.response.as_deref(), Some(child.as_str()));
    let ops = host.ops();
    assert!(
        ops.contains(&(HostOp::LoadAction { cid: child.clone() }, ops[0].1.clone())),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|(op, action)| matches!(op, HostOp::ClaimKey { .. }) && *action == child),
        "{ops:?}"
    );
}
