//! The warehouse: a URL mapped to an object store. The only code that maps schemes to stores.
//!
//! - a local path or `file://` → the local file system;
//! - `s3://bucket/prefix` (or `s3a://`) → object_store's S3 client, configured from the
//!   environment as object_store reads it (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...);
//! - `hdfs://namenode:port/path` or `hdfs://nameservice/path` → hdfs-native, which reads
//!   `core-site.xml`/`hdfs-site.xml` from `HADOOP_CONF_DIR` (or `HADOOP_HOME/etc/hadoop`) as
//!   Hadoop clients do, HA name services and Kerberos included.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use super::SinkError;
use super::durable::{Fsync, Synced, Syncer};

/// Folder under the warehouse root where runs stage their output; readers never list it.
pub const STAGING_DIR: &str = ".bnetl-staging";

/// Files whose data a local warehouse syncs at once (a thread each).
const SYNCS_AT_ONCE: usize = 8;

/// Which kind of store a warehouse URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A local folder.
    Local,
    /// An S3 bucket (or an S3-compatible server).
    S3,
    /// An HDFS cluster.
    Hdfs,
}

/// Where tables are written and read: a root URL and the object store behind it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    url: Url,
    root: Path,
    kind: StoreKind,
    store: Arc<dyn ObjectStore>,
    /// How a local warehouse makes commits durable; `None` on S3 and HDFS.
    syncer: Option<Arc<dyn Syncer>>,
}

