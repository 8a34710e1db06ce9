//! Private access settings: defaults, full-replace PUT, validation and in-use deletion.

use reqwest::Method;
use serde_json::json;

use crate::support::{Harness, REGION, REST_SERVICE, id};

#[tokio::test]
async fn omitted_fields_take_the_aws_defaults() {
    let h = Harness::start().await;
    let created = h
        .post(
            "/private-access-settings",
            json!({"private_access_settings_name": "pas-default", "region": REGION}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let created = created.json();
    assert_eq!(created["public_access_enabled"], false);
    assert_eq!(created["private_access_level"], "ACCOUNT");
    assert_eq!(created["region"], REGION);
    let pas_id = id(&created, "private_access_settings_id");
    let fetched = h
        .get(&format!("/private-access-settings/{pas_id}"))
        .await
        .json();
    assert_eq!(fetched, created);
    let listed = h.get("/private-access-settings").await.json();
    assert_eq!(listed, json!([created]));
}

#[tokio::test]
async fn put_replaces_the_whole_object() {
    let h = Harness::start().await;
    let registration = h.register("vpce-00000011", REST_SERVICE).await;
    let registration_id = id(&registration, "vpc_endpoint_id");
    let created = h.pas("pas-replace", REGION).await;
    assert_eq!(created["public_access_enabled"], true);
    let path = format!(
        "/private-access-settings/{}",
        id(&created, "private_access_settings_id")
    );

    let endpoint_level = h
        .api(
            Method::PUT,
            &path,
            Some(json!({
                "private_access_settings_name": "pas-replaced",
                "region": REGION,
                "public_access_enabled": true,
                "private_access_level": "ENDPOINT",
                "allowed_vpc_endpoint_ids": [registration_id],
            })),
        )
        .await;
    assert_eq!(endpoint_level.status, 200, "{}", endpoint_level.text);
    let replaced = h.get(&path).await.json();
    assert_eq!(replaced["private_access_settings_name"], "pas-replaced");
    assert_eq!(replaced["private_access_level"], "ENDPOINT");
    assert_eq!(
        replaced["allowed_vpc_endpoint_ids"],
        json!([registration_id])
    );

    // Omitting public_access_enabled on PUT turns public access off
    // (`docs/account-api.md#private-access-settings`).
    h.api(
        Method::PUT,
        &path,
        Some(json!({"private_access_settings_name": "pas-replaced", "region": REGION})),
    )
    .await;
    let overwritten = h.get(&path).await.json();
    assert_eq!(overwritten["public_access_enabled"], false);
    assert_eq!(overwritten["private_access_level"], "ACCOUNT");
    assert!(overwritten.get("allowed_vpc_endpoint_ids").is_none());
}

#[tokio::test]
async fn invalid_settings_are_refused() {
    let h = Harness::start().await;
    let cases = [
        (
            json!({"private_access_settings_name": "pas", "region": REGION}),
            "private_access_settings_name",
        ),
        (json!({"private_access_settings_name": "pas-ok"}), "region"),
        (
            json!({"private_access_settings_name": "pas-ok", "region": REGION, "private_access_level": "ANY"}),
            "private_access_level",
        ),
        (
            json!({"private_access_settings_name": "pas-ok", "region": REGION,
                   "private_access_level": "ENDPOINT", "allowed_vpc_endpoint_ids": ["vpce-00000012"]}),
            "allowed_vpc_endpoint_ids",
        ),
    ];
    for (body, field) in cases {
        let message = h
            .post("/private-access-settings", body.clone())
            .await
            .expect_error(400, "INVALID_PARAMETER_VALUE");
        assert!(message.contains(field), "{body}: {message}");
    }
    h.api(
        Method::PUT,
        "/private-access-settings/nope",
        Some(json!({})),
    )
    .await
    .expect_error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn settings_in_use_by_a_workspace_cannot_be_deleted() {
    let h = Harness::start().await;
    let pas = h.pas("pas-in-use", REGION).await;
    let pas_id = id(&pas, "private_access_settings_id");
    let workspace = h
        .emulator
        .state()
        .seed_workspace(
            &h.account,
            emulator::WorkspaceSeed {
                name: "ws".into(),
                region: REGION.into(),
                private_access_settings_id: Some(pas_id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let message = h
        .delete(&format!("/private-access-settings/{pas_id}"))
        .await
        .expect_error(400, "INVALID_STATE");
    assert!(
        message.contains(&workspace.workspace_id.to_string()),
        "{message}"
    );

    let unused = h.pas("pas-unused", REGION).await;
    let deleted = h
        .delete(&format!(
            "/private-access-settings/{}",
            id(&unused, "private_access_settings_id")
        ))
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["private_access_settings_name"], "pas-unused");
}
