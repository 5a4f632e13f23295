//! Every fuzz target of `shelf::fuzzing`, on stable, with a fixed budget (issue 11): the seeds
//! of `fuzz/corpus/<target>/` and mutations of them from a seeded generator (bit flips, byte
//! edits, splices of tokens the parsers care about, truncation, repetition). The same bodies run
//! under libFuzzer with `cargo +nightly fuzz run <target>`; this harness only keeps CI honest.
//!
//! `SHELF_FUZZ_SECONDS` sets the time per target (default 8; CI's total stays well under five
//! minutes on two cores), `SHELF_FUZZ_SEED` the generator's seed (default: fixed, so a failure
//! reproduces). A failing input is written to `target/fuzz-failures/` and printed in hex.

mod common;
use common::Rng;
use shelf::fuzzing;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes the parsers branch on, spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\0",
    b" ",
    b":",
    b";",
    b",",
    b"=",
    b"-",
    b"%",
    b"%2F",
    b"%00",
    b"%ZZ",
    b"..",
    b"/",
    b"\"",
    b"bytes=",
    b"0-",
    b"-1",
    b"18446744073709551615",
    b"Basic ",
    b"token ",
    b"Bearer ",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: ",
    b"Host: h\r\n",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"GET / ",
    b"PUT /api/packages/admin/generic/a/1/f ",
    b"0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b"--b",
    b"--b--",
    b"Content-Disposition: form-data; name=\"file\"; filename=\"f\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"\"unlimited\"",
    b"\"10GiB\"",
    b"ustar\0",
    b"00000000000\0",
    b"././@LongLink",
    b"path=",
    b"\xff\xfe",
    b"\xc3\xa9",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(i..i, t.iter().copied());
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(v.len() - i + 1).min(64);
                v.drain(i..i + n);
            }
            4 => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
            5 if !v.is_empty() && v.len() < 1 << 16 => {
                let i = rng.below(v.len());
                let n = rng.below(v.len() - i).min(256);
                let piece = v[i..i + n].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, piece);
            }
            6 => {
                let i = rng.below(v.len() + 1);
                let b = rng.next() as u8;
                v.insert(i, b);
            }
            _ => {
                // Numbers at their edges.
                let i = rng.below(v.len() + 1);
                let n = [
                    b"0".as_slice(),
                    b"4294967296",
                    b"9223372036854775807",
                    b"255",
                    b"256",
                ][rng.below(5)];
                v.splice(i..i, n.iter().copied());
            }
        }
    }
    v
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new()];
    if let Ok(dir) = std::fs::read_dir(corpus_dir(target)) {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    assert!(
        out.len() > 1,
        "no seeds in {}",
        corpus_dir(target).display()
    );
    out
}

fn budget() -> Duration {
    let secs = std::env::var("SHELF_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(8.0);
    Duration::from_secs_f64(secs)
}

fn save_failure(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let p = dir.join(format!("{target}-{h:016x}"));
    let _ = std::fs::write(&p, input);
    p
}

/// Runs `target` on every seed, then on mutations until the budget is spent.
fn run(target: &str) {
    let (_, body) = fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    let seed = std::env::var("SHELF_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0x5EED_F022);
    let mut rng = Rng(seed ^ target.len() as u64 ^ 0x9E37_79B9_7F4A_7C15);
    let mut pool = seeds(target);
    let started = Instant::now();
    let mut execs = 0u64;
    let mut i = 0usize;
    loop {
        let input = if i < pool.len() {
            pool[i].clone()
        } else {
            let base = &pool[rng.below(pool.len())];
            mutate(&mut rng, base)
        };
        i += 1;
        let outcome = std::panic::catch_unwind(|| body(&input));
        execs += 1;
        if outcome.is_err() {
            let path = save_failure(target, &input);
            panic!(
                "fuzz target {target} failed on input #{execs} (saved to {}): {}",
                path.display(),
                hex(&input)
            );
        }
        // Keep some mutants as bases: inputs drift further from the seeds over the run.
        if i > pool.len() && pool.len() < 512 && rng.below(16) == 0 {
            pool.push(input);
        }
        if started.elapsed() >= budget() && i >= pool.len() {
            break;
        }
    }
    eprintln!(
        "fuzz {target}: {execs} inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .take(512)
        .map(|x| format!("{x:02x}"))
        .collect::<String>()
}

#[test]
fn names() {
    run("names");
}

#[test]
fn range() {
    run("range");
}

#[test]
fn authorization() {
    run("authorization");
}

#[test]
fn multipart() {
    run("multipart");
}

#[test]
fn tar() {
    run("tar");
}

#[test]
fn manifest() {
    run("manifest");
}

#[test]
fn json_bodies() {
    run("json_bodies");
}

#[test]
fn backup_stream() {
    run("backup_stream");
}

#[test]
fn http() {
    run("http");
}

#[test]
fn api_sequence() {
    run("api_sequence");
}

/// Every target of `shelf::fuzzing` has its test above and a cargo-fuzz file.
#[test]
fn every_target_is_run() {
    let this = include_str!("fuzz.rs");
    for (name, _) in fuzzing::TARGETS {
        assert!(this.contains(&format!("run(\"{name}\")")), "{name}");
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(file.is_file(), "{}", file.display());
    }
}
