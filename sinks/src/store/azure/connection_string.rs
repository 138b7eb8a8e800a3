//! `AZURE_STORAGE_CONNECTION_STRING`, the form the Azure portal and CLI hand out
//! (`AccountName=…;AccountKey=…;EndpointSuffix=…`), applied to object_store's builder, which
//! has no parser of its own. Keys are case-insensitive; values may hold `=` (keys, SAS tokens).

use std::collections::HashMap;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};

use crate::store::StoreError;

pub const VARIABLE: &str = "AZURE_STORAGE_CONNECTION_STRING";
const DEFAULT_SUFFIX: &str = "core.windows.net";

/// Sets what `text` names on `builder`: account, shared key or SAS, and the blob endpoint.
/// Error messages name the part, never its value, which is a secret.
pub fn apply(
    mut builder: MicrosoftAzureBuilder,
    text: &str,
) -> Result<MicrosoftAzureBuilder, StoreError> {
    let mut fields = HashMap::new();
    let parts = text.split(';').map(str::trim).filter(|p| !p.is_empty());
    for (index, part) in parts.enumerate() {
        let (key, value) = part.split_once('=').ok_or_else(|| {
            StoreError::Option(format!("{VARIABLE}: part {} has no '='", index + 1))
        })?;
        fields.insert(key.trim().to_ascii_lowercase(), value.trim());
    }
    let field = |key: &str| fields.get(key).copied().filter(|v| !v.is_empty());
    if field("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        // The crate's emulator mode: Azurite's account, key and URL.
        return Ok(builder.with_use_emulator(true));
    }
    let endpoint = match (field("blobendpoint"), field("accountname")) {
        (Some(blob), _) => Some(blob.trim_end_matches('/').to_owned()),
        (None, Some(account)) => {
            let protocol = field("defaultendpointsprotocol").unwrap_or("https");
            let suffix = field("endpointsuffix").unwrap_or(DEFAULT_SUFFIX);
            (protocol != "https" || suffix != DEFAULT_SUFFIX)
                .then(|| format!("{protocol}://{account}.blob.{suffix}"))
        }
        (None, None) => {
            return Err(StoreError::Option(format!(
                "{VARIABLE} names neither AccountName nor BlobEndpoint"
            )));
        }
    };
    let account = field("accountname")
        .map(str::to_owned)
        .or_else(|| endpoint.as_deref().and_then(account_of));
    let Some(account) = account else {
        return Err(StoreError::Option(format!(
            "{VARIABLE}: no AccountName, and none can be read from its BlobEndpoint"
        )));
    };
    builder = builder.with_account(account);
    if let Some(key) = field("accountkey") {
        builder = builder.with_access_key(key);
    }
    if let Some(sas) = field("sharedaccesssignature") {
        builder = builder.with_config(AzureConfigKey::SasKey, sas);
    }
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    Ok(builder)
}

/// The account a blob endpoint serves: `https://{account}.blob.…`, or path-style
/// `http://host:port/{account}` as Azurite serves it.
fn account_of(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    match host.split_once(".blob.") {
        Some((account, _)) => Some(account.to_owned()),
        None => super::account_in_path(endpoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(text: &str) -> Result<MicrosoftAzureBuilder, StoreError> {
        apply(MicrosoftAzureBuilder::new(), text)
    }

    fn value(builder: &MicrosoftAzureBuilder, key: AzureConfigKey) -> Option<String> {
        builder.get_config_value(&key)
    }

    #[test]
    fn the_portal_form_sets_account_and_key_and_keeps_the_public_endpoint() {
        let builder = applied(
            "DefaultEndpointsProtocol=https;AccountName=lake;AccountKey=a2V5PQ==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(
            value(&builder, AzureConfigKey::AccountName).as_deref(),
            Some("lake")
        );
        assert_eq!(
            value(&builder, AzureConfigKey::AccessKey).as_deref(),
            Some("a2V5PQ==")
        );
        assert_eq!(value(&builder, AzureConfigKey::Endpoint), None);
    }

    #[test]
    fn a_sas_form_takes_its_account_from_the_blob_endpoint() {
        let builder = applied(
            "BlobEndpoint=https://lake.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=x%3D",
        )
        .unwrap();
        assert_eq!(
            value(&builder, AzureConfigKey::AccountName).as_deref(),
            Some("lake")
        );
        assert_eq!(
            value(&builder, AzureConfigKey::SasKey).as_deref(),
            Some("sv=2024&sig=x%3D")
        );
        assert_eq!(
            value(&builder, AzureConfigKey::Endpoint).as_deref(),
            Some("https://lake.blob.core.windows.net")
        );
    }

    #[test]
    fn other_clouds_and_plain_http_get_an_endpoint() {
        let builder = applied(
            "accountname=lake;defaultendpointsprotocol=http;endpointsuffix=core.chinacloudapi.cn",
        )
        .unwrap();
        assert_eq!(
            value(&builder, AzureConfigKey::Endpoint).as_deref(),
            Some("http://lake.blob.core.chinacloudapi.cn")
        );
    }

    #[test]
    fn development_storage_is_the_emulator() {
        let builder = applied("UseDevelopmentStorage=true").unwrap();
        assert_eq!(
            value(&builder, AzureConfigKey::UseEmulator).as_deref(),
            Some("true")
        );
    }

    #[test]
    fn errors_name_the_part_but_not_the_secret() {
        let error = applied("AccountName=lake;AccountKeysecretvalue")
            .err()
            .unwrap();
        let text = error.to_string();
        assert!(text.contains("part 2 has no '='"), "{text}");
        assert!(!text.contains("secretvalue"), "{text}");
        assert!(applied("AccountKey=abc").is_err(), "no account anywhere");
    }
}
