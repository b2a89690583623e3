//! Temporary Arrow IPC stream files in the system temp folder (`TMPDIR`), deleted when the last
//! handle is dropped: a job's spill, its quarantined bad records, and `run`'s decoded events.

use std::fs::File;
use std::io::{BufReader, BufWriter};

use arrow::datatypes::Schema;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use tempfile::NamedTempFile;

/// Buffer of the writer and of each reader.
const BUFFER: usize = 1 << 20;

/// What failed, for the caller's own error: `cannot {action} {what}`.
#[derive(Debug)]
pub struct TempIpcError {
    /// What was being done, naming the file's role (`create the spill file in the temp folder`).
    pub action: String,
    /// Why.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn failed(
    action: &str,
    what: &str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> TempIpcError {
    let action = format!("{action} {what}");
    move |source| TempIpcError { action, source }
}

/// A new, empty file (`{prefix}…arrows`, holding `what`, e.g. "the spill file") and a writer of
/// `schema` batches into it.
pub fn create(
    prefix: &str,
    what: &str,
    schema: &Schema,
) -> Result<(NamedTempFile, StreamWriter<BufWriter<File>>), TempIpcError> {
    let file = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".arrows")
        .tempfile()
        .map_err(|e| failed("create", &format!("{what} in the temp folder"))(e.into()))?;
    let handle = file.reopen().map_err(|e| failed("open", what)(e.into()))?;
    let writer = StreamWriter::try_new(BufWriter::with_capacity(BUFFER, handle), schema)
        .map_err(|e| failed("start", what)(e.into()))?;
    Ok((file, writer))
}

/// A reader of the batches written to `file`, from the first.
pub fn read(
    file: &NamedTempFile,
    what: &str,
) -> Result<StreamReader<BufReader<File>>, TempIpcError> {
    let handle = file
        .reopen()
        .map_err(|e| failed("reopen", what)(e.into()))?;
    StreamReader::try_new(BufReader::with_capacity(BUFFER, handle), None)
        .map_err(|e| failed("read", what)(e.into()))
}
