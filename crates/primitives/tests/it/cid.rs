//! `Cid::of_file` against `ipfs add --only-hash` (kubo defaults, CIDv0) for files of many chunks.
//!
//! The vectors come from the npm package `ipfs-only-hash@4.0.0` (ipfs-unixfs-importer 7: fixed
//! 262144-byte chunks, balanced layout with 174 links per node, UnixFS `File` leaves, CIDv0), the
//! same tool `live_cross_check` runs.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sigil_primitives::Cid;

const CHUNK: usize = 262_144;

/// Deterministic file contents: byte `i` is `(i * 31 + 7) % 251`. In JS:
/// `const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) % 251`.
fn content(len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

fn check(len: usize, expected: &str) {
    let cid = Cid::of_file(&content(len)).unwrap();
    assert_eq!(cid.to_string(), expected, "file of {len} bytes");
}

#[test]
fn empty() {
    check(0, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
}

#[test]
fn one_byte() {
    check(1, "QmXC9WjuLo7EfydBdbWyvpGif62nrxbDCX2vcz9ZqLTQvV");
}

#[test]
fn one_full_chunk() {
    check(CHUNK, "QmNjsPT1urL55WXngMVgvZrn2apSux229uFBoAgmKTtjAd");
}

#[test]
fn one_chunk_and_one_byte() {
    check(CHUNK + 1, "QmP8yTqWQcb3qVoBcdE4pTUzxh9kazndg5ELrbXBmdj17M");
}

#[test]
fn one_mib() {
    check(4 * CHUNK, "QmfP6GjfZnzRi5Lj1AYF4HurNVhebyeRvCdDnd8VVeCP32");
}

#[test]
fn full_single_parent() {
    check(174 * CHUNK, "QmRB34vbxhA7iAUc12cVtYAyfBoQsUR7vqUvBfNKVTcYSC");
}

#[test]
fn two_levels() {
    check(174 * CHUNK + 1, "QmPq9MH6i6cgAMc9uYJe8xYeVstRr2D2mSpLVDYbYMLPta");
}

/// Prints `<len> <cid>` per size given after the package path, hashing `content(len)`.
const REFERENCE_SCRIPT: &str = r#"
const [pkg, ...sizes] = process.argv.slice(1)
const H = require(pkg)
;(async () => {
  for (const s of sizes) {
    const n = Number(s)
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) % 251
    console.log(`${n} ${await H.of(b)}`)
  }
})().catch(e => { console.error(e); process.exit(1) })
"#;

/// The reference is missing: a failure on CI, a notice elsewhere.
fn reference_missing(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}; CI needs it: run `npm ci` in tools/");
    }
    eprintln!("skipping the live cross-check: {why} (run `npm ci` in tools/)");
}

#[test]
fn live_cross_check() {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/node_modules/ipfs-only-hash");
    if !package.join("package.json").is_file() {
        return reference_missing(&format!("{} is not installed", package.display()));
    }
    let sizes = [
        0,
        1,
        2,
        1000,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK,
        3 * CHUNK - 1,
        4 * CHUNK,
        10 * CHUNK + 12_345,
        173 * CHUNK + 1,
        174 * CHUNK,
        174 * CHUNK + 1,
        175 * CHUNK + 99_999,
        348 * CHUNK + 1,
    ];
    let mut node = match Command::new("node")
        .arg("-e")
        .arg(REFERENCE_SCRIPT)
        .arg(&package)
        .args(sizes.iter().map(usize::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(node) => node,
        Err(e) => return reference_missing(&format!("cannot run node: {e}")),
    };

    // The importer hashes these files in about a second; the deadline only stops a hang.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = node.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            node.kill().expect("kill node");
            node.wait().expect("reap node");
            panic!("node took more than 120 s to hash the files");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    node.stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut output)
        .expect("read node's output");
    assert!(status.success(), "node failed ({status}); output: {output}");

    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), sizes.len(), "one line per size; output: {output}");
    for (len, line) in sizes.into_iter().zip(lines) {
        let (reported_len, expected) = line.split_once(' ').expect("`<len> <cid>`");
        assert_eq!(reported_len, len.to_string());
        let cid = Cid::of_file(&content(len)).unwrap();
        assert_eq!(cid.to_string(), expected, "file of {len} bytes");
    }
}
