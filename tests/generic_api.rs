//! The generic registry routes against the real binary: statuses, messages, headers, validation,
//! case-insensitivity and the processing order of GITEA-COMPAT §2.

mod common;
use common::*;

const P: &str = "/api/packages/admin/generic";

#[test]
fn publish_download_delete_round_trip() {
    let s = Server::start();
    let data = pattern(10_000, 1);
    let r = s.put(&format!("{P}/pkg/1.0/file.bin"), &data);
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.body.is_empty());

    let r = s.get(&format!("{P}/pkg/1.0/file.bin"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-length"), Some("10000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let sha = sha256_hex(&data);
    assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(r.header("x-checksum-sha256"), Some(sha.as_str()));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"file.bin\"; filename*=UTF-8''file.bin")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let cc = r.header("cache-control").expect("cache-control");
    assert!(cc.contains("private") && !cc.contains("public"), "{cc}");
    assert!(r
        .header("last-modified")
        .expect("last-modified")
        .ends_with(" GMT"));

    let r = s.delete(&format!("{P}/pkg/1.0/file.bin"));
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    let r = s.get(&format!("{P}/pkg/1.0/file.bin"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "package does not exist",
        "the version went with its last file"
    );
}

#[test]
fn sizes_round_trip_byte_exact() {
    let s = Server::start();
    for (i, size) in [0usize, 1, 4095, 1_044_479, 1_044_480, 1_044_481, 3_500_000]
        .into_iter()
        .enumerate()
    {
        let data = pattern(size, i as u64 + 10);
        let path = format!("{P}/sizes/1/f{i}");
        assert_eq!(s.put(&path, &data).status, 201, "size {size}");
        let r = s.get(&path);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), size);
        assert!(r.body == data, "bytes differ at size {size}");
        assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    }
}

#[test]
fn empty_body_stores_empty_file() {
    let s = Server::start();
    assert_eq!(s.put(&format!("{P}/e/1/empty"), b"").status, 201);
    let r = s.get(&format!("{P}/e/1/empty"));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(
        r.header("x-checksum-sha256"),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
}

#[test]
fn duplicate_is_409_case_insensitively_and_keeps_the_first_bytes() {
    let s = Server::start();
    assert_eq!(
        s.put(&format!("{P}/MyPkg/V1.0-RC/file.bin"), b"first")
            .status,
        201
    );
    let r = s.put(&format!("{P}/mypkg/v1.0-rc/FILE.BIN"), b"second");
    assert_eq!(r.status, 409);
    assert_eq!(r.text(), "package file already exists");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "registry errors are plain text"
    );
    let r = s.get(&format!("{P}/MYPKG/v1.0-RC/File.Bin"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"first");
    assert!(
        r.header("content-disposition")
            .expect("disposition")
            .contains("filename=\"file.bin\""),
        "the first upload's casing is kept"
    );
    // the owner is case-insensitive too
    assert_eq!(
        s.get("/api/packages/ADMIN/generic/mypkg/v1.0-rc/file.bin")
            .status,
        200
    );
}

#[test]
fn several_files_per_version_and_version_delete() {
    let s = Server::start();
    for f in ["a", "b", "c"] {
        assert_eq!(
            s.put(&format!("{P}/multi/2.0/{f}"), f.as_bytes()).status,
            201
        );
    }
    assert_eq!(s.delete(&format!("{P}/multi/2.0/a")).status, 204);
    assert_eq!(s.get(&format!("{P}/multi/2.0/b")).body, b"b");
    let r = s.delete(&format!("{P}/multi/2.0/a"));
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "package file does not exist");
    assert_eq!(s.delete(&format!("{P}/multi/2.0")).status, 204);
    assert_eq!(s.get(&format!("{P}/multi/2.0/b")).status, 404);
    let r = s.delete(&format!("{P}/multi/2.0"));
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "package does not exist");
    // re-upload after the version is gone recreates it
    assert_eq!(s.put(&format!("{P}/multi/2.0/b"), b"new").status, 201);
    assert_eq!(s.get(&format!("{P}/multi/2.0/b")).body, b"new");
}

