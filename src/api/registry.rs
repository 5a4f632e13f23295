//! The generic registry routes (`/api/packages/{owner}/generic/…`): Gitea's order of checks
//! (GITEA-COMPAT §2), its statuses and plain-text messages, uploads (checksum verification,
//! deploy by checksum, multipart), downloads (Range, conditionals, digests, counters, the
//! `latest` alias) and deletes.

use super::error::{ApiError, Flavor};
use super::ranges::{parse_range, MultiRange, RangeSpec};
use super::routes::{FileAt, Generic};
use super::Api;
use crate::auth::{self, Access, AuthError, Caller, Denied};
use crate::chunk::{DigestMismatch, StreamDigests, Want};
use crate::dates::{http_date, parse_http_date};
use crate::http::{BodySource, Request, Response, ResponseBody};
use crate::multipart;
use crate::names::{percent_encode, PackageName, Segment, Version};
use crate::store::{self, Deleted, FileCoords, FileReader, FileRecord, Published, UserRecord};
use base64::Engine;
use std::io::{self, Read};
use std::time::{Duration, UNIX_EPOCH};

const CACHE_CONTROL: &str = "max-age=0, private, must-revalidate, no-transform";
/// The version name that, when no real version has it, means "the newest version that has
/// this file" on GET and HEAD.
const LATEST: &str = "latest";

/// A path of the registry family that matches no route (`routes::Route::NotFound`).
pub(super) fn not_found() -> Response {
    ApiError::NotFound("Not found.").render(Flavor::Text)
}

/// A registry path with a method it does not take; `allow` lists those it does.
pub(super) fn not_allowed(allow: &'static str) -> Response {
    ApiError::MethodNotAllowed(allow).render(Flavor::Text)
}

pub(super) fn handle(
    api: &Api,
    req: &mut Request,
    route: Generic,
    query: &str,
    who: &mut Option<String>,
) -> Response {
    match dispatch(api, req, route, query, who) {
        Ok(r) => r,
        Err(e) => e.render(Flavor::Text),
    }
}

/// Steps 2–5 of GITEA-COMPAT §2 for a route the table matched (step 1), then the handler.
fn dispatch(
    api: &Api,
    req: &mut Request,
    route: Generic,
    query: &str,
    who: &mut Option<String>,
) -> Result<Response, ApiError> {
    // 2. credentials: present but wrong is 401 even for a public read
    let caller = match api.caller(req, query) {
        Ok(c) => c,
        Err(AuthError::Invalid) => return Err(ApiError::BadCredentials),
        Err(AuthError::Throttled(t)) => return Err(ApiError::Throttled(t.retry_after)),
        Err(AuthError::Store(e)) => return Err(e.into()),
    };
    *who = caller.as_ref().map(|c| c.user.login.clone());
    // 3. owner
    let owner = api
        .store
        .get_user(route.owner())?
        .ok_or(ApiError::NotFound("Not found."))?;
    // 4. read access, 5. write access (token scopes and limits, visibility, roles)
    let action = match &route {
        Generic::Download(_) => None,
        Generic::Upload(_) => Some("package.publish"),
        Generic::DeleteFile(_) => Some("package.delete_file"),
        Generic::DeleteVersion { .. } => Some("package.delete_version"),
    };
    let access = if action.is_some() {
        Access::Write
    } else {
        Access::Read
    };
    let actor = caller
        .as_ref()
        .map(|c| c.user.login.clone())
        .unwrap_or_default();
    let denied = match auth::package_access(
        &api.store,
        caller.as_ref(),
        &owner,
        Some(route.name().raw()),
        access,
    )? {
        Ok(()) => None,
        Err(Denied::PublicOnly) => Some(ApiError::PublicOnly),
        // Gitea's one text for all of them (a client sees no limit the token has).
        Err(Denied::NoPermission | Denied::Scope | Denied::OwnerLimit | Denied::PackageLimit) => {
            Some(ApiError::NoPermission)
        }
    };
    if let Some(e) = denied {
        // Refused writes are audited, collapsed per address and minute, with the package name
        // only when it is valid (Gitea validates names after the permission check, so an
        // anonymous PUT with any path gets here); refused reads are not audited.
        if let Some(action) = action {
            let target = route.name().audit();
            api.audit_refusal(req, &actor, action, &owner.login, &target, "refused");
        }
        return Err(e);
    }
    let (result, target) = match route {
        Generic::Download(at) => {
            // GET and HEAD never refuse a name: an invalid one simply finds nothing.
            let at = existing(api, &owner.login, &at)?;
            return download(api, req, at);
        }
        Generic::Upload(at) => {
            let target = audit_file_target(&at);
            (upload(api, req, &owner, caller.as_ref(), at), target)
        }
        Generic::DeleteFile(at) => {
            // Nor does DELETE.
            let target = audit_file_target(&at);
            let r = existing(api, &owner.login, &at).and_then(|at| delete_file(api, &at));
            (r, target)
        }
        Generic::DeleteVersion { name, version, .. } => {
            let r = match api
                .store
                .delete_version(&owner.login, name.raw(), version.raw())?
            {
                Deleted::Done => Ok(Response::new(204)),
                _ => Err(ApiError::NotFound("package does not exist")),
            };
            (r, audit_version_target(&name, &version))
        }
    };
    let action = action.unwrap_or_default();
    api.audit(req, &actor, action, &owner.login, &target, outcome(&result));
    result
}

