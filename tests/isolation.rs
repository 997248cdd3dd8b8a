//! Issue 9's isolation attacks, each as a test's input: a lab whose names
//! collide with another's, another user or a stuck command holding a lab's
//! lock, an instance trying to leave its namespace, ARP spoofing inside a
//! subnet. The assertion is what must hold: nothing outside the lab touched.

mod common;
use common::{lab_name, require_root, vpcsim_bin, TestLab};
use std::process::Command;
use std::time::{Duration, Instant};

const SMALL: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "public-1"
cidr = "10.0.10.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true

[internet_gateway]
name = "igw"

[[route_table]]
name = "public"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]

[[instance]]
name = "NODE"
subnet = "public-1"
user_data = "sleep 1000"
"#;

fn namespaces(lab: &str) -> Vec<String> {
    vpcsim::fabric::netns::list(&vpcsim::topology::plan::lab_prefix(lab))
}

/// Live PIDs whose command line is exactly `args` (found by reading /proc;
/// never used to signal anything but what the test started).
fn pids_running(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .filter(|&pid| vpcsim::state::proc_stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X')))
        .collect()
}

/// Issue 9 item 5: lab `rel5-x` is up; lab `rel5` has an instance named
/// `x-fabric`. With `vpcsim-<lab>-<node>` both named `vpcsim-rel5-x-fabric`
/// and `down rel5.toml` removed `rel5-x`'s namespaces and processes.
#[test]
fn labs_whose_names_collide_with_a_dash_stay_apart() {
    if !require_root() {
        return;
    }
    let a = TestLab::up("rel5-x", &SMALL.replace("NODE", "web"));
    let a_before = namespaces(&a.name);
    assert_eq!(a_before.len(), 3, "{a_before:?}");
    let a_pids = vpcsim::teardown::processes_in(&a_before);
    assert!(!a_pids.is_empty());

    // `rel5` is not up: its `down FILE` has nothing of its own to remove.
    let b = TestLab::write("rel5", &SMALL.replace("NODE", "x-fabric"));
    assert_eq!(b.name, lab_name("rel5"));
    let down = b.vpcsim(&["down", b.file.to_str().unwrap()]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(
        namespaces(&a.name),
        a_before,
        "down {} touched {}",
        b.name,
        a.name
    );
    for pid in &a_pids {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{} lost PID {pid}",
            a.name
        );
    }

    // Both up at once, then `rel5` down: `rel5-x` keeps everything.
    let up = b.vpcsim(&["up", b.file.to_str().unwrap()]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(namespaces(&b.name).len(), 3);
    let down = b.vpcsim(&["down", b.file.to_str().unwrap()]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(namespaces(&b.name).is_empty());
    assert_eq!(namespaces(&a.name), a_before);
    assert_eq!(
        vpcsim::teardown::processes_in(&a_before).len(),
        a_pids.len()
    );

    // A name from the command line is checked before anything is named after it.
    let out = a.vpcsim(&["down", "../../tmp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a lab name"));
}

/// Issue 9 item 6: a non-root user flocked the 0644 lock file from a
/// read-only descriptor and `down` hung forever, silently.
#[test]
fn a_lab_lock_is_roots_and_a_waiting_command_gives_up_naming_the_holder() {
    if !require_root() {
        return;
    }
    let name = lab_name("lock");
    let held = vpcsim::state::LabLock::acquire(&name).unwrap();
    let lock = format!("/run/vpcsim/{name}.lock");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("/run/vpcsim"), 0o700);
    assert_eq!(mode(&lock), 0o600);
    // Another user cannot even open it, so cannot flock it.
    let other = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "flock",
            "-n",
            &lock,
            "true",
        ])
        .output()
        .unwrap();
    assert!(!other.status.success(), "uid 65534 took {lock}");

    // A command that has to wait says so, and gives up naming our PID.
    let mut down = Command::new(vpcsim_bin())
        .args(["down", &name])
        .env("VPCSIM_LOCK_TIMEOUT", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = down.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = down.kill();
            let _ = down.wait();
            panic!("`vpcsim down` still waits for the lock after 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut down.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    let me = format!("PID {}", std::process::id());
    assert!(
        err.contains("waiting for lab") && err.contains(&me),
        "{err}"
    );
    assert!(
        err.contains("gave up waiting") && err.contains("VPCSIM_LOCK_TIMEOUT"),
        "{err}"
    );
    drop(held);
    vpcsim::state::LabLock::remove(&name);
}

/// Issue 9 item 8: user data `nsenter --net=/proc/1/ns/net sleep 117 &` ran
/// in the root namespace and survived `down`; instance root could enter
/// other labs, rewrite the fabric's rules and write /run/vpcsim.
#[test]
fn instance_root_stays_in_its_instance_and_down_ends_every_lab_process() {
    if !require_root() {
        return;
    }
    // The test's own network namespace is the root one.
    let root_ns = format!("/proc/{}/ns/net", std::process::id());
    let marker = format!("117.{}", std::process::id() % 100_000);
    let user_data =
        format!("nsenter --net={root_ns} sleep {marker} & echo nsenter started; sleep 1000");
    let topo = SMALL.replace("NODE", "web").replace(
        "user_data = \"sleep 1000\"",
        &format!("user_data = \"{user_data}\""),
    );
    let lab = TestLab::up("iso", &topo);
    let other = TestLab::up("iso-o", &SMALL.replace("NODE", "app"));

    // What instance root cannot do: enter another namespace, see vpcsim's
    // state, the ALB's socket or other labs, change its cgroup, load modules.
    for (what, script) in [
        (
            "enter the root namespace",
            format!("nsenter --net={root_ns} true"),
        ),
        (
            "enter another lab",
            format!(
                "ip netns exec {} true",
                vpcsim::topology::plan::namespace(&other.name, "fabric")
            ),
        ),
        (
            "read the lab's state",
            format!("cat /run/vpcsim/{}/state.json", lab.name),
        ),
        (
            "write vpcsim's state",
            format!("touch /run/vpcsim/{}/x", lab.name),
        ),
        (
            "reach an ALB control socket",
            format!(
                "test -e {}",
                vpcsim::lb::control_socket(&lab.name).display()
            ),
        ),
        (
            "list the lab namespaces",
            "ls /run/netns | grep -q vpcsim".to_string(),
        ),
        ("mount", "mount -t tmpfs none /mnt".to_string()),
        (
            "change a host sysctl",
            "sysctl -w kernel.domainname=x".to_string(),
        ),
        (
            "reach the Docker engine",
            "test -S /run/docker.sock".to_string(),
        ),
    ] {
        let (code, out) = lab.sh("web", &format!("{script} 2>&1"));
        assert_ne!(code, 0, "instance root could {what}: {out}");
    }
    // What it keeps: its own addresses, routes, nftables and net sysctls.
    let (code, out) = lab.sh(
        "web",
        "ip addr add 10.0.99.1/32 dev lo && ip route add 10.0.98.0/24 dev eth0 \
         && nft add table inet mine && nft list tables && sysctl -w net.ipv4.ip_forward=1 \
         && touch $HOME/written && echo kept",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("table inet mine") && out.contains("kept"),
        "{out}"
    );
    let (_, fabric_tables) = lab.sh("fabric", "nft list tables");
    assert!(!fabric_tables.contains("mine"), "{fabric_tables}");

    // The user data's escape failed, and said so on the console.
    let log = lab.vpcsim(&["logs", "--lab", &lab.name, "web"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("nsenter"), "{log}");
    assert!(
        pids_running(&["sleep", &marker]).is_empty(),
        "user data left the instance"
    );

    // Whatever a lab process starts, wherever it goes, ends with `down`:
    // here from the fabric (the operator's, unconfined) into the root
    // namespace, in a new session.
    let escaped = format!("118.{}", std::process::id() % 100_000);
    let (code, out) = lab.sh(
        "fabric",
        &format!(
            "nsenter --net={root_ns} setsid sleep {escaped} >/dev/null 2>&1 & sleep 0.3; echo ok"
        ),
    );
    assert_eq!(code, 0, "{out}");
    let pids = pids_running(&["sleep", &escaped]);
    assert_eq!(pids.len(), 1, "the escaped sleep runs");
    let cgroup = vpcsim::cgroup::path(&lab.name);
    let name = lab.name.clone();
    let other_ns = namespaces(&other.name);
    drop(lab);
    let survivors = pids_running(&["sleep", &escaped]);
    for &p in &survivors {
        // Cleanup of what this test started, by PID.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        survivors.is_empty(),
        "PID {survivors:?} outlived `down {name}`"
    );
    assert!(cgroup.is_none_or(|p| !p.exists()), "cgroup left");
    assert_eq!(
        namespaces(&other.name),
        other_ns,
        "the other lab is untouched"
    );
}

/// Sends forged ARP from the node's eth0 for `count` rounds, 200 ms apart:
/// gratuitous requests and replies claiming `ip` is at the sender's MAC,
/// and a frame whose source MAC is `spoof_mac`.
const GARP: &str = r#"
import socket, struct, sys, time
ip, spoof_mac, count = socket.inet_aton(sys.argv[1]), bytes.fromhex(sys.argv[2].replace(":", "")), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mine = s.getsockname()[4]
bcast = b"\xff" * 6
for i in range(count):
    for op in (1, 2):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mine, ip, b"\0" * 6, ip)
        s.send(bcast + mine + b"\x08\x06" + arp)
    s.send(bcast + spoof_mac + b"\x88\xb5" + b"vpcsim mac spoof".ljust(46, b"\0"))
    time.sleep(0.2)
print("sent", flush=True)
"#;

/// Issue 9 item 7: from `v1-a`, gratuitous ARP for the gateway poisoned
/// `v1-c`'s neighbour entry and `v1-c`'s frames went to `v1-a`.
#[test]
fn an_instance_cannot_announce_the_gateway_or_another_mac() {
    if !require_root() {
        return;
    }
    let topo = SMALL.replace("NODE", "a") + "\n[[instance]]\nname = \"c\"\nsubnet = \"public-1\"\n";
    let lab = TestLab::up("arp", &topo);
    let gw = "10.0.10.1";
    let neigh = |node: &str| {
        let (_, out) = lab.sh(node, &format!("ip neigh show {gw} dev eth0"));
        out.split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .map(str::to_string)
    };
    assert!(lab.ping("c", gw));
    let gw_mac = neigh("c").expect("c knows the gateway's MAC");
    let (_, link) = lab.sh("c", "ip -o link show eth0");
    let c_mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("c's MAC")
        .to_string();
    let (out, dropped) =
        lab.dropped_by(|| lab.exec("a", &["python3", "-c", GARP, gw, &c_mac, "10"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        neigh("c").as_deref(),
        Some(gw_mac.as_str()),
        "c's gateway entry was poisoned"
    );
    let counters = lab.counters();
    for rule in [
        "arp: the ENI announces an address or MAC that is not its own",
        "eni: source MAC is not the ENI's",
    ] {
        assert!(
            counters.get(rule).is_some_and(|&n| n >= 10),
            "{rule}: {counters:?} ({dropped:?})"
        );
    }
    // Honest ARP still works: c and a reach each other and the gateway.
    let (_, a_ip) = lab.sh(
        "a",
        "ip -o -4 addr show eth0 | awk '{print $4}' | cut -d/ -f1",
    );
    assert!(lab.ping("c", a_ip.trim()), "c cannot reach a at {a_ip}");
    assert!(lab.ping("a", gw));
}
