//! The object_store conformance functions that every cloud backend here passes on its emulator.

use object_store::multipart::MultipartStore;
use object_store::{ObjectStore, integration};

/// `last_writer_wins`: whether concurrent multipart uploads of one path end with the last one
/// completed (S3) or may fail (Azure's block lists).
pub async fn cloud_store<S: ObjectStore + MultipartStore>(s: &S, last_writer_wins: bool) {
    integration::put_get_delete_list(s).await;
    integration::list_with_offset_exclusivity(s).await;
    integration::get_opts(s).await;
    integration::put_opts(s, true).await;
    integration::list_uses_directories_correctly(s).await;
    integration::list_with_delimiter(s).await;
    integration::rename_and_copy(s).await;
    integration::stream_get(s).await;
    integration::multipart(s, s).await;
    integration::multipart_put_part_out_of_order(s, s).await;
    integration::multipart_race_condition(s, last_writer_wins).await;
    integration::multipart_out_of_order(s).await;
}