/// `name/version` as the audit log records it: each part as it is when valid, else a short
/// marker (`names::audit_text`), so the entry stays small whatever the path held.
fn audit_version_target(name: &Segment<PackageName>, version: &Segment<Version>) -> String {
    format!("{}/{}", name.audit(), version.audit())
}

/// `name/version/file` as the audit log records it (see `audit_version_target`).
fn audit_file_target(at: &FileAt) -> String {
    format!(
        "{}/{}",
        audit_version_target(&at.name, &at.version),
        at.file.audit()
    )
}

/// The audit outcome of a registry operation.
fn outcome(r: &Result<Response, ApiError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(ApiError::FileExists) => "conflict",
        Err(ApiError::NotFound(_)) => "not found",
        Err(ApiError::TooLarge) => "too large",
        Err(ApiError::Quota(_)) => "quota exceeded",
        Err(ApiError::Internal(_)) => "error",
        Err(_) => "refused",
    }
}

fn upload(
    api: &Api,
    req: &mut Request,
    owner: &UserRecord,
    caller: Option<&Caller>,
    path: FileAt,
) -> Result<Response, ApiError> {
    // 6. validation, in Gitea's order: name, version, file name
    let name = path.name.valid().ok_or(ApiError::InvalidName)?;
    let version = path.version.valid().ok_or(ApiError::InvalidVersion)?;
    let file = path.file.valid().ok_or(ApiError::InvalidFileName)?;
    let at = FileCoords::new(&owner.login, name, version, file);
    let expected = Expected::from_request(req).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let content_type = req.headers.get("content-type").unwrap_or("").to_string();
    let multipart = is_multipart_form(&content_type);
    let up = Upload::allowed(api, req, caller, at, expected, multipart)?;
    let published = if is_checksum_deploy(req) {
        up.deploy_by_checksum()?
    } else if multipart {
        up.receive_form(req, &content_type)?
    } else {
        up.receive(req)?
    };
    match published {
        Published::Created => Ok(Response::new(201)),
        Published::Conflict => Err(ApiError::FileExists),
        Published::UnknownContent if up.deploy => {
            Err(ApiError::NotFound("no stored file has this checksum"))
        }
        Published::UnknownContent => Err(ApiError::Internal("upload without content".into())),
    }
}

/// One upload that passed the checks known before its body.
struct Upload<'a> {
    api: &'a Api,
    caller: Option<&'a Caller>,
    at: FileCoords,
    expected: Expected,
    quota: store::QuotaCheck,
    /// The file size limit, unless the caller is exempt.
    limit: Option<u64>,
    /// What the owner has left of its byte quota, unless the caller is exempt.
    quota_left: Option<u64>,
    /// Deploy by checksum (`X-Checksum-Deploy: true`): no body.
    deploy: bool,
}

