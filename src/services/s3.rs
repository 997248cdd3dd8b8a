//! The emulated S3 REST API: ListBuckets, ListObjectsV2, HeadBucket,
//! GetBucketLocation, GetObject, HeadObject, PutObject and DeleteObject,
//! path-style and virtual-hosted-style, with S3's XML errors.
//!
//! Authentication: a SigV4 `Authorization` header (or presigned query) makes
//! the request "signed by the lab's IAM user"; the signature is not checked,
//! so any access key works, as in a lab. Authorization is the bucket policy
//! alone (see [`crate::topology::policy`]). Hand-written rather than built on an S3
//! server crate because those verify every signature against a known secret,
//! and this server must tag each request with the path it arrived by
//! (endpoint link or internet link), which only the listener knows.
//!
//! Owns: the API's semantics, the buckets' objects and the access log records. Must not
//! touch: sockets and listeners (`services/mod.rs` binds them, one per path).

use crate::topology::policy::{Decision, Policy, RequestContext};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// Largest object a lab stores (objects live in memory).
const MAX_OBJECT: usize = 64 << 20;
/// S3's limit on a key: 1,024 bytes of UTF-8.
const MAX_KEY: usize = 1024;
/// A client that sends nothing of its request body for this long gets
/// `RequestTimeout`, as S3 answers a socket "not read from or written to
/// within the timeout period".
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// How a request reached S3: what its condition keys are made of.
#[derive(Debug, Clone)]
pub enum Via {
    /// Over the internet (directly, through the IGW or a NAT gateway):
    /// the source is a public address.
    Internet,
    /// Through a gateway endpoint: the source is a private address.
    Endpoint { id: String, vpc_id: String },
}

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    etag: String,
    modified: SystemTime,
    content_type: String,
}

struct Bucket {
    policy: Option<Policy>,
    objects: BTreeMap<String, Object>,
}

impl Bucket {
    /// A bucket as its plan describes it: its policy, its seed files.
    fn from_plan(b: &crate::topology::plan::BucketPlan) -> Result<Bucket, S3Error> {
        let policy = b
            .policy
            .as_deref()
            .map(|p| Policy::parse(p, &b.name))
            .transpose()
            .map_err(|message| S3Error::Policy {
                bucket: b.name.clone(),
                message,
            })?;
        let mut objects = BTreeMap::new();
        if let Some(dir) = &b.seed_dir {
            load_dir(dir, dir, &mut objects).map_err(|(path, source)| S3Error::Seed {
                bucket: b.name.clone(),
                path,
                source,
            })?;
        }
        Ok(Bucket { policy, objects })
    }
}

pub struct S3 {
    region: String,
    buckets: Mutex<BTreeMap<String, Bucket>>,
    /// S3 server access log (one line per request; see README).
    log: Mutex<crate::logfile::CappedLog>,
}

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("bucket {bucket}: reading {path}: {source}")]
    Seed {
        bucket: String,
        path: String,
        source: std::io::Error,
    },
    #[error("bucket {bucket}: policy: {message}")]
    Policy { bucket: String, message: String },
    #[error("access log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
}

impl S3 {
    pub fn new(lab: &crate::topology::plan::Lab, log: &Path) -> Result<S3, S3Error> {
        let mut buckets = BTreeMap::new();
        for b in lab.s3.iter().flat_map(|s| &s.buckets) {
            buckets.insert(b.name.clone(), Bucket::from_plan(b)?);
        }
        let file = crate::logfile::CappedLog::open(log).map_err(|source| S3Error::Log {
            path: log.display().to_string(),
            source,
        })?;
        Ok(S3 {
            region: lab.region.clone(),
            buckets: Mutex::new(buckets),
            log: Mutex::new(file),
        })
    }

