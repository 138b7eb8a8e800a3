//! Local filesystem: the embedded default. object_store writes to a temporary file and renames
//! it into place, so a reader never sees a partial Parquet file.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

pub fn open(url: &url::Url) -> Result<Arc<dyn ObjectStore>, String> {
    let dir = url.to_file_path().map_err(|()| {
        "a file URL needs an absolute path, e.g. file:///var/lib/eventkit".to_owned()
    })?;
    open_dir(&dir)
}

pub fn open_dir(dir: &Path) -> Result<Arc<dyn ObjectStore>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}
