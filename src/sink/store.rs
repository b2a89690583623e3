//! The warehouse: a URL mapped to an object store. The only code that maps schemes to stores.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use super::SinkError;

/// Folder under the warehouse root where runs stage their output; readers never list it.
pub const STAGING_DIR: &str = ".bnetl-staging";

/// Where tables are written and read: a root URL and the object store behind it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    url: Url,
    root: Path,
    local_root: PathBuf,
    store: Arc<dyn ObjectStore>,
}

impl Warehouse {
    /// Parses a local path or a `file://` URL.
    pub fn parse(location: &str) -> Result<Self, SinkError> {
        let unsupported = |scheme: &str| SinkError::Location {
            location: location.to_owned(),
            reason: format!(
                "the {scheme}:// scheme is not supported yet (use a local path or file://)"
            ),
        };
        let local_root = match Url::parse(location) {
            Ok(url) if url.scheme() == "file" => {
                url.to_file_path().map_err(|()| SinkError::Location {
                    location: location.to_owned(),
                    reason: "not a valid file:// URL".into(),
                })?
            }
            // One-letter "schemes" are Windows drive letters, not URLs.
            Ok(url) if url.scheme().len() > 1 => return Err(unsupported(url.scheme())),
            _ => PathBuf::from(location),
        };
        let local_root = std::path::absolute(&local_root).map_err(|e| SinkError::Location {
            location: location.to_owned(),
            reason: e.to_string(),
        })?;
        let url = Url::from_directory_path(&local_root).map_err(|()| SinkError::Location {
            location: location.to_owned(),
            reason: "not an absolute path".into(),
        })?;
        let root = Path::from_absolute_path(&local_root).map_err(|e| SinkError::Location {
            location: location.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Warehouse {
            url,
            root,
            local_root,
            store: Arc::new(LocalFileSystem::new()),
        })
    }

    /// The object store holding the warehouse.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Root URL, with a trailing slash.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Store path of a folder under the root.
    pub fn path(&self, folder: &str) -> Path {
        self.root.clone().join(folder)
    }

    /// URL of table `name`, as a folder (trailing slash).
    pub fn table_url(&self, name: &str) -> String {
        format!("{}{}/", self.url, name)
    }

    /// Local folder of the warehouse root.
    pub fn local_root(&self) -> &std::path::Path {
        &self.local_root
    }

    /// True when the warehouse root exists.
    pub fn exists(&self) -> bool {
        self.local_root.is_dir()
    }

    /// Names of the tables under the root: every folder except hidden and staging ones.
    /// `_bad_records` is a table; `_temporary`-style folders are not.
    pub fn tables(&self) -> Result<Vec<String>, SinkError> {
        let entries = std::fs::read_dir(&self.local_root).map_err(|source| SinkError::Io {
            action: format!("list tables in {}", self.local_root.display()),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hidden = name.starts_with('.')
                || (name.starts_with('_') && name != crate::decode::BAD_RECORDS_TABLE);
            if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Partition columns of table `name`, read from its first `key=value` folders.
    pub fn partition_columns(&self, name: &str) -> Vec<String> {
        let mut columns = Vec::new();
        let mut dir = self.local_root.join(name);
        loop {
            let next = std::fs::read_dir(&dir).ok().and_then(|entries| {
                entries.flatten().find_map(|e| {
                    let file_name = e.file_name().to_string_lossy().into_owned();
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    let (key, _) = file_name.split_once('=')?;
                    (is_dir && !key.is_empty()).then(|| (key.to_owned(), e.path()))
                })
            });
            match next {
                Some((key, path)) => {
                    columns.push(key);
                    dir = path;
                }
                None => return columns,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_file_urls_name_the_same_folder() {
        let a = Warehouse::parse("/tmp/wh").unwrap();
        let b = Warehouse::parse("file:///tmp/wh").unwrap();
        assert_eq!(a.url(), b.url());
        assert_eq!(a.table_url("purchases"), "file:///tmp/wh/purchases/");
        assert_eq!(a.path("purchases").as_ref(), "tmp/wh/purchases");
    }

    #[test]
    fn relative_paths_become_absolute() {
        let w = Warehouse::parse("bnetl-data/warehouse").unwrap();
        assert!(w.local_root().is_absolute());
        assert!(w.url().as_str().ends_with("/bnetl-data/warehouse/"));
    }

    #[test]
    fn unsupported_schemes_are_refused_by_name() {
        let err = Warehouse::parse("s3://bucket/prefix")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s3://bucket/prefix") && err.contains("not supported"),
            "{err}"
        );
    }
}
