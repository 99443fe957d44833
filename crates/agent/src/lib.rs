//! The strongroom agent: delivers Secrets to ordinary processes on any host, Kubernetes-style.
//!
//! It reads v1 Pod manifests, fetches and watches exactly the Secrets they reference through the
//! public Kubernetes API (kube-rs), and projects them:
//!
//! - [`atomic_writer`]: secret volumes written with Kubernetes' atomic-writer protocol on tmpfs
//!   (a timestamped directory, a `..data` symlink swapped by rename), through directory file
//!   descriptors so no symlink planted in the target can send a write, chmod or delete outside it;
//! - [`volume`]: what each volume holds (items, modes, ownership, optional secrets and keys);
//! - [`env`]: a container's environment (`secretKeyRef`, `envFrom`, `$(VAR)` expansion).
//!
//! Architecture invariant: the agent talks to the server only through the public Kubernetes API,
//! so it works against a real Kubernetes cluster too; it knows nothing of strongroom's storage.
//! Architecture invariant: only the agent writes secret bytes to disk, only beneath its root,
//! and only on tmpfs.

pub mod agent;
pub mod atomic_writer;
pub mod credentials;
pub mod env;
pub mod events;
pub mod run;
pub mod secret_source;
pub mod volume;
