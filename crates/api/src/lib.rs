//! The Kubernetes object model as strongroom serves it.
//!
//! This crate owns the shapes of objects (on top of `k8s-openapi`), their validation with
//! Kubernetes' exact messages, label and field selectors, patch semantics, Table rendering and
//! the decoding of Kubernetes protobuf request bodies.
//!
//! Architecture invariant: no I/O, no clock and no randomness are reached implicitly; callers pass
//! the current time and generated identifiers in. Nothing here builds HTTP responses.

pub mod field;
pub mod json;
pub mod managed_fields;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod secret;
pub mod secret_bytes;
pub mod selector;
pub mod table;
pub mod validation;

pub use field::{ErrorList, FieldError, FieldErrorKind};
pub use secret::Secret;
pub use secret_bytes::SecretBytes;