#[test]
fn validation_on_put_only() {
    let s = Server::start();
    let long = "a".repeat(256);
    let cases: &[(&str, &str)] = &[
        ("/a%20b/1/f", "invalid package name"),
        ("/./1/f", "invalid package name"),
        ("/../1/f", "invalid package name"),
        ("/-/1/f", "invalid package name"),
        ("/%C3%A9/1/f", "invalid package name"),
        ("//1/f", "invalid package name"),
        ("/p/%201/f", "invalid package version"),
        ("/p/1%20/f", "invalid package version"),
        ("/p/1%09/f", "invalid package version"),
        ("/p/%E3%80%801/f", "invalid package version"),
        ("/p//f", "invalid package version"),
        ("/p/1/a%3Fb", "invalid filename"),
        ("/p/1/%20a", "invalid filename"),
        ("/p/1/a%2Fb", "invalid filename"),
        ("/p/1/..", "invalid filename"),
        ("/p/1/a%22b", "invalid filename"),
    ];
    for (suffix, msg) in cases {
        let r = s.put(&format!("{P}{suffix}"), b"x");
        assert_eq!((r.status, r.text().as_str()), (400, *msg), "PUT {suffix}");
    }
    for (suffix, msg) in [
        (format!("/{long}/1/f"), "invalid package name"),
        (format!("/p/{long}/f"), "invalid package version"),
        (format!("/p/1/{long}"), "invalid filename"),
    ] {
        let r = s.put(&format!("{P}{suffix}"), b"x");
        assert_eq!((r.status, r.text().as_str()), (400, msg), "255-byte cap");
    }
    // valid edge cases
    for suffix in [
        "/a/1.0.3-te%20st/-",
        "/...-_+/v%2F1/x",
        "/c.d+/%E6%97%A5%E6%9C%AC/-_+=:;.()[]{}~!@#$%25^&%20aA1",
        &format!("/{}/1/f", "b".repeat(255)),
    ] {
        let r = s.put(&format!("{P}{suffix}"), b"ok");
        assert_eq!(r.status, 201, "PUT {suffix}: {}", r.text());
        assert_eq!(s.get(&format!("{P}{suffix}")).body, b"ok", "GET {suffix}");
    }
    // GET, HEAD and DELETE never answer 400: bad names just find nothing
    for (method, suffix) in [
        ("GET", "/a%20b/1/f"),
        ("HEAD", "/p/%201/f"),
        ("DELETE", "/p/1/a%3Fb"),
        ("GET", "/%zz/1/f"),
        ("DELETE", "/a%20b/1"),
    ] {
        let auth = format!("token {ADMIN_TOKEN}");
        let r = s.req(
            method,
            &format!("{P}{suffix}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 404, "{method} {suffix}");
    }
    // … and they answer what a valid name with nothing stored would: an invalid file name in
    // a version that exists is a missing file, an invalid version a missing package.
    assert_eq!(s.put(&format!("{P}/named/1/f"), b"x").status, 201);
    let auth = format!("token {ADMIN_TOKEN}");
    for (method, suffix, message) in [
        ("GET", "/named/1/a%3Fb", "package file does not exist"),
        ("DELETE", "/named/1/%20f", "package file does not exist"),
        ("GET", "/named/%201/f", "package does not exist"),
        ("DELETE", "/named/1%20/f", "package does not exist"),
        ("GET", "/na%20med/1/f", "package does not exist"),
    ] {
        let r = s.req(
            method,
            &format!("{P}{suffix}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(
            (r.status, r.text().trim()),
            (404, message),
            "{method} {suffix}"
        );
    }
}

/// One rule for a path parameter that does not decode (a bad escape, or bytes that are not
/// UTF-8): it names nothing, so the path matches no route and the registry answers its
/// "Not found." before anything else — for an upload too, and whatever the credentials.
#[test]
fn undecodable_segments_match_no_route() {
    let s = Server::start();
    let auth = format!("token {ADMIN_TOKEN}");
    for suffix in ["/%zz/1/f", "/p/%ff/f", "/p/1/%C3%28", "/p/1/f%"] {
        for (method, headers) in [
            ("PUT", vec![("Authorization", auth.as_str())]),
            ("PUT", vec![]),
            ("PUT", vec![("Authorization", "token wrong")]),
            ("GET", vec![("Authorization", "token wrong")]),
            ("DELETE", vec![]),
        ] {
            let r = s.req(method, &format!("{P}{suffix}"), &headers, b"x");
            assert_eq!(
                (r.status, r.text().as_str()),
                (404, "Not found."),
                "{method} {suffix} {headers:?}"
            );
        }
    }
    let r = s.req("DELETE", "/api/packages/%zz/generic/p/1", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (404, "Not found."));
    // Nothing was stored, and the same names spelt right work.
    assert_eq!(s.put(&format!("{P}/p/1/f"), b"x").status, 201);
}

#[test]
fn processing_order() {
    let s = Server::start();
    // an anonymous PUT with a bad name is 401, not 400
    let r = s.req("PUT", &format!("{P}/a%20b/1/f"), &[], b"x");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"shelf\""));
    // wrong credentials on a read: 401 without a challenge
    let r = s.req(
        "GET",
        &format!("{P}/p/1/f"),
        &[("Authorization", "token nope")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), "Failed to authenticate user");
    // an unknown owner is 404 even for a site admin's PUT
    let r = s.put("/api/packages/nobody/generic/p/1/f", b"x");
    assert_eq!(r.status, 404);
    // unknown routes and methods
    assert_eq!(s.get("/api/packages/admin/npm/p/1/f").status, 404);
    assert_eq!(s.get(&format!("{P}/p/1/f/extra")).status, 404);
    assert_eq!(s.get(&format!("{P}/p/1/")).status, 404);
    assert_eq!(s.get(&format!("{P}/p/1")).status, 405);
    assert_eq!(s.req("POST", &format!("{P}/p/1/f"), &[], b"").status, 405);
    // `/` is the explore page now (tests/web.rs); a path that is no page is still the
    // registry's plain-text 404.
    assert_eq!(s.get("/").status, 200);
    let r = s.get("/admin/x");
    assert_eq!((r.status, r.text().as_str()), (404, "Not found."));
}

#[test]
fn head_has_length_and_no_body() {
    let s = Server::start();
    let data = pattern(5000, 3);
    assert_eq!(s.put(&format!("{P}/h/1/f"), &data).status, 201);
    let mut c = s.connect();
    send(&mut c, "HEAD", &format!("{P}/h/1/f"), &[], b"");
    // then a GET on the same connection: if HEAD had sent a body, this would misparse
    send(&mut c, "GET", &format!("{P}/h/1/f"), &[], b"");
    let mut rd = std::io::BufReader::new(c);
    let head = read_response(&mut rd, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("5000"));
    assert_eq!(head.header("etag").map(|e| e.len()), Some(66));
    let get = read_response(&mut rd, false);
    assert_eq!(get.status, 200);
    assert_eq!(get.body, data);
    assert_eq!(
        s.req("HEAD", &format!("{P}/h/1/nope"), &[], b"").status,
        404
    );
}

#[test]
fn ranges() {
    let s = Server::start();
    let data = pattern(2_100_000, 4);
    let path = format!("{P}/r/1/f");
    assert_eq!(s.put(&path, &data).status, 201);
    let get_range = |range: &str| s.req("GET", &path, &[("Range", range)], b"");

    let r = get_range("bytes=0-9");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[..10]);
    assert_eq!(r.header("content-range"), Some("bytes 0-9/2100000"));
    assert_eq!(r.header("content-length"), Some("10"));

    // across a chunk boundary
    let r = get_range("bytes=1044470-1044499");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[1_044_470..1_044_500]);

    let r = get_range("bytes=2000000-");
    assert_eq!(r.body, &data[2_000_000..]);
    let r = get_range("bytes=-100");
    assert_eq!(r.body, &data[2_100_000 - 100..]);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 2099900-2099999/2100000")
    );

    let r = get_range("bytes=2100000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */2100000"));

    // If-Range with a stale validator: the whole file
    let r = s.req(
        "GET",
        &path,
        &[("Range", "bytes=0-9"), ("If-Range", "\"deadbeef\"")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());

    // a range on an empty file is ignored
    assert_eq!(s.put(&format!("{P}/r/1/empty"), b"").status, 201);
    let r = s.req(
        "GET",
        &format!("{P}/r/1/empty"),
        &[("Range", "bytes=0-")],
        b"",
    );
    assert_eq!(r.status, 200);

    // parallel ranged GETs (aria2c -x4)
    let quarter = data.len() / 4;
    let parts: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let range = format!("bytes={}-{}", i * quarter, (i + 1) * quarter - 1);
                let path = path.clone();
                let s = &s;
                sc.spawn(move || s.req("GET", &path, &[("Range", &range)], b"").body)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ranged GET"))
            .collect()
    });
    assert_eq!(parts.concat(), data[..4 * quarter]);
}

