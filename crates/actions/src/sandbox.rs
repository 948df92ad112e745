//! The run loop: one QuickJS runtime per run, a context per action (the root and each child
//! started by `Lit.Actions.call`), host operations as promises settled from a channel.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rquickjs::context::EvalOptions;
use rquickjs::{Context, Ctx, Exception, Function, Object, Persistent, Promise, Runtime, TypedArray, Value};
use sha3::{Digest, Keccak256};
use sigil_primitives::Cid;

use crate::platform::{self, PlatformError};
use crate::{ActionError, Completion, Config, Host, HostError, HostOp, Limit, Outcome, RunRequest};

const PRELUDE: &str = include_str!("prelude.js");
/// The web platform, evaluated on first use (`__sigil.platform()`).
const PLATFORM: &str = include_str!("platform.js");
/// QuickJS's own stack bound; the thread running [`run`] needs more than this.
const MAX_STACK: usize = 1024 * 1024;

type Reply = (u64, Result<serde_json::Value, HostError>);

/// Most timers (`setTimeout`, `setInterval`) one run may have waiting at once.
const MAX_TIMERS: usize = 10_000;
/// Most bytes one `crypto.getRandomValues` call fills (WebCrypto's quota).
const MAX_RANDOM_BYTES: usize = 65_536;

/// A promise the action awaits.
struct Pending {
    /// Index of the run (context) that created it.
    run: usize,
    resolve: Persistent<Function<'static>>,
    reject: Persistent<Function<'static>>,
    kind: Kind,
    /// A `fetch`: the action may abort it.
    cancellable: bool,
}

enum Kind {
    /// A host operation: resolves to its JSON answer.
    Op,
    /// `call`: the child's code is being loaded.
    LoadChild { cid: String, params: String, label: String },
    /// `call`: the child runs; resolves to the response when it is done.
    Child,
}

/// One action in the run: the root or a child.
struct RunInfo {
    context: Context,
    stack: Vec<String>,
    /// The pending `call` of the parent, settled when this child is done.
    parent: Option<u64>,
    finished: bool,
}

struct Shared {
    config: Config,
    host: Arc<dyn Host>,
    tx: mpsc::Sender<Reply>,
    auth_sig_address: Option<String>,
    auth_method_contexts: Vec<serde_json::Value>,
    auth_extra: serde_json::Map<String, serde_json::Value>,
    now_ms: u64,
    deadline: Instant,
    /// Set once the deadline has passed (by the interrupt handler, or a native call that waited).
    fired: Rc<Cell<bool>>,
    /// The host's answers; read by the loop, and by a native call that must wait for one.
    rx: Rc<mpsc::Receiver<Reply>>,
    /// Answers that arrived while a native call waited for another, settled by the loop next.
    deferred: VecDeque<Reply>,
    /// Waiting timers by (due time, arming order): (run, timer id).
    timers: BTreeMap<(Instant, u64), (usize, u64)>,
    /// Where each waiting timer sits in `timers`.
    timer_slots: HashMap<(usize, u64), (Instant, u64)>,
    timer_order: u64,
    /// Each context's timer callback (the prelude's dispatcher).
    timer_fns: HashMap<usize, Persistent<Function<'static>>>,
    /// The run's agreed seed, asked for when the run first draws.
    seed: Option<[u8; 32]>,
    /// Each context's random stream, keyed by the seed and the context's place in the run (see
    /// [`stream`]), so a child's draws never depend on when its parent's draw.
    rngs: HashMap<usize, ChaCha20Rng>,
    /// ethers as a warm runtime loaded it, for the top-level context's first use.
    warm_ethers: Option<Persistent<Value<'static>>>,
    response: Option<String>,
    root_response: Option<String>,
    logs: Vec<String>,
    log_bytes: usize,
    logs_truncated: bool,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    signatures: usize,
    fetches: usize,
    host_calls: usize,
    limit_hit: Option<ActionError>,
    host_errors: HashMap<String, String>,
    rejections: Vec<(Persistent<Value<'static>>, String)>,
    /// Children whose code arrived, to start from the loop (not from inside a callback).
    to_start: Vec<(usize, u64, String, String, String, String)>,
}

type SharedRef = Rc<RefCell<Shared>>;

/// Runs one action to the end on this thread and returns its response, logs and result.
///
/// The thread needs a stack of a few MiB (QuickJS is bounded to 1 MiB of it).
pub fn run(config: &Config, request: RunRequest, host: Arc<dyn Host>) -> Outcome {
    run_in(config, request, host, None)
}

/// Runs one action as [`run`] does, in `warm`: its top-level context starts with ethers already
/// evaluated, so an action that uses ethers does not pay for loading it.
pub fn run_warm(config: &Config, request: RunRequest, host: Arc<dyn Host>, warm: Warm) -> Outcome {
    run_in(config, request, host, Some(warm))
}

/// A runtime made ready for one run before the run is known: a fresh context in which only the
/// configured ethers bundle has been evaluated (no action code, no run state). It is used by at
/// most one run and then dropped, so nothing passes from one run to the next. Made and used on
/// one thread.
pub struct Warm {
    // Dropped in this order: the handle before its context, the context before its runtime.
    ethers: Persistent<Value<'static>>,
    context: Context,
    runtime: Runtime,
}

/// Where ethers looks for `crypto` while it loads (`anyGlobal.crypto`, captured once): in a warm
/// runtime the run's `crypto` does not exist yet, so ethers captures this object, which forwards to
/// whatever `crypto` is when it draws. The prelude then replaces the global with its own.
const WARM_CRYPTO: &str = "Object.defineProperty(globalThis, 'crypto', { configurable: true, writable: true, enumerable: false, value: Object.freeze({ getRandomValues(array) { return globalThis.crypto.getRandomValues(array); } }) });";

impl Warm {
    /// Makes a runtime with `config`'s limits and evaluates the ethers bundle in its context.
    ///
    /// # Errors
    /// [`ActionError::Engine`] if no bundle is configured, it cannot be read, or it fails to load.
    pub fn new(config: &Config) -> Result<Self, ActionError> {
        let engine = |e: &dyn std::fmt::Display| ActionError::Engine(format!("preparing a runtime: {e}"));
        let path = config
            .ethers_bundle
            .as_ref()
            .ok_or_else(|| engine(&"no ethers bundle is configured"))?;
        let bundle =
            std::fs::read_to_string(path).map_err(|e| engine(&format!("cannot read {}: {e}", path.display())))?;
        let runtime = Runtime::new().map_err(|e| engine(&e))?;
        runtime.set_memory_limit(config.limits.memory_bytes);
        runtime.set_max_stack_size(MAX_STACK);
        let context = Context::full(&runtime).map_err(|e| engine(&e))?;
        let ethers = context.with(|ctx| -> Result<Persistent<Value<'static>>, String> {
            ctx.eval::<(), _>(WARM_CRYPTO).map_err(|e| caught(&ctx, e))?;
            let exports: Value = ctx
                .eval_with_options(ethers_source(&bundle), options("ethers.umd.min.js"))
                .map_err(|e| caught(&ctx, e))?;
            Ok(Persistent::save(&ctx, exports))
        });
        let ethers = ethers.map_err(|e| engine(&format!("loading ethers: {e}")))?;
        Ok(Warm {
            ethers,
            context,
            runtime,
        })
    }
}

