//! `pubsub` mode: collectors publish coalesced messages to a topic ([`PubsubQueue`]); loaders
//! pull them from a subscription ([`PubsubConsumer`]) into the same batcher and sinks as `async`
//! mode. The message format is in `specs/pubsub.md`.

pub mod connect;
pub mod message;
mod publish;
mod pull;

pub use publish::{PublishHealth, PublishLoop, PubsubQueue};
pub use pull::{PubsubConsumer, PullHealth};