    /// The lab changed (`apply`): new buckets are created and seeded,
    /// removed ones deleted, policies replaced; objects of buckets that stay
    /// are kept, and seed files they lack are uploaded.
    pub fn update(&self, lab: &crate::topology::plan::Lab) -> Result<(), S3Error> {
        let wanted: Vec<&crate::topology::plan::BucketPlan> =
            lab.s3.iter().flat_map(|s| &s.buckets).collect();
        // Everything is read and checked before the first bucket changes.
        let next = wanted
            .iter()
            .map(|b| Ok((b.name.clone(), Bucket::from_plan(b)?)))
            .collect::<Result<Vec<_>, S3Error>>()?;
        let mut buckets = self.buckets.lock().expect("buckets lock");
        buckets.retain(|name, _| wanted.iter().any(|b| &b.name == name));
        for (name, seeded) in next {
            let bucket = buckets.entry(name).or_insert_with(|| Bucket {
                policy: None,
                objects: BTreeMap::new(),
            });
            bucket.policy = seeded.policy;
            for (key, object) in seeded.objects {
                bucket.objects.entry(key).or_insert(object);
            }
        }
        Ok(())
    }

    /// Serves one request that arrived `via` a link from `peer`.
    pub async fn handle(
        &self,
        via: &Via,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let request_id = format!("{:016X}", rand::random::<u64>());
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let target = req.uri().to_string();
        let agent = header(&req, "user-agent").unwrap_or("-").to_string();
        let (op, bucket, key, out) = self.route(via, peer, req).await;
        let (status, code) = (out.status, out.code);
        let resp = out.into_response(&request_id);
        let sent = resp.body().size_hint().exact().unwrap_or(0);
        let line = format!(
            "{owner} {bucket} [{time}] {ip} {requester} {request_id} {op} {key} \"{target}\" {code} {err} {sent} \"{agent}\" {host} {vpce}\n",
            owner = "vpcsim",
            bucket = bucket.as_deref().map_or("-".into(), log_encode),
            time = log_time(SystemTime::now()),
            ip = peer.ip(),
            requester = if status == StatusCode::FORBIDDEN { "-" } else { "lab" },
            key = if key.is_empty() { "-".into() } else { log_encode(&key) },
            target = log_quote(&target),
            agent = log_quote(&agent),
            host = if host.is_empty() { "-".into() } else { log_encode(&host) },
            code = status.as_u16(),
            err = code.unwrap_or("-"),
            vpce = match via {
                Via::Endpoint { id, .. } => id.as_str(),
                Via::Internet => "-",
            },
        );
        if let Ok(mut f) = self.log.lock() {
            let _ = f.write_all(line.as_bytes());
        }
        Ok(resp)
    }

