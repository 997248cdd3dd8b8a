//! Phase 3: V2 in a real Docker container on a private instance, published
//! with `-p 80:8000` inside the instance's namespace, behind the ALB.
//!
//! These need a Docker engine. In CI (`CI` set) one must be there; elsewhere
//! a machine without one skips, saying why.

mod common;
use common::{require_root, vpcsim_bin, TestLab};
use std::process::Command;
use std::time::{Duration, Instant};

const MODEL_ID: &str = "V2 - Docker - Canary";

fn engine_reachable() -> bool {
    let sock = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(String::from))
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    std::os::unix::net::UnixStream::connect(sock).is_ok()
}

fn require_docker() -> bool {
    if !require_root() {
        return false;
    }
    if engine_reachable() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("the Docker tests run in CI: no Docker engine answers at /var/run/docker.sock");
    }
    eprintln!("skipping: no Docker engine answers at /var/run/docker.sock (these tests need one)");
    false
}

/// The model image is one per machine: the test that rebuilds it from
/// another binary holds this for writing, every test running it for reading,
/// so they never rebuild it under each other (each flip is a full build).
static MODEL_IMAGE: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn model_image() -> std::sync::RwLockReadGuard<'static, ()> {
    MODEL_IMAGE.read().unwrap_or_else(|e| e.into_inner())
}

/// Containers Docker still has for `lab` (running or not).
fn docker_containers(lab: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=vpcsim.lab={lab}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A private subnet with a Docker host and a client next to it; SG lets the
/// subnet reach the host's port 80 (and 8000, to show nothing answers there).
const PLUMBING: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "private-1"
cidr = "10.0.20.0/24"
az = "us-east-1a"

[[security_group]]
name = "sg-web"
ingress = [
  { protocol = "tcp", ports = "80", cidr = "10.0.20.0/24" },
  { protocol = "tcp", ports = "8000", cidr = "10.0.20.0/24" },
]

[[instance]]
name = "docker-host"
subnet = "private-1"
private_ip = "10.0.20.71"
security_groups = ["sg-web"]

[[instance]]
name = "client"
subnet = "private-1"
private_ip = "10.0.20.10"

[[container]]
name = "v2-docker"
host = "docker-host"
image = "vpcsim/model-v2"
ports = ["80:8000"]
env = { MODEL_ID = "V2 - Docker - Canary" }
"#;

/// One POST of the seed's API from `node`, with a 3 s budget; the body, or
/// None when the connection failed.
fn recommend(lab: &TestLab, node: &str, addr: &str, port: u16) -> Option<String> {
    let script = format!(
        "exec 3<>/dev/tcp/{addr}/{port} || exit 1; \
         printf 'POST /api/v1/recommendation HTTP/1.0\\r\\nContent-Type: application/json\\r\\nContent-Length: 14\\r\\n\\r\\n{{\"user_id\":42}}' >&3; \
         timeout 3 cat <&3"
    );
    let out = lab.exec(node, &["timeout", "5", "bash", "-c", &script]);
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !body.is_empty()).then_some(body)
}

