//! A real nginx (Debian package) in a temp dir, configured like ingress-nginx talks to its
//! upstreams: `upstream` with `keepalive`, `keepalive_timeout`, HTTP/1.1, `Connection ""`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub conf: PathBuf,
    keepalive_timeout: String,
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("WAGATE_TEST_NGINX") {
        return p.into();
    }
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "nginx not found: run scripts/test (it installs the Debian package) or set WAGATE_TEST_NGINX"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Starts nginx proxying to `upstreams` with upstream `keepalive_timeout`.
    pub fn start(dir: &Path, upstreams: &[SocketAddr], keepalive_timeout: &str) -> Nginx {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let conf = dir.join("nginx.conf");
        let mut n = Nginx {
            child: Command::new("true").spawn().unwrap(),
            addr,
            dir: dir.to_owned(),
            conf,
            keepalive_timeout: keepalive_timeout.into(),
        };
        n.write_conf(upstreams);
        let out = Command::new(binary())
            .arg("-t")
            .arg("-q")
            .arg("-c")
            .arg(&n.conf)
            .arg("-p")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        n.child = Command::new(binary())
            .arg("-c")
            .arg(&n.conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < end, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    fn write_conf(&self, upstreams: &[SocketAddr]) {
        let servers: String = upstreams
            .iter()
            .map(|u| format!("    server {u};\n"))
            .collect();
        let d = self.dir.display();
        let user = if unsafe_is_root() { "user root;" } else { "" };
        let conf = format!(
            r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 4096; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 4m;
  upstream wagate {{
{servers}    keepalive 320;
    keepalive_timeout {ka};
  }}
  server {{
    listen {addr};
    location / {{
      proxy_pass http://wagate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"#,
            ka = self.keepalive_timeout,
            addr = self.addr
        );
        std::fs::write(&self.conf, conf).unwrap();
    }

    /// Rewrites the upstream list and reloads (like an endpoint removal).
    pub fn reload(&self, upstreams: &[SocketAddr]) {
        self.write_conf(upstreams);
        let out = Command::new(binary())
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.dir)
            .arg("-s")
            .arg("reload")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(binary())
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.dir)
            .arg("-s")
            .arg("stop")
            .output();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