    async fn route(
        &self,
        via: &Via,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> (&'static str, Option<String>, String, Outcome) {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let host = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        let path = percent_encoding::percent_decode_str(req.uri().path())
            .decode_utf8_lossy()
            .into_owned();
        let path = path.trim_start_matches('/');
        let (bucket, key) = match self.virtual_host_bucket(&host) {
            Some(b) => (Some(b), path.to_string()),
            None => match path.split_once('/') {
                Some((b, k)) => (Some(b.to_string()), k.to_string()),
                None if path.is_empty() => (None, String::new()),
                None => (Some(path.to_string()), String::new()),
            },
        };
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let signed = req.headers().contains_key(hyper::header::AUTHORIZATION)
            || query.contains_key("X-Amz-Credential");
        let ctx = Requester {
            via,
            peer: peer.ip(),
            signed,
        };
        let method = req.method().clone();
        let Some(b) = bucket.clone() else {
            let out = match method {
                Method::GET => self.list_buckets(&ctx),
                _ => Outcome::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                ),
            };
            return ("REST.GET.SERVICE", None, key, out);
        };
        if key.len() > MAX_KEY {
            let out = Outcome::error(
                StatusCode::BAD_REQUEST,
                "KeyTooLongError",
                "Your key is too long",
            );
            return ("REST.UNKNOWN", bucket, key, out);
        }
        let (op, out) = match (&method, key.is_empty()) {
            (&Method::GET, true) if query.contains_key("location") => {
                ("REST.GET.LOCATION", self.location(&ctx, &b))
            }
            (&Method::GET, true) if query.get("list-type").is_some_and(|v| v == "2") => {
                ("REST.GET.BUCKET", self.list_objects(&ctx, &b, &query))
            }
            (&Method::HEAD, true) => ("REST.HEAD.BUCKET", self.head_bucket(&ctx, &b)),
            (&Method::GET, false) => ("REST.GET.OBJECT", self.get_object(&ctx, &b, &key, true)),
            (&Method::HEAD, false) => ("REST.HEAD.OBJECT", self.get_object(&ctx, &b, &key, false)),
            (&Method::PUT, false) if req.headers().contains_key("x-amz-copy-source") => {
                ("REST.COPY.OBJECT", not_implemented("CopyObject"))
            }
            (&Method::PUT, false) => (
                "REST.PUT.OBJECT",
                self.put_object(&ctx, &b, &key, req).await,
            ),
            (&Method::DELETE, false) => ("REST.DELETE.OBJECT", self.delete_object(&ctx, &b, &key)),
            (&Method::PUT, true) => (
                "REST.PUT.BUCKET",
                not_implemented(
                    "CreateBucket (buckets are declared in the topology: [[s3_bucket]])",
                ),
            ),
            (_, true) => (
                "REST.GET.BUCKET",
                not_implemented("this bucket operation (ListObjectsV2 with list-type=2 is)"),
            ),
            _ => (
                "REST.UNKNOWN",
                Outcome::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                ),
            ),
        };
        let out = if method == Method::HEAD {
            out.without_body()
        } else {
            out
        };
        (op, bucket, key, out)
    }

    /// `<bucket>.s3.amazonaws.com` / `<bucket>.s3.<region>.amazonaws.com`.
    fn virtual_host_bucket(&self, host: &str) -> Option<String> {
        let regional = format!(".s3.{}.amazonaws.com", self.region);
        [regional.as_str(), ".s3.amazonaws.com"]
            .iter()
            .find_map(|s| host.strip_suffix(s))
            .filter(|b| !b.is_empty())
            .map(str::to_string)
    }

    /// Checks the bucket exists and its policy allows `action` on `resource`.
    fn authorize(
        &self,
        ctx: &Requester,
        bucket: &str,
        action: &str,
        key: Option<&str>,
    ) -> Result<(), Outcome> {
        let buckets = self.buckets.lock().expect("bucket store");
        let b = buckets.get(bucket).ok_or_else(no_such_bucket)?;
        let resource = match key {
            Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
        let req = ctx.context(action, resource);
        match b.policy.as_ref().map(|p| p.evaluate(&req)) {
            Some(Decision::Allow(_)) => Ok(()),
            _ => Err(access_denied()),
        }
    }

    fn list_buckets(&self, ctx: &Requester) -> Outcome {
        if !ctx.signed {
            return access_denied();
        }
        let buckets = self.buckets.lock().expect("bucket store");
        let mut xml = String::from("<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>vpcsim</ID><DisplayName>lab</DisplayName></Owner><Buckets>");
        for name in buckets.keys() {
            xml += &format!(
                "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
                esc(name),
                iso_time(SystemTime::UNIX_EPOCH)
            );
        }
        xml += "</Buckets></ListAllMyBucketsResult>";
        Outcome::xml(xml)
    }

    fn location(&self, ctx: &Requester, bucket: &str) -> Outcome {
        if let Err(e) = self.authorize(ctx, bucket, "s3:GetBucketLocation", None) {
            return e;
        }
        // us-east-1 answers an empty constraint, as S3 does.
        let region = if self.region == "us-east-1" {
            ""
        } else {
            &self.region
        };
        Outcome::xml(format!("<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{region}</LocationConstraint>"))
    }

    fn head_bucket(&self, ctx: &Requester, bucket: &str) -> Outcome {
        match self.authorize(ctx, bucket, "s3:ListBucket", None) {
            Ok(()) => Outcome::ok(),
            Err(e) => e,
        }
    }

    fn list_objects(&self, ctx: &Requester, bucket: &str, q: &BTreeMap<String, String>) -> Outcome {
        if let Err(e) = self.authorize(ctx, bucket, "s3:ListBucket", None) {
            return e;
        }
        let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
        let (prefix, delimiter) = (get("prefix"), get("delimiter"));
        let max_keys: usize = q
            .get("max-keys")
            .and_then(|m| m.parse().ok())
            .unwrap_or(1000);
        let url = get("encoding-type") == "url";
        let enc = |s: &str| {
            if url {
                form_urlencoded::byte_serialize(s.as_bytes())
                    .collect::<String>()
                    .replace("%2F", "/")
            } else {
                s.to_string()
            }
        };
        // Continuation tokens are the hex of the last key returned.
        let after = match q.get("continuation-token") {
            Some(t) => hex::decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default(),
            None => get("start-after").to_string(),
        };
        let buckets = self.buckets.lock().expect("bucket store");
        let objects = &buckets[bucket].objects;
        let mut contents = String::new();
        let mut prefixes: Vec<String> = Vec::new();
        let (mut count, mut last, mut truncated) = (0, String::new(), false);
        for (k, o) in objects.range::<String, _>((
            std::ops::Bound::Excluded(&after),
            std::ops::Bound::Unbounded,
        )) {
            if !k.starts_with(prefix) {
                continue;
            }
            let common = (!delimiter.is_empty())
                .then(|| {
                    k[prefix.len()..]
                        .find(delimiter)
                        .map(|i| k[..prefix.len() + i + delimiter.len()].to_string())
                })
                .flatten();
            if common.as_ref().is_some_and(|c| prefixes.last() == Some(c)) {
                last = k.clone();
                continue;
            }
            if count == max_keys {
                truncated = true;
                break;
            }
            count += 1;
            last = k.clone();
            match common {
                Some(c) => prefixes.push(c),
                None => {
                    contents += &format!(
                        "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                        esc(&enc(k)),
                        iso_time(o.modified),
                        o.etag,
                        o.data.len()
                    )
                }
            }
        }
        let mut xml = format!(
            "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{count}</KeyCount><MaxKeys>{max_keys}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
            esc(bucket),
            esc(&enc(prefix))
        );
        if !delimiter.is_empty() {
            xml += &format!("<Delimiter>{}</Delimiter>", esc(&enc(delimiter)));
        }
        if url {
            xml += "<EncodingType>url</EncodingType>";
        }
        if let Some(t) = q.get("continuation-token") {
            xml += &format!("<ContinuationToken>{}</ContinuationToken>", esc(t));
        }
        if truncated {
            xml += &format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                hex::encode(&last)
            );
        }
        xml += &contents;
        for p in prefixes {
            xml += &format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                esc(&enc(&p))
            );
        }
        xml += "</ListBucketResult>";
        Outcome::xml(xml)
    }

    fn get_object(&self, ctx: &Requester, bucket: &str, key: &str, body: bool) -> Outcome {
        if let Err(e) = self.authorize(ctx, bucket, "s3:GetObject", Some(key)) {
            return e;
        }
        let found = self.buckets.lock().expect("bucket store")[bucket]
            .objects
            .get(key)
            .cloned();
        let Some(o) = found else {
            // Without s3:ListBucket a missing key is indistinguishable from
            // a forbidden one: S3 answers 403, not 404.
            return match self.authorize(ctx, bucket, "s3:ListBucket", None) {
                Ok(()) => Outcome::error(
                    StatusCode::NOT_FOUND,
                    "NoSuchKey",
                    "The specified key does not exist.",
                ),
                Err(e) => e,
            };
        };
        let mut out = Outcome::ok();
        out.headers = vec![
            ("ETag", format!("\"{}\"", o.etag)),
            ("Last-Modified", httpdate::fmt_http_date(o.modified)),
            ("Content-Type", o.content_type.clone()),
            ("Accept-Ranges", "bytes".into()),
            ("Content-Length", o.data.len().to_string()),
        ];
        if body {
            out.body = o.data;
        }
        out
    }

    /// PutObject: the policy is checked and the declared size against the
    /// limit before a byte of the body is read (a denied upload costs
    /// nothing; with `Expect: 100-continue` it is not even sent); the body
    /// is then decoded and hashed as it arrives, with a timeout per read.
    async fn put_object(
        &self,
        ctx: &Requester<'_>,
        bucket: &str,
        key: &str,
        req: Request<Incoming>,
    ) -> Outcome {
        if let Err(e) = self.authorize(ctx, bucket, "s3:PutObject", Some(key)) {
            return e;
        }
        let content_type = header(&req, "content-type")
            .unwrap_or("binary/octet-stream")
            .to_string();
        let chunked = header(&req, "x-amz-content-sha256")
            .is_some_and(|v| v.starts_with("STREAMING-"))
            || header(&req, "content-encoding").is_some_and(|v| v.contains("aws-chunked"));
        let size_header = if chunked {
            "x-amz-decoded-content-length"
        } else {
            "content-length"
        };
        let declared = header(&req, size_header).and_then(|v| v.parse::<u64>().ok());
        let too_large = || {
            Outcome::error(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "Your proposed upload exceeds the lab's maximum object size (64 MiB).",
            )
        };
        if declared.is_some_and(|n| n > MAX_OBJECT as u64) {
            return too_large();
        }
        let mut data = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut decoder = chunked.then(AwsChunked::default);
        let mut md5 = Md5::new();
        let mut body = req.into_body();
        loop {
            let frame = match tokio::time::timeout(READ_TIMEOUT, body.frame()).await {
                Err(_) => {
                    return Outcome::error(
                        StatusCode::BAD_REQUEST,
                        "RequestTimeout",
                        "Your socket connection to the server was not read from or written to within the timeout period.",
                    )
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => return incomplete_body(),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let start = data.len();
            match &mut decoder {
                Some(d) => {
                    if d.feed(&chunk, &mut data).is_err() {
                        return incomplete_body();
                    }
                }
                None => data.extend_from_slice(&chunk),
            }
            if data.len() > MAX_OBJECT {
                return too_large();
            }
            md5.update(&data[start..]);
        }
        if decoder.is_some_and(|d| !d.done()) {
            return incomplete_body();
        }
        let etag = hex::encode(md5.finalize());
        let mut out = Outcome::ok();
        out.headers = vec![("ETag", format!("\"{etag}\""))];
        let object = Object {
            data: Bytes::from(data),
            etag,
            modified: SystemTime::now(),
            content_type,
        };
        let mut buckets = self.buckets.lock().expect("bucket store");
        if let Some(b) = buckets.get_mut(bucket) {
            b.objects.insert(key.to_string(), object);
        }
        out
    }

    fn delete_object(&self, ctx: &Requester, bucket: &str, key: &str) -> Outcome {
        if let Err(e) = self.authorize(ctx, bucket, "s3:DeleteObject", Some(key)) {
            return e;
        }
        if let Some(b) = self.buckets.lock().expect("bucket store").get_mut(bucket) {
            b.objects.remove(key);
        }
        let mut out = Outcome::ok();
        out.status = StatusCode::NO_CONTENT;
        out
    }
}

struct Requester<'a> {
    via: &'a Via,
    peer: IpAddr,
    signed: bool,
}

