//! No file of the project names a folder of one particular machine: data, scratch files and
//! models are found through `switchyard_testkit::data` or relative to the repository.

use std::process::Command;

use switchyard_testkit::data::repo_root;

/// Absolute folders that exist on one machine and not another (written in two parts, so that
/// this file does not name them itself).
const MACHINE_FOLDERS: [[&str; 2]; 6] = [
    ["/wo", "rk/"],
    ["/ho", "me/"],
    ["/ro", "ot/"],
    ["/Us", "ers/"],
    ["/tm", "p/"],
    ["/mn", "t/"],
];

#[test]
fn no_tracked_file_names_a_machine_folder() {
    let root = repo_root();
    let listed = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z"])
        .output()
        .expect("git lists the repository's files");
    assert!(listed.status.success(), "git ls-files failed");
    let files: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(files.len() > 100, "{} files", files.len());
    let folders: Vec<String> = MACHINE_FOLDERS.iter().map(|p| p.concat()).collect();
    let mut found = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue; // binary, or removed from the work tree
        };
        for (n, line) in text.lines().enumerate() {
            for folder in &folders {
                // `target/tmp/...` is inside the repository; a folder starts a path.
                let starts_path = line.match_indices(folder.as_str()).any(|(at, _)| {
                    line[..at].chars().next_back().is_none_or(|c| {
                        !c.is_alphanumeric() && c != '.' && c != '/' && c != '_' && c != '-'
                    })
                });
                if starts_path {
                    found.push(format!("{file}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "files name a folder of one machine (use switchyard_testkit::data or a path relative \
         to the repository):\n{}",
        found.join("\n")
    );
}
