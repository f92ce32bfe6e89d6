//! The AWS ports are assembled from complete settings without reaching any service: clients are built at
//! cold start, and only the first call goes over the network.

use std::time::{SystemTime, UNIX_EPOCH};

use tern_lambda::{Env, aws_ports};

#[tokio::test]
async fn complete_settings_give_ports_running_on_the_system_clock() {
    let env = Env::fixed([
        ("TERN_TABLE_NAME", "tern-test"),
        ("TERN_BUCKET", "tern-test-lake"),
        (
            "TERN_QUEUE_URLS",
            "send=http://127.0.0.1:1/queue/send,lake=http://127.0.0.1:1/queue/lake",
        ),
    ]);

    let ports = aws_ports(&env).await.expect("complete settings are enough");

    let wall_clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((ports.clock.now().as_second() - wall_clock).abs() <= 5);
}
