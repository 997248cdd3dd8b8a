//! AWS-managed services of a lab, in one daemon (`vpcsim aws-services`)
//! started by `up` in the fabric namespace: the Amazon-provided DNS of the
//! VPC, the instance metadata service, and when the lab has S3, the S3 endpoint and the internet's resolver
//! in the `s3` namespace. One process holds sockets in several namespaces
//! (created with `netns::run_in`), and teardown finds it by namespace.
//!
//! Owns: the daemon's sockets, its start-up and reload, and the DNS query log.
//! Must not touch: the links and addresses the services sit behind
//! (`fabric/aws_side.rs` builds them) or the firewall.

pub mod dns;
pub mod imds;
pub mod s3;

use crate::connlimit::{accept_loop, Limits, Registry, Tracked};
use crate::fabric::aws_side::S3_TO_INTERNET_IF;
use crate::fabric::netns::{self, NetnsError};
use crate::state::{lab_dir, log_dir, LabState, StateError};
use crate::topology::plan::*;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What went wrong starting, reloading or running the AWS services daemon.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("lab `{0}` is not up")]
    NotUp(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("starting the AWS services daemon (DNS, S3): {0}")]
    Spawn(io::Error),
    #[error("the AWS services daemon exited at start; see {}", .log.display())]
    Exited { log: PathBuf },
    #[error("the AWS services daemon is not ready after 10 s; see {}", .log.display())]
    NotReady { log: PathBuf },
    #[error("the AWS services daemon of lab `{0}` is not running")]
    NotRunning(String),
    #[error("asking the AWS services daemon to reload: {0}")]
    Signal(nix::Error),
    #[error("the AWS services daemon did not reload in 10 s; see {}", .log.display())]
    NoReload { log: PathBuf },
    #[error("{ns}: bind udp {addr}: {source}")]
    BindUdp {
        ns: String,
        addr: SocketAddrV4,
        source: io::Error,
    },
    #[error("{ns}: listen on {addr} via {link}: {source}")]
    Listen {
        ns: String,
        addr: SocketAddrV4,
        link: String,
        source: io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    S3(#[from] s3::S3Error),
    #[error("{}: {source}", .path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("the AWS services daemon's runtime: {0}")]
    Runtime(io::Error),
}

/// The ready file written, or why not.
fn mark_ready(lab: &str) -> Result<(), ServicesError> {
    let path = ready_file(lab);
    std::fs::write(&path, b"").map_err(|source| ServicesError::File { path, source })
}

/// The AWS CLI and SDKs speak to this URL instead of `https://…:443`: the
/// lab's S3 has no TLS, but keeps port 443 so NACL and SG rules for HTTPS
/// decide as on AWS. Port 80 answers too.
pub fn s3_endpoint_url(lab: &Lab) -> String {
    format!("http://s3.{}.amazonaws.com:443", lab.region)
}

/// resolv.conf of a node: VPC nodes use the Amazon DNS, the internet and
/// the S3 side the public resolver.
pub fn resolv_conf(lab: &Lab, node: &str) -> String {
    let options = "options timeout:1 attempts:2\n";
    match (&lab.s3, node) {
        (Some(s3), INTERNET | S3) => format!("nameserver {}\n{options}", s3.public_dns),
        // Without S3 there is no public resolver: fail lookups at once
        // (names the internet needs are in its /etc/hosts).
        (None, INTERNET) => "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n".into(),
        _ => format!(
            "# Amazon-provided DNS (VPC base + 2)\nnameserver {}\nsearch {}\n{options}",
            lab.dns_ip(),
            private_domain(&lab.region)
        ),
    }
}

/// Environment every process of a node gets (`vpcsim exec`, user data):
/// where the AWS CLI finds the lab's S3.
pub fn node_environment(lab: &Lab) -> String {
    match &lab.s3 {
        Some(_) => format!("AWS_ENDPOINT_URL_S3={}\n", s3_endpoint_url(lab)),
        None => String::new(),
    }
}

fn ready_file(lab: &str) -> std::path::PathBuf {
    lab_dir(lab).join("aws-services.ready")
}

/// The S3 server access log.
pub fn s3_access_log(lab: &str) -> std::path::PathBuf {
    log_dir(lab).join("s3-access.log")
}

/// The AWS services daemon's process role in the lab's state.
pub const ROLE: &str = "aws-services";

/// Starts the daemon and waits until every socket is bound.
pub fn start(state: &mut LabState) -> Result<(), ServicesError> {
    let lab = state.plan.name.clone();
    let log = log_dir(&lab).join("aws-services.log");
    let _ = std::fs::remove_file(ready_file(&lab));
    let mut cmd =
        std::process::Command::new(std::env::current_exe().map_err(ServicesError::Spawn)?);
    cmd.args(["aws-services", "--lab", &lab]);
    let rec = crate::workloads::process::spawn_detached(
        &lab,
        FABRIC,
        ROLE,
        crate::workloads::process::Reach::Hypervisor,
        cmd,
        &log,
    )
    .map_err(ServicesError::Spawn)?;
    state.processes.push(rec.clone());
    state.save()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready_file(&lab).exists() {
        if !rec.is_alive() {
            return Err(ServicesError::Exited { log });
        }
        if Instant::now() > deadline {
            return Err(ServicesError::NotReady { log });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The daemon itself (`vpcsim aws-services --lab L`).
pub fn run(lab: &str) -> Result<(), ServicesError> {
    let state = LabState::load(lab)?.ok_or_else(|| ServicesError::NotUp(lab.into()))?;
    let plan = state.plan;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServicesError::Runtime)?;
    rt.block_on(async {
        // Before the ready file: a reload sent once it exists finds the handler.
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(ServicesError::Runtime)?;
        let vpc_dns = udp_in(&plan.fabric_ns(), SocketAddrV4::new(plan.dns_ip(), 53))?;
        let vpc_view = Arc::new(RwLock::new(Arc::new(DnsView::of(&plan, true))));
        tokio::spawn(serve_dns(
            vpc_dns,
            vpc_view.clone(),
            Some(QueryLog::open(&plan)?),
        ));
        let imds = Arc::new(RwLock::new(Arc::new(imds::Imds::of(&plan))));
        let imds_conns = Registry::new(Limits::new(connection_limit(), IMDS_IDLE));
        tokio::spawn(imds_conns.clone().reap_forever());
        tokio::spawn(serve_imds(
            tcp_listener(
                &plan.fabric_ns(),
                None,
                SocketAddrV4::new(imds::IMDS_IP, 80),
            )?,
            imds.clone(),
            imds_conns,
        ));
        let mut s3_side = None;
        if let Some(s3) = &plan.s3 {
            let public_dns = udp_in(&plan.namespace(S3), SocketAddrV4::new(s3.public_dns, 53))?;
            let public_view = Arc::new(RwLock::new(Arc::new(DnsView::of(&plan, false))));
            tokio::spawn(serve_dns(public_dns, public_view.clone(), None));
            let side = S3Side {
                server: Arc::new(s3::S3::new(&plan, &s3_access_log(lab))?),
                conns: Registry::new(Limits::new(connection_limit(), S3_IDLE)),
                links: Default::default(),
                public_view,
            };
            tokio::spawn(side.conns.clone().reap_forever());
            side.listen(&plan, s3.address)?;
            s3_side = Some(side);
        }
        mark_ready(lab)?;
        // A change to the lab (`apply`): serve the new plan, keeping S3's
        // objects, the logs and every open connection.
        loop {
            hangup.recv().await;
            let reloaded = (|| -> Result<(), ServicesError> {
                let state = LabState::load(lab)?.ok_or_else(|| ServicesError::NotUp(lab.into()))?;
                let plan = state.plan;
                *vpc_view.write().expect("dns view lock") = Arc::new(DnsView::of(&plan, true));
                let reloaded = imds.read().expect("imds lock").reloaded(&plan);
                *imds.write().expect("imds lock") = Arc::new(reloaded);
                if let (Some(side), Some(s3)) = (&s3_side, &plan.s3) {
                    *side.public_view.write().expect("dns view lock") =
                        Arc::new(DnsView::of(&plan, false));
                    side.server.update(&plan)?;
                    side.listen(&plan, s3.address)?;
                }
                Ok(())
            })();
            match reloaded {
                Ok(()) => mark_ready(lab)?,
                Err(e) => eprintln!("aws-services: reload failed: {e}"),
            }
        }
    })
}

/// What the DNS answers from, replaced whole when the lab changes.
struct DnsView {
    zone: dns::Zone,
    /// Private IP -> node name (the query log's `srcids.instance`).
    nodes: std::collections::HashMap<std::net::Ipv4Addr, String>,
}

impl DnsView {
    fn of(plan: &crate::topology::plan::Lab, vpc: bool) -> DnsView {
        DnsView {
            zone: dns::Zone::for_lab(plan, vpc),
            nodes: plan
                .enis
                .iter()
                .map(|e| (e.private_ip, e.node.clone()))
                .collect(),
        }
    }
}

type View = Arc<RwLock<Arc<DnsView>>>;

/// The S3 side of the daemon: the server, its connections, the links it
/// listens on and the public resolver's view.
struct S3Side {
    server: Arc<s3::S3>,
    conns: Arc<Registry>,
    links: std::sync::Mutex<std::collections::HashSet<String>>,
    public_view: View,
}

impl S3Side {
    /// Listens on every path into S3 the plan has and this side does not
    /// serve yet: the internet's link and each gateway endpoint's.
    fn listen(
        &self,
        plan: &crate::topology::plan::Lab,
        address: std::net::Ipv4Addr,
    ) -> Result<(), ServicesError> {
        let mut paths = vec![(S3_TO_INTERNET_IF.to_string(), s3::Via::Internet)];
        for e in &plan.vpc_endpoints {
            let via = s3::Via::Endpoint {
                id: e.id.clone(),
                vpc_id: plan.vpc_id.clone(),
            };
            paths.push((e.link.clone(), via));
        }
        let mut links = self.links.lock().expect("links lock");
        for (link, via) in paths {
            if links.contains(&link) {
                continue;
            }
            for port in [443, 80] {
                let l = tcp_listener(
                    &plan.namespace(S3),
                    Some(&link),
                    SocketAddrV4::new(address, port),
                )?;
                tokio::spawn(serve_s3(
                    l,
                    Arc::new(via.clone()),
                    self.server.clone(),
                    self.conns.clone(),
                ));
            }
            links.insert(link);
        }
        Ok(())
    }
}

/// Asks the running daemon to serve the lab's new plan (what `apply`
/// changed: names, buckets, policies, endpoints) and waits until it has.
pub fn reload(state: &LabState) -> Result<(), ServicesError> {
    let lab = &state.plan.name;
    let keeper = state
        .processes
        .iter()
        .find(|p| p.role == ROLE && p.is_alive())
        .ok_or_else(|| ServicesError::NotRunning(lab.clone()))?;
    let _ = std::fs::remove_file(ready_file(lab));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(keeper.pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(ServicesError::Signal)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready_file(lab).exists() {
        if Instant::now() > deadline {
            return Err(ServicesError::NoReload {
                log: log_dir(lab).join("aws-services.log"),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn udp_in(ns: &str, addr: SocketAddrV4) -> Result<tokio::net::UdpSocket, ServicesError> {
    let bind_error = |source| ServicesError::BindUdp {
        ns: ns.into(),
        addr,
        source,
    };
    let sock = netns::run_in(ns, || std::net::UdpSocket::bind(addr))?.map_err(bind_error)?;
    sock.set_nonblocking(true).map_err(bind_error)?;
    tokio::net::UdpSocket::from_std(sock).map_err(bind_error)
}

/// A listener on `addr` in namespace `ns`; with a `link`, one that only
/// accepts connections arriving on it: the path a request took is the link
/// it came in by.
fn tcp_listener(
    ns: &str,
    link: Option<&str>,
    addr: SocketAddrV4,
) -> Result<tokio::net::TcpListener, ServicesError> {
    use socket2::{Domain, Socket, Type};
    let listen_error = |source| ServicesError::Listen {
        ns: ns.into(),
        addr,
        link: link.unwrap_or("any link").into(),
        source,
    };
    let listener = netns::run_in(ns, || -> std::io::Result<std::net::TcpListener> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        if let Some(link) = link {
            s.bind_device(Some(link.as_bytes()))?;
        }
        s.bind(&SocketAddr::V4(addr).into())?;
        s.listen(1024)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    })?
    .map_err(listen_error)?;
    tokio::net::TcpListener::from_std(listener).map_err(listen_error)
}

/// The Amazon DNS's query log, one JSON object per query in the shape of
/// Route 53 Resolver query logging (`vpcsim logs dns`). Answers are not
/// listed, only their count.
struct QueryLog {
    file: crate::logfile::CappedLog,
    vpc_id: String,
    region: String,
}

impl QueryLog {
    fn open(plan: &crate::topology::plan::Lab) -> Result<QueryLog, ServicesError> {
        let path = dns_query_log(&plan.name);
        let file =
            crate::logfile::CappedLog::open(&path).map_err(|source| ServicesError::File {
                path: path.clone(),
                source,
            })?;
        Ok(QueryLog {
            file,
            vpc_id: plan.vpc_id.clone(),
            region: plan.region.clone(),
        })
    }

    fn record(
        &mut self,
        reply: &dns::Reply,
        peer: SocketAddr,
        nodes: &std::collections::HashMap<std::net::Ipv4Addr, String>,
    ) {
        use hickory_proto::op::ResponseCode;
        let Some(question) = &reply.question else {
            return;
        };
        let rcode = match reply.rcode {
            ResponseCode::NoError => "NOERROR",
            ResponseCode::FormErr => "FORMERR",
            ResponseCode::NXDomain => "NXDOMAIN",
            ResponseCode::NotImp => "NOTIMP",
            _ => "SERVFAIL",
        };
        let qtype = match u16::from(question.query_type()) {
            1 => "A".to_string(),
            28 => "AAAA".to_string(),
            n => format!("TYPE{n}"),
        };
        let node = match peer.ip() {
            std::net::IpAddr::V4(ip) => nodes.get(&ip).cloned(),
            _ => None,
        };
        let line = serde_json::json!({
            "version": "1.100000",
            "region": self.region,
            "vpc_id": self.vpc_id,
            "query_timestamp": s3::iso_time(std::time::SystemTime::now()),
            "query_name": question.name().to_ascii(),
            "query_type": qtype,
            "query_class": "IN",
            "rcode": rcode,
            "answer_count": reply.answers,
            "srcaddr": peer.ip().to_string(),
            "srcport": peer.port().to_string(),
            "transport": "UDP",
            "srcids": { "instance": node },
        });
        let _ = self.file.write_all(format!("{line}\n").as_bytes());
    }
}

/// The VPC DNS's query log (`vpcsim logs dns`).
pub fn dns_query_log(lab: &str) -> std::path::PathBuf {
    log_dir(lab).join("dns-queries.log")
}

async fn serve_dns(sock: tokio::net::UdpSocket, view: View, mut log: Option<QueryLog>) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let view = view.read().expect("dns view lock").clone();
        if let Some(reply) = view.zone.answer(&buf[..n]) {
            let _ = sock.send_to(&reply.wire, peer).await;
            if let Some(log) = log.as_mut() {
                log.record(&reply, peer, &view.nodes);
            }
        }
    }
}

/// S3 closes a connection idle this long (S3 documents no value; SDKs
/// reconnect transparently).
const S3_IDLE: Duration = Duration::from_secs(20);

/// Client connections S3, and the IMDS, each admit at once: 10,000, fewer
/// if the process's descriptors do not allow it.
fn connection_limit() -> usize {
    let fds = crate::connlimit::raise_nofile_limit() as usize;
    crate::connlimit::max_from_env(fds.saturating_sub(512).clamp(2, 10_000))
}

/// Linux's `net.ipv4.ip_default_ttl`.
const DEFAULT_TTL: u32 = 64;

/// The IMDS closes a connection idle this long (AWS documents no value).
const IMDS_IDLE: Duration = Duration::from_secs(20);

async fn serve_imds(
    listener: tokio::net::TcpListener,
    imds: Arc<RwLock<Arc<imds::Imds>>>,
    conns: Arc<Registry>,
) {
    accept_loop(listener, conns, move |stream, peer, adm| {
        let imds = imds.clone();
        async move {
            let std::net::IpAddr::V4(source) = peer.ip() else {
                return;
            };
            let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
            serve_http(stream, adm, IMDS_IDLE, move |req| {
                // The instance's PUT response hop limit (AWS's default 1):
                // the token's answer leaves with that TTL, so with 1 it
                // reaches the instance but dies at the next hop (a container
                // behind the instance's NAT).
                // HTTP/1 answers in order: the answer before this one is
                // written, so the TTL set here is this answer's.
                let imds = imds.read().expect("imds lock").clone();
                let ttl = if imds::is_token_request(&req) {
                    imds.put_hop_limit(source)
                } else {
                    DEFAULT_TTL
                };
                // SAFETY: hyper owns the stream for as long as it calls this
                // service, so the descriptor is open.
                let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                let _ = socket2::SockRef::from(&sock).set_ttl_v4(ttl);
                std::future::ready(imds.answer(source, &req))
            })
            .await;
        }
    })
    .await;
}

async fn serve_s3(
    listener: tokio::net::TcpListener,
    via: Arc<s3::Via>,
    server: Arc<s3::S3>,
    conns: Arc<Registry>,
) {
    accept_loop(listener, conns, move |stream, peer, adm| {
        let (via, server) = (via.clone(), server.clone());
        serve_http(stream, adm, s3::READ_TIMEOUT, move |req| {
            let (via, server) = (via.clone(), server.clone());
            async move {
                match server.handle(&via, peer, req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            }
        })
    })
    .await;
}

/// Serves one admitted HTTP/1 connection, each request answered by
/// `answer`; the connection counts as busy (not idle, for the limits)
/// while an answer is sent.
async fn serve_http<F, Fut>(
    stream: tokio::net::TcpStream,
    adm: crate::connlimit::Admitted,
    read_timeout: Duration,
    answer: F,
) where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    let conn = adm.conn.clone();
    let svc = hyper::service::service_fn(move |req| {
        let busy = conn.busy();
        let answered = answer(req);
        async move { Ok::<_, std::convert::Infallible>(answered.await.map(|b| Tracked::new(b, busy))) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
    drop(adm);
}
