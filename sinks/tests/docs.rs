//! Code blocks of the repository's documents, so tests run what the documents say.

use std::path::Path;

/// The first ````language` block after the line `heading` in `document` (relative to the repo).
pub fn code_block(document: &str, heading: &str, language: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(document);
    let text = std::fs::read_to_string(&path).expect("read the document");
    let after = text
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("{document} has no heading {heading:?}"))
        .1;
    let fence = format!("```{language}\n");
    let body = after
        .split_once(&fence)
        .unwrap_or_else(|| panic!("no {language} block after {heading:?} in {document}"))
        .1;
    body.split_once("\n```")
        .unwrap_or_else(|| panic!("unclosed block after {heading:?} in {document}"))
        .0
        .to_owned()
}