impl<'a> Upload<'a> {
    /// Refusals that are known before the body go out before it (and before any
    /// `100 Continue`), in Gitea's order: the version count, a declared size over the file
    /// size limit or the owner's remaining bytes, then an existing file. The publishing
    /// commit checks the quotas again, atomically.
    fn allowed(
        api: &'a Api,
        req: &Request,
        caller: Option<&'a Caller>,
        at: FileCoords,
        expected: Expected,
        multipart: bool,
    ) -> Result<Upload<'a>, ApiError> {
        let quota = quota_check(api, caller);
        let (limits, usage) = match api.store.owner_quota(&at.owner)? {
            Some(q) => (quota.defaults.with(&q.overrides), q.usage),
            None => (quota.defaults, store::Usage::default()),
        };
        let limit = limits.max_file_size.filter(|_| !quota.exempt);
        if !quota.exempt
            && limits
                .max_versions
                .is_some_and(|max| usage.versions.saturating_add(1) > max)
            && !api.store.version_exists(&at.owner, &at.name, &at.version)?
        {
            return Err(ApiError::Quota(store::QuotaExceeded::Count));
        }
        if let (Some(declared), false) = (req.body.content_length(), multipart) {
            if limit.is_some_and(|max| declared > max) {
                return Err(ApiError::TooLarge);
            }
            if !quota.exempt
                && limits
                    .max_bytes
                    .is_some_and(|max| usage.bytes.saturating_add(declared) > max)
            {
                return Err(ApiError::Quota(store::QuotaExceeded::Total));
            }
        }
        let quota_left = limits
            .max_bytes
            .filter(|_| !quota.exempt)
            .map(|max| max.saturating_sub(usage.bytes));
        if api.store.file_exists(&at)? {
            return Err(ApiError::FileExists);
        }
        Ok(Upload {
            api,
            caller,
            at,
            expected,
            quota,
            limit,
            quota_left,
            deploy: is_checksum_deploy(req),
        })
    }

    fn creator(&self) -> &str {
        self.caller.map(|c| c.user.login.as_str()).unwrap_or("")
    }

    /// Publishes content the store already holds, named by the sha256 the request sent, to a
    /// caller who may read some file that has it.
    fn deploy_by_checksum(&self) -> Result<Published, ApiError> {
        let api = self.api;
        let expected = &self.expected;
        let sha256 = expected.sha256.ok_or_else(|| {
            ApiError::BadRequest("X-Checksum-Deploy needs X-Checksum-Sha256".into())
        })?;
        let who = self.caller.cloned();
        let store = std::sync::Arc::clone(&api.store);
        let readable = move |owner: &str| auth::may_read_owner_name(&store, who.as_ref(), owner);
        // The same checks as a PUT with a body: the size limit, and every digest sent.
        let limit = self.limit;
        let check = |size: u64| -> Result<(), store::Error> {
            if limit.is_some_and(|max| size > max) {
                return Err(store::Error::Quota(store::QuotaExceeded::FileSize));
            }
            let want = expected.want();
            if want.any() {
                let d = api
                    .store
                    .ensure_digests(&sha256)?
                    .ok_or_else(|| store::Error::Rejected("the stored file went away".into()))?;
                let got = StreamDigests {
                    size,
                    sha256,
                    md5: hex::decode(&d.md5).ok().and_then(|b| b.try_into().ok()),
                    sha1: hex::decode(&d.sha1).ok().and_then(|b| b.try_into().ok()),
                    sha512: hex::decode(&d.sha512).ok(),
                };
                expected
                    .verify(&got)
                    .map_err(|e| store::Error::Rejected(e.to_string()))?;
            }
            Ok(())
        };
        Ok(api.store.publish_existing_within(
            &self.at,
            self.creator(),
            sha256,
            readable,
            check,
            Some(self.quota),
        )?)
    }

    /// 7–8. the body, then the publishing commit, which decides a racing 409 for good.
    fn receive(&self, req: &mut Request) -> Result<Published, ApiError> {
        let mut body = LimitedBody::new(&mut req.body, self.limit, self.quota_left);
        let stored = self.store(&mut body);
        match (stored, body.refusal()) {
            (Ok(p), _) => Ok(p),
            (Err(_), Some(refused)) => Err(refused),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// As `receive`, for the first file part of a multipart form: the limits apply to the
    /// file part, not to the form around it.
    fn receive_form(&self, req: &mut Request, content_type: &str) -> Result<Published, ApiError> {
        let boundary = multipart::boundary(content_type).ok_or_else(|| {
            ApiError::BadRequest("multipart/form-data without a valid boundary".into())
        })?;
        let mut part = multipart::FirstFilePart::new(&mut req.body, &boundary);
        part.open().map_err(multipart_error)?;
        self.receive_part(&mut part)
    }

    /// As `receive_form`, for a file part already opened (the pages' upload form).
    fn receive_part<R: Read>(
        &self,
        part: &mut multipart::FirstFilePart<R>,
    ) -> Result<Published, ApiError> {
        let mut body = LimitedBody::new(part, self.limit, self.quota_left);
        let stored = self.store(&mut body);
        match (stored, body.refusal()) {
            (Ok(p), _) => Ok(p),
            (Err(_), Some(refused)) => Err(refused),
            (Err(store::Error::Body(io)), None) => Err(multipart_error(io)),
            (Err(e), None) => Err(e.into()),
        }
    }

    fn store(&self, body: impl Read) -> Result<Published, store::Error> {
        self.api.store.upload_within(
            &self.at,
            self.creator(),
            body,
            self.expected.want(),
            |d| self.expected.verify(d),
            Some(self.quota),
        )
    }
}

/// The pages' upload form (`web/`): the file part of a form already opened, published to `at`
/// for a signed-in `caller` with the registry's own checks, in its order: write permission,
/// the names, the version count, an existing file, then the body under the size limit and the
/// owner's quota, and the publishing commit. Audited as `package.publish`, as the API's PUT.
pub(super) fn upload_from_form<R: Read>(
    api: &Api,
    req: &Request,
    caller: &Caller,
    owner: &UserRecord,
    (name, version, file): (&str, &str, &str),
    part: &mut multipart::FirstFilePart<R>,
) -> Result<Response, ApiError> {
    let target = format!("{name}/{version}/{file}");
    let actor = caller.user.login.clone();
    match auth::package_access(&api.store, Some(caller), owner, Some(name), Access::Write)? {
        Ok(()) => {}
        Err(_) => {
            api.audit_refusal(
                req,
                &actor,
                "package.publish",
                &owner.login,
                &target,
                "refused",
            );
            return Err(ApiError::NoPermission);
        }
    }
    let result = (|| {
        let name = PackageName::parse(name).ok_or(ApiError::InvalidName)?;
        let version = Version::parse(version).ok_or(ApiError::InvalidVersion)?;
        let file = crate::names::FileName::parse(file).ok_or(ApiError::InvalidFileName)?;
        let at = FileCoords::new(&owner.login, &name, &version, &file);
        let up = Upload::allowed(api, req, Some(caller), at, Expected::default(), true)?;
        match up.receive_part(part)? {
            Published::Created => Ok(Response::new(201)),
            Published::Conflict => Err(ApiError::FileExists),
            Published::UnknownContent => Err(ApiError::Internal("upload without content".into())),
        }
    })();
    api.audit(
        req,
        &actor,
        "package.publish",
        &owner.login,
        &target,
        outcome(&result),
    );
    result
}

/// The server's default limits (`--max-file-size` and the owner quotas) and whether the caller
/// is exempt from the owner quotas (site admins, as in Gitea).
fn quota_check(api: &Api, caller: Option<&Caller>) -> store::QuotaCheck {
    let d = api.store.quota_defaults();
    store::QuotaCheck {
        defaults: store::Limits {
            max_file_size: d.max_file_size.or(api.config.max_file_size),
            ..d
        },
        exempt: caller.is_some_and(|c| c.user.is_admin),
    }
}

fn is_multipart_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// A multipart body that could not be read: malformed (400 saying so) or cut short.
fn multipart_error(e: io::Error) -> ApiError {
    if e.kind() == io::ErrorKind::InvalidData {
        ApiError::BadRequest(format!("invalid multipart body: {e}"))
    } else {
        ApiError::BadBody(e)
    }
}

fn is_checksum_deploy(req: &Request) -> bool {
    req.header("x-checksum-deploy")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Digests a client sent with an upload, to be verified before anything is published
/// (`X-Checksum-Sha256`/`-Sha1`/`-Md5`, `Content-MD5`, `Content-Digest`/`Repr-Digest`).
#[derive(Default, Debug)]
struct Expected {
    sha256: Option<[u8; 32]>,
    sha1: Option<[u8; 20]>,
    md5: Option<[u8; 16]>,
    sha512: Option<Vec<u8>>,
}

/// Why the digest headers of an upload were refused (400); its text is the message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DigestError {
    NotHex {
        header: &'static str,
        digits: usize,
    },
    Md5NotBase64,
    /// A `Content-Digest`/`Repr-Digest` member without `=`.
    NoValue {
        header: &'static str,
        member: String,
    },
    NotByteSequence {
        header: &'static str,
        alg: String,
    },
    NotBase64 {
        header: &'static str,
        alg: String,
    },
    Length {
        header: &'static str,
        alg: &'static str,
        bytes: usize,
    },
    Contradicts {
        header: &'static str,
    },
}

impl std::fmt::Display for DigestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DigestError::NotHex { header, digits } => {
                write!(f, "{header} is not {digits} hex digits")
            }
            DigestError::Md5NotBase64 => f.write_str("Content-MD5 is not the base64 of 16 bytes"),
            DigestError::NoValue { header, member } => {
                write!(f, "{header}: member {member:?} has no value")
            }
            DigestError::NotByteSequence { header, alg } => {
                write!(f, "{header}: {alg} is not a :byte sequence:")
            }
            DigestError::NotBase64 { header, alg } => write!(f, "{header}: {alg} is not base64"),
            DigestError::Length { header, alg, bytes } => {
                write!(f, "{header}: {alg} is not {bytes} bytes")
            }
            DigestError::Contradicts { header } => {
                write!(f, "{header} contradicts another digest")
            }
        }
    }
}

