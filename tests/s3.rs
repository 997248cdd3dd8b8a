//! S3 through the gateway endpoint, bucket policies with aws:SourceVpce and
//! the VPC's DNS, with the real AWS CLI inside lab nodes. The S3 server's
//! access log (its view of each request: source address, endpoint id) is
//! the evidence of which path a request took.

mod common;
use common::{require_root, TestLab};
use std::path::{Path, PathBuf};
use std::process::Command;

const VPCE: &str = "vpce-0aa42de173d26c739";
const OBJECT: &str = "s3://p4-buquet/backend/model_v1_prod.py";

fn shipped(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(rel)
}

fn model_v1() -> String {
    std::fs::read_to_string(shipped("canary/bucket/backend/model_v1_prod.py")).unwrap()
}

/// The AWS CLI is installed by scripts/setup; outside CI a machine without
/// it skips the CLI tests.
fn require_aws_cli() -> bool {
    let ok = Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "the AWS CLI is missing: scripts/setup installs it"
        );
        eprintln!("skipping: the AWS CLI is not installed (python3 -m pip install awscli)");
    }
    ok
}

/// A public subnet, a private subnet whose table has the endpoint and one
/// whose table sends everything (S3 included) to the NAT gateway; the
/// report's bucket and policy, and a scratch bucket for writes.
fn paths_topology(extra: &str) -> String {
    format!(
        r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "public-1"
cidr = "10.0.10.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "private-1"
cidr = "10.0.20.0/24"
az = "us-east-1a"
route_table = "private-ep"

[[subnet]]
name = "private-2"
cidr = "10.0.40.0/24"
az = "us-east-1b"
route_table = "private-nat"

[internet_gateway]
name = "igw"

[[nat_gateway]]
name = "nat-1"
subnet = "public-1"
elastic_ip = "198.51.100.20"

[[route_table]]
name = "public"
routes = [{{ destination = "0.0.0.0/0", target = "igw" }}]

[[route_table]]
name = "private-ep"
routes = [{{ destination = "0.0.0.0/0", target = "nat-1" }}]

[[route_table]]
name = "private-nat"
routes = [{{ destination = "0.0.0.0/0", target = "nat-1" }}]

[[vpc_endpoint]]
name = "s3"
service = "s3"
type = "gateway"
route_tables = ["private-ep"]
id = "{VPCE}"

[[s3_bucket]]
name = "p4-buquet"
seed_dir = "{bucket}"
policy_file = "{policy}"

[[s3_bucket]]
name = "lab-scratch"
policy_file = "{scratch}"

[[instance]]
name = "web"
subnet = "public-1"
private_ip = "10.0.10.10"

[[instance]]
name = "app"
subnet = "private-1"
private_ip = "10.0.20.16"

[[instance]]
name = "other"
subnet = "private-2"
private_ip = "10.0.40.16"
{extra}"#,
        bucket = shipped("canary/bucket").display(),
        policy = shipped("canary/bucket-policy.json").display(),
        scratch = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/scratch-policy.json")
            .display(),
    )
}

