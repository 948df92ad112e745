//! `sigil dev`: a local network of node processes on free loopback ports, and the `network.json`
//! file that client commands read. Only the command: its flags, what it prints, and Ctrl-C (with
//! `node_cmd`'s shutdown signal); the network itself is [`sigil::devnet`]'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use sigil::devnet::{ChainChoice, Devnet, Setup, Tools};

/// Options of `sigil dev`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of nodes (3 to 31); the threshold is ⌈2n/3⌉.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Directory for the node configs, data and logs, and `network.json`. An existing network there
    /// is restarted with its keys.
    #[arg(long, default_value = ".sigil")]
    dir: PathBuf,
    /// Presignatures kept in stock.
    #[arg(long, default_value_t = 32)]
    presign_stock: usize,
    /// Schnorr nonce material kept in stock.
    #[arg(long, default_value_t = 32)]
    schnorr_stock: usize,
    /// Write the configs and `network.json`, then exit without starting the nodes.
    #[arg(long)]
    init_only: bool,
    /// Seconds to wait for the root keys.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Use this EVM chain instead of starting anvil (the wallet must be funded there).
    #[arg(long)]
    rpc_url: Option<String>,
    /// Compiled contracts (`forge build` output); default `contracts/out` here or beside the binary's checkout.
    #[arg(long)]
    contracts: Option<PathBuf>,
    /// The nodes' ids, comma-separated and distinct, one per node (default: 0 to n − 1), e.g.
    /// `--ids 3,8,21,40,77`. A node keeps its id across epochs; it is not a place in the list.
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
}

/// Runs `sigil dev`: prepares (or restarts) the network, starts and watches its nodes until Ctrl-C.
pub async fn run(args: Args, private_key: Option<&str>) -> anyhow::Result<ExitCode> {
    let setup = Setup {
        nodes: args.nodes,
        presign_stock: args.presign_stock,
        presign_refill_below: None,
        schnorr_stock: Some(args.schnorr_stock),
        chain: ChainChoice {
            rpc_url: args.rpc_url,
            private_key: private_key.map(str::to_string),
            artifacts: args.contracts,
        },
        tools: Tools::default(),
        hosts: None,
        ids: args.ids,
    };
    let mut devnet = Devnet::prepare(&args.dir, &setup).await?;
    let network = devnet.network().clone();
    let network_path = devnet.network_path();
    if args.init_only {
        // SIGINT makes anvil write its state, so the next `sigil dev` finds the contracts.
        devnet.stop_anvil().await;
        println!("{}", network_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "starting {} nodes (threshold {}) in {}",
        network.nodes.len(),
        network.threshold,
        args.dir.display()
    );
    devnet.start_nodes()?;
    let ready = tokio::select! {
        r = devnet.wait_ready(Duration::from_secs(args.timeout)) => r,
        () = crate::node_cmd::shutdown() => Err(anyhow::anyhow!("interrupted")),
    };
    let ready = match ready {
        Ok(()) => devnet.register(private_key).await,
        Err(e) => Err(e),
    };
    if let Err(e) = ready {
        devnet.stop().await;
        return Err(e);
    }
    println!(
        "Sigil dev network: {} nodes, threshold {}",
        network.nodes.len(),
        network.threshold
    );
    for node in &network.nodes {
        println!("  node {}  {}", node.id, node.url);
    }
    if let (Some(rpc), Some(contracts), Some(wallet)) = (&network.rpc_url, &network.contracts, &network.dev_wallet) {
        println!("  chain   {rpc} (chain id {})", network.chain_id.unwrap_or_default());
        println!("  NodeSet {}  PKPNFT {}", contracts.node_set, contracts.pkp_nft);
        println!(
            "  PKPPermissions {}  PKPHelper {}",
            contracts.pkp_permissions, contracts.pkp_helper
        );
        println!("  dev wallet {} (key {})", wallet.address, wallet.private_key);
    }
    println!("network file: {}", network_path.display());
    let net = if network_path == Path::new(crate::DEFAULT_NETWORK) {
        String::new()
    } else {
        format!("--network {} ", network_path.display())
    };
    println!("try:");
    println!("  sigil {net}pkp mint                      # a PKP owned by the dev wallet");
    println!("  sigil {net}sign --token-id TOKEN --hash {}", "02".repeat(32));
    println!("  sigil {net}pkp send-eth TOKEN --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --value 1000");
    println!("      (fund the PKP address first, e.g. with tools/node_modules/.bin/cast send)");
    println!("  sigil {net}status");
    println!("A node that exits is started again; Ctrl-C stops the network.");
    tokio::select! {
        () = crate::node_cmd::shutdown() => {}
        () = devnet.supervise() => {}
    }
    devnet.stop().await;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}
