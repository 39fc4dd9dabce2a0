//! What the binary's black-box tests share: the binary, the repository's files, and starting
//! a server and reading its banner.

// Each test binary includes this module and uses part of it.
#![allow(
    dead_code,
    reason = "each test file uses its own part of these helpers; `expect` would be unfulfilled in the files that use them all"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The binary, without the CLI's variables from the environment that runs the tests.
pub fn switchyard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    for var in [
        "SWITCHYARD_URL",
        "SWITCHYARD_ADMIN_KEY",
        "SWITCHYARD_ACTOR",
        "SWITCHYARD_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Spawns a server and reads the first `lines` lines it prints (its banner, printed once it
/// listens). The rest of its stdout is drained on a thread, so the server never writes to a
/// closed pipe (which would make its `println!` panic); its stderr is discarded.
pub fn spawn_with_banner(cmd: &mut Command, lines: usize) -> (Child, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = (0..lines).map(|_| out.next().unwrap().unwrap()).collect();
    std::thread::spawn(move || out.for_each(drop));
    (child, banner)
}

/// A server process, killed when it is dropped unstopped (a failing test leaks no process).
pub struct Server(Option<Child>);

impl Server {
    /// Takes charge of a server process started by the test itself.
    pub fn adopt(child: Child) -> Server {
        Server(Some(child))
    }

    /// Stops it as an operator would: see [`stop`].
    pub fn stop(mut self) {
        if let Some(child) = self.0.take() {
            stop(child);
        }
    }

    /// Its exit status, once it has exited (without waiting).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut()?.try_wait().unwrap()
    }

    /// What it wrote to its stderr (piped), read to the end: call it once it has exited.
    pub fn stderr_text(&mut self) -> String {
        let mut text = String::new();
        if let Some(stderr) = self.0.as_mut().and_then(|c| c.stderr.as_mut()) {
            std::io::Read::read_to_string(stderr, &mut text).unwrap();
        }
        text
    }

    /// Kills it as a crash would (SIGKILL: nothing flushed), and waits until it is gone.
    pub fn kill(mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the embedded demo on a free loopback port in `cwd` (its data goes there); returns
/// the process and the gateway's base URL.
pub fn spawn_demo(cwd: &Path) -> (Server, String) {
    let (child, banner) = spawn_with_banner(
        switchyard()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(cwd),
        4,
    );
    let base = banner[0]
        .strip_prefix("Switchyard embedded demo listening on ")
        .unwrap_or_else(|| panic!("{banner:?}"))
        .to_owned();
    assert!(
        banner.iter().any(|l| l.contains("sk-switchyard-demo")),
        "{banner:?}"
    );
    assert!(
        banner.iter().any(|l| l.contains("sk-switchyard-admin")),
        "{banner:?}"
    );
    (Server(Some(child)), base)
}

/// SIGTERM, then the graceful exit it must lead to (every record written).
pub fn stop(mut child: Child) {
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
}

/// Runs `cmd` to the end; its stdout, after checking it succeeded (else its stderr is shown).
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