/// ethers' UMD bundle wrapped so that it takes its CommonJS branch and returns its exports.
fn ethers_source(bundle: &str) -> String {
    format!(
        "(function () {{ var module = {{ exports: {{}} }}; var exports = module.exports;\n{bundle}\n;return module.exports; }})()"
    )
}

fn run_in(config: &Config, request: RunRequest, host: Arc<dyn Host>, warm: Option<Warm>) -> Outcome {
    let limits = &config.limits;
    if request.code.len() > limits.code_bytes {
        return failed(ActionError::Limit {
            limit: Limit::CodeSize,
            max: limits.code_bytes,
        });
    }
    let (runtime, first_context, warm_ethers) = match warm {
        Some(Warm {
            ethers,
            context,
            runtime,
        }) => (runtime, Some(context), Some(ethers)),
        None => match Runtime::new() {
            Ok(rt) => (rt, None, None),
            Err(e) => return failed(ActionError::Engine(e.to_string())),
        },
    };
    let deadline = Instant::now() + limits.wall_time;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(MAX_STACK);
    let fired = Rc::new(Cell::new(false));
    {
        let fired = Rc::clone(&fired);
        runtime.set_interrupt_handler(Some(Box::new(move || {
            if fired.get() || Instant::now() >= deadline {
                fired.set(true);
                return true;
            }
            false
        })));
    }
    let (tx, rx) = mpsc::channel();
    let rx = Rc::new(rx);
    let shared: SharedRef = Rc::new(RefCell::new(Shared {
        config: config.clone(),
        host,
        tx,
        auth_sig_address: request.auth_sig_address.clone(),
        auth_method_contexts: request.auth_method_contexts.clone(),
        auth_extra: request.auth_extra.clone(),
        now_ms: request.now_ms,
        deadline,
        fired: Rc::clone(&fired),
        rx: Rc::clone(&rx),
        deferred: VecDeque::new(),
        timers: BTreeMap::new(),
        timer_slots: HashMap::new(),
        timer_order: 0,
        timer_fns: HashMap::new(),
        seed: None,
        rngs: HashMap::new(),
        warm_ethers,
        response: None,
        root_response: None,
        logs: Vec::new(),
        log_bytes: 0,
        logs_truncated: false,
        next_id: 0,
        pending: HashMap::new(),
        signatures: 0,
        fetches: 0,
        host_calls: 0,
        limit_hit: None,
        host_errors: HashMap::new(),
        rejections: Vec::new(),
        to_start: Vec::new(),
    }));
    {
        let shared = Rc::clone(&shared);
        runtime.set_host_promise_rejection_tracker(Some(Box::new(move |ctx, promise, reason, handled| {
            let key = Persistent::save(&ctx, promise);
            // The text first: reading `message` may run the action's getters, which may call back
            // into the bridge.
            let text = if handled {
                String::new()
            } else {
                clip(error_text(&reason))
            };
            let Ok(mut s) = shared.try_borrow_mut() else { return };
            if handled {
                s.rejections.retain(|(p, _)| *p != key);
            } else if s.rejections.len() < MAX_REJECTIONS {
                s.rejections.push((key, text));
            }
        })));
    }
    let mut runs = Vec::new();
    // Persistent handles must go before the contexts and the runtime they point into, also if
    // the run unwinds.
    let _release = Release(Rc::clone(&shared));
    let mut driver = Driver {
        runtime: &runtime,
        first_context,
        shared: &shared,
        runs: &mut runs,
        fired: &fired,
        deadline,
    };
    let result = driver.drive(&request, &rx);
    let (response, root_response, logs) = {
        let mut s = shared.borrow_mut();
        s.pending.clear();
        s.rejections.clear();
        s.timer_fns.clear();
        s.warm_ethers = None;
        (s.response.take(), s.root_response.take(), std::mem::take(&mut s.logs))
    };
    drop(runs);
    let host = Arc::clone(&shared.borrow().host);
    host.finished();
    runtime.set_host_promise_rejection_tracker(None);
    runtime.set_interrupt_handler(None);
    Outcome {
        response,
        root_response,
        logs,
        result,
    }
}

