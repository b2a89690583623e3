//! Shared helpers for the integration tests: run the built `bnetl` binary in a fresh data dir,
//! start `bnetl serve` on a free port, and drive it with real clients (`ab`, `curl`).
#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

pub mod hdfs;
pub mod infra;
pub mod kafka;
pub mod s3;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The seed's traffic: `ab -n N -H "Host: HOST" http://localhost:5000PATH`.
pub const SEED_TRAFFIC: [(u32, &str, &str); 11] = [
    (10, "user1.comcast.com", "/"),
    (10, "user1.comcast.com", "/purchase_a_sword"),
    (7, "user2.att.com", "/"),
    (15, "user2.att.com", "/purchase_a_shield"),
    (15, "user3.verizon.com", "/purchase_a_sword"),
    (5, "user3.verizon.com", "/upgrade_a_sword"),
    (5, "user1.comcast.com", "/upgrade_a_sword"),
    (7, "user2.att.com", "/upgrade_a_shield"),
    (20, "user4.spectrum.com", "/purchase_a_knife"),
    (20, "user4.spectrum.com", "/"),
    (14, "user5.fios.com", "/purchase_a_shield"),
];

/// The seed's result tables as CSV (`bnetl sql --format csv`).
pub const SEED_EVENT_TYPES: &str = "event_type,event_count\ndefault,37\npurchase_shield,29\npurchase_sword,25\npurchase_knife,20\nupgrade_sword,10\nupgrade_shield,7\n";
pub const SEED_HOSTS: &str = "Host,number_of_player\nuser4.spectrum.com,40\nuser2.att.com,29\nuser1.comcast.com,25\nuser3.verizon.com,20\nuser5.fios.com,14\n";
pub const SEED_EVENT_TYPES_SQL: &str = "SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC";
pub const SEED_HOSTS_SQL: &str = "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC";

/// Path of a file under the repository's `fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// A fresh data dir and a way to run `bnetl` in it.
pub struct Bnetl {
    pub dir: tempfile::TempDir,
    /// `--brokers` for every command, when the test runs against Kafka.
    pub brokers: Option<String>,
    /// Environment variables set for every command (e.g. the S3 endpoint and credentials).
    pub env: Vec<(String, String)>,
}

impl Bnetl {
    pub fn new() -> Self {
        Bnetl {
            dir: tempfile::tempdir().expect("temp dir"),
            brokers: None,
            env: Vec::new(),
        }
    }

    /// A `bnetl` whose commands use the Kafka cluster at `brokers`.
    pub fn on_kafka(brokers: &str) -> Self {
        Bnetl {
            brokers: Some(brokers.to_owned()),
            ..Bnetl::new()
        }
    }

