//! An Azure Blob emulator per test: Azurite from `emulators/.node`, on a free port, with its
//! own data directory (kept across `restart`).
#![allow(dead_code)]

use std::process::Command;

use eventkit_sinks::store::azure::{AzureOptions, EMULATOR_ACCOUNT};

use crate::emulator_support::{Emulator, emulators_dir, ensure_installed, http, unique_name};

pub struct Azurite {
    emulator: Emulator,
}

impl Azurite {
    pub fn start() -> Self {
        let binary = ensure_installed("azure", ".node/node_modules/.bin/azurite-blob");
        let command = move |port: u16, root: &std::path::Path| {
            let mut command = Command::new(&binary);
            command
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(root)
                .args(["--loose", "--skipApiVersionCheck", "--silent"]);
            command
        };
        // Azurite refuses anonymous requests; any answer means it is up.
        let ready = |port| http(port, "GET", "/", None).is_some();
        Azurite {
            emulator: Emulator::start("azurite", Box::new(command), ready),
        }
    }

    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }

    /// The account's blob URL, path-style as Azurite serves it.
    pub fn account_url(&self) -> String {
        format!("{}/{EMULATOR_ACCOUNT}", self.emulator.endpoint())
    }

    pub fn fresh_container(&self) -> String {
        let name = unique_name();
        let status = Command::new(emulators_dir().join("azurite-container"))
            .arg(self.account_url())
            .arg(&name)
            .status()
            .expect("run emulators/azurite-container");
        assert!(status.success(), "create container {name}");
        name
    }

    pub fn options(&self, container: &str) -> AzureOptions {
        AzureOptions {
            account: EMULATOR_ACCOUNT.into(),
            container: container.into(),
            endpoint: Some(self.account_url()),
            access_key: None,
        }
    }
}
