//! An S3 emulator per test: moto's server from `emulators/.venv`, on a free port.
#![allow(dead_code)]

use std::process::Command;

use eventkit_sinks::store::s3::S3Options;

use crate::emulator_support::{Emulator, ensure_installed, http, unique_name};

pub struct Moto {
    emulator: Emulator,
}

impl Moto {
    pub fn start() -> Self {
        let binary = ensure_installed("s3", ".venv/bin/moto_server");
        let command = move |port: u16, _: &std::path::Path| {
            let mut command = Command::new(&binary);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        };
        let ready = |port| http(port, "GET", "/", None) == Some(200);
        Moto {
            emulator: Emulator::start("moto", Box::new(command), ready),
        }
    }

    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }

    pub fn fresh_bucket(&self) -> String {
        let name = unique_name();
        self.create_bucket(&name);
        name
    }

    pub fn create_bucket(&self, name: &str) {
        let status = http(self.emulator.port(), "PUT", &format!("/{name}"), None);
        assert_eq!(status, Some(200), "create bucket {name}");
    }

    /// moto accepts any key pair; passing one exercises request signing.
    pub fn options(&self, bucket: &str) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            ..S3Options::new(bucket)
        }
    }
}
