//! File descriptors: every connection holds one, and so does each file the batch writer and
//! the store have open. The soft limit (often 1024) is raised to the hard limit at start, and
//! connections are capped below it so the writer can always open its files.

/// Raises the soft limit to the hard one and returns the cap on connections: `wanted`, or the
/// limit less `reserve` if that is smaller.
pub fn connection_cap(wanted: usize, reserve: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the file-descriptor limit");
            return wanted;
        }
    };
    // Standard streams, the listener and the runtime's own descriptors come out of the reserve.
    let room = limit.saturating_sub(reserve).max(1);
    if room < wanted {
        tracing::warn!(
            fd_limit = limit,
            fd_reserve = reserve,
            max_connections = room,
            "server.max_connections lowered to fit the file-descriptor limit"
        );
    }
    wanted.min(room)
}
