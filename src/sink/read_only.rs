//! The warehouse as its readers (`bnetl sql`, `bnetl status`) see it: every write is refused,
//! and under each table folder a listing shows only the Parquet files of the table's last
//! complete version, as its commit log says (see [`super::TableLog::snapshot`]). So a query
//! never sees half of a commit that is being published, nor a file that no commit wrote, and
//! it never finishes an interrupted commit itself: that is the next writing run's job.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// A store that only reads, and lists only the files each table's snapshot holds.
#[derive(Debug)]
pub struct ReadOnlyStore {
    inner: Arc<dyn ObjectStore>,
    /// Folder → the data files visible under it. Folders not listed show everything.
    visible: Arc<BTreeMap<Path, BTreeSet<Path>>>,
}

impl ReadOnlyStore {
    /// Wraps `inner`; under each folder of `visible`, only its files are listed.
    pub fn new(inner: Arc<dyn ObjectStore>, visible: BTreeMap<Path, BTreeSet<Path>>) -> Self {
        ReadOnlyStore {
            inner,
            visible: Arc::new(visible),
        }
    }

    fn refuse(location: &Path) -> object_store::Error {
        object_store::Error::PermissionDenied {
            path: location.to_string(),
            source: "bnetl reads this warehouse here and never writes to it".into(),
        }
    }
}

/// False for a data file under a folder whose snapshot does not hold it.
fn shown(visible: &BTreeMap<Path, BTreeSet<Path>>, location: &Path) -> bool {
    if location.extension() != Some("parquet") {
        return true;
    }
    // The deepest folder with a snapshot that holds `location` decides.
    let folder = visible
        .iter()
        .filter(|(folder, _)| location.prefix_matches(folder))
        .max_by_key(|(folder, _)| folder.as_ref().len());
    folder.is_none_or(|(_, files)| files.contains(location))
}

impl fmt::Display for ReadOnlyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadOnly({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for ReadOnlyStore {
    async fn put_opts(
        &self,
        location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(Self::refuse(location))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(Self::refuse(location))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations
            .and_then(|location| async move { Err(Self::refuse(&location)) })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let visible = Arc::clone(&self.visible);
        self.inner
            .list(prefix)
            .try_filter(move |meta| std::future::ready(shown(&visible, &meta.location)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result
            .objects
            .retain(|meta| shown(&self.visible, &meta.location));
        Ok(result)
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(Self::refuse(to))
    }

    async fn rename_opts(
        &self,
        _from: &Path,
        to: &Path,
        _options: RenameOptions,
    ) -> object_store::Result<()> {
        Err(Self::refuse(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn lists_only_the_snapshot_under_its_folder_and_refuses_writes() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for path in [
            "t/part-1.parquet",
            "t/part-2.parquet",
            "t/_SUCCESS",
            "t/x=1/part-3.parquet",
            "other/part-9.parquet",
        ] {
            inner
                .put(&Path::from(path), b"x".to_vec().into())
                .await
                .unwrap();
        }
        let visible = BTreeMap::from([(
            Path::from("t"),
            BTreeSet::from([
                Path::from("t/part-1.parquet"),
                Path::from("t/x=1/part-3.parquet"),
            ]),
        )]);
        let store = ReadOnlyStore::new(inner, visible);
        let mut listed: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        listed.sort();
        assert_eq!(
            listed,
            [
                "other/part-9.parquet",
                "t/_SUCCESS",
                "t/part-1.parquet",
                "t/x=1/part-3.parquet"
            ]
        );
        let top = store
            .list_with_delimiter(Some(&Path::from("t")))
            .await
            .unwrap();
        let objects: Vec<String> = top.objects.iter().map(|m| m.location.to_string()).collect();
        assert_eq!(objects, ["t/_SUCCESS", "t/part-1.parquet"]);
        assert_eq!(top.common_prefixes, [Path::from("t/x=1")]);

        let refused = store
            .put(&Path::from("t/new.parquet"), b"y".to_vec().into())
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            object_store::Error::PermissionDenied { .. }
        ));
        assert!(store.delete(&Path::from("t/part-2.parquet")).await.is_err());
        assert!(
            store
                .copy(&Path::from("t/part-1.parquet"), &Path::from("t/c.parquet"))
                .await
                .is_err()
        );
        assert!(store.get(&Path::from("t/part-2.parquet")).await.is_ok());
    }
}
