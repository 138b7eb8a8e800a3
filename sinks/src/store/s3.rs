//! Amazon S3 and S3-compatible services through object_store's own S3 backend, which speaks
//! the same REST API to AWS, MinIO and moto, so production and the emulator share one path.

mod profile;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};

use super::StoreError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    pub bucket: String,
    /// `None` is AWS. Otherwise an S3-compatible service, addressed path-style
    /// (`{endpoint}/{bucket}/{key}`); a bare `host:port` is taken as http.
    pub endpoint: Option<String>,
    /// `None` leaves the crate's default, us-east-1.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl S3Options {
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }
}

/// Builds a store from `options` alone; no environment variable is read.
pub fn build(options: &S3Options) -> Result<AmazonS3, StoreError> {
    configure(AmazonS3Builder::new(), options)
}

/// Builds a store for `bucket` from the `AWS_*` environment (keys, session token, region),
/// then the shared AWS files' profile, then web identity, ECS/EKS container credentials, else
/// the instance metadata service: the AWS CLI's order. `endpoint` replaces AWS's host.
pub fn from_env(bucket: &str, endpoint: Option<&str>) -> Result<AmazonS3, StoreError> {
    let options = S3Options {
        endpoint: endpoint.map(str::to_owned),
        ..S3Options::new(bucket)
    };
    let builder = profile::SharedFiles::from_env()?.apply(AmazonS3Builder::from_env())?;
    configure(builder, &options)
}

fn configure(mut builder: AmazonS3Builder, options: &S3Options) -> Result<AmazonS3, StoreError> {
    if options.bucket.is_empty() {
        return Err(StoreError::Option("S3 bucket name is empty".into()));
    }
    builder = builder.with_bucket_name(&options.bucket);
    if let Some(region) = &options.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &options.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &options.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(endpoint) = &options.endpoint {
        let endpoint = super::http_url(endpoint);
        let plain_http = endpoint.starts_with("http://");
        // Emulators and most S3-compatible servers have no per-bucket DNS names.
        // AWS_ENDPOINT_URL_S3 would otherwise win over the endpoint given here.
        builder = builder
            .with_allow_http(plain_http)
            .with_virtual_hosted_style_request(false)
            .with_config(AmazonS3ConfigKey::S3Endpoint, &endpoint)
            .with_endpoint(endpoint);
        // Without configured credentials the crate would ask EC2's metadata service, which a
        // local emulator's host lacks. Over https it may be a VPC endpoint, so IMDS stays.
        if plain_http && !has_credentials(&builder) {
            builder = builder.with_skip_signature(true);
        }
    }
    Ok(builder.build()?)
}

fn has_credentials(builder: &AmazonS3Builder) -> bool {
    [
        AmazonS3ConfigKey::AccessKeyId,
        AmazonS3ConfigKey::WebIdentityTokenFile,
        AmazonS3ConfigKey::ContainerCredentialsRelativeUri,
        AmazonS3ConfigKey::ContainerCredentialsFullUri,
    ]
    .iter()
    .any(|key| builder.get_config_value(key).is_some())
}
