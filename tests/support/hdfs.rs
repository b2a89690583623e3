//! A real HDFS for the tests: Hadoop's MiniDFSCluster (a NameNode, or two behind a name
//! service, and DataNodes in one JVM) started by `testinfra/bin/minidfs` with the jars Maven
//! fetched from `testinfra/pom.xml`. It prints `READY <url>` when it serves, takes commands on
//! its stdin (`ls`, `kill-datanode`, `failover`) through Hadoop's own client, and shuts down
//! when its stdin closes, so it never outlives the test binary.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::infra::{ensure_jars, testinfra};

/// A running MiniDFSCluster.
pub struct Hdfs {
    child: Child,
    /// The command channel; taken (closing stdin) when the cluster is dropped.
    io: Mutex<Option<(ChildStdin, BufReader<ChildStdout>)>>,
    /// `hdfs://127.0.0.1:PORT` or, with HA, `hdfs://bnetl-ns`.
    pub url: String,
    /// The folder holding the `core-site.xml` and `hdfs-site.xml` a client needs.
    pub conf_dir: PathBuf,
    dir: tempfile::TempDir,
}

impl Hdfs {
    /// The plain cluster (one NameNode, three DataNodes) shared by this binary's tests.
    pub fn shared() -> &'static Hdfs {
        static SHARED: OnceLock<Hdfs> = OnceLock::new();
        SHARED.get_or_init(|| Hdfs::start(&[]))
    }

    /// Starts a cluster with `testinfra/bin/minidfs` options (e.g. `--ha`).
    pub fn start(options: &[&str]) -> Hdfs {
        ensure_jars();
        let dir = tempfile::tempdir().expect("temp dir");
        let conf_dir = dir.path().join("conf");
        let log = std::fs::File::create(dir.path().join("minidfs.log")).expect("log file");
        let started = Instant::now();
        let mut child = Command::new(testinfra().join("bin/minidfs"))
            .arg("--base-dir")
            .arg(dir.path().join("data"))
            .arg("--conf-dir")
            .arg(&conf_dir)
            .args(options)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start testinfra/bin/minidfs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (url, stdout) = read_ready(stdout, &dir.path().join("minidfs.log"));
        eprintln!(
            "hdfs: MiniDFSCluster {options:?} ready at {url} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Hdfs {
            child,
            io: Mutex::new(Some((stdin, stdout))),
            url,
            conf_dir,
            dir,
        }
    }

    /// A fresh folder URL on this cluster for one test.
    pub fn folder(&self, name: &str) -> String {
        format!("{}/{name}-{}", self.url, uuid::Uuid::now_v7().simple())
    }

    /// The environment a `bnetl` needs to reach this cluster.
    pub fn env(&self, warehouse: &str) -> Vec<(String, String)> {
        vec![
            ("BNETL_WAREHOUSE".into(), warehouse.to_owned()),
            (
                "HADOOP_CONF_DIR".into(),
                self.conf_dir.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// Sends one command; returns the lines it printed before its `OK` line.
    pub fn command(&self, command: &str) -> Vec<String> {
        let mut io = self.io.lock().expect("minidfs io");
        let (stdin, stdout) = io.as_mut().expect("minidfs is running");
        writeln!(stdin, "{command}").expect("send a command to minidfs");
        stdin.flush().expect("flush");
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).expect("read minidfs");
            assert!(
                read > 0,
                "minidfs exited during {command:?}:\n{}",
                self.log()
            );
            let line = line.trim_end().to_owned();
            if line == "OK" || line.starts_with("OK ") {
                return lines;
            }
            assert!(
                !line.starts_with("ERR"),
                "minidfs {command:?}: {line}\n{}",
                self.log()
            );
            lines.push(line);
        }
    }

    /// The recursive listing of `path` through Hadoop's FileSystem API:
    /// `(permission, path relative to `path`)`, sorted.
    pub fn ls(&self, url: &str) -> Vec<(String, String)> {
        let base = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, path)| format!("/{path}"))
            .expect("an hdfs:// URL with a path");
        let mut entries: Vec<(String, String)> = self
            .command(&format!("ls {base}"))
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let path = fields.last().expect("a path");
                let path = path
                    .find(&base)
                    .map(|at| &path[at + base.len()..])
                    .unwrap_or(path);
                (
                    fields[0].to_owned(),
                    path.trim_start_matches('/').to_owned(),
                )
            })
            .collect();
        entries.sort_by(|a, b| a.1.cmp(&b.1));
        entries
    }

    /// The log of the cluster so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("minidfs.log")).unwrap_or_default()
    }
}

impl Drop for Hdfs {
    fn drop(&mut self) {
        // Closing stdin shuts the cluster down.
        drop(self.io.get_mut().map(Option::take));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the `READY <url>` line; returns the URL and the stdout for later commands.
fn read_ready(mut stdout: BufReader<ChildStdout>, log: &Path) -> (String, BufReader<ChildStdout>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(_) => {
                    if let Some(url) = line.trim_end().strip_prefix("READY ") {
                        let _ = tx.send(Some((url.to_owned(), stdout)));
                        return;
                    }
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(Some(ready)) => ready,
        _ => panic!(
            "MiniDFSCluster did not start; its log {}:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    }
}
