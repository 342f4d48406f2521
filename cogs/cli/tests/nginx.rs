//! A real nginx writes its access log; `parse format = "nginx_combined"`
//! reads every field of every line back. The test starts nginx (as a
//! child, its prefix, config, logs and temp paths in a temporary
//! directory, on a free loopback port, IPv6 too when `::1` works), sends
//! it hand-written HTTP/1.1 requests (a quote and an escaped space in the
//! path, a 404, quotes in the referer and user agent), stops it, then runs
//! the `tourbillon` binary on the log. Without nginx the test says it is
//! skipped.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::{text, tourbillon, wait_for};

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            Command::new("nginx")
                .arg("-v")
                .output()
                .ok()
                .map(|_| PathBuf::from("nginx"))
        })
}

/// A port free on 127.0.0.1 and, if `v6`, on `[::1]` too.
fn free_port(v6: bool) -> u16 {
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if !v6 || TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both loopbacks");
}

/// Sends `request` whole and reads the response to its end (nginx closes
/// after it: `Connection: close`); the status line.
fn request(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    text(&response).lines().next().unwrap_or_default().to_owned()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // Only if the test failed before stopping it.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(bin: &Path, d: &Path, port: u16, v6: bool) -> Nginx {
    let p = d.display();
    let v6_listen = if v6 {
        format!("listen [::1]:{port};")
    } else {
        String::new()
    };
    fs::write(
        d.join("nginx.conf"),
        format!(
            "master_process off;\npid {p}/nginx.pid;\nlock_file {p}/nginx.lock;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {p}/access.log combined;\n  default_type text/plain;\n\
             client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n\
             uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port};\n    {v6_listen}\n\
             location = /missing {{ return 404; }}\n    location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .args([
            "-p",
            &format!("{p}/"),
            "-c",
            &format!("{p}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut nginx = Nginx(child);
    wait_for("nginx to listen", 10, || {
        if let Ok(Some(s)) = nginx.0.try_wait() {
            panic!(
                "nginx exited ({s}): {}",
                fs::read_to_string(d.join("error.log")).unwrap_or_default()
            );
        }
        // Written once the sockets listen; a probing connection would be logged.
        d.join("nginx.pid").exists()
    });
    nginx
}

#[test]
fn a_real_nginx_access_log_parses_field_by_field() {
    let Some(bin) = nginx_binary() else {
        println!("skipped: nginx is not installed (Debian: nginx-light)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
    if !v6 {
        println!("IPv6 loopback unavailable: no request from ::1");
    }
    let port = free_port(v6);
    let mut nginx = start_nginx(&bin, d, port, v6);
    let v4: SocketAddr = ([127, 0, 0, 1], port).into();
    let close = "Host: localhost\r\nConnection: close\r\n\r\n";
    let mut expected = Vec::new();
    assert_eq!(
        request(v4, &format!("GET /say/\"hi\"/a%20b?x=1 HTTP/1.1\r\n{close}")),
        "HTTP/1.1 200 OK"
    );
    expected.push(json!({
        "client": "127.0.0.1", "request": "GET /say/\"hi\"/a%20b?x=1 HTTP/1.1", "method": "GET",
        "path": "/say/\"hi\"/a%20b?x=1", "protocol": "HTTP/1.1", "status": 200, "size": 3,
    }));
    assert_eq!(
        request(v4, &format!("HEAD /missing HTTP/1.1\r\n{close}")),
        "HTTP/1.1 404 Not Found"
    );
    expected.push(json!({
        "client": "127.0.0.1", "request": "HEAD /missing HTTP/1.1", "method": "HEAD", "path": "/missing",
        "protocol": "HTTP/1.1", "status": 404, "size": 0,
    }));
    assert_eq!(
        request(
            v4,
            &format!(
                "GET / HTTP/1.1\r\nReferer: http://example.com/?q=\"x y\"\r\n\
                 User-Agent: test \"quoted\" agent\\1.0\r\n{close}"
            )
        ),
        "HTTP/1.1 200 OK"
    );
    expected.push(json!({
        "client": "127.0.0.1", "request": "GET / HTTP/1.1", "method": "GET", "path": "/", "protocol": "HTTP/1.1",
        "status": 200, "size": 3, "referer": "http://example.com/?q=\"x y\"", "agent": "test \"quoted\" agent\\1.0",
    }));
    if v6 {
        let addr: SocketAddr = (Ipv6Addr::LOCALHOST, port).into();
        assert_eq!(
            request(addr, &format!("GET /v6 HTTP/1.0\r\nUser-Agent: six\r\n{close}")),
            "HTTP/1.1 200 OK"
        );
        expected.push(json!({
            "client": "::1", "request": "GET /v6 HTTP/1.0", "method": "GET", "path": "/v6",
            "protocol": "HTTP/1.0", "status": 200, "size": 3, "agent": "six",
        }));
    }
    unsafe { libc::kill(nginx.0.id() as i32, libc::SIGQUIT) };
    let status = nginx.0.wait().unwrap();
    assert!(status.success(), "nginx: {status:?}");
    let log = fs::read_to_string(d.join("access.log")).unwrap();
    assert_eq!(log.lines().count(), expected.len(), "{log}");

    let out = d.join("access.jsonl");
    fs::write(
        d.join("c.toml"),
        format!(
            "[log]\nlevel = \"warn\"\n[trains.web]\ncogs = [\n  \
             {{ kind = \"tail\", include = [{:?}], batch = true }},\n  \
             {{ kind = \"parse\", format = \"nginx_combined\", error_output = \"bad\" }},\n  \
             {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = {:?} }},\n]\n\
             [trains.bad]\ninputs = [\"web.bad\"]\ncogs = [{{ kind = \"json_encode\" }}, {{ kind = \"file\", path = \"bad.jsonl\" }}]\n",
            d.join("access.log").display().to_string(),
            out.display().to_string()
        ),
    )
    .unwrap();
    let run = tourbillon(d, &["run", "c.toml"]).output().unwrap();
    let err = text(&run.stderr);
    assert!(run.status.success(), "{:?}: {err}", run.status);
    assert!(!err.contains("WARN") && !err.contains("ERROR"), "{err}");
    let bad = fs::read_to_string(d.join("bad.jsonl")).unwrap_or_default();
    assert!(bad.is_empty(), "unparsed lines: {bad}");
    let got: Vec<Value> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((g, mut e), line) in got.into_iter().zip(expected).zip(log.lines()) {
        // The time is nginx's clock: checked for its shape, then compared whole.
        let time = g["time"].as_str().unwrap_or_else(|| panic!("no time in {g}"));
        assert!(
            time.len() == "10/Oct/2000:13:55:36 +0000".len() && time.as_bytes()[2] == b'/' && time.contains(':'),
            "{time}"
        );
        e["time"] = json!(time);
        assert_eq!(g, e, "line: {line}");
    }
}