impl Requester<'_> {
    /// The request context AWS builds: through an endpoint the source is
    /// the private address (aws:VpcSourceIp) and aws:SourceIp is absent.
    fn context(&self, action: &str, resource: String) -> RequestContext {
        let mut keys = BTreeMap::new();
        match self.via {
            Via::Endpoint { id, vpc_id } => {
                keys.insert("aws:SourceVpce", id.clone());
                keys.insert("aws:SourceVpc", vpc_id.clone());
                keys.insert("aws:VpcSourceIp", self.peer.to_string());
            }
            Via::Internet => {
                keys.insert("aws:SourceIp", self.peer.to_string());
            }
        }
        RequestContext {
            action: action.into(),
            resource,
            keys,
        }
    }
}

/// A response before it gets its request id.
struct Outcome {
    status: StatusCode,
    code: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

impl Outcome {
    fn ok() -> Outcome {
        Outcome {
            status: StatusCode::OK,
            code: None,
            headers: vec![],
            body: Bytes::new(),
        }
    }

    fn xml(body: String) -> Outcome {
        Outcome {
            headers: vec![("Content-Type", "application/xml".into())],
            body: Bytes::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
            )),
            ..Outcome::ok()
        }
    }

    fn error(status: StatusCode, code: &'static str, message: &str) -> Outcome {
        let mut out = Outcome::xml(format!(
            "<Error><Code>{code}</Code><Message>{}</Message></Error>",
            esc(message)
        ));
        out.status = status;
        out.code = Some(code);
        out
    }

    /// HEAD responses carry the status and headers only.
    fn without_body(mut self) -> Outcome {
        if self.code.is_some() {
            self.headers.clear();
        }
        self.body = Bytes::new();
        self
    }

    fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let mut body = self.body;
        if self.code.is_some() && !body.is_empty() {
            // S3 puts the request id inside the error document too.
            let text = String::from_utf8_lossy(&body).replace(
                "</Error>",
                &format!("<RequestId>{request_id}</RequestId><HostId>vpcsim</HostId></Error>"),
            );
            body = Bytes::from(text);
        }
        let mut resp = Response::builder()
            .status(self.status)
            .header("x-amz-request-id", request_id)
            .header("x-amz-id-2", "vpcsim")
            .header("Server", "AmazonS3");
        for (k, v) in &self.headers {
            resp = resp.header(*k, v);
        }
        resp.body(Full::new(body)).expect("valid response")
    }
}

