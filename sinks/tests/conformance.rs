//! The object_store conformance functions that every cloud backend here passes on its emulator.

use object_store::multipart::MultipartStore;
use object_store::{ObjectStore, integration};

/// `last_writer_wins`: whether concurrent multipart uploads of one path end with the last one
/// completed (S3) or may fail (Azure's block lists). `atomic_updates`: whether the emulator's
/// conditional puts (`If-Match`) hold under concurrency; moto's once lost one increment of 50.
pub async fn cloud_store<S: ObjectStore + MultipartStore>(
    s: &S,
    last_writer_wins: bool,
    atomic_updates: bool,
) {
    integration::put_get_delete_list(s).await;
    integration::list_with_offset_exclusivity(s).await;
    integration::get_opts(s).await;
    if atomic_updates {
        integration::put_opts(s, true).await;
    } else {
        conditional_puts_one_at_a_time(s).await;
    }
    integration::list_uses_directories_correctly(s).await;
    integration::list_with_delimiter(s).await;
    integration::rename_and_copy(s).await;
    integration::stream_get(s).await;
    integration::multipart(s, s).await;
    integration::multipart_put_part_out_of_order(s, s).await;
    integration::multipart_race_condition(s, last_writer_wins).await;
    integration::multipart_out_of_order(s).await;
}

/// `integration::put_opts` without its 50 concurrent increments, for an emulator whose
/// conditional updates are not atomic: create once, then update only from the current version.
async fn conditional_puts_one_at_a_time(s: &dyn ObjectStore) {
    use object_store::{Error, ObjectStoreExt, PutMode, UpdateVersion, path::Path};
    let path = Path::from("put_opts_one_at_a_time");
    let _ = s.delete(&path).await;
    let v1 = s
        .put_opts(&path, "a".into(), PutMode::Create.into())
        .await
        .unwrap();
    let again = s.put_opts(&path, "b".into(), PutMode::Create.into()).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
    let v1 = UpdateVersion::from(v1);
    let v2 = s
        .put_opts(&path, "c".into(), PutMode::Update(v1.clone()).into())
        .await
        .unwrap();
    let stale = s
        .put_opts(&path, "d".into(), PutMode::Update(v1).into())
        .await;
    assert!(
        matches!(stale, Err(Error::Precondition { .. })),
        "{stale:?}"
    );
    assert_ne!(UpdateVersion::from(v2).e_tag, None);
    let stored = s.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored.as_ref(), b"c");
    s.delete(&path).await.unwrap();
}
