//! shelf serving TLS itself (issue 12): certificates made here with rcgen, a site CA as
//! air-gapped sites run, and real clients: curl, Python's ssl, shelf's own CLI and rustls.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A CA and a server certificate it signed, for `localhost` and 127.0.0.1, as PEM files.
struct Pki {
    ca: PathBuf,
    /// The server's chain: its certificate, then the CA's.
    chain: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, tag: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("shelf test CA {tag}"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let pki = Pki {
        ca: dir.join(format!("ca-{tag}.pem")),
        chain: dir.join(format!("chain-{tag}.pem")),
        key: dir.join(format!("key-{tag}.pem")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).expect("write CA");
    std::fs::write(&pki.chain, format!("{}{}", cert.pem(), ca_cert.pem())).expect("write chain");
    std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
    pki
}

fn start_tls(pki: &Pki, extra: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        pki.chain.to_str().expect("utf-8 path"),
        "--tls-key",
        pki.key.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A verified TLS connection to `addr` as `localhost`, trusting only `ca`.
fn try_tls(addr: SocketAddr, ca: &Path) -> Result<Tls, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(c.expect("CA pem")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("session");
    let mut tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

fn tls(addr: SocketAddr, ca: &Path) -> Tls {
    try_tls(addr, ca).expect("TLS handshake")
}

fn tls_get(s: &mut Tls, path: &str) -> Resp {
    let port = s.sock.peer_addr().expect("peer").port();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: token {ADMIN_TOKEN}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("send");
    s.flush().expect("flush");
    read_response(&mut BufReader::new(s), false)
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl")
}

fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "python3 is missing, and CI runs this test with it"
    );
    ok
}

#[test]
fn curl_python_rustls_and_the_cli_talk_to_shelf_over_tls_with_a_site_ca() {
    let dir = temp_dir("tls-pki");
    let pki = make_pki(&dir, "a");
    let s = start_tls(&pki, &[]);
    let base = format!("https://localhost:{}", s.addr.port());
    let ca = pki.ca.to_str().expect("utf-8");
    let auth = format!("Authorization: token {ADMIN_TOKEN}");

    // curl publishes and downloads, over TLS 1.3 and over TLS 1.2, with ALPN http/1.1.
    let data = pattern(3 << 20, 7);
    let file = dir.join("upload.bin");
    std::fs::write(&file, &data).expect("write upload");
    let url = format!("{base}/api/packages/admin/generic/tools/1.0/tool.bin");
    let put = curl(&[
        "--cacert",
        ca,
        "-X",
        "PUT",
        "-H",
        &auth,
        "--data-binary",
        &format!("@{}", file.display()),
        "-w",
        "%{http_code} %{http_version}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&put.stdout), "201 1.1", "{put:?}");
    let put = curl(&[
        "--cacert",
        ca,
        "-X",
        "PUT",
        "-H",
        &auth,
        "--data-binary",
        "second",
        "-w",
        "%{http_code}",
        &format!("{base}/api/packages/admin/generic/tools/1.1/tool.bin"),
    ]);
    assert_eq!(String::from_utf8_lossy(&put.stdout), "201", "{put:?}");
    for version in [
        ["--tlsv1.3", "--tls-max", "1.3"],
        ["--tlsv1.2", "--tls-max", "1.2"],
    ] {
        let out = dir.join("download.bin");
        let get = curl(&[
            "--cacert",
            ca,
            version[0],
            version[1],
            version[2],
            "-H",
            &auth,
            "-o",
            out.to_str().expect("utf-8"),
            "-w",
            "%{http_code}",
            &url,
        ]);
        assert_eq!(String::from_utf8_lossy(&get.stdout), "200", "{get:?}");
        assert!(
            std::fs::read(&out).expect("downloaded") == data,
            "{version:?}: bytes differ"
        );
    }
    // Without the site's CA, curl refuses (and shelf goes on serving).
    let refused = curl(&[&url]);
    assert_eq!(refused.status.code(), Some(60), "{refused:?}");

    // rustls, on one keep-alive connection: the JSON API's links are https URLs.
    let mut c = tls(s.addr, &pki.ca);
    let r = tls_get(&mut c, "/api/v1/packages/admin");
    assert_eq!(r.status, 200, "{}", r.text());
    let list: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let html = list[0]["html_url"].as_str().expect("html_url");
    assert!(
        html.starts_with(&format!("{base}/admin/-/packages/generic/tools/1.")),
        "{html}"
    );
    let r = tls_get(&mut c, "/api/v1/packages/admin?limit=1&page=1");
    assert_eq!(r.status, 200);
    let link = r.header("link").expect("a Link to the next page");
    assert!(link.contains(&format!("<{base}/")), "{link}");
    let r = tls_get(&mut c, "/api/packages/admin/generic/tools/1.0/tool.bin");
    assert!(
        r.status == 200 && r.body == data,
        "download on a kept-alive TLS connection"
    );

    // Python's ssl client, trusting the site CA.
    if python3() {
        let script = format!(
            "import ssl, urllib.request, hashlib\n\
             ctx = ssl.create_default_context(cafile={ca:?})\n\
             req = urllib.request.Request({url:?}, headers={{'Authorization': 'token {ADMIN_TOKEN}'}})\n\
             r = urllib.request.urlopen(req, context=ctx)\n\
             print(r.status, hashlib.sha256(r.read()).hexdigest(), r.version)\n"
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("200 {} 11", sha256_hex(&data)),
            "{out:?}"
        );
    }

    // The CLI: --ca-cert, or SHELF_CA_CERT.
    let cli_with = |env: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(bin());
        cmd.args(args).env_remove("SHELF_CA_CERT");
        if let Some(v) = env {
            cmd.env("SHELF_CA_CERT", v);
        }
        cmd.output().expect("run shelf")
    };
    let out = cli_with(
        None,
        &[
            "user",
            "list",
            "--server",
            &base,
            "--token",
            ADMIN_TOKEN,
            "--ca-cert",
            ca,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin"));
    let out = cli_with(
        Some(ca),
        &[
            "token",
            "list",
            "admin",
            "--server",
            &base,
            "--token",
            ADMIN_TOKEN,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let backup = dir.join("backup.redb");
    let out = cli_with(
        Some(ca),
        &[
            "backup",
            "--server",
            &base,
            "--token",
            ADMIN_TOKEN,
            backup.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::metadata(&backup).is_ok_and(|m| m.len() > 0));

    // A wrong CA, and plain http:// to the TLS port: clear errors, no downgrade.
    let other = make_pki(&dir, "other");
    let out = cli_with(
        None,
        &[
            "user",
            "list",
            "--server",
            &base,
            "--token",
            ADMIN_TOKEN,
            "--ca-cert",
            other.ca.to_str().expect("utf-8"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("not signed by a CA this client trusts") && err.contains("--ca-cert"),
        "{err}"
    );
    let plain = format!("http://127.0.0.1:{}", s.addr.port());
    let out = cli_with(
        None,
        &["user", "list", "--server", &plain, "--token", ADMIN_TOKEN],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("Client sent an HTTP request to an HTTPS server"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plain_http_to_the_tls_port_gets_a_plain_400_and_bad_tls_is_closed() {
    let dir = temp_dir("tls-plain");
    let pki = make_pki(&dir, "p");
    let s = start_tls(&pki, &["--workers", "1"]);
    let mut c = s.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("answer, then close");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
    // A record that is not TLS at all: closed (after an alert), and the server serves on.
    let mut c = s.connect();
    c.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .expect("send");
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.len() < 64, "an alert at most: {got:?}");
    let mut ok = tls(s.addr, &pki.ca);
    assert_eq!(tls_get(&mut ok, "/api/v1/version").status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stalled_handshakes_hold_no_worker_and_end_at_the_head_timeout() {
    let dir = temp_dir("tls-stall");
    let pki = make_pki(&dir, "s");
    let s = start_tls(
        &pki,
        &[
            "--workers",
            "1",
            "--head-timeout",
            "3",
            "--max-connections-per-ip",
            "0",
        ],
    );
    // 100 connections stop inside their handshake: some send nothing, some half a record.
    let mut stalled = Vec::new();
    for i in 0..100 {
        let mut c = s.connect();
        if i % 2 == 0 {
            c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .expect("partial ClientHello");
        }
        stalled.push(c);
    }
    // The one worker still serves a normal client, at once.
    let started = Instant::now();
    let mut c = tls(s.addr, &pki.ca);
    assert_eq!(tls_get(&mut c, "/api/v1/version").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "served only after the stalled handshakes timed out"
    );
    // And the stalled ones are closed by the head timeout.
    for mut c in stalled {
        c.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(n) => assert_eq!(n, 0, "bytes from a server closing a stalled handshake"),
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "not closed: {e}"
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sighup_reloads_the_pair_keeps_connections_and_keeps_the_old_pair_when_the_new_is_bad() {
    let dir = temp_dir("tls-reload");
    let first = make_pki(&dir, "1");
    // The server reads the pair from fixed paths; the test swaps the files under it.
    let live = Pki {
        ca: first.ca.clone(),
        chain: dir.join("live-chain.pem"),
        key: dir.join("live-key.pem"),
    };
    std::fs::copy(&first.chain, &live.chain).expect("copy chain");
    std::fs::copy(&first.key, &live.key).expect("copy key");
    let s = start_tls(&live, &[]);
    let mut kept = tls(s.addr, &first.ca);
    assert_eq!(tls_get(&mut kept, "/api/v1/version").status, 200);

    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &s.child.id().to_string()])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "kill -HUP");
    };
    // New handshakes use the new pair once reloaded.
    let wait_for = |ca: &Path| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if try_tls(s.addr, ca).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the new pair was not taken up");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let second = make_pki(&dir, "2");
    std::fs::copy(&second.chain, &live.chain).expect("copy chain");
    std::fs::copy(&second.key, &live.key).expect("copy key");
    hup();
    wait_for(&second.ca);
    assert!(try_tls(s.addr, &first.ca).is_err(), "still the old pair");
    // The connection opened before the reload carries on.
    assert_eq!(tls_get(&mut kept, "/api/v1/version").status, 200);

    // A key that does not match, then a missing key: refused, the pair in use stays.
    let third = make_pki(&dir, "3");
    std::fs::copy(&third.key, &live.key).expect("mismatched key");
    hup();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&live.key).expect("remove key");
    hup();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        try_tls(s.addr, &second.ca).is_ok(),
        "the old pair must stay"
    );
    // And reloading still works after the refusals.
    std::fs::copy(&third.chain, &live.chain).expect("copy chain");
    std::fs::copy(&third.key, &live.key).expect("copy key");
    hup();
    wait_for(&third.ca);
    assert_eq!(tls_get(&mut kept, "/api/v1/version").status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_certificate_or_key_stops_the_start_before_anything_is_created() {
    let dir = temp_dir("tls-bad");
    let pki = make_pki(&dir, "b");
    let other = make_pki(&dir, "o");
    let db = dir.join("shelf.redb");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--tls-cert".into(), pki.chain.display().to_string()],
            "--tls-cert needs --tls-key",
        ),
        (
            vec![
                "--tls-cert".into(),
                dir.join("missing.pem").display().to_string(),
                "--tls-key".into(),
                pki.key.display().to_string(),
            ],
            "cannot read the TLS certificate",
        ),
        (
            vec![
                "--tls-cert".into(),
                pki.key.display().to_string(),
                "--tls-key".into(),
                pki.key.display().to_string(),
            ],
            "no \"BEGIN CERTIFICATE\" block",
        ),
        (
            vec![
                "--tls-cert".into(),
                pki.chain.display().to_string(),
                "--tls-key".into(),
                other.key.display().to_string(),
            ],
            "the private key does not belong to the certificate",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .args(&args)
            .env_remove("SHELF_TLS_CERT")
            .env_remove("SHELF_TLS_KEY")
            .output()
            .expect("run shelf");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created the database");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tls_record_trickled_byte_by_byte_is_abandoned_at_the_minimum_body_rate() {
    let dir = temp_dir("tls-trickle");
    let pki = make_pki(&dir, "t");
    let s = start_tls(&pki, &["--workers", "1", "--body-timeout", "60"]);
    let mut c = tls(s.addr, &pki.ca);
    let head = format!(
        "PUT /api/packages/admin/generic/slow/1/f HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: token {ADMIN_TOKEN}\r\nContent-Length: 4096\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    c.flush().expect("flush");
    // The body as one TLS record, whose bytes then go out one at a time, 5 a second: each
    // socket read gets a byte, but no byte of plaintext comes out until the record is whole.
    c.conn.writer().write_all(&[7u8; 4096]).expect("encrypt");
    let mut record = Vec::new();
    while c.conn.wants_write() {
        c.conn.write_tls(&mut record).expect("record");
    }
    // The trickle goes on until the server answers (or for 60 s at most): the answer must
    // come while the client is still sending, as it does for a plain trickle.
    let mut tcp = c.sock.try_clone().expect("socket");
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still = Arc::clone(&sending);
    let trickle = std::thread::spawn(move || {
        let started = Instant::now();
        for b in record {
            if !still.load(std::sync::atomic::Ordering::SeqCst)
                || started.elapsed() > Duration::from_secs(60)
                || tcp.write_all(&[b]).is_err()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        still.store(false, std::sync::atomic::Ordering::SeqCst);
    });
    c.sock
        .set_read_timeout(Some(Duration::from_secs(90)))
        .expect("timeout");
    let mut first = [0u8; 12];
    let got = c.read_exact(&mut first);
    let while_sending = sending.swap(false, std::sync::atomic::Ordering::SeqCst);
    let _ = trickle.join();
    assert!(got.is_ok(), "no answer: {got:?}");
    assert_eq!(&first, b"HTTP/1.1 408");
    assert!(
        while_sending,
        "answered only once the client stopped sending"
    );
    let mut other = tls(s.addr, &pki.ca);
    assert_eq!(tls_get(&mut other, "/api/v1/version").status, 200);
    assert_eq!(
        tls_get(&mut other, "/api/packages/admin/generic/slow/1/f").status,
        404,
        "nothing stored"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redirect_http_answers_every_plain_request_with_a_308_to_https() {
    let dir = temp_dir("tls-redirect");
    let pki = make_pki(&dir, "r");
    // A free port for the plain listener.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let plain_addr = plain.local_addr().expect("addr");
    drop(plain);
    let addr = plain_addr.to_string();
    let s = start_tls(&pki, &["--redirect-http", &addr, "--workers", "1"]);
    let tls_port = s.addr.port();
    let ask = |req: &[u8]| {
        let mut c = TcpStream::connect(plain_addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        c.write_all(req).expect("send");
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    let r =
        ask(b"GET /api/packages/admin/generic/p/1/f?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"), "{r}");
    assert!(
        r.contains(&format!(
            "Location: https://localhost:{tls_port}/api/packages/admin/generic/p/1/f?x=1\r\n"
        )),
        "{r}"
    );
    let r = ask(b"PUT /x HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 3\r\n\r\nabc");
    assert!(
        r.contains(&format!("Location: https://[::1]:{tls_port}/x\r\n")),
        "{r}"
    );
    let r = ask(b"GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // curl follows it to the TLS port.
    let out = curl(&[
        "--cacert",
        pki.ca.to_str().expect("utf-8"),
        "-L",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{url_effective}",
        &format!("http://localhost:{}/api/v1/version", plain_addr.port()),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("200 https://localhost:{tls_port}/api/v1/version"),
        "{out:?}"
    );
    // Without TLS the flag is refused.
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redirect-http",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(dir.join("no.redb"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --tls-cert"));
    let _ = std::fs::remove_dir_all(&dir);
}
