//! A test host: answers host operations from a thread, records what it was asked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::json;
use sigil_actions::{Completion, Config, Host, HostError, HostOp, Limits, Outcome, RunRequest};
use sigil_primitives::Cid;

/// Records operations; child actions are served from `actions`.
#[derive(Default)]
pub struct TestHost {
    pub ops: Mutex<Vec<(HostOp, String)>>,
    pub actions: Mutex<HashMap<String, String>>,
    /// The seed `Randomness` answers (all 7s when unset).
    pub seed: Mutex<Option<[u8; 32]>>,
    /// Operations the run cancelled, and how often it said it was finished.
    pub cancelled: Mutex<Vec<u64>>,
    pub finished: std::sync::atomic::AtomicUsize,
}

impl TestHost {
    pub fn with_action(&self, code: &str) -> String {
        let cid = Cid::of_file(code.as_bytes()).unwrap().to_string();
        self.actions.lock().unwrap().insert(cid.clone(), code.to_string());
        cid
    }

    pub fn ops(&self) -> Vec<(HostOp, String)> {
        self.ops.lock().unwrap().clone()
    }
}

impl Host for TestHost {
    fn cancel(&self, id: u64) {
        self.cancelled.lock().unwrap().push(id);
    }

    fn finished(&self) {
        self.finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn start(&self, op: HostOp, action: &str, done: Completion) {
        self.ops.lock().unwrap().push((op.clone(), action.to_string()));
        let code = match &op {
            HostOp::LoadAction { cid } => self.actions.lock().unwrap().get(cid).cloned(),
            _ => None,
        };
        let seed = self.seed.lock().unwrap().unwrap_or([7; 32]);
        std::thread::spawn(move || {
            let result = match op {
                HostOp::Broadcast { ref name, ref value } if name == "slow" => {
                    std::thread::sleep(std::time::Duration::from_millis(800));
                    Ok(json!([value, "other"]))
                }
                // A fetch that answers only after the test is long over.
                HostOp::Fetch { ref url, .. } if url.contains("/hang") => {
                    std::thread::sleep(std::time::Duration::from_secs(30));
                    Ok(json!(null))
                }
                HostOp::Fetch { ref url, ref body, .. } if url.contains("/echo") => Ok(json!({
                    "status": 201, "statusText": "Created", "headers": {"content-type": "application/octet-stream", "x-seen": "1"},
                    "url": url, "redirected": true, "body": body.clone().unwrap_or_default()
                })),
                HostOp::Sign { combine: false, .. } | HostOp::SignMessage { .. } => Ok(json!("success")),
                HostOp::Sign { combine: true, .. } => Ok(json!(r#"{"r":"02ab","s":"cd","v":0}"#)),
                HostOp::Fetch { url, .. } => Ok(json!({
                    "status": 200, "statusText": "OK", "headers": {"content-type": "text/plain"},
                    "url": url, "body": "aGVsbG8="
                })),
                HostOp::Randomness => Ok(json!(hex::encode(seed))),
                HostOp::RunOnceLeader { .. } => Ok(json!(true)),
                HostOp::RunOncePublish { .. } => Ok(json!(null)),
                HostOp::Broadcast { value, .. } => Ok(json!([value, "other"])),
                HostOp::LoadAction { cid } => code
                    .map(|c| json!(c))
                    .ok_or_else(|| HostError::new("ACTION_NOT_FOUND", format!("no action {cid}"))),
                HostOp::IsPermittedAction { .. } => Err(HostError::new("NOT_PERMITTED", "nope")),
                _ => Ok(json!(null)),
            };
            done.finish(result);
        });
    }
}

pub fn request(code: &str, params: serde_json::Value) -> RunRequest {
    RunRequest {
        code: code.to_string(),
        cid: Cid::of_file(code.as_bytes()).unwrap().to_string(),
        js_params: params.as_object().cloned().unwrap_or_default(),
        auth_sig_address: Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into()),
        auth_method_contexts: vec![
            serde_json::json!({"authMethodType": 6, "authMethodId": "0x01", "context": {"sub": "u"}}),
        ],
        auth_extra: serde_json::Map::new(),
        now_ms: 1_700_000_000_000,
    }
}

pub fn config(limits: Limits) -> Config {
    Config {
        limits,
        ethers_bundle: Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/node_modules/ethers/dist/ethers.umd.min.js"),
        ),
    }
}

pub fn run_with(code: &str, params: serde_json::Value, limits: Limits) -> (Outcome, Arc<TestHost>) {
    let host = Arc::new(TestHost::default());
    let outcome = sigil_actions::run(&config(limits), request(code, params), host.clone());
    (outcome, host)
}

pub fn run(code: &str) -> Outcome {
    run_with(code, json!({}), Limits::default()).0
}
