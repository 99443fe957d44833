//! Storage for strongroom: the [`Backend`] seam, the value [`transformer`] that encrypts every
//! value before a backend sees it, and the [`cache::WatchCache`] that serves every read.
//!
//! Architecture invariant: storage knows nothing about HTTP, identities or object kinds beyond
//! the opaque [`ObjectDecoder`] the server hands it; backends see only ciphertext.

pub mod backend;
pub mod cache;
pub mod embedded;
pub mod transformer;
