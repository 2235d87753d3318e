//! (being written)
pub mod input;
pub mod strip;
