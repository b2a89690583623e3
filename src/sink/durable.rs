//! Commits that survive a power loss on a local warehouse.
//!
//! object_store's local file system neither syncs the files it writes nor the folders that
//! name them, so after a power loss a commit could name files that are empty or missing. On a
//! local warehouse the commit protocol (see [`super::commit`]) therefore syncs, in this order:
//!
//! 1. the run's staged files, before the claim: whatever the claim names is on disk (a run's
//!    outputs sync theirs side by side once closed, 8 files at a time, and each claim checks
//!    again);
//! 2. the claim itself, written to a hidden temporary file, synced, then linked to its name
//!    (atomic, and refused if the name exists), then its folder;
//! 3. after the files are moved into the table, every folder they were moved into and the
//!    folders above it up to the warehouse root (a new partition folder is itself an entry);
//! 4. the published mark and `_SUCCESS`'s folders: a `_SUCCESS` is never on disk before the
//!    files it vouches for.
//!
//! S3 acknowledges a PUT once it is stored durably, and HDFS closes a file once its DataNodes
//! hold every block; there is nothing to sync there.

use std::fmt::Debug;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What [`super::Warehouse::sync`] makes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// The files' bytes.
    Data,
    /// The files' names: the folders holding them, up to the warehouse root.
    Names,
}

/// Flushes a file's data, or a folder's entries, to the disk.
pub trait Syncer: Send + Sync + Debug {
    /// Makes the data of the file at `path` durable.
    fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    /// Makes the entries of the folder at `path` (its files' names) durable.
    fn sync_folder(&self, path: &Path) -> std::io::Result<()>;
}

/// `fsync(2)` on the file or the folder.
#[derive(Debug, Clone, Copy)]
pub struct Fsync;

impl Syncer for Fsync {
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn sync_folder(&self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
}

/// The folders holding `files` and every folder above them up to `root`, deepest first, each
/// once.
pub fn folders_up_to(root: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = Vec::new();
    let mut known = std::collections::HashSet::new();
    for file in files {
        let mut folder = file.parent();
        while let Some(f) = folder {
            if !f.starts_with(root) {
                break;
            }
            if known.insert(f) {
                folders.push(f.to_path_buf());
            }
            if f == root {
                break;
            }
            folder = f.parent();
        }
    }
    folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
    folders
}

/// Creates `path` holding `body` only if it does not exist, durably: the bytes are synced in a
/// hidden temporary file before it is linked to `path`, then the folder is synced. `Ok(false)`
/// when `path` already existed.
pub fn create_new(syncer: &dyn Syncer, path: &Path, body: &[u8]) -> std::io::Result<bool> {
    let folder = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(folder)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = folder.join(format!(".{name}.{}.tmp", uuid::Uuid::now_v7().simple()));
    let written = (|| {
        let mut file = std::fs::File::create_new(&temporary)?;
        file.write_all(body)?;
        drop(file);
        syncer.sync_file(&temporary)?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            syncer.sync_folder(folder)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_listed_deepest_first_up_to_the_root_once_each() {
        let root = Path::new("/w");
        let files = [
            PathBuf::from("/w/t/p=1/a.parquet"),
            PathBuf::from("/w/t/p=2/b.parquet"),
            PathBuf::from("/w/t/c.parquet"),
        ];
        assert_eq!(
            folders_up_to(root, &files),
            [
                PathBuf::from("/w/t/p=1"),
                PathBuf::from("/w/t/p=2"),
                PathBuf::from("/w/t"),
                PathBuf::from("/w"),
            ]
        );
    }

    #[test]
    fn a_new_file_is_created_once_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/1.json");
        assert!(create_new(&Fsync, &path, b"first").unwrap());
        assert!(!create_new(&Fsync, &path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(
            std::fs::read_dir(dir.path().join("log")).unwrap().count(),
            1
        );
    }
}