impl TestLabS3 for TestLab {
    fn aws(&self, node: &str, args: &str) -> (i32, String, String) {
        let out = self.exec(
            node,
            &[
                "sh",
                "-c",
                &format!("AWS_ACCESS_KEY_ID=AKIATEST AWS_SECRET_ACCESS_KEY=x AWS_MAX_ATTEMPTS=1 aws {args}"),
            ],
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn s3_log_last(&self) -> String {
        let log = format!("/run/vpcsim/{}/logs/s3-access.log", self.name);
        std::fs::read_to_string(log)
            .unwrap()
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    }

    fn public_ip(&self, node: &str) -> String {
        let status = self.status();
        let n = status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .unwrap();
        n["public_ip"].as_str().unwrap().to_string()
    }
}

trait TestLabS3 {
    /// Runs the AWS CLI in a node with throw-away credentials (any access
    /// key works in the lab) and no retries: (exit code, stdout, stderr).
    fn aws(&self, node: &str, args: &str) -> (i32, String, String);
    /// The S3 server's access log, last line.
    fn s3_log_last(&self) -> String;
    fn public_ip(&self, node: &str) -> String;
}

/// One DNS query for an A record, sent from `node` straight to `server`
/// (no /etc/hosts): `NOERROR <first address>` or the response code's name.
fn dns_query(lab: &TestLab, node: &str, server: &str, name: &str) -> String {
    let script = format!(
        r#"
import socket, struct
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in "{name}".split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(q, ("{server}", 53)); r = s.recv(2048)
rcode = r[3] & 15; answers = struct.unpack(">H", r[6:8])[0]
if rcode: print({{3: "NXDOMAIN", 2: "SERVFAIL", 5: "REFUSED"}}.get(rcode, rcode))
elif not answers: print("NOERROR")
else: print("NOERROR", ".".join(str(b) for b in r[-4:]))
"#
    );
    let out = lab.exec(node, &["python3", "-c", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn cli_gets_the_model_through_the_endpoint_and_403_elsewhere() {
    if !require_root() || !require_aws_cli() {
        return;
    }
    let lab = TestLab::up("s3-paths", &paths_topology(""));
    let cp = format!("s3 cp {OBJECT} -");

    // Private subnet with the endpoint route: allowed, seen with its private
    // address on the endpoint.
    let (code, out, err) = lab.aws("app", &cp);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, model_v1());
    let log = lab.s3_log_last();
    assert!(
        log.contains(" 10.0.20.16 ") && log.contains(" 200 ") && log.ends_with(VPCE),
        "{log}"
    );

    // Public instance: through the IGW, with its public address, no
    // endpoint: the policy's aws:SourceVpce condition fails.
    let (code, _, err) = lab.aws("web", &cp);
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");
    let log = lab.s3_log_last();
    assert!(
        log.contains(&format!(" {} ", lab.public_ip("web")))
            && log.contains("403 AccessDenied")
            && log.ends_with(" -"),
        "{log}"
    );

    // The internet host.
    let (code, _, err) = lab.aws("internet", &cp);
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");
    assert!(
        lab.s3_log_last().contains(" 203.0.113.10 "),
        "{}",
        lab.s3_log_last()
    );

    // A private subnet whose table has no endpoint: the request leaves
    // through the NAT gateway (S3 sees its Elastic IP) and is denied.
    let (code, _, err) = lab.aws("other", &cp);
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");
    let log = lab.s3_log_last();
    assert!(
        log.contains(" 198.51.100.20 ") && log.contains("403 AccessDenied") && log.ends_with(" -"),
        "{log}"
    );
}

#[test]
fn cli_writes_lists_and_deletes_through_the_endpoint() {
    if !require_root() || !require_aws_cli() {
        return;
    }
    let lab = TestLab::up("s3-crud", &paths_topology(""));
    let (code, _, err) = lab.aws("app", "s3 cp /etc/hostname s3://lab-scratch/dir/a.txt");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = lab.aws("app", "s3 ls s3://lab-scratch/dir/");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("a.txt"), "{out}");
    let (code, out, err) = lab.aws(
        "app",
        "s3api list-buckets --query Buckets[].Name --output text",
    );
    assert_eq!(
        (code, out.split_whitespace().collect::<Vec<_>>()),
        (0, vec!["lab-scratch", "p4-buquet"]),
        "{err}"
    );
    // Writes from outside the endpoint are denied by the same condition.
    let (code, _, err) = lab.aws("web", "s3 cp /etc/hostname s3://lab-scratch/dir/b.txt");
    assert_ne!(code, 0);
    assert!(err.contains("AccessDenied"), "{err}");
    let (code, _, err) = lab.aws("app", "s3 rm s3://lab-scratch/dir/a.txt");
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = lab.aws("app", "s3 ls s3://lab-scratch/dir/");
    assert!(!out.contains("a.txt"), "{out}");
}

#[test]
fn dns_resolves_s3_bucket_and_instance_names_and_virtual_hosts_work() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up("s3-dns", &paths_topology(""));
    for name in [
        "s3.us-east-1.amazonaws.com",
        "s3.amazonaws.com",
        "p4-buquet.s3.us-east-1.amazonaws.com",
    ] {
        let (code, out) = lab.sh("app", &format!("getent hosts {name}"));
        assert_eq!(
            (code, out.split_whitespace().next()),
            (0, Some("192.0.2.10")),
            "{name}"
        );
        let (code, out) = lab.sh("internet", &format!("getent hosts {name}"));
        assert_eq!(
            (code, out.split_whitespace().next()),
            (0, Some("192.0.2.10")),
            "internet: {name}"
        );
    }
    // Not in /etc/hosts: answered by the Amazon DNS at 10.0.0.2.
    let (code, out) = lab.sh(
        "other",
        "grep nameserver /etc/resolv.conf; getent hosts ip-10-0-20-99.ec2.internal",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("nameserver 10.0.0.2") && out.contains("10.0.20.99"),
        "{out}"
    );
    // Offline: anything else does not exist (and fails at once).
    assert_eq!(lab.sh("app", "getent hosts example.com").0, 2);

    // Virtual-hosted and path-style, unsigned (the policy's Principal is
    // "*"), by name through the VPC's DNS.
    let (_, out) = lab.sh(
        "app",
        "curl -s http://p4-buquet.s3.us-east-1.amazonaws.com:443/backend/model_v1_prod.py",
    );
    assert_eq!(out, model_v1());
    let (_, out) = lab.sh(
        "app",
        "curl -s http://s3.us-east-1.amazonaws.com:443/p4-buquet/backend/model_v1_prod.py",
    );
    assert_eq!(out, model_v1());
    // No s3:ListBucket for this requester: a missing key is a 403, as on S3.
    let (_, out) = lab.sh(
        "app",
        "curl -s -w ' %{http_code}' http://s3.us-east-1.amazonaws.com/p4-buquet/backend/missing",
    );
    assert!(
        out.contains("<Code>AccessDenied</Code>") && out.ends_with(" 403"),
        "{out}"
    );
    let (_, out) = lab.sh(
        "app",
        "curl -s -w ' %{http_code}' http://lab-scratch.s3.amazonaws.com/missing",
    );
    assert!(
        out.contains("<Code>NoSuchKey</Code>") && out.ends_with(" 404"),
        "{out}"
    );
    // The rest of the API the README lists, as S3 answers it.
    let curl = |args: &str| {
        lab.sh("app", &format!("curl -s -w ' %{{http_code}}' {args}"))
            .1
    };
    let out = curl("-I http://s3.us-east-1.amazonaws.com/lab-scratch");
    assert!(out.ends_with(" 200"), "HeadBucket: {out}");
    let out = curl("-I http://s3.us-east-1.amazonaws.com/no-such-bucket");
    assert!(
        out.ends_with(" 404"),
        "HeadBucket of a missing bucket: {out}"
    );
    let out = curl("http://s3.us-east-1.amazonaws.com/no-such-bucket/k");
    assert!(
        out.contains("<Code>NoSuchBucket</Code>") && out.ends_with(" 404"),
        "{out}"
    );
    let out = curl("'http://s3.us-east-1.amazonaws.com/lab-scratch?location'");
    assert!(
        out.contains("LocationConstraint") && out.ends_with(" 200"),
        "GetBucketLocation: {out}"
    );
    let out = curl("-I http://s3.us-east-1.amazonaws.com/p4-buquet/backend/model_v1_prod.py");
    assert!(
        out.to_ascii_lowercase()
            .contains(&format!("content-length: {}", model_v1().len()))
            && out.ends_with(" 200"),
        "HeadObject: {out}"
    );
    let out = curl("'http://s3.us-east-1.amazonaws.com/lab-scratch?tagging'");
    assert!(
        out.contains("<Code>NotImplemented</Code>") && out.ends_with(" 501"),
        "{out}"
    );
    // ListBuckets needs a signed request: anonymous is refused.
    let out = curl("http://s3.us-east-1.amazonaws.com/");
    assert!(
        out.contains("<Code>AccessDenied</Code>") && out.ends_with(" 403"),
        "unsigned ListBuckets: {out}"
    );

    // The internet's hosts use the public resolver at 192.0.2.53: public
    // names only, no private ones, no instance names.
    let (_, conf) = lab.sh("internet", "cat /etc/resolv.conf");
    assert!(conf.contains("nameserver 192.0.2.53"), "{conf}");
    // (Asked directly: /etc/hosts of every node lists the lab's names.)
    assert_eq!(
        dns_query(&lab, "internet", "192.0.2.53", "s3.amazonaws.com"),
        "NOERROR 192.0.2.10"
    );
    for private in ["ip-10-0-20-16.ec2.internal", "app.ec2.internal"] {
        assert_eq!(
            dns_query(&lab, "internet", "192.0.2.53", private),
            "NXDOMAIN",
            "{private}"
        );
    }
    assert_eq!(
        dns_query(&lab, "app", "10.0.0.2", "ip-10-0-20-16.ec2.internal"),
        "NOERROR 10.0.20.16"
    );
    // In the VPC: `search ec2.internal`, and instance names in /etc/hosts.
    let (_, conf) = lab.sh("app", "cat /etc/resolv.conf");
    assert!(conf.contains("search ec2.internal"), "{conf}");
    let (code, out) = lab.sh("app", "getent hosts other; getent hosts ip-10-0-40-16");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines().all(|l| l.starts_with("10.0.40.16")) && out.lines().count() == 2,
        "{out}"
    );
}

#[test]
fn nacls_and_security_groups_apply_to_endpoint_traffic() {
    if !require_root() {
        return;
    }
    // Three private subnets on the endpoint: one whose NACL lacks outbound
    // 443, one with the report's literal table 3 (443 in, no ephemeral
    // range back from S3), one open but with an instance whose security
    // group allows no 443 out.
    let topo = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "no-out-443"
cidr = "10.0.20.0/24"
az = "us-east-1a"
route_table = "private"
nacl = "no-out-443"

[[subnet]]
name = "report"
cidr = "10.0.40.0/24"
az = "us-east-1a"
route_table = "private"
nacl = "report"

[[subnet]]
name = "open"
cidr = "10.0.60.0/24"
az = "us-east-1a"
route_table = "private"

[[route_table]]
name = "private"

[[vpc_endpoint]]
name = "s3"
service = "s3"
type = "gateway"
route_tables = ["private"]

[[s3_bucket]]
name = "nacl-bucket"

[[nacl]]
name = "no-out-443"
inbound = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]
outbound = [{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" }]

[[nacl]]
name = "report"
inbound = [{ rule = 120, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }]
outbound = [{ rule = 110, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }]

[[security_group]]
name = "sg-http-only"
egress = [{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }]

[[instance]]
name = "a"
subnet = "no-out-443"

[[instance]]
name = "b"
subnet = "report"

[[instance]]
name = "c"
subnet = "open"
security_groups = ["sg-http-only"]

[[instance]]
name = "d"
subnet = "open"
private_ip = "10.0.60.10"
"#;
    let lab = TestLab::up("s3-nacl", topo);
    // The Amazon DNS answers under any NACL and any security group (traffic
    // to it is never filtered, and no drop rule counts it), even for `c`,
    // whose group allows nothing out but tcp/80.
    for node in ["a", "b", "c"] {
        let ((code, out), dropped) =
            lab.dropped_by(|| lab.sh(node, "getent hosts nacl-bucket.s3.us-east-1.amazonaws.com"));
        assert_eq!(code, 0, "{node}: the Amazon DNS did not answer");
        assert!(out.starts_with("192.0.2.10"), "{node}: {out}");
        assert!(
            dropped.is_empty(),
            "{node}: DNS traffic was dropped by {dropped:?}"
        );
    }
    // The S3 request itself (to the address, no lookup: only HTTPS is
    // counted) is dropped, and the counters name the rule.
    let probe = |node: &str| {
        lab.sh(node, "curl -s -o /dev/null -w '%{http_code}' --max-time 2 --resolve nacl-bucket.s3.us-east-1.amazonaws.com:443:192.0.2.10 http://nacl-bucket.s3.us-east-1.amazonaws.com:443/k").1
    };
    for (node, rule) in [
        ("a", "nacl no-out-443 outbound rule * deny"),
        ("b", "nacl report inbound rule * deny"),
        ("c", "sg sg-http-only egress: no rule allows it"),
    ] {
        let (code, dropped) = lab.dropped_by(|| probe(node));
        assert_eq!(code, "000", "{node} reached S3");
        assert!(
            dropped.iter().any(|d| d == rule),
            "{node}: dropped by {dropped:?}, expected {rule}"
        );
    }
    // The same request from the open subnet reaches S3 (a bucket without a
    // policy grants nothing: 403).
    assert!(
        lab.eventually(|| (probe("d") == "403").then_some(()))
            .is_some(),
        "the open subnet never reached S3"
    );
    // The endpoint is one-way: nothing on the S3 side opens a connection
    // into the VPC.
    lab.listen("d", &["tcp/8000"]);
    let (answer, dropped) = lab.dropped_by(|| lab.tcp("s3", "10.0.60.10", 8000));
    assert_eq!(answer, None);
    // `contains`: S3's retransmissions to the earlier, NACL-blocked probes
    // may still be counted by their NACL rule meanwhile.
    assert!(
        dropped.contains(&"vpce: endpoints carry only connections from the VPC".to_string()),
        "dropped by {dropped:?}"
    );
}

#[test]
fn canary_user_data_downloads_the_models_and_the_alb_serves() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_shipped("s3-canary", "canary.toml");
    // User data runs in the background after `up`; wait (bounded) for its
    // last download.
    let app = PathBuf::from(format!("/run/vpcsim/{}/nodes/v1-a/app", lab.name));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !app.join("modelo.pkl").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for f in ["model_v1_prod.py", "model_v2_canary.py", "modelo.pkl"] {
        let want = std::fs::read(shipped(&format!("canary/bucket/backend/{f}"))).unwrap();
        assert_eq!(std::fs::read(app.join(f)).ok(), Some(want), "{f}");
    }
    // Through the endpoint, with the report's endpoint id, made by the AWS
    // CLI itself (its User-Agent in S3's log), not by the curl fallback,
    // whose own echo would otherwise satisfy the console check below.
    let cli = Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        cli || std::env::var_os("CI").is_none(),
        "the AWS CLI is missing: scripts/setup installs it"
    );
    let agent = if cli { "\"aws-cli/" } else { "\"curl/" };
    let log =
        std::fs::read_to_string(format!("/run/vpcsim/{}/logs/s3-access.log", lab.name)).unwrap();
    assert!(
        log.lines().any(|l| l.contains(" 10.0.20.16 ")
            && l.contains("REST.GET.OBJECT backend/model_v1_prod.py")
            && l.contains(agent)
            && l.ends_with(VPCE)),
        "no GET by {agent} in:\n{log}"
    );
    let console =
        String::from_utf8_lossy(&lab.vpcsim(&["logs", "--lab", &lab.name, "v1-a"]).stdout)
            .into_owned();
    assert!(
        console.contains("download: s3://p4-buquet/backend/model_v1_prod.py"),
        "{console}"
    );