/// Drops the run's persistent handles (see [`run`]).
struct Release(SharedRef);

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.try_borrow_mut() {
            s.pending.clear();
            s.rejections.clear();
            s.to_start.clear();
            s.timer_fns.clear();
            s.warm_ethers = None;
        }
    }
}

/// Longest error text kept from the action (its messages can be any size).
const MAX_ERROR_TEXT: usize = 1024;
/// Most unhandled rejections remembered per run.
const MAX_REJECTIONS: usize = 100;
/// Most distinct host error messages remembered per run.
const MAX_HOST_ERRORS: usize = 256;

fn clip(mut text: String) -> String {
    if text.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

fn failed(error: ActionError) -> Outcome {
    Outcome {
        response: None,
        root_response: None,
        logs: Vec::new(),
        result: Err(error),
    }
}

struct Driver<'a> {
    runtime: &'a Runtime,
    /// A warm runtime's context, for the top-level action.
    first_context: Option<Context>,
    shared: &'a SharedRef,
    runs: &'a mut Vec<RunInfo>,
    fired: &'a Rc<Cell<bool>>,
    deadline: Instant,
}

impl Driver<'_> {
    fn drive(&mut self, request: &RunRequest, rx: &mpsc::Receiver<Reply>) -> Result<(), ActionError> {
        let params = serde_json::Value::Object(request.js_params.clone()).to_string();
        if let Err(message) = self.start(&request.code, vec![request.cid.clone()], &params, None, "0") {
            return Err(self.classify(message));
        }
        loop {
            self.run_jobs()?;
            let deferred = self.shared.borrow_mut().deferred.pop_front();
            if let Some((id, result)) = deferred {
                self.settle(id, result);
                continue;
            }
            let ready = std::mem::take(&mut self.shared.borrow_mut().to_start);
            if !ready.is_empty() {
                for (parent_run, id, cid, code, params, label) in ready {
                    self.start_child(parent_run, id, cid, &code, &params, &label);
                }
                continue;
            }
            if self.finish_children() {
                continue;
            }
            if self.fire_due_timer()? {
                continue;
            }
            let next_timer = {
                let s = self.shared.borrow();
                if s.pending.is_empty() && s.timers.is_empty() {
                    break;
                }
                s.timers.keys().next().map(|(due, _)| *due)
            };
            let until = next_timer.map_or(self.deadline, |due| due.min(self.deadline));
            let wait = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok((id, result)) => self.settle(id, result),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < self.deadline => {}
                Err(_) => return Err(ActionError::Timeout(self.shared.borrow().config.limits.wall_time)),
            }
        }
        let first = self.shared.borrow().rejections.first().map(|(_, m)| m.clone());
        match first {
            Some(message) => Err(self.classify(message)),
            None => Ok(()),
        }
    }

    /// Runs the callback of the first timer that is due, if any. True if one ran.
    fn fire_due_timer(&mut self) -> Result<bool, ActionError> {
        let due = {
            let mut s = self.shared.borrow_mut();
            match s.timers.first_key_value() {
                Some((&(at, order), &(run, id))) if at <= Instant::now() => {
                    s.timers.remove(&(at, order));
                    s.timer_slots.remove(&(run, id));
                    Some((run, id))
                }
                _ => None,
            }
        };
        let Some((run, id)) = due else { return Ok(false) };
        let Some(info) = self.runs.get(run) else {
            return Ok(true);
        };
        let callback = self.shared.borrow().timer_fns.get(&run).cloned();
        let Some(callback) = callback else { return Ok(true) };
        let failed = info.context.with(|ctx| -> Option<String> {
            let f = callback.restore(&ctx).ok()?;
            match f.call::<_, ()>((id as f64,)) {
                Ok(()) => None,
                Err(e) => Some(caught(&ctx, e)),
            }
        });
        match failed {
            // A timer callback that throws ends the run, as an uncaught error does in Deno.
            Some(message) => Err(self.classify(message)),
            None => Ok(true),
        }
    }

    fn run_jobs(&mut self) -> Result<(), ActionError> {
        loop {
            if self.fired.get() {
                return Err(self.timeout());
            }
            match self.runtime.execute_pending_job() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    let message = clip(e.0.with(|ctx| error_text(&ctx.catch())));
                    return Err(self.classify(message));
                }
            }
        }
    }

    fn timeout(&self) -> ActionError {
        ActionError::Timeout(self.shared.borrow().config.limits.wall_time)
    }

    /// Turns an uncaught error's text into the typed error behind it.
    fn classify(&self, message: String) -> ActionError {
        if self.fired.get() {
            return self.timeout();
        }
        let s = self.shared.borrow();
        let limit = s.config.limits.memory_bytes;
        let used = usize::try_from(self.runtime.memory_usage().malloc_size).unwrap_or(0);
        // Out of memory, QuickJS may not manage to allocate the error and throws `null`.
        if message.contains("out of memory")
            || (message == "null" && used.saturating_mul(10) >= limit.saturating_mul(9))
        {
            return ActionError::OutOfMemory(s.config.limits.memory_bytes);
        }
        if let Some(hit) = &s.limit_hit {
            if message.contains(&hit.to_string()) {
                return hit.clone();
            }
        }
        if let Some(code) = s.host_errors.get(&message) {
            return ActionError::Host {
                code: code.clone(),
                message,
            };
        }
        ActionError::Script(message)
    }

    /// Creates a context for an action, installs the globals and evaluates its code.
    fn start(
        &mut self,
        code: &str,
        stack: Vec<String>,
        params: &str,
        parent: Option<u64>,
        label: &str,
    ) -> Result<(), String> {
        let index = self.runs.len();
        let context = match self.first_context.take().filter(|_| index == 0) {
            Some(context) => context,
            None => Context::full(self.runtime).map_err(|e| e.to_string())?,
        };
        let outcome = context.with(|ctx| -> Result<(), String> {
            install(&ctx, self.shared, index, &stack, label).map_err(|e| caught(&ctx, e))?;
            let run = {
                let s = self.shared.borrow();
                format!(
                    r#"{{"now":{},"actionIpfsIdStack":{},"authSigAddress":{},"authMethodContexts":{},"authExtra":{},"jsParams":{}}}"#,
                    s.now_ms,
                    serde_json::Value::from(stack.clone()),
                    s.auth_sig_address
                        .as_ref()
                        .map_or(serde_json::Value::Null, |a| serde_json::Value::from(a.as_str())),
                    serde_json::Value::from(s.auth_method_contexts.clone()),
                    serde_json::Value::Object(s.auth_extra.clone()),
                    params
                )
            };
            let run: Value = ctx.json_parse(run).map_err(|e| caught(&ctx, e))?;
            ctx.globals().set("__sigilRun", run).map_err(|e| caught(&ctx, e))?;
            ctx.eval_with_options::<(), _>(PRELUDE, options("sigil-prelude.js"))
                .map_err(|e| caught(&ctx, e))?;
            ctx.eval_with_options::<(), _>(code, options("action.js"))
                .map_err(|e| caught(&ctx, e))
        });
        self.runs.push(RunInfo {
            context,
            stack,
            parent,
            finished: false,
        });
        outcome
    }

    fn start_child(&mut self, parent_run: usize, id: u64, cid: String, code: &str, params: &str, label: &str) {
        let Some(parent) = self.runs.get(parent_run) else {
            return;
        };
        let mut stack = parent.stack.clone();
        stack.push(cid);
        let index = self.runs.len();
        if let Err(message) = self.start(code, stack, params, Some(id), label) {
            // Only a child whose context was made has an entry to close.
            if let Some(child) = self.runs.get_mut(index) {
                child.finished = true;
            }
            self.reject(id, &message);
        }
    }

    /// Settles the `call` of every child that can no longer make progress. True if any was.
    fn finish_children(&mut self) -> bool {
        let mut done = Vec::new();
        {
            let s = self.shared.borrow();
            for (index, run) in self.runs.iter().enumerate().skip(1) {
                if !run.finished
                    && !s.pending.values().any(|p| p.run == index)
                    && !s.timer_slots.keys().any(|(r, _)| *r == index)
                {
                    done.push(index);
                }
            }
        }
        for index in &done {
            let parent = self.runs.get_mut(*index).and_then(|run| {
                run.finished = true;
                run.parent
            });
            if let Some(id) = parent {
                let response = self.shared.borrow().response.clone().unwrap_or_default();
                self.resolve(id, serde_json::Value::String(response));
            }
        }
        !done.is_empty()
    }

    fn settle(&mut self, id: u64, result: Result<serde_json::Value, HostError>) {
        let kind = {
            let mut s = self.shared.borrow_mut();
            match s.pending.get_mut(&id) {
                Some(p) => std::mem::replace(&mut p.kind, Kind::Op),
                None => return,
            }
        };
        match (kind, result) {
            (Kind::LoadChild { cid, params, label }, Ok(code)) => {
                let code = code.as_str().unwrap_or_default().to_string();
                match self.check_child(&cid, &code) {
                    Ok(()) => {
                        let mut s = self.shared.borrow_mut();
                        let run = match s.pending.get_mut(&id) {
                            Some(p) => {
                                p.kind = Kind::Child;
                                p.run
                            }
                            None => return,
                        };
                        s.to_start.push((run, id, cid, code, params, label));
                    }
                    Err(message) => self.reject(id, &message),
                }
            }
            (_, Ok(value)) => self.resolve(id, value),
            (_, Err(e)) => {
                let message = clip(e.message);
                {
                    let mut s = self.shared.borrow_mut();
                    if s.host_errors.len() < MAX_HOST_ERRORS {
                        s.host_errors.insert(message.clone(), e.code);
                    }
                }
                self.reject(id, &message);
            }
        }
    }

    fn check_child(&self, cid: &str, code: &str) -> Result<(), String> {
        let limit = self.shared.borrow().config.limits.code_bytes;
        if code.len() > limit {
            let e = ActionError::Limit {
                limit: Limit::CodeSize,
                max: limit,
            };
            self.shared.borrow_mut().limit_hit = Some(e.clone());
            return Err(e.to_string());
        }
        let wanted: Cid = cid.parse().map_err(|e| format!("call: {e}"))?;
        let got = Cid::of_file(code.as_bytes()).map_err(|e| format!("call: {e}"))?;
        if got != wanted {
            return Err(format!("call: the code loaded for {wanted} hashes to {got}"));
        }
        Ok(())
    }

    fn take(&mut self, id: u64) -> Option<(usize, Pending)> {
        self.shared.borrow_mut().pending.remove(&id).map(|p| (p.run, p))
    }

    fn resolve(&mut self, id: u64, value: serde_json::Value) {
        let Some((run, pending)) = self.take(id) else { return };
        let Some(info) = self.runs.get(run) else { return };
        info.context.with(|ctx| {
            if let Ok(resolve) = pending.resolve.restore(&ctx) {
                let _ = resolve.call::<_, ()>((value.to_string(),));
            }
        });
    }

    fn reject(&mut self, id: u64, message: &str) {
        let Some((run, pending)) = self.take(id) else { return };
        let Some(info) = self.runs.get(run) else { return };
        info.context.with(|ctx| {
            if let (Ok(reject), Ok(error)) = (
                pending.reject.restore(&ctx),
                Exception::from_message(ctx.clone(), message),
            ) {
                let _ = reject.call::<_, ()>((error,));
            }
        });
    }
}