impl Expected {
    fn from_request(req: &Request) -> Result<Expected, DigestError> {
        let mut e = Expected::default();
        fn hex_header<const N: usize>(
            req: &Request,
            header: &'static str,
            slot: &mut Option<[u8; N]>,
        ) -> Result<(), DigestError> {
            if let Some(v) = req.header(header) {
                let bytes = hex::decode(v.trim())
                    .ok()
                    .and_then(|b| <[u8; N]>::try_from(b).ok())
                    .ok_or(DigestError::NotHex {
                        header,
                        digits: N * 2,
                    })?;
                merge(slot, bytes, header)?;
            }
            Ok(())
        }
        hex_header(req, "x-checksum-sha256", &mut e.sha256)?;
        hex_header(req, "x-checksum-sha1", &mut e.sha1)?;
        hex_header(req, "x-checksum-md5", &mut e.md5)?;
        if let Some(v) = req.header("content-md5") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or(DigestError::Md5NotBase64)?;
            merge(&mut e.md5, bytes, "Content-MD5")?;
        }
        for header in ["content-digest", "repr-digest"] {
            if let Some(v) = req.header(header) {
                for (alg, bytes) in parse_digest_fields(header, v)? {
                    match alg.as_str() {
                        "sha-256" => {
                            let b =
                                <[u8; 32]>::try_from(bytes).map_err(|_| DigestError::Length {
                                    header,
                                    alg: "sha-256",
                                    bytes: 32,
                                })?;
                            merge(&mut e.sha256, b, header)?;
                        }
                        "sha-512" => {
                            if bytes.len() != 64 {
                                return Err(DigestError::Length {
                                    header,
                                    alg: "sha-512",
                                    bytes: 64,
                                });
                            }
                            if e.sha512.as_ref().is_some_and(|s| *s != bytes) {
                                return Err(DigestError::Contradicts { header });
                            }
                            e.sha512 = Some(bytes);
                        }
                        // RFC 9530: digests a recipient does not support are ignored.
                        _ => {}
                    }
                }
            }
        }
        Ok(e)
    }

    fn want(&self) -> Want {
        Want {
            md5: self.md5.is_some(),
            sha1: self.sha1.is_some(),
            sha512: self.sha512.is_some(),
        }
    }

    fn verify(&self, got: &StreamDigests) -> Result<(), DigestMismatch> {
        fn check(
            algorithm: &'static str,
            want: Option<&[u8]>,
            got: Option<&[u8]>,
        ) -> Result<(), DigestMismatch> {
            match (want, got) {
                (Some(w), Some(g)) if w != g => Err(DigestMismatch {
                    algorithm,
                    expected: w.to_vec(),
                    got: g.to_vec(),
                }),
                _ => Ok(()),
            }
        }
        check(
            "sha256",
            self.sha256.as_ref().map(|a| &a[..]),
            Some(&got.sha256),
        )?;
        check(
            "sha1",
            self.sha1.as_ref().map(|a| &a[..]),
            got.sha1.as_ref().map(|a| &a[..]),
        )?;
        check(
            "md5",
            self.md5.as_ref().map(|a| &a[..]),
            got.md5.as_ref().map(|a| &a[..]),
        )?;
        check("sha512", self.sha512.as_deref(), got.sha512.as_deref())
    }
}

