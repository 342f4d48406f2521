//! A `nats-server -js` of a test and a bare client to it: for the
//! JetStream tests of the cogs (in process) and of the binary. Included by
//! path, with `#[macro_use]` for `server_or_skip!`.
#![allow(dead_code)] // each test file uses its own share

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;

/// Where `nats-server` is, or why the test is skipped.
pub fn nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join("nats-server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

macro_rules! server_or_skip {
    ($name:expr) => {
        server_or_skip!($name, None)
    };
    ($name:expr, $config:expr) => {
        match Server::start_with($config) {
            Some(s) => s,
            None => {
                eprintln!(
                    "{}: skipped: no nats-server on this machine (apt-get install nats-server)",
                    $name
                );
                return;
            }
        }
    };
}

/// A `nats-server -js` of this test, killed when dropped.
pub struct Server {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Lines of a configuration file given with `-c` (`max_payload: 4MB`).
    config: Option<String>,
}

impl Server {
    pub fn start() -> Option<Server> {
        Server::start_with(None)
    }

    /// A server with these configuration file lines too.
    pub fn start_with(config: Option<&str>) -> Option<Server> {
        let bin = nats_server()?;
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Server {
            bin,
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            config: config.map(str::to_owned),
        };
        s.run();
        Some(s)
    }

    pub fn run(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let mut command = Command::new(&self.bin);
        if let Some(lines) = &self.config {
            let path = self.dir.path().join("server.conf");
            fs::write(&path, lines).unwrap();
            command.arg("-c").arg(path);
        }
        let child = command
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_until("nats-server listens", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// Stops it gracefully (SIGTERM), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            c.wait().unwrap();
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(c: &Child, sig: i32) {
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(c.id() as i32, sig) };
}

/// Polls `cond` until it holds; a minute without it fails the test.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "waited a minute for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub async fn js(server: &Server) -> jetstream::Context {
    jetstream::new(async_nats::connect(server.url()).await.unwrap())
}

pub fn create_stream(server: &Server, name: &str, subject: &str) {
    block(async {
        js(server)
            .await
            .create_stream(jetstream::stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                ..Default::default()
            })
            .await
            .unwrap();
    })
}

/// Publishes with a bare client, every ack awaited.
pub fn publish(server: &Server, subject: &str, payloads: impl IntoIterator<Item = String>) {
    block(async {
        let js = js(server).await;
        let mut acks = Vec::new();
        for p in payloads {
            acks.push(js.publish(subject.to_owned(), p.into()).await.unwrap());
            if acks.len() == 512 {
                for a in acks.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in acks {
            a.await.unwrap();
        }
    })
}

pub fn stream_messages(server: &Server, name: &str) -> u64 {
    block(async {
        js(server)
            .await
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages
    })
}

/// (delivered and not acked, not yet delivered) of a consumer.
pub fn consumer_backlog(server: &Server, stream: &str, consumer: &str) -> (usize, u64) {
    block(async {
        let mut c: jetstream::consumer::PullConsumer = js(server)
            .await
            .get_stream(stream)
            .await
            .unwrap()
            .get_consumer(consumer)
            .await
            .unwrap();
        let i = c.info().await.unwrap();
        (i.num_ack_pending, i.num_pending)
    })
}

pub fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn line(i: usize) -> String {
    format!("{i:06} the quick brown fox")
}
