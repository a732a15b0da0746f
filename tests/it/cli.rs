//! The `aegis` CLI against a real database.

use std::process::Output;

use aegis_it::{aegis_bin, fresh_db};

fn aegis(url: &str, args: &[&str]) -> Output {
    std::process::Command::new(aegis_bin()).arg("--database-url").arg(url).args(args).output().unwrap()
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = aegis(url, args);
    assert!(out.status.success(), "aegis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
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