fn no_such_bucket() -> Outcome {
    Outcome::error(
        StatusCode::NOT_FOUND,
        "NoSuchBucket",
        "The specified bucket does not exist",
    )
}

fn access_denied() -> Outcome {
    Outcome::error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied")
}

fn not_implemented(what: &str) -> Outcome {
    Outcome::error(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        &format!("vpcsim's S3 does not implement {what}"),
    )
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Characters a key keeps in the access log; every other byte is
/// percent-encoded, as S3 URL-encodes the key field: a key cannot add a
/// field or a line (`%0A`) to the log.
const LOG_KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'!')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b':')
    .remove(b'@');

fn log_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, LOG_KEEP).to_string()
}

/// A quoted log field: `"` and `\` escaped with a backslash, control
/// characters as `\xNN`.
fn log_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn incomplete_body() -> Outcome {
    Outcome::error(
        StatusCode::BAD_REQUEST,
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header, or the aws-chunked encoding is invalid.",
    )
}

/// An `aws-chunked` body decoded as it arrives (`<hex size>[;chunk-
/// signature=…]\r\n<data>\r\n` … `0…\r\n` then trailers); signatures are
/// not checked.
#[derive(Default)]
struct AwsChunked {
    /// The chunk header line read so far.
    line: Vec<u8>,
    state: Chunk,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum Chunk {
    #[default]
    Header,
    /// Bytes of data left in the current chunk.
    Data(usize),
    /// How many bytes of the `\r\n` after a chunk's data were seen.
    End(u8),
    /// The last (empty) chunk was seen: trailers follow and are ignored.
    Done,
}

impl AwsChunked {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
        while !input.is_empty() {
            match self.state {
                Chunk::Header => {
                    let (b, rest) = (input[0], &input[1..]);
                    input = rest;
                    self.line.push(b);
                    if self.line.len() > 4096 {
                        return Err(());
                    }
                    if self.line.ends_with(b"\r\n") {
                        let line = std::str::from_utf8(&self.line[..self.line.len() - 2])
                            .map_err(|_| ())?;
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16).map_err(|_| ())?;
                        self.line.clear();
                        self.state = if size == 0 {
                            Chunk::Done
                        } else {
                            Chunk::Data(size)
                        };
                    }
                }
                Chunk::Data(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if n == left {
                        Chunk::End(0)
                    } else {
                        Chunk::Data(left - n)
                    };
                }
                Chunk::End(seen) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if input[0] != want {
                        return Err(());
                    }
                    input = &input[1..];
                    self.state = if seen == 0 {
                        Chunk::End(1)
                    } else {
                        Chunk::Header
                    };
                }
                Chunk::Done => return Ok(()),
            }
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.state == Chunk::Done
    }
}