impl Warehouse {
    /// Parses a local path, `file://`, `s3://bucket/prefix` or `hdfs://host:port/path`.
    pub fn parse(location: &str) -> Result<Self, SinkError> {
        let invalid = |reason: String| SinkError::Location {
            location: location.to_owned(),
            reason,
        };
        match Url::parse(location) {
            Ok(url) if url.scheme() == "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| invalid("not a valid file:// URL".into()))?;
                Self::local(location, &path)
            }
            Ok(url) if matches!(url.scheme(), "s3" | "s3a") => {
                let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
                    invalid("an s3:// URL needs a bucket: s3://bucket/prefix".into())
                })?;
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| invalid(format!("cannot configure S3: {e}")))?;
                Self::remote(
                    &url,
                    &format!("s3://{bucket}/"),
                    StoreKind::S3,
                    Arc::new(store),
                )
            }
            Ok(url) if matches!(url.scheme(), "hdfs" | "viewfs") => {
                let authority = match url.port() {
                    Some(port) => format!(
                        "{}://{}:{port}",
                        url.scheme(),
                        url.host_str().unwrap_or_default()
                    ),
                    None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
                };
                let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
                    .with_url(authority.as_str())
                    .build()
                    .map_err(|e| invalid(format!("cannot configure HDFS: {e}")))?;
                Self::remote(
                    &url,
                    &format!("{authority}/"),
                    StoreKind::Hdfs,
                    Arc::new(store),
                )
            }
            // One-letter "schemes" are Windows drive letters, not URLs.
            Ok(url) if url.scheme().len() > 1 => Err(invalid(format!(
                "the {}:// scheme is not supported (use a local path, file://, s3:// or hdfs://)",
                url.scheme()
            ))),
            _ => Self::local(location, std::path::Path::new(location)),
        }
    }

    fn local(location: &str, path: &std::path::Path) -> Result<Self, SinkError> {
        let invalid = |reason: String| SinkError::Location {
            location: location.to_owned(),
            reason,
        };
        let path = std::path::absolute(path).map_err(|e| invalid(e.to_string()))?;
        let url =
            Url::from_directory_path(&path).map_err(|()| invalid("not an absolute path".into()))?;
        let root = Path::from_absolute_path(&path).map_err(|e| invalid(e.to_string()))?;
        Ok(Warehouse {
            url,
            root,
            kind: StoreKind::Local,
            store: Arc::new(LocalFileSystem::new()),
            syncer: Some(Arc::new(Fsync)),
        })
    }

    fn remote(
        url: &Url,
        base: &str,
        kind: StoreKind,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self, SinkError> {
        // Decoded as DataFusion's table URLs are, so both name the same keys.
        let root = Path::from_url_path(url.path()).map_err(|e| SinkError::Location {
            location: url.to_string(),
            reason: e.to_string(),
        })?;
        let text = if root.as_ref().is_empty() {
            base.to_owned()
        } else {
            format!("{base}{root}/")
        };
        let url = Url::parse(&text).map_err(|e| SinkError::Location {
            location: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Warehouse {
            url,
            root,
            kind,
            store,
            syncer: None,
        })
    }

    /// The object store holding the warehouse.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// What kind of store this is.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Root URL, with a trailing slash.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL a query engine registers the store under: scheme and authority.
    pub fn store_url(&self) -> Url {
        let mut url = self.url.clone();
        url.set_path("/");
        url
    }

    /// Store path of a folder (one or more `/`-separated segments) under the root.
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|s| !s.is_empty())
            .fold(self.root.clone(), |path, segment| path.join(segment))
    }

    /// Store path of an object named by its warehouse-relative path as the store spells it
    /// (already escaped, as a commit records it).
    pub fn object(&self, relative: &str) -> Path {
        let full = if self.root.as_ref().is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.root)
        };
        Path::parse(full).unwrap_or_else(|_| self.path(relative))
    }

    /// The warehouse-relative name of `path` (as [`Warehouse::object`] takes it), or `None`
    /// when `path` is not under `folder`.
    pub fn relative_to(path: &Path, folder: &Path) -> Option<String> {
        let parts: Vec<String> = path
            .prefix_match(folder)?
            .map(|part| part.as_ref().to_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// URL of a folder under the root, with a trailing slash.
    pub fn table_url(&self, relative: &str) -> String {
        format!("{}{}/", self.url, relative.trim_matches('/'))
    }

    /// True when the warehouse holds anything at all.
    pub async fn exists(&self) -> Result<bool, SinkError> {
        self.holds_files(&self.root).await
    }

    /// True when `folder` holds a file, at any depth, whose name does not start with `.`
    /// (Hadoop's hidden files: HDFS's client leaves `.<name>.tmp.<n>` behind when a create
    /// fails half-way). Looks one level at a time, depth first, `_`-folders (a commit log, bad
    /// records) last: a table with data answers from its own level. A recursive listing would
    /// list, and on a local disk `statx`, up to a thousand entries before it yields the first.
    pub async fn holds_files(&self, folder: &Path) -> Result<bool, SinkError> {
        let visible = |o: &object_store::ObjectMeta| {
            !o.location.filename().is_some_and(|f| f.starts_with('.'))
        };
        let mut pending = vec![folder.clone()];
        while let Some(folder) = pending.pop() {
            let level = self
                .store
                .list_with_delimiter(Some(&folder))
                .await
                .map_err(|source| self.store_error(&folder, source))?;
            if level.objects.iter().any(visible) {
                return Ok(true);
            }
            // Popped from the end: `_`-folders go in first, so they are looked at last.
            let mut subfolders = level.common_prefixes;
            subfolders.sort_by_key(|p| !p.filename().is_some_and(|f| f.starts_with('_')));
            pending.extend(subfolders);
        }
        Ok(false)
    }

    /// Names of the tables under the root: every folder except hidden and staging ones.
    /// `_bad_records` is a table; `_temporary`-style folders are not.
    pub async fn tables(&self) -> Result<Vec<String>, SinkError> {
        let mut names: Vec<String> = self
            .folders(&self.root)
            .await?
            .into_iter()
            .filter(|name| {
                !(name.starts_with('.')
                    || (name.starts_with('_') && name != crate::decode::BAD_RECORDS_TABLE))
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Names of the folders right under `folder`.
    pub async fn folders(&self, folder: &Path) -> Result<Vec<String>, SinkError> {
        let listing = self
            .store
            .list_with_delimiter(Some(folder))
            .await
            .map_err(|source| self.store_error(folder, source))?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// Partition columns of table `name`, read from its first `key=value` folders.
    pub async fn partition_columns(&self, name: &str) -> Result<Vec<String>, SinkError> {
        let mut columns = Vec::new();
        let mut folder = self.path(name);
        loop {
            let mut found = None;
            for child in self.folders(&folder).await? {
                if let Some((key, _)) = child.split_once('=')
                    && !key.is_empty()
                {
                    found = Some((key.to_owned(), child.clone()));
                    break;
                }
            }
            match found {
                Some((key, child)) => {
                    columns.push(key);
                    folder = folder.join(child.as_str());
                }
                None => return Ok(columns),
            }
        }
    }

    /// The same warehouse syncing through `syncer` (tests record or fail syncs with it).
    #[cfg(test)]
    pub fn with_syncer(mut self, syncer: Arc<dyn Syncer>) -> Self {
        if self.kind == StoreKind::Local {
            self.syncer = Some(syncer);
        }
        self
    }

    /// The syncer of a local warehouse.
    pub fn syncer(&self) -> Option<Arc<dyn Syncer>> {
        self.syncer.clone()
    }

    /// The local file of a store path (meaningful on a local warehouse only).
    pub fn local_file(&self, path: &Path) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/{path}"))
    }

    /// On a local warehouse: syncs the data of `files` ([`Synced::Data`]), or the folders that
    /// name them, up to the warehouse root ([`Synced::Names`]). Does nothing on S3 and HDFS.
    pub async fn sync(&self, files: &[Path], what: Synced) -> Result<(), SinkError> {
        let Some(syncer) = self.syncer() else {
            return Ok(());
        };
        let root = self.local_file(&self.root);
        let files: Vec<std::path::PathBuf> = files.iter().map(|f| self.local_file(f)).collect();
        tokio::task::spawn_blocking(move || {
            let failed = |path: &std::path::Path| {
                let path = path.display().to_string();
                move |source| SinkError::Sync { path, source }
            };
            match what {
                // Side by side, a few at a time: the disk writes the files' data together.
                Synced::Data => {
                    for group in files.chunks(SYNCS_AT_ONCE) {
                        std::thread::scope(|scope| {
                            let syncs: Vec<_> = group
                                .iter()
                                .map(|file| (file, scope.spawn(|| syncer.sync_file(file))))
                                .collect();
                            syncs.into_iter().try_for_each(|(file, sync)| {
                                sync.join()
                                    .unwrap_or_else(|_| {
                                        Err(std::io::Error::other("its sync thread panicked"))
                                    })
                                    .map_err(failed(file))
                            })
                        })?;
                    }
                }
                Synced::Names => {
                    for folder in super::durable::folders_up_to(&root, &files) {
                        syncer.sync_folder(&folder).map_err(failed(&folder))?;
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| SinkError::Sync {
            path: self.url.to_string(),
            source: std::io::Error::other(e),
        })?
    }

    /// A store error that names the full URL of `path`; a Kerberos refusal by HDFS becomes
    /// [`SinkError::Kerberos`], which names the cluster and the remedy.
    pub fn store_error(&self, path: &Path, source: object_store::Error) -> SinkError {
        if let Some(reason) = kerberos_refusal(&source) {
            return SinkError::Kerberos {
                cluster: self.store_url().to_string(),
                reason,
            };
        }
        SinkError::Store {
            path: self.display(path),
            source,
        }
    }

    /// The URL of a store path, for messages.
    pub fn display(&self, path: &Path) -> String {
        let mut shown = self.display_root();
        shown.push_str(path.as_ref());
        shown
    }

    /// What the store's paths are shown relative to: `/` on a local disk, the store's URL
    /// (`s3://bucket/`, `hdfs://namenode:port/`) elsewhere.
    pub fn display_root(&self) -> String {
        match self.kind {
            StoreKind::Local => "/".to_owned(),
            StoreKind::S3 | StoreKind::Hdfs => self.store_url().to_string(),
        }
    }
}

/// GSSAPI's reason when `error` is HDFS refusing this client's Kerberos authentication
/// (hdfs-native reports it as `GSSAPI error: <major> <minor> <message>`, wrapped by its
/// object store as a generic error).
fn kerberos_refusal(error: &object_store::Error) -> Option<String> {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if let Some(at) = text.find("GSSAPI error: ") {
            let detail = text[at + "GSSAPI error: ".len()..].trim();
            // `GssMajorCodes(<names>) <minor> <message>`: keep the message.
            let message = detail
                .split_once(") ")
                .and_then(|(_, rest)| rest.split_once(' '))
                .map(|(_, message)| message.trim())
                .filter(|message| !message.is_empty())
                .unwrap_or(detail);
            return Some(message.to_owned());
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gssapi_refusal_is_told_apart_from_other_store_errors() {
        let refused = object_store::Error::Generic {
            store: "HdfsObjectStore",
            source: "GSSAPI error: GssMajorCodes(GSS_S_NO_CRED | GSS_S_FAILURE) 2529639053 No Kerberos credentials available (default cache: FILE:/tmp/cc)".into(),
        };
        assert_eq!(
            kerberos_refusal(&refused).as_deref(),
            Some("No Kerberos credentials available (default cache: FILE:/tmp/cc)")
        );
        let other = object_store::Error::Generic {
            store: "HdfsObjectStore",
            source: "connection refused".into(),
        };
        assert_eq!(kerberos_refusal(&other), None);
    }

    #[test]
    fn local_paths_and_file_urls_name_the_same_folder() {
        let a = Warehouse::parse("/tmp/wh").unwrap();
        let b = Warehouse::parse("file:///tmp/wh").unwrap();
        assert_eq!(a.url(), b.url());
        assert_eq!(a.table_url("purchases"), "file:///tmp/wh/purchases/");
        assert_eq!(a.path("purchases").as_ref(), "tmp/wh/purchases");
        assert_eq!(a.kind(), StoreKind::Local);
        assert_eq!(a.display(&a.path("x/y")), "/tmp/wh/x/y");
    }

    #[test]
    fn relative_paths_become_absolute() {
        let w = Warehouse::parse("bnetl-data/warehouse").unwrap();
        assert!(w.url().as_str().ends_with("/bnetl-data/warehouse/"));
        assert!(w.url().as_str().starts_with("file:///"));
    }

    #[test]
    fn s3_urls_map_bucket_and_prefix() {
        let w = Warehouse::parse("s3://games/warehouse/prod/").unwrap();
        assert_eq!(w.kind(), StoreKind::S3);
        assert_eq!(w.url().as_str(), "s3://games/warehouse/prod/");
        assert_eq!(w.store_url().as_str(), "s3://games/");
        assert_eq!(w.path("purchases").as_ref(), "warehouse/prod/purchases");
        assert_eq!(
            w.table_url("purchases"),
            "s3://games/warehouse/prod/purchases/"
        );
        let spaced = Warehouse::parse("s3://games/my%20wh").unwrap();
        assert_eq!(spaced.url().as_str(), "s3://games/my%20wh/");
        assert_eq!(spaced.path("t").as_ref(), "my wh/t");
        let bare = Warehouse::parse("s3://games").unwrap();
        assert_eq!(bare.url().as_str(), "s3://games/");
        assert_eq!(bare.path("t").as_ref(), "t");
        assert!(Warehouse::parse("s3:///nobucket").is_err());
    }

    #[test]
    fn hdfs_urls_keep_the_name_node_and_path() {
        let w = Warehouse::parse("hdfs://namenode:8020/user/bnetl/warehouse").unwrap();
        assert_eq!(w.kind(), StoreKind::Hdfs);
        assert_eq!(w.store_url().as_str(), "hdfs://namenode:8020/");
        assert_eq!(
            w.table_url("purchases"),
            "hdfs://namenode:8020/user/bnetl/warehouse/purchases/"
        );
    }

    #[test]
    fn unsupported_schemes_are_refused_by_name() {
        let err = Warehouse::parse("gs://bucket/prefix")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gs://bucket/prefix") && err.contains("not supported"),
            "{err}"
        );
    }
}
