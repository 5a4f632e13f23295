//! Downloads beyond the basics: several ranges, If-Range, preconditions, digests, counters, the
//! `latest` alias, and resuming with real clients (`curl -C -`, `wget -c`).

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const P: &str = "/api/packages/admin/generic";

fn header_of<'a>(part: &'a str, name: &str) -> Option<&'a str> {
    part.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn several_ranges_are_a_multipart_byteranges_body() {
    let s = Server::start();
    let data = pattern(2_200_000, 70);
    let path = format!("{P}/mr/1/f");
    assert_eq!(s.put(&path, &data).status, 201);
    let r = s.req(
        "GET",
        &path,
        &[("Range", "bytes=0-9, 1044475-1044484, -5")],
        b"",
    );
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").expect("content-type").to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("content type {ct}"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str()),
        "exact length"
    );
    // split the body on the delimiters, as a client would
    let delim = format!("--{boundary}");
    let body = r.body.clone();
    let mut parts = Vec::new();
    let mut rest: &[u8] = &body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let first = find(rest, delim.as_bytes()).expect("first delimiter");
    rest = &rest[first + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            break; // close delimiter
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part head");
        let head = String::from_utf8_lossy(&rest[2..head_end]).into_owned();
        let next = find(rest, format!("\r\n{delim}").as_bytes()).expect("next delimiter");
        parts.push((head, rest[head_end + 4..next].to_vec()));
        rest = &rest[next + 2 + delim.len()..];
    }
    let want = [
        ("bytes 0-9/2200000", &data[..10]),
        ("bytes 1044475-1044484/2200000", &data[1_044_475..1_044_485]),
        ("bytes 2199995-2199999/2200000", &data[2_199_995..]),
    ];
    assert_eq!(parts.len(), 3);
    for ((head, bytes), (range, expect)) in parts.iter().zip(want) {
        assert_eq!(header_of(head, "content-range"), Some(range));
        assert_eq!(
            header_of(head, "content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(bytes.as_slice(), expect);
    }
    // ranges adding up to more than the file: the whole file
    let r = s.req("GET", &path, &[("Range", "bytes=0-2199999,0-10")], b"");
    assert_eq!((r.status, r.body.len()), (200, data.len()));
}

#[test]
fn preconditions_and_if_range() {
    let s = Server::start();
    let path = format!("{P}/pre/1/f");
    let data = pattern(1000, 71);
    assert_eq!(s.put(&path, &data).status, 201);
    let r = s.get(&path);
    let etag = r.header("etag").expect("etag").to_string();
    let lm = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let get = |h: &[(&str, &str)]| s.req("GET", &path, h, b"");
    assert_eq!(get(&[("If-Match", &etag)]).status, 200);
    assert_eq!(get(&[("If-Match", "\"nope\"")]).status, 412);
    assert_eq!(get(&[("If-Match", "*")]).status, 200);
    assert_eq!(
        get(&[("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]).status,
        412
    );
    assert_eq!(get(&[("If-Unmodified-Since", &lm)]).status, 200);
    assert_eq!(
        get(&[("If-None-Match", &format!("\"x\", {etag}"))]).status,
        304
    );
    let r = get(&[("Range", "bytes=10-19"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.body.as_slice()), (206, &data[10..20]));
    let r = get(&[("Range", "bytes=10-19"), ("If-Range", &lm)]);
    assert_eq!(r.status, 206, "If-Range with the exact date");
    let r = get(&[
        ("Range", "bytes=10-19"),
        ("If-Range", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ]);
    assert_eq!(
        (r.status, r.body.len()),
        (200, 1000),
        "stale If-Range: whole file"
    );
}

#[test]
fn digests_on_get_and_head() {
    use base64::Engine;
    use sha2::Digest;
    let s = Server::start();
    let data = pattern(5000, 72);
    let path = format!("{P}/dig/1/f");
    assert_eq!(s.put(&path, &data).status, 201);
    let b64 = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data));
    for method in ["GET", "HEAD"] {
        let r = s.req(method, &path, &[], b"");
        assert_eq!(
            r.header("repr-digest"),
            Some(format!("sha-256=:{b64}:").as_str())
        );
        assert_eq!(
            r.header("x-checksum-sha256"),
            Some(sha256_hex(&data).as_str())
        );
    }
}

/// The `downloads` of the file `f` of `pkg/version`, from the JSON files listing.
fn file_downloads(s: &Server, pkg: &str, version: &str) -> u64 {
    let auth = format!("token {ADMIN_TOKEN}");
    let r = s.req(
        "GET",
        &format!("/api/v1/packages/admin/generic/{pkg}/{version}/files"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    v[0]["downloads"].as_u64().expect("downloads")
}

#[test]
fn gets_count_heads_do_not() {
    let s = Server::start();
    let path = format!("{P}/cnt/1/f");
    assert_eq!(s.put(&path, b"count me").status, 201);
    for _ in 0..3 {
        assert_eq!(s.get(&path).status, 200);
    }
    assert_eq!(s.req("HEAD", &path, &[], b"").status, 200);
    assert_eq!(
        s.req("GET", &path, &[("Range", "bytes=0-0")], b"").status,
        206
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let n = file_downloads(&s, "cnt", "1");
        if n == 4 {
            break;
        }
        assert!(n < 4, "HEAD must not count: {n}");
        assert!(Instant::now() < deadline, "counts not written: {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // counts survive a clean restart
    let mut s = s;
    s.stop();
    let s = s.restart();
    assert_eq!(file_downloads(&s, "cnt", "1"), 4);
}

#[test]
fn latest_is_the_newest_version_holding_the_file() {
    let s = Server::start();
    assert_eq!(s.put(&format!("{P}/app/1.0/app.tar"), b"one").status, 201);
    assert_eq!(
        s.put(&format!("{P}/app/1.0/notes.txt"), b"notes one")
            .status,
        201
    );
    assert_eq!(s.put(&format!("{P}/app/2.0/app.tar"), b"two").status, 201);
    let r = s.get(&format!("{P}/app/latest/app.tar"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"two"[..]));
    let r = s.get(&format!("{P}/APP/Latest/NOTES.txt"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"notes one"[..]),
        "the newest version that has it"
    );
    assert_eq!(s.get(&format!("{P}/app/latest/missing")).status, 404);
    assert_eq!(s.get(&format!("{P}/nopkg/latest/app.tar")).status, 404);
    // a real version called latest wins, for every file name
    assert_eq!(
        s.put(&format!("{P}/app/latest/app.tar"), b"pinned").status,
        201
    );
    assert_eq!(s.get(&format!("{P}/app/latest/app.tar")).body, b"pinned");
    let r = s.get(&format!("{P}/app/latest/notes.txt"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "package file does not exist"),
        "no aliasing while a version named latest exists"
    );
}

fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .expect("sh");
    assert!(
        found.status.success(),
        "{name} is required by this test (.ci/run installs it)"
    );
    name.to_string()
}

#[test]
fn curl_and_wget_resume_an_interrupted_download() {
    let s = Server::start();
    let data = pattern(3_000_000, 73);
    let path = format!("{P}/resume/1/big.bin");
    assert_eq!(s.put(&path, &data).status, 201);
    let dir = temp_dir("resume");
    let url = s.url(&path);
    // curl's -f turns the 416 for an already complete file into an error, as against Gitea
    // (Go's ServeContent answers the same 416): the second run omits it, as `curl -C -` users do.
    for (client, args, again) in [
        (
            tool("curl"),
            vec!["-sSf", "-C", "-", "-o"],
            vec!["-sS", "-C", "-", "-o"],
        ),
        (tool("wget"), vec!["-q", "-c", "-O"], vec!["-q", "-c", "-O"]),
    ] {
        let out = dir.join(format!("{client}.bin"));
        // the first 1,234,567 bytes arrived before the connection broke
        std::fs::write(&out, &data[..1_234_567]).expect("partial file");
        let status = Command::new(&client)
            .args(&args)
            .arg(&out)
            .arg(&url)
            .status()
            .expect("run client");
        assert!(status.success(), "{client} resume failed");
        assert!(
            std::fs::read(&out).expect("read") == data,
            "{client} result differs"
        );
        // and again on the complete file: nothing to fetch, still success, file unchanged
        let status = Command::new(&client)
            .args(&again)
            .arg(&out)
            .arg(&url)
            .status()
            .expect("run client");
        assert!(status.success(), "{client} on a complete file failed");
        assert!(std::fs::read(&out).expect("read") == data);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// "Newest" is the order of creation, not of names: after 2.0, then 10.0, then 1.5, `latest`
/// is 1.5 (a name sort would say 2.0, a version sort 10.0). And only GET and HEAD alias: a
/// DELETE through `latest` deletes nothing of 1.5.
#[test]
fn latest_follows_creation_order_and_deletes_never_alias() {
    let s = Server::start();
    for v in ["2.0", "10.0", "1.5"] {
        let body = format!("app {v}");
        assert_eq!(
            s.put(&format!("{P}/app/{v}/app.tar"), body.as_bytes())
                .status,
            201
        );
    }
    let r = s.get(&format!("{P}/app/latest/app.tar"));
    assert_eq!((r.status, r.text().as_str()), (200, "app 1.5"));
    let r = s.req("HEAD", &format!("{P}/app/latest/app.tar"), &[], b"");
    assert_eq!(r.status, 200);
    let r = s.delete(&format!("{P}/app/latest/app.tar"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "package does not exist"),
        "no version is named latest"
    );
    let r = s.delete(&format!("{P}/app/latest"));
    assert_eq!(r.status, 404, "{}", r.text());
    for v in ["2.0", "10.0", "1.5"] {
        assert_eq!(s.get(&format!("{P}/app/{v}/app.tar")).status, 200, "{v}");
    }
    // Deleting 1.5 makes 10.0, the next newest, the latest.
    assert_eq!(s.delete(&format!("{P}/app/1.5")).status, 204);
    let r = s.get(&format!("{P}/app/latest/app.tar"));
    assert_eq!((r.status, r.text().as_str()), (200, "app 10.0"));
}
