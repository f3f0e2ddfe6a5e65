//! (placeholder; see DESIGN.md)
