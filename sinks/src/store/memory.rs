//! In-memory store: for tests and throw-away runs; everything is gone when the process exits.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::memory::InMemory;

pub fn open() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}
