//! What an API node adds to `/metrics`: the queue depth read from the stream, whether Redis
//! answers, and each live worker node's slots (labelled by node).

use std::fmt::Write;

use super::RunBackend;
use crate::api::state::AppState;

/// The queue depth for `sandcell_queue_depth` and the text of the scale-out gauges.
pub async fn queue_part(state: &AppState) -> (usize, String) {
    let RunBackend::Redis(q) = &state.backend else {
        return (state.queue.len(), String::new());
    };
    let mut out = String::new();
    let depth = q.depth().await;
    let nodes = q.nodes().await;
    let up = depth.is_ok() && nodes.is_ok();
    let _ = writeln!(
        out,
        "# HELP sandcell_queue_up 1 if the queue (Redis) answered this scrape.\n\
         # TYPE sandcell_queue_up gauge\nsandcell_queue_up {}",
        u8::from(up)
    );
    let (waiting, taken) = depth.unwrap_or((0, 0));
    let _ = writeln!(
        out,
        "# HELP sandcell_queue_taken Runs taken by a worker node and not yet acknowledged.\n\
         # TYPE sandcell_queue_taken gauge\nsandcell_queue_taken {taken}"
    );
    let _ = writeln!(
        out,
        "# HELP sandcell_node_workers Cells a live worker node runs at the same time.\n\
         # TYPE sandcell_node_workers gauge"
    );
    let nodes = nodes.unwrap_or_default();
    for n in &nodes {
        let _ = writeln!(
            out,
            "sandcell_node_workers{{node={:?}}} {}",
            n.name, n.workers
        );
    }
    let _ = writeln!(
        out,
        "# HELP sandcell_node_free_slots Free cells of a live worker node at its last heartbeat.\n\
         # TYPE sandcell_node_free_slots gauge"
    );
    for n in &nodes {
        let _ = writeln!(
            out,
            "sandcell_node_free_slots{{node={:?}}} {}",
            n.name, n.free
        );
    }
    (waiting as usize, out)
}
