//! `aws_ports_from_env` in a process whose environment lacks a setting. This file holds a single test so
//! that no other test reads the environment while it is changed.

use tern_lambda::{ConfigError, aws_ports_from_env};

#[tokio::test]
async fn a_missing_table_name_fails_with_one_line_naming_it() {
    // SAFETY: this test binary runs only this test, and the variables are removed before anything else
    // in the process reads the environment.
    unsafe {
        std::env::remove_var("TERN_TABLE_NAME");
        std::env::set_var("TERN_BUCKET", "tern-test-lake");
        std::env::set_var("TERN_QUEUE_URLS", "send=http://127.0.0.1:1/queue/send");
    }

    let error = aws_ports_from_env()
        .await
        .err()
        .expect("a missing table name is refused");

    assert_eq!(error, ConfigError::Missing("TERN_TABLE_NAME"));
    let message = error.to_string();
    assert!(
        message.starts_with("missing setting TERN_TABLE_NAME: "),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}
