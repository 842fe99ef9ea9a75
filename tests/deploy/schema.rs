//! Rolling Modelgate back: the binary of the release before serves on its successor's schema,
//! whether it applies migrations itself or waits for the migration job.

use modelgate_tests::{Backend, ServerProcess, TestDb, migrate_with_user, on_both_backends};

on_both_backends!(a_rolled_back_binary_serves_on_its_successors_schema);

async fn a_rolled_back_binary_serves_on_its_successors_schema(backend: Backend) {
    let db = TestDb::create(backend).await;
    let token = migrate_with_user(&db.url, &["viewer"]);
    // What a newer release's migration job leaves behind.
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990001, 'from a newer release', TRUE, $1, 1)",
    )
    .bind(vec![0u8])
    .execute(&mut conn)
    .await
    .unwrap();
    for mode in ["apply", "wait"] {
        let server = ServerProcess::start_with_env(&db.url, &[], &[("MODELGATE_MIGRATE", mode)]).await;
        let models = modelgate_tests::bearer_client(&token).get(format!("{}/api/v1/models", server.base)).send().await;
        assert_eq!(models.unwrap().status(), 200, "{mode}");
        let output = server.terminate().await;
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(log.contains("newer release") && log.contains("99990001"), "{mode}: {log}");
    }
}
