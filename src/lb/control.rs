//! The daemon's control socket: one JSON request line, one JSON response line.

use super::daemon::Balancer;
use super::status::LbStatus;
use crate::topology::plan::Lab;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    /// The default action of listener `lb:port`.
    SetWeights {
        lb: String,
        port: u16,
        weights: Vec<(String, u32)>,
    },
    Deregister {
        target_group: String,
        target: String,
    },
    Register {
        target_group: String,
        target: String,
    },
    /// Take a new plan of the lab live (`vpcsim apply`).
    Reconfigure {
        plan: Box<Lab>,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ControlResponse {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub status: Option<LbStatus>,
}

pub async fn serve(b: Arc<Balancer>, listener: tokio::net::UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let b = b.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(r).read_line(&mut line).await.is_err() {
                return;
            }
            let resp = match serde_json::from_str::<ControlRequest>(&line) {
                Ok(ControlRequest::Status) => ControlResponse {
                    status: Some(b.status()),
                    ..Default::default()
                },
                Ok(ControlRequest::SetWeights { lb, port, weights }) => ControlResponse {
                    error: b
                        .set_weights(&lb, port, &weights)
                        .err()
                        .map(|e| e.to_string()),
                    ..Default::default()
                },
                Ok(ControlRequest::Deregister {
                    target_group,
                    target,
                }) => ControlResponse {
                    error: b
                        .deregister(&target_group, &target)
                        .err()
                        .map(|e| e.to_string()),
                    ..Default::default()
                },
                Ok(ControlRequest::Register {
                    target_group,
                    target,
                }) => ControlResponse {
                    error: b
                        .register(&target_group, &target)
                        .err()
                        .map(|e| e.to_string()),
                    ..Default::default()
                },
                Ok(ControlRequest::Reconfigure { plan }) => ControlResponse {
                    error: b.reconfigure(*plan).await.err().map(|e| e.to_string()),
                    ..Default::default()
                },
                Err(e) => ControlResponse {
                    error: Some(format!("bad request: {e}")),
                    ..Default::default()
                },
            };
            let mut out = serde_json::to_vec(&resp).expect("response serializes");
            out.push(b'\n');
            let _ = w.write_all(&out).await;
        });
    }
}