fn options(file: &str) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.strict = false;
    options.filename = Some(file.to_string());
    options
}

/// The text of a thrown value: `message` for `Error`s (prefixed by the class unless plain
/// `Error`), otherwise the value as a string.
fn error_text(value: &Value<'_>) -> String {
    if let Some(object) = value.as_object() {
        let message: Option<String> = object.get("message").ok();
        if let Some(message) = message {
            let name: Option<String> = object.get("name").ok();
            return match name.as_deref() {
                None | Some("Error") | Some("") => message,
                Some(name) => format!("{name}: {message}"),
            };
        }
    }
    match value.as_string().and_then(|s| s.to_string().ok()) {
        Some(text) => text,
        None => value
            .ctx()
            .json_stringify(value.clone())
            .ok()
            .flatten()
            .and_then(|s| s.to_string().ok())
            .unwrap_or_else(|| format!("{value:?}")),
    }
}

/// The pending exception behind an engine error, as text.
fn caught(ctx: &Ctx<'_>, error: rquickjs::Error) -> String {
    clip(match error {
        rquickjs::Error::Exception => error_text(&ctx.catch()),
        other => other.to_string(),
    })
}

fn throw(ctx: &Ctx<'_>, shared: &SharedRef, error: ActionError) -> rquickjs::Error {
    let message = error.to_string();
    shared.borrow_mut().limit_hit = Some(error);
    Exception::throw_message(ctx, &message)
}

