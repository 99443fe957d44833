//! (being written) Kubernetes' atomic-writer protocol; see docs/design/agent-directory.md.

use std::collections::BTreeMap;

use strongroom_api::SecretBytes;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: SecretBytes,
    /// Permission bits (masked with 0o777 when written).
    pub mode: u32,
    /// Owner to set (only when the agent runs as root); `None` leaves the agent's.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// What a target directory should hold: relative path (`key` or `dir/key`) → file.
pub type Payload = BTreeMap<String, FileProjection>;
