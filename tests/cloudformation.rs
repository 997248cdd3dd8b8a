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
    let mut args = vec![
        "export".to_string(),
        topology(file).display().to_string(),
        "-o".into(),
        out_file.display().to_string(),
    ];
    if json {
        args.push("--json".into());
    }
    let out = Command::new(vpcsim_bin()).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "export {file} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out_file, String::from_utf8_lossy(&out.stderr).into_owned())
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
