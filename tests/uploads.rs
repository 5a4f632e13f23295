//! Uploads beyond the basics: checksums the client sends are verified before anything is
//! published, deploy by checksum, and multipart/form-data bodies.

mod common;
use base64::Engine;
use common::*;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

const P: &str = "/api/packages/admin/generic";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn put_with(s: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let auth = format!("token {ADMIN_TOKEN}");
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    s.req("PUT", path, &all, body)
}

fn check_clean(s: &mut Server) -> String {
    s.stop();
    let out = s.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn client_checksums_are_verified_before_publishing() {
    let s = Server::start();
    for (i, size) in [10usize, 2_500_000].into_iter().enumerate() {
        let data = pattern(size, 80 + i as u64);
        let other = pattern(size, 90 + i as u64);
        let sha256 = hex::encode(Sha256::digest(&data));
        let sha1 = hex::encode(Sha1::digest(&data));
        let md5 = hex::encode(Md5::digest(&data));
        let content_md5 = b64(&Md5::digest(&data));
        let digest = format!(
            "sha-256=:{}:, sha-512=:{}:",
            b64(&Sha256::digest(&data)),
            b64(&Sha512::digest(&data))
        );
        let cases: Vec<(&str, String)> = vec![
            ("X-Checksum-Sha256", sha256),
            ("X-Checksum-Sha1", sha1),
            ("X-Checksum-Md5", md5),
            ("Content-MD5", content_md5),
            ("Content-Digest", digest.clone()),
            ("Repr-Digest", digest),
        ];
        for (j, (name, value)) in cases.iter().enumerate() {
            let path = format!("{P}/sum{i}/{j}/f");
            let r = put_with(&s, &path, &[(name, value)], &other);
            assert_eq!(r.status, 400, "{name} mismatch, size {size}: {}", r.text());
            assert!(r.text().contains("checksum mismatch"), "{}", r.text());
            assert_eq!(s.get(&path).status, 404, "nothing published");
            let r = put_with(&s, &path, &[(name, value)], &data);
            assert_eq!(r.status, 201, "{name} match, size {size}: {}", r.text());
            assert!(s.get(&path).body == data);
        }
    }
    // malformed or contradictory headers are 400 before the body
    for (name, value) in [
        ("X-Checksum-Sha256", "xyz"),
        ("X-Checksum-Md5", "00"),
        ("Content-MD5", "!!!"),
        ("Content-Digest", "sha-256=abc"),
    ] {
        let r = put_with(&s, &format!("{P}/bad/1/f"), &[(name, value)], b"x");
        assert_eq!(r.status, 400, "{name}: {value}");
    }
    let r = put_with(
        &s,
        &format!("{P}/bad/1/f"),
        &[
            ("X-Checksum-Sha256", &hex::encode(Sha256::digest(b"x"))),
            (
                "Content-Digest",
                &format!("sha-256=:{}:", b64(&Sha256::digest(b"y"))),
            ),
        ],
        b"x",
    );
    assert_eq!(r.status, 400, "contradicting digests");
    let mut s = s;
    let report = check_clean(&mut s);
    assert!(report.contains(" 0 pins"), "{report}");
}

#[test]
fn deploy_by_checksum_publishes_known_bytes_without_a_body() {
    let mut s = Server::start();
    // a second user, to check permissions
    s.stop();
    assert!(s.cli(&["user", "add", "bob"]).status.success());
    let out = s.cli(&["token", "create", "bob", "--name", "t"]);
    let bob = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("token")
        .to_string();
    let s = s.restart();

    let data = pattern(2_000_000, 95);
    let sha = hex::encode(Sha256::digest(&data));
    assert_eq!(s.put(&format!("{P}/orig/1/a.bin"), &data).status, 201);
    let deploy = [
        ("X-Checksum-Deploy", "true"),
        ("X-Checksum-Sha256", sha.as_str()),
    ];
    let r = put_with(&s, &format!("{P}/copy/2/b.bin"), &deploy, b"");
    assert_eq!(r.status, 201, "{}", r.text());
    let got = s.get(&format!("{P}/copy/2/b.bin"));
    assert!(got.body == data);
    assert_eq!(got.header("x-checksum-sha256"), Some(sha.as_str()));
    // again: the file exists
    assert_eq!(
        put_with(&s, &format!("{P}/copy/2/B.BIN"), &deploy, b"").status,
        409
    );
    // unknown bytes: 404, nothing created
    let unknown = hex::encode(Sha256::digest(b"never uploaded"));
    let r = put_with(
        &s,
        &format!("{P}/copy/3/c.bin"),
        &[
            ("X-Checksum-Deploy", "true"),
            ("X-Checksum-Sha256", &unknown),
        ],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(s.get(&format!("{P}/copy/3/c.bin")).status, 404);
    // no checksum given
    let r = put_with(
        &s,
        &format!("{P}/copy/3/c.bin"),
        &[("X-Checksum-Deploy", "true")],
        b"",
    );
    assert_eq!(r.status, 400);
    // bob may deploy into his own namespace (the bytes are readable) but not into admin's
    let bob_auth = format!("token {bob}");
    let bob_deploy = [
        ("Authorization", bob_auth.as_str()),
        ("X-Checksum-Deploy", "true"),
        ("X-Checksum-Sha256", sha.as_str()),
    ];
    assert_eq!(
        s.req(
            "PUT",
            "/api/packages/bob/generic/x/1/d.bin",
            &bob_deploy,
            b""
        )
        .status,
        201
    );
    assert_eq!(
        s.req("PUT", &format!("{P}/x/1/d.bin"), &bob_deploy, b"")
            .status,
        401
    );
    // deleting the original keeps the copies intact
    assert_eq!(s.delete(&format!("{P}/orig/1/a.bin")).status, 204);
    assert!(s.get(&format!("{P}/copy/2/b.bin")).body == data);
    let mut s = s;
    check_clean(&mut s);
}

fn multipart_body(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = b"preamble to ignore\r\n".to_vec();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn multipart_uploads_store_the_first_file_part() {
    let s = Server::start();
    let boundary = "------------------------d74496d66958873e";
    let ct = format!("multipart/form-data; boundary={boundary}");
    // content that looks like a delimiter but is not one
    let mut data = pattern(1_500_000, 96);
    data.extend_from_slice(format!("\r\n--{}", &boundary[..20]).as_bytes());
    data.extend_from_slice(&pattern(1000, 97));
    let body = multipart_body(
        boundary,
        &[
            ("comment", None, b"a form field first"),
            ("file", Some("app.bin"), &data),
            ("second", Some("other.bin"), b"ignored"),
        ],
    );
    let path = format!("{P}/mp/1/app.bin");
    let r = put_with(&s, &path, &[("Content-Type", &ct)], &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let got = s.get(&path);
    assert_eq!(got.body.len(), data.len());
    assert!(got.body == data);

    // malformed bodies and forms without a file part are 400, and store nothing
    let no_file = multipart_body(boundary, &[("comment", None, b"only a field")]);
    let mut truncated = multipart_body(boundary, &[("file", Some("x"), b"abc")]);
    truncated.truncate(truncated.len() - 10);
    for (label, content_type, body) in [
        ("no file part", ct.clone(), no_file),
        ("no closing delimiter", ct.clone(), truncated),
        ("raw bytes", ct.clone(), b"just bytes".to_vec()),
        (
            "no boundary",
            "multipart/form-data".to_string(),
            b"x".to_vec(),
        ),
    ] {
        let path = format!("{P}/mp/2/{}", label.replace(' ', "-"));
        let r = put_with(&s, &path, &[("Content-Type", &content_type)], &body);
        assert_eq!(r.status, 400, "{label}: {}", r.text());
        assert_eq!(s.get(&path).status, 404, "{label}");
    }
    let mut s = s;
    let report = check_clean(&mut s);
    assert!(report.contains(" 0 pins"), "{report}");
}