fn merge<const N: usize>(
    slot: &mut Option<[u8; N]>,
    value: [u8; N],
    header: &'static str,
) -> Result<(), DigestError> {
    match slot {
        Some(existing) if *existing != value => Err(DigestError::Contradicts { header }),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// RFC 9530 `Content-Digest`/`Repr-Digest`: a structured-field dictionary of
/// `algorithm=:base64:` members.
fn parse_digest_fields(
    header: &'static str,
    v: &str,
) -> Result<Vec<(String, Vec<u8>)>, DigestError> {
    let mut out = Vec::new();
    for member in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (alg, value) = member.split_once('=').ok_or_else(|| DigestError::NoValue {
            header,
            member: member.to_string(),
        })?;
        let value = value.trim();
        let b64 = value
            .strip_prefix(':')
            .and_then(|v| v.strip_suffix(':'))
            .ok_or_else(|| DigestError::NotByteSequence {
                header,
                alg: alg.to_string(),
            })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| DigestError::NotBase64 {
                header,
                alg: alg.to_string(),
            })?;
        out.push((alg.trim().to_ascii_lowercase(), bytes));
    }
    Ok(out)
}

/// The stored file a read or a delete names. A path with an invalid name finds nothing: it
/// answers the 404 a valid name with no file would (`missing`), as Gitea, which looks it up.
fn existing(api: &Api, owner: &str, at: &FileAt) -> Result<FileCoords, ApiError> {
    match (at.name.valid(), at.version.valid(), at.file.valid()) {
        (Some(name), Some(version), Some(file)) => Ok(FileCoords::new(owner, name, version, file)),
        _ => Err(missing(api, owner, at.name.raw(), at.version.raw())?),
    }
}