/// Registers a promise for `kind` and returns it with its id.
fn promise<'js>(ctx: &Ctx<'js>, shared: &SharedRef, run: usize, kind: Kind) -> rquickjs::Result<(Promise<'js>, u64)> {
    let (promise, resolve, reject) = ctx.promise()?;
    let mut s = shared.borrow_mut();
    let id = s.next_id;
    s.next_id += 1;
    s.pending.insert(
        id,
        Pending {
            run,
            resolve: Persistent::save(ctx, resolve),
            reject: Persistent::save(ctx, reject),
            kind,
            cancellable: false,
        },
    );
    Ok((promise, id))
}

/// Counts one host operation against [`crate::Limits::host_calls`]; throws past it.
fn count_host_call(ctx: &Ctx<'_>, shared: &SharedRef) -> rquickjs::Result<()> {
    let max = shared.borrow().config.limits.host_calls;
    if shared.borrow().host_calls >= max {
        return Err(throw(
            ctx,
            shared,
            ActionError::Limit {
                limit: Limit::HostCalls,
                max,
            },
        ));
    }
    shared.borrow_mut().host_calls += 1;
    Ok(())
}

/// Starts `op` on the host for the action `stack_top`.
fn start_op(shared: &SharedRef, stack_top: &str, op: HostOp, id: u64) {
    let (host, tx) = {
        let s = shared.borrow();
        (Arc::clone(&s.host), s.tx.clone())
    };
    host.start(op, stack_top, Completion { id, tx });
}

