use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use vpcsim::analysis::probe::PortSpec;
use vpcsim::commands::{self, UsageError};

/// The ALB daemon allocates and frees per request (hyper's read buffers,
/// header maps, bodies): mimalloc serves that from per-thread pages, where
/// glibc's malloc consolidated its free lists on every 8 KB buffer (perf,
/// BENCHMARKS.md "Interleaved with HAProxy").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Emulate an AWS VPC architecture on this machine, in network namespaces.
///
/// A topology file in AWS's vocabulary (VPC, subnets, route tables, IGW, NAT
/// gateway, security groups, NACLs, ALB, S3) becomes a lab: every node is a
/// network namespace, every AWS rule an nftables rule. Commands that build or
/// enter a lab need root.
#[derive(Parser)]
#[command(
    name = "vpcsim",
    version,
    about,
    long_about,
    after_help = "Examples:
  sudo vpcsim up topologies/canary.toml          build the lab `canary` and start its workloads
  sudo vpcsim list                               the labs that are up
  sudo vpcsim status canary                      nodes, addresses, workloads, target health
  sudo vpcsim exec --lab canary internet -- curl -s http://10.0.10.5/
  vpcsim trace --lab topologies/canary.toml bastion v1-a:22
  sudo vpcsim down canary                        remove everything of the lab

`--lab` may be omitted when exactly one lab is up. See `vpcsim help COMMAND` for each command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Output formats of `vpcsim graph`.
#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// An SVG drawing like the VPC resource map (no Graphviz needed).
    Svg,
    /// A Mermaid flowchart, for Markdown documentation.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

#[derive(Clone, Copy, ValueEnum)]
enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

/// Protocols `vpcsim probe --protocol` selects.
#[derive(Clone, Copy, ValueEnum)]
enum ProbeProtocol {
    /// TCP connections.
    Tcp,
    /// UDP datagrams (a probe listener's echo, DNS to the Amazon resolver).
    Udp,
    /// ICMP echo.
    Icmp,
    /// All three.
    All,
}

