//! The README shows the driver loop of the crate docs: the two must not drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

#[test]
fn readme_shows_the_driver_loop_of_the_crate_docs() {
    let readme = include_str!("../../README.md");
    let driver_loop = include_str!("../docs/driver_loop.md");
    assert!(
        readme.contains(driver_loop),
        "README.md's \"Embedding protocol-core\" must contain docs/driver_loop.md verbatim"
    );
    // The loop answers every event: no catch-all arm that would hide a question.
    assert!(!driver_loop.contains("_ => {}"));
    assert!(driver_loop.contains("is_finished()"));
    assert!(driver_loop.contains("handle_timeout("));
}