/// The 404 for a file that is not there: Gitea's message tells a missing version from a
/// missing file.
fn missing(api: &Api, owner: &str, name: &str, version: &str) -> Result<ApiError, ApiError> {
    Ok(if api.store.version_exists(owner, name, version)? {
        ApiError::NotFound("package file does not exist")
    } else {
        ApiError::NotFound("package does not exist")
    })
}

fn delete_file(api: &Api, at: &FileCoords) -> Result<Response, ApiError> {
    match api.store.delete_file(at)? {
        Deleted::Done => Ok(Response::new(204)),
        Deleted::NoVersion => Err(ApiError::NotFound("package does not exist")),
        Deleted::NoFile => Err(ApiError::NotFound("package file does not exist")),
    }
}

fn download(api: &Api, req: &Request, mut at: FileCoords) -> Result<Response, ApiError> {
    let mut opened = api.store.open_file(&at)?;
    if opened.is_none()
        && at.version.eq_ignore_ascii_case(LATEST)
        && !api.store.version_exists(&at.owner, &at.name, LATEST)?
    {
        // No real version is called `latest`: the newest version that has this file.
        if let Some(v) = api
            .store
            .latest_version_with_file(&at.owner, &at.name, &at.file)?
        {
            at.version = v;
            opened = api.store.open_file(&at)?;
        }
    }
    let Some((rec, reader)) = opened else {
        return Err(missing(api, &at.owner, &at.name, &at.version)?);
    };
    let etag = format!("\"{}\"", hex::encode(rec.sha256));
    let modified = UNIX_EPOCH + Duration::from_secs(rec.created);
    let base = file_headers(&rec, &etag, &http_date(modified));

    // Conditional requests, in the order of RFC 9110 §13.2.2 (as Go's ServeContent).
    if let Some(im) = req.header("if-match") {
        if !etag_list_matches(im, &etag) {
            return Ok(with_headers(Response::new(412), &base));
        }
    } else if let Some(t) = req.header("if-unmodified-since").and_then(parse_http_date) {
        if modified > t {
            return Ok(with_headers(Response::new(412), &base));
        }
    }
    if let Some(inm) = req.header("if-none-match") {
        if etag_list_matches(inm, &etag) {
            return Ok(with_headers(Response::new(304), &base));
        }
    } else if let Some(t) = req.header("if-modified-since").and_then(parse_http_date) {
        if modified <= t {
            return Ok(with_headers(Response::new(304), &base));
        }
    }

    let range_applies = match req.header("if-range") {
        None => true,
        Some(v) if v.trim_start().starts_with('"') || v.trim_start().starts_with("W/") => {
            v.trim() == etag
        }
        Some(v) => parse_http_date(v) == Some(modified),
    };
    let range = match req.header("range") {
        Some(r) if range_applies && rec.size > 0 => parse_range(r, rec.size),
        _ => RangeSpec::Whole,
    };
    let resp = match range {
        RangeSpec::Whole => {
            let mut resp = with_headers(Response::new(200), &base);
            resp.body = ResponseBody::Source {
                len: rec.size,
                source: Box::new(Download(reader)),
            };
            resp
        }
        RangeSpec::Parts(parts) if parts.len() == 1 => {
            let (start, end) = parts[0];
            let mut resp = with_headers(Response::new(206), &base).with_header(
                "Content-Range",
                format!("bytes {}-{}/{}", start, end - 1, rec.size),
            );
            resp.body = ResponseBody::Source {
                len: end - start,
                source: Box::new(Download(reader.with_range(start, end))),
            };
            resp
        }
        RangeSpec::Parts(parts) => {
            let boundary = store::new_token().map_err(|e| ApiError::Internal(e.to_string()))?;
            let body = MultiRange::new(reader, &parts, &boundary);
            let mut headers: Vec<(String, String)> = base
                .iter()
                .filter(|(k, _)| k != "Content-Type")
                .cloned()
                .collect();
            headers.push((
                "Content-Type".into(),
                format!("multipart/byteranges; boundary={boundary}"),
            ));
            let mut resp = with_headers(Response::new(206), &headers);
            resp.body = ResponseBody::Source {
                len: body.len(),
                source: Box::new(body),
            };
            resp
        }
        RangeSpec::Unsatisfiable => {
            return Ok(Response::text(416, "invalid range")
                .with_header("Content-Range", format!("bytes */{}", rec.size)))
        }
    };
    if req.method == "GET" {
        // HEAD does not count, as Gitea.
        api.store.count_download(&at);
    }
    Ok(resp)
}

