//! The quickstart's web UI, as a newcomer uses it: `haul quickstart` prints the UI's URL; opened
//! in headless Chromium it shows the pipeline with dev running the quickstart's Freight; a click
//! on uat's Promote and then on that Freight creates a Promotion that Succeeds (kubectl says so),
//! and the page shows uat with that Freight without a reload.
#![cfg(feature = "quickstart")]

mod support;

use std::path::Path;

use support::browser::{browser, click, page_id, promote_in_page, runtime, screenshot, wait_js};
use support::quickstart::{Quickstart, after, dev_freight};

/// The Freight a Stage's card shows as current (a function body for `wait_js`).
fn current_in(stage: &str) -> String {
    format!(
        "return [...document.querySelectorAll('[data-stage=\"{stage}\"] [data-current]')].map(e => e.dataset.current).join(',') || null;"
    )
}

#[test]
fn a_newcomer_promotes_to_uat_in_the_browser() {
    let dir = tempfile::tempdir().expect("a state directory");
    let mut qs = Quickstart::start(&[], dir.path());
    let lines = qs.read_instructions();
    let kubeconfig = after(&lines, "export KUBECONFIG=").to_string();
    let freight = dev_freight(&lines);
    let url = after(
        &lines,
        "Web UI (your pipeline; promote to uat from there): ",
    )
    .trim()
    .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    runtime().block_on(async {
        let (_driver, c) = browser(dir.path()).await;
        c.goto(&url).await.expect("open the printed URL");
        let shown = wait_js(
            &c,
            60,
            "the pipeline with dev's Freight",
            &format!(
                "return document.querySelectorAll('.card.stage').length === 3 && !!document.querySelector('[data-warehouse]') && (function(){{{}}})() === '{freight}';",
                current_in("dev")
            ),
        )
        .await;
        assert_eq!(shown, serde_json::json!(true));
        // The Warehouse's card names the Freight it produced last.
        wait_js(
            &c,
            30,
            "the Warehouse's latest Freight",
            &format!("return !!document.querySelector('[data-warehouse] [data-latest=\"{freight}\"]');"),
        )
        .await;
        let before = page_id(&c).await;
        wait_js(
            &c,
            60,
            "uat's enabled Promote button",
            "return !!document.querySelector('[data-stage=\"uat\"] button.promote:not([disabled])');",
        )
        .await;
        // The dialog offers the Freight once dev has verified it (it follows live until then).
        let promotion = promote_in_page(
            &c,
            Path::new(&kubeconfig),
            "my-app",
            "uat",
            &freight,
            300,
        )
        .await;
        wait_js(
            &c,
            120,
            "uat to show the Freight",
            &format!(
                "return (function(){{{}}})() === '{freight}';",
                current_in("uat")
            ),
        )
        .await;
        assert_eq!(page_id(&c).await, before, "the page updated without a reload");
        screenshot(&c, "quickstart").await;
        // The Promotion's page, reached by a click on the Stage's history, shows it Succeeded.
        c.goto(&format!("{}/promotions/{promotion}", url.trim_end_matches('/')))
            .await
            .expect("the Promotion's page");
        wait_js(
            &c,
            60,
            "the Promotion Succeeded in the page",
            "const e = document.querySelector('.phase'); return e && e.textContent.includes('Succeeded');",
        )
        .await;
        click(&c, "a[data-nav][href$=\"/stages/uat\"]").await;
        wait_js(
            &c,
            60,
            "uat's Stage page",
            "return document.querySelector('h1')?.textContent.includes('Stage uat');",
        )
        .await;
        let _ = c.close().await;
    });
    let status = qs
        .interrupt()
        .expect("Ctrl-C stops the quickstart within a minute");
    assert!(status.success(), "{status}\n{}", qs.log());
}