/// Defines `__sigil`, the native half of the prelude, for run `run`.
/// `label` names the context's place in the run: `0` for the root, `{parent}/{n}` for the
/// parent's `n`th `call`.
fn install<'js>(ctx: &Ctx<'js>, shared: &SharedRef, run: usize, stack: &[String], label: &str) -> rquickjs::Result<()> {
    let bridge = Object::new(ctx.clone())?;
    let top: Rc<str> = Rc::from(stack.last().map_or("", String::as_str));
    let depth = stack.len().saturating_sub(1);

    for (name, with_id) in [("op", false), ("fetch", true)] {
        let shared = Rc::clone(shared);
        let top = Rc::clone(&top);
        bridge.set(
            name,
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, json: String| -> rquickjs::Result<Value<'js>> {
                    let (promise, id) = start_host_op(&ctx, &shared, run, &top, &json, with_id)?;
                    if !with_id {
                        return Ok(promise.into_value());
                    }
                    let pair = rquickjs::Array::new(ctx.clone())?;
                    pair.set(0, promise)?;
                    pair.set(1, id as f64)?;
                    Ok(pair.into_value())
                },
            )?,
        )?;
    }
    {
        // An aborted fetch: its answer, when it comes, settles nothing, and the run does not
        // wait for it. Only a fetch of this very context can be cancelled.
        let shared = Rc::clone(shared);
        bridge.set(
            "cancel",
            Function::new(ctx.clone(), move |id: f64| {
                let id = id as u64;
                let host = {
                    let mut s = shared.borrow_mut();
                    match s.pending.get(&id) {
                        Some(p) if p.cancellable && p.run == run => {
                            s.pending.remove(&id);
                            Arc::clone(&s.host)
                        }
                        _ => return,
                    }
                };
                host.cancel(id);
            })?,
        )?;
    }
    install_timers(ctx, &bridge, shared, run)?;
    install_platform(ctx, &bridge, shared, &top, run, label)?;
    {
        let shared = Rc::clone(shared);
        bridge.set(
            "setResponse",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, response: String| -> rquickjs::Result<()> {
                    let max = shared.borrow().config.limits.response_bytes;
                    if response.len() > max {
                        return Err(throw(
                            &ctx,
                            &shared,
                            ActionError::Limit {
                                limit: Limit::ResponseSize,
                                max,
                            },
                        ));
                    }
                    let mut s = shared.borrow_mut();
                    if run == 0 {
                        s.root_response = Some(response.clone());
                    }
                    s.response = Some(response);
                    Ok(())
                },
            )?,
        )?;
    }
    {
        let shared = Rc::clone(shared);
        bridge.set(
            "log",
            Function::new(ctx.clone(), move |_level: String, text: String| {
                let mut s = shared.borrow_mut();
                if s.logs_truncated {
                    return;
                }
                if s.log_bytes + text.len() > s.config.limits.log_bytes {
                    s.logs_truncated = true;
                    let max = s.config.limits.log_bytes;
                    s.logs.push(format!("[console output cut at the {max}-byte limit]"));
                    return;
                }
                s.log_bytes += text.len();
                s.logs.push(text);
            })?,
        )?;
    }
    bridge.set(
        "keccak",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, text: String| -> rquickjs::Result<String> {
            let bytes = hex::decode(text.trim_start_matches("0x"))
                .map_err(|e| Exception::throw_type(&ctx, &format!("keccak: not hex ({e})")))?;
            Ok(hex::encode(Keccak256::digest(bytes)))
        })?,
    )?;
    {
        let shared = Rc::clone(shared);
        let top = Rc::clone(&top);
        let parent_label = label.to_string();
        let calls = Cell::new(0u64);
        bridge.set(
            "call",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, cid: String, params: String| -> rquickjs::Result<Promise<'js>> {
                    let max = shared.borrow().config.limits.call_depth;
                    if depth >= max {
                        return Err(throw(
                            &ctx,
                            &shared,
                            ActionError::Limit {
                                limit: Limit::CallDepth,
                                max,
                            },
                        ));
                    }
                    // The canonical text from here on: the child's stack, its claims and its key
                    // are named by it, never by a padded spelling of the same CID.
                    let cid = match cid.parse::<Cid>() {
                        Ok(cid) => cid.to_string(),
                        Err(e) => return Err(Exception::throw_type(&ctx, &format!("call: {e}"))),
                    };
                    count_host_call(&ctx, &shared)?;
                    let n = calls.get();
                    calls.set(n + 1);
                    let kind = Kind::LoadChild {
                        cid: cid.clone(),
                        params,
                        label: format!("{parent_label}/{n}"),
                    };
                    let (promise, id) = promise(&ctx, &shared, run, kind)?;
                    start_op(&shared, &top, HostOp::LoadAction { cid }, id);
                    Ok(promise)
                },
            )?,
        )?;
    }
    bridge.set(
        "platform",
        Function::new(ctx.clone(), |ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
            ctx.eval_with_options(PLATFORM, options("sigil-platform.js"))
        })?,
    )?;
    {
        let shared = Rc::clone(shared);
        bridge.set(
            "ethers",
            Function::new(ctx.clone(), move |ctx: Ctx<'js>| -> rquickjs::Result<Value<'js>> {
                let warm = if run == 0 {
                    shared.borrow_mut().warm_ethers.take()
                } else {
                    None
                };
                if let Some(ethers) = warm {
                    return ethers.restore(&ctx);
                }
                let path = shared.borrow().config.ethers_bundle.clone();
                let Some(path) = path else {
                    return Err(Exception::throw_message(
                        &ctx,
                        "ethers is not available on this node (no ethers bundle is configured)",
                    ));
                };
                let bundle = std::fs::read_to_string(&path).map_err(|e| {
                    Exception::throw_message(&ctx, &format!("ethers: cannot read {}: {e}", path.display()))
                })?;
                ctx.eval_with_options(ethers_source(&bundle), options("ethers.umd.min.js"))
            })?,
        )?;
    }
    ctx.globals().set("__sigil", bridge)
}