#[test]
fn published_port_80_reaches_the_container_and_8000_is_not_published() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::up("t-dk-plumb", PLUMBING);
    let answer = lab
        .eventually(|| recommend(&lab, "client", "10.0.20.71", 80))
        .expect("docker-host:80 answers in the subnet");
    assert!(answer.contains(MODEL_ID), "{answer}");
    // The container's own log has the request (the V2 server's [LOG] line).
    let logs = lab.vpcsim(&["logs", "--lab", &lab.name, "v2-docker"]);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(String::from_utf8_lossy(&logs.stdout).contains(&format!("MODEL:{MODEL_ID}")));
    // The host itself reaches its published port on its own address.
    let own = lab
        .eventually(|| recommend(&lab, "docker-host", "10.0.20.71", 80))
        .expect("the host reaches its own port 80");
    assert!(own.contains(MODEL_ID));
    // Nothing listens on the host's 8000, and the bridge is the host's only.
    assert!(
        !lab.tcp_ok("client", "10.0.20.71", 8000),
        "8000 is not published"
    );
    assert!(
        !lab.tcp_ok("client", "172.17.0.2", 8000),
        "the container's address is not routed in the VPC"
    );
    // Inside the host: docker0 holds the gateway, the veth is its port.
    let (_, links) = lab.sh(
        "docker-host",
        "ip -o addr show docker0; ip -o link show master docker0",
    );
    assert!(links.contains("172.17.0.1/16"), "{links}");
    assert!(links.contains("veth"), "{links}");
    let status = lab.status();
    let c = &status["containers"][0];
    assert_eq!(c["name"], "v2-docker");
    assert_eq!(c["image"], "vpcsim/model-v2");
    assert_eq!(c["state"], "running");
    assert_eq!(c["attached"], true);
    assert_eq!(c["ports"][0], "80->8000/tcp");
    assert_eq!(docker_containers(&lab.name).len(), 1);
    let name = lab.name.clone();
    drop(lab);
    assert!(
        docker_containers(&name).is_empty(),
        "down removes the container"
    );
}

/// A container reaches the instance metadata service through its host's
/// NAT and reads the host's metadata (IMDSv1), but gets no IMDSv2 token:
/// the token's answer leaves with TTL 1 (AWS's default PUT response hop
/// limit) and dies at the host's forwarding, as on AWS. The host gets one.
#[test]
fn a_container_reads_imdsv1_but_gets_no_token_past_the_hop_limit() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::up("t-dk-imds", PLUMBING);
    let status = lab.status();
    let docker_name = status["containers"][0]["docker_name"].as_str().unwrap();
    let host_id = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "docker-host")
        .unwrap()["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", docker_name])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // curl in the container's network namespace (its image has no shell).
    let in_container = |args: &[&str]| {
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-n", "curl", "-s", "-m", "3"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let token = [
        "-X",
        "PUT",
        "-H",
        "X-aws-ec2-metadata-token-ttl-seconds: 60",
        "http://169.254.169.254/latest/api/token",
    ];
    assert_eq!(
        in_container(&["http://169.254.169.254/latest/meta-data/instance-id"]),
        (Some(0), host_id.clone()),
        "IMDSv1 from the container: the host's metadata"
    );
    assert_eq!(
        in_container(&token).0,
        Some(28),
        "the token's answer must not reach the container (curl times out)"
    );
    let mut args = vec!["curl", "-s", "-m", "3"];
    args.extend(token);
    let out = lab.exec("docker-host", &args);
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "the host itself gets a token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A hop limit of 2, set on the running host: the container gets one too.
    lab.edit(
        "name = \"docker-host\"\n",
        "name = \"docker-host\"\nmetadata_options = { http_put_response_hop_limit = 2 }\n",
    );
    lab.apply_ok();
    // The same container, still running (its network namespace is the one
    // `in_container` enters): a change to its host does not remove it.
    let (code, token) = in_container(&token);
    assert_eq!(code, Some(0), "a token past one hop with hop limit 2");
    assert!(!token.is_empty());
}

