//! `sigil bench epoch`: signs back to back while the network changes epoch — `n` nodes, then two
//! join (`n + 2`) — and reports how long the change takes (proposal → the new epoch on chain →
//! every node switched), how many sign requests failed or were retried by this caller (the client
//! itself follows the change: it connects again on `EPOCH_CHANGED` and waits out `POOL_EMPTY`),
//! and the sign latency before, during and after the change.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand_core::{OsRng, RngCore};
use sigil_chain::deploy::{confirm_epoch, propose_epoch, wallet_provider};
use sigil_chain::registry::read_node_set;
use sigil_client::{epoch_confirmations, Client, KeyRef};
use tokio::sync::Mutex;

use sigil::devnet::{Devnet, Setup};
use sigil::network::{auth_sig, health_all, wallet};

/// Options of `sigil bench epoch`.
#[derive(clap::Args)]
pub struct EpochArgs {
    /// Nodes before the change (two more join).
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// How long to sign before the change, and again after every node switched, in seconds.
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// Presignatures each epoch's pool keeps in stock (the first epoch's is filled before the
    /// signing starts; the new epoch's fills after the switch).
    #[arg(long, default_value_t = 64)]
    stock: usize,
    /// Directory for the benchmark network, kept afterwards with the node logs (default: a fresh
    /// temporary directory, removed).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// One sign request as the client saw it: when it started (since the run began), how long it
/// took, and whether it went through.
struct Sample {
    at: Duration,
    ms: f64,
    ok: bool,
}

pub async fn run(args: EpochArgs) -> anyhow::Result<ExitCode> {
    if args.dir.as_ref().is_some_and(|d| d.join("network.json").exists()) {
        bail!("--dir must name a fresh directory: the benchmark changes the network's epoch");
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sigil-bench-epoch-{}-{}", std::process::id(), OsRng.next_u32()))
    });
    let setup = Setup {
        nodes: args.nodes,
        presign_stock: args.stock,
        ..Setup::default()
    };
    let mut devnet = Devnet::prepare(&dir, &setup).await?;
    devnet.start_nodes()?;
    let result = measure(&args, &mut devnet).await;
    devnet.stop().await;
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn measure(args: &EpochArgs, devnet: &mut Devnet) -> anyhow::Result<ExitCode> {
    eprintln!("bench epoch: {} nodes, then {}", args.nodes, args.nodes + 2);
    devnet.wait_ready(Duration::from_secs(180)).await?;
    devnet.register(None).await?;
    let network = devnet.network().clone();
    // Sign from stock before the change: the figure is then the request's, not the refill's.
    let http = reqwest::Client::new();
    crate::bench::wait_for_stock(&http, &crate::bench::allocator_url(&network), args.stock).await?;
    let chain = network.network()?;
    let client = Client::connect(&chain).await?.with_contracts(&network.contracts()?);
    let signer = wallet(None, &network)?;
    let admin = wallet_provider(network.rpc_url()?, signer.clone())?;
    let auth = Arc::new(auth_sig(&client, &signer).await?);
    let pkp = client.mint_pkp(&admin, &auth, &network.contracts()?).await?;
    client
        .pkp_sign(KeyRef::KeyId(pkp.key_id), [0; 32], auth.as_ref())
        .await?;

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let retried = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let began = Instant::now();
    let worker = {
        let (samples, retried, stop, auth) = (
            Arc::clone(&samples),
            Arc::clone(&retried),
            Arc::clone(&stop),
            Arc::clone(&auth),
        );
        let key_id = pkp.key_id;
        let client = client.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let at = began.elapsed();
                let started = Instant::now();
                let mut ok = false;
                // A request the client gave up on is retried until it goes through, for up to a
                // minute: the figure of interest is how long the change holds it up.
                while started.elapsed() < Duration::from_secs(60) {
                    let mut hash = [0u8; 32];
                    OsRng.fill_bytes(&mut hash);
                    match client.pkp_sign(KeyRef::KeyId(key_id), hash, auth.as_ref()).await {
                        Ok(_) => {
                            ok = true;
                            break;
                        }
                        Err(_) => {
                            retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                let ms = started.elapsed().as_secs_f64() * 1e3;
                samples.lock().await.push(Sample { at, ms, ok });
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;

    // Two nodes join: made like the others, proposed with NodeSet's list, started once proposed.
    let node_set = network.contracts()?.node_set;
    let current = read_node_set(&admin, node_set).await?;
    let mut nodes = current.nodes.clone();
    let next_id = nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
    let mut joining = Vec::new();
    for id in [next_id, next_id + 1] {
        let (i, listed) = devnet.add_node(id)?;
        nodes.push(listed);
        joining.push(i);
    }
    let threshold = u32::try_from(sigil_tss::threshold_for(nodes.len())).context("threshold")?;
    let proposed_at = began.elapsed();
    let proposed = Instant::now();
    propose_epoch(&admin, node_set, &nodes, threshold).await?;
    for i in &joining {
        devnet.start_node(*i, &[])?;
    }
    eprintln!(
        "  proposed epoch {}: {} nodes, threshold {threshold}",
        current.epoch + 1,
        nodes.len()
    );
    let confirmations = loop {
        if proposed.elapsed() > Duration::from_secs(120) {
            bail!("the proposed nodes did not all confirm within 120 s");
        }
        match epoch_confirmations(&chain).await? {
            Some(c) if c.signatures.len() == c.proposal.nodes.len() => break c,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let resharing = proposed.elapsed();
    let signatures: Vec<[u8; 65]> = confirmations.signatures.iter().map(|(_, s)| *s).collect();
    confirm_epoch(&admin, node_set, &confirmations.keys, &signatures).await?;
    let on_chain = proposed.elapsed();
    let target = current.epoch + 1;
    loop {
        let all = health_all(&http, devnet.network()).await;
        let switched = all
            .iter()
            .flatten()
            .filter(|h| h["epoch"] == target && h["status"] == "ok")
            .count();
        if switched == nodes.len() {
            break;
        }
        if proposed.elapsed() > Duration::from_secs(180) {
            bail!("{switched} of {} nodes switched within 180 s", nodes.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let switched = proposed.elapsed();
    let switched_at = proposed_at + switched;
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    worker.await.context("the signing task")?;

    let samples = samples.lock().await;
    let phase = |from: Duration, to: Duration| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| s.ok && s.at >= from && s.at < to)
            .map(|s| s.ms)
            .collect()
    };
    let failed = samples.iter().filter(|s| !s.ok).count();
    println!(
        "epoch {} → {}: {} → {} nodes, threshold {} → {threshold}",
        current.epoch,
        target,
        args.nodes,
        nodes.len(),
        current.threshold
    );
    println!(
        "  proposal → every proposed node confirmed {:.2} s → epoch on chain {:.2} s → every node switched {:.2} s",
        resharing.as_secs_f64(),
        on_chain.as_secs_f64(),
        switched.as_secs_f64()
    );
    println!(
        "  sign requests: {} made, {failed} failed, {} tries retried",
        samples.len(),
        retried.load(std::sync::atomic::Ordering::Relaxed)
    );
    for (name, from, to) in [
        ("before", Duration::ZERO, proposed_at),
        ("during", proposed_at, switched_at),
        ("after", switched_at, Duration::MAX),
    ] {
        let mut ms = phase(from, to);
        ms.sort_by(f64::total_cmp);
        println!(
            "  sign {name:>6}: n={:>4}  p50 {:>8.1} ms  p99 {:>8.1} ms",
            ms.len(),
            crate::bench::percentile(&ms, 50.0),
            crate::bench::percentile(&ms, 99.0)
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