/// Parses and starts a host operation for the action `top` of run `run`: its promise and id.
/// `fetch` operations go through `__sigil.fetch` only (`is_fetch`), which makes them cancellable.
fn start_host_op<'js>(
    ctx: &Ctx<'js>,
    shared: &SharedRef,
    run: usize,
    top: &str,
    json: &str,
    is_fetch: bool,
) -> rquickjs::Result<(Promise<'js>, u64)> {
    let op: HostOp =
        serde_json::from_str(json).map_err(|e| Exception::throw_type(ctx, &format!("bad host call: {e}")))?;
    if matches!(op, HostOp::Fetch { .. }) != is_fetch {
        return Err(Exception::throw_type(ctx, "bad host call: fetch goes through fetch()"));
    }
    let limits = shared.borrow().config.limits.clone();
    match &op {
        HostOp::ClaimKey { key_id, .. } if key_id.is_empty() || key_id.len() > crate::MAX_CLAIM_KEY_ID => {
            return Err(Exception::throw_type(
                ctx,
                &format!(
                    "claimKey: keyId must be 1 to {} bytes, not {}",
                    crate::MAX_CLAIM_KEY_ID,
                    key_id.len()
                ),
            ));
        }
        HostOp::Sign { .. } | HostOp::SignMessage { .. } | HostOp::SignAsAction { .. } | HostOp::ClaimKey { .. } => {
            let used = shared.borrow().signatures;
            if used >= limits.signatures {
                return Err(throw(
                    ctx,
                    shared,
                    ActionError::Limit {
                        limit: Limit::Signatures,
                        max: limits.signatures,
                    },
                ));
            }
            shared.borrow_mut().signatures += 1;
        }
        HostOp::Fetch { url, .. } => {
            let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("http" | "https")) {
                return Err(Exception::throw_type(
                    ctx,
                    &format!("fetch: only http and https URLs can be fetched, not {url:?}"),
                ));
            }
            let used = shared.borrow().fetches;
            if used >= limits.fetches {
                return Err(throw(
                    ctx,
                    shared,
                    ActionError::Limit {
                        limit: Limit::Fetches,
                        max: limits.fetches,
                    },
                ));
            }
            shared.borrow_mut().fetches += 1;
        }
        HostOp::LoadAction { .. } | HostOp::Randomness => {
            return Err(Exception::throw_type(
                ctx,
                "bad host call: use Lit.Actions.call or crypto.getRandomValues",
            ));
        }
        HostOp::Broadcast { value, .. } | HostOp::RunOncePublish { value, .. }
            if value.len() > limits.shared_value_bytes =>
        {
            return Err(throw(
                ctx,
                shared,
                ActionError::Limit {
                    limit: Limit::SharedValueSize,
                    max: limits.shared_value_bytes,
                },
            ));
        }
        _ => {}
    }
    count_host_call(ctx, shared)?;
    let (promise, id) = promise(ctx, shared, run, Kind::Op)?;
    if let Some(p) = shared.borrow_mut().pending.get_mut(&id) {
        p.cancellable = is_fetch;
    }
    start_op(shared, top, op, id);
    Ok((promise, id))
}

/// `__sigil.timer(id, ms)` arms (or re-arms) timer `id` of this run, `__sigil.clearTimer(id)`
/// disarms it, and `__sigil.onTimer(fn)` names the function the loop calls with the id of each
/// timer that is due. A cleared timer keeps nothing waiting: the run ends without it.
fn install_timers<'js>(ctx: &Ctx<'js>, bridge: &Object<'js>, shared: &SharedRef, run: usize) -> rquickjs::Result<()> {
    {
        let shared = Rc::clone(shared);
        bridge.set(
            "timer",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, id: f64, ms: f64| -> rquickjs::Result<()> {
                    let id = id as u64;
                    let delay = if ms.is_finite() && ms > 0.0 {
                        Duration::from_secs_f64(ms.min(1e9) / 1000.0)
                    } else {
                        Duration::ZERO
                    };
                    let mut s = shared.borrow_mut();
                    if let Some(slot) = s.timer_slots.remove(&(run, id)) {
                        s.timers.remove(&slot);
                    }
                    if s.timers.len() >= MAX_TIMERS {
                        return Err(Exception::throw_range(
                            &ctx,
                            &format!("setTimeout: more than {MAX_TIMERS} timers are waiting"),
                        ));
                    }
                    let due = Instant::now() + delay;
                    let order = s.timer_order;
                    s.timer_order += 1;
                    s.timers.insert((due, order), (run, id));
                    s.timer_slots.insert((run, id), (due, order));
                    Ok(())
                },
            )?,
        )?;
    }
    {
        let shared = Rc::clone(shared);
        bridge.set(
            "clearTimer",
            Function::new(ctx.clone(), move |id: f64| {
                let mut s = shared.borrow_mut();
                if let Some(slot) = s.timer_slots.remove(&(run, id as u64)) {
                    s.timers.remove(&slot);
                }
            })?,
        )?;
    }
    let shared = Rc::clone(shared);
    bridge.set(
        "onTimer",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, f: Function<'js>| {
            shared.borrow_mut().timer_fns.insert(run, Persistent::save(&ctx, f));
        })?,
    )
}

fn platform_error(ctx: &Ctx<'_>, e: PlatformError) -> rquickjs::Error {
    match Exception::from_message(ctx.clone(), &e.message) {
        Ok(error) => {
            let _ = error.set("name", e.name);
            ctx.throw(error.into_value())
        }
        Err(e) => e,
    }
}

fn bytes<'js>(ctx: &Ctx<'js>, data: Vec<u8>) -> rquickjs::Result<TypedArray<'js, u8>> {
    TypedArray::new(ctx.clone(), data)
}

/// Encoding, URL parsing, `crypto.subtle` and the agreed random stream (see [`platform`]).
/// The random stream of the context `label` of a run with `seed`.
fn stream(seed: &[u8; 32], label: &str) -> ChaCha20Rng {
    let mut h = sha2::Sha256::new();
    sha2::Digest::update(&mut h, b"sigil-action-random-stream/v1");
    sha2::Digest::update(&mut h, seed);
    sha2::Digest::update(&mut h, label.as_bytes());
    ChaCha20Rng::from_seed(sha2::Digest::finalize(h).into())
}

