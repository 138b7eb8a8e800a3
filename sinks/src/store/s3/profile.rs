//! A profile of the shared AWS files (`~/.aws/credentials` and `~/.aws/config`, as `aws
//! configure` writes them), which object_store does not read. Static keys and the region are
//! taken; a profile that gets its keys from a role, SSO or a process is refused by name, since
//! silently falling through to another credential would write as someone else.

use std::collections::HashMap;
use std::path::PathBuf;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

use crate::store::StoreError;

/// Settings that mean "the keys come from elsewhere", which this reader does not resolve.
const UNSUPPORTED: [&str; 5] = [
    "role_arn",
    "source_profile",
    "credential_process",
    "sso_session",
    "sso_start_url",
];

/// The files' texts and the profile wanted, as the AWS CLI finds them.
pub struct SharedFiles {
    pub profile: String,
    /// Whether the profile was asked for (`AWS_PROFILE`): then it must exist.
    pub named: bool,
    pub credentials: Option<String>,
    pub config: Option<String>,
}

impl SharedFiles {
    /// `AWS_PROFILE` (else `default`), `AWS_SHARED_CREDENTIALS_FILE` (else
    /// `~/.aws/credentials`) and `AWS_CONFIG_FILE` (else `~/.aws/config`). A missing file is
    /// no file; one that cannot be read is an error.
    pub fn from_env() -> Result<Self, StoreError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let path = |variable, default: &str| {
            var(variable)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let read = |path: Option<PathBuf>| match path {
            None => Ok(None),
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::Option(format!("{}: {e}", path.display()))),
            },
        };
        let profile = var("AWS_PROFILE");
        Ok(Self {
            named: profile.is_some(),
            profile: profile.unwrap_or_else(|| "default".to_owned()),
            credentials: read(path("AWS_SHARED_CREDENTIALS_FILE", "credentials"))?,
            config: read(path("AWS_CONFIG_FILE", "config"))?,
        })
    }

    /// Sets the profile's keys on `builder` unless it has credentials of its own (the
    /// environment's win, as in the AWS CLI), and its region unless one is set.
    pub fn apply(&self, mut builder: AmazonS3Builder) -> Result<AmazonS3Builder, StoreError> {
        let Some(profile) = self.profile()? else {
            return Ok(builder);
        };
        let has = |builder: &AmazonS3Builder, key| builder.get_config_value(&key).is_some();
        if !has(&builder, AmazonS3ConfigKey::AccessKeyId) {
            match (
                profile.get("aws_access_key_id"),
                profile.get("aws_secret_access_key"),
            ) {
                (Some(id), Some(secret)) => {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                    if let Some(token) = profile.get("aws_session_token") {
                        builder = builder.with_token(token);
                    }
                }
                _ => {
                    if let Some(setting) = UNSUPPORTED.iter().find(|s| profile.contains_key(**s)) {
                        return Err(StoreError::Option(format!(
                            "AWS profile {:?} uses {setting}, which eventkit does not resolve: \
                             export the keys it yields as AWS_ACCESS_KEY_ID, \
                             AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN",
                            self.profile
                        )));
                    }
                }
            }
        }
        if !has(&builder, AmazonS3ConfigKey::Region)
            && let Some(region) = profile.get("region")
        {
            builder = builder.with_region(region);
        }
        Ok(builder)
    }

    /// The profile's settings, the credentials file's over the config file's.
    fn profile(&self) -> Result<Option<HashMap<String, String>>, StoreError> {
        let in_config = if self.profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {}", self.profile)
        };
        let from_config = self.config.as_deref().and_then(|t| section(t, &in_config));
        let from_credentials = self
            .credentials
            .as_deref()
            .and_then(|t| section(t, &self.profile));
        if from_config.is_none() && from_credentials.is_none() {
            if self.named {
                return Err(StoreError::Option(format!(
                    "AWS_PROFILE names {:?}, which neither shared AWS file has",
                    self.profile
                )));
            }
            return Ok(None);
        }
        let mut settings = from_config.unwrap_or_default();
        settings.extend(from_credentials.unwrap_or_default());
        Ok(Some(settings))
    }
}

/// The `key = value` lines of `[name]` in an INI text; `#` and `;` start comments.
fn section(text: &str, name: &str) -> Option<HashMap<String, String>> {
    let mut found = None;
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            if inside {
                found.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        if inside
            && let Some((key, value)) = line.split_once('=')
            && let Some(settings) = found.as_mut()
        {
            settings.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIDEFAULT
aws_secret_access_key = secret/default

# a comment
[ci]
aws_access_key_id=AKICI
aws_secret_access_key=secret-ci
aws_session_token = token=ci
";
    const CONFIG: &str = "\
[default]
region = eu-west-1

[profile ci]
region = us-west-2

[profile admin]
role_arn = arn:aws:iam::123456789012:role/admin
source_profile = default
";

    fn files(profile: Option<&str>) -> SharedFiles {
        SharedFiles {
            named: profile.is_some(),
            profile: profile.unwrap_or("default").to_owned(),
            credentials: Some(CREDENTIALS.to_owned()),
            config: Some(CONFIG.to_owned()),
        }
    }

    fn value(builder: &AmazonS3Builder, key: AmazonS3ConfigKey) -> Option<String> {
        builder.get_config_value(&key)
    }

    #[test]
    fn the_default_profile_gives_keys_and_region() {
        let builder = files(None).apply(AmazonS3Builder::new()).unwrap();
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKIDEFAULT")
        );
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::SecretAccessKey).as_deref(),
            Some("secret/default")
        );
        assert_eq!(value(&builder, AmazonS3ConfigKey::Token), None);
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::Region).as_deref(),
            Some("eu-west-1")
        );
    }

    #[test]
    fn a_named_profile_joins_both_files() {
        let builder = files(Some("ci")).apply(AmazonS3Builder::new()).unwrap();
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKICI")
        );
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::Token).as_deref(),
            Some("token=ci")
        );
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::Region).as_deref(),
            Some("us-west-2")
        );
    }

    #[test]
    fn the_environment_wins_over_the_files() {
        let environment = AmazonS3Builder::new()
            .with_access_key_id("AKIENV")
            .with_secret_access_key("secret-env")
            .with_region("ap-south-1");
        let builder = files(Some("ci")).apply(environment).unwrap();
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKIENV")
        );
        assert_eq!(
            value(&builder, AmazonS3ConfigKey::Region).as_deref(),
            Some("ap-south-1")
        );
    }

    #[test]
    fn unresolvable_and_missing_profiles_are_refused_by_name() {
        let role = files(Some("admin")).apply(AmazonS3Builder::new()).err();
        assert!(
            role.is_some_and(|e| e.to_string().contains("uses role_arn")),
            "a role profile must not fall through"
        );
        let missing = files(Some("nope")).apply(AmazonS3Builder::new()).err();
        assert!(missing.is_some_and(|e| e.to_string().contains("\"nope\"")));
        let none = SharedFiles {
            profile: "default".to_owned(),
            named: false,
            credentials: None,
            config: None,
        };
        let builder = none.apply(AmazonS3Builder::new()).unwrap();
        assert_eq!(value(&builder, AmazonS3ConfigKey::AccessKeyId), None);
    }
}
