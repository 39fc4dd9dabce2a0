//! Throwaway PostgreSQL and Redis servers for the tests that need real ones: each started from
//! the distribution's binaries in a temporary folder, on a free loopback port, and stopped when
//! dropped. A test owns its servers, so it can stop one mid-run and start it again on the same
//! port (the failure tests do) without disturbing any other test.
//!
//! Where the binaries are missing, [`PostgresServer::start`] and [`RedisServer::start`] return
//! [`Unavailable`], and a test skips with [`Unavailable::skip`], which says so on stderr. With
//! `SWITCHYARD_REQUIRE_SERVERS=1` (set by `.ci/run`, which installs both) a missing server
//! fails the test instead: CI never skips them silently.
//!
//! PostgreSQL refuses to run as root; when the tests run as root, its commands run as the
//! `postgres` user the distribution's package creates.

use std::fmt;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that turns a missing server into a failure.
pub const REQUIRE_ENV: &str = "SWITCHYARD_REQUIRE_SERVERS";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server the tests could not start, and why.
#[derive(Debug)]
pub struct Unavailable {
    pub server: &'static str,
    pub reason: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is unavailable: {}", self.server, self.reason)
    }
}

impl Unavailable {
    /// Says on stderr that `test` is skipped, or panics when `SWITCHYARD_REQUIRE_SERVERS` is
    /// set (CI).
    pub fn skip(self, test: &str) {
        let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(!required, "{test}: {self} (and {REQUIRE_ENV} is set)");
        eprintln!(
            "SKIPPED {test}: {self}; install the distribution's postgresql and redis-server \
             packages to run it"
        );
    }
}

