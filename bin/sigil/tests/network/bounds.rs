//! The bounds of actions on a real network, each tried by an adversary: slots that stay taken
//! (503 `BUSY` with `Retry-After`), a stranger filling the action store (eviction, or 507
//! `ACTION_STORE_FULL`), and a flood of stores while sign requests take presignatures. After each,
//! the node still serves.

use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use crate::harness::{post, Network};
use crate::signing::{mint, sign_and_check};

const READY: Duration = Duration::from_secs(120);

fn request_id() -> String {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    hex::encode(id)
}

/// One metric's value on node `i` (0 if absent); `name` includes any labels.
pub(crate) async fn metric(net: &Network, i: usize, name: &str) -> u64 {
    net.metrics(i)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// `POST /web/execute` on node `i` alone; the status, the `Retry-After` header and the answer.
async fn execute_on(net: &Network, i: usize, body: Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/web/execute", net.urls[i]))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

fn code_body(code: &str) -> Value {
    json!({ "code": code, "requestId": request_id() })
}

/// A body every node runs as the same request: one request id and one timestamp.
fn shared_body(code: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    json!({ "code": code, "requestId": request_id(), "timestamp": now })
}

fn cid_body(cid: &str) -> Value {
    json!({ "ipfsId": cid, "requestId": request_id() })
}

/// Stores `code` on node `i`; the status and the answer.
async fn store_on(net: &Network, i: usize, code: &str) -> (u16, Value) {
    post(
        &format!("{}/web/actions", net.urls[i]),
        json!({ "code": code }).to_string(),
    )
    .await
}

/// A small action, distinct per `n`.
fn action(n: usize) -> String {
    format!("Lit.Actions.setResponse({{ response: \"action {n}\" }});")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_every_slot_taken_says_busy_with_retry_after_then_serves_again() {
    let mut net = Network::start_configured(
        3,
        2,
        |_| Vec::new(),
        |config| {
            config
                .replace("max_concurrent = 8", "max_concurrent = 1")
                .replace("slot_wait_ms = 2000", "slot_wait_ms = 300")
        },
    )
    .await;
    net.wait_ready(READY).await;
    let slow = "(async () => { await new Promise((r) => setTimeout(r, 2500)); Lit.Actions.setResponse({ response: \"slept\" }); })();";
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let body = code_body(slow);
            let net = &net;
            async move { execute_on(net, 0, body).await }
        })
        .collect();
    let answers = futures::future::join_all(flood).await;
    let served = answers.iter().filter(|(status, _, _)| *status == 200).count();
    let busy: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 503).collect();
    assert_eq!(served + busy.len(), answers.len(), "{answers:?}");
    assert!(served >= 1, "{answers:?}");
    assert!(
        !busy.is_empty(),
        "one slot and four slow actions, none refused: {answers:?}"
    );
    for (_, retry_after, body) in &busy {
        assert_eq!(body["error"]["code"], "BUSY", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_concurrent = 1"),
            "{body}"
        );
        assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
    }
    assert_eq!(metric(&net, 0, "sigil_action_busy_total").await, busy.len() as u64);
    // Once the slow run is over the node serves as before.
    let (status, _, body) = execute_on(&net, 0, code_body(&action(1))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"], "action 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_filling_the_action_store_evicts_cold_code_or_is_refused() {
    // Node 1 refuses new code when full; the others evict.
    let mut net = Network::start_configured(
        3,
        2,
        |_| Vec::new(),
        |config| {
            let config = config.replace("store_max_actions = 4096", "store_max_actions = 4");
            if config.starts_with("id = 1\n") {
                config.replace("store_when_full = \"evict\"", "store_when_full = \"refuse\"")
            } else {
                config
            }
        },
    )
    .await;
    net.wait_ready(READY).await;
    let mut cids = Vec::new();
    for n in 0..4 {
        let (status, stored) = store_on(&net, 0, &action(n)).await;
        assert_eq!(status, 200, "{stored}");
        cids.push(stored["cid"].as_str().unwrap().to_string());
    }
    // Action 0 runs by CID: it is in use, so the stranger's flood cannot evict it.
    let (status, _, body) = execute_on(&net, 0, cid_body(&cids[0])).await;
    assert_eq!((status, body["response"].clone()), (200, json!("action 0")), "{body}");
    for n in 4..10 {
        let (status, stored) = store_on(&net, 0, &action(n)).await;
        assert_eq!(status, 200, "{stored}");
    }
    assert_eq!(metric(&net, 0, "sigil_action_store_actions").await, 4);
    assert_eq!(metric(&net, 0, "sigil_action_store_evicted_total").await, 6);
    let (status, _, body) = execute_on(&net, 0, cid_body(&cids[0])).await;
    assert_eq!(status, 200, "the action in use was evicted: {body}");
    // Cold code is gone, with a clear answer, until someone stores it again.
    let (status, _, body) = execute_on(&net, 0, cid_body(&cids[1])).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("ACTION_NOT_FOUND")),
        "{body}"
    );
    let (status, _) = store_on(&net, 0, &action(1)).await;
    assert_eq!(status, 200);
    let (status, _, body) = execute_on(&net, 0, cid_body(&cids[1])).await;
    assert_eq!((status, body["response"].clone()), (200, json!("action 1")), "{body}");

    // The refusing node: full is 507 ACTION_STORE_FULL; what it holds can still be stored.
    for n in 0..4 {
        assert_eq!(store_on(&net, 1, &action(n)).await.0, 200);
    }
    let (status, refused) = store_on(&net, 1, &action(4)).await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (507, json!("ACTION_STORE_FULL")),
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 4 actions"),
        "{refused}"
    );
    assert_eq!(store_on(&net, 1, &action(2)).await.0, 200);
    assert_eq!(
        metric(&net, 1, "sigil_action_store_rejected_total{reason=\"full\"}").await,
        1
    );
    let (status, _, body) = execute_on(&net, 1, cid_body(&cids[3])).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_action_stores_does_not_stall_signing() {
    let mut net = Network::start(3, 16, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    // 64 KiB of distinct code per store, from 8 clients at once, to every node.
    let padding = "x".repeat(64 << 10);
    let urls = net.urls.clone();
    let flood: Vec<_> = (0..8)
        .map(|client_idx| {
            let (urls, padding) = (urls.clone(), padding.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for n in 0..30 {
                    let code =
                        format!("// {client_idx}/{n} {padding}\nLit.Actions.setResponse({{ response: \"{n}\" }});");
                    let url = &urls[n % urls.len()];
                    let (status, body) = post(&format!("{url}/web/actions"), json!({ "code": code }).to_string()).await;
                    statuses.push((status, body["error"]["code"].clone()));
                }
                statuses
            })
        })
        .collect();
    let started = Instant::now();
    for _ in 0..6 {
        tokio::time::timeout(Duration::from_secs(30), sign_and_check(&client, &owned))
            .await
            .expect("a sign request stalled behind the action stores");
    }
    let signing = started.elapsed();
    let mut stored = 0;
    for task in flood {
        for (status, code) in task.await.unwrap() {
            // A store may be told BUSY when the action store's writer is behind; nothing else.
            assert!(status == 200 || (status == 503 && code == "BUSY"), "{status} {code}");
            stored += usize::from(status == 200);
        }
    }
    assert!(stored > 0);
    let on_nodes: u64 = {
        let mut sum = 0;
        for i in 0..3 {
            sum += metric(&net, i, "sigil_action_store_actions").await;
        }
        sum
    };
    assert_eq!(on_nodes, stored as u64, "signing took {signing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_running_request_sent_to_one_node_is_refused_and_the_first_run_still_collects() {
    let mut net = Network::start(3, 2, |_| Vec::new()).await;
    net.wait_ready(READY).await;
    // Two rounds between the nodes, a pause between them: a second run of the same request on
    // node 0 would read the first's values, and clear them for it if it ended first.
    let code = r#"(async () => {
        const a = await Lit.Actions.broadcastAndCollect({ name: "a", value: "v" });
        await new Promise((r) => setTimeout(r, 1500));
        const b = await Lit.Actions.broadcastAndCollect({ name: "b", value: "w" });
        Lit.Actions.setResponse({ response: JSON.stringify([a, b]) });
    })();"#;
    let body = shared_body(code);
    let runs = (0..3).map(|i| execute_on(&net, i, body.clone()));
    let copy = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        execute_on(&net, 0, body.clone()).await
    };
    let (answers, (status, _, refused)) = tokio::join!(futures::future::join_all(runs), copy);
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "REQUEST_CONFLICT", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already runs on node 0"),
        "{refused}"
    );
    let expected = r#"[["v","v","v"],["w","w","w"]]"#;
    for (i, (status, _, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "node {i}: {answer}");
        assert_eq!(answer["response"], expected, "node {i}: {answer}");
    }
    // Once the run is over, the same request may run again (and gets the same answer).
    let again = futures::future::join_all((0..3).map(|i| execute_on(&net, i, body.clone()))).await;
    for (i, (status, _, answer)) in again.iter().enumerate() {
        assert_eq!(*status, 200, "node {i}: {answer}");
        assert_eq!(answer["response"], expected, "node {i}: {answer}");
    }
}