#[test]
fn conditional_get() {
    let s = Server::start();
    let path = format!("{P}/c/1/f");
    assert_eq!(s.put(&path, b"cached").status, 201);
    let r = s.get(&path);
    let etag = r.header("etag").expect("etag").to_string();
    let lm = r
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let r = s.req("GET", &path, &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = s.req("GET", &path, &[("If-Modified-Since", &lm)], b"");
    assert_eq!(r.status, 304);
    let r = s.req("GET", &path, &[("If-None-Match", "\"other\"")], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn content_type_of_the_upload_is_ignored() {
    let s = Server::start();
    let auth = format!("token {ADMIN_TOKEN}");
    // curl --data-binary sends this; Gitea answers 500 here, shelf stores the raw body
    let r = s.req(
        "PUT",
        &format!("{P}/ct/1/form"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"a=1&b=2",
    );
    assert_eq!(r.status, 201);
    assert_eq!(s.get(&format!("{P}/ct/1/form")).body, b"a=1&b=2");
}

#[test]
fn chunked_upload() {
    let s = Server::start();
    let auth = format!("token {ADMIN_TOKEN}");
    let data = pattern(1_500_000, 5);
    let mut body = Vec::new();
    for part in data.chunks(300_000) {
        body.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let r = s.req(
        "PUT",
        &format!("{P}/chunked/1/f"),
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
        &body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(s.get(&format!("{P}/chunked/1/f")).body == data);
}

#[test]
fn delete_with_a_json_body_keeps_the_connection_usable() {
    let s = Server::start();
    assert_eq!(s.put(&format!("{P}/d/1/f"), b"x").status, 201);
    assert_eq!(s.put(&format!("{P}/d/1/g"), b"y").status, 201);
    let auth = format!("token {ADMIN_TOKEN}");
    let mut c = s.connect();
    send(
        &mut c,
        "DELETE",
        &format!("{P}/d/1/f"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    send(&mut c, "GET", &format!("{P}/d/1/g"), &[], b"");
    let mut rd = std::io::BufReader::new(c);
    assert_eq!(read_response(&mut rd, false).status, 204);
    let r = read_response(&mut rd, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"y");
}

#[test]
fn no_redirects_anywhere() {
    let s = Server::start();
    for path in [
        "/api/packages/admin/generic/p/1/f/",
        "/api/packages/admin",
        "/api/packages/",
    ] {
        let r = s.get(path);
        assert!(!(300..400).contains(&r.status), "{path}: {}", r.status);
    }
}
