//! Kubernetes' atomic-writer protocol (`pkg/volume/util/atomic_writer.go`), hardened so that no
//! symlink planted in a target directory can send a write, chmod, chown or delete outside it.
//!
//! The layout and the six steps of a write are specified in `docs/design/agent-directory.md`. A
//! reader sees either the complete old set of files or the complete new set: the files go into a
//! fresh hidden `..<timestamp>_<random>` directory, and one `renameat` of a `..data_tmp` symlink
//! over `..data` publishes it. Visible names are symlinks `<name> -> ..data/<name>`.
//!
//! Every operation is relative to a directory file descriptor: the target is opened one element
//! at a time with `O_NOFOLLOW`, files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`, and deletion
//! walks directories with `openat(O_DIRECTORY|O_NOFOLLOW)` and removes names with `unlinkat`, so
//! a symlink is always unlinked and never followed (CVE-2017-1002102, CVE-2021-25741).
//!
//! Writes to one target must be serialised by the caller, as in Kubernetes.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
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

/// The symlink readers follow to the current version.
pub const DATA_DIR_NAME: &str = "..data";
/// The symlink made to the new version and renamed over `..data`.
pub const NEW_DATA_DIR_NAME: &str = "..data_tmp";
/// The temporary name under which a visible symlink is made before it replaces a wrong entry.
const NEW_LINK_NAME: &str = "..link_tmp";
/// Limits of Kubernetes' `validatePath`, which are also Linux's `NAME_MAX` and `PATH_MAX`.
pub const MAX_FILE_NAME_LENGTH: usize = 255;
pub const MAX_PATH_LENGTH: usize = 4096;
/// `f_type` of tmpfs and ramfs in `statfs(2)`.
const TMPFS_MAGIC: u32 = 0x0102_1994;
const RAMFS_MAGIC: u32 = 0x8584_58f6;
/// Deeper than any payload can nest (a 4096-byte path has at most 2048 elements) plus the pod
/// directories above it; a deeper tree is foreign and is refused rather than exhausting fds.
const MAX_DEPTH: usize = 2100;
/// How often a step is retried when another process changes an entry between two system calls.
const MAX_RACE_RETRIES: usize = 8;
/// Modes of the writer's directories: readable by consumers, or only by the owner and the
/// group when every file of the payload is group-owned by one group (`fsGroup`).
const DIR_MODE: u32 = 0o755;
const GROUP_DIR_MODE: u32 = 0o750;

/// Why a payload path is refused (A3). Messages quote the path, which is a key name, never data.
///
/// Two equal paths cannot occur in a [`Payload`], which is a map; the volume builder detects two
/// items mapped to one path before it builds the map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("invalid path: must not be empty")]
    Empty,
    #[error("invalid path: must be at most {MAX_PATH_LENGTH} bytes, got {len}")]
    PathTooLong { len: usize },
    #[error("invalid path {path:?}: must not contain NUL")]
    Nul { path: String },
    #[error("invalid path {path:?}: must be relative")]
    Absolute { path: String },
    #[error("invalid path {path:?}: must not contain an empty element")]
    EmptyElement { path: String },
    #[error("invalid path {path:?}: must not contain '..'")]
    DotDot { path: String },
    #[error("invalid path {path:?}: must not contain '.' as an element")]
    Dot { path: String },
    #[error("invalid path {path:?}: file names must be at most {MAX_FILE_NAME_LENGTH} bytes")]
    NameTooLong { path: String },
    #[error("invalid path {path:?}: must not start with '..'")]
    ReservedPrefix { path: String },
    #[error("invalid path {path:?}: {file:?} is a file and cannot also be a directory")]
    Conflict { path: String, file: String },
}

/// A failed write or removal, naming the target and the entry, never the bytes.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("invalid payload for {target}: {source}")]
    InvalidPayload { target: PathBuf, source: PathError },
    #[error("invalid directory name {element:?} beneath {root}: must be one plain file name")]
    InvalidElement { root: PathBuf, element: String },
    #[error("refusing to remove {root} itself: no directory beneath it was named")]
    NothingToRemove { root: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

fn io_error(action: &'static str, path: PathBuf, source: impl Into<io::Error>) -> WriteError {
    WriteError::Io { action, path, source: source.into() }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// A new version was published; `false` when the payload equalled the current version (only
    /// missing or wrong visible symlinks and leftovers were repaired then).
    pub changed: bool,
    /// The payload asked for an owner other than the agent's, but the agent is not root, so the
    /// files are the agent's; the caller warns once per pod.
    pub owner_skipped: bool,
}

/// The writer for one target directory, which it holds open.
///
/// Invariant: `dir` was opened with `O_DIRECTORY|O_NOFOLLOW` element by element beneath a root
/// the caller trusts, so every `*at` call on it stays inside the target.
#[derive(Debug)]
pub struct AtomicWriter {
    dir: OwnedFd,
    /// For messages and logs only; never used to reach a file.
    path: PathBuf,
}

/// The effective user and group the files get when the payload names none.
#[derive(Debug, Clone, Copy)]
struct Identity {
    root: bool,
    uid: u32,
    gid: u32,
}

impl Identity {
    fn current() -> Self {
        let uid = rustix::process::geteuid();
        Identity { root: uid.is_root(), uid: uid.as_raw(), gid: rustix::process::getegid().as_raw() }
    }

    /// The owner a file of the payload must have, when the writer sets owners at all.
    fn file_owner(&self, file: &FileProjection) -> Option<(u32, u32)> {
        self.root.then(|| (file.uid.unwrap_or(self.uid), file.gid.unwrap_or(self.gid)))
    }
}

/// Mode and group of the directories of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirLayout {
    mode: u32,
    /// Set only when the writer is root, so `fchown` can apply it.
    owner: Option<(u32, u32)>,
}

impl DirLayout {
    fn for_payload(payload: &Payload, identity: &Identity) -> Self {
        if !identity.root {
            return DirLayout { mode: DIR_MODE, owner: None };
        }
        let groups: BTreeSet<Option<u32>> = payload.values().map(|f| f.gid).collect();
        match groups.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(gid)] => DirLayout { mode: GROUP_DIR_MODE, owner: Some((identity.uid, *gid)) },
            _ => DirLayout { mode: DIR_MODE, owner: Some((identity.uid, identity.gid)) },
        }
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits)
}

/// Whether `name` is one element a caller may name beneath a root.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']) && name.len() <= MAX_FILE_NAME_LENGTH
}

/// Whether `name` is a version directory this writer (or Kubernetes') makes: `..` then a digit.
fn is_version_name(name: &str) -> bool {
    name.strip_prefix("..").and_then(|rest| rest.bytes().next()).is_some_and(|b| b.is_ascii_digit())
        && !name.contains('/')
}

