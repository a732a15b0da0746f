//! The `aegis` CLI against a real database.

use std::process::Output;

use aegis_it::{aegis_bin, fresh_db};

fn aegis(url: &str, args: &[&str]) -> Output {
    aegis_it::aegis_output(url, &[], args)
}

fn ok(url: &str, args: &[&str]) -> String {
    aegis_it::aegis_ok(url, &[], args)
}

#[tokio::test]
async fn tenant_lifecycle_from_the_shell() {
    let db = fresh_db().await;
    let url = db.url.as_str();
    ok(url, &["tenant", "create", "acme", "--tier", "pro", "--name", "Acme Inc"]);
    ok(url, &["tenant", "create", "globex", "--tier", "free"]);
    let list: serde_json::Value = serde_json::from_str(&ok(url, &["tenant", "list", "--json"])).unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme", "globex"]);
    let show: serde_json::Value = serde_json::from_str(&ok(url, &["tenant", "show", "acme", "--json"])).unwrap();
    assert_eq!(show["schema_name"], "tenant_acme");
    assert!(show["role_name"].as_str().unwrap().ends_with("_t_acme"));
    assert_eq!(show["tier"], "pro");
    assert_eq!(show["name"], "Acme Inc");

    ok(url, &["tenant", "set-tier", "globex", "enterprise"]);
    assert!(ok(url, &["tenant", "show", "globex"]).contains("enterprise"));

    let hostile = aegis(url, &["tenant", "create", "a;drop", "--tier", "free"]);
    assert!(!hostile.status.success());
    assert!(String::from_utf8_lossy(&hostile.stderr).contains("invalid tenant id"));
    let bad_tier = aegis(url, &["tenant", "create", "okid", "--tier", "gold"]);
    assert!(String::from_utf8_lossy(&bad_tier.stderr).contains("unknown tier"));

    let unconfirmed = aegis(url, &["tenant", "delete", "globex"]);
    assert!(!unconfirmed.status.success());
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    ok(url, &["tenant", "delete", "globex", "--yes"]);
    let missing = aegis(url, &["tenant", "show", "globex"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));

    let status: serde_json::Value = serde_json::from_str(&ok(url, &["migrate", "status", "--json"])).unwrap();
    assert_eq!(status[0]["tenant"], "acme");
    assert_eq!(status[0]["version"], status[0]["latest"]);
    assert!(ok(url, &["migrate"]).contains("acme: current"));
}

#[test]
fn config_example_is_printed() {
    let out = std::process::Command::new(aegis_bin()).args(["config", "example"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[database.embedded]") && text.contains("master_key"));
}

#[test]
fn output_cut_short_by_its_reader_ends_quietly() {
    // ~370,000 characters of text: far more than a pipe holds, so writing hits the closed pipe.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/real/docx/stress008.docx");
    let mut child = std::process::Command::new(aegis_bin())
        .arg("extract")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn the_embedding_example_creates_a_tenant() {
    let db = fresh_db().await;
    let example = aegis_bin().parent().unwrap().join("examples/create_tenant");
    let out = std::process::Command::new(example)
        .arg("embedded")
        .arg("pro")
        .env("AEGIS_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("created embedded (pro) in schema tenant_embedded"), "{text}");
    let list: serde_json::Value = serde_json::from_str(&ok(&db.url, &["tenant", "list", "--json"])).unwrap();
    assert_eq!(list[0]["id"], "embedded");
}

#[tokio::test]
async fn api_keys_from_the_shell() {
    let db = fresh_db().await;
    let url = db.url.as_str();
    ok(url, &["tenant", "create", "acme", "--tier", "pro"]);
    let out = aegis(url, &["apikey", "create", "acme", "--name", "ci"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("aegis_") && key.len() > 40, "{key}");
    let list: serde_json::Value = serde_json::from_str(&ok(url, &["apikey", "list", "acme", "--json"])).unwrap();
    assert_eq!(list[0]["name"], "ci");
    assert!(key.contains(list[0]["prefix"].as_str().unwrap()));
    assert!(!list.to_string().contains(&key), "the key itself is never listed");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    ok(url, &["apikey", "revoke", "acme", &id]);
    let list: serde_json::Value = serde_json::from_str(&ok(url, &["apikey", "list", "acme", "--json"])).unwrap();
    assert!(!list[0]["revoked_at"].is_null());
    let bad = aegis(url, &["apikey", "create", "acme", "--scopes", "root"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope"));
    let audit: Vec<String> = {
        let pool = aegis_it::pool(&db, 1).await;
        sqlx::query_scalar("SELECT action FROM public.platform_audit WHERE action LIKE 'apikey.%' ORDER BY at")
            .fetch_all(pool.pool())
            .await
            .unwrap()
    };
    assert_eq!(audit, ["apikey.create", "apikey.revoke"]);
}
