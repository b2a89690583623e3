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
    /// Starts `moto_server` and creates `bucket`.
    pub fn start(bucket: &str) -> Self {
        let port = super::infra::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (pip install 'moto[server]'; .ci/run installs it)");
        let server = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // CreateBucket: PUT /bucket (moto accepts it unsigned).
        let created = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{}/{bucket}", server.endpoint)])
            .stdout(Stdio::null())
            .status()
            .expect("run curl");
        assert!(created.success(), "cannot create bucket {bucket}");
        server
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