    // The model serves behind the ALB, reached by its DNS name.
    let dns = lab.status()["load_balancers"][0]["dns_name"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out) = lab.sh(
        "internet",
        &format!("curl -s -X POST -H 'Content-Type: application/json' -d '{{\"user_id\": \"test\"}}' http://{dns}/api/v1/recommendation"),
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("\"model_id\":\"V1 - Stable\"") || out.contains("Canary"),
        "{out}"
    );
    // The internet's resolver knows S3 too.
    let (_, out) = lab.sh("internet", "getent hosts s3.amazonaws.com");
    assert!(out.starts_with("192.0.2.10"), "{out}");
}

/// `apply` changes a running lab the way AWS changes a VPC: objects written
/// since `up` stay, a new bucket and a new instance appear, the endpoint
/// now serves a second route table.
#[test]
fn objects_written_before_a_change_survive_it() {
    if !require_root() || !require_aws_cli() {
        return;
    }
    let lab = TestLab::up("s3-apply", &paths_topology(""));
    let file = format!("/tmp/{}-kept.txt", lab.name);
    std::fs::write(&file, "written before the change\n").unwrap();
    let (code, _, err) = lab.aws("app", &format!("s3 cp {file} s3://lab-scratch/kept.txt"));
    assert_eq!(code, 0, "{err}");
    let mut text = std::fs::read_to_string(&lab.file).unwrap();
    text = text.replace(
        r#"route_tables = ["private-ep"]"#,
        r#"route_tables = ["private-ep", "private-nat"]"#,
    );
    // The scratch bucket's policy (writes through the endpoint), for the new one.
    let scratch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scratch-policy.json");
    let policy = lab.file.with_file_name("lab-new-policy.json");
    std::fs::write(
        &policy,
        std::fs::read_to_string(scratch)
            .unwrap()
            .replace("lab-scratch", "lab-new"),
    )
    .unwrap();
    text.push_str(&format!(
        "\n[[s3_bucket]]\nname = \"lab-new\"\npolicy_file = \"{}\"\n\n[[instance]]\nname = \"late\"\nsubnet = \"private-2\"\nprivate_ip = \"10.0.40.17\"\n",
        policy.display()
    ));
    std::fs::write(&lab.file, text).unwrap();
    let plan = lab.apply_ok();
    for line in [
        "+ bucket lab-new",
        "+ instance late (private-2, 10.0.40.17)",
        "~ vpc endpoint s3: route table + private-nat",
    ] {
        assert!(plan.contains(line), "missing `{line}` in\n{plan}");
    }
    let (code, out, err) = lab.aws("app", "s3 cp s3://lab-scratch/kept.txt -");
    assert_eq!(
        code, 0,
        "the object written before the change is gone: {err}"
    );
    assert_eq!(out.trim(), "written before the change");
    let _ = std::fs::remove_file(&file);
    // The endpoint now carries private-2's traffic: S3 sees the private IP.
    let (code, _, err) = lab.aws("other", "s3 cp /etc/hostname s3://lab-new/b.txt");
    assert_eq!(code, 0, "{err}");
    let log = lab.s3_log_last();
    assert!(log.contains(" 10.0.40.16 ") && log.contains(VPCE), "{log}");
    // The instance that did not exist at `up` reaches S3 too.
    let (code, _, err) = lab.aws("late", "s3 cp s3://lab-new/b.txt -");
    assert_eq!(code, 0, "{err}");
}
