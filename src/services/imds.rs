//! The instance metadata service (IMDS) at 169.254.169.254, as an instance
//! sees it (docs.aws.amazon.com/AWSEC2/latest/UserGuide/
//! instancedata-data-retrieval.html, configuring-instance-metadata-service.html,
//! instancedata-data-categories.html): IMDSv1 GETs and IMDSv2 session tokens
//! (PUT /latest/api/token), the categories the lab models, user data and the
//! instance identity document. The caller is known by its source address,
//! as the hypervisor knows which ENI a packet came from.
//!
//! Each instance's metadata options (HttpTokens, HttpPutResponseHopLimit,
//! HttpEndpoint; AWS's defaults: tokens optional, hop limit 1, enabled) are
//! honoured: with hop limit 1 a container behind the instance gets no
//! token, as on AWS. Categories the lab has no value for (ami-id,
//! instance-type, IAM) are not listed rather than invented.

pub use crate::fabric::aws_side::IMDS_IP;
use crate::topology::plan::{instance_id, private_dns_name, subnet_id, Lab, MetadataPlan};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether `req` asks for an IMDSv2 session token.
pub fn is_token_request<B>(req: &Request<B>) -> bool {
    req.method() == Method::PUT && req.uri().path() == TOKEN_PATH
}

const TOKEN_PATH: &str = "/latest/api/token";

/// AWS's bounds for a token's lifetime (X-aws-ec2-metadata-token-ttl-seconds).
const TOKEN_TTL: std::ops::RangeInclusive<u64> = 1..=21_600;

/// What the IMDS serves each instance of a lab, by private address: equal
/// for two plans when the service would answer them the same.
pub type Served = HashMap<Ipv4Addr, Instance>;

pub fn served(lab: &Lab) -> Served {
    lab.instances
        .iter()
        .map(|inst| {
            let eni = &lab.enis[inst.eni];
            (eni.private_ip, Instance::of(lab, inst, eni))
        })
        .collect()
}

/// The metadata of every instance of a lab, by private address.
pub struct Imds {
    instances: Served,
    /// Signs tokens: a token is its expiry and instance, with this key's
    /// digest, so the daemon keeps no per-token state a client could grow.
    key: [u8; 32],
}

#[derive(PartialEq)]
pub struct Instance {
    /// Relative paths under `/latest/meta-data/` and their values.
    meta: BTreeMap<String, String>,
    user_data: Option<String>,
    identity: String,
    options: MetadataPlan,
}

impl Imds {
    pub fn of(lab: &Lab) -> Imds {
        Imds {
            instances: served(lab),
            key: rand::random(),
        }
    }

    /// The service for the lab's new plan (`apply`), with the same key:
    /// tokens issued before stay valid, as AWS's do across a change.
    pub fn reloaded(&self, lab: &Lab) -> Imds {
        Imds {
            instances: served(lab),
            key: self.key,
        }
    }

    /// The IP TTL of the answer to a token request from `source`: its
    /// instance's `HttpPutResponseHopLimit`.
    pub fn put_hop_limit(&self, source: Ipv4Addr) -> u32 {
        self.instances
            .get(&source)
            .map_or(1, |i| i.options.put_response_hop_limit.into())
    }

    /// The answer to one request from `source`.
    pub fn answer(&self, source: Ipv4Addr, req: &Request<impl Sized>) -> Response<Full<Bytes>> {
        let Some(instance) = self.instances.get(&source) else {
            return text(StatusCode::NOT_FOUND, "Not Found\n");
        };
        // The endpoint turned off: AWS answers every request 403.
        if !instance.options.endpoint_enabled {
            return text(StatusCode::FORBIDDEN, "Forbidden\n");
        }
        let path = req.uri().path();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        if path == TOKEN_PATH {
            if req.method() != Method::PUT {
                return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
            }
            // AWS refuses token requests that went through a proxy.
            if header("x-forwarded-for").is_some() {
                return text(StatusCode::FORBIDDEN, "Forbidden\n");
            }
            let ttl = header("x-aws-ec2-metadata-token-ttl-seconds")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|t| TOKEN_TTL.contains(t));
            let Some(ttl) = ttl else {
                return text(StatusCode::BAD_REQUEST, "Bad Request\n");
            };
            let mut resp = text(StatusCode::OK, &self.token(source, now() + ttl));
            resp.headers_mut().insert(
                "x-aws-ec2-metadata-token-ttl-seconds",
                ttl.to_string().parse().expect("digits are a header value"),
            );
            return resp;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        }
        // A token given must be valid, unexpired and this instance's;
        // without one the request is IMDSv1, refused when tokens are required.
        let authorized = match header("x-aws-ec2-metadata-token") {
            Some(token) => self.valid(token, source),
            None => !instance.options.tokens_required,
        };
        if !authorized {
            return text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        }
        match instance.get(path) {
            Some(body) => text(StatusCode::OK, &body),
            None => text(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }

    fn token(&self, ip: Ipv4Addr, expires: u64) -> String {
        let mut payload = expires.to_be_bytes().to_vec();
        payload.extend(ip.octets());
        let digest = self.digest(&payload);
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            [payload, digest].concat(),
        )
    }