    /// A `bnetl` whose commands read and write `topic` on the Kafka cluster at `brokers`.
    pub fn on_topic(brokers: &str, topic: &str) -> Self {
        let mut bnetl = Bnetl::on_kafka(brokers);
        bnetl.env.push(("BNETL_TOPIC".into(), topic.to_owned()));
        bnetl
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    /// A `bnetl` command with `--data-dir` set and no inherited bnetl settings.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bnetl"));
        for (key, _) in std::env::vars() {
            if key.starts_with("BNETL_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("--data-dir").arg(self.dir.path());
        if let Some(brokers) = &self.brokers {
            cmd.arg("--brokers").arg(brokers);
        }
        cmd.args(args);
        cmd
    }

    /// Runs `bnetl ARGS` and asserts it succeeded; returns its output.
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self
            .cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run bnetl");
        assert!(
            output.status.success(),
            "bnetl {args:?} failed: {}",
            describe(&output)
        );
        output
    }

    /// Runs `bnetl ARGS`, asserts it failed with `code`, and returns its stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self
            .cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run bnetl");
        assert_eq!(
            output.status.code(),
            Some(code),
            "bnetl {args:?}: {}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Pipes `input` into `bnetl produce -`.
    pub fn produce(&self, input: &[u8]) {
        self.produce_with(&[], input);
    }

    /// Pipes `input` into `bnetl produce OPTIONS -`.
    pub fn produce_with(&self, options: &[&str], input: &[u8]) {
        let mut args = vec!["produce"];
        args.extend_from_slice(options);
        args.push("-");
        let mut child = self
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bnetl produce");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write input");
        let output = child.wait_with_output().expect("wait for produce");
        assert!(
            output.status.success(),
            "produce failed: {}",
            describe(&output)
        );
    }

    /// `bnetl sql --format csv QUERY`'s stdout.
    pub fn sql_csv(&self, query: &str) -> String {
        let output = self.ok(&["sql", "--format", "csv", query]);
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs whose staging folders are left under the warehouse (a failed or interrupted run
    /// must leave none).
    pub fn staged_runs(&self) -> usize {
        std::fs::read_dir(self.warehouse().join(".bnetl-staging"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Starts `bnetl ARGS` twice at once and returns both outputs.
    pub fn race(&self, args: &[&str]) -> [Output; 2] {
        let spawn = || {
            self.cmd(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn bnetl")
        };
        let (a, b) = (spawn(), spawn());
        [
            a.wait_with_output().expect("wait for bnetl"),
            b.wait_with_output().expect("wait for bnetl"),
        ]
    }

    /// Races `extract --mode append` against itself (up to 5 attempts) until one run loses:
    /// never both fail, and a loser fails with the conflict error. `after_each` checks what
    /// an attempt left behind.
    pub fn race_until_conflict(&self, after_each: impl Fn()) {
        for _ in 0..5 {
            let outputs = self.race(&["extract", "--mode", "append"]);
            let failed: Vec<String> = outputs
                .iter()
                .filter(|o| !o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .collect();
            assert!(failed.len() < 2, "both runs failed: {failed:?}");
            for err in &failed {
                assert!(
                    err.contains("table extracted_events changed while this run was writing")
                        && err.contains("output was discarded"),
                    "{err}"
                );
            }
            after_each();
            if !failed.is_empty() {
                return;
            }
        }
        panic!("no attempt raced");
    }

    /// `bnetl status --format csv [TABLE]` as rows of column name → value.
    pub fn status(&self, table: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let output = self.ok(&["status", "--format", "csv", table]);
        let text = String::from_utf8(output.stdout).expect("utf-8 output");
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .expect("a header row")
            .split(',')
            .map(str::to_owned)
            .collect();
        lines
            .map(|line| {
                header
                    .iter()
                    .cloned()
                    .zip(line.split(',').map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// Total lag of `table` over its partitions, from `bnetl status`.
    pub fn lag(&self, table: &str) -> i64 {
        self.status(table)
            .iter()
            .map(|row| row["lag"].parse::<i64>().expect("a lag"))
            .sum()
    }

    /// The one data row of `query`'s CSV result, as integers.
    pub fn sql_numbers(&self, query: &str) -> Vec<i64> {
        let csv = self.sql_csv(query);
        let row = csv
            .lines()
            .nth(1)
            .unwrap_or_else(|| panic!("no row in {csv}"));
        row.split(',')
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("not a number: {v:?} in {csv}"))
            })
            .collect()
    }

    /// The seed walkthrough through `bnetl serve` and the seed's real `ab` commands, then
    /// extract and filtered-writes: asserts the seed's tables and the 74 purchases.
    pub fn replay_seed(&self) {
        let server = self.serve();
        for (requests, host, path) in SEED_TRAFFIC {
            ab(&server, requests, host, path);
        }
        server.stop();
        self.ok(&["extract"]);
        self.ok(&["filtered-writes"]);
        assert_eq!(
            self.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
            [128]
        );
        assert_eq!(self.sql_csv(SEED_EVENT_TYPES_SQL), SEED_EVENT_TYPES);
        assert_eq!(self.sql_csv(SEED_HOSTS_SQL), SEED_HOSTS);
        assert_eq!(
            self.sql_csv("SELECT event_type, COUNT(*) AS n FROM purchases GROUP BY event_type ORDER BY event_type"),
            "event_type,n\npurchase_knife,20\npurchase_shield,29\npurchase_sword,25\n"
        );
    }

    /// Starts `bnetl ARGS` with `BNETL_LOG=bnetl=info`, waits for a log line containing
    /// `marker` (asserting the run is still going), calls `fault`, and returns whether the run
    /// succeeded, with its stderr.
    pub fn during_run(&self, args: &[&str], marker: &str, fault: impl FnOnce()) -> (bool, String) {
        let mut run = self
            .cmd(args)
            .env("BNETL_LOG", "bnetl=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bnetl");
        let mut stderr = BufReader::new(run.stderr.take().expect("stderr"));
        let mut seen = String::new();
        while !seen.contains(marker) {
            let mut line = String::new();
            let read = stderr.read_line(&mut line).expect("read stderr");
            assert!(read > 0, "no {marker:?} in {seen}");
            seen.push_str(&line);
        }
        assert!(
            run.try_wait().expect("poll bnetl").is_none(),
            "the run ended before the fault"
        );
        fault();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).expect("read stderr");
        (run.wait().expect("wait for bnetl").success(), seen + &rest)
    }

    /// Starts `bnetl serve` on a free loopback port and waits until it listens.
    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// `serve` with extra options.
    pub fn serve_with(&self, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = self
            .cmd(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bnetl serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            let mut sent = false;
            let mut rest = String::new();
            while let Some(Ok(line)) = lines.next() {
                if !sent && let Some(url) = line.split("http://").nth(1) {
                    let addr = url.split('/').next().unwrap_or_default().to_owned();
                    tx.send(addr).ok();
                    sent = true;
                } else {
                    rest.push_str(&line);
                    rest.push('\n');
                }
            }
            if !rest.is_empty() {
                eprintln!("bnetl serve stderr:\n{rest}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("bnetl serve printed its address");
        Server { child, addr }
    }
}

/// A running `bnetl serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM and waits (with a deadline) for a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for serve") {
                assert!(status.success(), "bnetl serve exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bnetl serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the seed's `ab` command line against `server` and returns ab's report.
pub fn ab(server: &Server, requests: u32, host: &str, path: &str) -> String {
    let output = Command::new("ab")
        .args([
            "-n",
            &requests.to_string(),
            "-H",
            &format!("Host: {host}"),
            &server.url(path),
        ])
        .output()
        .expect("ab (apache2-utils) must be installed: .ci/run installs it");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "ab failed: {}", describe(&output));
    assert!(
        report.contains(&format!("Complete requests:      {requests}")),
        "{report}"
    );
    assert!(report.contains("Failed requests:        0"), "{report}");
    assert!(!report.contains("Non-2xx responses"), "{report}");
    report
}

/// `curl` a URL; returns (status, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed: .ci/run installs it");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status code"), body.to_owned())
}

/// Runs a Python snippet (DuckDB or PySpark interop checks); returns stdout.
pub fn python(code: &str) -> String {
    let output = Command::new("python3")
        .args(["-c", code])
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "python failed: {}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A small deterministic generator (xorshift64*) for the randomized tests: seeded from the
/// environment variable `var` or the clock, and printed, so a failing sequence can be replayed.
pub struct Rng {
    /// The seed, for assertion messages.
    pub seed: u64,
    state: u64,
}

impl Rng {
    /// A generator seeded from `var` (a number) or else the clock; says how to replay it.
    pub fn seeded(var: &str) -> Self {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("random choices seeded with {var}={seed}");
        Rng { seed, state: seed }
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}
