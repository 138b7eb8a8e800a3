//! Azure Blob Storage through object_store's own Azure backend; Azurite speaks the same Blob
//! REST API, so the emulator exercises the production write path.

mod connection_string;

use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};

use super::StoreError;

/// The account Azurite serves. Its key is public (Microsoft documents it for Azurite), so a
/// store pointed at an emulator needs no configured secret.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
pub const EMULATOR_ACCESS_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureOptions {
    pub account: String,
    pub container: String,
    /// `None` is `https://{account}.blob.core.windows.net`. Otherwise the account's blob URL,
    /// e.g. `http://127.0.0.1:10000/devstoreaccount1` for Azurite (path-style: the account is
    /// the first path segment); a bare `host:port/...` is taken as http.
    pub endpoint: Option<String>,
    /// Shared key. `None` against the emulator account uses Azurite's well-known key.
    pub access_key: Option<String>,
}

/// Builds a store from `options` alone; no environment variable is read.
pub fn build(options: &AzureOptions) -> Result<MicrosoftAzure, StoreError> {
    configure(MicrosoftAzureBuilder::new(), options)
}

/// Builds a store for `container` from the `AZURE_*` environment (account name, key, SAS,
/// bearer token, service principal, workload identity, Azure CLI, else managed identity),
/// with `AZURE_STORAGE_CONNECTION_STRING`'s parts over them when it is set, and with `endpoint`
/// replacing the account's blob host when given.
pub fn from_env(container: &str, endpoint: Option<&str>) -> Result<MicrosoftAzure, StoreError> {
    let builder = MicrosoftAzureBuilder::from_env();
    let builder = match std::env::var(connection_string::VARIABLE) {
        Ok(text) => connection_string::apply(builder, &text)?,
        Err(_) => builder,
    };
    finish(builder, container, endpoint)
}

/// [`from_env`] with a connection string given rather than read, and no other variable read.
pub fn from_connection_string(
    container: &str,
    endpoint: Option<&str>,
    text: &str,
) -> Result<MicrosoftAzure, StoreError> {
    let builder = connection_string::apply(MicrosoftAzureBuilder::new(), text)?;
    finish(builder, container, endpoint)
}

fn finish(
    builder: MicrosoftAzureBuilder,
    container: &str,
    endpoint: Option<&str>,
) -> Result<MicrosoftAzure, StoreError> {
    let Some(endpoint) = endpoint else {
        // The crate's own defaults, including AZURE_STORAGE_USE_EMULATOR's fixed Azurite URL.
        return Ok(builder.with_container_name(container).build()?);
    };
    let endpoint = super::http_url(endpoint);
    // A path-style endpoint names the account it serves, which is what requests are signed for.
    let account = account_in_path(&endpoint)
        .or_else(|| builder.get_config_value(&AzureConfigKey::AccountName))
        .ok_or_else(|| {
            StoreError::Option(format!(
                "no Azure account: set AZURE_STORAGE_ACCOUNT_NAME or end the endpoint {endpoint:?} \
                 with /{{account}} (Azurite: /{EMULATOR_ACCOUNT})"
            ))
        })?;
    let options = AzureOptions {
        account,
        container: container.to_owned(),
        endpoint: Some(endpoint),
        access_key: None,
    };
    configure(builder, &options)
}

fn configure(
    mut builder: MicrosoftAzureBuilder,
    options: &AzureOptions,
) -> Result<MicrosoftAzure, StoreError> {
    if options.container.is_empty() {
        return Err(StoreError::Option("Azure container name is empty".into()));
    }
    builder = builder
        .with_account(&options.account)
        .with_container_name(&options.container);
    if let Some(key) = &options.access_key {
        builder = builder.with_access_key(key);
    } else if options.account == EMULATOR_ACCOUNT && !has_credentials(&builder) {
        builder = builder.with_access_key(EMULATOR_ACCESS_KEY);
    }
    if let Some(endpoint) = &options.endpoint {
        let endpoint = super::http_url(endpoint);
        // The crate's emulator mode (AZURE_STORAGE_USE_EMULATOR) would ignore this endpoint.
        builder = builder
            .with_use_emulator(false)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    Ok(builder.build()?)
}

/// Azurite and other path-style hosts put the account after the host: `http://h:p/account`.
fn account_in_path(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let first = url.path_segments()?.find(|s| !s.is_empty())?;
    Some(first.to_owned())
}

fn has_credentials(builder: &MicrosoftAzureBuilder) -> bool {
    let set = |key| builder.get_config_value(&key).is_some();
    set(AzureConfigKey::AccessKey)
        || set(AzureConfigKey::SasKey)
        || set(AzureConfigKey::Token)
        || set(AzureConfigKey::ClientSecret)
        || set(AzureConfigKey::FederatedTokenFile)
        || builder.get_config_value(&AzureConfigKey::UseAzureCli) == Some("true".into())
}