    fn valid(&self, token: &str, ip: Ipv4Addr) -> bool {
        let Ok(raw) =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token)
        else {
            return false;
        };
        // Fixed length: a digest of the key and a 12-byte payload cannot be
        // extended into another valid token.
        if raw.len() != 28 {
            return false;
        }
        let (payload, digest) = raw.split_at(12);
        let expires = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
        payload[8..] == ip.octets() && expires > now() && self.digest(payload) == digest
    }

    fn digest(&self, payload: &[u8]) -> Vec<u8> {
        use md5::Digest;
        let mut h = md5::Md5::new();
        h.update(self.key);
        h.update(payload);
        h.finalize().to_vec()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

impl Instance {
    fn of(
        lab: &Lab,
        inst: &crate::topology::plan::InstancePlan,
        eni: &crate::topology::plan::Eni,
    ) -> Instance {
        let subnet = &lab.subnets[eni.subnet];
        let ip = eni.private_ip.to_string();
        let hostname = private_dns_name(&lab.region, eni.private_ip);
        let mac = eni.mac_string();
        let groups: Vec<&crate::topology::plan::SecurityGroupPlan> = eni
            .security_groups
            .iter()
            .map(|&g| &lab.security_groups[g])
            .collect();
        let names = groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let ids = groups
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let id = instance_id(&lab.name, &inst.name);
        let mut meta = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            meta.insert(k.to_string(), v);
        };
        put("hostname", hostname.clone());
        put("local-hostname", hostname.clone());
        put("instance-id", id.clone());
        put("local-ipv4", ip.clone());
        put("mac", mac.clone());
        put("placement/availability-zone", subnet.az.clone());
        put("placement/region", lab.region.clone());
        put("security-groups", names.clone());
        put("services/domain", "amazonaws.com".into());
        put("services/partition", "aws".into());
        let nic = format!("network/interfaces/macs/{mac}/");
        put(&format!("{nic}device-number"), "0".into());
        put(&format!("{nic}interface-id"), eni.id.clone());
        put(&format!("{nic}local-hostname"), hostname);
        put(&format!("{nic}local-ipv4s"), ip.clone());
        put(&format!("{nic}mac"), mac);
        put(
            &format!("{nic}owner-id"),
            crate::cloudformation::stacks::ACCOUNT.into(),
        );
        put(&format!("{nic}security-group-ids"), ids);
        put(&format!("{nic}security-groups"), names);
        put(
            &format!("{nic}subnet-id"),
            subnet_id(&lab.name, &subnet.name),
        );
        put(
            &format!("{nic}subnet-ipv4-cidr-block"),
            subnet.cidr.to_string(),
        );
        put(&format!("{nic}vpc-id"), lab.vpc_id.clone());
        put(
            &format!("{nic}vpc-ipv4-cidr-block"),
            lab.vpc_cidr.to_string(),
        );
        put(
            &format!("{nic}vpc-ipv4-cidr-blocks"),
            lab.vpc_cidr.to_string(),
        );
        if let Some(public) = eni.public_ip {
            put("public-ipv4", public.to_string());
            put(&format!("{nic}public-ipv4s"), public.to_string());
        }
        let identity = serde_json::to_string_pretty(&serde_json::json!({
            "accountId": crate::cloudformation::stacks::ACCOUNT,
            "availabilityZone": subnet.az,
            "instanceId": id,
            "privateIp": ip,
            "region": lab.region,
            "version": "2017-09-30",
        }))
        .expect("JSON of strings");
        Instance {
            meta,
            user_data: inst.user_data.clone(),
            identity,
            options: inst.metadata,
        }
    }

    /// A path's answer: a value, or a directory's listing (its entries one
    /// per line, subdirectories with a trailing `/`, as the IMDS lists them).
    fn get(&self, path: &str) -> Option<String> {
        let rest = path.strip_prefix("/latest")?;
        match rest {
            "" | "/" => return Some("dynamic\nmeta-data\nuser-data".into()),
            "/user-data" | "/user-data/" => return self.user_data.clone(),
            "/dynamic" | "/dynamic/" => return Some("instance-identity/".into()),
            "/dynamic/instance-identity" | "/dynamic/instance-identity/" => {
                return Some("document".into())
            }
            "/dynamic/instance-identity/document" => return Some(self.identity.clone()),
            _ => {}
        }
        let key = rest.strip_prefix("/meta-data")?.trim_start_matches('/');
        if let Some(v) = self.meta.get(key) {
            return Some(v.clone());
        }
        // A directory: the next part of every path under it.
        let dir = if key.is_empty() || key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        let mut entries: Vec<String> = Vec::new();
        for k in self
            .meta
            .keys()
            .filter_map(|k| k.strip_prefix(dir.as_str()))
        {
            let entry = match k.split_once('/') {
                Some((d, _)) => format!("{d}/"),
                None => k.to_string(),
            };
            if entries.last() != Some(&entry) {
                entries.push(entry);
            }
        }
        (!entries.is_empty()).then(|| entries.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Lab {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let text = std::fs::read_to_string(dir.join("canary.toml")).unwrap();
        crate::topology::parse(&text, &dir).expect("canary.toml is valid")
    }

    fn get(imds: &Imds, ip: Ipv4Addr, path: &str, token: Option<&str>) -> (u16, String) {
        let mut b = Request::builder().method("GET").uri(path);
        if let Some(t) = token {
            b = b.header("x-aws-ec2-metadata-token", t);
        }
        let resp = imds.answer(ip, &b.body(()).unwrap());
        let status = resp.status().as_u16();
        let body = futures::executor::block_on(http_body_util::BodyExt::collect(resp.into_body()))
            .unwrap()
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn categories_listings_and_values_of_an_instance() {
        let lab = lab();
        let imds = Imds::of(&lab);
        let v1a = lab.eni_by_node("v1-a").unwrap().clone();
        let ip = v1a.private_ip;
        let (s, root) = get(&imds, ip, "/latest/meta-data/", None);
        assert_eq!(s, 200);
        let entries: Vec<&str> = root.lines().collect();
        for e in [
            "hostname",
            "instance-id",
            "local-ipv4",
            "mac",
            "network/",
            "placement/",
            "security-groups",
        ] {
            assert!(entries.contains(&e), "{e} not in {entries:?}");
        }
        assert!(
            !entries.contains(&"public-ipv4"),
            "a private instance has no public-ipv4"
        );
        assert_eq!(
            get(&imds, ip, "/latest/meta-data/local-ipv4", None),
            (200, ip.to_string())
        );
        assert_eq!(
            get(&imds, ip, "/latest/meta-data/instance-id", None).1,
            instance_id(&lab.name, "v1-a")
        );
        let az = &lab.subnets[v1a.subnet].az;
        assert_eq!(
            get(
                &imds,
                ip,
                "/latest/meta-data/placement/availability-zone",
                None
            )
            .1,
            *az
        );
        assert_eq!(
            get(&imds, ip, "/latest/meta-data/placement", None).1,
            "availability-zone\nregion"
        );
        let mac = v1a.mac_string();
        assert_eq!(
            get(
                &imds,
                ip,
                "/latest/meta-data/network/interfaces/macs/",
                None
            )
            .1,
            format!("{mac}/")
        );
        let nic = format!("/latest/meta-data/network/interfaces/macs/{mac}/");
        assert_eq!(
            get(&imds, ip, &format!("{nic}interface-id"), None).1,
            v1a.id
        );
        assert_eq!(get(&imds, ip, &format!("{nic}vpc-id"), None).1, lab.vpc_id);
        assert_eq!(
            get(&imds, ip, &format!("{nic}subnet-ipv4-cidr-block"), None).1,
            lab.subnets[v1a.subnet].cidr.to_string()
        );
        assert_eq!(get(&imds, ip, "/latest/meta-data/nothing", None).0, 404);
        let doc: serde_json::Value = serde_json::from_str(
            &get(
                &imds,
                ip,
                "/latest/dynamic/instance-identity/document",
                None,
            )
            .1,
        )
        .unwrap();
        assert_eq!(doc["privateIp"], ip.to_string());
        assert_eq!(doc["availabilityZone"], *az);
        // The bastion has a public address.
        let bastion = lab.eni_by_node("bastion").unwrap();
        assert_eq!(
            get(
                &imds,
                bastion.private_ip,
                "/latest/meta-data/public-ipv4",
                None
            )
            .1,
            bastion.public_ip.unwrap().to_string()
        );
        // The hostname is the private DNS name the Amazon DNS resolves, in
        // the lab's region (as /etc/hosts lists it).
        assert_eq!(
            get(&imds, ip, "/latest/meta-data/hostname", None).1,
            format!("ip-{}.ec2.internal", ip.to_string().replace('.', "-"))
        );
        let mut eu = lab.clone();
        eu.region = "eu-west-1".into();
        let zone = crate::services::dns::Zone::for_lab(&eu, true);
        let name = get(&Imds::of(&eu), ip, "/latest/meta-data/local-hostname", None).1;
        assert!(name.ends_with(".eu-west-1.compute.internal"), "{name}");
        assert_eq!(zone.lookup(&name), Some(vec![ip]));
        // Not an instance: no metadata.
        let nat = lab
            .enis
            .iter()
            .find(|e| matches!(e.owner, crate::topology::plan::EniOwner::NatGateway(_)))
            .unwrap();
        assert_eq!(
            get(&imds, nat.private_ip, "/latest/meta-data/", None).0,
            404
        );
    }

    #[test]
    fn metadata_options_require_tokens_turn_the_endpoint_off_and_set_the_hop_limit() {
        let mut lab = lab();
        let at = |lab: &Lab, n: &str| lab.eni_by_node(n).unwrap().private_ip;
        let (a, b) = (at(&lab, "v1-a"), at(&lab, "v1-b"));
        let i = |lab: &Lab, n: &str| lab.instances.iter().position(|x| x.name == n).unwrap();
        let (ia, ib) = (i(&lab, "v1-a"), i(&lab, "v1-b"));
        lab.instances[ia].metadata = MetadataPlan {
            tokens_required: true,
            put_response_hop_limit: 2,
            endpoint_enabled: true,
        };
        lab.instances[ib].metadata.endpoint_enabled = false;
        let imds = Imds::of(&lab);
        assert_eq!(get(&imds, a, "/latest/meta-data/local-ipv4", None).0, 401);
        let token = imds.token(a, now() + 60);
        assert_eq!(
            get(&imds, a, "/latest/meta-data/local-ipv4", Some(&token)),
            (200, a.to_string())
        );
        assert_eq!(imds.put_hop_limit(a), 2);
        assert_eq!(imds.put_hop_limit(b), 1);
        // Turned off: 403, token or not.
        assert_eq!(get(&imds, b, "/latest/meta-data/", None).0, 403);
        let put = Request::builder()
            .method("PUT")
            .uri("/latest/api/token")
            .header("x-aws-ec2-metadata-token-ttl-seconds", "60")
            .body(())
            .unwrap();
        assert_eq!(imds.answer(b, &put).status().as_u16(), 403);
        // What a reload compares: a change of options is a change served.
        assert!(served(&lab) != served(&self::lab()));
        // A reload keeps the tokens issued before it.
        let reloaded = imds.reloaded(&self::lab());
        assert_eq!(
            get(&reloaded, a, "/latest/meta-data/local-ipv4", Some(&token)),
            (200, a.to_string())
        );
        assert_eq!(
            get(
                &Imds::of(&self::lab()),
                a,
                "/latest/meta-data/",
                Some(&token)
            )
            .0,
            401,
            "sanity: another key refuses it"
        );
    }

    #[test]
    fn tokens_are_bounded_signed_and_bound_to_their_instance() {
        let lab = lab();
        let imds = Imds::of(&lab);
        let a = lab.eni_by_node("v1-a").unwrap().private_ip;
        let b = lab.eni_by_node("v1-b").unwrap().private_ip;
        let put = |ip, ttl: Option<&str>, xff: bool| {
            let mut r = Request::builder().method("PUT").uri("/latest/api/token");
            if let Some(t) = ttl {
                r = r.header("x-aws-ec2-metadata-token-ttl-seconds", t);
            }
            if xff {
                r = r.header("x-forwarded-for", "10.0.0.1");
            }
            let resp = imds.answer(ip, &r.body(()).unwrap());
            let status = resp.status().as_u16();
            let body =
                futures::executor::block_on(http_body_util::BodyExt::collect(resp.into_body()))
                    .unwrap()
                    .to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        };
        assert_eq!(put(a, None, false).0, 400);
        assert_eq!(put(a, Some("0"), false).0, 400);
        assert_eq!(put(a, Some("21601"), false).0, 400);
        assert_eq!(put(a, Some("60"), true).0, 403);
        let (s, token) = put(a, Some("21600"), false);
        assert_eq!(s, 200);
        assert_eq!(
            get(&imds, a, "/latest/meta-data/local-ipv4", Some(&token)),
            (200, a.to_string())
        );
        // Another instance's token, a forged one, an expired one: 401.
        assert_eq!(
            get(&imds, b, "/latest/meta-data/local-ipv4", Some(&token)).0,
            401
        );
        let mut forged = token.clone().into_bytes();
        forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            get(
                &imds,
                a,
                "/latest/meta-data/",
                Some(std::str::from_utf8(&forged).unwrap())
            )
            .0,
            401
        );
        let expired = imds.token(a, now() - 1);
        assert_eq!(get(&imds, a, "/latest/meta-data/", Some(&expired)).0, 401);
        assert_eq!(get(&imds, a, "/latest/meta-data/", Some("x")).0, 401);
    }
}
