//! A Python virtualenv with independent Parquet readers and the real Segment SDK, created on
//! first use under the target directory and shared by every test process.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The venv's python, creating the venv (under a file lock, as tests run in parallel) if needed.
pub fn python() -> PathBuf {
    let root = workspace_root();
    let venv = root.join("target/test-venv");
    let python = venv.join("bin/python");
    let requirements = root.join("collector/tests/support/requirements.txt");
    let stamp = venv.join(".installed");
    std::fs::create_dir_all(root.join("target")).expect("target dir");
    let lock = std::fs::File::create(root.join("target/test-venv.lock")).expect("lock file");
    lock.lock().expect("lock");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements));
        std::fs::write(&stamp, wanted).expect("stamp");
    }
    lock.unlock().expect("unlock");
    python
}

fn run(command: &mut Command) {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a Python snippet in the venv and parses its stdout as JSON.
pub fn run_json(script: &str, args: &[&str]) -> serde_json::Value {
    run_json_in(Path::new("."), script, args)
}

/// [`run_json`] from `dir`, for snippets that name paths relative to it.
pub fn run_json_in(dir: &Path, script: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(python())
        .current_dir(dir)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}
