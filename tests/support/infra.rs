//! The Java servers the tests start (Apache Kafka, HDFS's MiniDFSCluster): their jars, built
//! once by Maven from `testinfra/pom.xml`, and a guard that stops a server when its test
//! binary ends, however it ends.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `testinfra/` in the repository.
pub fn testinfra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testinfra")
}

/// Makes sure `testinfra/target/{kafka,hdfs}-lib` hold the servers' jars: `mvn package` runs
/// whenever testinfra's poms or Java source changed since it last ran (offline first, so a
/// machine that fetched the jars once needs no network).
pub fn ensure_jars() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let pom = testinfra().join("pom.xml");
        let stamp = testinfra().join("target/inputs.stamp");
        // What the jars are built from: a change to any of these runs Maven again.
        let mut wanted = Vec::new();
        for input in [
            "pom.xml",
            "kafka/pom.xml",
            "hdfs/pom.xml",
            "hdfs/src/main/java/bnetl/testinfra/MiniHdfs.java",
        ] {
            wanted.extend(std::fs::read(testinfra().join(input)).expect("a testinfra input"));
        }
        if std::fs::read(&stamp).ok().as_deref() == Some(wanted.as_slice()) {
            return;
        }
        let mvn = |offline: bool| {
            let mut cmd = Command::new("mvn");
            cmd.args(["-q", "-B", "-f"]).arg(&pom).arg("package");
            if offline {
                cmd.arg("-o");
            }
            cmd.stdin(Stdio::null())
                .output()
                .expect("mvn (Maven 3) must be installed: .ci/run checks it")
        };
        let offline = mvn(true);
        if !offline.status.success() {
            let online = mvn(false);
            assert!(
                online.status.success(),
                "mvn -f testinfra/pom.xml package failed:\n{}{}",
                String::from_utf8_lossy(&online.stdout),
                String::from_utf8_lossy(&online.stderr)
            );
        }
        std::fs::write(&stamp, wanted).expect("write testinfra/target/inputs.stamp");
    });
}

/// A free TCP port on loopback (bound and released; the server binds it right after), never
/// one this test binary was given before: the kernel may hand a released port out again at
/// once, and a Kafka node given the same port for two listeners refuses to start.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A server process that stops when this guard is dropped or when the test binary exits for
/// any reason: `testinfra/bin/guarded` runs it and kills it once its stdin (a pipe held by
/// this guard) closes.
pub struct Guarded {
    guard: Child,
    /// Process id of the server itself (for kill -9 in failover tests).
    pub pid: u32,
    /// Where the server's output goes.
    pub log: PathBuf,
}

impl Guarded {
    /// Starts `program args` under the guard, its output to `log`.
    pub fn spawn(program: &Path, args: &[String], log: &Path) -> Guarded {
        let mut guard = Command::new(testinfra().join("bin/guarded"))
            .arg(log)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let mut stdout = BufReader::new(guard.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("read the server's pid");
        let pid = first
            .trim()
            .strip_prefix("pid ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("testinfra/bin/guarded printed {first:?}"));
        Guarded {
            guard,
            pid,
            log: log.to_owned(),
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Whether the server process is still running.
    pub fn is_running(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .unwrap_or_default()
                .contains(") Z ")
    }

    /// kill -9 of the server process itself.
    pub fn kill9(&self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 {}", self.pid);
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Closing stdin makes the guard kill the server and exit.
        drop(self.guard.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.guard.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}
