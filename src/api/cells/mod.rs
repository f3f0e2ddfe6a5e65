//! Long-lived cells over HTTP (`/v1/cells`): create a cell once, exec in it many times, copy
//! files in and out, end it. The cells are [`crate::sandbox::LongLivedCell`]s (one prepared
//! cell that holds); this module adds the daemon's side: quotas, idle timeouts and
//! lifetimes, one exec at a time per cell, records in the store.

pub mod dto;
pub mod files;
pub mod records;
pub mod registry;
pub mod routes;

pub use registry::CellRegistry;
