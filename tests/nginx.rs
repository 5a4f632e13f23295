//! shelf behind a real nginx, configured from the shipped recipe `contrib/nginx-shelf.conf`
//! (plain HTTP on an ephemeral loopback port instead of TLS). Skipped, with a note, when no
//! `nginx` binary is installed.
//!
//! The client connects from 127.0.0.2 (all of 127/8 is loopback on Linux) while nginx reaches
//! shelf from 127.0.0.1, so the test can tell the client's address from the proxy's.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXTERNAL: &str = "https://packages.example.com";
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn nginx_binary() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        return Some(sbin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    })
}

/// A port that was free a moment ago (bind port 0, note it, release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// The shipped recipe with TLS swapped for plain HTTP on `port` and the upstream pointed at
/// `shelf`. Every replaced line must be found, so a change to the recipe that this test no
/// longer understands fails here instead of testing something else.
fn recipe_for_test(port: u16, shelf: SocketAddr) -> String {
    let recipe = std::fs::read_to_string(manifest("contrib/nginx-shelf.conf")).expect("recipe");
    let mut out = String::new();
    let (mut listen, mut upstream, mut ssl) = (0, 0, 0);
    for line in recipe.lines() {
        let t = line.trim();
        if t == "listen 443 ssl;" {
            out.push_str(&format!("    listen 127.0.0.1:{port};\n"));
            listen += 1;
        } else if t == "listen [::]:443 ssl;" {
            listen += 1;
        } else if t.starts_with("ssl_") {
            ssl += 1;
        } else if t == "server 127.0.0.1:8080;" {
            out.push_str(&format!("    server {shelf};\n"));
            upstream += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(
        (listen, upstream, ssl),
        (2, 1, 2),
        "the recipe's listen/upstream/ssl lines changed"
    );
    for must in [
        "client_max_body_size 0;",
        "proxy_request_buffering off;",
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Host $host;",
    ] {
        assert!(out.contains(must), "recipe lacks {must}");
    }
    out
}

/// nginx in the foreground, killed (and its temp dir removed) on drop, even on panic.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    fn start(bin: &Path, shelf: SocketAddr) -> Nginx {
        let dir = temp_dir("nginx");
        let port = free_port();
        let d = dir.display();
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join(sub)).expect("temp subdir");
        }
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             {}\n\
             }}\n",
            recipe_for_test(port, shelf)
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(nginx.addr).is_ok() {
                return nginx;
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited with {status}: {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// A connection to nginx from the client address.
    fn connect(&self) -> TcpStream {
        connect_from(CLIENT_IP, self.addr)
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut c = self.connect();
        send(&mut c, method, path, headers, body);
        read_response(&mut BufReader::new(c), method == "HEAD")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM (fast shutdown), then SIGKILL if it lingers.
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP connection from source address `src` (std cannot bind before connecting).
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> TcpStream {
    let SocketAddr::V4(dst) = dst else {
        panic!("IPv4 only")
    };
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr structs live across the
    // calls; the descriptor is handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let from = sockaddr(SocketAddrV4::new(src, 0));
        let r = libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "bind {src}: {}", std::io::Error::last_os_error());
        let to = sockaddr(dst);
        let r = libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "connect {dst}: {}", std::io::Error::last_os_error());
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream
    }
}

