//! Live worker nodes as API nodes see them: their heartbeats (a hash with a TTL per node,
//! names in one set). Read at most once a second per API node.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long an API node reuses what it read.
pub const REFRESH: Duration = Duration::from_secs(1);

/// One live worker node.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub name: String,
    /// Cells it runs at the same time.
    pub workers: u64,
    /// Of those, free at its last heartbeat.
    pub free: u64,
    /// Image names it can run (configured, and its store's `name:tag` and ids).
    pub images: Vec<String>,
    /// Its last heartbeat, ms since the Unix epoch.
    pub seen_at: i64,
}

impl NodeInfo {
    /// A heartbeat hash (None: expired).
    pub fn parse(name: &str, map: &HashMap<String, String>) -> Option<NodeInfo> {
        if map.is_empty() {
            return None;
        }
        let num = |f: &str| map.get(f).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(NodeInfo {
            name: name.to_string(),
            workers: num("workers"),
            free: num("free"),
            images: map
                .get("images")
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            seen_at: map.get("seen_at").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }
}

/// The last read, shared by the handlers of one API node.
#[derive(Debug, Default)]
pub struct NodeCache {
    last: tokio::sync::Mutex<Option<(Instant, Vec<NodeInfo>)>>,
}

impl NodeCache {
    /// The cached nodes if fresh, else what `read` returns (then cached).
    pub async fn get<F, Fut, E>(&self, read: F) -> Result<Vec<NodeInfo>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<NodeInfo>, E>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, nodes)) = last.as_ref() {
            if at.elapsed() < REFRESH {
                return Ok(nodes.clone());
            }
        }
        let nodes = read().await?;
        *last = Some((Instant::now(), nodes.clone()));
        Ok(nodes)
    }
}

/// True if some node in `nodes` advertises `image`.
pub fn someone_has(nodes: &[NodeInfo], image: &str) -> bool {
    nodes.iter().any(|n| n.images.iter().any(|i| i == image))
}
