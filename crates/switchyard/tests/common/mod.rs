//! What the binary's black-box tests share: the binary, the repository's files, and starting
//! a server and reading its banner.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The binary, without the admin CLI's variables from the environment that runs the tests.
pub fn switchyard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    for var in ["SWITCHYARD_URL", "SWITCHYARD_ADMIN_KEY", "SWITCHYARD_ACTOR"] {
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
