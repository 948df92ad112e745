//! Hostile traffic against real node processes: what a stranger on the network can make a node
//! hold, and that it keeps serving afterwards.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::Network;
use crate::signing::{mint, sign_and_check};

const READY: Duration = Duration::from_secs(120);

/// The peak resident memory of process `pid` (`VmHWM`), in KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Posts `total` bytes made of `chunk` repeated to `path` over one raw connection, as fast as the
/// node reads them; returns the status line the node answered with (or the empty string if it
/// closed without one) and how many bytes it accepted before the write failed.
async fn post_raw(url: &str, path: &str, chunk: &[u8], total: usize) -> (String, usize) {
    let addr = url.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ncontent-length: {total}\r\n\r\n"
    );
    let chunk = chunk.to_vec();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        if write.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        while sent < total {
            let n = chunk.len().min(total - sent);
            if write.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        sent
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    drop(read);
    let sent = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the node neither read nor refused the body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    (text.lines().next().unwrap_or_default().to_string(), sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_sixty_mebibyte_mesh_body_is_cut_off_at_its_first_frame_and_costs_no_memory() {
    let mut net = Network::start(3, 4, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;
    let pid = net.pid(0).unwrap();
    let url = net.urls[0].clone();
    let before = peak_kib(pid);
    const BODY: usize = 60 << 20;
    // Empty frames (a zero length field, repeated): refused at the first length field.
    let (status, _) = post_raw(&url, "/mesh/send", &[0u8; 64 << 10], BODY).await;
    assert!(status.contains(" 400 "), "empty frames: {status:?}");
    // Frames of plausible length from a stranger: refused at the first frame's 65-byte prefix.
    let mut frames = Vec::new();
    for _ in 0..16 {
        frames.extend_from_slice(&(4096u32).to_be_bytes());
        frames.extend_from_slice(&[7u8; 4096]);
    }
    let (status, _) = post_raw(&url, "/mesh/send", &frames, BODY).await;
    assert!(status.contains(" 403 "), "a stranger's frames: {status:?}");
    // A frame declaring 4 GiB: refused at its length field.
    let (status, _) = post_raw(&url, "/mesh/send", &[0xff; 64 << 10], BODY).await;
    assert!(status.contains(" 413 "), "a 4 GiB frame: {status:?}");
    // A stranger's call: refused at its prefix too.
    let (status, _) = post_raw(&url, "/mesh/call", &[9u8; 64 << 10], BODY).await;
    assert!(status.contains(" 403 "), "a stranger's call: {status:?}");
    let after = peak_kib(pid);
    assert!(
        after.saturating_sub(before) < 16 << 10,
        "peak memory grew by {} KiB over four 60 MiB bodies",
        after.saturating_sub(before)
    );
    assert!(net.metric(0, "sigil_mesh_rejected_total{reason=\"frame_size\"}").await >= 1);
    assert!(net.metric(0, "sigil_mesh_rejected_total{reason=\"prefix\"}").await >= 2);
    // And the node still takes part in signing.
    for _ in 0..3 {
        sign_and_check(&client, &owned).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_flooding_requests_and_connections_is_held_to_its_rate_and_connections_and_the_node_recovers() {
    let mut net = Network::start_configured(
        3,
        4,
        |_| Vec::new(),
        |config| {
            config
                .replace("rate_per_ip = 50000", "rate_per_ip = 20")
                .replace("burst_per_ip = 100000", "burst_per_ip = 40")
                .replace("connections_per_ip = 512", "connections_per_ip = 100")
        },
    )
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;
    let url = net.urls[0].clone();
    // 200 requests as fast as one connection goes: the burst passes, the rest is told to wait.
    let http = reqwest::Client::new();
    let mut limited = 0;
    for _ in 0..200 {
        let response = http.get(format!("{url}/health")).send().await.unwrap();
        if response.status() == 429 {
            assert!(
                response.headers().get("retry-after").is_some(),
                "429 without Retry-After"
            );
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
            limited += 1;
        }
    }
    assert!(limited >= 100, "only {limited} of 200 requests were limited");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(net.metric(0, "sigil_http_refused_total{reason=\"rate\"}").await >= 100);
    // 150 idle connections from one address that is not a node's (the nodes' own address gets
    // `peer_connections` more, for the mesh): the node keeps 100 and closes the rest at once.
    let addr = url.trim_start_matches("http://").to_string();
    let stranger = std::net::Ipv4Addr::new(127, 0, 0, 50);
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(connect_from(stranger, &addr).await.unwrap());
    }
    let mut closed = 0;
    for stream in &mut held {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert!(closed >= 50, "only {closed} of 150 connections were closed");
    // Once the flood stops, the node serves again.
    drop(held);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(net.metric(0, "sigil_http_refused_total{reason=\"connections\"}").await >= 50);
    for _ in 0..3 {
        sign_and_check(&client, &owned).await;
    }
}

/// A connection from `source` (any 127/8 address is loopback) to `addr`.
async fn connect_from(source: std::net::Ipv4Addr, addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((source, 0)))?;
    socket.connect(addr.parse().unwrap()).await
}

/// `GET /health` over a fresh connection from `source`: the status line, or the empty string if
/// the node closed the connection without answering.
async fn health_from(source: std::net::Ipv4Addr, addr: &str) -> String {
    let Ok(mut stream) = connect_from(source, addr).await else {
        return String::new();
    };
    let request = format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_from_many_addresses_are_timed_out_and_do_not_lock_new_clients_out() {
    // Slowloris from many addresses: each opens one connection, sends the start of a request and
    // never finishes it. A stalled request must not hold its connection (and its address's place
    // among the tracked addresses) for ever.
    let mut net = Network::start_configured(
        3,
        4,
        |_| Vec::new(),
        |config| {
            config
                .replace("tracked_ips = 4096", "tracked_ips = 8")
                .replace("idle_timeout_secs = 60", "idle_timeout_secs = 5")
        },
    )
    .await;
    let _client = net.wait_ready(READY).await;
    let addr = net.urls[0].trim_start_matches("http://").to_string();
    let before = health_from(std::net::Ipv4Addr::new(127, 0, 0, 250), &addr).await;
    assert!(before.contains(" 200 "), "a client before the flood: {before:?}");
    let mut stalled = Vec::new();
    for n in 2..=40u8 {
        if let Ok(mut stream) = connect_from(std::net::Ipv4Addr::new(127, 0, 0, n), &addr).await {
            let _ = stream.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-a: ").await;
            stalled.push(stream);
        }
    }
    let started = std::time::Instant::now();
    // Well past the idle timeout of 5 s.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut open = 0;
    for stream in &mut stalled {
        let mut buf = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf))
            .await
            .is_err()
        {
            open += 1;
        }
    }
    let after = health_from(std::net::Ipv4Addr::new(127, 0, 0, 251), &addr).await;
    let refused = net.metric(0, "sigil_http_refused_total{reason=\"tracked_ips\"}").await;
    assert!(
        open == 0 && after.contains(" 200 "),
        "after {:?}: {open} of {} stalled connections still open, a new client got {after:?} \
         ({refused} connections refused as untracked)",
        started.elapsed(),
        stalled.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_request_heads_are_cut_off_at_sixty_four_kibibytes_and_cost_little_memory() {
    // 400 connections from four addresses, each sending 400 KiB of a request head that never
    // ends: a connection buffers at most 64 KiB of a request it has not parsed.
    let mut net = Network::start(3, 4, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    let addr = net.urls[0].trim_start_matches("http://").to_string();
    let before = peak_kib(net.pid(0).unwrap());
    let mut writers = Vec::new();
    for n in 0..400u32 {
        let source = std::net::Ipv4Addr::new(127, 0, 1, 2 + (n % 4) as u8);
        let addr = addr.clone();
        writers.push(tokio::spawn(async move {
            let Ok(mut stream) = connect_from(source, &addr).await else {
                return (false, stream_closed(None));
            };
            let mut head = b"GET /health HTTP/1.1\r\nhost: x\r\nx-a: ".to_vec();
            head.resize(400 << 10, b'a');
            let written = tokio::time::timeout(Duration::from_secs(10), stream.write_all(&head)).await;
            let complete = matches!(written, Ok(Ok(())));
            (complete, stream_closed(Some(stream)))
        }));
    }
    let mut cut = 0;
    for writer in writers {
        let (complete, closed) = writer.await.unwrap();
        if !complete || closed.await {
            cut += 1;
        }
    }
    let grew = peak_kib(net.pid(0).unwrap()).saturating_sub(before);
    assert!(cut >= 390, "only {cut} of 400 unfinished heads were cut off");
    assert!(
        grew < 48 << 10,
        "peak memory grew by {grew} KiB over 400 unfinished heads"
    );
    sign_and_check(&client, &owned).await;
}

/// Resolves to true if the node closes (or answers and closes) `stream` within 5 s.
async fn stream_closed(stream: Option<tokio::net::TcpStream>) -> bool {
    let Some(mut stream) = stream else { return true };
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Opens a `/mesh/send` to `url` whose first frame is a genuine envelope's length field and
/// prefix followed by `extra` bytes of its body, and leaves it open: its answer if one comes
/// within 5 s (the stream is returned to keep the body unfinished).
async fn hold_frame(url: &str, envelope: &[u8], extra: usize) -> (Option<String>, tokio::net::TcpStream) {
    let addr = url.trim_start_matches("http://");
    // From an address that is not a node's: the stranger's bodies are charged to the budget of
    // everyone but the node list.
    let mut stream = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 77), addr)
        .await
        .unwrap();
    let head = format!(
        "POST /mesh/send HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        4 + envelope.len()
    );
    let mut body = (envelope.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&envelope[..sigil_mesh::PREFIX_LEN + extra]);
    stream.write_all(head.as_bytes()).await.unwrap();
    // The bytes of a real frame, never its end: the tag is never verified.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&body)).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let status = (!answer.is_empty()).then(|| {
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    });
    (status, stream)
}

/// A genuine envelope's prefix passes the header check, so whoever holds one (captured off the
/// wire, or here sealed with a stopped node's own identity) can make a node keep the bytes that
/// follow until the envelope ends. The adversary opens bodies that each hold 900 KiB of such a
/// frame and never finish it; the node keeps at most `limits.mesh_unverified_bytes` (2 MiB here)
/// of them in all, answers the body past it 503 `BUSY`, frees the bytes when the bodies go, and
/// keeps signing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_holding_genuine_prefixes_are_held_to_the_unverified_bytes_budget_and_freed() {
    let mut net = Network::start_configured(
        3,
        4,
        |_| Vec::new(),
        |config| config.replace("mesh_unverified_bytes = 67108864", "mesh_unverified_bytes = 2621440"),
    )
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;
    // Node 2's identity, from its data file once it stopped: the envelope it seals is genuine.
    net.kill(2);
    let store = crate::harness::open_store(&net.config(2), &net.data_dir(2));
    let secret: [u8; 32] = store
        .secret("identity")
        .unwrap()
        .unwrap()
        .as_slice()
        .try_into()
        .unwrap();
    drop(store);
    // The pinned keys, as NodeSet lists them.
    let (_, provider) = net.wallet(crate::harness::DEV_KEY);
    let listed = sigil_chain::bindings::NodeSet::new(net.contracts().node_set, &provider)
        .getNodes()
        .call()
        .await
        .unwrap();
    let pinned: Vec<(u32, sigil_mesh::NodeKey)> = listed
        .iter()
        .map(|node| (node.id, sigil_mesh::NodeKey(node.identityKey.0)))
        .collect();
    let endpoint = sigil_mesh::Endpoint::new(
        2,
        sigil_mesh::Identity::from_secret(secret),
        pinned,
        sigil_mesh::SessionPolicy::default(),
    );
    let envelope = endpoint.seal(0, &vec![0u8; 1 << 20]).unwrap();
    let url = net.urls[0].clone();
    const HELD: usize = 900 << 10;
    let mut open = Vec::new();
    for i in 0..2 {
        let (status, stream) = hold_frame(&url, &envelope, HELD).await;
        assert_eq!(status, None, "body {i} was answered: its bytes fit the budget");
        open.push(stream);
    }
    // Each is charged what its buffer holds: between what arrived and the envelope's length.
    let budget = 2621440;
    let held = net.metric(0, "sigil_mesh_unverified_bytes").await;
    assert!(
        (2 * HELD as u64..=2 * envelope.len() as u64).contains(&held),
        "two bodies hold {held} unverified bytes"
    );
    let (status, _third) = hold_frame(&url, &envelope, HELD).await;
    let status = status.expect("the body past the budget was not refused");
    assert!(status.contains(" 503 "), "past the budget: {status}");
    assert!(net.metric(0, "sigil_mesh_unverified_bytes").await <= budget);
    assert!(
        net.metric(0, "sigil_mesh_rejected_total{reason=\"unverified_bytes\"}")
            .await
            >= 1
    );
    // While the stranger holds its whole budget, the peers' bodies (from the node list's
    // address) have their own: nodes 0 and 1 still sign.
    sign_and_check(&client, &owned).await;
    drop(open);
    drop(_third);
    let started = std::time::Instant::now();
    while net.metric(0, "sigil_mesh_unverified_bytes").await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the bytes of closed bodies stay charged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two of three nodes still sign.
    sign_and_check(&client, &owned).await;
}

/// The adversary is node 3, a member of the network: every 200 ms it sends each peer forty notices
/// for presignature runs that do not exist (stored; failed, naming every node silent), protocol
/// messages for sessions nobody opens, action values for requests nobody runs, a well-formed
/// presignature order it never runs itself, and a malformed allocation call. The others keep
/// signing with exactly `t` signers, bench no honest node, and their memory stays bounded.
#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_pool_notices_orders_and_stray_messages_changes_nothing_for_the_others() {
    let mut net = Network::start(4, 16, |i| {
        if i == 3 {
            vec!["--fault".into(), "flood-peers".into()]
        } else {
            Vec::new()
        }
    })
    .await;
    let client = net.wait_ready(READY).await;
    // The flooder's own genuine messages may be dropped with its junk (its share of the early
    // buffer is full), so runs it is in can stall until it is benched: wait for a stock the
    // signs below can use.
    let started = std::time::Instant::now();
    while net.metric(0, "sigil_presignature_stock").await < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the pool did not fill under the flood"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;
    let before: Vec<u64> = (0..3).map(|i| peak_kib(net.pid(i).unwrap())).collect();
    // Twelve seconds of flood, a signature every 1.5 s (the pool refills meanwhile).
    let mut signed = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let hash = [signed as u8; 32];
        if let Err(e) = client
            .pkp_sign(sigil_client::KeyRef::KeyId(owned.key_ids[0]), hash, &owned.auth)
            .await
        {
            for i in 0..4 {
                eprintln!(
                    "node {i}: {}",
                    net.log(i)
                        .lines()
                        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                        .take(25)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            panic!("{e}");
        }
        signed += 1;
    }
    assert!(
        net.log(3).contains("TEST FAULT: flooding peers"),
        "node 3 did not flood"
    );
    for (i, before) in before.iter().enumerate() {
        let grew = peak_kib(net.pid(i).unwrap()).saturating_sub(*before);
        assert!(
            grew < 96 << 10,
            "node {i}'s peak memory grew by {grew} KiB under the flood"
        );
        for line in net
            .log(i)
            .lines()
            .filter(|l| l.contains("node stalled a presignature run"))
        {
            assert!(
                line.contains("node=3"),
                "node {i} benched an honest node on the flooder's word: {line}"
            );
        }
    }
    eprintln!("{signed} signatures while node 3 flooded");
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_asking_for_presignatures_of_requests_nobody_made_spends_none() {
    // Node 3 holds a valid mesh identity and asks the allocator, 200 times a second, for
    // presignatures of random requests: it spends its 4 solo tokens (one more a minute), then
    // every ask waits for t nodes to make it, and none does.
    let mut net = Network::start_configured(
        4,
        16,
        |i| {
            if i == 3 {
                vec!["--fault".into(), "drain-pool".into()]
            } else {
                Vec::new()
            }
        },
        |config| {
            config
                .replace("solo_allocations = 64", "solo_allocations = 4")
                .replace("solo_allocations_per_min = 60", "solo_allocations_per_min = 1")
        },
    )
    .await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;
    let allocated = "sigil_presignatures_allocated_total";
    let before = net.metric(0, allocated).await;
    // Past the allocator's 10 s wait for the first asks.
    tokio::time::sleep(Duration::from_secs(10)).await;
    for _ in 0..5 {
        sign_and_check(&client, &owned).await;
    }
    let after = net.metric(0, allocated).await;
    assert!(
        net.log(3)
            .contains("TEST FAULT: asking for presignatures of requests nobody made"),
        "node 3 did not ask"
    );
    // One presignature per signature, or two where the signing set had node 3 in it and the
    // client asked again without it.
    assert!(
        (5..=10).contains(&(after - before)),
        "the allocator spent {} presignatures on five signatures",
        after - before
    );
    // At most `open_asks_per_node` of its asks wait at once; the rest are refused at once.
    let unconfirmed = net.metric(0, "sigil_allocations_unconfirmed_total").await;
    assert!(unconfirmed >= 100, "only {unconfirmed} of node 3's asks timed out");
    let over = net.metric(0, "sigil_allocations_over_share_total").await;
    assert!(over >= 1000, "only {over} of node 3's asks were refused past its share");
    assert!(net.metric(0, "sigil_presignature_stock").await >= 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_each_sign_request_to_one_node_only_does_not_stop_the_others_signing() {
    // Within its own PKP's rate, a client sends every node, 25 times a second, sign requests
    // with fresh ids that no other node receives: each makes its node open an allocation nobody
    // joins. A node's share of those is bounded by pushing its oldest out, never by refusing a
    // new one, so full requests keep signing.
    let mut net = Network::start(3, 8, |_| Vec::new()).await;
    let client = net.wait_ready(READY).await;
    let owned = mint(&net, &client, 1).await;
    sign_and_check(&client, &owned).await;
    let (auth_sig, _) = sigil_client::Credential::fields(&owned.auth).unwrap();
    let key_id = hex::encode(owned.key_ids[0]);
    let http = reqwest::Client::builder()
        .local_address(Some("127.0.0.77".parse().unwrap()))
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for url in net.urls.clone() {
        let (http, stop, auth_sig, key_id) = (http.clone(), stop.clone(), auth_sig.clone(), key_id.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (mut request, mut hash) = ([0u8; 16], [0u8; 32]);
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut request);
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut hash);
                let body = serde_json::json!({
                    "keyId": key_id,
                    "toSign": hex::encode(hash),
                    "requestId": hex::encode(request),
                    "authSig": auth_sig,
                });
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move {
                    let _ = http.post(format!("{url}/web/pkp/sign")).json(&body).send().await;
                });
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    // Past every node's 64 solo tokens and 128 open asks.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for _ in 0..5 {
        sign_and_check(&client, &owned).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for attacker in attackers {
        let _ = attacker.await;
    }
    let pushed_out = net.metric(0, "sigil_allocations_over_share_total").await;
    assert!(pushed_out >= 50, "only {pushed_out} asks nobody joined were pushed out");
}

/// The adversary: a stranger posting a mesh body a byte every 5 s (each byte resets the idle
/// timeout), to hold its connection and a descriptor for as long as it likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_body_trickled_a_byte_at_a_time_is_cut_off_before_its_first_envelope_arrives() {
    let mut net = Network::start(3, 2, |_| Vec::new()).await;
    net.wait_ready(READY).await;
    let addr = net.urls[0].trim_start_matches("http://").to_string();
    let mut stream = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 79), &addr)
        .await
        .unwrap();
    let head = format!(
        "POST /mesh/send HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\ncontent-length: 1000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A plausible length field, then the prefix a byte at a time: it is checked only once whole.
    stream.write_all(&1000u32.to_be_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // At most 60 s of trickling: the node must answer and close well before.
    while started.elapsed() < Duration::from_secs(60) {
        if stream.write_all(&[0]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "the trickle held its connection {:?}: {answer}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");
    // The node serves as before.
    assert!(health_from(std::net::Ipv4Addr::new(127, 0, 0, 80), &addr)
        .await
        .contains("200"));
}
