//! CloudFormation in and out: exported templates pass cfn-lint; templates
//! come up as labs that behave like the TOML ones.

mod common;

use common::vpcsim_bin;
use std::path::{Path, PathBuf};
use std::process::Command;

fn topology(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(file)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vpcsim-cfn-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `vpcsim export FILE -o OUT [--json]`; returns (template path, stderr).
fn export(file: &str, json: bool) -> (PathBuf, String) {
    let out_file = scratch(file).join(if json { "t.json" } else { "t.yaml" });
    let err = export_to(&topology(file), &out_file);
    (out_file, err)
}

/// `vpcsim export TOML -o OUT` (JSON when OUT ends in `.json`); its stderr.
fn export_to(toml: &Path, out_file: &Path) -> String {
    let mut cmd = Command::new(vpcsim_bin());
    cmd.arg("export").arg(toml).arg("-o").arg(out_file);
    if out_file.extension().is_some_and(|e| e == "json") {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "export {} failed: {}",
        toml.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The test lab of tests/data/waf-round-trip.toml (a web ACL with every
/// kind of rule, an instance with metadata options).
fn round_trip_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/waf-round-trip.toml")
}

/// cfn-lint (PyPI, installed by scripts/setup) must report nothing at all:
/// no error, no warning, no informational finding.
fn cfn_lint(template: &Path) {
    let out = Command::new("cfn-lint")
        .arg(template)
        .output()
        .expect("cfn-lint is not installed: run scripts/setup --packages-only");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint {}:\n{}{}",
        template.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn canary_export_passes_cfn_lint() {
    let (yaml, warnings) = export("canary.toml", false);
    cfn_lint(&yaml);
    let (json, _) = export("canary.toml", true);
    cfn_lint(&json);
    let text = std::fs::read_to_string(&yaml).unwrap();
    // Weighted forward 90/10, SG-to-SG rules as their own resources, the
    // seed's model file in user data, the endpoint id through !Sub.
    assert!(
        text.contains("Weight: 90") && text.contains("Weight: 10"),
        "{text}"
    );
    assert!(text.contains("Type: AWS::EC2::SecurityGroupIngress"));
    assert!(text.contains("SourceSecurityGroupId: !GetAtt SecurityGroupSgAlb.GroupId"));
    assert!(text.contains("MODEL_ID = \"V1 - Stable\""));
    assert!(text.contains("pip3 install flask"));
    assert!(text.contains("AvailabilityZone: !Select"));
    assert!(
        text.contains("${VpcEndpointS3}"),
        "the bucket policy names the endpoint"
    );
    assert!(
        !text.contains("vpce-0aa42de173d26c739\""),
        "no lab id is carried as a literal"
    );
    // What cannot be carried is a comment and a warning.
    assert!(text.contains("# Not carried to AWS"));
    assert!(warnings.contains("warning: not carried to AWS: objects of bucket `p4-buquet`"));
}

#[test]
fn canary_docker_export_passes_cfn_lint() {
    let (yaml, _) = export("canary-docker.toml", false);
    cfn_lint(&yaml);
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(text.contains("docker run -d --name v2-docker --restart unless-stopped -p 80:8000"));
    assert!(
        text.contains("MODEL_ID = \"V2 - Docker - Canary\""),
        "the student's edited line"
    );
    assert!(text.contains("Weight: 8"));
}

#[test]
fn an_image_only_on_this_machine_is_named_not_dropped() {
    let dir = scratch("own-image");
    let toml = std::fs::read_to_string(topology("canary-docker.toml"))
        .unwrap()
        .replace(
            "image = \"vpcsim/model-v2\"",
            "image = \"my-local-image:1\"",
        );
    let file = dir.join("t.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(vpcsim_bin())
        .args(["export", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("image `my-local-image:1`, which exists only on this machine"),
        "{err}"
    );
    assert!(
        text.contains("#   - container `v2-docker` runs image `my-local-image:1`"),
        "{text}"
    );
    assert!(text.contains("-p 80:8000"));
}

/// `vpcsim waf-explain --lab LAB_OR_FILE --json ARGS…`: (action, status,
/// terminating rule, managed rule inside it).
fn waf_verdict(lab: &str, args: &[&str]) -> (String, u64, String, String) {
    let out = Command::new(vpcsim_bin())
        .args(["waf-explain", "--lab", lab, "--json"])
        .args(args)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "waf-explain {lab} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v = &v["verdict"];
    (
        v["action"]["action"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        v["action"]["status"].as_u64().unwrap_or(0),
        v["terminating"]["rule"]
            .as_str()
            .unwrap_or("Default_Action")
            .to_string(),
        v["terminating"]["group_rule"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn web_acl_round_trip_same_verdicts_and_cfn_lint_clean() {
    let toml = round_trip_toml();
    let template = scratch("waf").join("waf-rt.yaml");
    export_to(&toml, &template);
    cfn_lint(&template);
    let text = std::fs::read_to_string(&template).unwrap();
    for part in [
        "Type: AWS::WAFv2::WebACL",
        "Type: AWS::WAFv2::IPSet",
        "IPAddressVersion: IPV6",
        "Type: AWS::WAFv2::WebACLAssociation",
        "ResourceArn: !Ref LoadBalancerAlb",
        "Name: AWSManagedRulesCommonRuleSet",
        "ExcludedRules:",
        "RuleActionOverrides:",
        "AggregateKeyType: FORWARDED_IP",
        "ScopeDownStatement:",
        "CustomResponseBodies:",
        "RegexString: ^/wp-(admin|login)",
        "Position: LAST",
        "Type: AWS::WAFv2::LoggingConfiguration",
        "DefaultBehavior: DROP",
        "Requirement: MEETS_ALL",
        "LabelName: awswaf:managed:aws:sql-database:SQLi_QueryArguments",
        "RedactedFields:",
        "Type: AWS::Logs::LogGroup",
    ] {
        assert!(text.contains(part), "no `{part}` in the template:\n{text}");
    }
    // Each request and the rule the TOML lab's web ACL ends it with; the
    // template read back must decide every one the same way.
    let xff = "X-Forwarded-For: 198.51.100.1, 192.0.2.7";
    let cases: &[(&[&str], &str)] = &[
        (&["/q?id=1%27%20OR%20%271%27%3D%271"], "query-sqli-high"),
        (&["-X", "POST", "-d", "id=1' OR '1'='1", "/form"], "sqli"),
        (
            &[
                "--client",
                "203.0.113.11",
                "/q?id=1%27%20OR%20%271%27%3D%271",
            ],
            "admins",
        ),
        (&["--client", "2001:db8::5", "/"], "admins"),
        (&["-H", xff, "/"], "banned-forwarded"),
        (&["/API/v0/%75sers"], "no-old-api"),
        (&["-H", "X-Tea: earl grey", "/"], "teapot"),
        (&["/WP-Login.php"], "wp-probe"),
        (
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                "{\"q\": \"<script>alert(1)</script>\"}",
                "/api",
            ],
            "json-xss",
        ),
        (&["-H", "X-Evil-Thing: 1", "/"], "header-keys"),
        (&["-X", "POST", "/admin?role=admin"], "admin-arg"),
        (
            &["-X", "POST", "-d", "x=;/bin/sh -c id", "/run"],
            "body-cmd",
        ),
        (&["/hello"], "Default_Action"),
    ];
    for (args, rule) in cases {
        let want = waf_verdict(toml.to_str().unwrap(), args);
        assert_eq!(&want.2, rule, "{args:?} in the TOML lab: {want:?}");
        let got = waf_verdict(template.to_str().unwrap(), args);
        assert_eq!(got, want, "{args:?}: template vs TOML");
    }
}

/// A lab brought up from templates, removed on drop.
struct TemplateLab {
    name: String,
}

impl TemplateLab {
    fn up(base: &str, files: &[&Path], extra: &[&str]) -> TemplateLab {
        let name = common::lab_name(base);
        let _ = Command::new(vpcsim_bin()).args(["down", &name]).output();
        let mut args: Vec<String> = vec!["up".into()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        args.extend(["--name".to_string(), name.clone()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = Command::new(vpcsim_bin()).args(&args).output().unwrap();
        let lab = TemplateLab { name };
        assert!(
            out.status.success(),
            "vpcsim {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }
}

impl Drop for TemplateLab {
    fn drop(&mut self) {
        let _ = Command::new(vpcsim_bin())
            .args(["down", &self.name])
            .output();
    }
}

/// A lab from templates whose web ACL has no logging configuration:
/// `waf-logs` fails naming the web ACL and the template's fix, and that fix
/// (the template with an AWS::WAFv2::LoggingConfiguration, deployed onto
/// the running lab) turns the WAF log on.
#[test]
fn waf_logs_of_a_template_lab_without_logging_name_the_fix_that_works() {
    if !common::require_root() {
        return;
    }
    let site = scratch("waf-nolog").join("site.json");
    export_to(&round_trip_toml(), &site);
    let logged = std::fs::read_to_string(&site).unwrap();
    let mut unlogged: serde_json::Value = serde_json::from_str(&logged).unwrap();
    let resources = unlogged["Resources"].as_object_mut().unwrap();
    let before = resources.len();
    resources.retain(|_, r| {
        !matches!(
            r["Type"].as_str(),
            Some("AWS::WAFv2::LoggingConfiguration" | "AWS::Logs::LogGroup")
        )
    });
    assert_eq!(resources.len(), before - 2, "{logged}");
    std::fs::write(&site, unlogged.to_string()).unwrap();

    let lab = TemplateLab::up("cfwl", &[&site], &["--run", "InstanceApp=none"]);
    let out = Command::new(vpcsim_bin())
        .args(["waf-logs", "--lab", &lab.name])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for part in [
        "`waf-every-rule`",
        "no logging configuration",
        "AWS::WAFv2::LoggingConfiguration",
        "vpcsim deploy",
    ] {
        assert!(err.contains(part), "no `{part}` in: {err}");
    }

    // The fix as the message gives it: the stack's template again, now with
    // its logging configuration, deployed onto the running lab.
    std::fs::write(&site, &logged).unwrap();
    let out = Command::new(vpcsim_bin())
        .args(["deploy", "--lab", &lab.name, "--run", "InstanceApp=none"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sqli_through_alb(&lab.name),
        ("403".to_string(), "sqli".to_string())
    );
}

/// An instance's metadata options go to AWS as MetadataOptions (cfn-lint
/// clean) and come back from the template: the lab's IMDS then refuses
/// IMDSv1 on that instance, as AWS would.
#[test]
fn metadata_options_go_to_a_template_and_come_back() {
    let template = scratch("imds").join("imds.yaml");
    export_to(&round_trip_toml(), &template);
    cfn_lint(&template);
    let text = std::fs::read_to_string(&template).unwrap();
    for part in [
        "MetadataOptions:",
        "HttpTokens: required",
        "HttpPutResponseHopLimit: 2",
        "HttpEndpoint: enabled",
    ] {
        assert!(text.contains(part), "no `{part}` in the template:\n{text}");
    }
    if !common::require_root() {
        return;
    }
    let lab = TemplateLab::up("cfimds", &[&template], &["--network-only"]);
    let code = |headers: &str| {
        let out = Command::new(vpcsim_bin())
            .args(["exec", "--lab", &lab.name, "app", "--", "sh", "-c"])
            .arg(format!(
                "{headers} curl -s -m 5 -o /dev/null -w '%{{http_code}}' $H http://169.254.169.254/latest/meta-data/instance-id"
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(code("H=;"), "401", "IMDSv1 refused: tokens required");
    assert_eq!(
        code("T=$(curl -s -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token); H=\"-H X-aws-ec2-metadata-token:$T\";"),
        "200"
    );
}

/// `probe --json` as (protocol, source, destination, port) -> (reachable, blocked only on the reply).
type TruthTable = std::collections::BTreeMap<(String, String, String, u64), (bool, bool)>;

fn truth_table(lab: &str) -> TruthTable {
    let out = Command::new(vpcsim_bin())
        .args(["probe", "--lab", lab, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe {lab} found disagreements: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (
                    p["protocol"].as_str().unwrap().to_string(),
                    p["source"].as_str().unwrap().to_string(),
                    p["destination"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                ),
                (
                    p["actual"].as_bool().unwrap(),
                    p["blocked_on_reply"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

/// `n` requests through the ALB from the internet host: the model ids answering.
fn alb_answers(lab: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let status = Command::new(vpcsim_bin())
        .args(["status", lab, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let dns = v["load_balancers"][0]["dns_name"]
        .as_str()
        .unwrap()
        .to_string();
    let script = format!(
        "for i in $(seq 1 60); do curl -s -m 2 -o /dev/null -w '%{{http_code}}' http://{dns}/api/v1/recommendation -H 'Content-Type: application/json' -d '{{\"user_id\": \"1\"}}' | grep -q 200 && break; sleep 0.5; done; \
         for i in $(seq 1 {n}); do curl -s -m 3 http://{dns}/api/v1/recommendation -H 'Content-Type: application/json' -d '{{\"user_id\": \"7\"}}'; echo; done"
    );
    let out = Command::new(vpcsim_bin())
        .args(["exec", "--lab", lab, "internet", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let id = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|j| j["model_id"].as_str().map(String::from))
            .unwrap_or_else(|| format!("not JSON: {line}"));
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// A SQL injection from the internet through the ALB: (HTTP status, the
/// rule the WAF log names for it).
fn sqli_through_alb(lab: &str) -> (String, String) {
    let status = Command::new(vpcsim_bin())
        .args(["status", lab, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let dns = v["load_balancers"][0]["dns_name"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new(vpcsim_bin())
        .args([
            "exec",
            "--lab",
            lab,
            "internet",
            "--",
            "curl",
            "-s",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{dns}/api/v1/recommendation"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"user_id": "1 OR 1=1"}"#,
        ])
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    for _ in 0..50 {
        let logs = Command::new(vpcsim_bin())
            .args(["waf-logs", "--lab", lab])
            .output()
            .unwrap();
        let blocked = String::from_utf8_lossy(&logs.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["action"] == "BLOCK");
        if let Some(r) = blocked {
            return (
                code,
                r["terminatingRuleId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (code, "no BLOCK record in the WAF log".into())
}

/// `waf`: the lab has a web ACL (canary.toml's) that must come back too.
fn round_trip(toml: &str, base: &str, waf: bool) {
    if !common::require_root() {
        return;
    }
    let (template, _) = export(toml, false);
    let (toml_table, toml_answers, toml_sqli) = {
        let lab = common::TestLab::up_shipped(&format!("{base}t"), toml);
        (
            truth_table(&lab.name),
            alb_answers(&lab.name, 100),
            waf.then(|| sqli_through_alb(&lab.name)),
        )
    };
    let lab = TemplateLab::up(&format!("{base}c"), &[&template], &[]);
    let cfn_table = truth_table(&lab.name);
    let cfn_answers = alb_answers(&lab.name, 100);
    // The web ACL came back: the same SQL injection, the same 403, the same rule.
    if let Some(toml_sqli) = toml_sqli {
        assert_eq!(toml_sqli, ("403".to_string(), "sqli".to_string()));
        assert_eq!(sqli_through_alb(&lab.name), toml_sqli);
    }
    assert_eq!(toml_table.len(), cfn_table.len(), "same probes");
    for (k, v) in &toml_table {
        assert_eq!(
            cfn_table.get(k),
            Some(v),
            "probe {k:?} differs between the TOML lab and its template"
        );
    }
    // The same model ids answer through the ALB (all of them 200 and JSON).
    let ids = |m: &std::collections::BTreeMap<String, usize>| m.keys().cloned().collect::<Vec<_>>();
    assert!(
        ids(&toml_answers)
            .iter()
            .all(|k| !k.starts_with("not JSON")),
        "{toml_answers:?}"
    );
    assert_eq!(
        ids(&toml_answers),
        ids(&cfn_answers),
        "{toml_answers:?} vs {cfn_answers:?}"
    );
}

#[test]
fn canary_round_trip_same_probe_table_and_alb_answers() {
    round_trip("canary.toml", "cfrt", true);
}

#[test]
fn canary_docker_round_trip_same_probe_table_and_alb_answers() {
    round_trip("canary-docker.toml", "cfrd", false);
}

fn penguin(file: &str) -> PathBuf {
    topology("penguin").join(file)
}

fn penguin_stacks() -> Vec<PathBuf> {
    [
        "network.yaml",
        "security-groups.yaml",
        "endpoint.yaml",
        "data.yaml",
        "app.yaml",
    ]
    .iter()
    .map(|f| penguin(f))
    .collect()
}

const PENGUIN_PARAMS: &[&str] = &[
    "--param",
    "app.AppSubnets=@network.AppSubnet1,@network.AppSubnet2",
    "--param",
    "app.Ec2SecurityGroup=@security-groups.Ec2SecurityGroup",
    "--param",
    "data.DBPassword=labpassword",
];

/// probe's TCP verdicts: (source, destination, port) -> reachable.
fn reachable(lab: &str) -> std::collections::BTreeMap<(String, String, u64), bool> {
    truth_table(lab)
        .into_iter()
        .filter(|((proto, ..), _)| proto == "tcp")
        .map(|((_, s, d, p), (ok, _))| ((s, d, p), ok))
        .collect()
}

#[test]
fn seed_002_stacks_come_up_and_reach_what_their_rules_say() {
    if !common::require_root() {
        return;
    }
    let files = penguin_stacks();
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let mut extra = PENGUIN_PARAMS.to_vec();
    extra.extend(["--param", "app.DesiredCapacity=3"]);
    let lab = TemplateLab::up("cfpen", &paths, &extra);

    // The ASG's 3 instances over the two application subnets, the interface
    // endpoint's ENIs in both, a NAT gateway per AZ.
    let status: serde_json::Value = serde_json::from_slice(
        &Command::new(vpcsim_bin())
            .args(["status", &lab.name, "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let subnet_of = |node: &str| {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .map(|n| n["subnet"].as_str().unwrap().to_string())
    };
    assert_eq!(subnet_of("web-1").as_deref(), Some("app-1"));
    assert_eq!(subnet_of("web-2").as_deref(), Some("app-2"));
    assert_eq!(subnet_of("web-3").as_deref(), Some("app-1"));
    assert_eq!(subnet_of("sns-endpoint-2").as_deref(), Some("app-2"));
    assert_eq!(subnet_of("nat-1").as_deref(), Some("public-1"));
    assert_eq!(subnet_of("nat-2").as_deref(), Some("public-2"));
    // Stacks with their outputs and exports, the ALB's DNS name filled in.
    let stacks = status["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 5);
    let app = stacks.iter().find(|s| s["name"] == "app").unwrap();
    let dns = status["load_balancers"][0]["dns_name"].as_str().unwrap();
    assert!(app["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["key"] == "AlbDnsName" && o["value"] == dns && o["export"] == "app-AlbDnsName"));

    // The stand-in answers through the ALB on the target group's port and health check path.
    let out = Command::new(vpcsim_bin())
        .args(["exec", "--lab", &lab.name, "internet", "--", "sh", "-c",
            &format!("for i in $(seq 1 60); do curl -s -m 2 http://{dns}/health | grep -q stand-in && break; sleep 0.5; done; for i in 1 2 3 4 5 6; do curl -s -m 2 http://{dns}/; done")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for web in ["web-1", "web-2", "web-3"] {
        assert!(
            text.contains(&format!("stand-in {web} port 80 /")),
            "{text}"
        );
    }

    // The lab speaks the templates' names: status shows each node's
    // resource, trace takes logical ids (several nodes: name one of them).
    let node = |n: &str| {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["node"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(node("web-2")["resource"], "app.AppAsg");
    assert_eq!(node("alb-b")["resource"], "app.LoadBalancer");
    let (_, table, _) = vpcsim(&["status", &lab.name]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("nat-2") && l.contains("network.NatGateway2")),
        "{table}"
    );
    let (code, out, err) = vpcsim(&["trace", "--lab", &lab.name, "internet", "LoadBalancer:80"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("-> alb [LoadBalancer]") && out.contains("web-3 [AppAsg]"),
        "{out}"
    );
    let (code, _, err) = vpcsim(&["trace", "--lab", &lab.name, "app.AppAsg", "SnsEndpoint:443"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("`app.AppAsg` is 3 nodes (web-1, web-2, web-3): name one of them"),
        "{err}"
    );

    let t = reachable(&lab.name);
    let get = |s: &str, d: &str, p: u64| {
        *t.get(&(s.into(), d.into(), p))
            .unwrap_or_else(|| panic!("no probe {s} -> {d}:{p}"))
    };
    // sg-alb: 80 from anywhere; public NACL 100 in / 110 out.
    assert!(get("internet", "alb-a", 80) && get("internet", "alb-b", 80));
    assert!(
        !get("internet", "alb-a", 443),
        "nothing listens on 443 in sg-alb"
    );
    // sg-ec2: 80 from sg-alb only; app NACL 100 (80 from 10.0.0.0/23).
    for web in ["web-1", "web-2", "web-3"] {
        assert!(
            get("alb-a", web, 80) && get("alb-b", web, 80),
            "ALB -> {web}:80"
        );
        assert!(!get("internet", web, 80), "{web} has no public address");
        assert!(
            get(web, "sns-endpoint-1", 443) && get(web, "sns-endpoint-2", 443),
            "{web} -> endpoint 443 (sg-endpoint from sg-ec2, app NACL 120/130)"
        );
    }
    assert!(!get("web-1", "web-2", 80), "sg-ec2 admits only the ALB");
    assert!(
        !get("alb-a", "sns-endpoint-1", 443),
        "sg-endpoint admits only sg-ec2"
    );
    assert!(!get("sns-endpoint-1", "web-1", 80));
}

const WEB_APP: &str = "Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}
  WebSg:
    Type: AWS::EC2::SecurityGroup
    Properties: {GroupDescription: web, VpcId: !Ref Vpc}
  AppSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: app
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 8080, ToPort: 8080, SourceSecurityGroupId: !Ref WebSg}]
  WebServerInstance1:
    Type: AWS::EC2::Instance
    Properties:
      SubnetId: !Ref Subnet
      SecurityGroupIds: [!Ref WebSg]
      Tags: [{Key: Name, Value: Web Server 1}]
  AppInstance:
    Type: AWS::EC2::Instance
    Properties: {SubnetId: !Ref Subnet, SecurityGroupIds: [!Ref AppSg]}
";

fn vpcsim(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(vpcsim_bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn trace_and_graph_speak_logical_ids_and_name_tags() {
    let file = scratch("web-app").join("web.yaml");
    std::fs::write(&file, WEB_APP).unwrap();
    let f = file.to_str().unwrap();
    // Logical ids on both ends; the output names them beside the lab names.
    let (code, out, err) = vpcsim(&[
        "trace",
        "--lab",
        f,
        "WebServerInstance1",
        "AppInstance:8080",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("trace web-server-instance-1 [WebServerInstance1] (10.0.1.4) -> app-instance [AppInstance] (10.0.1.5)"),
        "{out}"
    );
    // A Name tag that is no lab name, and `stack.LogicalId`: AppSg admits 8080 only.
    let (code, out, _) = vpcsim(&["trace", "--lab", f, "Web Server 1", "web.AppInstance:22"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("sg app-sg ingress: no rule allows it"),
        "{out}"
    );
    let (code, _, err) = vpcsim(&["trace", "--lab", f, "Nope", "AppInstance:22"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown source `Nope`"), "{err}");
    let (code, out, _) = vpcsim(&["graph", f, "--format", "mermaid"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("web-server-instance-1 [WebServerInstance1] 10.0.1.4"),
        "{out}"
    );
}

#[test]
fn seed_002_deployed_stack_by_stack_probes_like_one_up() {
    if !common::require_root() {
        return;
    }
    let files = penguin_stacks();
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let at_once = {
        let lab = TemplateLab::up("cfone", &paths, PENGUIN_PARAMS);
        truth_table(&lab.name)
    };
    // The network stack alone, then each stack onto the running lab, with
    // the parameters `aws cloudformation deploy` would get.
    let lab = TemplateLab::up("cfdep", &paths[..1], &[]);
    let deploy = |file: &str, params: &[&str]| {
        let mut args = vec!["deploy", "--lab", &lab.name];
        let path = penguin(file);
        args.push(path.to_str().unwrap());
        for p in params {
            args.extend(["--param", p]);
        }
        vpcsim(&args)
    };
    // An import nobody exports yet: refused, exit 2, the lab unchanged.
    let (code, _, err) = deploy(
        "app.yaml",
        &[
            "AppSubnets=@network.AppSubnet1",
            "Ec2SecurityGroup=@network.VpcId",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nothing was built"), "{err}");
    for (file, params) in [
        ("security-groups.yaml", vec![]),
        ("endpoint.yaml", vec![]),
        ("data.yaml", vec!["DBPassword=labpassword"]),
        (
            "app.yaml",
            vec![
                "AppSubnets=@network.AppSubnet1,@network.AppSubnet2",
                "Ec2SecurityGroup=@security-groups.Ec2SecurityGroup",
            ],
        ),
    ] {
        let (code, out, err) = deploy(file, &params);
        assert_eq!(code, Some(0), "deploy {file}: {out}{err}");
        let stack = file.trim_end_matches(".yaml");
        assert!(
            out.contains(&format!("stack `{stack}` deployed on lab `{}`", lab.name)),
            "{out}"
        );
    }
    let (_, status, _) = vpcsim(&["status", &lab.name, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let names: Vec<&str> = status["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["network", "security-groups", "endpoint", "data", "app"]
    );
    let stack_by_stack = truth_table(&lab.name);
    assert_eq!(at_once.len(), stack_by_stack.len(), "same probes");
    for (k, v) in &at_once {
        assert_eq!(
            stack_by_stack.get(k),
            Some(v),
            "probe {k:?} differs between one `up` and stack-by-stack `deploy`"
        );
    }
}

/// `vpcsim up` on a bad template: exit 2, the message names file, logical
/// id, property and fix, and no lab is left.
fn bad_template(name: &str, yaml: &str, extra: &[&str], expect: &[&str]) {
    let dir = scratch(name);
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let lab = common::lab_name("cfbad");
    let mut args = vec!["up", file.to_str().unwrap(), "--name", &lab];
    args.extend_from_slice(extra);
    let out = Command::new(vpcsim_bin()).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name}: {err}");
    assert!(err.contains("nothing was built"), "{name}: {err}");
    for e in expect {
        assert!(err.contains(e), "{name}: expected `{e}` in:\n{err}");
    }
    assert!(
        !Path::new(&format!("/run/vpcsim/{lab}")).exists(),
        "{name}: state left behind"
    );
}

const VPC: &str = "  Vpc:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: 10.0.0.0/16}\n";

#[test]
fn template_errors_name_file_resource_property_and_fix() {
    bad_template(
        "unknown-ref",
        &format!("Resources:\n{VPC}  Sub:\n    Type: AWS::EC2::Subnet\n    Properties: {{VpcId: !Ref Vcp, CidrBlock: 10.0.1.0/24}}\n"),
        &[],
        &["unknown-ref.yaml: Sub.Properties: references `Vcp`", "fix: declare `Vcp`"],
    );
    bad_template(
        "missing-prop",
        &format!("Resources:\n{VPC}  Sub:\n    Type: AWS::EC2::Subnet\n    Properties: {{VpcId: !Ref Vpc}}\n"),
        &[],
        &["missing-prop.yaml: Sub.CidrBlock: AWS::EC2::Subnet requires CidrBlock", "fix: add CidrBlock"],
    );
    bad_template(
        "bad-cidr",
        &format!("Resources:\n{VPC}  Sub:\n    Type: AWS::EC2::Subnet\n    Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.300.0/24}}\n"),
        &[],
        &["bad-cidr.yaml: Sub.CidrBlock: `10.0.300.0/24` is not an IPv4 CIDR"],
    );
    bad_template(
        "cycle",
        &format!("Resources:\n{VPC}  A:\n    Type: AWS::EC2::SecurityGroup\n    Properties: {{GroupDescription: a, VpcId: !Ref Vpc, SecurityGroupIngress: [{{IpProtocol: tcp, FromPort: 1, ToPort: 1, SourceSecurityGroupId: !Ref B}}]}}\n  B:\n    Type: AWS::EC2::SecurityGroup\n    Properties: {{GroupDescription: b, VpcId: !Ref Vpc, SecurityGroupIngress: [{{IpProtocol: tcp, FromPort: 1, ToPort: 1, SourceSecurityGroupId: !Ref A}}]}}\n"),
        &[],
        &["circular dependency: A -> B -> A", "AWS::EC2::SecurityGroupIngress"],
    );
    bad_template(
        "unknown-fn",
        &format!("Resources:\n{VPC}  Sub:\n    Type: AWS::EC2::Subnet\n    Properties: {{VpcId: !Ref Vpc, CidrBlock: !Concat [a, b]}}\n"),
        &[],
        &["unknown-fn.yaml", "unknown intrinsic function `!Concat`"],
    );
    bad_template(
        "no-value",
        &format!("Parameters:\n  Cidr: {{Type: String}}\nResources:\n{VPC}"),
        &[],
        &[
            "no-value.yaml: Parameters.Cidr: parameter `Cidr` (String) has no value",
            "--param Cidr=VALUE",
        ],
    );
    bad_template(
        "not-allowed",
        &format!("Parameters:\n  Size: {{Type: String, Default: small, AllowedValues: [small, large]}}\nResources:\n{VPC}"),
        &["--param", "Size=huge"],
        &["`huge` is not one of the AllowedValues of `Size`", "use one of: small, large"],
    );
    bad_template(
        "import",
        &format!("Resources:\n{VPC}  Sub:\n    Type: AWS::EC2::Subnet\n    Properties: {{VpcId: !ImportValue other-VpcId, CidrBlock: 10.0.1.0/24}}\n"),
        &[],
        &["import.yaml: Sub.VpcId: no stack before this one exports `other-VpcId`"],
    );
}

#[test]
fn stacks_need_their_parameters_and_earlier_stacks() {
    // Without the AWS-typed parameters the app stack cannot come up.
    let files = penguin_stacks();
    let lab = common::lab_name("cfpar");
    let out = Command::new(vpcsim_bin())
        .args(
            files
                .iter()
                .map(|f| f.to_str().unwrap())
                .chain(["--name", &lab, "--param", "data.DBPassword=labpassword"])
                .collect::<Vec<_>>()
                .iter()
                .fold(vec!["up"], |mut v, a| {
                    v.push(a);
                    v
                }),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("app.yaml: Parameters.AppSubnets: parameter `AppSubnets` (List<AWS::EC2::Subnet::Id>) has no value"), "{err}");
    // A subnet id that no earlier stack created is refused.
    let out = Command::new(vpcsim_bin())
        .args(
            files
                .iter()
                .map(|f| f.to_str().unwrap())
                .chain([
                    "--name",
                    &lab,
                    "--param",
                    "data.DBPassword=labpassword",
                    "--param",
                    "AppSubnets=subnet-0123",
                    "--param",
                    "app.Ec2SecurityGroup=@security-groups.Ec2SecurityGroup",
                ])
                .collect::<Vec<_>>()
                .iter()
                .fold(vec!["up"], |mut v, a| {
                    v.push(a);
                    v
                }),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`subnet-0123` is not a AWS::EC2::Subnet of the stacks before this one"),
        "{err}"
    );
    // An app stack alone: its imports have no exporter.
    let out = Command::new(vpcsim_bin())
        .args([
            "up",
            penguin("app.yaml").to_str().unwrap(),
            "--name",
            &lab,
            "--param",
            "AppSubnets=a",
            "--param",
            "Ec2SecurityGroup=b",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
}
