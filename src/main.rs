use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vpcsim::commands::{self, UsageError};

/// Emulate an AWS VPC architecture on this machine, in network namespaces.
#[derive(Parser)]
#[command(name = "vpcsim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a lab from a topology file and start its workloads.
    Up {
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Build the network only: no user data, model servers or load balancer.
        #[arg(long)]
        network_only: bool,
    },
    /// Write a lab (topology file or running lab) as a CloudFormation template for AWS.
    Export {
        /// Topology file or lab name.
        target: String,
        #[arg(long, default_value = "cloudformation")]
        format: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything of a lab (namespaces, processes, state). Idempotent.
    Down {
        /// Lab name or topology file.
        lab: String,
    },
    /// Show a lab's nodes, addresses, workloads and load balancers.
    Status {
        lab: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a node (instance, `internet`, NAT gateway, `fabric`).
    Exec {
        #[arg(long)]
        lab: Option<String>,
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show a node's console log (user data and workload output).
    Logs {
        #[arg(long)]
        lab: Option<String>,
        node: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop an instance's workloads (an instance failure, for health checks to notice).
    Stop {
        #[arg(long)]
        lab: Option<String>,
        node: String,
    },
    /// Start an instance's workloads again.
    Start {
        #[arg(long)]
        lab: Option<String>,
        node: String,
    },
    /// Change a listener's forward weights live: `vpcsim weights alb:80 tg-v1=100 tg-v2=0`.
    Weights {
        #[arg(long)]
        lab: Option<String>,
        /// Load balancer and listener port, `NAME:PORT`.
        listener: String,
        /// `TARGET_GROUP=WEIGHT` pairs (0-999).
        weights: Vec<String>,
    },
    /// Explain one connection hop by hop from the AWS rules (no traffic):
    /// `vpcsim trace internet alb:80`, `vpcsim trace bastion v1-a:22`.
    /// Exit code 0 when it works both ways, 1 when not.
    Trace {
        /// Lab name or topology file (default: the only lab up).
        #[arg(long)]
        lab: Option<String>,
        /// Node, `internet`, an internet host, an address, or NODE@ADDRESS (forged source).
        src: String,
        /// DST:PORT; DST is a node, `internet`, an address or a load balancer's DNS name.
        dst: String,
        #[arg(long, default_value = "tcp")]
        protocol: String,
        #[arg(long)]
        json: bool,
    },
    /// Send real connections between every pair of nodes and compare with the model.
    Probe {
        #[arg(long)]
        lab: Option<String>,
        /// Ports to probe (default: every port the topology mentions, plus a control port).
        #[arg(long, value_delimiter = ',')]
        ports: Vec<u16>,
        #[arg(long)]
        json: bool,
    },
    /// Draw the lab (SVG, Mermaid or DOT); live health and weights when it is up.
    Graph {
        /// Lab name or topology file (default: the only lab up).
        target: Option<String>,
        #[arg(long, default_value = "svg")]
        format: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print the lab's VPC Flow Log records (AWS version 2 format).
    FlowLogs {
        #[arg(long)]
        lab: Option<String>,
        #[arg(short, long)]
        follow: bool,
    },
    /// Internal: the flow log daemon of a lab (in its fabric namespace).
    #[command(hide = true)]
    FlowLogDaemon {
        #[arg(long)]
        lab: String,
    },
    /// Deregister a target from a target group live: it drains (no new
    /// requests, in-flight ones finish) for up to the deregistration delay.
    Deregister {
        #[arg(long)]
        lab: Option<String>,
        target_group: String,
        /// Instance name, as in the group's `targets`.
        target: String,
    },
    /// Register a deregistered target again (initial until healthy).
    Register {
        #[arg(long)]
        lab: Option<String>,
        target_group: String,
        target: String,
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
    },
    /// Internal: the lab's Amazon DNS and S3 service.
    #[command(hide = true)]
    AwsServices {
        #[arg(long)]
        lab: String,
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
            file,
            json,
            network_only,
        } => commands::up::run(&file, json, network_only),
        Command::Export {
            target,
            format,
            output,
            json,
        } => commands::export::run(&target, &format, output.as_deref(), json),
        Command::Down { lab } => commands::down::run(&lab),
        Command::Status { lab, json } => commands::status::run(lab.as_deref(), json),
        Command::Exec { lab, node, command } => {
            commands::exec::run(lab.as_deref(), &node, &command).map(|code| {
                std::process::exit(code);
            })
        }
        Command::Logs { lab, node, follow } => commands::logs::run(lab.as_deref(), &node, follow),
        Command::Stop { lab, node } => commands::lifecycle::stop(lab.as_deref(), &node),
        Command::Start { lab, node } => commands::lifecycle::start(lab.as_deref(), &node),
        Command::Weights {
            lab,
            listener,
            weights,
        } => commands::weights::run(lab.as_deref(), &listener, &weights),
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
        Command::ModelServer { model, port } => vpcsim::workloads::model_server::run(&model, port),
        Command::AlbDaemon { lab } => vpcsim::lb::daemon::run(&lab),
        Command::AwsServices { lab } => vpcsim::services::run(&lab),
        Command::Trace {
            lab,
            src,
            dst,
            protocol,
            json,
        } => commands::trace::run(lab.as_deref(), &src, &dst, &protocol, json).map(exit_unless),
        Command::Probe { lab, ports, json } => {
            commands::probe::run(lab.as_deref(), &ports, json).map(exit_unless)
        }
        Command::FlowLogs { lab, follow } => commands::flow_logs::run(lab.as_deref(), follow),
        Command::FlowLogDaemon { lab } => vpcsim::flowlog::daemon::run(&lab),
        Command::Graph {
            target,
            format,
            output,
        } => commands::graph::run(target.as_deref(), &format, output.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
