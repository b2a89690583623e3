//! A real S3-compatible server for the tests: moto's standalone server (`pip install
//! 'moto[server]'`, installed by `.ci/run`), started on a free loopback port for as long as the
//! test holds it, with one bucket created through the S3 API.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3 {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3 {
    /// Starts `moto_server` and creates `bucket`. A server that exits before it answers (its
    /// port taken meanwhile: a free port is only free when it is looked up) is started again
    /// on another port, up to three times; each waits up to 60 s to answer and make the bucket.
    pub fn start(bucket: &str) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(bucket) {
                Ok(server) => return server,
                Err(reason) => failures.push(reason),
            }
        }
        panic!("cannot start moto_server with bucket {bucket}: {failures:?}");
    }

    fn try_start(bucket: &str) -> Result<Self, String> {
        let port = super::infra::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (pip install 'moto[server]'; .ci/run installs it)");
        // Dropped (and killed) on any failure below.
        let mut server = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("moto_server on port {port} exited ({status})"));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // CreateBucket: PUT /bucket (moto accepts it unsigned).
                let created = Command::new("curl")
                    .args([
                        "-sS",
                        "-f",
                        "-X",
                        "PUT",
                        &format!("{}/{bucket}", server.endpoint),
                    ])
                    .stdout(Stdio::null())
                    .output()
                    .expect("run curl");
                if created.status.success() {
                    return Ok(server);
                }
                last = String::from_utf8_lossy(&created.stderr).trim().to_owned();
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "moto_server on port {port}: no bucket {bucket} within 60 s ({last})"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The environment object_store reads its S3 settings from.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "bnetl-test"),
            ("AWS_SECRET_ACCESS_KEY", "bnetl-test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Keys of the objects under `prefix` (ListObjectsV2).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let output = Command::new("curl")
            .args([
                "-sf",
                &format!(
                    "{}/{}?list-type=2&prefix={prefix}&max-keys=1000",
                    self.endpoint, self.bucket
                ),
            ])
            .output()
            .expect("run curl");
        assert!(output.status.success(), "cannot list {prefix}");
        let body = String::from_utf8_lossy(&output.stdout);
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