/// A free port on 127.0.0.1 (the listener is closed before the server binds it).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn wait_for_port(port: u16, what: &str) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "test set-up outside any runtime, polling a server process starting"
        )]
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} did not accept connections on port {port}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL server of its own: `initdb` into a temporary folder, trust authentication on
/// 127.0.0.1 only, durability off (fsync, synchronous commit) because a test's data is
/// thrown away.
pub struct PostgresServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Starts a new server with an empty database `switchyard`.
    pub fn start() -> Result<PostgresServer, Unavailable> {
        let unavailable = |reason: String| Unavailable {
            server: "PostgreSQL",
            reason,
        };
        let bin = postgres_bin().ok_or_else(|| {
            unavailable("no initdb in /usr/lib/postgresql/*/bin or on PATH".into())
        })?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("switchyard-pg-")
            .tempdir()
            .map_err(|e| unavailable(format!("no temporary folder: {e}")))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| unavailable(e.to_string()))?;
        if as_postgres {
            // The distribution's `postgres` user must own the folder it runs in.
            for path in [dir.path(), data.as_path()] {
                let ok = Command::new("chown")
                    .arg("postgres")
                    .arg(path)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    return Err(unavailable(
                        "running as root and cannot hand the folder to the postgres user".into(),
                    ));
                }
            }
        }
        let server = PostgresServer {
            bin,
            data,
            port: free_port().map_err(unavailable)?,
            as_postgres,
            _dir: dir,
        };
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&server.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]);
        run(initdb).map_err(unavailable)?;
        server.start_again().map_err(unavailable)?;
        let mut create = server.command("createdb");
        create.args(["-h", "127.0.0.1", "-U", "postgres", "-p"]);
        create.arg(server.port.to_string()).arg("switchyard");
        run(create).map_err(unavailable)?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/switchyard`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/switchyard", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: what a crash looks like to its
    /// clients).
    pub fn stop(&self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = run(stop);
    }

    /// Starts the stopped server again on the same port with the same data.
    pub fn start_again(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.data.join("server.log"))
            .args(["-w", "start"]);
        run(start)?;
        wait_for_port(self.port, "PostgreSQL")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.stdin(Stdio::null());
        command
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The folder with `initdb`, `pg_ctl` and `createdb`: the newest of the distribution's
/// `/usr/lib/postgresql/*/bin`, else the one on `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|dir| dir.join("initdb").exists())
    })
}

fn run(mut command: Command) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A Redis server of its own: no persistence, on 127.0.0.1; with a password
/// ([`RedisServer::start_with_password`]) it refuses clients that do not give it.
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a new, empty server.
    pub fn start() -> Result<RedisServer, Unavailable> {
        RedisServer::start_inner(None)
    }

    /// Starts a new, empty server that requires `password` (`requirepass`): a client that
    /// sends a password to a server without one is refused, so a URL with a password needs
    /// this server.
    pub fn start_with_password(password: &str) -> Result<RedisServer, Unavailable> {
        RedisServer::start_inner(Some(password.to_owned()))
    }

    fn start_inner(password: Option<String>) -> Result<RedisServer, Unavailable> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-redis-")
            .tempdir()
            .map_err(|e| Unavailable {
                server: "Redis",
                reason: format!("no temporary folder: {e}"),
            })?;
        let unavailable = |reason: String| Unavailable {
            server: "Redis",
            reason,
        };
        let mut server = RedisServer {
            port: free_port().map_err(unavailable)?,
            password,
            dir,
            child: None,
        };
        // A port free when picked can be taken by another test's server before this one
        // binds it; then the port answers, but not from this server. Ask which folder the
        // answering server uses, and pick another port if it is not ours.
        for _ in 0..5 {
            server.start_again().map_err(unavailable)?;
            if server.answers_from_its_folder() {
                return Ok(server);
            }
            server.stop();
            server.port = free_port().map_err(unavailable)?;
        }
        Err(unavailable(
            "every port tried was taken by another server".to_owned(),
        ))
    }

    /// Whether the server answering on the port is this one (`CONFIG GET dir` names its
    /// temporary folder).
    fn answers_from_its_folder(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut commands = String::new();
        if let Some(p) = &self.password {
            commands.push_str(&format!("AUTH {p}\r\n"));
        }
        commands.push_str("CONFIG GET dir\r\n");
        let mut reply = String::new();
        let asked = s.write_all(commands.as_bytes()).is_ok()
            && s.shutdown(std::net::Shutdown::Write).is_ok()
            && s.read_to_string(&mut reply).is_ok();
        let name = self
            .dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        asked && !name.is_empty() && reply.contains(&name)
    }

    /// `redis://127.0.0.1:PORT`, or `redis://:PASSWORD@127.0.0.1:PORT` with a password.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL): its data is gone, as after a crash without persistence.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same port, empty.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop();
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path());
        if let Some(p) = &self.password {
            command.arg("--requirepass").arg(p);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        wait_for_port(self.port, "Redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_redis_server_answers_ping_and_comes_back_after_a_stop() {
        let mut redis = match RedisServer::start() {
            Ok(r) => r,
            Err(e) => return e.skip("a_redis_server_answers_ping_and_comes_back_after_a_stop"),
        };
        let ping = |port: u16| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"PING\r\n").unwrap();
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf).unwrap();
            buf
        };
        assert_eq!(&ping(redis.port()), b"+PONG\r\n");
        redis.stop();
        assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_err());
        redis.start_again().unwrap();
        assert_eq!(&ping(redis.port()), b"+PONG\r\n");
    }

    #[test]
    fn a_redis_server_with_a_password_answers_only_who_gives_it() {
        let mut redis = match RedisServer::start_with_password("hunter2") {
            Ok(r) => r,
            Err(e) => return e.skip("a_redis_server_with_a_password_answers_only_who_gives_it"),
        };
        assert_eq!(
            redis.url(),
            format!("redis://:hunter2@127.0.0.1:{}", redis.port())
        );
        let ask = |port: u16, commands: &[u8]| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(commands).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        assert!(ask(redis.port(), b"PING\r\n").starts_with("-NOAUTH"));
        assert_eq!(
            ask(redis.port(), b"AUTH hunter2\r\nPING\r\n"),
            "+OK\r\n+PONG\r\n"
        );
        // Started again, it asks for the same password.
        redis.start_again().unwrap();
        assert!(ask(redis.port(), b"PING\r\n").starts_with("-NOAUTH"));
    }

    #[test]
    fn a_postgres_server_accepts_connections_and_comes_back_after_a_stop() {
        let pg = match PostgresServer::start() {
            Ok(p) => p,
            Err(e) => {
                return e.skip("a_postgres_server_accepts_connections_and_comes_back_after_a_stop")
            }
        };
        assert!(pg.url().ends_with("/switchyard"));
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
        pg.stop();
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_err());
        pg.start_again().unwrap();
        assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
    }
}
