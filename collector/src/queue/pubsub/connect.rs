//! Clients for Pub/Sub: Google's endpoint with Application Default Credentials, or an emulator
//! (`pubsub.emulator_host`, `PUBSUB_EMULATOR_HOST`) with none, as Google's own clients do.

use std::sync::Arc;
use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::retry_policy::RetryPolicyExt as _;
use google_cloud_pubsub::client::{Publisher, Subscriber, SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::retry_policy::RetryableErrors;

use super::PublishHealth;
use crate::config::PubsubConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create a Pub/Sub client: {0}")]
    Client(String),
    #[error(
        "{what} {name} does not exist; create it (see specs/pubsub.md), or set pubsub.create_missing = true for development"
    )]
    Missing { what: &'static str, name: String },
    #[error("cannot look up or create {name}: {source}")]
    Admin {
        name: String,
        #[source]
        source: google_cloud_pubsub::Error,
    },
}

pub struct Names {
    pub topic: String,
    pub subscription: String,
}

pub fn names(config: &PubsubConfig) -> Names {
    Names {
        topic: format!("projects/{}/topics/{}", config.project, config.topic),
        subscription: format!(
            "projects/{}/subscriptions/{}",
            config.project, config.subscription
        ),
    }
}

/// The emulator's URL, when one is configured.
fn emulator(config: &PubsubConfig) -> Option<String> {
    config.emulator_host.as_ref().map(|host| {
        if host.starts_with("http://") || host.starts_with("https://") {
            host.clone()
        } else {
            format!("http://{host}")
        }
    })
}

/// Applies the endpoint and credentials to any of the crate's client builders, which share
/// these two methods but no trait.
macro_rules! configured {
    ($builder:expr, $config:expr) => {{
        let builder = $builder;
        match emulator($config) {
            Some(endpoint) => builder.with_endpoint(endpoint).with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            ),
            None => builder,
        }
    }};
}

pub async fn publisher(config: &PubsubConfig, topic: &str) -> Result<Publisher, ConnectError> {
    // The client retries a failing publish for 10 minutes by default; past the deadline the
    // request has been answered 503 anyway, and the capacity a publish holds must come back.
    let give_up = Duration::from_millis(config.publish_timeout_ms);
    configured!(Publisher::builder(topic.to_owned()), config)
        .with_retry_policy(RetryableErrors.with_time_limit(give_up))
        // Messages are already coalesced; the client's own batching would only add its delay.
        .set_delay_threshold(Duration::from_millis(1))
        .build()
        .await
        .map_err(|e| ConnectError::Client(e.to_string()))
}

pub async fn subscriber(config: &PubsubConfig) -> Result<Subscriber, ConnectError> {
    configured!(Subscriber::builder(), config)
        .build()
        .await
        .map_err(|e| ConnectError::Client(e.to_string()))
}

fn is(error: &google_cloud_pubsub::Error, code: Code) -> bool {
    error.status().is_some_and(|status| status.code == code)
}

/// Checks that the topic exists, creating it when `create_missing` allows.
pub async fn ensure_topic(config: &PubsubConfig, topic: &str) -> Result<(), ConnectError> {
    let admin = configured!(TopicAdmin::builder(), config)
        .build()
        .await
        .map_err(|e| ConnectError::Client(e.to_string()))?;
    let admin_error = |source| ConnectError::Admin {
        name: topic.to_owned(),
        source,
    };
    match admin.get_topic().set_topic(topic).send().await {
        Ok(_) => Ok(()),
        Err(error) if is(&error, Code::NotFound) && config.create_missing => {
            match admin.create_topic().set_name(topic).send().await {
                Ok(_) => Ok(()),
                Err(error) if is(&error, Code::AlreadyExists) => Ok(()),
                Err(error) => Err(admin_error(error)),
            }
        }
        Err(error) if is(&error, Code::NotFound) => Err(ConnectError::Missing {
            what: "topic",
            name: topic.to_owned(),
        }),
        Err(error) => Err(admin_error(error)),
    }
}

/// How long Pub/Sub waits for an ack before redelivering, for a subscription created here. The
/// loader extends leases while it holds messages, so this matters only after a crash.
const ACK_DEADLINE_SECONDS: i32 = 60;

/// Checks that the subscription exists, creating it (and its topic) when `create_missing` allows.
pub async fn ensure_subscription(config: &PubsubConfig, names: &Names) -> Result<(), ConnectError> {
    let admin = configured!(SubscriptionAdmin::builder(), config)
        .build()
        .await
        .map_err(|e| ConnectError::Client(e.to_string()))?;
    let admin_error = |source| ConnectError::Admin {
        name: names.subscription.clone(),
        source,
    };
    match admin
        .get_subscription()
        .set_subscription(&names.subscription)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if is(&error, Code::NotFound) && config.create_missing => {
            ensure_topic(config, &names.topic).await?;
            match admin
                .create_subscription()
                .set_name(&names.subscription)
                .set_topic(&names.topic)
                .set_ack_deadline_seconds(ACK_DEADLINE_SECONDS)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(error) if is(&error, Code::AlreadyExists) => Ok(()),
                Err(error) => Err(admin_error(error)),
            }
        }
        Err(error) if is(&error, Code::NotFound) => Err(ConnectError::Missing {
            what: "subscription",
            name: names.subscription.clone(),
        }),
        Err(error) => Err(admin_error(error)),
    }
}

/// How often a failing publisher looks for Pub/Sub again. While `/ready` is false a load
/// balancer sends no traffic, so no publish would ever find that it is back.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// While publishing is failing, checks every second whether the topic answers again, and marks
/// publishing healthy when it does; real publishes then confirm it or mark it failing again.
pub async fn probe_while_failing(config: PubsubConfig, topic: String, health: Arc<PublishHealth>) {
    let admin = match configured!(TopicAdmin::builder(), &config).build().await {
        Ok(admin) => admin,
        Err(error) => {
            tracing::error!(%error, "cannot create the Pub/Sub probe client");
            return;
        }
    };
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        if health.is_healthy() {
            continue;
        }
        let answered =
            tokio::time::timeout(PROBE_EVERY, admin.get_topic().set_topic(&topic).send()).await;
        if matches!(answered, Ok(Ok(_))) {
            health.set(true);
        }
    }
}