fn metric(s: &Server, name: &str) -> f64 {
    let text = s.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn readme_shows_the_shipped_files() {
    let readme = std::fs::read_to_string(manifest("README.md")).expect("README");
    for f in ["contrib/shelf.service", "contrib/nginx-shelf.conf"] {
        let body = std::fs::read_to_string(manifest(f)).expect(f);
        assert!(
            readme.contains(&body),
            "README.md must show {f} exactly as shipped"
        );
    }
}

#[test]
fn behind_nginx() {
    let Some(bin) = nginx_binary() else {
        // CI installs nginx (`.ci/run`): there, its absence is a failure, never a green skip.
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI is set but nginx is not installed: tests/nginx.rs cannot run"
        );
        eprintln!("SKIPPED behind_nginx: nginx is not installed (CI=true makes this a failure)");
        return;
    };
    let s = Server::start_with(&["--trusted-proxies", "127.0.0.1", "--external-url", EXTERNAL]);
    let nginx = Nginx::start(&bin, s.addr);
    let auth = format!("token {ADMIN_TOKEN}");
    let path = "/api/packages/admin/generic/app/1.0/app.bin";

    // A 6 MiB upload (nginx's default body limit is 1 MiB), streamed: shelf is receiving it
    // while the client has sent only part of it. A client-written X-Forwarded-For is ignored.
    let body = pattern(6 * 1024 * 1024 + 123, 42);
    let mut c = nginx.connect();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: packages.example.com\r\nAuthorization: {auth}\r\n\
         X-Forwarded-For: 198.51.100.9\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).expect("head");
    c.write_all(&body[..2 * 1024 * 1024]).expect("first part");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&s, "shelf_uploads_in_flight") != 1.0 {
        assert!(
            Instant::now() < deadline,
            "shelf never saw the upload start: nginx buffered the body"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.write_all(&body[2 * 1024 * 1024..]).expect("rest");
    let r = read_response(&mut BufReader::new(c), false);
    assert_eq!(r.status, 201, "{} {}", r.text(), nginx.error_log());

    // Downloads: whole, and a range across a chunk boundary.
    let r = nginx.req("GET", path, &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body == body, "download differs from the upload");
    let r = nginx.req("GET", path, &[("Range", "bytes=1044470-1044499")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &body[1_044_470..1_044_500]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1044470-1044499/{}", body.len()).as_str())
    );

    // Re-upload: 409.
    let r = nginx.req("PUT", path, &[("Authorization", &auth)], b"again");
    assert_eq!(r.status, 409);

    // The JSON API's links use --external-url.
    let other = "/api/packages/admin/generic/app/2.0/app.bin";
    assert_eq!(
        nginx
            .req("PUT", other, &[("Authorization", &auth)], b"v2")
            .status,
        201
    );
    let r = nginx.req(
        "GET",
        "/api/v1/packages/admin?limit=1",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Value = serde_json::from_slice(&r.body).expect("json");
    let html = list[0]["html_url"].as_str().expect("html_url");
    assert!(html.starts_with(&format!("{EXTERNAL}/admin/")), "{html}");
    let link = r
        .header("link")
        .expect("Link header with two versions and limit=1");
    assert!(
        link.contains(&format!("<{EXTERNAL}/api/v1/packages/admin?")),
        "{link}"
    );

    // Delete through nginx.
    let r = nginx.req("DELETE", path, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 204);
    assert_eq!(nginx.req("GET", path, &[], b"").status, 404);

    // shelf recorded the client's address (127.0.0.2), not nginx's (127.0.0.1) nor the spoofed
    // one, from the X-Forwarded-For nginx appended.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let r = s.req(
            "GET",
            "/api/v1/admin/audit?action=package.publish&limit=50",
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 200);
        let entries: Vec<Value> = serde_json::from_slice(&r.body).expect("audit json");
        if entries.len() >= 2 {
            break entries;
        }
        assert!(Instant::now() < deadline, "audit entries not written");
        std::thread::sleep(Duration::from_millis(200));
    };
    for e in &entries {
        assert_eq!(e["addr"], CLIENT_IP.to_string(), "{e}");
    }

    // /metrics through nginx: only for local scrapers (the recipe's allow/deny).
    assert_eq!(nginx.req("GET", "/metrics", &[], b"").status, 403);
    let mut local = TcpStream::connect(nginx.addr).expect("connect from 127.0.0.1");
    send(&mut local, "GET", "/metrics", &[], b"");
    let r = read_response(&mut BufReader::new(local), false);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("shelf_http_requests_total"));
    assert!(
        !nginx.error_log().contains("[emerg]"),
        "{}",
        nginx.error_log()
    );
}
