//! A node authenticating with a `.creds` file against a real `nats-server` in operator mode
//! (decentralized JWT auth, as NGS or `nsc` set it up): it gets in with a user of the account
//! the server trusts, and not without creds or with another account's user.

use bytes::Bytes;
use wspubsub_cluster::{Broker, BrokerError, ConnectConfig, Credentials, StreamSpec};
use wspubsub_testkit::{NatsServer, OperatorMode, TIMEOUT, within};

#[tokio::test]
async fn a_node_gets_in_with_its_creds_file_and_not_with_a_strangers() {
    let auth = OperatorMode::new();
    let config = auth.config().to_str().expect("a UTF-8 path");
    let server = NatsServer::start_with(&["-c", config]).await;

    let mut connect = ConnectConfig::new(server.url());
    let refused = within(TIMEOUT, Broker::connect(&connect)).await;
    assert!(
        matches!(refused, Err(BrokerError::Connect(_))),
        "{refused:?}"
    );
    connect.credentials = Credentials::File(auth.stranger_creds("stranger"));
    let refused = within(TIMEOUT, Broker::connect(&connect)).await;
    assert!(
        matches!(refused, Err(BrokerError::Connect(_))),
        "{refused:?}"
    );

    connect.credentials = Credentials::File(auth.user_creds("node"));
    let broker = within(TIMEOUT, Broker::connect(&connect))
        .await
        .expect("the node's creds file lets it in");
    within(TIMEOUT, broker.ensure_stream(&StreamSpec::default()))
        .await
        .expect("JetStream for the account");
    let sequence = within(TIMEOUT, broker.publish("/creds", Bytes::from_static(b"hi")))
        .await
        .expect("stored");
    assert_eq!(sequence, 1);
}
