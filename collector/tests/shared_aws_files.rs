//! An `s3://` sink reads the shared AWS files as the AWS CLI does; a profile whose keys come
//! from a role stops start-up by name rather than writing as whatever identity comes next.

use std::process::Command;
use std::time::{Duration, Instant};

/// Start-up gives up long before this; it only bounds a hung child.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_role_profile_stops_start_up_naming_the_profile() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = default\n",
    )
    .unwrap();
    let wal = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_eventkit"));
    command
        .arg("serve")
        .env("HOME", home.path())
        .env("AWS_PROFILE", "admin")
        .env("EVENTKIT_SINK__URL", "s3://eventkit-dev/events")
        .env("EVENTKIT_SERVER__LISTEN", "127.0.0.1:0")
        .env("EVENTKIT_QUEUE__WAL_DIR", wal.path())
        .env("NO_COLOR", "1");
    for variable in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    ] {
        command.env_remove(variable);
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < EXIT_WITHIN, "still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("AWS profile \"admin\" uses role_arn"),
        "{stderr}"
    );
}