fn install_platform<'js>(
    ctx: &Ctx<'js>,
    bridge: &Object<'js>,
    shared: &SharedRef,
    top: &Rc<str>,
    run: usize,
    label: &str,
) -> rquickjs::Result<()> {
    bridge.set(
        "utf8Encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, text: rquickjs::String<'js>| {
            let text = text.to_string().unwrap_or_default();
            bytes(&ctx, text.into_bytes())
        })?,
    )?;
    bridge.set(
        "utf8Decode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, binary: String| -> rquickjs::Result<String> {
                let data = platform::bytes_of(&binary, "TextDecoder.decode").map_err(|e| platform_error(&ctx, e))?;
                Ok(String::from_utf8_lossy(&data).into_owned())
            },
        )?,
    )?;
    bridge.set(
        "b64Decode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, text: String| {
            let data = platform::base64_decode(&text).map_err(|e| platform_error(&ctx, e))?;
            bytes(&ctx, data)
        })?,
    )?;
    bridge.set(
        "b64Encode",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, binary: String| -> rquickjs::Result<String> {
                let data = platform::bytes_of(&binary, "btoa").map_err(|e| platform_error(&ctx, e))?;
                Ok(platform::base64_encode(&data))
            },
        )?,
    )?;
    bridge.set(
        "urlParse",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, input: String, base: Option<String>| -> rquickjs::Result<String> {
                platform::parse_url(&input, base.as_deref())
                    .map(|v| v.to_string())
                    .map_err(|e| platform_error(&ctx, e))
            },
        )?,
    )?;
    bridge.set(
        "urlSet",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, href: String, part: String, value: String| -> rquickjs::Result<String> {
                platform::set_url_part(&href, &part, &value)
                    .map(|v| v.to_string())
                    .map_err(|e| platform_error(&ctx, e))
            },
        )?,
    )?;
    bridge.set(
        "digest",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, algorithm: String, data: String| {
            let run = || platform::digest(&algorithm, &platform::bytes_of(&data, "digest")?);
            bytes(&ctx, run().map_err(|e| platform_error(&ctx, e))?)
        })?,
    )?;
    bridge.set(
        "hmac",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, hash: String, key: String, data: String| {
            let run = || {
                platform::hmac(
                    &hash,
                    &platform::bytes_of(&key, "HMAC key")?,
                    &platform::bytes_of(&data, "HMAC data")?,
                )
            };
            bytes(&ctx, run().map_err(|e| platform_error(&ctx, e))?)
        })?,
    )?;
    bridge.set(
        "aesGcm",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, encrypt: bool, key: String, iv: String, data: String, aad: String| {
                let run = || {
                    platform::aes_gcm(
                        encrypt,
                        &platform::bytes_of(&key, "AES-GCM key")?,
                        &platform::bytes_of(&iv, "AES-GCM iv")?,
                        &platform::bytes_of(&data, "AES-GCM data")?,
                        &platform::bytes_of(&aad, "AES-GCM additionalData")?,
                    )
                };
                bytes(&ctx, run().map_err(|e| platform_error(&ctx, e))?)
            },
        )?,
    )?;
    let shared = Rc::clone(shared);
    let top = Rc::clone(top);
    let label = label.to_string();
    bridge.set(
        "random",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, n: f64| -> rquickjs::Result<TypedArray<'js, u8>> {
                let n = if n.is_finite() && n > 0.0 { n as usize } else { 0 };
                if n > MAX_RANDOM_BYTES {
                    return Err(platform_error(
                        &ctx,
                        PlatformError {
                            name: "QuotaExceededError",
                            message: format!("getRandomValues: {n} bytes asked, at most {MAX_RANDOM_BYTES} per call"),
                        },
                    ));
                }
                let known = shared.borrow().seed;
                let seed = match known {
                    Some(seed) => seed,
                    None => {
                        let seed = wait_for_seed(&ctx, &shared, &top)?;
                        shared.borrow_mut().seed = Some(seed);
                        seed
                    }
                };
                let mut out = vec![0u8; n];
                shared
                    .borrow_mut()
                    .rngs
                    .entry(run)
                    .or_insert_with(|| stream(&seed, &label))
                    .fill_bytes(&mut out);
                bytes(&ctx, out)
            },
        )?,
    )
}

/// Asks the host for the run's random seed and blocks this thread until it answers (or the run's
/// deadline passes). Other answers that arrive meanwhile wait for the loop.
fn wait_for_seed(ctx: &Ctx<'_>, shared: &SharedRef, top: &str) -> rquickjs::Result<[u8; 32]> {
    count_host_call(ctx, shared)?;
    let (id, rx, deadline, fired) = {
        let mut s = shared.borrow_mut();
        let id = s.next_id;
        s.next_id += 1;
        (id, Rc::clone(&s.rx), s.deadline, Rc::clone(&s.fired))
    };
    start_op(shared, top, HostOp::Randomness, id);
    let answer = loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((got, answer)) if got == id => break answer,
            Ok(other) => shared.borrow_mut().deferred.push_back(other),
            Err(_) => {
                fired.set(true);
                return Err(Exception::throw_internal(ctx, "the action ran past its time limit"));
            }
        }
    };
    match answer {
        Ok(value) => {
            let seed = value
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            seed.ok_or_else(|| Exception::throw_internal(ctx, "randomness: the node answered no 32-byte seed"))
        }
        Err(e) => {
            let message = clip(e.message);
            {
                let mut s = shared.borrow_mut();
                if s.host_errors.len() < MAX_HOST_ERRORS {
                    s.host_errors.insert(message.clone(), e.code);
                }
            }
            Err(Exception::throw_message(ctx, &message))
        }
    }
}