/// A fresh version directory name: `..2026_11_22_12_00_00.123456789_Ab3xYz` (UTC).
fn new_version_name() -> String {
    use rand::Rng;
    let suffix: String =
        rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(6).map(char::from).collect();
    format!("..{}_{suffix}", jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%N"))
}

/// Checks every path of a payload (A3); one bad path rejects the whole payload.
pub fn validate_paths(payload: &Payload) -> Result<(), PathError> {
    for path in payload.keys() {
        validate_path(path)?;
    }
    // A path that is also the parent directory of another would have to be a file and a
    // directory at once.
    let mut directories: BTreeMap<&str, &str> = BTreeMap::new();
    for path in payload.keys() {
        for (i, _) in path.match_indices('/') {
            directories.entry(&path[..i]).or_insert(path);
        }
    }
    for file in payload.keys() {
        if let Some(path) = directories.get(file.as_str()) {
            return Err(PathError::Conflict { path: (*path).to_owned(), file: file.clone() });
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), PathError> {
    let owned = || path.to_owned();
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LENGTH {
        return Err(PathError::PathTooLong { len: path.len() });
    }
    if path.contains('\0') {
        return Err(PathError::Nul { path: owned() });
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute { path: owned() });
    }
    for element in path.split('/') {
        match element {
            "" => return Err(PathError::EmptyElement { path: owned() }),
            ".." => return Err(PathError::DotDot { path: owned() }),
            "." => return Err(PathError::Dot { path: owned() }),
            _ if element.len() > MAX_FILE_NAME_LENGTH => {
                return Err(PathError::NameTooLong { path: owned() });
            }
            _ => {}
        }
    }
    if path.starts_with("..") {
        return Err(PathError::ReservedPrefix { path: owned() });
    }
    Ok(())
}

/// Whether `path` is on tmpfs (or ramfs), where secret bytes never reach a disk.
pub fn is_tmpfs(path: &Path) -> Result<bool, io::Error> {
    let stat = rfs::statfs(path)?;
    // `f_type` is a signed word; the magic numbers are its low 32 bits.
    let magic = stat.f_type as u32;
    Ok(magic == TMPFS_MAGIC || magic == RAMFS_MAGIC)
}

/// Opens the trusted `root`; a symlink in the root's own path is the operator's choice.
fn open_root(root: &Path) -> Result<OwnedFd, WriteError> {
    rfs::openat(CWD, root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_error("open directory", root.to_path_buf(), e))
}

fn check_elements(root: &Path, rel: &[&str]) -> Result<(), WriteError> {
    match rel.iter().find(|e| !is_plain_name(e)) {
        Some(bad) => Err(WriteError::InvalidElement { root: root.to_path_buf(), element: (*bad).to_owned() }),
        None => Ok(()),
    }
}

/// Deletes `root/rel...` and everything beneath it without following any symlink (a pod's
/// directory when its manifest is removed). A tree that is already gone is not an error.
pub fn remove_beneath(root: &Path, rel: &[&str]) -> Result<(), WriteError> {
    check_elements(root, rel)?;
    let Some((last, parents)) = rel.split_last() else {
        return Err(WriteError::NothingToRemove { root: root.to_path_buf() });
    };
    let mut dir = open_root(root)?;
    let mut path = root.to_path_buf();
    for element in parents {
        path.push(element);
        dir = match rfs::openat(&dir, *element, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(io_error("open directory", path, e)),
        };
    }
    remove_all_at(dir.as_fd(), &path, last)
}

impl AtomicWriter {
    /// Opens (creating with mode 0755 where missing) `root/rel...`, one element at a time with
    /// `O_NOFOLLOW`, so a symlink anywhere beneath `root` makes this fail instead of being
    /// followed.
    pub fn open_beneath(root: &Path, rel: &[&str]) -> Result<Self, WriteError> {
        check_elements(root, rel)?;
        let mut dir = open_root(root)?;
        let mut path = root.to_path_buf();
        for element in rel {
            path.push(element);
            let created = match rfs::mkdirat(&dir, *element, mode(DIR_MODE)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(io_error("create directory", path, e)),
            };
            let next = rfs::openat(&dir, *element, dir_flags(), Mode::empty())
                .map_err(|e| io_error("open directory", path.clone(), e))?;
            if created {
                // `mkdirat` applied the umask; consumers must be able to traverse.
                rfs::fchmod(&next, mode(DIR_MODE)).map_err(|e| io_error("set the mode of", path.clone(), e))?;
            }
            dir = next;
        }
        Ok(AtomicWriter { dir, path })
    }

    /// The target directory, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Projects `payload` into the target (steps 1–6 of the design document).
    pub fn write(&self, payload: &Payload) -> Result<WriteOutcome, WriteError> {
        self.write_as(payload, Identity::current())
    }

    fn write_as(&self, payload: &Payload, identity: Identity) -> Result<WriteOutcome, WriteError> {
        // (1) Validate before anything is touched.
        validate_paths(payload).map_err(|source| WriteError::InvalidPayload { target: self.path.clone(), source })?;
        let owner_skipped = !identity.root
            && payload
                .values()
                .any(|f| f.uid.is_some_and(|u| u != identity.uid) || f.gid.is_some_and(|g| g != identity.gid));
        let layout = DirLayout::for_payload(payload, &identity);

        // (2) Compare with the current version.
        let current = self.current_version()?;
        let old_names = match &current {
            Some((_, fd)) => top_level_names(fd.as_fd()),
            None => BTreeSet::new(),
        };
        let unchanged =
            current.as_ref().is_some_and(|(name, fd)| self.matches(name, fd.as_fd(), payload, &identity, &layout));

        let version = match (unchanged, current) {
            (true, Some((name, _))) => {
                tracing::debug!(target_dir = %self.path.display(), version = %name, "payload unchanged");
                name
            }
            _ => {
                // (3) and (4): write the new version and publish it.
                let name = self.write_version(payload, &identity, &layout)?;
                self.publish(&name)?;
                tracing::debug!(
                    target_dir = %self.path.display(),
                    version = %name,
                    files = payload.len(),
                    "published new version"
                );
                name
            }
        };

        // (5) Visible names, then (6) what is no longer part of the payload.
        let new_names: BTreeSet<String> = payload.keys().map(|p| top_level(p).to_owned()).collect();
        self.link_visible_names(&new_names)?;
        self.clean_up(&old_names, &new_names, &version)?;
        Ok(WriteOutcome { changed: !unchanged, owner_skipped })
    }

    fn at(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// The version `..data` names, opened; `None` when `..data` is missing, is not a symlink to
    /// a version name, or that name is not a directory (junk the write replaces).
    fn current_version(&self) -> Result<Option<(String, OwnedFd)>, WriteError> {
        let target = match rfs::readlinkat(&self.dir, DATA_DIR_NAME, Vec::new()) {
            Ok(target) => target,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::INVAL) => {
                tracing::warn!(target_dir = %self.path.display(), "..data is not a symlink; replacing it");
                return Ok(None);
            }
            Err(e) => return Err(io_error("read link", self.at(DATA_DIR_NAME), e)),
        };
        let name = match target.into_string() {
            Ok(name) if is_version_name(&name) => name,
            _ => {
                tracing::warn!(target_dir = %self.path.display(), "..data points outside the versions; replacing it");
                return Ok(None);
            }
        };
        match rfs::openat(&self.dir, name.as_str(), dir_flags(), Mode::empty()) {
            Ok(fd) => Ok(Some((name, fd))),
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(io_error("open directory", self.at(&name), e)),
        }
    }

    /// Whether the version holds exactly the payload: the same files with the same bytes, modes
    /// and owners, and directories as this writer would make them. Anything unreadable or
    /// foreign counts as a difference, since rewriting is always safe.
    fn matches(
        &self,
        name: &str,
        version: BorrowedFd<'_>,
        payload: &Payload,
        identity: &Identity,
        layout: &DirLayout,
    ) -> bool {
        let result = (|| -> io::Result<bool> {
            let Some(tree) = walk_version(version, layout)? else {
                return Ok(false);
            };
            if !tree.iter().eq(payload.keys()) {
                return Ok(false);
            }
            for (path, file) in payload {
                if !file_matches(version, path, file, identity)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        result.unwrap_or_else(|error| {
            tracing::debug!(target_dir = %self.path.display(), version = %name, %error, "cannot compare with the current version");
            false
        })
    }

    /// Writes the payload into a new hidden version directory and returns its name; on failure
    /// the partial directory is removed and the current version is untouched.
    fn write_version(&self, payload: &Payload, identity: &Identity, layout: &DirLayout) -> Result<String, WriteError> {
        let mut attempt = 0;
        let (name, version) = loop {
            let name = new_version_name();
            // Created private and opened before anything is written; its final mode is set
            // just before publication.
            match rfs::mkdirat(&self.dir, name.as_str(), mode(0o700)) {
                Ok(()) => {}
                Err(Errno::EXIST) if attempt < MAX_RACE_RETRIES => {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(io_error("create directory", self.at(&name), e)),
            }
            match rfs::openat(&self.dir, name.as_str(), dir_flags(), Mode::empty()) {
                Ok(fd) => break (name, fd),
                Err(e) => {
                    let error = io_error("open directory", self.at(&name), e);
                    self.discard(&name);
                    return Err(error);
                }
            }
        };
        match self.fill_version(&name, version.as_fd(), payload, identity, layout) {
            Ok(()) => Ok(name),
            Err(error) => {
                self.discard(&name);
                Err(error)
            }
        }
    }

    /// Removes a version this write made and could not publish; the error that caused it is
    /// what the caller gets.
    fn discard(&self, name: &str) {
        if let Err(error) = remove_all_at(self.dir.as_fd(), &self.path, name) {
            tracing::warn!(target_dir = %self.path.display(), version = %name, %error, "cannot remove unpublished version");
        }
    }

    fn fill_version(
        &self,
        name: &str,
        version: BorrowedFd<'_>,
        payload: &Payload,
        identity: &Identity,
        layout: &DirLayout,
    ) -> Result<(), WriteError> {
        let base = self.at(name);
        let mut dirs: BTreeMap<&str, OwnedFd> = BTreeMap::new();
        for (path, file) in payload {
            let (parent, file_name) = match path.rsplit_once('/') {
                Some((parent, file_name)) => {
                    ensure_dirs(version, &base, parent, &mut dirs)?;
                    (dirs[parent].as_fd(), file_name)
                }
                None => (version, path.as_str()),
            };
            write_file(parent, file_name, file, identity)
                .map_err(|(action, e)| io_error(action, base.join(path), e))?;
        }
        for (rel, fd) in &dirs {
            set_dir_attributes(fd.as_fd(), layout).map_err(|(action, e)| io_error(action, base.join(rel), e))?;
        }
        set_dir_attributes(version, layout).map_err(|(action, e)| io_error(action, base, e))
    }

    /// Points `..data` at `name` with one rename (A1). A directory squatting `..data` is removed
    /// first, since a symlink cannot be renamed over a directory.
    fn publish(&self, name: &str) -> Result<(), WriteError> {
        let result = (|| {
            remove_all_at(self.dir.as_fd(), &self.path, NEW_DATA_DIR_NAME)?;
            rfs::symlinkat(name, &self.dir, NEW_DATA_DIR_NAME)
                .map_err(|e| io_error("create symlink", self.at(NEW_DATA_DIR_NAME), e))?;
            self.rename_into_place(NEW_DATA_DIR_NAME, DATA_DIR_NAME)
        })();
        if result.is_err() {
            let _ = rfs::unlinkat(&self.dir, NEW_DATA_DIR_NAME, AtFlags::empty());
            self.discard(name);
        }
        result
    }

    /// Renames the symlink `from` over `to`, removing a directory found at `to`.
    fn rename_into_place(&self, from: &str, to: &str) -> Result<(), WriteError> {
        let mut attempt = 0;
        loop {
            match rfs::renameat(&self.dir, from, &self.dir, to) {
                Ok(()) => return Ok(()),
                Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) if attempt < MAX_RACE_RETRIES => {
                    attempt += 1;
                    tracing::warn!(target_dir = %self.path.display(), entry = %to, "removing a directory in the way");
                    remove_all_at(self.dir.as_fd(), &self.path, to)?;
                }
                Err(e) => return Err(io_error("rename symlink to", self.at(to), e)),
            }
        }
    }

    /// Makes every `name -> ..data/name`, replacing whatever else holds the name (A2, and the
    /// repair of kubernetes#121472 on an unchanged payload).
    fn link_visible_names(&self, names: &BTreeSet<String>) -> Result<(), WriteError> {
        for name in names {
            let want = format!("{DATA_DIR_NAME}/{name}");
            match rfs::readlinkat(&self.dir, name.as_str(), Vec::new()) {
                Ok(target) if target.as_bytes() == want.as_bytes() => continue,
                Ok(_) | Err(Errno::INVAL) => {}
                Err(Errno::NOENT) => match rfs::symlinkat(want.as_str(), &self.dir, name.as_str()) {
                    Ok(()) => continue,
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_error("create symlink", self.at(name), e)),
                },
                Err(e) => return Err(io_error("read link", self.at(name), e)),
            }
            tracing::warn!(target_dir = %self.path.display(), entry = %name, "replacing a wrong visible entry");
            remove_all_at(self.dir.as_fd(), &self.path, NEW_LINK_NAME)?;
            rfs::symlinkat(want.as_str(), &self.dir, NEW_LINK_NAME)
                .map_err(|e| io_error("create symlink", self.at(NEW_LINK_NAME), e))?;
            self.rename_into_place(NEW_LINK_NAME, name)?;
        }
        Ok(())
    }

    /// Removes visible names no longer in the payload, then every version but `version` and the
    /// writer's temporary names. Entries the writer never made are left alone.
    fn clean_up(
        &self,
        old_names: &BTreeSet<String>,
        new_names: &BTreeSet<String>,
        version: &str,
    ) -> Result<(), WriteError> {
        let entries = list_entries(self.dir.as_fd()).map_err(|e| io_error("list directory", self.path.clone(), e))?;
        let mut linked = BTreeSet::new();
        let mut leftovers = Vec::new();
        for (name, kind) in &entries {
            // Names that are not UTF-8 are neither the payload's nor the writer's.
            let Ok(name) = name.to_str() else { continue };
            if name.starts_with("..") {
                let ours = is_version_name(name) || name == NEW_DATA_DIR_NAME || name == NEW_LINK_NAME;
                if ours && name != version {
                    leftovers.push(name);
                }
            } else if matches!(kind, FileType::Symlink | FileType::Unknown)
                && rfs::readlinkat(&self.dir, name, Vec::new()).is_ok_and(|t| t.as_bytes().starts_with(b"..data/"))
            {
                linked.insert(name.to_owned());
            }
        }
        for name in names_to_remove(old_names, &linked, new_names) {
            tracing::debug!(target_dir = %self.path.display(), entry = %name, "removing visible name");
            remove_all_at(self.dir.as_fd(), &self.path, &name)?;
        }
        for name in leftovers {
            tracing::debug!(target_dir = %self.path.display(), entry = %name, "removing old version or leftover");
            remove_all_at(self.dir.as_fd(), &self.path, name)?;
        }
        Ok(())
    }
}

/// The first element of a payload path: the visible name that links to it.
fn top_level(path: &str) -> &str {
    path.split_once('/').map_or(path, |(top, _)| top)
}

/// Visible names to remove: those the previous version had or that link into `..data/`, and
/// that the new payload does not have. Reserved `..` names are never visible names.
fn names_to_remove(
    old_names: &BTreeSet<String>,
    linked: &BTreeSet<String>,
    new_names: &BTreeSet<String>,
) -> BTreeSet<String> {
    old_names.union(linked).filter(|n| !new_names.contains(*n) && !n.starts_with("..")).cloned().collect()
}

/// Entries of a directory (without `.` and `..`) with their type as `getdents` reports it.
fn list_entries(dir: BorrowedFd<'_>) -> Result<Vec<(CString, FileType)>, Errno> {
    let mut entries = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            entries.push((name.to_owned(), entry.file_type()));
        }
    }
    Ok(entries)
}

/// The UTF-8 top-level names of a version: the visible names its payload had.
fn top_level_names(version: BorrowedFd<'_>) -> BTreeSet<String> {
    list_entries(version).unwrap_or_default().into_iter().filter_map(|(name, _)| name.into_string().ok()).collect()
}

/// The type of an entry, asking `fstatat` (without following) when `getdents` does not say.
fn entry_type(dir: BorrowedFd<'_>, name: &CStr, kind: FileType) -> Result<FileType, Errno> {
    if kind != FileType::Unknown {
        return Ok(kind);
    }
    let stat = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(FileType::from_raw_mode(stat.st_mode))
}

/// The relative paths of the regular files of a version, or `None` when it holds anything this
/// writer would not have made (a symlink, a special file, an empty or foreign directory).
fn walk_version(version: BorrowedFd<'_>, layout: &DirLayout) -> io::Result<Option<BTreeSet<String>>> {
    let mut files = BTreeSet::new();
    let mut stack: Vec<(Option<OwnedFd>, String)> = vec![(None, String::new())];
    while let Some((owned, prefix)) = stack.pop() {
        let dir = owned.as_ref().map_or(version, |fd| fd.as_fd());
        if !dir_matches(dir, layout)? {
            return Ok(None);
        }
        let entries = list_entries(dir)?;
        if entries.is_empty() && !prefix.is_empty() {
            return Ok(None);
        }
        for (name, kind) in entries {
            let Ok(text) = name.to_str() else { return Ok(None) };
            let path = format!("{prefix}{text}");
            if path.len() > MAX_PATH_LENGTH {
                return Ok(None);
            }
            match entry_type(dir, &name, kind)? {
                FileType::RegularFile => {
                    files.insert(path);
                }
                FileType::Directory => {
                    let fd = rfs::openat(dir, &name, dir_flags(), Mode::empty())?;
                    stack.push((Some(fd), format!("{path}/")));
                }
                _ => return Ok(None),
            }
        }
    }
    Ok(Some(files))
}

fn dir_matches(dir: BorrowedFd<'_>, layout: &DirLayout) -> io::Result<bool> {
    let stat = rfs::fstat(dir)?;
    let owner_ok = layout.owner.is_none_or(|(uid, gid)| stat.st_uid == uid && stat.st_gid == gid);
    Ok(stat.st_mode & 0o7777 == layout.mode && owner_ok)
}

/// Whether the file at `path` in the version has the projection's bytes, mode and owner.
fn file_matches(version: BorrowedFd<'_>, path: &str, file: &FileProjection, identity: &Identity) -> io::Result<bool> {
    let (parents, name) = match path.rsplit_once('/') {
        Some((parents, name)) => (Some(parents), name),
        None => (None, path),
    };
    let mut owned: Option<OwnedFd> = None;
    for element in parents.into_iter().flat_map(|p| p.split('/')) {
        let dir = owned.as_ref().map_or(version, |fd| fd.as_fd());
        owned = Some(rfs::openat(dir, element, dir_flags(), Mode::empty())?);
    }
    let dir = owned.as_ref().map_or(version, |fd| fd.as_fd());
    // O_NONBLOCK so that a FIFO planted in place of a file cannot stall the writer.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rfs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::ACCESS) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let stat = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
        || stat.st_mode & 0o7777 != file.mode & 0o777
        || identity.file_owner(file).is_some_and(|(uid, gid)| (stat.st_uid, stat.st_gid) != (uid, gid))
        || u64::try_from(stat.st_size).ok() != Some(file.data.len() as u64)
    {
        return Ok(false);
    }
    // The buffer holds secret bytes: sized up front so it never reallocates, and zeroized when
    // dropped.
    let len = file.data.len();
    let mut buffer = Vec::with_capacity(len + 1);
    File::from(fd).take(len as u64 + 1).read_to_end(&mut buffer)?;
    let on_disk = SecretBytes::new(buffer);
    Ok(on_disk.expose() == file.data.expose())
}

/// Creates (private) and opens every directory of `parent` inside a new version, caching fds.
fn ensure_dirs<'p>(
    version: BorrowedFd<'_>,
    base: &Path,
    parent: &'p str,
    dirs: &mut BTreeMap<&'p str, OwnedFd>,
) -> Result<(), WriteError> {
    let mut end = 0;
    for element in parent.split('/') {
        let above = &parent[..end.max(1) - 1];
        end += element.len() + 1;
        let rel = &parent[..end - 1];
        if dirs.contains_key(rel) {
            continue;
        }
        let up = if above.is_empty() { version } else { dirs[above].as_fd() };
        // The version directory is new and private, so an existing entry is another process
        // racing the writer: fail rather than write into it.
        rfs::mkdirat(up, element, mode(0o700)).map_err(|e| io_error("create directory", base.join(rel), e))?;
        let fd = rfs::openat(up, element, dir_flags(), Mode::empty())
            .map_err(|e| io_error("open directory", base.join(rel), e))?;
        dirs.insert(rel, fd);
    }
    Ok(())
}

/// A failed step inside a version directory: what was being done, and why.
type StepError = (&'static str, io::Error);

fn write_file(dir: BorrowedFd<'_>, name: &str, file: &FileProjection, identity: &Identity) -> Result<(), StepError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, mode(0o600)).map_err(|e| ("create file", e.into()))?;
    let mut out = File::from(fd);
    out.write_all(file.data.expose()).map_err(|e| ("write file", e))?;
    // The owner first: chown may clear mode bits, and the mode must be exactly as asked (A6).
    if let Some((uid, gid)) = identity.file_owner(file) {
        rfs::fchown(&out, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| ("set the owner of", e.into()))?;
    }
    rfs::fchmod(&out, mode(file.mode & 0o777)).map_err(|e| ("set the mode of", e.into()))
}

fn set_dir_attributes(dir: BorrowedFd<'_>, layout: &DirLayout) -> Result<(), StepError> {
    if let Some((uid, gid)) = layout.owner {
        rfs::fchown(dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| ("set the owner of", e.into()))?;
    }
    rfs::fchmod(dir, mode(layout.mode)).map_err(|e| ("set the mode of", e.into()))
}

enum Unlinked {
    Gone,
    Directory(OwnedFd),
}

/// Unlinks `name` in `dir`, or opens it without following when it is a directory.
fn unlink_or_open(dir: BorrowedFd<'_>, name: &CStr) -> Result<Unlinked, Errno> {
    let mut last = Errno::AGAIN;
    for _ in 0..MAX_RACE_RETRIES {
        match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => return Ok(Unlinked::Gone),
            // Linux answers EISDIR for a directory; POSIX allows EPERM.
            Err(Errno::ISDIR | Errno::PERM) => {}
            Err(e) => return Err(e),
        }
        match rfs::openat(dir, name, dir_flags(), Mode::empty()) {
            Ok(fd) => return Ok(Unlinked::Directory(fd)),
            Err(Errno::NOENT) => return Ok(Unlinked::Gone),
            // Swapped for a non-directory since the unlink (a symlink fails O_NOFOLLOW with
            // ELOOP): unlink that on the next round.
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A directory being emptied by [`remove_all_at`].
struct Frame {
    fd: OwnedFd,
    name: CString,
    path: PathBuf,
    pending: Vec<CString>,
    rounds: usize,
}

impl Frame {
    fn new(fd: OwnedFd, name: CString, path: PathBuf) -> Result<Self, WriteError> {
        let pending = list_entries(fd.as_fd())
            .map_err(|e| io_error("list directory", path.clone(), e))?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        Ok(Frame { fd, name, path, pending, rounds: 0 })
    }
}

/// Removes `name` in `parent` and, if it is a directory, everything beneath it, strictly through
/// `openat(O_DIRECTORY|O_NOFOLLOW)` and `unlinkat`: a symlink is unlinked, never followed. The
/// walk keeps its own stack, so a deep tree costs heap and fds, not thread stack.
fn remove_all_at(parent: BorrowedFd<'_>, parent_path: &Path, name: &str) -> Result<(), WriteError> {
    let path = parent_path.join(name);
    let Ok(cname) = CString::new(name) else {
        return Err(io_error("remove", path, io::Error::from(io::ErrorKind::InvalidInput)));
    };
    let fd = match unlink_or_open(parent, &cname) {
        Ok(Unlinked::Gone) => return Ok(()),
        Ok(Unlinked::Directory(fd)) => fd,
        Err(e) => return Err(io_error("remove", path, e)),
    };
    let mut stack = vec![Frame::new(fd, cname, path)?];
    while let Some(top) = stack.last_mut() {
        if let Some(child) = top.pending.pop() {
            let child_path = top.path.join(OsStr::from_bytes(child.to_bytes()));
            match unlink_or_open(top.fd.as_fd(), &child) {
                Ok(Unlinked::Gone) => {}
                Ok(Unlinked::Directory(fd)) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(io_error("remove", child_path, Errno::NAMETOOLONG));
                    }
                    stack.push(Frame::new(fd, child, child_path)?);
                }
                Err(e) => return Err(io_error("remove", child_path, e)),
            }
            continue;
        }
        let Some(mut done) = stack.pop() else { break };
        let up = stack.last().map_or(parent, |f| f.fd.as_fd());
        match rfs::unlinkat(up, &done.name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            // Another process created entries meanwhile: list the directory again.
            Err(Errno::NOTEMPTY | Errno::EXIST) if done.rounds < MAX_RACE_RETRIES => {
                done.pending = list_entries(done.fd.as_fd())
                    .map_err(|e| io_error("list directory", done.path.clone(), e))?
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect();
                done.rounds += 1;
                stack.push(done);
            }
            Err(e) => return Err(io_error("remove directory", done.path, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn file(data: &[u8], mode: u32) -> FileProjection {
        FileProjection { data: SecretBytes::new(data.to_vec()), mode, uid: None, gid: None }
    }

    fn payload(entries: &[(&str, &[u8], u32)]) -> Payload {
        entries.iter().map(|(p, d, m)| ((*p).to_owned(), file(d, *m))).collect()
    }

    fn target() -> (tempfile::TempDir, AtomicWriter) {
        let root = tempfile::tempdir().expect("tempdir");
        let writer = AtomicWriter::open_beneath(root.path(), &["vol"]).expect("open target");
        (root, writer)
    }

    /// What a consumer sees: every file reachable through the visible names (following symlinks,
    /// as a reader does), with its bytes and mode.
    fn visible(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
        fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, (Vec<u8>, u32)>) {
            for entry in fs::read_dir(dir).expect("read_dir") {
                let entry = entry.expect("entry");
                let name = entry.file_name().into_string().expect("utf-8");
                if prefix.is_empty() && name.starts_with("..") {
                    continue;
                }
                let path = entry.path();
                let meta = fs::metadata(&path).expect("metadata");
                let rel = format!("{prefix}{name}");
                if meta.is_dir() {
                    walk(&path, &format!("{rel}/"), out);
                } else {
                    let bytes = fs::read(&path).expect("read");
                    out.insert(rel, (bytes, meta.permissions().mode() & 0o7777));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, "", &mut out);
        out
    }

    fn expected(payload: &Payload) -> BTreeMap<String, (Vec<u8>, u32)> {
        payload.iter().map(|(p, f)| (p.clone(), (f.data.expose().to_vec(), f.mode & 0o777))).collect()
    }

    /// Everything in a tree, without following symlinks: kind, mode, bytes or link target.
    fn snapshot(dir: &Path) -> BTreeMap<String, String> {
        fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
            for entry in fs::read_dir(dir).expect("read_dir") {
                let entry = entry.expect("entry");
                let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
                let path = entry.path();
                let meta = fs::symlink_metadata(&path).expect("lstat");
                let mode = meta.mode() & 0o7777;
                let value = if meta.file_type().is_symlink() {
                    format!("link {}", fs::read_link(&path).expect("readlink").display())
                } else if meta.is_dir() {
                    walk(&path, &format!("{rel}/"), out);
                    format!("dir {mode:o} {}:{}", meta.uid(), meta.gid())
                } else {
                    format!("file {mode:o} {}:{} {:?}", meta.uid(), meta.gid(), fs::read(&path).expect("read"))
                };
                out.insert(rel, value);
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, "", &mut out);
        out
    }

    fn version_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .filter(|n| is_version_name(n))
            .collect();
        names.sort();
        names
    }

    fn data_target(dir: &Path) -> String {
        fs::read_link(dir.join(DATA_DIR_NAME)).expect("..data").to_str().expect("utf-8").to_owned()
    }

    /// The invariants of a settled target: `..data` names the only version, no temporary names
    /// remain, every visible name links into `..data`, and the visible tree is the payload.
    fn assert_consistent(dir: &Path, payload: &Payload) {
        let current = data_target(dir);
        assert_eq!(version_dirs(dir), vec![current.clone()]);
        assert!(!dir.join(NEW_DATA_DIR_NAME).exists() && fs::symlink_metadata(dir.join(NEW_DATA_DIR_NAME)).is_err());
        assert!(fs::symlink_metadata(dir.join(NEW_LINK_NAME)).is_err());
        for name in payload.keys().map(|p| top_level(p)) {
            let link = fs::read_link(dir.join(name)).expect("visible symlink");
            assert_eq!(link, Path::new(DATA_DIR_NAME).join(name));
        }
        assert_eq!(visible(dir), expected(payload));
    }

    #[test]
    fn validate_paths_accepts_ordinary_paths() {
        let long_name = "n".repeat(MAX_FILE_NAME_LENGTH);
        let long_path = "a/".repeat(MAX_PATH_LENGTH / 2 - 1) + "xy";
        assert_eq!(long_path.len(), MAX_PATH_LENGTH);
        for path in ["a", ".hidden", "a/b/c", "a/..b", "a..", "x/.y", "_", &long_name, &long_path] {
            let p = payload(&[(path, b"v", 0o644)]);
            assert_eq!(validate_paths(&p), Ok(()), "{path}");
        }
        assert_eq!(validate_paths(&Payload::new()), Ok(()));
    }

    #[test]
    fn validate_paths_rejects_bad_paths() {
        let s = |p: &str| p.to_owned();
        let long_name = format!("a/{}", "n".repeat(MAX_FILE_NAME_LENGTH + 1));
        let long_path = "a/".repeat(MAX_PATH_LENGTH / 2) + "b";
        let cases: Vec<(&str, PathError)> = vec![
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute { path: s("/etc/passwd") }),
            ("../x", PathError::DotDot { path: s("../x") }),
            ("..", PathError::DotDot { path: s("..") }),
            ("a/../../x", PathError::DotDot { path: s("a/../../x") }),
            ("hello/../../etc/passwd", PathError::DotDot { path: s("hello/../../etc/passwd") }),
            ("..data", PathError::ReservedPrefix { path: s("..data") }),
            ("..sneaky", PathError::ReservedPrefix { path: s("..sneaky") }),
            ("..2024_01_01/x", PathError::ReservedPrefix { path: s("..2024_01_01/x") }),
            ("a//b", PathError::EmptyElement { path: s("a//b") }),
            ("a/", PathError::EmptyElement { path: s("a/") }),
            ("./a", PathError::Dot { path: s("./a") }),
            ("a\0b", PathError::Nul { path: s("a\0b") }),
            (&long_name, PathError::NameTooLong { path: long_name.clone() }),
            (&long_path, PathError::PathTooLong { len: MAX_PATH_LENGTH + 1 }),
        ];
        for (path, want) in cases {
            let p = payload(&[("good", b"v", 0o644), (path, b"v", 0o644)]);
            assert_eq!(validate_paths(&p), Err(want), "{path:?}");
        }
    }

    #[test]
    fn validate_paths_rejects_a_file_that_is_also_a_directory() {
        let p = payload(&[("a", b"1", 0o644), ("a-b", b"2", 0o644), ("a/b", b"3", 0o644)]);
        assert_eq!(validate_paths(&p), Err(PathError::Conflict { path: "a/b".into(), file: "a".into() }));
        let p = payload(&[("x/y", b"1", 0o644), ("x/y/z/w", b"2", 0o644)]);
        assert_eq!(validate_paths(&p), Err(PathError::Conflict { path: "x/y/z/w".into(), file: "x/y".into() }));
        assert_eq!(validate_paths(&payload(&[("x/y", b"1", 0o644), ("x/z", b"2", 0o644)])), Ok(()));
    }

    #[test]
    fn path_error_messages_quote_the_path() {
        assert_eq!(
            PathError::ReservedPrefix { path: "..data".into() }.to_string(),
            "invalid path \"..data\": must not start with '..'"
        );
        assert_eq!(PathError::Nul { path: "a\0b".into() }.to_string(), "invalid path \"a\\0b\": must not contain NUL");
    }

    // AT1, item 46: a bad path rejects the whole payload and nothing is written.
    #[test]
    fn invalid_payload_writes_nothing() {
        let (_root, writer) = target();
        let good = payload(&[("a", b"one", 0o644), ("d/b", b"two", 0o600)]);
        writer.write(&good).expect("first write");
        let before = snapshot(writer.path());
        for bad in ["../x", "a/../../x", "/etc/passwd", "..data", "..2024_01_01", "a//b", "b/", "c\0", "new/.."] {
            let mut p = good.clone();
            p.insert("added".into(), file(b"new", 0o644));
            p.insert(bad.into(), file(b"evil", 0o644));
            let err = writer.write(&p).expect_err(bad);
            assert!(matches!(err, WriteError::InvalidPayload { .. }), "{bad:?}: {err}");
            assert_eq!(snapshot(writer.path()), before, "{bad:?}");
        }
        let err = writer.write(&payload(&[("..data", b"x", 0o644)])).expect_err("reserved");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid payload for {}: invalid path \"..data\": must not start with '..'",
                writer.path().display()
            )
        );
        assert_consistent(writer.path(), &good);
    }

    // AT2: binary payloads, dotfiles, nested directories and mixed modes, whatever the umask.
    #[test]
    fn first_write_projects_the_payload() {
        let (_root, writer) = target();
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let p = payload(&[
            ("bin", &binary, 0o400),
            (".hidden", b"dot", 0o640),
            ("a/b/c", b"deep", 0o755),
            ("a/b/d", b"", 0o600),
            ("a/e", b"mid", 0o777),
            ("setuid", b"masked", 0o4755),
        ]);
        let outcome = writer.write(&p).expect("write");
        assert_eq!(outcome, WriteOutcome { changed: true, owner_skipped: false });
        assert_consistent(writer.path(), &p);
        assert_eq!(visible(writer.path())["setuid"].1, 0o755);
        let version = writer.path().join(data_target(writer.path()));
        for dir in [version.clone(), version.join("a"), version.join("a/b")] {
            assert_eq!(fs::metadata(&dir).expect("dir").mode() & 0o7777, DIR_MODE, "{}", dir.display());
        }
        let names: BTreeSet<String> = fs::read_dir(writer.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        let want: BTreeSet<String> =
            [".hidden", "a", "bin", "setuid", DATA_DIR_NAME, &data_target(writer.path())].map(String::from).into();
        assert_eq!(names, want);
    }

    #[test]
    fn version_names_are_utc_timestamps_with_a_random_suffix() {
        let name = new_version_name();
        // ..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN_XXXXXX
        assert_eq!(name.len(), 2 + 19 + 1 + 9 + 1 + 6, "{name}");
        let bytes = name.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            let ok = match i {
                0 | 1 => *b == b'.',
                6 | 9 | 12 | 15 | 18 | 31 => *b == b'_',
                21 => *b == b'.',
                32.. => b.is_ascii_alphanumeric(),
                _ => b.is_ascii_digit(),
            };
            assert!(ok, "{name}: byte {i}");
        }
        let year: i16 = name[2..6].parse().expect("year");
        assert_eq!(year, jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).year());
        assert!(is_version_name(&name));
        assert_ne!(new_version_name()[32..], name[32..]);
    }

    #[test]
    fn root_sets_owners_and_group_directories() {
        let (_root, writer) = target();
        let mut p = payload(&[("a", b"1", 0o400), ("d/b", b"2", 0o440)]);
        for f in p.values_mut() {
            f.uid = Some(1234);
            f.gid = Some(5678);
        }
        let outcome = writer.write(&p).expect("write");
        if !Identity::current().root {
            // Without root the owner cannot be given away: it is reported, not applied.
            assert_eq!(outcome, WriteOutcome { changed: true, owner_skipped: true });
            return;
        }
        assert_eq!(outcome, WriteOutcome { changed: true, owner_skipped: false });
        let version = writer.path().join(data_target(writer.path()));
        for f in [version.join("a"), version.join("d/b")] {
            let meta = fs::metadata(&f).expect("file");
            assert_eq!((meta.uid(), meta.gid()), (1234, 5678), "{}", f.display());
        }
        for d in [version.clone(), version.join("d")] {
            let meta = fs::metadata(&d).expect("dir");
            assert_eq!((meta.mode() & 0o7777, meta.gid()), (GROUP_DIR_MODE, 5678), "{}", d.display());
        }
        assert_eq!(visible(writer.path()), expected(&p));
        // The same owners again: nothing is rewritten.
        assert!(!writer.write(&p).expect("again").changed);
        // An owner-only change is a change.
        p.get_mut("a").expect("a").uid = Some(4321);
        assert!(writer.write(&p).expect("owner change").changed);
        let meta = fs::metadata(writer.path().join("a")).expect("a");
        assert_eq!(meta.uid(), 4321);
    }

    #[test]
    fn owner_is_skipped_and_reported_when_not_root() {
        let (_root, writer) = target();
        let me = Identity::current();
        let non_root = Identity { root: false, ..me };
        let mut p = payload(&[("a", b"1", 0o400)]);
        p.get_mut("a").expect("a").uid = Some(me.uid.wrapping_add(1));
        let outcome = writer.write_as(&p, non_root).expect("write");
        assert_eq!(outcome, WriteOutcome { changed: true, owner_skipped: true });
        let meta = fs::symlink_metadata(writer.path().join(data_target(writer.path())).join("a")).expect("a");
        assert_eq!((meta.uid(), meta.gid()), (me.uid, me.gid));
        // The skipped owner must not make every later write look like a change.
        assert_eq!(writer.write_as(&p, non_root).expect("again"), WriteOutcome { changed: false, owner_skipped: true });
        // Asking for the agent's own ids is not a skip.
        p.get_mut("a").expect("a").uid = Some(me.uid);
        p.get_mut("a").expect("a").gid = Some(me.gid);
        assert!(!writer.write_as(&p, non_root).expect("own ids").owner_skipped);
    }

    // AT3: update matrix; each row writes `before`, then `after`.
    #[test]
    fn update_matrix() {
        type Files = &'static [(&'static str, &'static [u8], u32)];
        let cases: &[(&str, Files, Files, bool)] = &[
            ("add", &[("a", b"1", 0o644)], &[("a", b"1", 0o644), ("b", b"2", 0o644)], true),
            ("delete", &[("a", b"1", 0o644), ("b", b"2", 0o644)], &[("a", b"1", 0o644)], true),
            ("nested add", &[("d/a", b"1", 0o644)], &[("d/a", b"1", 0o644), ("d/e/f", b"2", 0o600)], true),
            ("nested delete", &[("d/a", b"1", 0o644), ("d/e/f", b"2", 0o644)], &[("d/a", b"1", 0o644)], true),
            ("delete a directory", &[("x", b"1", 0o644), ("d/a", b"2", 0o644)], &[("x", b"1", 0o644)], true),
            ("file becomes directory", &[("d", b"1", 0o644)], &[("d/a", b"2", 0o644)], true),
            ("content change", &[("a", b"1", 0o644)], &[("a", b"2", 0o644)], true),
            ("same size content change", &[("a", b"abc", 0o644)], &[("a", b"abd", 0o644)], true),
            (
                "mode only",
                &[("a", b"1", 0o644), ("d/b", b"2", 0o644)],
                &[("a", b"1", 0o644), ("d/b", b"2", 0o400)],
                true,
            ),
            (
                "no change",
                &[("a", b"1", 0o644), ("d/b", b"2", 0o600)],
                &[("a", b"1", 0o644), ("d/b", b"2", 0o600)],
                false,
            ),
            ("to empty", &[("a", b"1", 0o644)], &[], true),
            ("from empty", &[], &[("a", b"1", 0o644)], true),
            ("empty to empty", &[], &[], false),
        ];
        for (label, before, after, changed) in cases {
            let (_root, writer) = target();
            let (before, after) = (payload(before), payload(after));
            writer.write(&before).expect(label);
            let first = data_target(writer.path());
            let outcome = writer.write(&after).expect(label);
            assert_eq!(outcome.changed, *changed, "{label}");
            assert_consistent(writer.path(), &after);
            assert_eq!(data_target(writer.path()) == first, !changed, "{label}: version name");
            // Visible entries are exactly the top-level names of the payload.
            let shown: BTreeSet<String> = fs::read_dir(writer.path())
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .filter(|n| !n.starts_with(".."))
                .collect();
            let want: BTreeSet<String> = after.keys().map(|p| top_level(p).to_owned()).collect();
            assert_eq!(shown, want, "{label}");
        }
    }

    // kubernetes#121472: an unchanged payload still recreates a missing visible symlink.
    #[test]
    fn unchanged_write_recreates_missing_visible_names() {
        let (_root, writer) = target();
        let p = payload(&[("a", b"1", 0o644), ("d/b", b"2", 0o644), ("c", b"3", 0o644)]);
        writer.write(&p).expect("write");
        let version = data_target(writer.path());
        fs::remove_file(writer.path().join("a")).expect("remove a");
        fs::remove_file(writer.path().join("d")).expect("remove d");
        // A regular file and a directory squatting visible names are replaced as well.
        fs::remove_file(writer.path().join("c")).expect("remove c");
        fs::create_dir_all(writer.path().join("c/inner")).expect("squat c");
        let outcome = writer.write(&p).expect("rewrite");
        assert!(!outcome.changed);
        assert_eq!(data_target(writer.path()), version);
        assert_consistent(writer.path(), &p);
        fs::remove_file(writer.path().join("c")).expect("remove c");
        fs::write(writer.path().join("c"), b"squatter").expect("squat c");
        assert!(!writer.write(&p).expect("rewrite").changed);
        assert_consistent(writer.path(), &p);
    }

    #[test]
    fn a_tampered_version_is_rewritten() {
        let (_root, writer) = target();
        let p = payload(&[("a", b"1", 0o644), ("d/b", b"2", 0o644)]);
        writer.write(&p).expect("write");
        let version = writer.path().join(data_target(writer.path()));
        fs::write(version.join("extra"), b"x").expect("extra file");
        assert!(writer.write(&p).expect("rewrite").changed);
        assert_consistent(writer.path(), &p);
        let version = writer.path().join(data_target(writer.path()));
        fs::set_permissions(version.join("d"), fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(writer.write(&p).expect("rewrite").changed);
        assert_consistent(writer.path(), &p);
    }

    // AT4: the visible names to remove, computed independently.
    #[test]
    fn names_to_remove_are_old_or_linked_names_not_in_the_payload() {
        let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<_>>();
        let cases = [
            (set(&["a", "b"]), set(&[]), set(&["a"]), set(&["b"])),
            (set(&["a"]), set(&["a", "z"]), set(&["a"]), set(&["z"])),
            (set(&[]), set(&["x", "..data"]), set(&[]), set(&["x"])),
            (set(&["a", "d"]), set(&["d"]), set(&["a", "d"]), set(&[])),
            (set(&["a"]), set(&[]), set(&[]), set(&["a"])),
        ];
        for (old, linked, new, want) in cases {
            assert_eq!(names_to_remove(&old, &linked, &new), want, "{old:?} {linked:?} {new:?}");
        }
    }

    #[test]
    fn foreign_entries_are_left_alone() {
        let (_root, writer) = target();
        let p = payload(&[("a", b"1", 0o644)]);
        writer.write(&p).expect("write");
        fs::write(writer.path().join("user-file"), b"mine").expect("user file");
        symlink("elsewhere", writer.path().join("user-link")).expect("user link");
        fs::create_dir(writer.path().join("..other")).expect("other");
        writer.write(&payload(&[("b", b"2", 0o644)])).expect("write");
        assert_eq!(fs::read(writer.path().join("user-file")).expect("user file"), b"mine");
        assert_eq!(fs::read_link(writer.path().join("user-link")).expect("link"), Path::new("elsewhere"));
        assert!(writer.path().join("..other").is_dir());
        assert!(fs::symlink_metadata(writer.path().join("a")).is_err());
    }

    // Item 49: junk left in the target is recovered from deterministically.
    #[test]
    fn junk_is_replaced_or_removed() {
        let p = payload(&[("a", b"1", 0o644), ("d/b", b"2", 0o600)]);
        /// Puts junk into a target directory.
        type Plant = fn(&Path);
        let junk: &[(&str, Plant)] = &[
            ("regular file ..data", |dir| fs::write(dir.join(DATA_DIR_NAME), b"junk").expect("junk")),
            ("directory ..data", |dir| {
                fs::create_dir_all(dir.join("..data/x/y")).expect("junk");
                fs::write(dir.join("..data/x/y/z"), b"junk").expect("junk");
            }),
            ("directory ..data_tmp", |dir| {
                fs::create_dir_all(dir.join("..data_tmp/x")).expect("junk");
                fs::write(dir.join("..data_tmp/x/f"), b"junk").expect("junk");
            }),
            ("regular file ..data_tmp", |dir| fs::write(dir.join(NEW_DATA_DIR_NAME), b"junk").expect("junk")),
            ("leftover ..link_tmp", |dir| fs::create_dir_all(dir.join("..link_tmp/x")).expect("junk")),
            ("stale version", |dir| {
                let stale = dir.join("..2020_01_01_00_00_00.000000000_AAAAAA");
                fs::create_dir_all(stale.join("n/m")).expect("junk");
                fs::write(stale.join("n/m/f"), b"partial").expect("junk");
                fs::write(stale.join("a"), b"partial").expect("junk");
            }),
            ("..data to a missing version", |dir| {
                symlink("..2020_01_01_00_00_00.000000000_BBBBBB", dir.join(DATA_DIR_NAME)).expect("junk")
            }),
            ("..data to a file", |dir| {
                fs::write(dir.join("..2020_01_01_00_00_00.000000000_CCCCCC"), b"f").expect("junk");
                symlink("..2020_01_01_00_00_00.000000000_CCCCCC", dir.join(DATA_DIR_NAME)).expect("junk");
            }),
        ];
        for (label, plant) in junk {
            // Before the first write, and over an existing version.
            for existing in [false, true] {
                let (_root, writer) = target();
                if existing {
                    writer.write(&payload(&[("old", b"0", 0o644)])).expect(label);
                    if label.starts_with("..data") || label.ends_with("..data") {
                        fs::remove_file(writer.path().join(DATA_DIR_NAME)).expect(label);
                    }
                }
                plant(writer.path());
                let outcome = writer.write(&p).unwrap_or_else(|e| panic!("{label}: {e}"));
                assert!(outcome.changed, "{label}");
                assert_consistent(writer.path(), &p);
                assert!(fs::symlink_metadata(writer.path().join("old")).is_err(), "{label}");
            }
        }
    }

    /// An outside directory holding a file and a subdirectory, and a check that it is untouched.
    struct Outside {
        dir: tempfile::TempDir,
        before: BTreeMap<String, String>,
    }

    impl Outside {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("outside");
            fs::write(dir.path().join("secret"), b"outside").expect("secret");
            fs::set_permissions(dir.path().join("secret"), fs::Permissions::from_mode(0o640)).expect("chmod");
            fs::create_dir(dir.path().join("sub")).expect("sub");
            fs::write(dir.path().join("sub/a"), b"outside a").expect("sub/a");
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).expect("chmod");
            let mut before = snapshot(dir.path());
            before.insert(".".into(), format!("{:o}", fs::metadata(dir.path()).expect("dir").mode()));
            Outside { dir, before }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn assert_untouched(&self, label: &str) {
            let mut now = snapshot(self.path());
            now.insert(".".into(), format!("{:o}", fs::metadata(self.path()).expect("dir").mode()));
            assert_eq!(now, self.before, "{label}: outside directory changed");
        }
    }

    // AT5, item 48: symlinks planted in the target never send a write, chmod, chown or delete
    // outside it.
    #[test]
    fn planted_symlinks_are_never_followed() {
        let v1 = payload(&[("a", b"1", 0o644), ("d/b", b"2", 0o600), ("secret", b"s1", 0o600)]);
        let v2 = payload(&[("a", b"11", 0o400), ("d/c", b"3", 0o644)]);
        /// Plants symlinks into a target directory (first) pointing at an outside one (second).
        type Attack = fn(&Path, &Path);
        let attacks: &[(&str, Attack)] = &[
            ("..data to an outside directory", |dir, out| {
                fs::remove_file(dir.join(DATA_DIR_NAME)).expect("rm");
                symlink(out, dir.join(DATA_DIR_NAME)).expect("plant");
            }),
            ("..data to a version that links outside", |dir, out| {
                let fake = "..2099_01_01_00_00_00.000000000_EVILEV";
                symlink(out, dir.join(fake)).expect("plant");
                fs::remove_file(dir.join(DATA_DIR_NAME)).expect("rm");
                symlink(fake, dir.join(DATA_DIR_NAME)).expect("plant");
            }),
            ("visible name to an outside file", |dir, out| {
                fs::remove_file(dir.join("a")).expect("rm");
                symlink(out.join("secret"), dir.join("a")).expect("plant");
                fs::remove_file(dir.join("secret")).expect("rm");
                symlink(out.join("secret"), dir.join("secret")).expect("plant");
            }),
            ("visible directory name to an outside directory", |dir, out| {
                fs::remove_file(dir.join("d")).expect("rm");
                symlink(out, dir.join("d")).expect("plant");
            }),
            ("..data_tmp to an outside directory", |dir, out| {
                symlink(out, dir.join(NEW_DATA_DIR_NAME)).expect("plant");
            }),
            ("..link_tmp to an outside file", |dir, out| {
                symlink(out.join("secret"), dir.join(NEW_LINK_NAME)).expect("plant");
            }),
            ("stale version to an outside directory", |dir, out| {
                symlink(out, dir.join("..2020_01_01_00_00_00.000000000_STALE1")).expect("plant");
            }),
            ("directory inside the current version to an outside directory", |dir, out| {
                let version = dir.join(data_target(dir));
                fs::remove_dir_all(version.join("d")).expect("rm");
                symlink(out, version.join("d")).expect("plant");
            }),
            ("file inside the current version to an outside file", |dir, out| {
                let version = dir.join(data_target(dir));
                fs::remove_file(version.join("a")).expect("rm");
                symlink(out.join("secret"), version.join("a")).expect("plant");
            }),
        ];
        for (label, plant) in attacks {
            for next in [&v1, &v2] {
                let outside = Outside::new();
                let (_root, writer) = target();
                writer.write(&v1).expect(label);
                plant(writer.path(), outside.path());
                writer.write(next).unwrap_or_else(|e| panic!("{label}: {e}"));
                outside.assert_untouched(label);
                // The planted link is replaced or removed, whatever the payload.
                assert_consistent(writer.path(), next);
                writer.write(&v1).unwrap_or_else(|e| panic!("{label}: {e}"));
                outside.assert_untouched(label);
                assert_consistent(writer.path(), &v1);
            }
        }
    }

    /// Item 48 under racing timing: while the writer writes 400 versions, an attacker thread
    /// keeps swapping `..data`, `..data_tmp`, visible names and stale version names for symlinks
    /// to an outside directory. Writes may fail (the attacker wins a race), but nothing outside
    /// is ever written, chmodded or deleted, and a final write with the attacker gone is whole.
    #[test]
    fn racing_symlink_swaps_never_reach_outside() {
        let outside = Outside::new();
        let (_root, writer) = target();
        let dir = writer.path().to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = {
            let (dir, out, stop) = (dir.clone(), outside.path().to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                let names = [
                    DATA_DIR_NAME,
                    NEW_DATA_DIR_NAME,
                    NEW_LINK_NAME,
                    "a",
                    "d",
                    "..2020_01_01_00_00_00.000000000_STALE1",
                ];
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let name = names[i % names.len()];
                    let target = if i.is_multiple_of(2) { out.clone() } else { out.join("secret") };
                    let path = dir.join(name);
                    let _ = fs::remove_file(&path);
                    let _ = symlink(&target, &path);
                    i += 1;
                }
            })
        };
        let versions: Vec<Payload> = (0..400)
            .map(|i| {
                let n = i.to_string();
                payload(&[("a", n.as_bytes(), 0o644), ("d/b", n.as_bytes(), 0o600)])
            })
            .collect();
        let mut failed = 0;
        for v in &versions {
            if writer.write(v).is_err() {
                failed += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        attacker.join().expect("attacker");
        outside.assert_untouched("racing swaps");
        let last = payload(&[("a", b"last", 0o644), ("d/b", b"last", 0o600)]);
        writer.write(&last).expect("a write with the attacker gone");
        assert_consistent(&dir, &last);
        outside.assert_untouched("racing swaps, then a clean write");
        assert!(failed < versions.len(), "some writes succeeded during the race");
    }

    #[test]
    fn open_beneath_never_follows_a_symlink() {
        let root = tempfile::tempdir().expect("root");
        let outside = Outside::new();
        fs::create_dir(root.path().join("pods")).expect("pods");
        symlink(outside.path(), root.path().join("pods/ns")).expect("plant");
        let err = AtomicWriter::open_beneath(root.path(), &["pods", "ns", "pod"]).expect_err("symlink");
        let want = format!("cannot open directory {}: ", root.path().join("pods/ns").display());
        assert!(err.to_string().starts_with(&want), "{err}");
        let WriteError::Io { source, .. } = &err else { panic!("{err:?}") };
        // Linux answers ENOTDIR for a symlink opened with O_DIRECTORY|O_NOFOLLOW (ELOOP without
        // O_DIRECTORY); either way it was not followed.
        let errno = source.raw_os_error();
        assert!(errno == Some(Errno::NOTDIR.raw_os_error()) || errno == Some(Errno::LOOP.raw_os_error()), "{err}");
        outside.assert_untouched("open_beneath");
        // A planted regular file is not a directory either.
        fs::write(root.path().join("pods/file"), b"x").expect("file");
        let err = AtomicWriter::open_beneath(root.path(), &["pods", "file"]).expect_err("file");
        assert!(matches!(&err, WriteError::Io { action: "open directory", .. }), "{err}");
    }

    #[test]
    fn open_beneath_creates_traversable_directories_and_rejects_bad_elements() {
        let root = tempfile::tempdir().expect("root");
        let writer = AtomicWriter::open_beneath(root.path(), &["pods", "ns", "pod", "volumes", "v"]).expect("open");
        assert_eq!(writer.path(), root.path().join("pods/ns/pod/volumes/v"));
        for rel in ["pods", "pods/ns", "pods/ns/pod/volumes/v"] {
            assert_eq!(fs::metadata(root.path().join(rel)).expect(rel).mode() & 0o7777, 0o755, "{rel}");
        }
        for bad in ["", ".", "..", "a/b", "a\0", &"n".repeat(256)] {
            let err = AtomicWriter::open_beneath(root.path(), &["pods", bad]).expect_err(bad);
            assert!(matches!(&err, WriteError::InvalidElement { element, .. } if element == bad), "{err}");
            let err = remove_beneath(root.path(), &["pods", bad]).expect_err(bad);
            assert!(matches!(err, WriteError::InvalidElement { .. }));
        }
        assert!(matches!(remove_beneath(root.path(), &[]), Err(WriteError::NothingToRemove { .. })));
    }

    #[test]
    fn remove_beneath_deletes_the_tree_without_following_symlinks() {
        let root = tempfile::tempdir().expect("root");
        let outside = Outside::new();
        let writer = AtomicWriter::open_beneath(root.path(), &["pods", "ns", "pod", "volumes", "v"]).expect("open");
        writer.write(&payload(&[("a", b"1", 0o400), ("d/b", b"2", 0o400)])).expect("write");
        let pod = root.path().join("pods/ns/pod");
        symlink(outside.path(), pod.join("to-dir")).expect("plant");
        symlink(outside.path().join("secret"), pod.join("volumes/to-file")).expect("plant");
        fs::create_dir_all(pod.join("deep/1/2/3/4")).expect("deep");
        symlink(outside.path().join("sub"), pod.join("deep/1/2/3/4/sub")).expect("plant");
        // A directory the agent cannot write into as a non-root user is still removed by root;
        // the walk itself needs only read and search permission.
        fs::set_permissions(pod.join("deep/1"), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir(root.path().join("pods/ns/other")).expect("sibling");
        remove_beneath(root.path(), &["pods", "ns", "pod"]).expect("remove");
        assert!(fs::symlink_metadata(&pod).is_err());
        assert!(root.path().join("pods/ns/other").is_dir());
        outside.assert_untouched("remove_beneath");
        // Already gone, or never there: not an error.
        remove_beneath(root.path(), &["pods", "ns", "pod"]).expect("again");
        remove_beneath(root.path(), &["pods", "missing", "pod"]).expect("missing parent");
        // A symlink named as the pod directory is unlinked, not followed.
        symlink(outside.path(), &pod).expect("plant");
        remove_beneath(root.path(), &["pods", "ns", "pod"]).expect("symlink");
        assert!(fs::symlink_metadata(&pod).is_err());
        outside.assert_untouched("remove_beneath symlink");
        // A symlink above the named directory is refused, not followed.
        symlink(outside.path(), root.path().join("pods/evil")).expect("plant");
        let err = remove_beneath(root.path(), &["pods", "evil", "sub"]).expect_err("symlink parent");
        assert!(matches!(&err, WriteError::Io { action: "open directory", .. }), "{err}");
        outside.assert_untouched("remove_beneath symlink parent");
    }

    #[test]
    fn is_tmpfs_reads_the_filesystem_type() {
        assert!(!is_tmpfs(Path::new("/proc")).expect("statfs /proc"));
        let err = is_tmpfs(Path::new("/nonexistent/strongroom")).expect_err("missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // /dev/shm is tmpfs wherever it exists as its own mount; the answer must agree with the
        // kernel's mount table.
        let mounts = fs::read_to_string("/proc/self/mounts").expect("mounts");
        if let Some(line) = mounts.lines().find(|l| l.split(' ').nth(1) == Some("/dev/shm")) {
            let kind = line.split(' ').nth(2).expect("type");
            assert_eq!(is_tmpfs(Path::new("/dev/shm")).expect("statfs"), kind == "tmpfs" || kind == "ramfs");
        }
    }

    // A1, item 51: readers never see a torn file, nor a mix of versions through one `..data`.
    #[test]
    fn concurrent_readers_never_see_mixed_versions() {
        const VERSIONS: u32 = 300;
        const FILES: [&str; 4] = ["a", "b", "d/c", "d/e/f"];
        let (_root, writer) = target();
        fn content(n: u32) -> Vec<u8> {
            format!("{n:08}\n").repeat(512).into_bytes()
        }
        /// The version a file holds, asserting that it holds all of it.
        fn version_of(bytes: &[u8]) -> u32 {
            let text = std::str::from_utf8(bytes).expect("utf-8");
            let n: u32 = text[..8].parse().expect("number");
            assert_eq!(bytes, content(n).as_slice(), "torn file");
            n
        }
        let make = |n: u32| -> Payload { FILES.iter().map(|p| ((*p).to_owned(), file(&content(n), 0o644))).collect() };
        writer.write(&make(0)).expect("first");
        let dir = writer.path().to_path_buf();
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (dir, done) = (dir.clone(), done.clone());
                std::thread::spawn(move || {
                    let (mut snapshots, mut last) = (0u32, 0u32);
                    while !done.load(Ordering::Acquire) {
                        // Each visible file is one complete version, never older than one read
                        // before it.
                        for p in FILES {
                            match fs::read(dir.join(p)) {
                                Ok(bytes) => {
                                    let n = version_of(&bytes);
                                    assert!(n >= last, "{p}: version {n} after {last}");
                                    last = n;
                                }
                                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                                Err(e) => panic!("{p}: {e}"),
                            }
                        }
                        // All files through one resolved `..data` are one version.
                        let Ok(version) = fs::read_link(dir.join(DATA_DIR_NAME)) else { continue };
                        let read: Result<Vec<u32>, io::Error> = FILES
                            .iter()
                            .map(|p| fs::read(dir.join(&version).join(p)).map(|b| version_of(&b)))
                            .collect();
                        match read {
                            Ok(ns) => {
                                assert!(ns.iter().all(|n| *n == ns[0]), "mixed versions {ns:?}");
                                snapshots += 1;
                            }
                            // The version was replaced and removed while being read: retry.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    snapshots
                })
            })
            .collect();
        for n in 1..=VERSIONS {
            assert!(writer.write(&make(n)).expect("write").changed);
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            let snapshots = reader.join().expect("reader");
            assert!(snapshots > 0, "a reader never completed a snapshot");
        }
        assert_consistent(&dir, &make(VERSIONS));
    }
}