#[derive(Subcommand)]
enum Command {
    /// Build a lab from a topology file and start its workloads.
    ///
    /// Validates the whole file first: every error at once, as
    /// `file:line:col`, exit code 2 and nothing built.
    #[command(after_help = "Examples:
  sudo vpcsim up topologies/canary.toml
  sudo vpcsim up topologies/seed-001-literal.toml --network-only
  sudo vpcsim up topologies/canary.toml --json | jq .load_balancers")]
    Up {
        /// The topology file (TOML; fields in docs/topology.md), or CloudFormation
        /// templates (.yaml, .json) deployed in order as the stacks of one lab.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Template parameter: `[STACK.]KEY=VALUE`; VALUE may be `@STACK.NAME` (an
        /// earlier stack's output or resource) or `@export:NAME`.
        #[arg(long = "param")]
        params: Vec<String>,
        /// What runs on an instance, launch template or auto scaling group:
        /// `LOGICAL_ID=model-v1|model-v2|stand-in|user-data|none`.
        #[arg(long = "run")]
        runs: Vec<String>,
        /// Lab name for templates (default: the first template's file name).
        #[arg(long)]
        name: Option<String>,
        /// Region for templates (default us-east-1).
        #[arg(long)]
        region: Option<String>,
        /// Print the lab's summary as JSON (the same as `status --json`).
        #[arg(long)]
        json: bool,
        /// Build the network only: no user data, model servers or load balancer.
        #[arg(long)]
        network_only: bool,
    },
    /// Change a running lab to what its topology file now says.
    ///
    /// Prints the plan first (`+` added, `-` removed, `~` changed, `-/+`
    /// replaced), then changes exactly that: what stays keeps its addresses,
    /// connections, counters and history. What AWS cannot change in place (a
    /// VPC's or subnet's CIDR) is refused with exit code 2 and nothing changed.
    #[command(after_help = "Examples:
  sudo vpcsim apply topologies/canary.toml --dry-run
  sudo vpcsim apply topologies/canary.toml
  sudo vpcsim apply topologies/canary.toml --json | jq .plan.changes")]
    Apply {
        /// The lab's topology file (its `name` says which lab).
        file: PathBuf,
        /// Print the plan only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the plan (and what was done) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deploy one more CloudFormation stack onto a running lab brought up from templates.
    ///
    /// Like `aws cloudformation deploy`, stack by stack: the template may
    /// `Fn::ImportValue` the exports of the lab's stacks, and `--param` may
    /// name their outputs and resources (`@STACK.NAME`, `@export:NAME`). A
    /// template named like one of the lab's stacks (`network.yaml` is stack
    /// `network`) updates it. Prints the plan first, then changes the running
    /// lab in place: what stays keeps its addresses, connections and history.
    #[command(after_help = "Examples:
  sudo vpcsim up topologies/penguin/network.yaml --name pen
  sudo vpcsim deploy --lab pen topologies/penguin/security-groups.yaml
  sudo vpcsim deploy --lab pen topologies/penguin/app.yaml \\
      --param 'AppSubnets=@network.AppSubnet1,@network.AppSubnet2' \\
      --param Ec2SecurityGroup=@security-groups.Ec2SecurityGroup --dry-run")]
    Deploy {
        /// The running lab (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// The stack's template (.yaml, .yml, .json); the stack is named after the file.
        template: PathBuf,
        /// The stack's parameter: `KEY=VALUE`; VALUE may be `@STACK.NAME` (an
        /// earlier stack's output or resource) or `@export:NAME`.
        #[arg(long = "param")]
        params: Vec<String>,
        /// What runs on the stack's instances, launch templates or auto scaling
        /// groups: `LOGICAL_ID=model-v1|model-v2|stand-in|user-data|none`.
        #[arg(long = "run")]
        runs: Vec<String>,
        /// Print the plan only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the plan (and what was done) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply a topology file to its running lab now and on every save.
    ///
    /// Each save prints the plan and its outcome; a file with errors prints
    /// them and leaves the lab as it was. Runs until interrupted.
    #[command(after_help = "Example:
  sudo vpcsim watch topologies/canary.toml")]
    Watch {
        /// The lab's topology file.
        file: PathBuf,
    },
    /// Write a lab (topology file or running lab) as a CloudFormation template for AWS.
    ///
    /// What AWS cannot take (the lab's internet hosts, local images) is said on
    /// stderr as a warning.
    #[command(after_help = "Examples:
  vpcsim export topologies/canary.toml -o canary.yaml
  vpcsim export topologies/canary.toml --json | jq .Resources")]
    Export {
        /// Topology file or lab name.
        target: String,
        /// The template format; `cloudformation` is the only one.
        #[arg(long, default_value = "cloudformation", value_parser = ["cloudformation"])]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything of a lab (namespaces, processes, containers, state).
    ///
    /// Safe after a crash or `kill -9` of `up`, and safe twice.
    #[command(after_help = "Examples:
  sudo vpcsim down canary
  sudo vpcsim down topologies/canary.toml")]
    Down {
        /// Lab name, or the topology file it was built from.
        lab: String,
    },
    /// List the labs that are up, with their topology file.
    #[command(after_help = "Examples:
  sudo vpcsim list
  sudo vpcsim list --json")]
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a lab's nodes, addresses, workloads and load balancers.
    ///
    /// Unhealthy targets come with what `trace` says about the path to them.
    #[command(after_help = "Examples:
  sudo vpcsim status canary
  sudo vpcsim status --json")]
    Status {
        /// Lab name (default: the only lab up).
        lab: Option<String>,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a node, with the lab's names in /etc/hosts.
    ///
    /// NODE is an instance, a NAT gateway, an ALB node, `internet` (the
    /// internet host) or `fabric` (the VPC router). The command's exit code is
    /// passed through.
    #[command(after_help = "Examples:
  sudo vpcsim exec --lab canary v1-a -- ss -ltn
  sudo vpcsim exec --lab canary internet -- curl -s http://203.0.113.10/
  sudo vpcsim exec --lab canary fabric -- nft list ruleset")]
    Exec {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// The node to run in (`vpcsim status` lists them).
        node: String,
        /// The command and its arguments (after `--` when they start with `-`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Show a node's or a service's log.
    ///
    /// SOURCE is an instance or container (its console: user data and
    /// workload output), an ALB node or load balancer (the load balancer
    /// daemon), `fabric` (the VPC router's daemons: DNS, S3, flow logs),
    /// `internet`, or a service log: `alb-access` (ALB access log),
    /// `s3-access` (S3 server access log), `dns` (DNS query log),
    /// `flow-logs` (VPC Flow Log records).
    #[command(after_help = "Examples:
  sudo vpcsim logs v1-a
  sudo vpcsim logs -f alb-access
  sudo vpcsim logs dns --json")]
    Logs {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// A node or a service log (see above); an unknown name lists them all.
        source: String,
        /// Keep printing new lines as they come (Ctrl-C to stop).
        #[arg(short, long)]
        follow: bool,
        /// One JSON object per line: {"source": …, "line": …}.
        #[arg(long)]
        json: bool,
    },
    /// Stop an instance's workloads (an instance failure, for health checks to notice).
    #[command(after_help = "Examples:
  sudo vpcsim stop v2-a
  sudo vpcsim stop --lab canary v2-docker")]
    Stop {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// An instance or a container.
        node: String,
    },
    /// Start an instance's workloads again (like a reboot: user data runs again).
    #[command(after_help = "Examples:
  sudo vpcsim start v2-a")]
    Start {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// An instance or a container.
        node: String,
    },
    /// Change a listener's forward weights live (the instant canary rollback).
    ///
    /// Like AWS's modify-listener, the groups named become the whole forward
    /// action: a group of the action that is not named gets weight 0 (no
    /// traffic), and the command says so.
    #[command(after_help = "Examples:
  sudo vpcsim weights alb:80 tg-v1=100 tg-v2=0
  sudo vpcsim weights --lab canary alb:80 tg-v1=9 tg-v2=1 --json")]
    Weights {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// Load balancer and listener port, `NAME:PORT`.
        listener: String,
        /// `TARGET_GROUP=WEIGHT` pairs (0-999).
        #[arg(required = true)]
        weights: Vec<String>,
        /// Print the new forward action as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain one connection hop by hop from the AWS rules (no traffic sent).
    ///
    /// Exit code 0 when it works both ways, 1 when not.
    #[command(after_help = "Examples:
  vpcsim trace --lab topologies/canary.toml internet alb:80
  sudo vpcsim trace bastion v1-a:22
  sudo vpcsim trace v1-a 10.0.0.2:53 --protocol udp
  sudo vpcsim trace v1-a 8.8.8.8:0 --protocol icmp")]
    Trace {
        /// Lab name or topology file (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// Node, `internet`, an internet host, an address, or NODE@ADDRESS (forged source).
        src: String,
        /// DST:PORT; DST is a node, `internet`, an address, `s3` or a load balancer's DNS name.
        dst: String,
        /// The protocol of the connection.
        #[arg(long, value_enum, default_value = "tcp")]
        protocol: Protocol,
        /// Print the trace as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send real connections between every pair of nodes and compare with the model.
    ///
    /// Prints one table per port: rows are sources, columns destinations.
    /// Exit code 1 when reality and the model disagree (an emulator bug).
    #[command(after_help = "Examples:
  sudo vpcsim probe --lab canary
  sudo vpcsim probe --ports 22,8000 --json
  sudo vpcsim probe --protocol udp
  sudo vpcsim probe --ports tcp/22,udp/53,icmp")]
    Probe {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// What to probe: `22` or `tcp/22` (TCP), `udp/53` (UDP; 53 also asks the Amazon
        /// resolver at VPC base + 2), `icmp` (echo). Default: every TCP and UDP port the
        /// topology mentions, DNS, ICMP echo, and a control port 9999.
        #[arg(long, value_delimiter = ',')]
        ports: Vec<PortSpec>,
        /// Probe only this protocol's ports.
        #[arg(long, value_enum, default_value_t = ProbeProtocol::All)]
        protocol: ProbeProtocol,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw the lab; live health and weights when it is up.
    #[command(after_help = "Examples:
  vpcsim graph topologies/canary.toml -o canary.svg
  sudo vpcsim graph canary --format mermaid")]
    Graph {
        /// Lab name or topology file (default: the only lab up).
        target: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "svg")]
        format: GraphFormat,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the lab's VPC Flow Log records (AWS version 2 format).
    #[command(after_help = "Examples:
  sudo vpcsim flow-logs --lab canary
  sudo vpcsim flow-logs --follow --json")]
    FlowLogs {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// Keep printing new records as they come (Ctrl-C to stop).
        #[arg(short, long)]
        follow: bool,
        /// One JSON object per record, with AWS's field names.
        #[arg(long)]
        json: bool,
    },
    /// Deregister a target from a target group live.
    ///
    /// It drains (no new requests, in-flight ones finish) for up to the
    /// group's deregistration delay; with nothing in flight it leaves at once,
    /// as on AWS.
    #[command(after_help = "Examples:
  sudo vpcsim deregister tg-v1 v1-a")]
    Deregister {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// The target group.
        target_group: String,
        /// Instance name, as in the group's `targets`.
        target: String,
    },
    /// Register a deregistered target again (initial until healthy).
    #[command(after_help = "Examples:
  sudo vpcsim register tg-v1 v1-a")]
    Register {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// The target group.
        target_group: String,
        /// Instance name, as in the group's `targets`.
        target: String,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  vpcsim completions bash > /etc/bash_completion.d/vpcsim
  vpcsim completions zsh > \"${fpath[1]}/_vpcsim\"
  vpcsim completions fish > ~/.config/fish/completions/vpcsim.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the lab's AWS WAF log records (AWS's JSON format, one per line).
    #[command(after_help = "Examples:
  sudo vpcsim waf-logs --lab canary
  sudo vpcsim waf-logs --follow | jq -c '{action, terminatingRuleId}'")]
    WafLogs {
        /// Lab name (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// Keep printing new records as they come (Ctrl-C to stop).
        #[arg(short, long)]
        follow: bool,
    },
    /// Which rule of which web ACL decides one HTTP request, after which
    /// transformations (no traffic sent). Exit code 0 when allowed, 1 when
    /// blocked.
    #[command(after_help = "Examples:
  vpcsim waf-explain --lab topologies/canary.toml '/?id=1%27%20OR%201=1--'
  vpcsim waf-explain -X POST -H 'Content-Type: application/json' -d '{\"user_id\": \"42\"}' /api/v1/recommendation")]
    WafExplain {
        /// Lab name or topology file (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// The web ACL (default: the lab's only one).
        #[arg(long)]
        web_acl: Option<String>,
        /// The HTTP method.
        #[arg(short = 'X', long, default_value = "GET")]
        method: String,
        /// A header, `Name: value`; repeatable (Host and User-Agent default to curl's).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request body.
        #[arg(short = 'd', long)]
        data: Option<String>,
        /// The client's address as the ALB sees it.
        #[arg(long, default_value = "203.0.113.10")]
        client: String,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Path and query, as sent: `/api/v1/x?id=1`.
        target: String,
    },
    /// Internal: the flow log daemon of a lab (in its fabric namespace).
    #[command(hide = true)]
    FlowLogDaemon {
        #[arg(long)]
        lab: String,
    },
    /// Internal: a built-in model server (runs inside an instance).
    #[command(hide = true)]
    ModelServer {
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// Internal: the load balancer daemon of a lab.
    #[command(hide = true)]
    AlbDaemon {
        #[arg(long)]
        lab: String,
        /// Run the daemon itself (else: a keeper that restarts it).
        #[arg(long)]
        worker: bool,
    },
    /// Internal: the lab's Amazon DNS and S3 service.
    #[command(hide = true)]
    AwsServices {
        #[arg(long)]
        lab: String,
        #[arg(long)]
        worker: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VPCSIM_LOG")
                // netlink-packet-route warns about every attribute newer than itself.
                .unwrap_or_else(|_| "warn,netlink_packet_route=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up {
            files,
            params,
            runs,
            name,
            region,
            json,
            network_only,
        } => commands::up::run(
            &files,
            json,
            network_only,
            &commands::up::TemplateOptions {
                name,
                region,
                params,
                runs,
            },
        ),
        Command::Export {
            target,
            format,
            output,
            json,
        } => commands::export::run(&target, &format, output.as_deref(), json),
        Command::Down { lab } => commands::down::run(&lab),
        Command::Apply {
            file,
            dry_run,
            json,
        } => commands::apply::run(&file, dry_run, json),
        Command::Watch { file } => commands::apply::watch(&file),
        Command::Deploy {
            lab,
            template,
            params,
            runs,
            dry_run,
            json,
        } => commands::deploy::run(&commands::deploy::DeployArgs {
            lab: lab.as_deref(),
            template: &template,
            params: &params,
            runs: &runs,
            dry_run,
            json,
        }),
        Command::List { json } => commands::list::run(json),
        Command::Status { lab, json } => commands::status::run(lab.as_deref(), json),
        Command::Exec { lab, node, command } => {
            commands::exec::run(lab.as_deref(), &node, &command).map(|code| {
                std::process::exit(code);
            })
        }
        Command::Logs {
            lab,
            source,
            follow,
            json,
        } => commands::logs::run(lab.as_deref(), &source, follow, json),
        Command::Stop { lab, node } => commands::lifecycle::stop(lab.as_deref(), &node),
        Command::Start { lab, node } => commands::lifecycle::start(lab.as_deref(), &node),
        Command::Weights {
            lab,
            listener,
            weights,
            json,
        } => commands::weights::run(lab.as_deref(), &listener, &weights, json),
        Command::Deregister {
            lab,
            target_group,
            target,
        } => commands::targets::run(lab.as_deref(), &target_group, &target, false),
        Command::Register {
            lab,
            target_group,
            target,
        } => commands::targets::run(lab.as_deref(), &target_group, &target, true),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vpcsim", &mut out);
            vpcsim::out!("{}", String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::ModelServer { model, port } => {
            vpcsim::workloads::model_server::run(&model, port).map_err(Into::into)
        }
        Command::AlbDaemon { lab, worker: true } => {
            vpcsim::lb::daemon::run(&lab).map_err(Into::into)
        }
        Command::AlbDaemon { lab, .. } => {
            vpcsim::workloads::keeper::run(&["alb-daemon", "--lab", &lab]).map_err(Into::into)
        }
        Command::AwsServices { lab, worker: true } => {
            vpcsim::services::run(&lab).map_err(Into::into)
        }
        Command::AwsServices { lab, .. } => {
            vpcsim::workloads::keeper::run(&["aws-services", "--lab", &lab]).map_err(Into::into)
        }
        Command::Trace {
            lab,
            src,
            dst,
            protocol,
            json,
        } => {
            let protocol = match protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Icmp => "icmp",
            };
            commands::trace::run(lab.as_deref(), &src, &dst, protocol, json).map(exit_unless)
        }
        Command::Probe {
            lab,
            ports,
            protocol,
            json,
        } => {
            use vpcsim::topology::plan::Protocol as P;
            let protocol = match protocol {
                ProbeProtocol::Tcp => Some(P::Tcp),
                ProbeProtocol::Udp => Some(P::Udp),
                ProbeProtocol::Icmp => Some(P::Icmp),
                ProbeProtocol::All => None,
            };
            commands::probe::run(lab.as_deref(), &ports, protocol, json).map(exit_unless)
        }
        Command::FlowLogs { lab, follow, json } => {
            commands::flow_logs::run(lab.as_deref(), follow, json)
        }
        Command::WafLogs { lab, follow } => commands::waf::logs(lab.as_deref(), follow),
        Command::WafExplain {
            lab,
            web_acl,
            method,
            headers,
            data,
            client,
            json,
            target,
        } => commands::waf::explain(&commands::waf::ExplainArgs {
            lab: lab.as_deref(),
            web_acl: web_acl.as_deref(),
            method: &method,
            target: &target,
            headers: &headers,
            body: data.as_deref(),
            client: &client,
            json,
        })
        .map(exit_unless),
        Command::FlowLogDaemon { lab } => vpcsim::flowlog::daemon::run(&lab).map_err(Into::into),
        Command::Graph {
            target,
            format,
            output,
        } => {
            let format = match format {
                GraphFormat::Svg => "svg",
                GraphFormat::Mermaid => "mermaid",
                GraphFormat::Dot => "dot",
            };
            commands::graph::run(target.as_deref(), format, output.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head -1`): the command did
        // its work, and there is nobody left to tell anything to.
        Err(e) if vpcsim::output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<UsageError>() {
                eprintln!("error: {u}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

/// Verbs whose answer is yes/no exit 1 on no (after printing it).
fn exit_unless(ok: bool) {
    if !ok {
        std::process::exit(1);
    }
}