/// A file download, lent to the HTTP layer page by page.
struct Download(FileReader);

impl BodySource for Download {
    fn next_slice(&mut self) -> io::Result<&[u8]> {
        self.0.next_slice()
    }
}

fn file_headers(rec: &FileRecord, etag: &str, last_modified: &str) -> Vec<(String, String)> {
    let sha_b64 = base64::engine::general_purpose::STANDARD.encode(rec.sha256);
    let pairs = [
        ("Content-Type", "application/octet-stream".to_string()),
        ("Accept-Ranges", "bytes".to_string()),
        ("Last-Modified", last_modified.to_string()),
        ("ETag", etag.to_string()),
        ("X-Checksum-Sha256", hex::encode(rec.sha256)),
        ("Repr-Digest", format!("sha-256=:{sha_b64}:")),
        (
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}\"; filename*=UTF-8''{}",
                rec.name,
                percent_encode(&rec.name)
            ),
        ),
        (
            "Access-Control-Expose-Headers",
            "Content-Disposition".to_string(),
        ),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Cache-Control", CACHE_CONTROL.to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn with_headers(mut resp: Response, headers: &[(String, String)]) -> Response {
    resp.headers.extend(headers.iter().cloned());
    resp
}

/// Whether an `If-Match`/`If-None-Match` list names our (strong) ETag; `*` matches any file.
fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