/// Files under `dir` become objects keyed by their path relative to `root`.
fn load_dir(
    root: &Path,
    dir: &Path,
    objects: &mut BTreeMap<String, Object>,
) -> Result<(), (String, std::io::Error)> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| (p, e)
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io(dir))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            load_dir(root, &path, objects)?;
            continue;
        }
        let data = std::fs::read(&path).map_err(io(&path))?;
        let key = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let content_type = match path.extension().and_then(|x| x.to_str()) {
            Some("py") => "text/x-python",
            Some("txt") => "text/plain",
            Some("json") => "application/json",
            Some("html") => "text/html",
            _ => "binary/octet-stream",
        };
        objects.insert(
            key,
            Object {
                etag: hex::encode(Md5::digest(&data)),
                data: Bytes::from(data),
                modified: e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                content_type: content_type.into(),
            },
        );
    }
    Ok(())
}

/// UTC calendar fields of a time: (year, month, day, hour, minute, second, ms).
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400) as u32);
    let (year, month, day) = crate::utc::civil(days);
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// `2026-11-23T17:00:00.000Z`, as S3's XML dates.
pub(crate) fn iso_time(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `23/Nov/2026:17:00:00 +0000`, as S3 server access logs.
fn log_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[mo as usize - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(pieces: &[&[u8]]) -> Option<Vec<u8>> {
        let mut d = AwsChunked::default();
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut out).ok()?;
        }
        d.done().then_some(out)
    }

    #[test]
    fn aws_chunked_bodies_decode_in_any_pieces() {
        let raw: &[u8] = b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n";
        assert_eq!(decode(&[raw]).unwrap(), b"hello world");
        let bytes: Vec<&[u8]> = raw.chunks(1).collect();
        assert_eq!(decode(&bytes).unwrap(), b"hello world");
        let (a, b) = raw.split_at(27);
        assert_eq!(decode(&[a, b]).unwrap(), b"hello world");
        assert!(decode(&[b"5\r\nhel"]).is_none());
        assert!(decode(&[b"5\r\nhelloXX0\r\n"]).is_none());
        assert!(decode(&[b"zz\r\n"]).is_none());
    }

    #[test]
    fn log_fields_cannot_forge_lines() {
        assert_eq!(log_encode("a b\nforged/x.py"), "a%20b%0Aforged/x.py");
        assert_eq!(log_quote("curl \"x\"\r\n"), "curl \\\"x\\\"\\x0D\\x0A");
    }

    #[test]
    fn dates_format_like_s3() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_453_200_123);
        assert_eq!(iso_time(t), "2026-11-23T17:00:00.123Z");
        assert_eq!(log_time(t), "23/Nov/2026:17:00:00 +0000");
    }
}