#[test]
fn stop_and_start_the_container_detach_and_reattach_it() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::up("t-dk-stop", PLUMBING);
    let stop = lab.vpcsim(&["stop", "--lab", &lab.name, "v2-docker"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(recommend(&lab, "client", "10.0.20.71", 80).is_none());
    let st = lab.status();
    assert_eq!(st["containers"][0]["state"], "exited");
    assert_eq!(st["containers"][0]["stopped"], true);
    // Its namespace is gone, and the veth with it: nothing half-attached.
    let (_, links) = lab.sh("docker-host", "ip -o link show master docker0");
    assert!(!links.contains("veth"), "{links}");
    let start = lab.vpcsim(&["start", "--lab", &lab.name, "v2-docker"]);
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
    let answer = lab
        .eventually(|| recommend(&lab, "client", "10.0.20.71", 80))
        .expect("answers again after start");
    assert!(answer.contains(MODEL_ID));
    let again = lab.vpcsim(&["start", "--lab", &lab.name, "v2-docker"]);
    assert_eq!(again.status.code(), Some(1), "already running");
    // The host instance stopping takes its container with it; its start does
    // not bring it back (restart policy `no`, as after a VM's reboot).
    for verb in ["stop", "start"] {
        let out = lab.vpcsim(&[verb, "--lab", &lab.name, "docker-host"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            lab.status()["containers"][0]["state"],
            "exited",
            "after {verb}"
        );
    }
}

#[test]
fn docker_restarting_the_container_leaves_it_unattached_until_start() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::up("t-dk-rest", PLUMBING);
    let docker_name = vpcsim::topology::plan::namespace(&lab.name, "v2-docker");
    let out = Command::new("docker")
        .args(["restart", "-t", "1", &docker_name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A new network namespace: no eth0, so the published port goes nowhere.
    assert!(recommend(&lab, "client", "10.0.20.71", 80).is_none());
    let st = lab.status();
    assert_eq!(st["containers"][0]["state"], "running");
    assert_eq!(st["containers"][0]["attached"], false);
    let start = lab.vpcsim(&["start", "--lab", &lab.name, "v2-docker"]);
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
    assert!(lab
        .eventually(|| recommend(&lab, "client", "10.0.20.71", 80))
        .is_some_and(|a| a.contains(MODEL_ID)));
    assert_eq!(lab.status()["containers"][0]["attached"], true);
}

#[test]
fn down_removes_the_container_after_kill_9_of_up() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::write("t-dk-crash", PLUMBING);
    let out = Command::new(vpcsim_bin())
        .args(["up", lab.file.to_str().unwrap()])
        .env("VPCSIM_CRASH_AT", "workloads")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        docker_containers(&lab.name).len(),
        1,
        "the container was started before the crash"
    );
    let down = lab.vpcsim(&["down", &lab.name]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(docker_containers(&lab.name).is_empty());
    assert!(vpcsim::fabric::netns::list(&vpcsim::topology::plan::lab_prefix(&lab.name)).is_empty());
}

#[test]
fn without_an_engine_a_lab_with_containers_fails_before_building() {
    if !require_root() {
        return;
    }
    let lab = TestLab::write("t-dk-noeng", PLUMBING);
    let out = Command::new(vpcsim_bin())
        .args(["up", lab.file.to_str().unwrap()])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no Docker engine answers at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert!(vpcsim::fabric::netns::list(&vpcsim::topology::plan::lab_prefix(&lab.name)).is_empty());
    assert!(!std::path::Path::new(&format!("/run/vpcsim/{}", lab.name)).exists());
    // A lab without containers never asks for Docker, up or down.
    let plain = PLUMBING.split("[[container]]").next().unwrap();
    let lab2 = TestLab::write("t-dk-nodock", plain);
    let up = Command::new(vpcsim_bin())
        .args(["up", lab2.file.to_str().unwrap()])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let down = Command::new(vpcsim_bin())
        .args(["down", &lab2.name])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert!(down.status.success());
    assert!(
        down.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

#[test]
fn container_sections_are_validated() {
    let bad = PLUMBING.replace(
        "[[container]]",
        r#"[[container]]
name = "client"
host = "nowhere"
image = "vpcsim/model-v2"
ports = ["80", "80:8000"]

[[container]]
name = "dup"
host = "docker-host"
image = "x"
ports = ["80:8000"]

[[container]]
name = "dup"
host = "docker-host"
image = "x"

[[container]]"#,
    );
    let lab = TestLab::write("t-dk-valid", &bad);
    let out = lab.vpcsim(&["up", lab.file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "container[0].name: container name `client` is already a node name",
        "container[0].host: no instance named `nowhere`",
        "container[0].ports[0]: bad port mapping `80`",
        "container[2].name: duplicate container name `dup`",
        "container[3].ports[0]: host port 80/tcp of `docker-host` is already taken by container `dup`",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    // The host's own model server holds 8000.
    let clash = PLUMBING
        .replace(
            "security_groups = [\"sg-web\"]\n",
            "security_groups = [\"sg-web\"]\nrun = \"model-v1\"\n",
        )
        .replace("ports = [\"80:8000\"]", "ports = [\"8000:8000\"]");
    let lab = TestLab::write("t-dk-valid2", &clash);
    let out = lab.vpcsim(&["up", lab.file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("already taken by the instance's own workload `model-v1`"),
        "{err}"
    );
}

// ---- behind the ALB: the report's final architecture ---------------------------------------

/// Target health of `group`'s targets, from the running ALB daemon.
fn target_states(lab: &TestLab, group: &str) -> Vec<String> {
    let st = vpcsim::lb::client::query_status(&lab.name).expect("ALB daemon answers");
    st.target_groups
        .iter()
        .find(|g| g.name == group)
        .map(|g| g.targets.iter().map(|t| t.state.clone()).collect())
        .unwrap_or_default()
}

/// Polls until every target of `group` is in `state` (the health checks
/// decide when; no deadline is asserted beyond a generous bound).
fn wait_for_targets(lab: &TestLab, group: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let states = target_states(lab, group);
        if !states.is_empty() && states.iter().all(|s| s == state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group} never became {state}: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `n` POSTs to the ALB's DNS name from the internet host (8 in parallel);
/// counts answers by model_id (`status N` for errors).
fn through_alb(lab: &TestLab, n: usize) -> std::collections::BTreeMap<String, u64> {
    let dns = lab.status()["load_balancers"][0]["dns_name"]
        .as_str()
        .unwrap()
        .to_string();
    let script = format!(
        r#"
import http.client, json, collections, concurrent.futures
def one(i):
    c = http.client.HTTPConnection("{dns}", 80, timeout=10)
    try:
        c.request("POST", "/api/v1/recommendation", json.dumps({{"user_id": i}}), {{"Content-Type": "application/json"}})
        r = c.getresponse(); body = r.read()
        return json.loads(body)["model_id"] if r.status == 200 else "status %d" % r.status
    except Exception as e:
        return type(e).__name__
    finally:
        c.close()
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    print(json.dumps(collections.Counter(ex.map(one, range({n})))))
"#
    );
    let out = lab.exec("internet", &["python3", "-c", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_alb_sends_a_tenth_to_the_container_and_weight_0_rolls_it_back() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::up_shipped("t-dk-alb", "canary-docker.toml");
    wait_for_targets(&lab, "tg-v2-docker", "healthy");
    wait_for_targets(&lab, "tg-v2", "healthy");
    wait_for_targets(&lab, "tg-v1", "healthy");
    let counts = through_alb(&lab, 2000);
    let docker = counts.get(MODEL_ID).copied().unwrap_or(0);
    let v2 = counts
        .get("V2 - DeepLearning - Canary")
        .copied()
        .unwrap_or(0);
    let v1 = counts.get("V1 - Stable").copied().unwrap_or(0);
    assert_eq!(v1 + v2 + docker, 2000, "every request answered: {counts:?}");
    // 10 % of 2,000 is 200; +-60 is over 4 standard deviations.
    assert!((140..=260).contains(&docker), "{counts:?}");
    assert!((140..=260).contains(&v2), "{counts:?}");

    // The container's 8000 is not reachable from the ALB node: only 80 is published.
    assert!(!lab.tcp_ok("alb-a", "10.0.20.71", 8000));
    assert!(!lab.tcp_ok("alb-a", "172.17.0.2", 8000));

    // Stopping the container (the rollback the report's last reflection
    // question proposes): once the health checks mark the target unhealthy,
    // the ALB fails open inside tg-v2-docker, as AWS does (it never moves a
    // weighted group's share to the other groups): that share now fails.
    let stop = lab.vpcsim(&["stop", "--lab", &lab.name, "v2-docker"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    wait_for_targets(&lab, "tg-v2-docker", "unhealthy");
    let after = through_alb(&lab, 500);
    assert_eq!(after.get(MODEL_ID), None, "{after:?}");
    let failed = after.get("status 502").copied().unwrap_or(0);
    assert!(
        (15..=90).contains(&failed),
        "about a tenth fails: {after:?}"
    );
    assert_eq!(answered(&after) + failed, 500, "{after:?}");

    // The rollback that works: weight 0 for the group; no request fails.
    let w = lab.vpcsim(&[
        "weights",
        "--lab",
        &lab.name,
        "alb:80",
        "tg-v1=8",
        "tg-v2=1",
        "tg-v2-docker=0",
    ]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    assert_eq!(answered(&through_alb(&lab, 500)), 500);

    // And back: start re-attaches the container's new namespace.
    let start = lab.vpcsim(&["start", "--lab", &lab.name, "v2-docker"]);
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
    let w = lab.vpcsim(&[
        "weights",
        "--lab",
        &lab.name,
        "alb:80",
        "tg-v1=8",
        "tg-v2=1",
        "tg-v2-docker=1",
    ]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    wait_for_targets(&lab, "tg-v2-docker", "healthy");
    let back = through_alb(&lab, 500);
    assert!(back.get(MODEL_ID).copied().unwrap_or(0) > 0, "{back:?}");
    assert_eq!(
        answered(&back) + back.get(MODEL_ID).copied().unwrap_or(0),
        500,
        "{back:?}"
    );
}

/// Answers from the two instance groups.
fn answered(counts: &std::collections::BTreeMap<String, u64>) -> u64 {
    ["V1 - Stable", "V2 - DeepLearning - Canary"]
        .iter()
        .map(|m| counts.get(*m).copied().unwrap_or(0))
        .sum()
}

#[test]
fn without_port_80_in_sg_backend_the_docker_target_is_unhealthy() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/canary-docker.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let rule = r#"  { protocol = "tcp", ports = "80", source_sg = "sg-alb", description = "Docker -p 80:8000" },"#;
    assert!(text.contains(rule));
    let lab = TestLab::up("t-dk-nosg", &text.replace(rule, ""));
    wait_for_targets(&lab, "tg-v1", "healthy");
    wait_for_targets(&lab, "tg-v2-docker", "unhealthy");
    // The container itself is fine: only the security group is in the way.
    assert_eq!(lab.status()["containers"][0]["state"], "running");
    let (_, dropped) = lab.dropped_by(|| lab.tcp_ok("alb-a", "10.0.20.71", 80));
    assert!(
        dropped.iter().any(|d| d.contains("sg-backend")),
        "{dropped:?}"
    );
}

#[test]
fn a_missing_image_exits_2_before_building_and_nothing_is_pulled() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let image = "vpcsim-test/absent:1";
    let lab = TestLab::write(
        "t-dk-noimg",
        &PLUMBING.replace(
            "image = \"vpcsim/model-v2\"",
            &format!("image = \"{image}\""),
        ),
    );
    let out = lab.vpcsim(&["up", lab.file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "image `{image}` is not on this machine and vpcsim never pulls"
        )),
        "{err}"
    );
    assert!(vpcsim::fabric::netns::list(&format!("vpcsim-{}-", lab.name)).is_empty());
    assert!(!std::path::Path::new(&format!("/run/vpcsim/{}", lab.name)).exists());
    let images = Command::new("docker")
        .args(["images", "-q", image])
        .output()
        .unwrap();
    assert!(images.status.success());
    assert!(images.stdout.is_empty(), "the image was pulled");
}

/// The label of the model image that says which vpcsim binary it holds.
fn image_binary_label() -> String {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"vpcsim.binary\"}}",
            "vpcsim/model-v2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_model_image_is_rebuilt_when_the_binary_changes() {
    if !require_docker() {
        return;
    }
    let _image = MODEL_IMAGE.write().unwrap_or_else(|e| e.into_inner());
    // Another vpcsim binary (a copy: new modification time), as after a
    // rebuild: its `up` must rebuild the image, whose label names it.
    let dir = std::env::temp_dir().join(format!("vpcsim-rebuild-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("vpcsim");
    std::fs::copy(vpcsim_bin(), &copy).unwrap();
    let lab = TestLab::write("t-dk-rebuild", PLUMBING);
    let up = |bin: &std::path::Path| {
        let out = Command::new(bin)
            .args(["up", lab.file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let label = image_binary_label();
        let down = Command::new(bin)
            .args(["down", &lab.name])
            .output()
            .unwrap();
        assert!(down.status.success());
        label
    };
    let with_copy = up(&copy);
    let with_original = up(&vpcsim_bin());
    assert_ne!(
        with_copy, with_original,
        "the image was not rebuilt for the other binary"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_container_that_cannot_be_attached_is_killed_not_left_half_attached() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::up("t-dk-half", PLUMBING);
    let stop = lab.vpcsim(&["stop", "--lab", &lab.name, "v2-docker"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    // Sabotage the host: `docker0` is no longer a bridge (a veth), so the
    // container's new veth cannot be plugged into it.
    let (code, out) = lab.sh(
        "docker-host",
        "ip link del docker0 && ip link add docker0 type veth peer name not-a-bridge && ip link set docker0 up",
    );
    assert_eq!(code, 0, "{out}");
    let start = lab.vpcsim(&["start", "--lab", &lab.name, "v2-docker"]);
    assert!(
        !start.status.success(),
        "start must fail when the attach fails"
    );
    // Docker started it, the attach failed: vpcsim killed it again.
    let st = lab.status();
    assert_ne!(st["containers"][0]["state"], "running", "{st:#}");
    assert_eq!(st["containers"][0]["attached"], false, "{st:#}");
    let (_, links) = lab.sh("docker-host", "ip -o link show");
    assert!(
        !links.contains(": veth"),
        "a container veth was left: {links}"
    );
}

/// `vpcsim apply` recreates a container whose ports or environment changed
/// (Docker changes neither in place) and removes one the file drops; the
/// host instance and its other traffic stay.
#[test]
fn apply_recreates_a_changed_container_and_removes_a_dropped_one() {
    if !require_docker() {
        return;
    }
    let _image = model_image();
    let lab = TestLab::up("t-dk-apply", PLUMBING);
    lab.eventually(|| recommend(&lab, "client", "10.0.20.71", 80))
        .expect("docker-host:80 answers");
    let changed = PLUMBING
        .replace(r#"ports = ["80:8000"]"#, r#"ports = ["8000:8000"]"#)
        .replace("V2 - Docker - Canary", "V2 - Docker - Moved");
    let plan = lab.apply(&changed);
    assert!(plan.contains("-/+ container v2-docker ("), "{plan}");
    let answer = lab
        .eventually(|| recommend(&lab, "client", "10.0.20.71", 8000))
        .expect("the recreated container answers on its new port");
    assert!(answer.contains("V2 - Docker - Moved"), "{answer}");
    assert!(
        !lab.tcp_ok("client", "10.0.20.71", 80),
        "80 is no longer published"
    );
    assert_eq!(docker_containers(&lab.name).len(), 1);

    // A container whose image is not on this machine cannot be created:
    // refused before anything changes, the running one untouched.
    let absent = changed.replace(
        "image = \"vpcsim/model-v2\"",
        "image = \"vpcsim-test/absent:1\"",
    );
    std::fs::write(&lab.file, common::set_name(&absent, &lab.name)).unwrap();
    let out = lab.apply_file();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("vpcsim never pulls"), "{err}");
    assert!(lab
        .eventually(|| recommend(&lab, "client", "10.0.20.71", 8000))
        .is_some_and(|a| a.contains("V2 - Docker - Moved")));

    let cut = changed.find("[[container]]").unwrap();
    let plan = lab.apply(&changed[..cut]);
    assert!(plan.contains("- container v2-docker"), "{plan}");
    assert!(docker_containers(&lab.name).is_empty());
    assert!(!lab.tcp_ok("client", "10.0.20.71", 8000));
}