/// The adversary: runs sent to node 0 only, a thousand `broadcastAndCollect` values each, that
/// the other nodes receive for requests they never run, to fill node 0's share of their
/// mailboxes so that the runs they do run lose node 0's values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_sent_to_one_node_only_do_not_take_the_mailbox_the_other_nodes_runs_need() {
    let mut net = Network::start(3, 2, |_| Vec::new()).await;
    net.wait_ready(READY).await;
    let flood = r#"(async () => {
        const names = Array.from({ length: 990 }, (_, i) => "f" + i);
        await Promise.race([
            Promise.all(names.map((name) => Lit.Actions.broadcastAndCollect({ name, value: "x" }))),
            new Promise((r) => setTimeout(r, 1500)),
        ]);
        Lit.Actions.setResponse({ response: "flooded" });
    })();"#;
    let floods = futures::future::join_all((0..3).map(|_| execute_on(&net, 0, code_body(flood)))).await;
    for (status, _, answer) in floods {
        assert_eq!(status, 200, "{answer}");
    }
    // A run on every node: node 0 is the runOnce leader (lowest id), and the others need its value.
    let once = r#"(async () => {
        const v = await Lit.Actions.runOnce({ waitForResponse: true, name: "tx" }, async () => "sent");
        const all = await Lit.Actions.broadcastAndCollect({ name: "b", value: "v" });
        Lit.Actions.setResponse({ response: v + " " + all.length });
    })();"#;
    let body = shared_body(once);
    let answers = futures::future::join_all((0..3).map(|i| execute_on(&net, i, body.clone()))).await;
    for (i, (status, _, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "node {i}: {answer}");
        assert_eq!(answer["response"], "sent 3", "node {i}: {answer}");
    }
}