// ---------------------------------------------------------------------------------------------
// Upload size limit

/// Counts body bytes against the file size limit, then against what the owner had left of its
/// byte quota (so a chunked body cannot fill the disk before the publish refuses it); exceeding
/// either is a read error, never a short file, and the reader remembers which limit it was
/// (`refusal`), so the answer is the limit's 403 and not a bad body. The publishing commit
/// still decides for good.
struct LimitedBody<'a, R> {
    inner: &'a mut R,
    left: Option<u64>,
    quota_left: Option<u64>,
    exceeded: Option<Exceeded>,
}

#[derive(Clone, Copy, Debug)]
enum Exceeded {
    FileSize,
    Quota,
}

impl<'a, R: Read> LimitedBody<'a, R> {
    fn new(inner: &'a mut R, left: Option<u64>, quota_left: Option<u64>) -> Self {
        LimitedBody {
            inner,
            left,
            quota_left,
            exceeded: None,
        }
    }

    /// The refusal, when the body stopped because it outgrew a limit.
    fn refusal(&self) -> Option<ApiError> {
        self.exceeded.map(|e| match e {
            Exceeded::FileSize => ApiError::TooLarge,
            Exceeded::Quota => ApiError::Quota(store::QuotaExceeded::Total),
        })
    }

    fn stop(&mut self, why: Exceeded) -> io::Error {
        self.exceeded = Some(why);
        io::Error::other(match why {
            Exceeded::FileSize => "upload larger than the configured maximum file size",
            Exceeded::Quota => "upload larger than what is left of the owner's quota",
        })
    }
}

impl<R: Read> Read for LimitedBody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(why) = self.exceeded {
            return Err(self.stop(why));
        }
        let n = self.inner.read(buf)?;
        if let Some(left) = &mut self.left {
            if n as u64 > *left {
                return Err(self.stop(Exceeded::FileSize));
            }
            *left -= n as u64;
        }
        if let Some(left) = &mut self.quota_left {
            if n as u64 > *left {
                return Err(self.stop(Exceeded::Quota));
            }
            *left -= n as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_fields() {
        let h = "content-digest";
        let f = parse_digest_fields(
            h,
            "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:, md5=:AA==:",
        )
        .expect("parse");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, "sha-256");
        assert_eq!(
            hex::encode(&f[0].1),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            parse_digest_fields(h, "sha-256=abc").map_err(|e| e.to_string()),
            Err("content-digest: sha-256 is not a :byte sequence:".to_string())
        );
        assert_eq!(
            parse_digest_fields(h, "sha-256=:!!:").map_err(|e| e.to_string()),
            Err("content-digest: sha-256 is not base64".to_string())
        );
        assert_eq!(
            parse_digest_fields(h, "sha-256").map_err(|e| e.to_string()),
            Err("content-digest: member \"sha-256\" has no value".to_string())
        );
    }

    #[test]
    fn etag_lists() {
        assert!(etag_list_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_list_matches("*", "\"b\""));
        assert!(etag_list_matches("W/\"b\"", "\"b\""));
        assert!(!etag_list_matches("\"c\"", "\"b\""));
    }
}
